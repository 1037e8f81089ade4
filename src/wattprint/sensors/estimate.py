"""Estimated CPU and RAM energy, for machines without a readable energy counter.

The figures are models, never measurements: every sensor here has ``measured = False`` and a
description that says which figures went in and where they came from.

CPU: ``P = TDP x (IDLE_FRACTION + (1 - IDLE_FRACTION) x utilisation)``, where utilisation over an
interval is the machine's busy CPU seconds over ``logical CPUs x wall seconds``. The TDP is the
user's ``cpu_tdp_w``, else a row of the shipped table ``data/cpu_tdp.csv`` matched against the CPU
model name, else :data:`DEFAULT_TDP_W_PER_THREAD` per logical CPU.

The machine's CPU time advances in clock ticks (``SC_CLK_TCK``, usually 100 per second, so 10 ms
steps), so an interval of a few milliseconds can see a whole tick of busy time on each CPU: more
than the CPUs could do in it. Busy time is therefore capped at ``logical CPUs x wall seconds`` per
interval between reads, and so per window: the estimate never exceeds the TDP. What the cap holds
back (at most one tick per CPU) is carried into the next intervals, so long runs of short windows
still add up. A window shorter than one tick gets a note saying its utilisation is coarse.

RAM: :data:`WATTS_PER_GIB` per GiB of installed memory (``mode="machine"``), or of this process's
resident memory (``mode="process"``).

Both are counters read only at window edges: no sampling thread. A read costs one small read of
``/proc/stat`` (CPU) or ``/proc/self/statm`` (RAM in process mode): about 10-20 µs.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from .._data import read_text
from ..errors import ConfigError, SensorError
from .base import EDGE, CounterSensor, MissingSensor, Sensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Sequence
    from functools import cache, lru_cache
    from typing import NamedTuple

    from ._registry import DetectOptions
else:
    from .._cache import cache, lru_cache
    from .._typing import NamedTuple

__all__ = [
    "DEFAULT_TDP_W_PER_THREAD",
    "IDLE_FRACTION",
    "NAME",
    "WATTS_PER_GIB",
    "CpuEstimate",
    "CpuInfo",
    "RamEstimate",
    "TdpChoice",
    "TdpRow",
    "available",
    "choose_tdp",
    "cpu_estimate",
    "discover",
    "load_tdp_table",
    "machine_busy_cpu_s",
    "match_tdp_row",
    "process_rss_bytes",
    "ram_estimate",
    "read_cpuinfo",
    "short_window_note",
    "utilisation_resolution_s",
]

NAME = "estimate"

#: Share of TDP an idle CPU is taken to draw. SPECpower-derived coefficients used by Cloud Carbon
#: Footprint put idle (0 % load) power at 16-32 % of full-load power per vCPU across server
#: microarchitectures (Skylake 0.64/4.05 W, Cascade Lake 0.64/3.80 W, Broadwell 0.71/3.54 W,
#: EPYC Milan 0.45/1.87 W, Rome 0.47/1.64 W, Haswell 1.90/5.99 W); the Teads/Boavizta load
#: profile starts at 12 % of TDP. 0.2 is close to the median of those ratios.
IDLE_FRACTION = 0.2

#: Watts per logical CPU when the CPU is not in the table and no TDP was given. TDP per hardware
#: thread across the rows of ``cpu_tdp.csv`` that give a thread count: servers (Xeon, EPYC,
#: Ampere) median 4.7 W, middle 80 % 2.7-10.6 W (EPYC 7763 280 W / 128, Xeon 8380 270 W / 80,
#: E5-2680 v4 120 W / 28); desktops and laptops median 3.75 W, middle 80 % 1.7-10.8 W (i5-12400
#: 65 W / 12, i7-1255U 15 W / 12). 5 W is a little above both medians: for an unknown CPU we
#: would rather overstate than hide energy, and the description asks for ``cpu_tdp_w``.
DEFAULT_TDP_W_PER_THREAD = 5.0

#: Watts per GiB of memory: 3 W per 8 GB (3/8 = 0.375), the rule of thumb for DDR3/DDR4 from
#: Crucial's "How much power does memory use?" that CodeCarbon used before version 3. CodeCarbon
#: 3.x no longer uses it: it guesses the number of DIMMs from the memory size and counts 5 W per
#: x86 DIMM (1.5 W on Arm), less per DIMM beyond 4, 8 and 16 DIMMs. The linear figure is kept
#: because it needs no guess about DIMMs, which cannot be read without root; it is close to
#: CodeCarbon 3.x for 16-64 GiB (6-24 W against 10-20 W) but overstates large servers, whose
#: big DIMMs draw less per GiB (1 TiB: 384 W against about 38 W). Give ``watts_per_gib`` when
#: the memory's power is known.
WATTS_PER_GIB = 0.375

PROC_STAT = "/proc/stat"
PROC_CPUINFO = "/proc/cpuinfo"
PROC_SELF_STATM = "/proc/self/statm"
_GIB = 1024**3
_LINUX = sys.platform.startswith("linux")

# Linux on Arm names no model in /proc/cpuinfo, only the core's implementer and part numbers.
_ARM_CORES = {
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0xc0", "0xac3"): "AmpereOne",
}


# -- machine CPU time (shared with process.py) ---------------------------------------------------


def machine_busy_cpu_s(proc_stat: str | os.PathLike[str] = PROC_STAT) -> float:
    """Busy CPU seconds of the whole machine since boot, summed over all logical CPUs.

    Busy is user + nice + system + irq + softirq from the first line of ``/proc/stat``: not
    idle or iowait (the CPU waits), not steal (the hypervisor ran someone else), not guest
    (already counted in user). Elsewhere than Linux, the same from :func:`psutil.cpu_times`.
    Raises :class:`SensorError` when the times cannot be read. Within a window edge
    (:func:`begin_edge`) the file is read once and the figure shared. The real
    ``/proc/stat`` is read at most once per :data:`FRESH_S`: the kernel counts in clock
    ticks (10 ms) and formats the whole file at each read (about 6 µs on two CPUs, as much as
    a whole RAPL window), so a reading younger than that is given again.
    """
    edge = EDGE.busy
    if edge is None:
        return _read_busy_cpu_s(proc_stat)
    busy = edge.get(proc_stat)
    if busy is None:
        busy = edge[proc_stat] = _read_busy_cpu_s(proc_stat)
    return busy


#: The kept descriptor of the real ``/proc/stat`` (read with ``pread``; -1: not open yet).
_proc_stat_fd = -1
_pread = os.pread
_clock = time.perf_counter

#: Seconds for which a reading of the real ``/proc/stat`` is given again instead of read anew:
#: a tenth of its 10 ms clock tick. Windows a few microseconds long (a query, a batch of a
#: small model) then cost no kernel work at most of their edges; what a reused reading misses
#: is at most 1 ms of CPU time per CPU, which the next fresh reading counts (the figures are
#: cumulative, so nothing is lost, only moved to the next interval), against the 10 ms step in
#: which the kernel counts. 0 reads the file at every call.
FRESH_S = 1e-3
#: The last fresh reading of the real ``/proc/stat``: (``_clock()`` before it, busy CPU s).
_last_busy: tuple[float, float] = (-1e300, 0.0)


def _read_start(path: str | os.PathLike[str], size: int) -> bytes:
    """The first ``size`` bytes of a small file (a /proc file: one read), raising OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def _read_busy_cpu_s(proc_stat: str | os.PathLike[str]) -> float:
    global _proc_stat_fd, _last_busy
    if proc_stat is PROC_STAT and _proc_stat_fd >= 0:  # every read after the first
        now = _clock()
        last = _last_busy  # one tuple: a thread sees a time and its reading, never a mix
        if 0.0 <= now - last[0] < FRESH_S:
            return last[1]
        try:
            head = _pread(_proc_stat_fd, 512, 0)
        except OSError as err:
            raise SensorError(f"cannot read CPU times from {PROC_STAT}: {err}") from err
        fields = head.partition(b"\n")[0].split()
        try:
            if len(fields) < 8 or fields[0] != b"cpu":  # as every kernel since 2.6 writes it
                raise ValueError(fields[:1])
            busy = (int(fields[1]) + int(fields[2]) + int(fields[3]) + int(fields[6])
                    + int(fields[7])) / _clock_ticks_per_s()
        except ValueError:  # the careful parse, which says what is wrong
            busy = _busy_from(head, proc_stat)
        _last_busy = (now, busy)
        return busy
    real = proc_stat is PROC_STAT or os.path.normpath(proc_stat) == PROC_STAT
    if real and not _LINUX:
        return _busy_from_psutil()
    try:
        if real:  # kept open: each read is a pread, not an open, a read and a close
            if _proc_stat_fd < 0:
                _proc_stat_fd = os.open(PROC_STAT, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            head = _pread(_proc_stat_fd, 512, 0)
        else:
            head = _read_start(proc_stat, 512)
    except OSError as err:
        raise SensorError(f"cannot read CPU times from {os.fspath(proc_stat)}: {err}") from err
    return _busy_from(head, proc_stat)


def _busy_from(head: bytes, proc_stat: str | os.PathLike[str]) -> float:
    """Busy CPU seconds from the start of ``/proc/stat`` (``head``)."""
    fields = head.partition(b"\n")[0].split()  # "cpu", user nice system idle iowait irq ...
    if len(fields) < 5 or fields[0] != b"cpu":
        raise SensorError(f"unexpected first line in {os.fspath(proc_stat)}: {head[:80]!r}")
    try:
        busy = int(fields[1]) + int(fields[2]) + int(fields[3])  # user nice system
        for irq in fields[6:8]:  # irq softirq, where the kernel writes them
            busy += int(irq)
    except ValueError as err:
        raise SensorError(f"unexpected CPU times in {os.fspath(proc_stat)}: {err}") from err
    return busy / _clock_ticks_per_s()


@cache
def _clock_ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK")


@cache
def utilisation_resolution_s() -> float:
    """The step, in seconds, in which CPU times (the machine's and a process's) advance.

    One clock tick, ``1 / SC_CLK_TCK`` (10 ms on almost every Linux and macOS): ``/proc/stat``,
    ``times(2)`` behind :func:`os.times` and psutil's CPU times all count in it. Without
    ``sysconf`` (Windows), 15.625 ms, the default timer interrupt period that updates its CPU
    times.
    """
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 1.0 / 64


def short_window_note(resolution_s: float, what: str) -> str:
    """The sentence for a window shorter than the step of the CPU time that ``what`` rests on."""
    return (
        f"The window is shorter than the {resolution_s * 1e3:.3g} ms steps in which CPU time is"
        f" counted, so {what}."
    )


def _busy_from_psutil() -> float:
    import psutil  # elsewhere than Linux only: importing it costs tens of milliseconds

    try:
        times = psutil.cpu_times()
    except psutil.Error as err:
        raise SensorError(f"cannot read CPU times: {err}") from err
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")
    return float(sum(getattr(times, f) for f in times._fields if f not in not_busy))


def process_rss_bytes(statm: str | os.PathLike[str] = PROC_SELF_STATM) -> int:
    """Resident memory of this process in bytes (``/proc/self/statm``, else psutil)."""
    if not _LINUX and os.path.normpath(statm) == PROC_SELF_STATM:
        import psutil

        try:
            return int(psutil.Process().memory_info().rss)
        except psutil.Error as err:
            raise SensorError(f"cannot read this process's memory: {err}") from err
    try:
        if statm is PROC_SELF_STATM and _LINUX:
            text = _pread(_statm_fd(), 256, 0)
        else:
            text = _read_start(statm, 256)
        return int(text.split()[1]) * _page_size()
    except OSError as err:
        raise SensorError(f"cannot read memory from {os.fspath(statm)}: {err}") from err
    except (IndexError, ValueError) as err:
        raise SensorError(f"unexpected content in {os.fspath(statm)}: {text[:80]!r}") from err


#: (pid, descriptor) of this process's kept ``/proc/self/statm``: the file of the process that
#: opened it, so a forked child opens its own.
_statm: tuple[int, int] = (-1, -1)
_statm_lock = _thread.allocate_lock()


def _statm_fd() -> int:
    """The kept descriptor of this process's ``/proc/self/statm`` (raises OSError)."""
    global _statm
    pid = os.getpid()
    if _statm[0] == pid:
        return _statm[1]
    with _statm_lock:
        owner, fd = _statm
        if owner != pid:
            if fd >= 0:  # the parent's, inherited through fork
                os.close(fd)
                _statm = (-1, -1)
            fd = os.open(PROC_SELF_STATM, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            _statm = (pid, fd)
        return fd


@cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def installed_memory_bytes() -> int:
    """The machine's installed memory in bytes (sysconf; psutil where sysconf lacks it)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    import psutil

    try:
        return int(psutil.virtual_memory().total)
    except (psutil.Error, OSError) as err:
        raise SensorError(f"cannot read installed memory: {err}") from err


# -- CPU model and TDP ---------------------------------------------------------------------------


class CpuInfo(NamedTuple):
    """What ``/proc/cpuinfo`` says: the model name (None if unknown) and the socket count."""

    model_name: str | None
    sockets: int = 1


def read_cpuinfo(cpuinfo_path: str | os.PathLike[str] = PROC_CPUINFO) -> CpuInfo:
    """The CPU model name and number of physical packages.

    The name is the first ``model name`` line; on Arm Linux, the core named by ``CPU implementer``
    and ``CPU part``. Without a cpuinfo file: on macOS ``machdep.cpu.brand_string`` (for example
    ``Apple M2 Pro``), else :func:`platform.processor`. Sockets count the distinct ``physical id``
    values (1 when there are none). This machine's (the default path) is read once per process.
    """
    return _this_machine() if cpuinfo_path == PROC_CPUINFO else _read_cpuinfo(cpuinfo_path)


@cache
def _this_machine() -> CpuInfo:
    """This machine's :class:`CpuInfo`, read once: the model and its packages do not change
    while the process runs, and ``measure_energy`` without a meter makes a meter per call
    (parsing the file took a fifth of making one; on macOS, its stand-in runs ``sysctl``)."""
    return _read_cpuinfo(PROC_CPUINFO)


def _read_cpuinfo(cpuinfo_path: str | os.PathLike[str]) -> CpuInfo:
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return CpuInfo(_model_name_elsewhere())
    except OSError as err:
        raise SensorError(f"cannot read {os.fspath(cpuinfo_path)}: {err}") from err
    model: str | None = None
    implementer = part = None
    sockets: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None and value:
            model = value
        elif key == "physical id":
            sockets.add(value)
        elif key == "CPU implementer" and implementer is None:
            implementer = value.lower()
        elif key == "CPU part" and part is None:
            part = value.lower()
    if model is None and implementer is not None:
        model = _ARM_CORES.get((implementer, part or ""))
    return CpuInfo(model, max(len(sockets), 1))


def _model_name_elsewhere() -> str | None:
    import platform
    import subprocess

    if sys.platform == "darwin":
        try:
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=True,
            )
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            if done.stdout.strip():
                return done.stdout.strip()
    name = platform.processor()
    return name if name and name not in ("unknown", platform.machine()) else None


class TdpRow:
    """One row of ``cpu_tdp.csv``: a case-insensitive regex, the TDP per package, its source.

    The regex is compiled when first needed: matching a CPU name compiles only the rows whose
    required literal text (:func:`_required_text`) the name contains, so that starting a meter
    does not compile the hundreds of rows that cannot match.
    """

    __slots__ = ("_compiled", "key", "regex", "source", "tdp_w", "threads")

    def __init__(self, regex: str, tdp_w: float, threads: int | None, source: str, *,
                 compiled: re.Pattern[str] | None = None, key: str | None = None) -> None:
        #: The row's regular expression, as written in the table.
        self.regex = regex
        self.tdp_w = tdp_w
        #: Hardware threads per package, when known: a VM that sees fewer gets its share.
        self.threads = threads
        self.source = source
        #: Lower-case text every name the regex matches contains ("" when none can be told);
        #: the shipped table gives it in its ``key`` column, checked by the tests.
        self.key = _required_text(regex) if key is None else key
        self._compiled = compiled

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled, case-insensitive regex."""
        if self._compiled is None:
            import re

            self._compiled = re.compile(self.regex, re.IGNORECASE)
        return self._compiled

    def __repr__(self) -> str:
        return (f"TdpRow({self.regex!r}, {self.tdp_w!r}, {self.threads!r}, "
                f"{self.source!r})")


def _required_text(regex: str) -> str:
    """The longest run of letters, digits, spaces and dashes that every match of ``regex``
    contains, lower-cased; "" when the regex has an alternative (``|``) or no such run.

    Only text outside groups and character classes counts, and a character followed by an
    optional quantifier (``?``, ``*``, ``{``) is left out of its run; an escaped character
    ends a run.
    """
    if "|" in regex:
        return ""
    runs: list[str] = []
    run = ""
    depth = 0
    i = 0
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            runs.append(run)
            run = ""
            i += 2
            continue
        if c == "[":
            runs.append(run)
            run = ""
            i += 1
            while i < len(regex) and regex[i] != "]":
                i += 2 if regex[i] == "\\" else 1
        elif c in "?*{":
            runs.append(run[:-1])
            run = ""
            if c == "{":
                i = regex.find("}", i)
                if i < 0:
                    return ""
        elif depth == 0 and c.isascii() and (c.isalnum() or c in " -"):
            run += c
        else:
            depth += (c == "(") - (c == ")")
            runs.append(run)
            run = ""
        i += 1
    runs.append(run)
    return max(runs, key=len).lower()


def load_tdp_table(text: str | None = None) -> tuple[TdpRow, ...]:
    """The rows of the shipped ``cpu_tdp.csv`` (or of ``text``, in the same format).

    The rows of ``text`` are compiled now, so that a bad regex is an error here, and their
    required text is worked out from the regex (a ``key`` column in ``text`` is not trusted);
    the shipped rows (checked by the tests) are compiled when a CPU name needs them, and their
    required text is read from the file's ``key`` column.
    """
    if text is None:
        return _shipped_table()
    return _parse_table(text, compile_now=True)


def _parse_table(text: str, *, compile_now: bool) -> tuple[TdpRow, ...]:
    """Rows of a ``cpu_tdp.csv`` text. ``compile_now=False`` (the shipped table) also takes each
    row's required text from its ``key`` column, when the text has one."""
    # imported here: csv imports re, and a first measurement needs neither (_match_shipped)
    import csv
    import io
    import re

    lines = csv.reader(io.StringIO(text))
    header = next(lines, [])
    try:
        at = [header.index(name) for name in ("pattern", "tdp_w", "threads", "source")]
    except ValueError as err:
        raise ConfigError(f"cpu_tdp.csv line 1: no column {str(err).split()[0]}; the header is "
                          "pattern,tdp_w,threads,source") from err
    key_at = header.index("key") if not compile_now and "key" in header else None
    rows = []
    for n, rec in enumerate(lines, start=2):
        if not rec:
            continue  # a blank line
        rec += [""] * (len(header) - len(rec))  # threads and source may be left off
        try:
            regex, tdp_text, threads_text, source = (rec[i] for i in at)
            tdp_w = float(tdp_text)
            threads = int(threads_text) if threads_text else None
            compiled = re.compile(regex, re.IGNORECASE) if compile_now else None
        except (TypeError, ValueError, re.error) as err:
            raise ConfigError(f"cpu_tdp.csv line {n}: {err}") from err
        if tdp_w <= 0 or (threads is not None and threads <= 0):
            raise ConfigError(f"cpu_tdp.csv line {n}: tdp_w and threads must be > 0")
        key = rec[key_at] if key_at is not None else None
        rows.append(TdpRow(regex, tdp_w, threads, source, compiled=compiled, key=key))
    return tuple(rows)


@cache
def _shipped_table() -> tuple[TdpRow, ...]:
    text = read_text("cpu_tdp.csv")
    return _parse_table(text, compile_now=False)


@lru_cache(maxsize=8)
def _match_shipped(model_name: str) -> TdpRow | None:
    """:func:`match_tdp_row` of the shipped table, parsing only the rows whose ``key`` (the
    last field of a line: its text has no comma or quote) is in the name. Kept per name: a
    meter made per call (``measure_energy`` without one) reads and scans the table once."""
    if not model_name.isascii():
        return match_tdp_row(model_name, _shipped_table())
    folded = model_name.lower()
    header, *lines = read_text("cpu_tdp.csv").splitlines()
    picked = [line for line in lines if line.rpartition(",")[2] in folded]
    if not picked:  # no row can match: nothing to parse or compile
        return None
    return match_tdp_row(model_name, _parse_table("\n".join([header, *picked]),
                                                  compile_now=False))


def match_tdp_row(model_name: str, table: Sequence[TdpRow]) -> TdpRow | None:
    """The row whose pattern matches the longest part of ``model_name`` (the first on a tie).

    Rows whose required text the (ASCII) name lacks cannot match and are skipped uncompiled.
    """
    folded = model_name.lower() if model_name.isascii() else None
    best: TdpRow | None = None
    best_len = -1
    for row in table:
        if folded is not None and row.key not in folded:
            continue
        m = row.pattern.search(model_name)
        if m is not None and len(m.group(0)) > best_len:
            best, best_len = row, len(m.group(0))
    return best


class TdpChoice(NamedTuple):
    """The TDP the CPU estimate uses, where it came from, and a line saying so."""

    tdp_w: float
    #: ``"user"``, ``"table"`` or ``"default"``.
    origin: str
    detail: str


def _w(x: float) -> str:
    return f"{x:.4g} W"


def choose_tdp(
    cpu_tdp_w: float | None = None,
    *,
    cpuinfo_path: str | os.PathLike[str] = PROC_CPUINFO,
    n_cpus: int | None = None,
    table: Sequence[TdpRow] | None = None,
) -> TdpChoice:
    """The CPU's TDP: ``cpu_tdp_w`` if given, else the table, else a per-thread default.

    A table TDP is per package and is multiplied by the sockets in cpuinfo. When fewer logical
    CPUs are visible than the packages have threads (a VM with a slice of a big server CPU), it
    is scaled to the visible share, so that a 2-vCPU VM is not charged for a 128-thread package.
    """
    n = n_cpus if n_cpus is not None else (os.cpu_count() or 1)
    if cpu_tdp_w is not None:
        if not cpu_tdp_w > 0:
            raise ConfigError(f"cpu_tdp_w must be > 0 watts, not {cpu_tdp_w}")
        return TdpChoice(float(cpu_tdp_w), "user", f"TDP {_w(cpu_tdp_w)} given as cpu_tdp_w")
    info = read_cpuinfo(cpuinfo_path)
    if not info.model_name:
        row = None
    elif table is None:
        row = _match_shipped(info.model_name)
    else:
        row = match_tdp_row(info.model_name, table)
    if row is not None:
        assert info.model_name is not None
        tdp_w = row.tdp_w * info.sockets
        what = _w(row.tdp_w) if info.sockets == 1 else f"{info.sockets} x {_w(row.tdp_w)}"
        detail = f"TDP {what} from table match {info.model_name!r} ({row.source})"
        if row.threads is not None and n < row.threads * info.sockets:
            tdp_w = row.tdp_w * n / row.threads
            detail += f", scaled to the {n} of {row.threads * info.sockets} threads visible"
            detail += f" = {_w(tdp_w)}"
        elif info.sockets > 1:
            detail += f" = {_w(tdp_w)}"
        return TdpChoice(tdp_w, "table", detail)
    shown = repr(info.model_name) if info.model_name else "an unknown CPU"
    tdp_w = n * DEFAULT_TDP_W_PER_THREAD
    detail = (
        f"TDP {_w(tdp_w)} = {n} threads x {_w(DEFAULT_TDP_W_PER_THREAD)} default "
        f"(no table match for {shown}); pass cpu_tdp_w for a better figure"
    )
    return TdpChoice(tdp_w, "default", detail)


# -- sensors -------------------------------------------------------------------------------------


class CpuEstimate(CounterSensor):
    """Estimated CPU energy from a TDP and the machine's CPU utilisation.

    ``energy_j()`` is ``TDP x (IDLE_FRACTION x wall_s + (1 - IDLE_FRACTION) x busy_cpu_s /
    n_cpus)`` accumulated since the sensor was made, with ``busy_cpu_s`` of each interval between
    reads capped at ``n_cpus x wall_s`` (the excess, up to one ``resolution_s`` per CPU, carried
    to the next interval): the power between any two reads is never above the TDP.
    ``busy_cpu_s`` (a function returning the machine's cumulative busy CPU seconds), ``n_cpus``,
    ``clock`` and ``resolution_s`` (the step of ``busy_cpu_s``, default
    :func:`utilisation_resolution_s`) are injectable.
    """

    def __init__(
        self,
        tdp: TdpChoice,
        *,
        n_cpus: int | None = None,
        busy_cpu_s: Callable[[], float] = machine_busy_cpu_s,
        clock: Callable[[], float] = time.perf_counter,
        resolution_s: float | None = None,
    ) -> None:
        self.tdp = tdp
        self.n_cpus = n_cpus if n_cpus is not None else (os.cpu_count() or 1)
        #: The step in which ``busy_cpu_s`` advances, in seconds.
        self.resolution_s = (
            resolution_s if resolution_s is not None else utilisation_resolution_s()
        )
        self._busy_cpu_s = busy_cpu_s
        self._clock = clock
        self._carry_s = 0.0
        self._carry_max_s = self.n_cpus * self.resolution_s
        self._short_notes = (
            short_window_note(
                self.resolution_s,
                "its CPU utilisation is coarse (capped at full load: never above the TDP)",
            ),
        )
        self.name = "estimate:cpu"
        self.component = "cpu"
        self.source = Source.ESTIMATE
        self.measured = False
        self.description = (
            f"estimate: {tdp.detail}; power = TDP x ({IDLE_FRACTION:g} + "
            f"{1 - IDLE_FRACTION:g} x CPU utilisation of {self.n_cpus} logical CPUs)"
        )
        self.reads_cpu_times = 1
        self._energy_j = 0.0
        self._last: tuple[float, float] | None = (clock(), busy_cpu_s())

    def energy_j(self) -> float:
        return self.energy_j_at(self._clock())

    def energy_j_at(self, t: float) -> float:
        try:
            busy = self._busy_cpu_s()
        except SensorError:
            self._last = None  # the next read starts from a fresh baseline
            self._carry_s = 0.0
            raise
        last = self._last
        self._last = (t, busy)
        if last is not None:
            wall_s = t - last[0]
            if wall_s < 0.0:
                wall_s = 0.0
            # CPU hot-unplug can shrink the sum; a tick can bring more than the CPUs could do.
            busy_s = busy - last[1]
            if busy_s < 0.0:
                busy_s = 0.0
            busy_s += self._carry_s
            cap_s = self.n_cpus * wall_s
            if busy_s > cap_s:
                self._carry_s = min(busy_s - cap_s, self._carry_max_s)
                busy_s = cap_s
            else:
                self._carry_s = 0.0
            self._energy_j += self.tdp.tdp_w * (
                IDLE_FRACTION * wall_s + (1.0 - IDLE_FRACTION) * busy_s / self.n_cpus
            )
        return self._energy_j

    def notes(self, duration_s: float) -> tuple[str, ...]:
        return self._short_notes if duration_s < self.resolution_s else ()


class RamEstimate(CounterSensor):
    """Estimated memory energy: :data:`WATTS_PER_GIB` x GiB, integrated over wall time.

    ``mode="machine"``: installed memory (``total_bytes``, default from psutil), constant power.
    ``mode="process"``: this process's resident memory, read at each read (``rss_bytes``) and
    integrated with the trapezoidal rule between reads.
    """

    def __init__(
        self,
        *,
        mode: str = "machine",
        total_bytes: int | None = None,
        rss_bytes: Callable[[], int] = process_rss_bytes,
        clock: Callable[[], float] = time.perf_counter,
        watts_per_gib: float = WATTS_PER_GIB,
    ) -> None:
        if mode not in ("machine", "process"):
            raise ConfigError(f"mode must be 'machine' or 'process', not {mode!r}")
        self.mode = mode
        self.watts_per_gib = watts_per_gib
        self._rss_bytes = rss_bytes
        self._clock = clock
        self.name = "estimate:ram"
        self.component = "ram"
        self.source = Source.ESTIMATE
        self.measured = False
        self._energy_j = 0.0
        if mode == "machine":
            if total_bytes is None:
                total_bytes = installed_memory_bytes()
            self.total_bytes = total_bytes
            #: Constant power in machine mode, in watts.
            self.machine_power_w = watts_per_gib * total_bytes / _GIB
            self.description = (
                f"estimate: {watts_per_gib:g} W/GiB x {total_bytes / _GIB:.3g} GiB installed"
                f" = {_w(self.machine_power_w)}"
            )
            self._last: tuple[float, float] | None = (clock(), self.machine_power_w)
        else:
            self.description = (
                f"estimate: {watts_per_gib:g} W/GiB x this process's resident memory"
            )
            self._last = (clock(), self._power_now())

    def _power_now(self) -> float:
        if self.mode == "machine":
            return self.machine_power_w
        return self.watts_per_gib * self._rss_bytes() / _GIB

    def energy_j(self) -> float:
        return self.energy_j_at(self._clock())

    def energy_j_at(self, t: float) -> float:
        now = t
        try:
            power_w = self._power_now()
        except SensorError:
            self._last = None
            raise
        if self._last is not None:
            t0, power0_w = self._last
            self._energy_j += 0.5 * (power0_w + power_w) * max(now - t0, 0.0)
        self._last = (now, power_w)
        return self._energy_j


# -- backend -------------------------------------------------------------------------------------


class _BusyCpu:
    """``machine_busy_cpu_s(proc_stat)`` as a call without arguments (what
    :func:`functools.partial` makes; :mod:`functools` is not loaded for it)."""

    __slots__ = ("proc_stat",)

    def __init__(self, proc_stat: str | os.PathLike[str]) -> None:
        self.proc_stat = proc_stat

    def __call__(self) -> float:
        return machine_busy_cpu_s(self.proc_stat)


def cpu_estimate(
    cpu_tdp_w: float | None = None,
    *,
    cpuinfo_path: str | os.PathLike[str] = PROC_CPUINFO,
    proc_stat: str | os.PathLike[str] = PROC_STAT,
    n_cpus: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> CpuEstimate:
    """The CPU estimate for this machine, with its TDP chosen by :func:`choose_tdp`."""
    n = n_cpus if n_cpus is not None else (os.cpu_count() or 1)
    tdp = choose_tdp(cpu_tdp_w, cpuinfo_path=cpuinfo_path, n_cpus=n)
    # this machine's /proc/stat: the function itself, no call in between at each window edge
    busy = machine_busy_cpu_s if proc_stat == PROC_STAT else _BusyCpu(proc_stat)
    return CpuEstimate(tdp, n_cpus=n, busy_cpu_s=busy, clock=clock)


def ram_estimate(mode: str = "machine") -> RamEstimate:
    """The RAM estimate for this machine (installed memory) or this process (resident)."""
    return RamEstimate(mode=mode)


def available(options: DetectOptions) -> bool:
    """Always: estimation needs no hardware."""
    return True


def discover(
    options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """Estimates for ``cpu`` and ``ram`` where no earlier backend covers them."""
    sensors: list[Sensor] = []
    missing: list[MissingSensor] = []
    if "cpu" not in covered:
        try:
            sensors.append(cpu_estimate(options.cpu_tdp_w))
        except SensorError as err:
            missing.append(MissingSensor(NAME, f"cannot estimate CPU energy: {err}"))
    if "ram" not in covered:
        try:
            sensors.append(ram_estimate(options.mode))
        except SensorError as err:
            missing.append(MissingSensor(NAME, f"cannot estimate RAM energy: {err}"))
    return sensors, missing
