"""The meter's training helpers: per-batch and per-epoch windows, their running totals, and the
``last_batch()`` / ``summary()`` views that training loops expect."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType
    from typing import Any

    from .footprint import FootprintModel
    from .measurement import Measurement
    from .meter import Window


class _Stats:
    """Running totals of batches or epochs (no per-item list: loops can be long)."""

    __slots__ = ("carbon_g", "count", "duration_s", "energy_j", "last", "partial")

    def __init__(self) -> None:
        self.count = 0
        self.partial = 0
        self.duration_s = 0.0
        self.energy_j = 0.0
        self.carbon_g = 0.0
        self.last: Measurement | None = None

    def add(self, m: Measurement) -> None:
        self.count += 1
        self.partial += m.partial
        self.duration_s += m.duration_s
        self.energy_j += m.energy_j
        self.carbon_g += m.footprint.co2_g
        self.last = m

    def summary(self) -> dict[str, float | int]:
        n = max(self.count, 1)
        return {
            "count": self.count,
            "mean_duration_s": self.duration_s / n,
            "mean_energy_j": self.energy_j / n,
            "mean_carbon_g": self.carbon_g / n,
            "total_duration_s": self.duration_s,
            "total_energy_j": self.energy_j,
            "total_carbon_g": self.carbon_g,
            # windows in which a sensor failed: the totals miss what it would have read
            "partial_count": self.partial,
        }


def _brief(m: Measurement | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "name": m.name,
        "duration_s": m.duration_s,
        "energy_j": m.energy_j,
        "avg_power_w": m.power_w,
        "carbon_g": m.footprint.co2_g,
        "water_l": m.footprint.water_l,
        "measured": m.measured,
        "partial": m.partial,
    }


class _Counted:
    """A training window whose measurement is added to ``stats`` when its block ends without
    an error (a class, not a generator: a first measurement loads this module, and
    :mod:`contextlib` would cost it about a millisecond)."""

    __slots__ = ("_handle", "_label", "_meter", "_stats", "_window")

    def __init__(self, meter: _TrainingMixin, label: str, stats: _Stats) -> None:
        self._meter = meter
        self._label = label
        self._stats = stats

    def __enter__(self) -> Window:
        self._window = self._meter._training_window(self._label)
        self._handle = self._window.__enter__()
        return self._handle

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._window.__exit__(exc_type, exc, tb)
        if exc_type is None:
            assert self._handle.measurement is not None
            self._stats.add(self._handle.measurement)


class _TrainingMixin:
    """Training-loop methods of :class:`~wattprint.meter.EnergyMeter`.

    The meter provides :meth:`_training_window` (a window with a unique name), ``device``,
    ``gpu_name`` and ``footprint_model``.
    """

    _batches: _Stats
    _epochs: _Stats
    footprint_model: FootprintModel

    def _training_window(self, label: str) -> AbstractContextManager[Window]:
        raise NotImplementedError

    @property
    def device(self) -> str:
        raise NotImplementedError

    @property
    def gpu_name(self) -> str | None:
        raise NotImplementedError

    def epoch(self) -> AbstractContextManager[Window]:
        """Measure one training epoch: ``with meter.epoch(): ...``."""
        return _Counted(self, f"epoch-{self._epochs.count + 1}", self._epochs)

    def batch(self) -> AbstractContextManager[Window]:
        """Measure one training batch: ``with meter.batch(): ...``."""
        return _Counted(self, f"batch-{self._batches.count + 1}", self._batches)

    def last_batch(self) -> dict[str, Any] | None:
        """``duration_s``, ``energy_j``, ``avg_power_w``, ``carbon_g`` (and more) of the last
        batch that ended; ``None`` before the first."""
        return _brief(self._batches.last)

    def last_epoch(self) -> dict[str, Any] | None:
        """``duration_s``, ``energy_j``, ``avg_power_w``, ``carbon_g`` (and more) of the last
        epoch that ended; ``None`` before the first."""
        return _brief(self._epochs.last)

    def batch_summary(self) -> dict[str, float | int]:
        """Count, means and totals of the batches measured so far: ``summary()["batch_summary"]``
        (Energy-Meter's ``batch_summary()``); ``partial_count``: how many of them are partial
        (a sensor failed inside: the totals miss what it would have read)."""
        return self._batches.summary()

    def epoch_summary(self) -> dict[str, float | int]:
        """Count, means and totals of the epochs measured so far: ``summary()["epoch_summary"]``
        (Energy-Meter's ``epoch_summary()``), with ``partial_count`` as in :meth:`batch_summary`."""
        return self._epochs.summary()

    def summary(self) -> dict[str, Any]:
        """Counts, means and totals of the batches and epochs measured so far, in Energy-Meter's
        structure: ``device`` (``"gpu"`` or ``"cpu"``), ``gpu_name``, ``num_batches``,
        ``num_epochs``, ``batch_summary``, ``epoch_summary`` and the grid's
        ``carbon_intensity_g_per_kwh``; also the ``pue`` that the carbon figures include."""
        return {
            "device": self.device,
            "gpu_name": self.gpu_name,
            "num_batches": self._batches.count,
            "num_epochs": self._epochs.count,
            "batch_summary": self._batches.summary(),
            "epoch_summary": self._epochs.summary(),
            "carbon_intensity_g_per_kwh": self.footprint_model.intensity_g_per_kwh,
            "pue": self.footprint_model.pue,
        }
