"""PyTorch Lightning: the energy, carbon and water of each training epoch and of the run.

:class:`EnergyCallback` is a Lightning callback over an :class:`~wattprint.EnergyMeter`::

    trainer = Trainer(callbacks=[EnergyCallback(db="wattprint.db")])

* Each training epoch is measured from ``on_train_epoch_start`` to ``on_train_epoch_end``, so
  it includes the validation Lightning runs at its end. Its figures are logged with
  ``pl_module.log(..., rank_zero_only=True)`` at the epoch's end (Lightning allows
  ``self.log`` there): ``wattprint/epoch_energy_j``, ``epoch_energy_kwh``, ``epoch_co2_g``,
  ``epoch_water_l``, ``epoch_duration_s`` and ``epoch_partial`` (1.0 when a sensor failed in
  the epoch: its energy then leaves the failed component out).
* The run is measured from ``on_train_start`` to ``on_train_end``. Lightning allows no
  ``self.log`` in ``on_train_end``, so its figures (``wattprint/run_energy_j`` ...) go to the
  trainer's loggers directly, at the run's last step.
* With ``db=`` (a path or a :class:`~wattprint.store.Store`), the run is stored as a training
  run (phase ``training``) in a sweep of its own, ``lightning``, ``lightning-2`` ...: the
  figures with their provenance, the epochs in ``extra["epochs"]`` (numbered from 1, as
  the results store numbers training epochs: Lightning's epoch 0 is 1), the trainer's last
  metrics in ``metrics``. A failing sensor leaves the run partial, with the error; a
  training that raises is stored as ``failed``, with the error.

Only the global rank zero process measures, logs and stores (the other ranks do nothing, not
even open a meter). Its meter reads its own machine: with several nodes, the figures are
those of rank zero's node only (a warning says so). The measurements stay on the callback:
:attr:`EnergyCallback.epochs` and :attr:`EnergyCallback.run`, each a
:class:`~wattprint.measurement.Measurement` with every component's provenance.

Works with the ``lightning`` package, or with ``pytorch_lightning`` where only that one is
installed.
"""

from __future__ import annotations

import itertools
import os
from contextlib import AbstractContextManager
from typing import Any

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError:  # only the older package name is installed
    from pytorch_lightning import Callback, LightningModule, Trainer  # type: ignore[assignment]

from .._log import get_logger
from ..errors import WattprintError
from ..measurement import Measurement
from ..meter import EnergyMeter, Window
from ..record import RunRecord
from ..sensors.hardware import detect_hardware
from ..store import Store
from ._training_run import epoch_entry, provenance_text, store_training_run

__all__ = ["EnergyCallback"]

log = get_logger(__name__)

#: The sweep (and project) the runs are stored in: ``lightning``, ``lightning-2``, ...
SWEEP_BASE = "lightning"

_runs = itertools.count(1)


def _figures(m: Measurement) -> dict[str, float]:
    """The numbers logged for a measurement (``partial`` as 1.0 or 0.0)."""
    fp = m.footprint
    return {"energy_j": m.energy_j, "energy_kwh": fp.kwh, "co2_g": fp.co2_g,
            "water_l": fp.water_l, "duration_s": m.duration_s, "partial": float(m.partial)}


def _scalar(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # not a number, or a tensor of several
        return None


class EnergyCallback(Callback):
    """Measure each training epoch and the whole run; log the figures, and store the run.

    ``meter`` is the :class:`~wattprint.EnergyMeter` to use (default: one made with
    ``sensors="auto"`` when training starts, on rank zero, and closed at teardown).
    ``db`` is a results store (a path, or an open :class:`~wattprint.store.Store`, left
    open) to write the run to; a path is opened when training starts, so one that cannot be
    a store fails before any epoch runs. ``prefix`` starts every logged name.
    ``model_name`` names the stored run (default: the LightningModule's class name).
    """

    def __init__(self, *, meter: EnergyMeter | None = None,
                 db: str | os.PathLike[str] | Store | None = None,
                 prefix: str = "wattprint/", model_name: str | None = None) -> None:
        super().__init__()
        self.meter = meter
        self.db = db
        self.prefix = prefix
        self.model_name = model_name
        #: The training epochs of the last run, in order.
        self.epochs: list[Measurement] = []
        #: The last run's measurement (None before a run ends on rank zero).
        self.run: Measurement | None = None
        #: The run record written to ``db`` (None without ``db``), with its store ``id``.
        self.record: RunRecord | None = None
        self._own_meter = False
        self._store: Store | None = None
        self._run_name: str | None = None
        #: The open epoch: its context manager, window, and Lightning's number for it.
        self._epoch: tuple[AbstractContextManager[Window], Window, int] | None = None
        self._numbers: list[int] = []  # Lightning's number of each of ``epochs``

    # -- Lightning's hooks ------------------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if trainer.num_nodes > 1:
            log.warning("training on %d nodes: the energy figures are those of rank zero's "
                        "node only", trainer.num_nodes)
        if self.db is not None:  # first: a db that cannot be a store fails before all else
            self._store = self.db if isinstance(self.db, Store) else Store(self.db)
        if self.meter is None:  # rank zero's whole node: the other ranks make no meter
            self.meter = EnergyMeter(distributed=False)
            self._own_meter = True
        self.epochs, self._numbers, self.run, self.record = [], [], None, None
        self._run_name = self.meter.begin(f"lightning-run#{next(_runs)}")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or self.meter is None or self._run_name is None:
            return
        cm = self.meter.epoch()
        self._epoch = (cm, cm.__enter__(), trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        m = self._end_epoch()
        if m is None:
            return
        for key, value in _figures(m).items():
            pl_module.log(f"{self.prefix}epoch_{key}", value, on_step=False, on_epoch=True,
                          rank_zero_only=True, batch_size=1)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run = self._end_run()
        if run is None:
            return
        metrics = {f"{self.prefix}run_{key}": value for key, value in _figures(run).items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        log.info("training run: %.6g J, %.6g g CO2, %.6g L water over %.3f s (%s)%s",
                 run.energy_j, run.footprint.co2_g, run.footprint.water_l, run.duration_s,
                 provenance_text(run), f"; partial: {'; '.join(run.errors)}" if run.partial else "")
        self._write(trainer, pl_module, run, error=None)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule,
                     exception: BaseException) -> None:
        # Lightning calls no teardown hook after an exception: what was opened closes here.
        try:
            run = self._end_run()
            if run is not None:
                error = f"{type(exception).__name__}: {exception}".rstrip(": ")
                self._write(trainer, pl_module, run, error=error)
        except WattprintError as err:  # the training's own error is the one to raise
            log.error("the failed training run was measured but not stored: %s", err)
        finally:
            self._release()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._release()

    def _release(self) -> None:
        """Close what ``on_train_start`` opened: the store of a path, a meter of its own."""
        if self._store is not None and self._store is not self.db:
            self._store.close()
        self._store = None
        if self._own_meter and self.meter is not None:
            self.meter.close()
            self.meter, self._own_meter = None, False

    # -- the windows --------------------------------------------------------------------------

    def _end_epoch(self) -> Measurement | None:
        if self._epoch is None:
            return None
        (cm, window, number), self._epoch = self._epoch, None
        cm.__exit__(None, None, None)
        m = window.measurement
        assert m is not None
        self.epochs.append(m)
        self._numbers.append(number)
        return m

    def _end_run(self) -> Measurement | None:
        """End the epoch still open (training stopped inside one) and the run."""
        if self._run_name is None or self.meter is None:
            return None
        self._end_epoch()
        name, self._run_name = self._run_name, None
        self.run = self.meter.end(name)
        return self.run

    # -- the store ----------------------------------------------------------------------------

    def _write(self, trainer: Trainer, pl_module: LightningModule, run: Measurement,
               error: str | None) -> None:
        if self._store is None:
            return
        assert self.meter is not None
        name = self.model_name or type(pl_module).__name__
        metrics = {key: value for key, value in (
            (str(k), _scalar(v)) for k, v in trainer.callback_metrics.items())
            if value is not None and not key.startswith(self.prefix)}
        epochs = [epoch_entry(n + 1, m)
                  for n, m in zip(self._numbers, self.epochs, strict=True)]
        self.record = RunRecord.from_measurement(  # kept here if storing fails
            run, model_name=name, phase="training", framework="torch",
            hardware=detect_hardware(self.meter.sensors),
            num_parameters=sum(int(p.numel()) for p in pl_module.parameters()),
            status="ok" if error is None else "failed", error=error,
            metrics=metrics or None,
            extra={"integration": "lightning", "global_step": trainer.global_step,
                   "epochs": epochs},
        )
        self.record = store_training_run(
            self._store, self.record, base=SWEEP_BASE,
            config={"lightning": {"model": name, "max_epochs": trainer.max_epochs}},
            cell_key=lambda repetition: f"{name}/training/{repetition}", failed=error is not None)
