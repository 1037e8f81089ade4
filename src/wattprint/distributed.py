"""Distributed jobs: each process of a ``torchrun`` job measures only what it owns.

When ``torch.distributed`` is initialised, or ``torchrun`` has set ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE`` (with ``WORLD_SIZE`` above 1), an :class:`~wattprint.EnergyMeter` keeps only
its own share of the sensors it finds, so that the job counts each part of each machine once:

* **host components** (CPU packages, DRAM, psys: every component that is not a GPU) are read by
  one process per host: the process with ``LOCAL_RANK`` 0 (``torchrun`` sets it; SLURM's
  ``SLURM_LOCALID`` and Open MPI's ``OMPI_COMM_WORLD_LOCAL_RANK`` are read too); or, with
  ``EnergyMeter(distributed=True)`` (or ``sync="dist"``) once ``torch.distributed`` is
  initialised, the lowest rank on each host, found by all-gathering the processes' host ids.
  That all-gather is a collective: every process must then make its meter at the same point
  (a meter made on one rank only, as a callback on the main process, would wait for ever);
* **each GPU** (``gpu:N``, numbered as torch numbers ``cuda:N``) is read by the process that
  owns it: the device torch has made current, if it has initialised CUDA; else the only GPU a
  process sees (a launcher that gives each process one GPU); else ``gpu:<LOCAL_RANK>``. A
  process that drives several GPUs names them: ``EnergyMeter(gpus=[0, 1])``.

:meth:`EnergyMeter.gather` collects the processes' measurements of one window at rank 0 and
returns there one :class:`~wattprint.Measurement` of the whole job, with a component per host
and device (``"node-a/cpu"``, ``"node-a/gpu:0"``), each with its own provenance. With
``sync="dist"`` every process waits at a ``barrier()`` before each window edge, so that the
windows of all ranks line up.

The host id is the host name unless given (``host_id=`` or ``WATTPRINT_HOST_ID``): two
containers on one machine that measure the same counters must be given the same id.

Nothing here imports torch: a job that uses ``torch.distributed`` has imported it already.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .errors import ConfigError, WindowError
from .measurement import ComponentEnergy, Measurement
from .sensors.base import Sensor

__all__ = ["Part", "Rank", "combine", "detect_rank", "gather", "gpu_ordinals", "is_gpu", "own"]

HOST_ID_ENV = "WATTPRINT_HOST_ID"
#: Where launchers put a process's rank on its host, in the order they are read.
LOCAL_RANK_ENV = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


class Rank(NamedTuple):
    """This process's place in a distributed job."""

    rank: int
    world_size: int
    local_rank: int
    #: The id of this process's host (the host name unless given).
    host: str
    #: Whether this process reads its host's components (CPU, DRAM, psys).
    host_reader: bool
    #: The GPUs (``gpu:N`` ordinals) this process reads.
    gpus: tuple[int, ...]
    #: Whether ``torch.distributed`` was initialised (``gather`` and ``sync="dist"`` need it).
    initialised: bool


def _dist() -> Any | None:
    """``torch.distributed`` when torch is imported and a process group is initialised."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def _int_env(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number (set by the launcher: "
                          f"torchrun sets RANK, LOCAL_RANK and WORLD_SIZE)") from None


def is_gpu(component: str) -> bool:
    """``gpu`` or ``gpu:N``: read by the process that owns the device, not by the host's."""
    return component == "gpu" or component.startswith("gpu:")


def _gpu_ordinal(component: str) -> int | None:
    head, _, tail = component.partition(":")
    if head != "gpu" or not tail.isdigit():
        return None
    return int(tail)


def detect_rank(
    *,
    host_id: str | None = None,
    gpus: Sequence[int] | None = None,
    visible_gpus: Sequence[int] = (),
    required: bool = False,
    gather_hosts: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Rank | None:
    """This process's :class:`Rank`, or ``None`` when it is not part of a distributed job.

    ``visible_gpus`` are the ``gpu:N`` ordinals this process sees (for the one-GPU rule).
    ``required`` raises :class:`ConfigError` instead of returning ``None``. ``gather_hosts``
    finds each host's reader by all-gathering the host ids (a collective: every process must
    call it), where ``torch.distributed`` is initialised.
    """
    env = os.environ if environ is None else environ
    dist = _dist()
    local_rank = next((v for v in (_int_env(env, name) for name in LOCAL_RANK_ENV)
                       if v is not None), None)
    if dist is not None:
        rank, world = int(dist.get_rank()), int(dist.get_world_size())
    else:
        rank_env, world_env = _int_env(env, "RANK"), _int_env(env, "WORLD_SIZE")
        if rank_env is None or world_env is None or world_env < 2:
            if required:
                raise ConfigError(
                    "distributed=True but this process is not part of a distributed job: "
                    "call torch.distributed.init_process_group() first, or start it with "
                    "torchrun (which sets RANK, LOCAL_RANK and WORLD_SIZE)"
                )
            return None
        rank, world = rank_env, world_env
    host = host_id or env.get(HOST_ID_ENV, "").strip() or socket.gethostname()
    if dist is not None and gather_hosts:
        hosts: list[Any] = [None] * world
        dist.all_gather_object(hosts, host)
        host_reader = min(r for r, h in enumerate(hosts) if h == host) == rank
        if local_rank is None:
            local_rank = sum(1 for h in hosts[:rank] if h == host)
    elif local_rank is not None:
        host_reader = local_rank == 0
    else:
        raise ConfigError(
            "this process's rank on its host is unknown (no LOCAL_RANK, SLURM_LOCALID or "
            "OMPI_COMM_WORLD_LOCAL_RANK): start the job with torchrun, or make every "
            "process's meter with distributed=True after init_process_group, to find each "
            "host's reader by host id"
        )
    assert local_rank is not None  # found, or counted among the gathered hosts
    return Rank(rank, world, local_rank, host, host_reader,
                _own_gpus(gpus, visible_gpus, local_rank), dist is not None)


def _own_gpus(gpus: Sequence[int] | None, visible: Sequence[int], local_rank: int
              ) -> tuple[int, ...]:
    if gpus is not None:
        return tuple(int(g) for g in gpus)
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None) if torch is not None else None
    if cuda is not None and cuda.is_initialized():
        return (int(cuda.current_device()),)
    if len(visible) == 1:
        return (visible[0],)
    return (local_rank,)


def gpu_ordinals(sensors: Sequence[Sensor]) -> list[int]:
    """The ``gpu:N`` ordinals among ``sensors``' components, each once, in order."""
    found = (_gpu_ordinal(s.component) for s in sensors)
    return list(dict.fromkeys(n for n in found if n is not None))


def own(sensors: Sequence[Sensor], rank: Rank) -> list[Sensor]:
    """The sensors of ``sensors`` that ``rank`` reads: its host's components if it is the
    host's reader, and its own GPUs."""
    kept = []
    for s in sensors:
        if is_gpu(s.component):
            ordinal = _gpu_ordinal(s.component)
            if ordinal is not None and ordinal in rank.gpus:
                kept.append(s)
        elif rank.host_reader:
            kept.append(s)
    return kept


class Part(NamedTuple):
    """One process's measurement of a window, as :meth:`EnergyMeter.gather` collects it."""

    rank: int
    host: str
    measurement: Measurement


def combine(parts: Sequence[Part]) -> Measurement:
    """One :class:`Measurement` of the whole job from each process's measurement of the same
    window: a component per host and device (``"<host>/<component>"``), each with the
    provenance its process measured; the job's energy is their sum, its window from the
    earliest start to the latest end. A component that two processes report (both read the
    same counters: give them different host ids, or none) raises :class:`WindowError`, as a
    figure counted twice would be wrong. The site is the first part's; parts whose site
    differs are said in the notes (``wattprint merge`` footprints each node at its own site).
    """
    if not parts:
        raise WindowError("no measurement to combine")
    parts = sorted(parts, key=lambda p: p.rank)
    first = parts[0].measurement
    components: dict[str, ComponentEnergy] = {}
    owner: dict[str, int] = {}
    errors: list[str] = []
    notes: list[str] = []
    idle: list[float | None] = []
    dynamic: list[float | None] = []
    for part in parts:
        m = part.measurement
        for name, energy in m.components.items():
            key = f"{part.host}/{name}"
            if key in components:
                raise WindowError(
                    f"{key} is measured by rank {owner[key]} and by rank {part.rank}: it would "
                    "be counted twice; let each process read only what it owns (the default "
                    "in a distributed job) or give the hosts different host ids"
                )
            components[key], owner[key] = energy, part.rank
        errors += [f"rank {part.rank} ({part.host}): {e}" for e in m.errors]
        notes += [n for n in m.notes if n not in notes]
        if m.components:
            idle.append(m.idle_j)
            dynamic.append(m.dynamic_j)
    if any(p.measurement.site != first.site for p in parts):
        notes.append("the processes' sites differ: the footprint is at rank "
                     f"{parts[0].rank}'s site (wattprint merge gives each node its own)")
    start = min(p.measurement.start for p in parts)
    end = max(p.measurement.end for p in parts)
    energy_j = sum(c.energy_j for c in components.values())
    return Measurement(
        name=first.name,
        start=start,
        end=end,
        duration_s=_seconds(start, end, max(p.measurement.duration_s for p in parts)),
        energy_j=energy_j,
        components=components,
        site=first.site,
        idle_j=_sum_all(idle),
        dynamic_j=_sum_all(dynamic),
        samples=sum(p.measurement.samples for p in parts),
        partial=any(p.measurement.partial for p in parts),
        errors=tuple(errors),
        notes=tuple(notes),
    )


def _seconds(start: datetime, end: datetime, longest: float) -> float:
    """The job window's length: wall clock from the earliest start to the latest end, and
    never shorter than the longest process's own window (clocks of hosts may disagree)."""
    return max((end - start).total_seconds(), longest)


def _sum_all(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def barrier_after(sync: Callable[[], None]) -> Callable[[], None]:
    """``sync`` (the CUDA synchronisation, or nothing), then a ``torch.distributed`` barrier:
    what a meter made with ``sync="dist"`` does before each window edge."""
    dist = _dist()
    if dist is None:
        raise ConfigError('sync="dist" needs torch.distributed initialised '
                          "(init_process_group) before the meter is made")
    barrier = dist.barrier

    def sync_then_wait() -> None:
        sync()
        barrier()

    return sync_then_wait


def gather(measurement: Measurement, rank: Rank | None, dst: int = 0) -> Measurement | None:
    """:meth:`EnergyMeter.gather`: every process's ``measurement`` collected at rank ``dst``
    and combined there (:func:`combine`); ``None`` at the other ranks."""
    if rank is None:
        return combine([Part(0, socket.gethostname(), measurement)])
    dist = _dist()
    if dist is None:
        raise ConfigError(
            "gather collects every process's measurement through torch.distributed: call "
            "torch.distributed.init_process_group() in every process first (torchrun alone "
            "starts the processes; it does not connect them)"
        )
    part = Part(rank.rank, rank.host, measurement)
    if rank.rank == dst:
        parts: list[Any] = [None] * rank.world_size
        dist.gather_object(part, parts, dst=dst)
        return combine([Part(*p) for p in parts])
    dist.gather_object(part, None, dst=dst)
    return None
