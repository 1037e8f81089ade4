"""RAPL energy counters from the Linux powercap tree (``/sys/class/powercap``).

Every zone directory ``<control type>:<index>`` (``intel-rapl:0``, ``intel-rapl:0:1``,
``intel-rapl-mmio:0``, any ``*rapl*`` control type) holds ``name``, ``energy_uj`` (a cumulative
counter in microjoules that wraps at ``max_energy_range_uj``) and, usually,
``constraint_N_max_power_uw``. Zones are found as top-level entries of the root, as subzones
nested in a zone, and inside a control type directory (``intel-rapl/intel-rapl:0``); a zone seen
under several paths is one zone (deduplicated by its directory name).

Which zones become sensors, so that nothing is counted twice:

* ``package-N`` -> component ``"cpu"``, one sensor per package (``rapl:package-N``). Its
  ``core`` and ``uncore`` subzones are parts of it: named in the description, never read.
* ``dram`` -> component ``"ram"``, one sensor per package (``rapl:dram-N``).
* ``psys`` (the whole platform, which contains the packages and the DRAM) -> ``"cpu"`` only
  when the tree has no package zone at all; it then stands alone: no ``dram`` zone is read
  beside it.
* MSR and MMIO: a domain exposed by both ``intel-rapl`` and ``intel-rapl-mmio`` (same name, same
  package) is read once, from the MSR zone, or from the MMIO zone when the MSR zone cannot be
  opened (the description says why); an MMIO zone is otherwise used only when no other
  interface exposes that domain.
* Dies: ``package-N-die-M`` zones of one package are read in a few rounds some milliseconds
  apart at detection (:func:`_find_mirrors`). Two of them mirror one counter only if they read
  the same value in two rounds and that value moved in between; mirrors are read once, as
  ``rapl:package-N``. Dies that differ, or that read alike but do not move, are separate
  counters, one sensor each: equal values alone never merge counters. When a ``package-N`` zone
  exists, its ``package-N-die-M`` zones are not read. The same rule applies to ``dram`` zones
  under die zones.
* Components in ``covered`` (found by an earlier backend) are skipped without opening anything.
* A component is all or nothing: if any of its zones cannot be opened (permission denied on
  ``energy_uj``, root-only on kernels patched for CVE-2020-8694), none of its sensors is returned
  and a :class:`MissingSensor` says why and how to fix it, so that estimation covers it instead of
  a silent undercount.

Reading: ``energy_uj`` is opened once and read with ``os.pread`` (a few microseconds). Wraps are
undone with :func:`counter_delta`; the meter reads each counter at least every
:meth:`RaplSensor.watch_interval_s` seconds so that no wrap goes unseen. A counter that went
back is a wrap only if the energy the wrap implies fits in :data:`POWER_MARGIN` x the zone's
maximum power (its largest ``constraint_*_max_power_uw``, else :data:`ASSUMED_MAX_POWER_W`)
x the time since the previous reading (+ :data:`READ_SLACK_S`). A bigger step back (a counter
that glitched back by a few µJ, or was reset) raises :class:`SensorError`, which marks the
window partial; it is never turned into a number. The watcher's reads keep that time short: at
its pace the bound is about half the wrap range (less between closer reads), so a counter that
steps back by less than half the range, or is reset while in the lower half of it, is caught.
A reset followed by a climb past the previous reading before the next read cannot be seen.
"""

from __future__ import annotations

import _thread
import os
import time

from .._log import get_logger
from ..errors import CounterWrapError, SensorError, SensorPermissionError
from .base import CounterSensor, MissingSensor, Sensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path
    from typing import NamedTuple

    from ._registry import DetectOptions
else:
    from .._typing import NamedTuple

__all__ = [
    "ASSUMED_MAX_POWER_W",
    "MIN_WATCH_S",
    "MIRROR_GAP_S",
    "MIRROR_ROUNDS",
    "MIRROR_WAIT_S",
    "NAME",
    "NO_RAPL_FIX",
    "POWER_MARGIN",
    "READ_SLACK_S",
    "UNKNOWN_RANGE_WATCH_S",
    "WATCH_SAFETY_FACTOR",
    "RaplSensor",
    "available",
    "counter_delta",
    "discover",
    "edge_reader",
    "permission_fix",
]

NAME = "rapl"

#: Power assumed for a zone that gives no ``constraint_*_max_power_uw`` (or only 0), to bound how
#: fast its counter can wrap. 1000 W is several times the largest server package TDP (about
#: 350-500 W in 2024) and far above any DRAM or laptop platform domain.
ASSUMED_MAX_POWER_W = 1000.0
#: A counter is read at least four times per shortest possible wrap period.
WATCH_SAFETY_FACTOR = 4.0
#: Never ask for reads more often than this, whatever the range and power say.
MIN_WATCH_S = 0.05
#: Watch interval of a counter whose wrap range is unknown: a wrap cannot be undone, but it is at
#: least detected (and reported as :class:`CounterWrapError`) rather than missed.
UNKNOWN_RANGE_WATCH_S = 60.0
#: A counter that went back is taken to have wrapped only if the energy the wrap implies fits in
#: ``POWER_MARGIN`` x the zone's maximum power x (the time since the previous reading +
#: :data:`READ_SLACK_S`); otherwise it glitched or was reset, and the reading is a fault. Twice
#: the maximum (2000 W for a zone that states none) leaves room for short bursts above a stated
#: long-term maximum, and stays below :data:`WATCH_SAFETY_FACTOR`, so that at the watcher's
#: pace a counter that steps back by a little can never pass for a wrap.
POWER_MARGIN = 2.0
#: Added to the time between two readings when bounding the energy between them: RAPL counters
#: update about every millisecond, and a reading may wait for the scheduler.
READ_SLACK_S = 0.01
#: Die counters of one package are read in at least this many rounds at detection, and in more
#: (up to :data:`MIRROR_WAIT_S`) while two of them read the same value but have not moved yet.
MIRROR_ROUNDS = 3
#: Pause between two mirror-detection rounds: long enough for a RAPL counter to update.
MIRROR_GAP_S = 0.005
#: Longest time mirror detection waits for die counters that read the same value to move.
MIRROR_WAIT_S = 0.2

NO_RAPL_FIX = (
    "RAPL needs Linux on an x86 CPU with the powercap RAPL driver loaded "
    "(sudo modprobe intel_rapl_msr); virtual machines and many containers do not expose it."
)

_READ_BYTES = 32
_clock = time.perf_counter
_pread = os.pread
#: Held while any RAPL counter is read or closed: a counter's reading and the state it updates
#: (last raw value, total) change together, and an edge's counters are read under one
#: acquisition. Not re-entrant (half the cost of an RLock at every edge): a sensor that the
#: garbage collector finalises closes its descriptor without it, as nothing else can hold it.
_READS = _thread.allocate_lock()
#: What :meth:`RaplSensor.read_edge` returns when every counter read (never appended to).
_NO_FAULTS: list[tuple[int, Exception]] = []
#: The native edge reader (``_edge.c``, built at install where a C compiler is found): an edge's
#: raw values in one call. None where it is not built, or ``WATTPRINT_PURE_PYTHON`` is set to
#: anything but ``0`` or nothing: each counter is then read with ``os.pread``. Either way the
#: readings are the same (see :func:`edge_reader`).
_read_counters: Callable[[Sequence[RaplSensor]], tuple[int, ...] | None] | None = None
if os.environ.get("WATTPRINT_PURE_PYTHON", "0") in ("", "0"):
    try:
        from . import _edge
    except ImportError:
        pass
    else:
        if getattr(_edge, "API", None) == 1:  # else built from another version of _edge.c
            _read_counters = _edge.read_counters


def edge_reader() -> str:
    """``"native"`` where window edges read the RAPL counters in one call of the native
    reader, ``"python"`` where they read them one ``os.pread`` at a time. The figures are the
    same; the native reader takes about a microsecond less per window of four counters."""
    return "native" if _read_counters is not None else "python"


class _Pattern:
    """A regular expression compiled at its first match: a machine without a powercap tree
    reads none, and a first measurement there imports no :mod:`re`."""

    __slots__ = ("_compiled", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._compiled: re.Pattern[str] | None = None

    def match(self, name: str) -> re.Match[str] | None:
        if self._compiled is None:
            import re

            self._compiled = re.compile(self.text)
        return self._compiled.match(name)


_ZONE_RE = _Pattern(r"^(?P<control>[\w.-]*rapl[\w.-]*):(?P<index>\d+(?::\d+)*)$")
_CONTROL_RE = _Pattern(r"^[\w.-]*rapl[\w.-]*$")
_MAX_POWER_RE = _Pattern(r"^constraint_\d+_max_power_uw$")
_PACKAGE_RE = _Pattern(r"^package-(?P<package>\d+)(?:-die-(?P<die>\d+))?$")

log = get_logger(__name__)


# -- wrap arithmetic -----------------------------------------------------------------------------


def counter_delta(last_uj: int, now_uj: int, max_energy_range_uj: int | None) -> int | None:
    """Microjoules between two raw readings of a counter that wraps at ``max_energy_range_uj``.

    A reading below the previous one means the counter wrapped once:
    ``now - last + max_energy_range_uj``. Returns ``None`` when a wrap cannot be undone: the
    range is unknown (``None`` or not positive) or smaller than the previous reading. Never
    negative. More than one wrap between two readings cannot be seen; reading at least every
    :meth:`RaplSensor.watch_interval_s` prevents it.
    """
    if now_uj >= last_uj:
        return now_uj - last_uj
    if max_energy_range_uj is None or max_energy_range_uj < last_uj:
        return None
    return now_uj - last_uj + max_energy_range_uj


# -- permission fix --------------------------------------------------------------------------------


def permission_fix(
    root: str | os.PathLike[str] = "/sys/class/powercap", controls: Iterable[str] = ("intel-rapl",)
) -> str:
    """How to let this user read the RAPL counters, as one paragraph."""
    globs = " ".join(f"{os.fspath(root)}/{c}:*/energy_uj" for c in sorted(set(controls)))
    return (
        f"the counters are root-only (kernel fix for CVE-2020-8694); either run as root, or "
        f"`sudo chmod a+r {globs}` (lost at reboot), or make it permanent with the udev rule "
        f'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod a+r /sys%p/energy_uj" '
        f"in /etc/udev/rules.d/99-wattprint-rapl.rules (or chgrp the files to a trusted group "
        f"and chmod g+r). Readable counters let local users run power side-channel attacks: "
        f"grant access only on machines whose users you trust."
    )


# -- the sensor ------------------------------------------------------------------------------------


class RaplSensor(CounterSensor):
    """One RAPL zone's ``energy_uj`` counter, in joules since the sensor was made.

    ``zone_dir`` is the zone directory. The counter file is opened here and held open until
    :meth:`close`; ``max_energy_range_uj`` and the ``constraint_*_max_power_uw`` files are read
    here once. A missing or unreadable range does not stop the sensor: a later wrap then raises
    :class:`CounterWrapError`. A counter that goes back by more than a wrap can explain (see
    :data:`POWER_MARGIN`) raises :class:`SensorError`: it glitched or was reset. After either,
    the next read starts from a fresh baseline. Opening raises :class:`SensorPermissionError`
    (with ``fix``) or :class:`SensorError`. Safe to read from several threads.
    """

    def __init__(
        self,
        zone_dir: str | os.PathLike[str],
        *,
        name: str,
        component: str,
        description: str = "",
        fix: str | None = None,
    ) -> None:
        self._zone_dir = os.fspath(zone_dir)
        self.name = name
        self.component = component
        self.source = Source.RAPL
        self.measured = True
        self.path = os.path.join(self._zone_dir, "energy_uj")
        self.description = description or f"RAPL counter {self.path}"
        self._fix = fix or permission_fix()
        self.max_energy_range_uj, self.range_problem = _read_int(
            os.path.join(self._zone_dir, "max_energy_range_uj")
        )
        #: The zone's maximum power in microwatts (the largest ``constraint_*_max_power_uw``),
        #: ``None`` when none is given or all are 0.
        self.max_power_uw = _max_power_uw(self._zone_dir)
        power_w = self.max_power_uw / 1e6 if self.max_power_uw else ASSUMED_MAX_POWER_W
        #: The most energy per second a wrap may imply before it is taken for a glitch, in µJ/s.
        self.max_wrap_rate_uj_per_s = POWER_MARGIN * power_w * 1e6
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as err:
            raise self._error("opening", err) from err
        self._last_t = _clock()
        try:
            first = self.read_raw_uj()
        except SensorError:
            self.close()
            raise
        #: The last raw reading (µJ), None after a failed one.
        self._last_uj: int | None = first
        #: The energy since the sensor was made is ``_last_uj + _offset_uj`` µJ (and
        #: ``_offset_uj`` alone while ``_last_uj`` is None): a reading changes only the offset
        #: at a wrap or a fresh baseline, so the common read updates no total.
        self._offset_uj = -first

    @property
    def zone_dir(self) -> Path:
        """The zone directory."""
        from pathlib import Path

        return Path(self._zone_dir)

    def read_raw_uj(self) -> int:
        """The raw counter now, in microjoules; does not change the sensor's state."""
        try:
            return int(_pread(self._fd, _READ_BYTES, 0))
        except (OSError, ValueError) as err:
            raise self._read_error(err) from err

    def energy_j(self) -> float:
        return self.energy_j_at(_clock())  # just before the read, which follows at once

    def energy_j_at(self, t: float) -> float:
        """:meth:`energy_j`, ``t`` being the moment of the reading (a window edge's time,
        taken just before: the read follows at once, the GIL held)."""
        return self._read_alone(t)

    @classmethod
    def read_edge(
        cls, sensors: Sequence[CounterSensor], t: float, out: list[float | None],
        at: Sequence[int],
    ) -> list[tuple[int, Exception]]:
        """Every counter in ``sensors`` read at ``t`` under one lock: joules since each sensor
        was made into ``out``, or the :class:`SensorError` that reading raised (that sensor
        then starts from a fresh baseline).

        The raw values come from the native reader (:func:`edge_reader`) in one call where it
        is built; when it finds a counter that is not plain digits, or a read fails,
        the edge is read again here, one ``os.pread`` per counter, which raises the fault."""
        faults: list[tuple[int, Exception]] = _NO_FAULTS
        rapl: Sequence[RaplSensor] = sensors  # type: ignore[assignment]  # this class's
        _READS.acquire()  # not ``with``: the edge's hot path, and nothing here can block
        try:
            nows = _read_counters(rapl) if _read_counters is not None else None
            if nows is not None:
                # made together by the meter; no ``strict=``: a keyword makes zip cost 0.5 µs
                for i, s, now in zip(at, rapl, nows):  # noqa: B905
                    last = s._last_uj
                    s._last_uj = now
                    if last is not None and now >= last:  # the common case: no state but these
                        s._last_t = t
                        out[i] = (now + s._offset_uj) / 1e6
                        continue
                    try:
                        out[i] = s._settle(last, now, t)
                    except SensorError as err:
                        if faults is _NO_FAULTS:
                            faults = []
                        faults.append((i, err))
                return faults
            # the steps of the loop above, each counter read first: two loops, not one over a
            # list of readings, keep a list and a test per counter off either reader's edge
            pread, size = _pread, _READ_BYTES
            for i, s in zip(at, rapl):  # noqa: B905
                try:
                    now = int(pread(s._fd, size, 0))
                except (OSError, ValueError) as err:
                    if s._last_uj is not None:  # the offset keeps the total until a reading
                        s._offset_uj += s._last_uj
                        s._last_uj = None
                    if faults is _NO_FAULTS:
                        faults = []
                    faults.append((i, s._read_error(err)))
                    continue
                last = s._last_uj
                s._last_uj = now
                if last is not None and now >= last:
                    s._last_t = t
                    out[i] = (now + s._offset_uj) / 1e6
                    continue
                try:
                    out[i] = s._settle(last, now, t)
                except SensorError as err:
                    if faults is _NO_FAULTS:
                        faults = []
                    faults.append((i, err))
        finally:
            _READS.release()
        return faults

    def _settle(self, last: int | None, now: int, t: float) -> float:
        """Joules since the sensor was made, from a reading ``now`` taken at ``t`` that is the
        first after a failed one (``last`` None: a fresh baseline) or below the previous
        reading ``last`` (a wrap, else a fault). ``_last_uj`` is already ``now``. Raises the
        :class:`SensorError` of a step back that no wrap explains; the baseline is then
        ``now``'s reading. Called with :data:`_READS` held."""
        if last is None:
            self._offset_uj -= now
            self._last_t = t
            return (now + self._offset_uj) / 1e6
        elapsed, self._last_t = t - self._last_t, t
        total = last + self._offset_uj
        try:
            total += self._wrapped(last, now, elapsed)
        finally:  # either way, the total so far is kept from ``now`` on
            self._offset_uj = total - now
        return (now + self._offset_uj) / 1e6

    def _read_error(self, err: OSError | ValueError) -> SensorError:
        """The error a failed read of the counter raises, chained to ``err``."""
        made = (self._error("reading", err) if isinstance(err, OSError) else
                SensorError(f"{self.path}: not an energy counter value: {err}"))
        made.__cause__ = err
        return made

    def _wrapped(self, last: int, now: int, elapsed_s: float) -> int:
        """Microjoules across a wrap from ``last`` to ``now``, ``elapsed_s`` apart.

        Raises :class:`CounterWrapError` when the range is unknown and :class:`SensorError`
        when no single wrap can explain the step back in that time: a glitch or a reset.
        """
        max_range = self.max_energy_range_uj
        if max_range is None:
            raise CounterWrapError(
                f"{self.path} went back from {last} to {now} µJ (wrapped) and its wrap "
                f"range max_energy_range_uj is unknown ({self.range_problem}); the "
                f"energy across the wrap is lost"
            )
        delta = counter_delta(last, now, max_range)
        if delta is None:
            raise SensorError(
                f"{self.path} went back from {last} to {now} µJ, and {last} is above its wrap "
                f"range max_energy_range_uj={max_range}: a glitch or a reset of the counter; "
                f"the energy since the previous reading is lost"
            )
        limit_uj = self.max_wrap_rate_uj_per_s * (elapsed_s + READ_SLACK_S)
        if delta > limit_uj:
            raise SensorError(
                f"{self.path} went back from {last} to {now} µJ in {elapsed_s:.3g} s: as a wrap "
                f"(at max_energy_range_uj={max_range}) that would be {delta / 1e6:.6g} J, more "
                f"than the {limit_uj / 1e6:.6g} J that {self.max_wrap_rate_uj_per_s / 1e6:g} W "
                f"({POWER_MARGIN:g} x the zone's {self._max_power_text()}) allows; the counter "
                f"glitched or was reset, and the energy since the previous reading is lost"
            )
        return delta

    def _max_power_text(self) -> str:
        if self.max_power_uw:
            return f"maximum power {self.max_power_uw / 1e6:g} W"
        return f"assumed maximum power {ASSUMED_MAX_POWER_W:g} W, none being given"

    def watch_interval_s(self) -> float:
        """A quarter of the shortest time the counter can take to wrap, at least 0.05 s.

        Wrap period = ``max_energy_range_uj`` / maximum power (the largest
        ``constraint_*_max_power_uw``, else :data:`ASSUMED_MAX_POWER_W`). With an unknown
        range: :data:`UNKNOWN_RANGE_WATCH_S`.
        """
        if self.max_energy_range_uj is None:
            return UNKNOWN_RANGE_WATCH_S
        power_uw = self.max_power_uw or ASSUMED_MAX_POWER_W * 1e6
        period_s = self.max_energy_range_uj / power_uw
        return max(period_s / WATCH_SAFETY_FACTOR, MIN_WATCH_S)

    def __del__(self) -> None:
        # Unreachable, so no read can be under way: no lock (the collector may run this in
        # the middle of a read by this thread, which holds the lock).
        self._close_fd()

    def close(self) -> None:
        with _READS:
            self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1  # absent when __init__ failed early
        if fd >= 0:
            os.close(fd)

    def _error(self, action: str, err: OSError) -> SensorError:
        if isinstance(err, PermissionError):
            return SensorPermissionError(f"permission denied {action} {self.path}", fix=self._fix)
        return SensorError(f"{action} {self.path} failed: {err.strerror or err}")


def _max_power_uw(zone_dir: str) -> int | None:
    """The largest positive ``constraint_*_max_power_uw`` of a zone, ``None`` if there is none."""
    try:
        names = [n for n in os.listdir(zone_dir) if _MAX_POWER_RE.match(n)]
    except OSError:
        return None
    values = [v for v in (_read_int(os.path.join(zone_dir, n))[0] for n in names)
              if v is not None]
    return max(values, default=None)


def _read_int(path: str) -> tuple[int | None, str | None]:
    """A non-negative integer file: ``(value, None)`` or ``(None, what went wrong)``."""
    try:
        with open(path, "rb") as f:
            text = f.read(64)
    except OSError as err:
        return None, f"{path}: {err.strerror or err}"
    try:
        value = int(text)
    except ValueError:
        return None, f"{path}: not a number: {text!r}"
    if value <= 0:
        return None, f"{path}: not positive: {value}"
    return value, None


# -- discovery -------------------------------------------------------------------------------------


class _Zone(NamedTuple):
    zone_id: str  # "intel-rapl:0:1"
    path: str
    control: str  # "intel-rapl"
    numbers: tuple[int, ...]  # (0, 1)
    name: str  # "dram"

    @property
    def mmio(self) -> bool:
        return "mmio" in self.control

    @property
    def parent_id(self) -> str | None:
        if len(self.numbers) < 2:
            return None
        return f"{self.control}:{':'.join(map(str, self.numbers[:-1]))}"


class _Domain(NamedTuple):
    kind: str  # "package", "dram", "psys", "core", "uncore"
    package: int | None
    die: int | None
    zone: _Zone

    @property
    def label(self) -> str:
        """``package-0``, ``dram-1-die-0``, ``psys``."""
        if self.package is None:
            return self.kind if self.kind == "psys" else f"{self.kind}@{self.zone.zone_id}"
        die = "" if self.die is None else f"-die-{self.die}"
        return f"{self.kind}-{self.package}{die}"

    @property
    def group(self) -> tuple[str, int | str | None]:
        """Domains in one group are the same energy: only one (or its distinct dies) is read."""
        if self.package is not None or self.kind == "psys":
            return self.kind, self.package
        return self.kind, ":".join(map(str, self.zone.numbers))  # MSR and MMIO share indices


def available(options: DetectOptions) -> bool:
    """Whether the powercap root exists (no file is opened)."""
    return os.path.isdir(options.powercap_root)


def discover(options: DetectOptions, covered: set[str]) -> tuple[list[Sensor], list[MissingSensor]]:
    """The RAPL counters under ``options.powercap_root``, and why any are missing."""
    root = options.powercap_root
    if not os.path.isdir(root):
        return [], [MissingSensor(NAME, f"no powercap tree at {root}", NO_RAPL_FIX)]
    try:
        zones, missing = _scan(root)
    except OSError as err:
        return [], [MissingSensor(NAME, f"cannot list {root}: {err.strerror or err}")]
    domains = [d for d in (_classify(z, zones) for z in zones.values()) if d is not None]
    if not any(d.kind in ("package", "dram", "psys") for d in domains):
        missing.append(MissingSensor(NAME, f"no RAPL energy zones under {root}", NO_RAPL_FIX))
        return [], missing
    fix = permission_fix(root, {z.control for z in zones.values()})
    sensors: list[Sensor] = []
    for picks in _plan(domains, covered).values():
        found, problem = _open_component(picks, domains, fix)
        if problem is not None:
            missing.append(problem)
        sensors.extend(found)
    return sensors, missing


def _scan(root: str) -> tuple[dict[str, _Zone], list[MissingSensor]]:
    """Every zone with an ``energy_uj`` file, by zone id, whatever paths it is seen under."""
    dirs: dict[str, str] = {}
    top = root

    def visit(directory: str, parent_id: str | None) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        here = [
            e
            for e in entries
            if _ZONE_RE.match(e.name)
            and (parent_id is None or e.name.startswith(parent_id + ":"))
            and e.is_dir()
            and os.path.exists(os.path.join(e.path, "energy_uj"))
        ]
        for entry in here:  # before descending: the shortest path to a zone wins
            dirs.setdefault(entry.name, entry.path)
        for entry in here:
            visit(entry.path, entry.name)
        if directory == top:
            for entry in entries:  # control type directories such as intel-rapl/
                if _CONTROL_RE.match(entry.name) and entry.is_dir():
                    visit(entry.path, None)

    visit(top, None)
    zones: dict[str, _Zone] = {}
    missing: list[MissingSensor] = []
    for zone_id, path in dirs.items():
        match = _ZONE_RE.match(zone_id)
        assert match is not None
        name_file = os.path.join(path, "name")
        try:
            with open(name_file, encoding="ascii", errors="replace") as f:
                name = f.read().strip()
        except OSError as err:
            missing.append(MissingSensor(NAME, f"cannot read {name_file}: {err.strerror}"))
            continue
        index = tuple(int(i) for i in match["index"].split(":"))
        zones[zone_id] = _Zone(zone_id, path, match["control"], index, name)
    ordered = sorted(zones.values(), key=lambda z: (z.mmio, z.control, z.numbers))
    return {z.zone_id: z for z in ordered}, missing


def _classify(zone: _Zone, zones: dict[str, _Zone]) -> _Domain | None:
    package = _PACKAGE_RE.match(zone.name)
    if package is not None:
        die = package["die"]
        return _Domain("package", int(package["package"]), None if die is None else int(die), zone)
    if zone.name == "psys":
        return _Domain("psys", None, None, zone)
    if zone.name in ("dram", "core", "uncore"):
        parent = zones.get(zone.parent_id or "")
        owner = _PACKAGE_RE.match(parent.name) if parent is not None else None
        if owner is None:
            return _Domain(zone.name, None, None, zone)
        die = owner["die"]
        return _Domain(zone.name, int(owner["package"]), None if die is None else int(die), zone)
    log.debug("skipping RAPL zone %s named %r", zone.path, zone.name)
    return None


_COMPONENT = {"package": "cpu", "dram": "ram"}

#: One counter to open: its zones in order of preference (the MSR zone, then its MMIO twins).
_Pick = list[_Domain]


class _Opened(NamedTuple):
    domain: _Domain
    sensor: RaplSensor
    passed_over: str | None  # why a preferred twin (MSR) was not used, if one was not


def _plan(domains: list[_Domain], covered: set[str]) -> dict[str, list[list[_Pick]]]:
    """Per component, the groups of counters to open: one counter each, or the dies of one
    package. Each counter is a :data:`_Pick` of twin zones, the MSR zone first."""
    groups: dict[tuple[str, int | str | None], list[_Domain]] = {}
    for d in domains:
        if d.kind in ("package", "dram", "psys"):
            groups.setdefault(d.group, []).append(d)
    kinds = {kind for kind, _ in groups}
    psys_used = "psys" in kinds and "package" not in kinds and "cpu" not in covered
    plan: dict[str, list[list[_Pick]]] = {}
    for (kind, _), members in groups.items():
        if kind == "psys" and "package" in kinds:
            continue  # psys contains the packages
        if kind == "dram" and psys_used:
            continue  # psys contains the DRAM too
        component = _COMPONENT.get(kind, "cpu")
        if component in covered:
            continue
        mmio = [d for d in members if d.zone.mmio]
        preferred = [d for d in members if not d.zone.mmio] or mmio  # MSR before MMIO
        whole = [d for d in preferred if d.die is None]
        chosen = whole[:1] or sorted(preferred, key=lambda d: d.die or 0)
        picks = [[d, *(m for m in mmio if m.die == d.die and m != d)] for d in chosen]
        plan.setdefault(component, []).append(picks)
    return plan


def _open_component(
    groups: list[list[_Pick]], domains: list[_Domain], fix: str
) -> tuple[list[RaplSensor], MissingSensor | None]:
    """Open every counter of one component, all or nothing; drop mirrored dies."""
    opened: list[list[_Opened]] = []
    failures: list[SensorError] = []
    for group in groups:
        members: list[_Opened] = []
        for pick in group:
            got = _open_pick(pick, fix)
            if isinstance(got, SensorError):
                failures.append(got)
            else:
                members.append(got)
        opened.append(members)
    kept: list[RaplSensor] = []
    if not failures:
        for members in opened:
            try:
                kept.extend(_drop_mirrors(members, domains))
            except SensorError as err:
                failures.append(err)
    if failures:
        for members in opened:
            for o in members:
                o.sensor.close()
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        reason = getattr(first, "reason", str(first)) + more
        return [], MissingSensor(NAME, reason, fix if isinstance(first, PermissionError) else None)
    return kept, None


def _open_pick(pick: _Pick, fix: str) -> _Opened | SensorError:
    """The first of a counter's twin zones that opens, or the error of the preferred one."""
    errors: list[tuple[_Domain, SensorError]] = []
    for d in pick:
        try:
            sensor = RaplSensor(
                d.zone.path, name=f"rapl:{d.label}", component=_COMPONENT.get(d.kind, "cpu"),
                fix=fix,
            )
        except SensorError as err:
            errors.append((d, err))
            continue
        if d.kind == "psys":
            sensor.covers = ("ram",)  # the platform's energy holds the DRAM's
        passed_over = "; ".join(
            f"{p.zone.zone_id} cannot be read: {getattr(e, 'reason', str(e))}" for p, e in errors
        )
        return _Opened(d, sensor, passed_over or None)
    return errors[0][1]


def _drop_mirrors(members: list[_Opened], domains: list[_Domain]) -> list[RaplSensor]:
    """Close die counters that mirror an earlier die; name and describe the ones kept."""
    mirrors = _find_mirrors([o.sensor for o in members]) if len(members) > 1 else {}
    for j in mirrors:
        members[j].sensor.close()
    kept = [o for j, o in enumerate(members) if j not in mirrors]
    for i, o in enumerate(members):
        if i in mirrors:
            continue
        alike = [members[j].domain.label for j, of in mirrors.items() if of == i]
        mirrored = [o.domain.label, *alike] if alike else []
        if len(kept) == 1 < len(members):
            o.sensor.name = f"rapl:{o.domain.kind}-{o.domain.package}"
        o.sensor.description = _describe(o, domains, mirrored)
    return [o.sensor for o in kept]


def _find_mirrors(sensors: list[RaplSensor]) -> dict[int, int]:
    """Which die counters mirror an earlier one: ``{index: index of the counter it mirrors}``.

    Two counters are mirrors only if they read the same value in two rounds *and* that value
    moved between the rounds: they moved together. Equal values alone prove nothing (idle or
    freshly reset counters read alike) and are never merged: counters that read alike but did
    not move within :data:`MIRROR_WAIT_S` are kept apart, each read on its own, so that no energy
    is lost if they move differently later; a counter that never moves adds nothing either way.
    Rounds that differ are not held against a pair: a mirrored counter can tick between the two
    reads of a round. Independent counters that move never read alike twice at distinct values
    (the µJ counters would have to advance by exactly the same energy).
    """
    n = len(sensors)
    alike: dict[tuple[int, int], set[int]] = {(i, j): set() for j in range(n) for i in range(j)}
    started, rounds = _clock(), 0
    while True:
        raws = [s.read_raw_uj() for s in sensors]
        rounds += 1
        for (i, j), values in alike.items():
            if raws[i] == raws[j]:
                values.add(raws[i])
        pending = any(len(values) == 1 for values in alike.values())  # alike, not moved yet
        if rounds >= MIRROR_ROUNDS and (not pending or _clock() - started >= MIRROR_WAIT_S):
            break
        time.sleep(MIRROR_GAP_S)
    mirrors: dict[int, int] = {}
    for j in range(1, n):
        for i in range(j):
            if i not in mirrors and len(alike[i, j]) >= 2:
                mirrors[j] = i
                break
    return mirrors


_WHAT = {
    "package": "CPU package",
    "dram": "DRAM",
    "psys": "platform (psys, contains the packages and DRAM)",
}


def _describe(o: _Opened, domains: list[_Domain], mirrored: list[str]) -> str:
    """One line: what the counter is, its file, and what was left out so as not to count twice."""
    d, s = o.domain, o.sensor
    notes = []
    if mirrored:
        notes.append(f"per-die zones {', '.join(mirrored)} mirror one counter, read once")
    parts = sorted(
        {
            p.kind
            for p in domains
            if p.kind in ("core", "uncore") and p.zone.parent_id == d.zone.zone_id
        }
    )
    if parts:
        notes.append(f"includes {' and '.join(parts)}")
    if d.kind == "psys":
        drams = [p.zone.zone_id for p in domains if p.kind == "dram"]
        if drams:
            notes.append(f"DRAM zones {', '.join(drams)} are inside it, not read")
    twins = [
        p.zone.zone_id
        for p in domains
        if p.group == d.group and p.zone.mmio and not d.zone.mmio and p.die == d.die
    ]
    if twins:
        notes.append(f"also exposed by {', '.join(twins)}, read once")
    if o.passed_over is not None:
        notes.append(f"{o.passed_over}; read from its MMIO twin instead")
    if s.max_energy_range_uj is None:
        notes.append("wrap range unknown")
    extra = f" ({'; '.join(notes)})" if notes else ""
    return f"RAPL {_WHAT.get(d.kind, d.kind)} energy counter {s.path}{extra}"
