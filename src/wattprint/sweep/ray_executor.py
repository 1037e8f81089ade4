"""Sweeps on a Ray cluster: the cells run as Ray tasks, this process writes the store.

``wattprint run sweep.yaml --executor ray [--address auto]``, or ``execution: {backend: ray}``
in the config, runs the sweep's cells on whatever nodes Ray places them, each measured with the
sensors of its own node. Ray is an extra (``pip install 'wattprint[ray]'``), imported only
here and only when a sweep asks for it.

The unit of a task. One Ray task runs what the local executor gives one worker process: the
cells of one model on one dataset (a *group*: the model trained or loaded once, then its ONNX
export, quantized and pruned variants, then each variant's inference repetitions), plus the
groups that take that model's trained weights (``trained_by``), which read them from the file
the training wrote (:func:`task_units`). A task per cell would load or train the model again
in every cell, or ship models between nodes, and would measure the loading where the local
executor does not; a group keeps what a cell needs in the memory of the process that made it,
and its figures equal the local executor's. The price: no more tasks run at once than the
sweep has groups (docs/scale.md).

The task is a generator: it yields ``("start", cell)`` as a cell begins (outside its window)
and ``("run", cell, record, samples)`` as it ends, so each record reaches this process as soon
as its cell ends, not when its group does. This process waits on every running task at once
(``ray.wait``) and writes each record to the sink as it arrives: the store has one writer, and
the worker nodes need no access to it. What a sweep keeps when it stops is what the local
executor keeps: every cell whose record arrived. Ctrl-C or SIGTERM cancels the running tasks
and raises :class:`~wattprint.sweep.runner.SweepInterrupted`; a killed driver takes its tasks
with it (Ray ends the tasks of a job whose driver died); ``--resume`` runs the cells the store
does not have, and each task is told which of its group's cells are finished.

One cell per node at a time. A cell's measurement covers components that every cell on the
node shares (the CPU packages, DRAM, each GPU the meter reads), so two cells that overlap in
time on one node cannot be told apart. Each task asks for one unit of the custom resource
``wattprint_node`` (:data:`NODE_RESOURCE`), which each node offers once: a node runs one
task at a time, and tasks queue for nodes. A Ray instance this module starts (no address)
offers it; nodes started with ``ray start`` must be given it
(``--resources '{"wattprint_node": 1}'``). A node given more (``{"wattprint_node": 8}``, one
per GPU) runs that many tasks at once, and their figures overlap: only components a task
alone uses are its own. Each task also asks for ``execution.num_cpus`` CPUs and
``execution.num_gpus`` GPUs (1 for GPU cells).

A cell that runs longer than ``monitoring.cell_timeout_s`` has its task cancelled (the Ray
worker is killed) and is stored as failed; a worker that dies fails the cell it was running.
Either way a new task runs the group's remaining cells, as a new worker process does locally.
Tasks are never retried by Ray itself (``max_retries=0``): the cells a task finished are
stored, and a retry would measure them again.

Offline: no dashboard, no usage statistics (``RAY_USAGE_STATS_ENABLED=0`` for the instance
this module starts; give ``--disable-usage-stats`` to ``ray start``), workers' output stays in
Ray's log folder. Model files and datasets are read, and variants written, at the same paths on
every node: a cluster of several nodes needs the sweep's files and output folder on a shared
file system. Formats registered with :func:`wattprint.register_format` in this process go with
each task and are registered in its worker: their loaders must be what Ray can send (a class
or function, pickled by Ray's cloudpickle, or ``"package.module:Name"`` importable on every
node); one it cannot is a :class:`~wattprint.errors.ConfigError` naming its suffix, before
Ray starts or the sweep is stored.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from .._cgroup import OMP_ENV, affinity_cpus, asked_threads
from .._log import get_logger
from ..errors import ConfigError, MissingExtra
from ..record import RunRecord
from ..sensors.hardware import detect_hardware, resolve_hardware
from .runner import Cell, _Context, _fail, _Group, _load_data, _pending, _run, _store

if TYPE_CHECKING:
    from ..workloads.datasets import Dataset
    from .config import BenchConfig, ExecutionConfig

__all__ = ["NODE_RESOURCE", "RayCluster", "import_ray", "task_units"]

#: The custom Ray resource each node offers once and each task asks one of: one task (one
#: cell) at a time per node.
NODE_RESOURCE = "wattprint_node"
#: How often the driver looks up from ``ray.wait``: to refresh the progress display and to
#: stop a cell past its time limit.
_SLICE_S = 1.0

log = get_logger(__name__)


def import_ray() -> ModuleType:
    """The ``ray`` module; :class:`~wattprint.errors.MissingExtra` when it, or another part of
    the ``ray`` extra (threadpoolctl, which :func:`_local_threads` needs), is not installed."""
    try:
        import ray
        import threadpoolctl  # noqa: F401
    except ImportError as err:
        raise MissingExtra("the ray executor", "ray") from err
    return ray


def task_units(groups: list[_Group]) -> list[list[_Group]]:
    """The groups, bundled into the units that one Ray task runs, in order: a group, with
    the groups after it that take its trained weights (``trained_by``)."""
    units: list[list[_Group]] = []
    owner: dict[tuple[str, str], list[_Group]] = {}
    for group in groups:
        key = (group.trained_by or group.model.name, group.dataset.name)
        if group.trained_by is not None and key in owner:
            owner[key].append(group)
            continue
        unit = [group]
        units.append(unit)
        owner[(group.model.name, group.dataset.name)] = unit
    return units


@dataclass
class _Task:
    """A running task: its unit, the stream of its messages, and where it is."""

    unit: list[_Group]
    stream: Any  # ray.ObjectRefGenerator
    current: Cell | None = None
    started_s: float = 0.0
    stored: int = 0
    cells: set[str] = field(default_factory=set)


class RayCluster:
    """A connection to a Ray cluster that runs a sweep's cells (:meth:`run`) and is closed
    after (:meth:`close`): a Ray instance this process started stops with it."""

    def __init__(self, ray: ModuleType, execution: ExecutionConfig, owned: bool,
                 formats: dict[str, Any] | None = None) -> None:
        self._ray = ray
        self._execution = execution
        self._owned = owned
        #: The formats registered in this process, which each task registers in its worker.
        self._formats = formats or {}

    @classmethod
    def connect(cls, execution: ExecutionConfig) -> RayCluster:
        """Join the cluster at ``execution.address``; with none, the Ray instance this process
        already joined, else a new one on this machine offering :data:`NODE_RESOURCE` once.
        A cluster that offers no :data:`NODE_RESOURCE`, or fewer GPUs than a task asks for,
        is a :class:`~wattprint.errors.ConfigError` (its tasks would wait forever), and so is,
        before Ray starts, a format registered here whose loader cannot be sent to a task."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = import_ray()
        formats = _sendable_formats(ray)
        owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            address = execution.address
            if address is None:  # "local": a new instance, even where `ray start` ran
                address = "local"
                options.update(resources={NODE_RESOURCE: 1}, include_dashboard=False)
                owned = True
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as err:
                hint = ("" if execution.address in (None, "auto") else
                        " (a cluster with token authentication, Ray's default, is joined at "
                        "an address with RAY_AUTH_MODE=token set)")
                raise ConfigError(f"execution.address: cannot join the Ray cluster at "
                                  f"{execution.address!r}: {err}{hint}") from err
        cluster = cls(ray, execution, owned, formats)
        try:
            cluster._check()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _check(self) -> None:
        offered = self._ray.cluster_resources()
        if offered.get(NODE_RESOURCE, 0) < 1:
            raise ConfigError(
                f"no node of the Ray cluster offers the {NODE_RESOURCE!r} resource, which keeps "
                "to one cell per node at a time: start each node with "
                f"ray start ... --resources '{{\"{NODE_RESOURCE}\": 1}}'")
        gpus = self._execution.num_gpus
        if gpus > 0 and offered.get("GPU", 0) < gpus:
            raise ConfigError(f"execution.num_gpus: each task asks for {gpus:g} GPUs, and the "
                              f"Ray cluster has {offered.get('GPU', 0):g}")

    def close(self) -> None:
        """Leave the cluster; a Ray instance started by :meth:`connect` stops."""
        if self._owned:
            self._ray.shutdown()
            self._owned = False

    def run(self, ctx: _Context, groups: list[_Group]) -> None:
        """Run every pending cell of ``groups`` on the cluster, storing each record in this
        process as it arrives; return when every cell is stored. On any exception (Ctrl-C
        included) the running tasks are cancelled first."""
        ray = self._ray
        remote = ray.remote(_unit_task).options(
            num_cpus=self._execution.num_cpus, num_gpus=self._execution.num_gpus,
            resources={NODE_RESOURCE: 1}, max_retries=0, retry_exceptions=False)
        workdir = Path(ctx.workdir).resolve()
        threads = asked_threads()  # this process's OMP_NUM_THREADS, for every task's cells
        for group in groups:
            ctx.advance(len(group.cells) - len(_pending(ctx, group)))

        def submit(unit: list[_Group]) -> None:
            todo = [g for g in unit if _pending(ctx, g)]
            if todo:
                stream = remote.remote(ctx.config, todo, ctx.sweep_id, str(workdir),
                                       set(ctx.finished), dict(ctx.stopped),
                                       ctx.run_generated_code, self._formats, threads)
                running[stream] = _Task(unit, stream)

        running: dict[Any, _Task] = {}
        try:
            for unit in task_units(groups):
                submit(unit)
            while running:
                streams = list(running)
                ready, _ = ray.wait(streams, num_returns=1, timeout=_SLICE_S)
                if ready and len(streams) > 1:  # and every other that is ready, in one call
                    ready, _ = ray.wait(streams, num_returns=len(streams), timeout=0)
                for stream in ready:
                    task = running[stream]
                    outcome = self._next(ctx, task)
                    if outcome != "more":
                        del running[stream]
                    if outcome == "stopped":
                        submit(task.unit)
                for stream, task in list(running.items()):
                    if self._overdue(ctx, task):
                        del running[stream]
                        submit(task.unit)
                ctx.advance(0)
        finally:
            for stream in running:
                self._cancel(stream)

    def _next(self, ctx: _Context, task: _Task) -> str:
        """Take the task's next message: ``"more"`` to come, ``"done"``, or ``"stopped"``
        (its worker died; a new task runs what is left)."""
        ray = self._ray
        try:
            message = ray.get(next(task.stream))
        except StopIteration:
            return "done"
        except ray.exceptions.RayError as err:
            _lost(ctx, task, _reason(err))
            return "stopped"
        kind = message[0]
        if kind == "start":
            task.current, task.started_s = message[1], time.monotonic()
        elif kind == "run":
            cell, record = message[1], message[2]
            if not (record.ok and cell.key in ctx.finished):  # finished in an earlier run
                _store(ctx, cell, record, message[3])
            task.current = None
            task.stored += 1
        elif kind == "crash":
            _lost(ctx, task, f"the Ray task failed: {message[1]}")
            return "stopped"
        return "more"

    def _overdue(self, ctx: _Context, task: _Task) -> bool:
        """Whether the task's cell ran past ``monitoring.cell_timeout_s``: then it is
        cancelled and the cell stored as failed."""
        limit_s = ctx.config.monitoring.cell_timeout_s
        if task.current is None or time.monotonic() - task.started_s <= limit_s:
            return False
        self._cancel(task.stream)
        _lost(ctx, task, f"timed out after {limit_s:g} s (monitoring.cell_timeout_s)")
        return True

    def _cancel(self, stream: Any) -> None:
        ray = self._ray
        try:
            ray.cancel(stream, force=True)
        except (ray.exceptions.RayError, ValueError, TypeError) as err:
            log.debug("cancelling a Ray task: %s", err)


def _sendable_formats(ray: ModuleType) -> dict[str, Any]:
    """The formats registered in this process, for the tasks; a
    :class:`~wattprint.errors.ConfigError` where one's loader cannot be sent to a worker."""
    from ..workloads.registry import registered_formats

    formats = registered_formats()
    for suffix, loader in formats.items():
        try:
            ray.cloudpickle.dumps(loader)
        except Exception as err:  # cloudpickle raises what the object's reduction raises
            raise ConfigError(
                f"the loader registered for {suffix!r} ({loader!r}) cannot be sent to Ray's "
                f"workers: {type(err).__name__}: {err}; register a class or function that "
                f"can be pickled, or name one as 'package.module:Name'") from err
    return formats


def _reason(err: BaseException) -> str:
    """In words for a stored error: why a Ray task ended without finishing."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"the Ray worker failed: {type(err).__name__}: {first}"


def _lost(ctx: _Context, task: _Task, why: str) -> None:
    """A task was stopped or died: fail the cell it was running, so no task runs it again in
    this run; one that died before storing any cell would die again, so its unit's
    remaining cells fail with it."""
    current = task.current
    task.current = None
    if current is not None:
        group = next(g for g in task.unit if current in g.cells)
        if current.key in ctx.finished:  # remaking the model of a cell of an earlier run
            ctx.stopped[current.key] = why
        else:
            _fail(ctx, current, _task_of(group), why)
        return
    if not task.stored:
        for group in task.unit:
            for cell in _pending(ctx, group):
                _fail(ctx, cell, _task_of(group), why)


def _task_of(group: _Group) -> str:
    return group.model.task or group.dataset.task or "unknown"


# -- in the Ray worker -------------------------------------------------------------------------

def _unit_task(config: BenchConfig, groups: list[_Group], sweep_id: str, workdir: str,
               finished: set[str], stopped: dict[str, str], run_generated_code: bool,
               formats: dict[str, Any], threads: int | None) -> Iterator[tuple[Any, ...]]:
    """The Ray task: run the groups' pending cells with this node's sensors, yielding
    ``("start", cell)`` and ``("run", cell, record, samples)`` as the local worker sends
    them, then ``("done",)``, or ``("crash", text)`` when something outside a cell failed.
    ``formats``: those the driver registered, registered here first. ``threads``: those the
    driver's ``OMP_NUM_THREADS`` asks for (None: none), made this worker's
    (:func:`_local_threads`).

    The cells run on a thread of their own, which hands each message to this generator: the
    runner calls back as each cell ends, and a generator cannot yield from a callback."""
    from ..meter import EnergyMeter
    from ..workloads.registry import adopt_formats

    adopt_formats(formats)
    _local_threads(threads)

    meter = EnergyMeter(sample_hz=config.monitoring.frequency_hz, site=config.to_site())
    messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
    try:
        hardware = (detect_hardware(meter.sensors) if config.hardware.detect
                    else resolve_hardware(config.hardware.device_profile).name)
        ctx = _Context(config, cast(Any, None), sweep_id, meter, hardware, Path(workdir),
                       set(finished), stopped=dict(stopped),
                       run_generated_code=run_generated_code)

        def emit(cell: Cell, record: RunRecord, samples: Any) -> None:
            messages.put(("run", cell, record, samples))

        ctx.emit = emit
        ctx.started = lambda cell: messages.put(("start", cell))
        thread = threading.Thread(target=_work, args=(ctx, groups, messages),
                                  name="wattprint-ray-task", daemon=True)
        thread.start()
        while True:
            message = messages.get()
            yield message
            if message[0] in ("done", "crash"):
                break
        thread.join()
    finally:
        meter.close()


def _local_threads(threads: int | None) -> None:
    """Give this worker the threads a local worker has: ``OMP_NUM_THREADS`` as the driver
    has it (``threads``, None: not set), for torch and onnxruntime (see
    :func:`wattprint._cgroup.default_threads`) and the libraries loaded from here on, and the
    BLAS and OpenMP thread pools already loaded (NumPy's OpenBLAS, scikit-learn's OpenMP)
    sized as they size themselves when they load: to ``threads`` (BLAS to no more than the
    CPUs), else to the CPUs this process may run on. Ray sets a worker's ``OMP_NUM_THREADS``
    to the CPUs its task asks for (``execution.num_cpus``, 1 by default) where the node has
    none, before the task's module is imported: the pools loaded with it took that many."""
    from threadpoolctl import threadpool_limits

    if threads is None:
        os.environ.pop(OMP_ENV, None)
    else:
        os.environ[OMP_ENV] = str(threads)
    cpus = affinity_cpus()
    asked = cpus if threads is None else threads
    # OpenBLAS takes no more threads than CPUs, whatever it is asked; OpenMP takes them all
    threadpool_limits(limits={"blas": min(asked, cpus), "openmp": asked})


def _work(ctx: _Context, groups: list[_Group], messages: queue.Queue[tuple[Any, ...]]) -> None:
    try:
        if ctx.config.monitoring.idle_baseline_s > 0:
            ctx.meter.calibrate_idle(ctx.config.monitoring.idle_baseline_s)
        data: dict[str, tuple[Dataset, Dataset] | BaseException] = {}
        for group in groups:
            key = group.dataset.name
            if key not in data:
                try:
                    data[key] = _load_data(group.dataset, ctx.config.allow_network)
                except Exception as err:  # each of its cells fails naming it, as locally
                    data[key] = err
            _run(ctx, group, data[key])
    except BaseException as err:  # the outermost boundary of the task: reported, not raised
        messages.put(("crash", f"{type(err).__name__}: {err}"))
        return
    messages.put(("done",))
