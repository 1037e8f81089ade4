"""The sweep runner: expand the matrix, measure every cell, hand each result to a sink.

A sweep is the config's matrix: for each model and dataset, the model (trained first when it is
a built-in recipe), its ONNX export, and its quantized and pruned variants; each variant's
inference is measured ``monitoring.repetitions`` times. One *cell* is one stored row:

=================  ==========================================================================
``training``       a recipe trained on the dataset's train split (energy and loss per epoch)
``optimization``   producing a variant: the ONNX export, quantizing, pruning
``inference``      one repetition of one variant over the evaluation split, with accuracy
=================  ==========================================================================

Each cell is written to the sink as soon as it ends. A cell that raises is written as failed
with its error and the sweep goes on; cells that need what it would have made fail with a
message naming it. The runner does not know where rows go: the sink (the results store) is
given to it, so the layers stay in order.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError, WattprintError
from ..workloads.datasets import Dataset, load_dataset
from ..workloads.hardware import detect_hardware, resolve_hardware

if TYPE_CHECKING:
    from ..measurement import Measurement
    from ..meter import EnergyMeter
    from ..workloads.model import Model
    from .config import BenchConfig, DatasetConfig, ModelConfig

__all__ = ["Cell", "ResultSink", "SweepInterrupted", "plan_cells", "provenance", "run_sweep"]

#: The variant name of a model as loaded or trained.
BASE = "fp32"
#: The variant name of the ONNX export.
ONNX = "onnx"


class ResultSink(Protocol):
    """Where the runner writes: :class:`wattprint.store.Store` is one."""

    def begin_sweep(self, sweep_id: str, *, project: str, config: dict[str, Any],
                    host: dict[str, Any] | None = None) -> bool: ...

    def end_sweep(self, sweep_id: str, status: str) -> None: ...

    def finished_cells(self, sweep_id: str) -> set[str]: ...

    def write_run(self, record: dict[str, Any],
                  samples: Any = None) -> int: ...

    def runs(self, *, sweep_id: str | None = None, task: str | None = None,
             hardware: str | None = None, status: str | None = None,
             phase: str | None = None) -> list[dict[str, Any]]: ...

    def sweeps(self) -> list[dict[str, Any]]: ...


class SweepInterrupted(WattprintError):
    """Ctrl-C stopped a sweep; every cell that finished before it is stored."""

    def __init__(self, sweep_id: str, done: int, total: int) -> None:
        super().__init__(f"sweep {sweep_id} interrupted after {done} of {total} cells; "
                         "the finished cells are stored; run again with --resume to finish it")
        self.sweep_id = sweep_id
        self.done = done
        self.total = total


@dataclass(frozen=True)
class Cell:
    """One row of the sweep, before it runs."""

    model: str
    variant: str
    dataset: str
    phase: str
    repetition: int = 0
    parent: str | None = None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.variant}/{self.dataset}/{self.phase}/{self.repetition}"


@dataclass
class _Group:
    """The cells of one model on one dataset, in the order they run."""

    model: ModelConfig
    dataset: DatasetConfig
    cells: list[Cell] = field(default_factory=list)


def _variants(model: ModelConfig) -> list[tuple[str, str | None, str]]:
    """``(variant, parent, step)`` for each variant of a model; step ``"base"`` for itself."""
    out: list[tuple[str, str | None, str]] = [(BASE, None, "base")]
    deployed = BASE
    if model.export == "onnx":
        out.append((ONNX, BASE, "export"))
        deployed = ONNX
    q = model.quantization
    if q is not None and q.enabled:
        out.append((_quant_name(q.method, q.target_dtype), deployed, "quantize"))
    p = model.pruning
    if p is not None and p.enabled:
        out.append((f"pruned-{p.method}-{p.amount:g}", BASE, "prune"))
    return out


def _quant_name(method: str, target: str | None) -> str:
    if method in ("fp16", "bf16"):
        return method
    return f"{target or 'int8'}-{method}"


def plan_cells(config: BenchConfig) -> list[_Group]:
    """Every cell of the sweep, grouped by model and dataset, in the order they run."""
    groups: list[_Group] = []
    reps = config.monitoring.repetitions
    for dataset in config.datasets:
        for model in config.models:
            group = _Group(model, dataset)
            if model.source is not None:
                group.cells.append(Cell(model.name, BASE, dataset.name, "training"))
            for variant, parent, step in _variants(model):
                if step != "base":
                    group.cells.append(Cell(model.name, variant, dataset.name, "optimization",
                                            parent=parent))
                group.cells.extend(Cell(model.name, variant, dataset.name, "inference", rep,
                                        parent=parent) for rep in range(reps))
            groups.append(group)
    return groups


def host_info() -> dict[str, Any]:
    """The machine a sweep ran on."""
    import os

    from .._version import __version__

    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "wattprint": __version__}


def provenance(components: dict[str, dict[str, Any]], samples: int = 0) -> str:
    """One word for where a run's energy came from: ``measured`` (hardware counters),
    ``sampled`` (measured power, integrated), ``estimate``, ``fake``, or ``mixed``."""
    kinds = set()
    for c in components.values():
        if c["source"] in ("estimate", "fake"):
            kinds.add(c["source"])
        elif c["measured"]:
            kinds.add("sampled" if samples else "measured")
        else:
            kinds.add("estimate")
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _components(m: Measurement) -> dict[str, dict[str, Any]]:
    return {name: {"energy_j": c.energy_j, "source": c.source.value, "measured": c.measured}
            for name, c in m.components.items()}


@dataclass
class _Context:
    config: BenchConfig
    sink: ResultSink
    sweep_id: str
    meter: EnergyMeter
    hardware: str
    workdir: Path
    finished: set[str]
    written: int = 0
    failed: int = 0
    on_cell: Callable[[Cell, dict[str, Any]], None] | None = None


def _base_record(ctx: _Context, cell: Cell, task: str) -> dict[str, Any]:
    site = ctx.meter.footprint_model
    return {
        "sweep_id": ctx.sweep_id, "cell_key": cell.key, "model_name": cell.model,
        "variant": cell.variant, "parent": cell.parent, "dataset": cell.dataset,
        "repetition": cell.repetition, "phase": cell.phase, "task": task,
        "hardware": ctx.hardware, "pue": site.pue, "wue_l_per_kwh": site.wue_l_per_kwh,
    }


def _measurement_fields(m: Measurement) -> dict[str, Any]:
    fp = m.footprint
    return {
        "started_at": m.start.timestamp(), "ended_at": m.end.timestamp(),
        "duration_s": m.duration_s, "energy_j": m.energy_j, "energy_kwh": fp.kwh,
        "co2_g": fp.co2_g, "water_l": fp.water_l,
        "intensity_g_per_kwh": fp.intensity_g_per_kwh, "intensity_source": fp.intensity_source,
        "provenance": provenance(_components(m), m.samples), "components": _components(m),
    }


def _model_fields(model: Model) -> dict[str, Any]:
    from ..optimize import effective_parameters

    try:
        effective = effective_parameters(model)
    except (ConfigError, NotImplementedError):
        effective = model.num_parameters
    return {"framework": model.framework, "num_parameters": model.num_parameters,
            "effective_parameters": effective, "size_bytes": model.size_bytes,
            "dtype": model.dtype}


def _error_text(err: BaseException) -> str:
    if isinstance(err, WattprintError):
        return f"{type(err).__name__}: {err}"
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def _write(ctx: _Context, cell: Cell, record: dict[str, Any],
           samples: list[tuple[float, str, float]] | None = None) -> None:
    if cell.key in ctx.finished and record.get("status") == "ok":
        return  # done in an earlier run of this sweep: --resume keeps that row
    ctx.sink.write_run(record, samples)
    ctx.written += 1
    if record.get("status") != "ok":
        ctx.failed += 1
    if ctx.on_cell is not None:
        ctx.on_cell(cell, record)


def _fail(ctx: _Context, cell: Cell, task: str, error: str) -> None:
    record = _base_record(ctx, cell, task)
    record.update(status="failed", error=error, ended_at=time.time())
    _write(ctx, cell, record)


def _load_data(spec: DatasetConfig) -> tuple[Dataset, Dataset]:
    """``(train, eval)``: the train split, and the split that inference is measured on."""
    full = load_dataset(spec.name, task=spec.task)
    train, test = full.split(spec.test_size, seed=spec.seed)
    chosen = {"train": train, "test": test, "all": full}[spec.split]
    if spec.limit is not None:
        chosen = chosen.sample(spec.limit, seed=spec.seed)
    return train, chosen


def _run_group(ctx: _Context, group: _Group, data: tuple[Dataset, Dataset] | BaseException,
               advance: Callable[[int], None]) -> None:
    spec, dspec = group.model, group.dataset
    task = spec.task or dspec.task or (data[1].task if isinstance(data, tuple) else "unknown")
    todo = [c for c in group.cells if c.key not in ctx.finished]
    advance(len(group.cells) - len(todo))
    if not todo:
        return
    models: dict[str, Model | BaseException] = {}
    if isinstance(data, BaseException):
        for cell in todo:
            _fail(ctx, cell, task, f"dataset {dspec.name!r}: {_error_text(data)}")
            advance(1)
        return
    train, evaluate = data
    out_dir = ctx.workdir / _safe(spec.name) / _safe(dspec.name)
    for cell in group.cells:
        done = cell.key in ctx.finished
        needs_model = cell.phase != "inference" or not done
        if done and not _needed_later(cell, group.cells, ctx.finished):
            continue
        try:
            if cell.phase == "training":
                models[BASE] = _train(ctx, cell, spec, train, task, dspec.seed)
            elif cell.phase == "optimization":
                parent = models.get(cell.parent or BASE)
                if parent is None:
                    parent = models[cell.parent or BASE] = _base(ctx, spec, group, models, train)
                if isinstance(parent, BaseException):
                    raise _Upstream(cell.parent or BASE, parent)
                models[cell.variant] = _optimize(ctx, cell, spec, parent, train, evaluate,
                                                 out_dir, task)
            elif needs_model:
                model = models.get(cell.variant)
                if model is None and cell.variant == BASE:
                    model = models[BASE] = _base(ctx, spec, group, models, train)
                if model is None:
                    raise ConfigError(f"variant {cell.variant!r} was not made")
                if isinstance(model, BaseException):
                    raise _Upstream(cell.variant, model)
                _infer(ctx, cell, spec, model, evaluate, task)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failing cell is stored, the sweep goes on
            if cell.phase in ("training", "optimization"):
                models[cell.variant] = err
            if not done:
                _fail(ctx, cell, task, _error_text(err))
        if not done:
            advance(1)


def _needed_later(cell: Cell, cells: list[Cell], finished: set[str]) -> bool:
    """Whether a finished training or optimization cell makes a model an unfinished cell needs."""
    if cell.phase == "inference":
        return False
    pending = [c for c in cells if c.key not in finished]
    made = cell.variant
    return any(c.variant == made or c.parent == made for c in pending)


class _Upstream(WattprintError):
    def __init__(self, variant: str, err: BaseException) -> None:
        super().__init__(f"needs variant {variant!r}, which failed: {_error_text(err)}")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name) or "model"


def _base(ctx: _Context, spec: ModelConfig, group: _Group,
          models: dict[str, Model | BaseException], train: Dataset) -> Model:
    """The model as configured: loaded from its file or hub id (recipes come from training)."""
    if spec.source is not None:
        made = models.get(BASE)
        if made is None:  # training was finished in an earlier run: train again, unrecorded
            return _train_model(ctx, spec, train, group.dataset.seed)[0]
        if isinstance(made, BaseException):
            raise _Upstream(BASE, made)
        return made
    from ..workloads.registry import load_model

    options = dict(spec.options or {})
    if spec.hf is not None:
        return load_model(spec.hf, task=spec.task, trust=spec.trust, **options)
    assert spec.path is not None
    return load_model(spec.path, task=spec.task, trust=spec.trust, **options)


def _train_model(ctx: _Context, spec: ModelConfig, train: Dataset,
                 seed: int = 0) -> tuple[Model, dict[str, Any]]:
    from ..workloads.harness import measure_training
    from .recipes import make_recipe

    assert spec.source is not None
    recipe = make_recipe(spec.source, train, seed=seed, options=dict(spec.options or {}) or None)
    epochs = spec.epochs or recipe.epochs
    result = measure_training(recipe.model, train, epochs, meter=ctx.meter,
                              predict_after=max(2, min(epochs, 2)),
                              model_name=spec.name, **recipe.train_options)
    return recipe.model, result


def _train(ctx: _Context, cell: Cell, spec: ModelConfig, train: Dataset, task: str,
           seed: int) -> Model:
    with _window(ctx, cell) as box:
        model, result = _train_model(ctx, spec, train, seed)
    m = box[0]
    _save_trained(model, ctx.workdir / _safe(spec.name) / _safe(cell.dataset), train)
    record = _base_record(ctx, cell, task)
    record.update(_measurement_fields(m))
    record.update(_model_fields(model))
    record.update(
        status="ok", num_samples=len(train) * result["num_epochs"],
        metrics={"final_loss": result["epochs"][-1]["loss"], "epochs": result["num_epochs"]},
        extra={"epochs": result["epochs"], "source": spec.source},
    )
    _write(ctx, cell, record)
    return model


def _save_trained(model: Model, out_dir: Path, train: Dataset) -> None:
    """Save a trained recipe in a safe format, so its size is a size on disk like its variants'.

    torch recipes become TorchScript (``fp32.pt``), scikit-learn ones skops (``fp32.skops``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if model.framework == "torch":
        from ..optimize._torch import batch, save_torchscript
        from ..workloads.loaders.torch_loader import TorchModel

        assert isinstance(model, TorchModel)
        path = out_dir / f"{BASE}.pt"
        save_torchscript(model.module, path, batch(model, np.asarray(train.x[:1])))
    elif model.framework == "sklearn":
        import skops.io

        path = out_dir / f"{BASE}.skops"
        skops.io.dump(getattr(model, "estimator"), path)  # noqa: B009
    else:
        return
    model.path = path
    model.size_bytes = path.stat().st_size


@contextlib.contextmanager
def _window(ctx: _Context, cell: Cell) -> Iterator[list[Measurement]]:
    """A window around one cell's work; the measurement is in the list after the block."""
    box: list[Measurement] = []
    name = f"cell:{cell.key}"
    ctx.meter.begin(name)
    try:
        yield box
    except BaseException:
        with contextlib.suppress(WattprintError):
            ctx.meter.end(name)
        raise
    box.append(ctx.meter.end(name))


def _optimize(ctx: _Context, cell: Cell, spec: ModelConfig, parent: Model, train: Dataset,
              evaluate: Dataset, out_dir: Path, task: str) -> Model:
    from .. import optimize

    out_dir.mkdir(parents=True, exist_ok=True)
    if cell.variant == ONNX:
        result = optimize.export_onnx(parent, out_dir / f"{_safe(spec.name)}.onnx",
                                      sample=evaluate.x[:1], meter=ctx.meter)
    elif cell.variant.startswith("pruned-"):
        assert spec.pruning is not None
        result = optimize.prune(parent, spec.pruning.method, spec.pruning.amount,
                                out_dir=out_dir, meter=ctx.meter)
    else:
        assert spec.quantization is not None
        q = spec.quantization
        calibration = train.sample(min(len(train), 128), seed=0)
        result = optimize.quantize(parent, q.method, target_dtype=q.target_dtype,
                                   calibration=calibration, out_dir=out_dir, meter=ctx.meter)
    m = result.measurement
    record = _base_record(ctx, cell, task)
    record.update(_measurement_fields(m))
    record.update(_model_fields(result.model))
    record.update(status="ok", size_bytes=result.size_bytes,
                  num_parameters=result.num_parameters,
                  effective_parameters=result.effective_parameters,
                  optimization={"kind": result.kind, "method": result.method,
                                "target_dtype": result.target_dtype, "amount": result.amount,
                                "sparsity": result.sparsity, "path": str(result.path)})
    _write(ctx, cell, record)
    return result.model


def _infer(ctx: _Context, cell: Cell, spec: ModelConfig, model: Model, evaluate: Dataset,
           task: str) -> None:
    from ..workloads.harness import measure_energy

    mon = ctx.config.monitoring
    num = mon.num_samples or len(evaluate)
    with ctx.meter.trace(mon.frequency_hz) as timeline:
        result = measure_energy(model.predict, evaluate, spec.name, task,
                                hardware=ctx.hardware, num_samples=num,
                                batch_size=mon.batch_size, warmup=mon.warmup, meter=ctx.meter,
                                progress=False)
    record = _base_record(ctx, cell, task)
    metrics = {k: result[k] for k in ("accuracy", "f1_macro", "rmse", "mae", "tokens_generated",
                                      "tokens_per_second") if k in result}
    started = _iso_to_unix(result["timestamp"])
    comps = {k: {"energy_j": c["energy_j"], "source": c["source"], "measured": c["measured"]}
             for k, c in result["components"].items()}
    record.update(
        status="ok", started_at=started, ended_at=started + result["duration_seconds"],
        duration_s=result["duration_seconds"], energy_j=result["energy_j"],
        energy_kwh=result["energy_kwh"], co2_g=result["co2_kg"] * 1000.0,
        water_l=result["water_l"], intensity_g_per_kwh=result["carbon_intensity_g_per_kwh"],
        intensity_source=result["carbon_intensity_source"],
        provenance=provenance(comps), components=comps,
        num_samples=num, samples_per_second=result["samples_per_second"],
        kwh_per_1000_queries=result["kwh_per_1000_queries"], metrics=metrics,
        extra={"batch_size": mon.batch_size, "partial": result["partial"],
               "errors": result["errors"]},
        **_model_fields(model),
    )
    _write(ctx, cell, record, timeline)


def _iso_to_unix(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _sweep_id(config: BenchConfig, sink: ResultSink, resume: bool) -> str:
    """The config's hash for its first sweep, ``<hash>-2``, ``-3``... for later fresh runs;
    with ``resume``, the latest sweep of this config."""
    from .config import config_hash

    base = config_hash(config)
    ids = [s["id"] for s in sink.sweeps()
           if s["id"] == base or str(s["id"]).startswith(base + "-")]
    if not ids:
        return base

    def number(sweep: str) -> int:
        tail = sweep[len(base) + 1:]
        return int(tail) if tail.isdigit() else 1

    latest = max(ids, key=number)
    return latest if resume else f"{base}-{number(latest) + 1}"


def run_sweep(
    config: BenchConfig,
    sink: ResultSink,
    *,
    resume: bool = False,
    meter: EnergyMeter | None = None,
    on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
    progress: bool | None = None,
) -> str:
    """Run every cell of ``config`` not yet finished and write each to ``sink``.

    Returns the sweep id. With ``resume``, the latest sweep of this config carries on: its
    finished cells are skipped. Ctrl-C stops between cells and raises
    :class:`SweepInterrupted` after marking the sweep interrupted.
    """
    from ..meter import EnergyMeter

    sweep_id = _sweep_id(config, sink, resume)
    groups = plan_cells(config)
    total = sum(len(g.cells) for g in groups)
    own_meter = meter is None
    if meter is None:
        loc = config.location
        meter = EnergyMeter(sample_hz=config.monitoring.frequency_hz, country=loc.country,
                            zone=loc.zone, cloud_region=loc.cloud_region,
                            carbon_intensity_g_per_kwh=loc.carbon_intensity_g_per_kwh,
                            pue=loc.pue, wue_l_per_kwh=loc.wue_l_per_kwh)
    profile = config.hardware.device_profile
    hardware = (detect_hardware(meter.sensors) if profile.lower() == "auto"
                else resolve_hardware(profile).name)
    sink.begin_sweep(sweep_id, project=config.project, config=config.to_dict(),
                     host=host_info())
    ctx = _Context(config, sink, sweep_id, meter, hardware,
                   Path(config.output.output_dir) / sweep_id, sink.finished_cells(sweep_id),
                   on_cell=on_cell)
    done = 0
    try:
        if config.monitoring.idle_baseline_s > 0:
            meter.calibrate_idle(config.monitoring.idle_baseline_s)
        with _cell_progress(progress, total) as advance:
            def step(n: int) -> None:
                nonlocal done
                done += n
                advance(n)

            data: dict[str, tuple[Dataset, Dataset] | BaseException] = {}
            for group in groups:
                key = group.dataset.name
                if key not in data:
                    try:
                        data[key] = _load_data(group.dataset)
                    except Exception as err:
                        data[key] = err
                _run_group(ctx, group, data[key], step)
    except KeyboardInterrupt:
        sink.end_sweep(sweep_id, "interrupted")
        raise SweepInterrupted(sweep_id, done, total) from None
    finally:
        if own_meter:
            meter.close()
    sink.end_sweep(sweep_id, "finished")
    return sweep_id


@contextlib.contextmanager
def _cell_progress(enabled: bool | None, total: int) -> Iterator[Callable[[int], None]]:
    import sys

    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("cells", total=total)
        yield lambda n: bar.advance(task, n)
