"""Keras: the energy, carbon and water of each epoch of ``model.fit`` (and, asked for, of
each batch), in the logs that Keras's History keeps.

:class:`EnergyCallback` is a Keras 3 callback over an :class:`~wattprint.EnergyMeter`::

    history = model.fit(x, y, epochs=5, callbacks=[EnergyCallback(db="wattprint.db")])
    history.history["energy_j"]      # one figure per epoch

* Each epoch is measured from ``on_epoch_begin`` to ``on_epoch_end`` (so it includes the
  validation ``fit`` runs at its end), and its figures are put into the epoch's ``logs``:
  ``energy_j``, ``energy_kwh``, ``co2_g``, ``water_l``, ``energy_duration_s`` and
  ``energy_partial`` (1.0 when a sensor failed in the epoch: its energy then leaves the failed
  component out). Callbacks after this one, History among them, see them.
* With ``per_batch=True``, each training batch is measured too, and the same keys go into
  the batch's ``logs`` (for callbacks that read batch logs; History keeps epochs only). With
  ``steps_per_execution`` above 1, Keras calls the batch hooks once per execution, and a
  "batch" is that many steps.
* The whole ``fit`` is measured from ``on_train_begin`` to ``on_train_end``; with ``db=`` (a
  path or a :class:`~wattprint.store.Store`) it is stored as a training run (phase
  ``training``) in a sweep of its own, ``keras``, ``keras-2`` ...: the figures with their
  provenance, the epochs in ``extra["epochs"]`` (numbered from 1, as Keras prints them),
  the last epoch's metrics in ``metrics``. A failing sensor leaves the run partial, with
  the error. Keras has no hook for a ``fit`` that raises: used as a context manager around
  the ``fit`` (``with EnergyCallback(db=...) as energy: model.fit(..., callbacks=[energy])``)
  the callback ends the fit's windows as the error leaves the block and stores the run as
  ``failed``, with the error; the error goes on. Without the block, or where the error was
  caught inside it, when the fit stopped is not known: its windows stay open until the
  callback's next ``fit`` begins or the block ends, which end them (left out, not stored,
  with a warning).

The measurements stay on the callback: :attr:`EnergyCallback.epochs` and
:attr:`EnergyCallback.run`, each a :class:`~wattprint.measurement.Measurement` with every
component's provenance; the batches are counted in the meter's ``batch_summary()``.
"""

from __future__ import annotations

import itertools
import os
from contextlib import AbstractContextManager
from typing import Any

import keras

from .._log import get_logger
from ..errors import WattprintError
from ..measurement import Measurement
from ..meter import EnergyMeter, Window
from ..record import RunRecord
from ..sensors.hardware import detect_hardware
from ..store import Store
from ._training_run import epoch_entry, provenance_text, store_training_run

__all__ = ["LOG_KEYS", "EnergyCallback"]

log = get_logger(__name__)

#: The sweep (and project) the runs are stored in: ``keras``, ``keras-2``, ...
SWEEP_BASE = "keras"
#: The keys the callback puts into Keras's ``logs``.
LOG_KEYS = ("energy_j", "energy_kwh", "co2_g", "water_l", "energy_duration_s", "energy_partial")

_runs = itertools.count(1)

_Open = tuple[AbstractContextManager[Window], Window]


def _figures(m: Measurement) -> dict[str, float]:
    """The numbers put into ``logs`` for a measurement (``partial`` as 1.0 or 0.0)."""
    fp = m.footprint
    return dict(zip(LOG_KEYS, (m.energy_j, fp.kwh, fp.co2_g, fp.water_l, m.duration_s,
                               float(m.partial)), strict=True))


def _close(opened: _Open) -> Measurement:
    cm, window = opened
    cm.__exit__(None, None, None)
    assert window.measurement is not None
    return window.measurement


class EnergyCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Measure each epoch (and, with ``per_batch``, each batch) and the whole ``fit``; put
    the figures into Keras's logs, and store the run.

    ``meter`` is the :class:`~wattprint.EnergyMeter` to use (default: one made with
    ``sensors="auto"`` when ``fit`` begins, and closed when it ends). ``db`` is a results
    store (a path, or an open :class:`~wattprint.store.Store`, left open) to write the run to;
    a path is opened when ``fit`` begins, so one that cannot be a store fails before any
    epoch runs. ``model_name`` names the stored run (default: the Keras model's name).
    """

    def __init__(self, *, meter: EnergyMeter | None = None,
                 db: str | os.PathLike[str] | Store | None = None, per_batch: bool = False,
                 model_name: str | None = None) -> None:
        super().__init__()
        self.meter = meter
        self.db = db
        self.per_batch = per_batch
        self.model_name = model_name
        #: The epochs of the last ``fit``, in order.
        self.epochs: list[Measurement] = []
        #: The last ``fit``'s measurement (None before one ends).
        self.run: Measurement | None = None
        #: The run record written to ``db`` (None without ``db``), with its store ``id``.
        self.record: RunRecord | None = None
        self._own_meter = False
        self._store: Store | None = None
        self._run_name: str | None = None
        self._epoch: _Open | None = None
        self._epoch_number = 0  # Keras's number of the open epoch (``initial_epoch`` counts)
        self._numbers: list[int] = []  # Keras's number of each of ``epochs``
        self._batch: _Open | None = None

    # -- around a fit: a fit that raises --------------------------------------------------------

    def __enter__(self) -> EnergyCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: Any) -> None:
        """A fit still open when the block ends raised: stored ``failed`` with ``error``, the
        error leaving the block now; or, with none leaving it (caught inside), left out."""
        if self._run_name is None:
            return
        if error is None:
            self._drop_unended("the block ended")
            return
        try:
            run = self._end_windows()
            if run is not None:
                text = f"{type(error).__name__}: {error}".rstrip(": ")
                self._write(run, {}, error=text)
        except WattprintError as err:  # the fit's own error is the one to raise
            log.error("the failed fit was measured but not stored: %s", err)
        finally:
            self._release()

    # -- Keras's hooks ------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._run_name is not None:  # the last fit raised: its windows are still open
            self._drop_unended("the next fit began")
        if self.db is not None:  # first: a db that cannot be a store fails before all else
            self._store = self.db if isinstance(self.db, Store) else Store(self.db)
        if self.meter is None:  # the whole machine, as one process of the job or not
            self.meter = EnergyMeter(distributed=False)
            self._own_meter = True
        self.epochs, self._numbers, self.run, self.record = [], [], None, None
        self._run_name = self.meter.begin(f"keras-fit#{next(_runs)}")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.meter is not None and self._run_name is not None:
            cm = self.meter.epoch()
            self._epoch, self._epoch_number = (cm, cm.__enter__()), epoch

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.per_batch and self.meter is not None and self._run_name is not None:
            cm = self.meter.batch()
            self._batch = (cm, cm.__enter__())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._batch is None:
            return
        opened, self._batch = self._batch, None
        m = _close(opened)
        if logs is not None:
            logs.update(_figures(m))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        m = self._end_epoch()
        if m is not None and logs is not None:
            logs.update(_figures(m))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        run = self._end_windows()
        if run is None:
            return
        log.info("keras fit: %.6g J, %.6g g CO2, %.6g L water over %.3f s (%s)%s",
                 run.energy_j, run.footprint.co2_g, run.footprint.water_l, run.duration_s,
                 provenance_text(run), f"; partial: {'; '.join(run.errors)}" if run.partial else "")
        try:
            self._write(run, logs or {})
        finally:
            self._release()

    # -- the windows and the store ----------------------------------------------------------

    def _end_epoch(self) -> Measurement | None:
        if self._epoch is None:
            return None
        opened, self._epoch = self._epoch, None
        m = _close(opened)
        self.epochs.append(m)
        self._numbers.append(self._epoch_number)
        return m

    def _end_windows(self) -> Measurement | None:
        """End the batch and the epoch still open, and the run."""
        if self._run_name is None or self.meter is None:
            return None
        if self._batch is not None:
            opened, self._batch = self._batch, None
            _close(opened)
        self._end_epoch()
        name, self._run_name = self._run_name, None
        self.run = self.meter.end(name)
        return self.run

    def _drop_unended(self, when: str) -> None:
        """End the windows of a fit that raised outside a ``with`` block (or inside one that
        caught the error): when it stopped is not known, so it is not stored."""
        self._end_windows()
        log.warning("the previous fit ended without on_train_end (it raised) and %s: its "
                    "measurement is left out and not stored (use the callback as a context "
                    "manager around the fit to store a fit that raises as failed)", when)
        self._release()

    def _release(self) -> None:
        """Close what ``on_train_begin`` opened: the store of a path, a meter of its own."""
        if self._store is not None and self._store is not self.db:
            self._store.close()
        self._store = None
        if self._own_meter and self.meter is not None:
            self.meter.close()
            self.meter, self._own_meter = None, False

    def _write(self, run: Measurement, logs: dict[str, Any], error: str | None = None) -> None:
        """Store ``run`` (``error``: the fit raised it; the run is then ``failed``)."""
        if self._store is None:
            return
        assert self.meter is not None
        model = self.model
        name = self.model_name or str(getattr(model, "name", None) or "model")
        metrics = {str(k): float(v) for k, v in logs.items()
                   if k not in LOG_KEYS and isinstance(v, (int, float))}
        epochs = [epoch_entry(n + 1, m)
                  for n, m in zip(self._numbers, self.epochs, strict=True)]
        self.record = RunRecord.from_measurement(  # kept here if storing fails
            run, model_name=name, phase="training", framework="keras",
            hardware=detect_hardware(self.meter.sensors),
            num_parameters=int(model.count_params()) if model is not None else None,
            status="ok" if error is None else "failed", error=error,
            metrics=metrics or None,
            extra={"integration": "keras",
                   "epochs": epochs},
        )
        self.record = store_training_run(
            self._store, self.record, base=SWEEP_BASE,
            config={"keras": {"model": name, "epochs": len(self.epochs)}},
            cell_key=lambda repetition: f"{name}/training/{repetition}", failed=error is not None)
