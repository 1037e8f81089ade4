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

Image folders. A model loaded from a file or the hub whose input is an image takes an image
folder's pixels as ``model.predict(folder)`` takes its files: made into its input once per
group by its image spec (:func:`wattprint.workloads.images.pixels_to_batch`); its variants,
ONNX export sample and calibration samples take the same batch. Recipes take the raw pixels.

Isolation. The cells of one model on one dataset (a *group*: they share the model and its
variants in memory) run in a worker process forked from the sweep's process, so the worker
starts with the meter (its idle baseline calibrated), the config, the loaded data and any
format registered with :func:`wattprint.register_format`. The worker sends each finished
record, and its power samples, back through a pipe; the sweep's process writes them to the sink
and calls ``on_cell``, so the store never crosses a fork. The worker says when each cell starts
and ends outside the cell's measured window, so the pipe adds nothing to a measured figure.

* A cell that runs longer than ``monitoring.cell_timeout_s`` is stopped: its worker is killed
  and the cell is stored as failed (``timed out after 1800 s (monitoring.cell_timeout_s)``).
* A worker that dies (the out-of-memory killer, a crash in native code, ``os._exit``) fails its
  current cell with the reason (``the worker process was killed by SIGKILL (out of memory?)``).

Either way a new worker runs the group's remaining cells; a stopped cell is not tried again in
this run, and the cells that need the variant it would have made fail naming it. Workers lead
their own process groups, so a terminal's Ctrl-C reaches only the sweep's process, which kills
them. Modules a worker imported from the frameworks are imported by the sweep's process in
turn, between groups, so that the next workers start with them.

Where ``os.fork`` is missing (Windows), or the sweep's process has initialised CUDA (a forked
child cannot use it), cells run in the sweep's process itself: without time limits, and a
dying cell takes the sweep with it.

On a Ray cluster (``execution.backend: ray``), a group runs as a Ray task instead of a forked
worker, on a node Ray chooses, one at a time per node; the records come back to the sweep's
process, which stores them as here (:mod:`wattprint.sweep.ray_executor`).

Signals. Ctrl-C (SIGINT) and SIGTERM stop the sweep alike: the worker is killed, the cell it
was running is not stored, the sweep is marked ``interrupted`` and :class:`SweepInterrupted`
says which signal it was; the finished cells are kept, and ``--resume`` runs the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._cgroup import affinity_cpus, asked_threads, cpu_limit, default_threads, model_threads
from .._log import get_logger
from ..errors import ConfigError, ModelError, WattprintError
from ..record import RunRecord
from ..sensors.hardware import detect_hardware, resolve_hardware
from ..workloads.datasets import Dataset, load_dataset
from ._worker import CAN_FORK, Worker, WorkerGone

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..measurement import Measurement
    from ..meter import EnergyMeter
    from ..workloads.model import Model
    from .config import BenchConfig, DatasetConfig, ModelConfig

__all__ = ["Cell", "ResultSink", "SweepInterrupted", "plan_cells", "run_sweep"]

#: The variant name of a model as loaded or trained.
BASE = "fp32"
#: The variant name of the ONNX export.
ONNX = "onnx"

log = get_logger(__name__)


class ResultSink(Protocol):
    """Where the runner writes: :class:`wattprint.store.Store` is one."""

    def claim_sweep(self, base: str, *, project: str, config: dict[str, Any],
                    host: dict[str, Any] | None = None, resume: bool = False) -> str: ...

    def end_sweep(self, sweep_id: str, status: str) -> None: ...

    def finished_cells(self, sweep_id: str) -> set[str]: ...

    def write_run(self, record: RunRecord,
                  samples: Any = None) -> int: ...

    def runs(self, *, sweep_id: str | None = None, task: str | None = None,
             hardware: str | None = None, status: str | None = None,
             phase: str | None = None) -> list[RunRecord]: ...

    def sweeps(self) -> list[dict[str, Any]]: ...


class SweepInterrupted(WattprintError):
    """Ctrl-C (SIGINT) or SIGTERM stopped a sweep; every cell that finished before it is stored.

    ``signal`` is the signal that stopped it; ``exit_code`` is what a command stopped by it exits
    with, as a shell reports a process killed by it: 128 + its number (130 for Ctrl-C, 143 for
    SIGTERM).
    """

    def __init__(self, sweep_id: str, done: int, total: int,
                 signum: int = signal.SIGINT) -> None:
        self.signal = signal.Signals(signum)
        name = "Ctrl-C" if self.signal is signal.SIGINT else self.signal.name
        super().__init__(f"sweep {sweep_id} interrupted by {name} after {done} of {total} "
                         "cells; the finished cells are stored; run again with --resume to "
                         "finish it")
        self.sweep_id = sweep_id
        self.done = done
        self.total = total

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal)


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
    #: The model, earlier in the sweep, whose training on this dataset this one's would
    #: repeat (the same torch recipe, options and epochs): its trained weights are used, and
    #: this model has no training cell of its own.
    trained_by: str | None = None


def _variants(model: ModelConfig, config: BenchConfig | None = None,
              ) -> list[tuple[str, str | None, str]]:
    """``(variant, parent, step)`` for each variant of a model; step ``"base"`` for itself.

    Besides the model's own quantization, ``monitoring.enable_quantization_analysis`` adds
    its int8 (dynamic) and fp16 variants and ``hardware.precision`` float16 / bfloat16 its
    fp16 / bf16 one, each where the framework the model is deployed in takes the method."""
    from ..optimize.quantization import METHODS

    out: list[tuple[str, str | None, str]] = [(BASE, None, "base")]
    deployed = BASE
    if model.export == "onnx":
        out.append((ONNX, BASE, "export"))
        deployed = ONNX
    q = model.quantization
    if q is not None and q.enabled:
        out.append((_quant_name(q.method, q.target_dtype), deployed, "quantize"))
    if config is not None:
        from .config import PRECISIONS

        wanted = [("dynamic", "int8"), ("fp16", "fp16")] * (
            config.monitoring.enable_quantization_analysis)
        precision = PRECISIONS[config.hardware.precision]
        if precision is not None:
            wanted.append((precision, precision))
        framework = "onnx" if deployed == ONNX else model.framework()
        for method, target in wanted:
            name = _quant_name(method, target)
            if method in METHODS.get(framework or "", ()) and name not in {v for v, _, _ in out}:
                out.append((name, deployed, "quantize"))
    p = model.pruning
    if p is not None and p.enabled:
        out.append((f"pruned-{p.method}-{p.amount:g}", BASE, "prune"))
    return out


#: Quantization methods whose variant is named as the method: ``method -> target dtype``.
_NAMED_AS_METHOD = {"fp16": "fp16", "bf16": "bf16", "int8-weight-only": "int8"}


def _quant_name(method: str, target: str | None) -> str:
    if method in _NAMED_AS_METHOD:
        return method
    return f"{target or 'int8'}-{method}"


def _quant_of(variant: str) -> tuple[str, str]:
    """``(method, target dtype)`` of a quantized variant's name (:func:`_quant_name`)."""
    if variant in _NAMED_AS_METHOD:
        return variant, _NAMED_AS_METHOD[variant]
    target, _, method = variant.partition("-")
    return method, target


def _training_key(model: ModelConfig) -> str | None:
    """What makes a torch recipe's training what it is (its source, options and epochs);
    None for anything else (scikit-learn recipes train in moments, files need none)."""
    if model.source is None or not model.source.startswith("torch:"):
        return None
    return json.dumps([model.source, _loader_options(model), model.epochs], sort_keys=True,
                      default=str)


def _loader_options(spec: ModelConfig) -> dict[str, Any]:
    """``spec``'s options as its loader or recipe takes them: a torch or transformers
    model's ``threads`` is the sweep's, set around its cells (:func:`_run_group`), and not
    what makes its training what it is; an ONNX model's loader takes its own."""
    from .config import THREADS_OF_THE_SWEEP

    options = dict(spec.options or {})
    if spec.framework() in THREADS_OF_THE_SWEEP:
        options.pop("threads", None)
    return options


def plan_cells(config: BenchConfig) -> list[_Group]:
    """Every cell of the sweep, grouped by model and dataset, in the order they run.

    A model whose torch recipe, options and epochs repeat those of a model before it (the
    demo's ``cnn`` and ``cnn-onnx``) is not trained again: it has no training cell and takes
    the earlier model's trained weights (:attr:`_Group.trained_by`)."""
    groups: list[_Group] = []
    reps = config.monitoring.repetitions
    for dataset in config.datasets:
        trained: dict[str, str] = {}
        for model in config.models:
            group = _Group(model, dataset)
            key = _training_key(model)
            if key is not None and key in trained:
                group.trained_by = trained[key]
            elif model.source is not None:
                group.cells.append(Cell(model.name, BASE, dataset.name, "training"))
                if key is not None:
                    trained[key] = model.name
            for variant, parent, step in _variants(model, config):
                if step != "base":
                    group.cells.append(Cell(model.name, variant, dataset.name, "optimization",
                                            parent=parent))
                group.cells.extend(Cell(model.name, variant, dataset.name, "inference", rep,
                                        parent=parent) for rep in range(reps))
            groups.append(group)
    return groups


def host_info() -> dict[str, Any]:
    """The machine a sweep ran on (``cpu_limit``: the CPUs' worth of time its control groups
    allow the sweep, None where none is set; ``omp_num_threads``: the threads
    ``OMP_NUM_THREADS`` asked torch and onnxruntime for, None where it asked none; see
    :mod:`wattprint._cgroup`)."""
    from .._version import __version__

    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu_limit": cpu_limit(), "omp_num_threads": asked_threads(),
            "processor": platform.processor() or platform.machine(), "wattprint": __version__}


def _no_progress(n: int) -> None:
    pass


def _no_start(cell: Cell) -> None:
    pass


@dataclass
class _Context:
    config: BenchConfig
    sink: ResultSink
    sweep_id: str
    meter: EnergyMeter
    hardware: str
    workdir: Path
    #: Keys of the cells stored ok: in an earlier run of this sweep, or in this one.
    finished: set[str]
    written: int = 0
    failed: int = 0
    on_cell: Callable[[Cell, RunRecord], None] | None = None
    #: Advances the progress display by ``n`` cells (0: only refreshes it).
    advance: Callable[[int], None] = _no_progress
    #: Called as a cell starts, outside its measured window (a worker tells the parent).
    started: Callable[[Cell], None] = _no_start
    #: In a worker: sends a record to the parent, which stores it. None: store it here.
    emit: Callable[[Cell, RunRecord, Any], None] | None = None
    #: Cells that failed in this run, with why: not tried again by a later worker, and the
    #: variants they would have made count as failed.
    stopped: dict[str, str] = field(default_factory=dict)
    #: Modules workers imported that the sweep's process has not imported yet.
    imported: list[str] = field(default_factory=list)
    #: Whether groups run in worker processes.
    isolate: bool = False
    #: Whether the tests of code tasks run the model's completions (``pass_rate``).
    run_generated_code: bool = False


def _cell_fields(ctx: _Context, cell: Cell, task: str) -> dict[str, Any]:
    """What names a cell's run: the same for every record of the cell, ok or failed."""
    return {
        "sweep_id": ctx.sweep_id, "cell_key": cell.key, "model_name": cell.model,
        "variant": cell.variant, "parent": cell.parent, "dataset": cell.dataset,
        "repetition": cell.repetition, "phase": cell.phase, "task": task,
        "hardware": ctx.hardware,
    }


def _model_fields(model: Model) -> dict[str, Any]:
    from ..optimize import effective_parameters
    from ..workloads.loaders.onnx_loader import OnnxModel

    try:
        effective = effective_parameters(model)
    except (ConfigError, NotImplementedError):
        effective = model.num_parameters
    fields = {"framework": model.framework, "num_parameters": model.num_parameters,
              "effective_parameters": effective, "size_bytes": model.size_bytes,
              "dtype": model.dtype}
    if model.framework in ("torch", "transformers") and "torch" in sys.modules:
        fields["host"] = {"torch_threads": sys.modules["torch"].get_num_threads()}
    elif isinstance(model, OnnxModel):  # its session's, as the model's loader set them
        threads = model.session.get_session_options().intra_op_num_threads
        fields["host"] = {"onnx_threads": threads}
    elif model.framework == "sklearn":
        fields["host"] = _thread_pools()
    elif model.framework in _TENSORFLOW:
        backend = _runs_on(model.framework)
        if backend == "tensorflow" and "tensorflow" in sys.modules:
            threads = sys.modules["tensorflow"].config.threading
            fields["host"] = {"tf_threads": threads.get_intra_op_parallelism_threads()}
        elif backend == "torch" and "torch" in sys.modules:
            fields["host"] = {"torch_threads": sys.modules["torch"].get_num_threads()}
    return fields


#: Frameworks whose models run on TensorFlow (Keras 3 on its default backend).
_TENSORFLOW = frozenset({"keras", "tensorflow"})


def _runs_on(framework: str) -> str | None:
    """What a model of ``framework`` (one of :data:`_TENSORFLOW`) runs on: ``tensorflow``
    for a SavedModel; for a Keras model, the backend Keras runs on (``tensorflow``,
    ``torch``, ``jax``), None where Keras cannot be imported (the model's loader then says
    why)."""
    if framework != "keras":
        return "tensorflow"
    try:
        import keras
    except ImportError:
        return None
    return str(keras.backend.backend())


def _tensorflow_threads(name: str, framework: str | None) -> None:
    """Before a Keras or TensorFlow model's first cell, TensorFlow's intra-op threads set to
    :func:`default_threads`, as torch's are (TensorFlow otherwise takes every logical CPU it
    sees, whatever the CPU limit); a Keras model on the torch backend takes torch's
    (:func:`_torch_threads`). TensorFlow fixes its threads when it first runs: a sweep's
    worker, made for each model, imports it afresh; where it ran before in the same process
    (a sweep without a worker per model, a Ray worker, which Ray reuses from task to task),
    the model's cells run on the threads it took then, with a warning. Each run records
    them (``host.tf_threads``; 0 is TensorFlow's own choice). ``name`` and ``framework``
    are the model's (:meth:`ModelConfig.framework`)."""
    if framework not in _TENSORFLOW:
        return
    backend = _runs_on(framework)
    if backend == "torch":
        _torch_threads()
        return
    if backend != "tensorflow":
        return
    try:
        import tensorflow as tf
    except ImportError:  # the model's loader says so, for each of its cells
        return
    threading = tf.config.threading
    threads, before = default_threads(), threading.get_intra_op_parallelism_threads()
    if before == threads:
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow has run in this process: its threads are fixed
        log.warning("model %r runs on the %s TensorFlow took when it first ran in this "
                    "process, not %d: it takes its threads once", name,
                    f"{before} threads" if before else "threads of its own choice", threads)


@contextlib.contextmanager
def _sklearn_pools(framework: str | None) -> Iterator[None]:
    """While in it, a scikit-learn model's cells run the BLAS and OpenMP pools of this
    process (NumPy's and SciPy's OpenBLAS, scikit-learn's OpenMP, all loaded by ``import
    sklearn``) on :func:`default_threads`, as torch runs on them: the model's ``threads``,
    else ``OMP_NUM_THREADS``, else the cores the process is allotted within its CPU limit
    (BLAS on no more than the CPUs it may run on, as OpenBLAS caps itself). After it, the
    pools are as they were. Any other ``framework`` (:meth:`ModelConfig.framework`): nothing
    changes."""
    limits = _pool_limits() if framework == "sklearn" else None
    if limits is None:
        yield
        return
    threads = default_threads()
    with limits(limits={"blas": min(threads, affinity_cpus()), "openmp": threads}):
        yield


def _pool_limits() -> Callable[..., Any] | None:
    """threadpoolctl's ``threadpool_limits``, scikit-learn's pools loaded first (``import
    sklearn`` loads them); None where either is missing: each cell then says so as it loads
    its model."""
    try:
        import sklearn  # noqa: F401 - loads the pools to size
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    limits: Callable[..., Any] = threadpool_limits
    return limits


def _thread_pools() -> dict[str, int]:
    """The threads of the BLAS and OpenMP pools loaded in this process, which a
    scikit-learn model runs on (NumPy's and SciPy's OpenBLAS, scikit-learn's OpenMP), as
    threadpoolctl (a dependency of scikit-learn) reads them now: ``blas_threads`` and
    ``openmp_threads``, the most threads a pool of that kind runs; a kind with no pool loaded
    is left out. A pool torch ships in its own folder (its libgomp, loaded with torch, which
    skops imports when it lists scikit-learn's estimators) is torch's, not the model's: left
    out. About a millisecond, after the run's window."""
    import warnings

    from threadpoolctl import ThreadpoolController

    torch = sys.modules.get("torch")
    torch_file = getattr(torch, "__file__", None)
    torch_dir = None if torch_file is None else os.path.realpath(os.path.dirname(torch_file))
    found: dict[str, int] = {}
    with warnings.catch_warnings():  # its note on two OpenMP runtimes, once a run: not here
        warnings.simplefilter("ignore")
        pools = ThreadpoolController().info()
    for pool in pools:
        if torch_dir is not None and os.path.realpath(pool["filepath"]).startswith(
                torch_dir + os.sep):
            continue
        key = f"{pool['user_api']}_threads"
        found[key] = max(found.get(key, 0), int(pool["num_threads"]))
    return dict(sorted(found.items()))  # in one order, whatever order the pools loaded in


def _torch_threads() -> int:
    """Set torch's intra-op threads to :func:`default_threads`: those the model whose cells
    run asks for (its ``threads`` option), else those ``OMP_NUM_THREADS`` asks for, else the
    cores the process is allotted (torch otherwise takes every logical CPU of the machine,
    however few it is allotted); return the count, which each torch run records
    (``host.torch_threads``)."""
    import torch

    threads = default_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _error_text(err: BaseException) -> str:
    if isinstance(err, (_Stopped, _Upstream)):
        return str(err)  # says itself what failed
    if isinstance(err, WattprintError):
        return f"{type(err).__name__}: {err}"
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def _write(ctx: _Context, cell: Cell, record: RunRecord,
           samples: list[tuple[float, str, float]] | None = None) -> None:
    if cell.key in ctx.finished and record.ok:
        return  # done in an earlier run of this sweep: --resume keeps that row
    if ctx.emit is not None:
        ctx.emit(cell, record, samples)  # in a worker: the sweep's process stores it
    else:
        _store(ctx, cell, record, samples)


def _store(ctx: _Context, cell: Cell, record: RunRecord, samples: Any = None) -> None:
    """Write one cell's record to the sink (in the sweep's process, never in a worker)."""
    ctx.sink.write_run(record, samples)
    ctx.written += 1
    if record.ok:
        ctx.finished.add(cell.key)
    else:
        ctx.failed += 1
        ctx.stopped[cell.key] = str(record.error)
    if ctx.on_cell is not None:
        ctx.on_cell(cell, record)
    ctx.advance(1)


def _fail(ctx: _Context, cell: Cell, task: str, error: str) -> None:
    site = ctx.meter.footprint_model
    _write(ctx, cell, RunRecord(
        **_cell_fields(ctx, cell, task), status="failed", error=error, ended_at=time.time(),
        location=site.location, pue=site.pue, wue_l_per_kwh=site.wue_l_per_kwh, tier=site.tier,
        water_intensity_l_per_kwh=site.water_intensity_l_per_kwh))


def _load_data(spec: DatasetConfig, allow_network: bool = False) -> tuple[Dataset, Dataset]:
    """``(train, eval)``: the train split, and the split that inference is measured on.

    A Hugging Face dataset is read from the local cache (from the hub with
    ``allow_network``): its ``split`` (else the first of ``fallback_splits`` it has) is
    measured, and also serves as the train part (the calibration samples of a static
    quantization)."""
    if spec.task == "code-generation":
        tasks = _code_tasks(spec)
        prompts = Dataset(spec.name, "code-generation", [t.prompt for t in tasks])
        return prompts, prompts
    if spec.hub:
        from ..errors import DatasetError
        from ..workloads.hf_datasets import load_hf_dataset

        error: DatasetError | None = None
        for split in (spec.split, *spec.fallback_splits):
            try:
                chosen = load_hf_dataset(
                    spec.name, config=spec.config, split=split, text_field=spec.text_field,
                    label_field=spec.label_field, limit=spec.limit, seed=spec.seed,
                    task=spec.task, allow_network=allow_network)
            except DatasetError as err:
                error = err if error is None else error
                continue
            return chosen, chosen
        assert error is not None
        raise error
    full = load_dataset(spec.name, task=spec.task)
    train, test = full.split(spec.test_size, seed=spec.seed)
    chosen = {"train": train, "test": test, "all": full}[spec.split]
    if spec.limit is not None:
        chosen = chosen.sample(spec.limit, seed=spec.seed)
    return train, chosen


def _code_tasks(spec: DatasetConfig) -> list[Any]:
    """The code tasks of a ``code-generation`` dataset, the first ``limit`` of them."""
    from ..workloads.codegen import load_code_tasks
    from .config import CODE_SAMPLE

    tasks = load_code_tasks(None if spec.name == CODE_SAMPLE else spec.name)
    return tasks if spec.limit is None else tasks[:spec.limit]


def _pending(ctx: _Context, group: _Group) -> list[Cell]:
    """The group's cells neither stored ok nor failed in this run."""
    return [c for c in group.cells if c.key not in ctx.finished and c.key not in ctx.stopped]


def _run(ctx: _Context, group: _Group, data: tuple[Dataset, Dataset] | BaseException) -> None:
    """Run a group's unfinished cells: in worker processes where it can, else here."""
    spec, dspec = group.model, group.dataset
    task = spec.task or dspec.task or (data[1].task if isinstance(data, tuple) else "unknown")
    todo = _pending(ctx, group)
    ctx.advance(len(group.cells) - len(todo))
    if not todo:
        return
    if isinstance(data, BaseException):
        for cell in todo:
            _fail(ctx, cell, task, f"dataset {dspec.name!r}: {_error_text(data)}")
        return
    if ctx.isolate and _cuda_initialised():
        log.warning("this process has initialised CUDA, which a forked worker cannot use: "
                    "cells run in this process, without monitoring.cell_timeout_s")
        ctx.isolate = False
    if ctx.isolate:
        _run_isolated(ctx, group, data, task)
    else:
        _run_group(ctx, group, data, task)


def _run_group(ctx: _Context, group: _Group, data: tuple[Dataset, Dataset], task: str) -> None:
    """Run the group's cells in order, here, writing each as it ends."""
    spec, dspec = group.model, group.dataset
    models: dict[str, Model | BaseException] = {
        c.variant: _Stopped(ctx.stopped[c.key]) for c in group.cells
        if c.key in ctx.stopped and c.phase != "inference"}
    train, evaluate = data
    out_dir = ctx.workdir / _safe(spec.name) / _safe(dspec.name)

    def base() -> Model:
        """The base model; a loaded one also turns the data into its input, once."""
        nonlocal train, evaluate
        model = _base(ctx, spec, group, models, data[0])
        if spec.source is None:
            train, evaluate = _as_model_input(model, data)
        return model

    # the threads the model asks for (its ``threads`` option) are its cells' and its
    # variants': torch's, and the ONNX sessions' that name none (see _torch_threads), or a
    # scikit-learn model's pools', or TensorFlow's for a Keras or TensorFlow model
    framework = spec.framework()  # as far as can be told before loading; None: not known
    with model_threads((spec.options or {}).get("threads")), _sklearn_pools(framework):
        _tensorflow_threads(spec.name, framework)
        for cell in group.cells:
            if cell.key in ctx.stopped:
                continue  # failed earlier in this run, in a worker that was stopped since
            done = cell.key in ctx.finished
            needs_model = cell.phase != "inference" or not done
            if done and not _needed_later(cell, group.cells, ctx.finished.union(ctx.stopped)):
                continue
            ctx.started(cell)
            try:
                if cell.phase == "training":  # stored in an earlier run: its saved weights
                    models[BASE] = base() if done else _train(ctx, cell, spec, train, task,
                                                              dspec.seed)
                elif cell.phase == "optimization":
                    parent = models.get(cell.parent or BASE)
                    if parent is None:
                        parent = models[cell.parent or BASE] = base()
                    if isinstance(parent, BaseException):
                        raise _Upstream(cell.parent or BASE, parent)
                    models[cell.variant] = _optimize(ctx, cell, spec, parent, train, evaluate,
                                                     out_dir, task)
                elif needs_model:
                    model = models.get(cell.variant)
                    if model is None and cell.variant == BASE:
                        model = models[BASE] = base()
                    if model is None:
                        raise ConfigError(f"variant {cell.variant!r} was not made")
                    if isinstance(model, BaseException):
                        raise _Upstream(cell.variant, model)
                    if cell.variant == BASE:
                        model = _as_saved(ctx, model, models, out_dir, evaluate)
                    _infer(ctx, cell, spec, model, evaluate, task, dspec)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # a failing cell is stored, the sweep goes on
                if cell.phase in ("training", "optimization"):
                    models[cell.variant] = err
                if not done:
                    _fail(ctx, cell, task, _error_text(err))


#: Where :func:`_run_group` keeps a torch model's base as it is measured (its TorchScript).
_SAVED_BASE = f"{BASE}:torchscript"


def _as_saved(ctx: _Context, model: Model, models: dict[str, Model | BaseException],
              out_dir: Path, evaluate: Dataset) -> Model:
    """A torch model's base as its inference is measured: as TorchScript, the form each of
    its variants is saved in and loaded back from, so that a variant's saving is the
    optimization's own, not partly TorchScript's over eager torch (its Python dispatch).

    A recipe's TorchScript is the file the sweep saved it as (``fp32.pt``, see
    :func:`_save_trained`); an eager model loaded from a file (a state_dict and its
    ``model_class``) is scripted into the sweep's folder (traced on the first sample where
    scripting fails); TorchScript and other frameworks run as they are. A module that can be
    neither scripted nor traced runs eager: its runs say so (``extra.torchscript``), and its
    variants, which need TorchScript, fail saying why. Made once; the eager model stays the
    parent its variants are made from (they need its module)."""
    from ..workloads.loaders.torch_loader import TorchModel

    if not isinstance(model, TorchModel):
        return model
    import torch

    if isinstance(model.module, torch.jit.ScriptModule):
        return model
    made = models.get(_SAVED_BASE)
    if isinstance(made, TorchModel):
        return made
    from ..optimize import _torch

    path = model.path
    if (path is None or path.name != f"{BASE}.pt" or not path.is_file()
            or not path.is_relative_to(ctx.workdir)):  # not the sweep's own TorchScript
        path = out_dir / f"{BASE}.pt"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            _torch.save_torchscript(model.module, path,
                                    _torch.batch(model, np.asarray(evaluate.x[:1])))
        except (ModelError, ValueError, TypeError):  # neither scripted nor traced: eager
            models[_SAVED_BASE] = model
            return model
    saved = _torch.reload(path, model, device=str(model.device),
                          input_dtype=_torch.dtype_name(model.input_dtype))
    saved.path, saved.size_bytes, saved.notes = model.path, model.size_bytes, model.notes
    models[_SAVED_BASE] = saved
    return saved


def _needed_later(cell: Cell, cells: list[Cell], settled: set[str]) -> bool:
    """Whether a finished training or optimization cell makes a model an unsettled cell needs."""
    if cell.phase == "inference":
        return False
    pending = [c for c in cells if c.key not in settled]
    made = cell.variant
    return any(c.variant == made or c.parent == made for c in pending)


class _Upstream(WattprintError):
    def __init__(self, variant: str, err: BaseException) -> None:
        super().__init__(f"needs variant {variant!r}, which failed: {_error_text(err)}")


class _Stopped(WattprintError):
    """A cell that failed earlier in this run, as the variant it would have made."""


# -- isolation: a worker process per group ----------------------------------------------------

#: Frameworks whose modules a worker imported are imported by the sweep's process too, so
#: that later workers start with them. Frameworks whose runtime does not survive a fork once
#: imported (TensorFlow, JAX) stay out: each worker imports those itself.
_PRELOADED = frozenset({"wattprint", "numpy", "scipy", "sklearn", "skops", "joblib",
                       "threadpoolctl", "torch", "torchvision", "onnx", "onnxruntime",
                       "onnxscript", "safetensors"})


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_initialized())


def _run_isolated(ctx: _Context, group: _Group, data: tuple[Dataset, Dataset],
                  task: str) -> None:
    """Run the group's pending cells in workers: a new one after each that stopped."""
    limit_s = ctx.config.monitoring.cell_timeout_s
    while _pending(ctx, group):
        _preload(ctx)
        worker = Worker(functools.partial(_work, ctx, group, data, task))
        try:
            outcome = _follow(ctx, group, task, worker, limit_s)
        finally:
            worker.stop()  # a no-op for a worker that exited
        if outcome == "done":
            return
        if outcome == "no-fork":
            log.warning("CUDA cannot be used in a forked worker here (it was initialised "
                        "before the fork): cells run in this process, without "
                        "monitoring.cell_timeout_s")
            ctx.isolate = False
            _run_group(ctx, group, data, task)
            return


def _follow(ctx: _Context, group: _Group, task: str, worker: Worker, limit_s: float) -> str:
    """Store what the worker sends until it is done (``"done"``), stopped (``"stopped"``), or
    cannot use CUDA (``"no-fork"``)."""
    current: Cell | None = None
    stored = 0
    while True:
        try:
            message = worker.receive(limit_s, tick=lambda: ctx.advance(0))
        except WorkerGone as gone:
            _lost(ctx, group, task, current, stored, gone.reason)
            return "stopped"
        if message is None:
            worker.stop()
            _lost(ctx, group, task, current, stored,
                  f"timed out after {limit_s:g} s (monitoring.cell_timeout_s)")
            return "stopped"
        kind = message[0]
        if kind == "start":
            current = message[1]
        elif kind == "run":
            _store(ctx, message[1], message[2], message[3])
            current = None
            stored += 1
        elif kind == "imported":
            ctx.imported.extend(message[1])
        elif kind in ("done", "no-fork"):
            worker.close()
            return str(kind)


def _lost(ctx: _Context, group: _Group, task: str, current: Cell | None, stored: int,
          why: str) -> None:
    """A worker was stopped or died: fail the cell it was running, so no worker runs it
    again in this run."""
    if current is None:
        if not stored:  # it died before any cell, and would again: fail the group's rest
            for cell in _pending(ctx, group):
                _fail(ctx, cell, task, why)
        return  # between cells: a new worker carries on
    if current.key in ctx.finished:  # remaking the model of a cell of an earlier run
        ctx.stopped[current.key] = why
    else:
        _fail(ctx, current, task, why)


def _work(ctx: _Context, group: _Group, data: tuple[Dataset, Dataset], task: str,
          send: Connection) -> None:
    """The worker: run the group's cells, sending each record to the sweep's process."""
    if _cuda_unusable(ctx.meter):
        send.send(("no-fork",))
        return
    known = set(sys.modules)

    def emit(cell: Cell, record: RunRecord, samples: Any) -> None:
        new = [name for name in list(sys.modules) if name not in known]
        if new:
            known.update(new)
            send.send(("imported", new))
        send.send(("run", cell, record, samples))

    ctx.emit = emit
    ctx.started = lambda cell: send.send(("start", cell))
    ctx.on_cell = None
    _run_group(ctx, group, data, task)
    send.send(("done",))


def _cuda_unusable(meter: EnergyMeter) -> bool:
    """In a forked worker: whether torch refuses CUDA here (the sweep's process asked torch
    about CUDA before the fork) while the meter reads a GPU, so models may want it."""
    torch = sys.modules.get("torch")
    in_bad_fork = getattr(getattr(torch, "cuda", None), "_is_in_bad_fork", None)
    return bool(in_bad_fork is not None and in_bad_fork()
                and any(s.component.startswith("gpu") for s in meter.sensors))


def _preload(ctx: _Context) -> None:
    """Import the framework modules that workers imported, outside any measured window."""
    names, ctx.imported = ctx.imported, []
    for name in names:
        if name.partition(".")[0] not in _PRELOADED or name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as err:  # only a head start: a worker imports what it needs itself
            log.debug("not preloading %s: %s", name, err)


def _safe(name: str) -> str:
    """A folder or file name for ``name`` inside the sweep's folder, never outside it.

    Letters, digits, ``_``, ``-`` and inner dots are kept; a name that needed changing
    (``..``, ``.``, ``a/b``, an absolute path) gets a hash of itself appended, so that two
    names never share a slug (``a/b`` and ``a-b`` stay apart).
    """
    kept = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "-" for ch in name)
    kept = kept.lstrip(".")[:80]
    if kept == name and kept:
        return kept
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{kept or 'model'}-{digest}"


def _base(ctx: _Context, spec: ModelConfig, group: _Group,
          models: dict[str, Model | BaseException], train: Dataset) -> Model:
    """The model as configured: loaded from its file or hub id (recipes come from training)."""
    if spec.source is not None:
        made = models.get(BASE)
        if made is None and group.trained_by is not None:
            return _load_trained(ctx, spec, group.trained_by, group.dataset, train)
        if made is None:  # trained in an earlier run of the sweep: its weights, else again
            if (ctx.workdir / _safe(spec.name) / _safe(group.dataset.name) / TRAINED_STATE
                    ).is_file():
                return _load_trained(ctx, spec, spec.name, group.dataset, train)
            return _train_model(ctx, spec, train, group.dataset.seed)[0]
        if isinstance(made, BaseException):
            raise _Upstream(BASE, made)
        return made
    from ..workloads.registry import load_model

    if spec.framework() in ("torch", "transformers") or spec.hf is not None:
        _torch_threads()
    options = _loader_options(spec)
    if spec.hf is not None:
        return load_model(spec.hf, task=spec.task, trust=spec.trust,
                          allow_network=ctx.config.allow_network, **options)
    assert spec.path is not None
    return load_model(spec.path, task=spec.task, trust=spec.trust, **options)


def _as_model_input(model: Model, data: tuple[Dataset, Dataset]) -> tuple[Dataset, Dataset]:
    """``(train, eval)`` as a loaded model takes them: an image folder's uint8 pixels made into
    its input by its image spec (channels converted, resized, scaled and normalised, in its
    layout) as ``model.predict(folder)`` makes the files; any other data as it is. Its
    variants, export sample and calibration take the same. A model whose layout cannot be
    told raises the ConfigError that names the fix."""
    if len(data[1].image_shape or ()) != 3:
        return data
    image = model.image_input()
    if image is None:
        return data
    from ..workloads.images import pixels_to_batch

    def prepared(ds: Dataset) -> Dataset:
        batch = pixels_to_batch(np.asarray(ds.x), image)
        # the images as the model takes them: (H, W, C) whatever the batch's layout
        c, h, w = batch.shape[1:] if image.layout == "NCHW" else np.roll(batch.shape[1:], 1)
        return dataclasses.replace(ds, x=batch, image_shape=(int(h), int(w), int(c)))

    train, evaluate = data
    evaluate = prepared(evaluate)
    return (evaluate if train is data[1] else prepared(train)), evaluate


def _train_model(ctx: _Context, spec: ModelConfig, train: Dataset,
                 seed: int = 0) -> tuple[Model, dict[str, Any]]:
    from ..workloads.harness import measure_training
    from .recipes import make_recipe

    assert spec.source is not None
    if spec.source.startswith("torch:"):
        _torch_threads()
    recipe = make_recipe(spec.source, train, seed=seed, options=_loader_options(spec) or None)
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
    _write(ctx, cell, RunRecord.from_measurement(
        m, **_cell_fields(ctx, cell, task), **_model_fields(model),
        num_samples=len(train) * result["num_epochs"],
        metrics={"final_loss": result["epochs"][-1]["loss"], "epochs": result["num_epochs"]},
        extra={"epochs": result["epochs"], "source": spec.source},
    ))
    return model


#: The trained weights of a torch recipe, beside its TorchScript: read back (weights only,
#: no code) by a model that shares the training, or by a resumed sweep.
TRAINED_STATE = f"{BASE}.state_dict.pt"


def _save_trained(model: Model, out_dir: Path, train: Dataset) -> None:
    """Save a trained recipe, so its size is a size on disk like its variants'.

    torch recipes become TorchScript (``fp32.pt``; code, so loading it back needs
    ``trust=True``) and their weights (``fp32.state_dict.pt``, :data:`TRAINED_STATE`),
    scikit-learn ones skops (``fp32.skops``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if model.framework == "torch":
        import torch

        from .._files import write_bytes
        from ..optimize._torch import batch, save_torchscript
        from ..workloads.loaders.torch_loader import TorchModel

        assert isinstance(model, TorchModel)
        path = out_dir / f"{BASE}.pt"
        save_torchscript(model.module, path, batch(model, np.asarray(train.x[:1])))
        buffer = io.BytesIO()
        torch.save(model.module.state_dict(), buffer)
        write_bytes(out_dir / TRAINED_STATE, buffer.getvalue())
    elif model.framework == "sklearn":
        import skops.io

        path = out_dir / f"{BASE}.skops"
        skops.io.dump(getattr(model, "estimator"), path)  # noqa: B009
    else:
        return
    model.path = path
    model.size_bytes = path.stat().st_size


def _load_trained(ctx: _Context, spec: ModelConfig, owner: str, dataset: DatasetConfig,
                  train: Dataset) -> Model:
    """``spec``'s recipe with the weights ``owner`` was trained to on ``dataset`` in this
    sweep (its :data:`TRAINED_STATE`, read weights only); its path and size are those of the
    owner's saved model. A training that did not finish is an error naming it."""
    import torch

    from .recipes import make_recipe

    assert spec.source is not None
    _torch_threads()
    folder = ctx.workdir / _safe(owner) / _safe(dataset.name)
    state = folder / TRAINED_STATE
    if not state.is_file():
        raise ConfigError(f"model {spec.name!r} uses the training of model {owner!r} on "
                          f"{dataset.name!r}, which did not finish (no {state})")
    recipe = make_recipe(spec.source, train, seed=dataset.seed,
                         options=_loader_options(spec) or None)
    model = recipe.model
    module = getattr(model, "module")  # noqa: B009 - a torch recipe's model has one
    module.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
    module.eval()
    saved = folder / f"{BASE}.pt"
    model.path = saved
    model.size_bytes = saved.stat().st_size if saved.is_file() else state.stat().st_size
    return model


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
        method, target = _quant_of(cell.variant)
        calibration = train.sample(min(len(train), 128), seed=0)
        result = optimize.quantize(parent, method, target_dtype=target, name=cell.variant,
                                   calibration=calibration, out_dir=out_dir, meter=ctx.meter)
    fields = {**_cell_fields(ctx, cell, task), **_model_fields(result.model),
              "size_bytes": result.size_bytes, "num_parameters": result.num_parameters,
              "effective_parameters": result.effective_parameters,
              "optimization": {"kind": result.kind, "method": result.method,
                               "target_dtype": result.target_dtype, "amount": result.amount,
                               "sparsity": result.sparsity, "path": str(result.path)}}
    record = RunRecord.from_measurement(result.measurement, **fields)
    _write(ctx, cell, record)
    if parent.notes and not result.model.notes:  # made of the parent: what it noted holds
        result.model.notes = parent.notes
    return result.model


def _infer(ctx: _Context, cell: Cell, spec: ModelConfig, model: Model, evaluate: Dataset,
           task: str, dspec: DatasetConfig | None = None) -> None:
    from ..workloads.harness import measure_inference

    mon = ctx.config.monitoring
    num = mon.num_samples or len(evaluate)
    score = None
    if dspec is not None and dspec.task == "code-generation":
        score = _code_score(ctx, dspec, model)
        num = len(evaluate)  # each task once: its completion is scored
    with ctx.meter.trace(mon.frequency_hz) as timeline:
        record = measure_inference(model.predict, evaluate, spec.name, task,
                                   hardware=ctx.hardware, num_samples=num,
                                   batch_size=mon.batch_size, warmup=mon.warmup,
                                   meter=ctx.meter, progress=False, score=score)
    # The harness made the run's record; the cell adds its name, the model's sizes and what
    # its loading noted (a hub model's cached copy, the hub not reached), and for torch
    # whether TorchScript ran (the variants' and recipes' form) or eager torch.
    if model.notes:
        record = record.replace(measurement_notes=(*(record.measurement_notes or ()),
                                                   *model.notes))
    if model.framework == "torch" and "torch" in sys.modules:
        scripted = isinstance(getattr(model, "module", None), sys.modules["torch"].jit.ScriptModule)
        record = record.replace(extra={**(record.extra or {}), "torchscript": scripted})
    _write(ctx, cell, record.replace(**_cell_fields(ctx, cell, task), **_model_fields(model)),
           timeline)


def _code_score(ctx: _Context, dspec: DatasetConfig, model: Model) -> Callable[[list[Any]], Any]:
    """Scores the completions of a code task set after the measured loop: ``exact_match``,
    and ``pass_rate`` only when the sweep runs generated code (the command line's
    ``--run-generated-code``; a config file cannot ask for it)."""
    from ..workloads import codegen

    tasks = _code_tasks(dspec)
    decode = getattr(model, "decode", None)

    def score(outputs: list[Any]) -> Any:
        texts = codegen.completions(outputs, decode)
        return codegen.score_completions(tasks, texts,
                                         run_code=ctx.run_generated_code).metrics()

    return score


def _sweep_id(config: BenchConfig, sink: ResultSink, resume: bool) -> str:
    """The config's hash: the base of its sweep ids. The sink claims the sweep itself
    (``<hash>``, ``<hash>-2``, ... for fresh runs; with ``resume``, the latest), in one
    transaction, so that runs of one config started at once never share a sweep."""
    from .config import config_hash

    return config_hash(config)


def run_sweep(
    config: BenchConfig,
    sink: ResultSink,
    *,
    resume: bool = False,
    meter: EnergyMeter | None = None,
    on_cell: Callable[[Cell, RunRecord], None] | None = None,
    progress: bool | None = None,
    run_generated_code: bool = False,
) -> str:
    """Run every cell of ``config`` not yet finished and write each to ``sink``.

    Returns the sweep id. With ``resume``, the latest sweep of this config carries on: its
    finished cells are skipped. Ctrl-C or SIGTERM stops the sweep (the running cell is not
    stored) and raises :class:`SweepInterrupted` after marking the sweep interrupted; called
    from the main thread, the sweep handles SIGTERM itself while it runs.
    ``run_generated_code`` runs the tests of code task sets on the model's completions
    (:mod:`wattprint.workloads.codegen`: it runs code nobody has read, so only the caller,
    never a config file, can ask for it).
    """
    from ..meter import EnergyMeter

    sweep_id = _sweep_id(config, sink, resume)
    groups = plan_cells(config)
    total = sum(len(g.cells) for g in groups)
    cluster = None
    if config.execution.backend == "ray":
        from .ray_executor import RayCluster

        if meter is not None:
            raise ConfigError("a meter cannot be given to a sweep on Ray: each task measures "
                              "with the sensors of the node it runs on")
        # Before SIGTERM is handled below: ray.init sets a SIGTERM handler of its own.
        cluster = RayCluster.connect(config.execution)
    own_meter = meter is None
    try:
        if meter is None:
            meter = EnergyMeter(sample_hz=config.monitoring.frequency_hz,
                                site=config.to_site())
        profile = config.hardware.device_profile
        hardware = (detect_hardware(meter.sensors) if config.hardware.detect
                    else resolve_hardware(profile).name)
        sweep_id = sink.claim_sweep(sweep_id, project=config.project, config=config.to_dict(),
                                    host=host_info(), resume=resume)
        ctx = _Context(config, sink, sweep_id, meter, hardware,
                       Path(config.output.output_dir) / sweep_id, sink.finished_cells(sweep_id),
                       on_cell=on_cell, isolate=CAN_FORK, run_generated_code=run_generated_code)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    done = 0
    with _sigterm_raises():
        try:
            if config.monitoring.idle_baseline_s > 0 and cluster is None:
                meter.calibrate_idle(config.monitoring.idle_baseline_s)
            with _cell_progress(progress, total) as advance:
                def step(n: int) -> None:
                    nonlocal done
                    done += n
                    advance(n)

                ctx.advance = step
                if cluster is not None:  # the cells run on the cluster, this process stores
                    cluster.run(ctx, groups)
                data: dict[str, tuple[Dataset, Dataset] | BaseException] = {}
                for group in groups if cluster is None else ():
                    key = group.dataset.name
                    if key not in data:
                        try:
                            data[key] = _load_data(group.dataset, config.allow_network)
                        except Exception as err:
                            data[key] = err
                    _run(ctx, group, data[key])
            sink.end_sweep(sweep_id, "finished")
        except (KeyboardInterrupt, _Terminated) as err:
            signum = signal.SIGTERM if isinstance(err, _Terminated) else signal.SIGINT
            sink.end_sweep(sweep_id, "interrupted")
            raise SweepInterrupted(sweep_id, done, total, signum) from None
        finally:
            if own_meter:
                meter.close()
            if cluster is not None:
                cluster.close()
    return sweep_id


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread while a sweep runs, as Ctrl-C raises
    KeyboardInterrupt."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, the first SIGTERM raises :class:`_Terminated` (later ones are
    ignored while the sweep winds down); the earlier handler is restored after."""
    raised = False

    def handle(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise _Terminated

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals: SIGTERM keeps its handler
        return
    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def _cell_progress(enabled: bool | None, total: int) -> Iterator[Callable[[int], None]]:
    import sys

    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    # Refreshed by the caller (at each cell, and every second while a worker runs), not by a
    # thread of its own: the sweep's process forks workers, best done with no other thread.
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                  auto_refresh=False) as bar:
        task = bar.add_task("cells", total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)
            bar.refresh()

        yield advance
