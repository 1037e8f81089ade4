"""Hugging Face ``Trainer``: the energy, carbon and water of each logging step, each epoch and
the whole run, in the Trainer's own logs and in the results store.

:class:`EnergyCallback` is a ``transformers.TrainerCallback`` over an
:class:`~wattprint.EnergyMeter`; it works with ``Trainer`` and ``Seq2SeqTrainer`` (and any
subclass that keeps the Trainer's callbacks)::

    trainer = Trainer(model=model, args=args, train_dataset=train)
    EnergyCallback(db="wattprint.db", country="DE").attach(trainer)
    trainer.train()

What goes into each ``logs`` dict that the Trainer's ``log`` hands its callbacks (and so into
``trainer.state.log_history`` and, through the Trainer's reporters, TensorBoard, W&B, MLflow):

* every log during training: ``energy_j``, ``co2_g`` and ``water_l`` of the time since the
  previous log (or since training began): the logging steps' figures, which add up to the run's
  up to the last log;
* the first log after an epoch ends: ``epoch_energy_j``, ``epoch_co2_g``, ``epoch_water_l``
  of that epoch (from ``on_epoch_begin`` to ``on_epoch_end``);
* the Trainer's summary log at the end of training (the one with ``train_loss`` and
  ``train_runtime``): ``train_energy_j``, ``train_co2_g``, ``train_water_l`` of the whole run,
  from ``on_train_begin`` to that log;
* ``energy_partial`` (1) in a log whose figures leave out a component whose sensor failed
  (the figure is then too low, never guessed; the meter logs which sensor failed).

The Trainer calls its callbacks in order and puts its reporters (``report_to``) before the
callbacks given in ``callbacks=``, so figures added by a callback given there reach
``log_history`` and the progress output but not the reporters. :meth:`EnergyCallback.attach`
puts the callback first, ahead of the reporters; a callback given in ``callbacks=`` with
reporters configured, and not attached, warns when training begins.

With ``db=`` (a path, or an open :class:`~wattprint.store.Store`), the run is stored when
training ends as a training run (phase ``training``) in a sweep of its own, ``hf-trainer``,
``hf-trainer-2``... (or in the sweep named by ``sweep_id``): the figures with their
provenance, ``partial`` and the sensors' ``errors``, the epochs in ``extra["epochs"]``, the
Trainer's summary and last evaluation in ``metrics``. A path is opened when training begins,
so one that cannot be a store fails before any step runs. A training that raises ends without
the Trainer's ``on_train_end``: nothing is stored, and the windows left open are closed when
the callback's next training begins.

Only the main process (``state.is_world_process_zero``) measures, logs and stores; the others
do nothing, not even open a meter. Its meter reads its own machine: on several machines the
figures are those of the main process's machine only (a warning says so).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from transformers.trainer_callback import TrainerCallback, TrainerControl, TrainerState

from .._log import get_logger
from ..errors import ConfigError, WattprintError
from ..footprint import Site, _site
from ..measurement import Measurement
from ..meter import EnergyMeter, Window
from ..record import RunRecord
from ..sensors.hardware import detect_hardware, resolve_hardware
from ..store import Store
from ._training_run import epoch_entry, store_training_run

if TYPE_CHECKING:
    from transformers import Trainer, TrainingArguments

__all__ = ["SWEEP_BASE", "EnergyCallback"]

log = get_logger(__name__)

#: The sweep (and project) the runs are stored in: ``hf-trainer``, ``hf-trainer-2``, ...
SWEEP_BASE = "hf-trainer"

_callbacks = itertools.count(1)


def _figures(prefix: str, m: Measurement) -> dict[str, float]:
    fp = m.footprint
    return {f"{prefix}energy_j": m.energy_j, f"{prefix}co2_g": fp.co2_g,
            f"{prefix}water_l": fp.water_l}


def _numbers(logs: dict[str, Any], keep: Any) -> dict[str, float]:
    """The finite numbers of ``logs`` whose key ``keep`` accepts."""
    return {str(k): float(v) for k, v in logs.items()
            if keep(str(k)) and isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v)}


def _is_summary(logs: dict[str, Any]) -> bool:
    """The Trainer's log at the end of training (``train_loss``, ``train_runtime``...)."""
    return "train_loss" in logs and "train_runtime" in logs


def _model_fields(model: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if model is None:
        return fields
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        fields["num_parameters"] = sum(int(p.numel()) for p in parameters())
    dtype = getattr(model, "dtype", None)
    if dtype is not None:
        fields["dtype"] = str(dtype).removeprefix("torch.")
    return fields


def _model_name(model: Any) -> str:
    """The model's hub name or folder (``config.name_or_path``), else its class name."""
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(model, "name_or_path", None)
    return str(name) if name else type(model).__name__


class EnergyCallback(TrainerCallback):
    """Measure a ``Trainer``'s logging steps, epochs and run; log the figures; store the run.

    ``meter`` is the :class:`~wattprint.EnergyMeter` to use (default: one made with
    ``sensors="auto"`` when training begins, on the main process only, and closed when it
    ends). The location arguments, or one :class:`~wattprint.Site` as ``site``, are the
    meter's (see :class:`~wattprint.EnergyMeter`); they are checked here, and are for the meter
    this callback makes: with ``meter=``, give them to that meter.

    ``db`` is a results store (a path, or an open :class:`~wattprint.store.Store`, left open)
    to write the run to; ``sweep_id`` the sweep it goes in (default: a new one,
    ``hf-trainer``, ``hf-trainer-2``...). ``model_name`` names the stored run (default: the
    model's ``config.name_or_path``, else its class name); ``task``, ``dataset`` and
    ``hardware`` are stored as given (``hardware`` default: what the meter reads, the first
    GPU, else ``"CPU"``). ``prefix`` starts every key added to the logs.

    After training, the measurements are on the callback, each a
    :class:`~wattprint.measurement.Measurement` with every component's provenance:
    :attr:`steps` (one per log), :attr:`epochs`, :attr:`run`; and :attr:`record`, the run's
    :class:`~wattprint.record.RunRecord` (with its store ``id`` when stored).
    """

    def __init__(
        self,
        meter: EnergyMeter | None = None,
        *,
        db: str | os.PathLike[str] | Store | None = None,
        sweep_id: str | None = None,
        model_name: str | None = None,
        task: str | None = None,
        dataset: str | None = None,
        hardware: str | None = None,
        prefix: str = "",
        site: Site | None = None,
        country: str | None = None,
        zone: str | None = None,
        cloud_region: str | None = None,
        carbon_intensity_g_per_kwh: float | None = None,
        pue: float | None = None,
        wue_l_per_kwh: float | None = None,
        water_intensity_l_per_kwh: float | None = None,
        tier: str | None = None,
    ) -> None:
        loose = {"country": country, "zone": zone, "cloud_region": cloud_region,
                 "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh, "pue": pue,
                 "wue_l_per_kwh": wue_l_per_kwh,
                 "water_intensity_l_per_kwh": water_intensity_l_per_kwh, "tier": tier}
        if meter is not None and (site is not None or any(v is not None for v in loose.values())):
            raise ConfigError("give the location to the meter (EnergyMeter(country=...)) or to "
                              "EnergyCallback without meter=, not both")
        if meter is not None and not isinstance(meter, EnergyMeter):
            raise ConfigError(f"meter must be a wattprint.EnergyMeter, not "
                              f"{type(meter).__name__}")
        #: Where the energy is used, for the meter this callback makes (None with ``meter=``).
        self.site: Site | None = None
        if meter is None:
            self.site = _site(site, loose)
            self.site.resolve()  # an unknown place fails here, not when training begins
        self.meter = meter
        self.db = db
        self.sweep_id = sweep_id
        self.model_name = model_name
        self.task = task
        self.dataset = dataset
        self.hardware = None if hardware is None else resolve_hardware(hardware).name
        self.prefix = prefix
        #: One measurement per log of the last training: the time since the previous log.
        self.steps: list[Measurement] = []
        #: The epochs of the last training, in order.
        self.epochs: list[Measurement] = []
        #: The last training's whole run (None until it ends on the main process).
        self.run: Measurement | None = None
        #: The last training's run record (None until it ends on the main process), with its
        #: store ``id`` when written to ``db``.
        self.record: RunRecord | None = None
        self._given_meter = meter
        self._name = f"hf-trainer-{next(_callbacks)}"
        self._count = itertools.count(1)
        self._attached = False
        self._active = False
        self._store: Store | None = None
        self._run_name: str | None = None
        self._step_name: str | None = None
        self._epoch: tuple[AbstractContextManager[Window], Window] | None = None
        self._unlogged_epoch: Measurement | None = None
        self._summary: dict[str, float] = {}
        self._eval: dict[str, float] = {}

    def attach(self, trainer: Trainer) -> EnergyCallback:
        """Make this the trainer's first callback, ahead of its reporters (``report_to``), so
        that the figures it adds to each log reach them; and, since the Trainer tells its
        callbacks nothing of an exception, have a ``trainer.train()`` that raises stored as a
        failed run with what was measured until then (the exception goes on). Return the
        callback."""
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        if not self._attached:
            train = trainer.train

            @functools.wraps(train)
            def train_and_keep_a_failure(*args: Any, **kwargs: Any) -> Any:
                try:
                    return train(*args, **kwargs)
                except BaseException as exc:
                    self._failed(trainer, exc)
                    raise

            trainer.train = train_and_keep_a_failure  # type: ignore[method-assign]
        self._attached = True
        return self

    # -- the Trainer's events -----------------------------------------------------------------

    def on_train_begin(self, args: TrainingArguments, state: TrainerState,
                       control: TrainerControl, **kwargs: Any) -> None:
        self._abandon()
        self.steps, self.epochs, self.run, self.record = [], [], None, None
        self._summary, self._eval, self._unlogged_epoch = {}, {}, None
        self._active = bool(state.is_world_process_zero)
        if not self._active:
            return
        if args.report_to and not self._attached:
            log.warning("EnergyCallback was given in callbacks=, after the Trainer's reporters "
                        "(%s): they will not get its figures; use "
                        "EnergyCallback(...).attach(trainer) instead", ", ".join(args.report_to))
        local = os.environ.get("LOCAL_WORLD_SIZE", "")  # set by torchrun and accelerate
        if local.isdigit() and args.world_size > int(local):
            log.warning("training on several machines (%d processes, %s on this one): the "
                        "energy figures are those of the main process's machine only",
                        args.world_size, local)
        if self.db is not None:
            self._store = self.db if isinstance(self.db, Store) else Store(self.db)
        if self._given_meter is None:  # the main process's whole machine (no other meters)
            self.meter = EnergyMeter(site=self.site, distributed=False)
        meter = self.meter
        assert meter is not None
        self._run_name = meter.begin(f"{self._name}/train#{next(self._count)}")
        self._step_name = meter.begin(f"{self._name}/log#{next(self._count)}")

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState,
                       control: TrainerControl, **kwargs: Any) -> None:
        if self._run_name is None or self.meter is None:
            return
        self._end_epoch()  # an epoch the Trainer left without its on_epoch_end
        cm = self.meter.epoch()
        self._epoch = (cm, cm.__enter__())

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState,
                     control: TrainerControl, **kwargs: Any) -> None:
        self._unlogged_epoch = self._end_epoch() or self._unlogged_epoch

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meter = self.meter
        if logs is None or self._step_name is None or meter is None:
            return
        summary = _is_summary(logs)
        step = meter.end(self._step_name)
        self._step_name = None if summary else meter.begin(f"{self._name}/log#{next(self._count)}")
        self.steps.append(step)
        shown = [step]
        added = _figures(self.prefix, step)
        if self._unlogged_epoch is not None:
            shown.append(self._unlogged_epoch)
            added.update(_figures(f"{self.prefix}epoch_", self._unlogged_epoch))
            self._unlogged_epoch = None
        if summary:
            self._summary = _numbers(logs, lambda k: True)
            run = self._end_run()
            if run is not None:
                shown.append(run)
                added.update(_figures(f"{self.prefix}train_", run))
        else:
            self._eval.update(_numbers(logs, lambda k: k.startswith("eval_")))
        if any(m.partial for m in shown):
            added[f"{self.prefix}energy_partial"] = 1
        logs.update(added)
        history = state.log_history
        if history and history[-1].get("step") == state.global_step:
            history[-1].update(added)  # the Trainer's copy of these logs, made before on_log

    def on_train_end(self, args: TrainingArguments, state: TrainerState,
                     control: TrainerControl, **kwargs: Any) -> None:
        if not self._active or self.meter is None:
            return
        meter = self.meter
        try:
            if self._step_name is not None:  # no summary log: the time since the last log
                self.steps.append(meter.end(self._step_name))
                self._step_name = None
            self._end_run()
            if self.run is None:
                return
            self.record = self._record(args, state, kwargs.get("model"))
            if self._store is not None:
                self._write()
        finally:
            self._finish()

    def _failed(self, trainer: Trainer, exc: BaseException) -> None:
        """A training that raised: its run, to the exception, stored as failed."""
        if not self._active or self.meter is None or self._run_name is None:
            return
        meter = self.meter
        try:
            if self._step_name is not None:
                self.steps.append(meter.end(self._step_name))
                self._step_name = None
            if self._end_run() is None:
                return
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            self.record = self._record(trainer.args, trainer.state, trainer.model).replace(
                status="failed", error=error)
            if self._store is not None:
                self._write(failed=True)
        except WattprintError as err:  # the training's own error is the one to raise
            log.error("the failed training run was measured but not stored: %s", err)
        finally:
            self._finish()

    # -- windows ------------------------------------------------------------------------------

    def _end_epoch(self) -> Measurement | None:
        if self._epoch is None:
            return None
        (cm, window), self._epoch = self._epoch, None
        cm.__exit__(None, None, None)
        m = window.measurement
        assert m is not None
        self.epochs.append(m)
        return m

    def _end_run(self) -> Measurement | None:
        """End the epoch still open (training stopped inside one) and the run."""
        if self._run_name is None or self.meter is None:
            return None
        self._end_epoch()
        name, self._run_name = self._run_name, None
        self.run = self.meter.end(name)
        return self.run

    def _abandon(self) -> None:
        """Close what a training that raised left open (its figures are dropped)."""
        meter = self.meter
        if meter is not None:
            if self._epoch is not None:
                self._epoch[0].__exit__(None, None, None)
            for name in (self._step_name, self._run_name):
                if name is not None and name in meter.open_windows:
                    meter.end(name)
        self._epoch = None
        self._step_name = self._run_name = None
        self._finish()

    def _finish(self) -> None:
        """Close the store this callback opened and the meter it made."""
        if self._store is not None and self._store is not self.db:
            self._store.close()
        self._store = None
        if self._given_meter is None and self.meter is not None:
            self.meter.close()
            self.meter = None
        self._active = False

    # -- the run record -----------------------------------------------------------------------

    def _record(self, args: TrainingArguments, state: TrainerState, model: Any) -> RunRecord:
        assert self.run is not None and self.meter is not None
        metrics = {**self._summary, **self._eval, "global_step": float(state.global_step)}
        if state.epoch is not None:
            metrics["epoch"] = float(state.epoch)
        return RunRecord.from_measurement(
            self.run, phase="training", framework="transformers",
            model_name=self.model_name or (_model_name(model) if model is not None
                                           else "transformers model"),
            task=self.task, dataset=self.dataset,
            hardware=self.hardware or detect_hardware(self.meter.sensors),
            metrics=metrics, **_model_fields(model),
            extra={"integration": "hf-trainer", "global_step": state.global_step,
                   "world_size": args.world_size, "logs": len(self.steps),
                   "epochs": [epoch_entry(i, m) for i, m in enumerate(self.epochs, 1)]},
        )

    def _write(self, failed: bool = False) -> None:
        assert self._store is not None and self.record is not None
        record = self.record
        name = record.model_name or "transformers model"
        self.record = store_training_run(
            self._store, record, base=SWEEP_BASE,
            config={"hf-trainer": {"model": name, "task": self.task, "dataset": self.dataset}},
            cell_key=lambda repetition: f"{name}/{record.dataset or '-'}/training/{repetition}",
            sweep_id=self.sweep_id, failed=failed)
