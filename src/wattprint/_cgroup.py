"""The threads torch and onnxruntime take in wattprint (:func:`default_threads`): those the
user asked for in ``OMP_NUM_THREADS``, else the cores this process is allotted
(:func:`allotted_cores`), within the CPU time its control groups allow it (:func:`cpu_limit`):
a container's ``--cpus``, a Kubernetes pod's CPU limit, a systemd unit's ``CPUQuota``.

Such a limit does not show in the CPUs a process may run on (its affinity mask, ``nproc``):
a container limited to 2 CPUs on a 64-CPU host sees 64. A thread team sized by those (torch
takes every CPU it sees) uses up the period's quota in a fraction of it and waits for the next,
each parallel region for its slowest thread: the work runs slower, and its time and energy per
query swing from run to run. The limit is read from the cgroup file system, version 2
(``cpu.max``) or version 1 (``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), at the process's
group and every group above it within the mount (the smallest holds), without a subprocess.

``OMP_NUM_THREADS`` is how OpenMP, torch and the libraries built on them are told a thread
count: a user who sets it (``OMP_NUM_THREADS=1 wattprint run ...``, as on a small machine
where one thread runs a small model faster than two) gets that many threads, not the cores.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path, PurePosixPath

from ._log import get_logger

__all__ = ["OMP_ENV", "affinity_cpus", "allotted_cores", "asked_threads", "cpu_limit",
           "default_threads", "model_threads"]

log = get_logger(__name__)

PROC_SELF = Path("/proc/self")
#: The environment variable that sets the threads of OpenMP, and of torch with it.
OMP_ENV = "OMP_NUM_THREADS"
#: The octal escapes of /proc/self/mountinfo (a space is ``\\040``).
_ESCAPE = re.compile(r"\\([0-7]{3})")


#: The threads the sweep's model whose cells run now asks for (its ``threads`` option), set
#: around them by :func:`model_threads`; None where it asks none.
_model_asks: int | None = None


def default_threads() -> int:
    """The intra-op threads torch and onnxruntime take in wattprint where a model's options
    name none: those of the sweep's model whose cells run now (:func:`model_threads`), else
    :func:`asked_threads` where the user set them, else :func:`allotted_cores`."""
    if _model_asks is not None:
        return _model_asks
    asked = asked_threads()
    return allotted_cores() if asked is None else asked


@contextmanager
def model_threads(threads: int | None) -> Iterator[None]:
    """While in it, :func:`default_threads` is ``threads`` (a sweep's model's ``threads``
    option), where it is not None: torch's threads for the model's cells and the ONNX
    sessions of its variants (its export, its quantized copies). The sweep runs one model's
    cells at a time in a process."""
    global _model_asks
    before = _model_asks
    if threads is not None:
        _model_asks = threads
    try:
        yield
    finally:
        _model_asks = before


def asked_threads() -> int | None:
    """The threads ``OMP_NUM_THREADS`` asks for: the first of its list (``4,2`` asks 4 for
    the outer level), a whole number of at least 1; None where it is not set. A value that is
    not such a number is ignored, with a warning naming it (once), as OpenMP itself ignores
    it."""
    value = os.environ.get(OMP_ENV, "").strip()
    return _threads_of(value) if value else None


@cache
def _threads_of(value: str) -> int | None:
    first = value.split(",", 1)[0].strip()
    if first.isascii() and first.isdigit() and int(first) >= 1:
        return int(first)
    log.warning("%s=%r is not a whole number of threads of at least 1: ignored; torch and "
                "onnxruntime take the cores this process is allotted (set it to 1, 2, ...)",
                OMP_ENV, value)
    return None


def allotted_cores() -> int:
    """The physical cores this process may run on: the CPUs of its affinity mask, less the
    second thread of each core where the machine has two per core, and no more than the CPU
    time its control groups allow (:func:`cpu_limit`), rounded down: a team of threads that
    needs more than the limit is stopped for the rest of each period once it has used the
    quota, and every parallel region waits for its slowest thread. At least 1."""
    import psutil

    logical = psutil.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    cores = max(1, round(affinity_cpus(logical) * physical / logical))
    limit = cpu_limit()
    return cores if limit is None else max(1, min(cores, int(limit)))


def affinity_cpus(machine: int | None = None) -> int:
    """The logical CPUs this process may run on (its affinity mask), as OpenMP and OpenBLAS
    count them; where the system has no affinity mask, ``machine`` (the machine's CPUs, by
    default :func:`os.cpu_count`)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return machine or os.cpu_count() or 1


def cpu_limit(proc: Path | None = None) -> float | None:
    """CPUs' worth of time a second that the control groups of the process whose ``/proc``
    folder is ``proc`` (this process's: :data:`PROC_SELF`) allow it (``1.5``: one and a half
    CPUs), the smallest limit on its group and those above it; None where no limit is set or
    none can be read (not Linux, no cgroup file system mounted)."""
    proc = PROC_SELF if proc is None else proc
    try:
        groups = (proc / "cgroup").read_text()
        mounts = (proc / "mountinfo").read_text()
    except OSError:
        return None
    limits: list[float] = []
    for line in groups.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            version = 2
        elif "cpu" in controllers.split(","):
            version = 1
        else:
            continue
        for root, point in _mounts(mounts, version):
            folder = _inside(PurePosixPath(path), root, point)
            if folder is not None:
                limits += _limits(folder, point, version)
    return min(limits, default=None)


def _mounts(mountinfo: str, version: int) -> list[tuple[PurePosixPath, Path]]:
    """The (root, mount point) of each mount of the cgroup file system of ``version`` (1: a
    hierarchy with the ``cpu`` controller) in ``mountinfo``."""
    found = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, kinds = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(kinds) < 3:
            continue
        kind, options = kinds[0], kinds[2].split(",")
        if (version == 2 and kind == "cgroup2") or (
                version == 1 and kind == "cgroup" and "cpu" in options):
            found.append((PurePosixPath(_unescape(fields[3])), Path(_unescape(fields[4]))))
    return found


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def _inside(path: PurePosixPath, root: PurePosixPath, point: Path) -> Path | None:
    """The folder of the group ``path`` under a mount of the hierarchy's ``root`` at ``point``;
    None where the group is not under that root (a mount of another part of the hierarchy)."""
    try:
        return point.joinpath(*path.relative_to(root).parts)
    except ValueError:
        return None


def _limits(folder: Path, point: Path, version: int) -> list[float]:
    """The CPU limits set on ``folder`` and each folder above it up to the mount ``point``."""
    found = []
    while True:
        limit = _limit(folder, version)
        if limit is not None:
            found.append(limit)
        if folder == point or folder.parent == folder:
            return found
        folder = folder.parent


def _limit(folder: Path, version: int) -> float | None:
    """The CPU limit set on one group's ``folder``, or None (none set, or not readable)."""
    try:
        if version == 2:
            quota, _, period = (folder / "cpu.max").read_text().partition(" ")
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text()
            period = (folder / "cpu.cfs_period_us").read_text()
        if quota.strip() == "max":
            return None
        cpus = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None  # v1 writes -1 for "no limit"
