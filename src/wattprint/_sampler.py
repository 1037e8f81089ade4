"""The meter's sampler: the state it shares with its thread, the integrator, and the thread.

Power-only sensors are sampled once in every interval of ``1 / sample_hz`` seconds for as long as
a window is open, however long: one thread wake-up per interval. The sample's place inside its
interval moves by the golden ratio from one interval to the next, so that power that is periodic
at a multiple of the interval cannot alias into a steady bias. Samples are integrated with the
trapezoidal rule.

A sensor read that raises (any exception) or returns a reading that is not finite is a fault:
it is recorded in every open window, which becomes partial and names the error; the reading is
never integrated, and the thread goes on. Nothing here turns an error into a number.
"""

from __future__ import annotations

import _thread
import math
import os
import time
import weakref

from ._log import IN_RESULTS, get_logger
from .errors import SensorError
from .sensors.base import CounterSensor, PowerSensor, Sensor, begin_edge, end_edge

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Sequence

    #: A sensor class's ``read_edge``: ``(sensors, t, values, indices) -> faults``.
    EdgeRead = Callable[
        [Sequence[CounterSensor], float, list[float | None], Sequence[int]],
        list[tuple[int, Exception]],
    ]

log = get_logger("wattprint.meter")

#: Fraction of an interval by which the sample's place moves from one interval to the next.
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class _Integrator:
    """Running integral of one power sensor (trapezoidal rule)."""

    __slots__ = ("last_t", "last_w", "total_j")

    def __init__(self) -> None:
        self.total_j = 0.0
        self.last_t: float | None = None
        self.last_w = 0.0

    def add(self, t: float, w: float) -> None:
        if self.last_t is not None:
            self.total_j += (self.last_w + w) * 0.5 * (t - self.last_t)
        self.last_t, self.last_w = t, w


class _Open:
    """An open window."""

    __slots__ = ("errors", "name", "start", "t0", "ticks0", "wall0")

    def __init__(self, name: str, t0: float, wall0: float, ticks0: int) -> None:
        self.name = name
        self.t0 = t0
        self.wall0 = wall0
        self.start: list[float | None] = []
        self.ticks0 = ticks0
        self.errors: dict[int, str] = {}


def _fault_message(name: str, err: BaseException) -> str:
    """``"<sensor>: <what went wrong>"``, the sensor named once (its own errors may name it)."""
    text = str(err) if isinstance(err, SensorError) else f"{type(err).__name__}: {err}"
    return text if text.startswith(f"{name}: ") else f"{name}: {text}"


class _Shared:
    """State shared by the meter and its sampler thread (the thread holds no meter reference).

    Reads are hoisted into lists of bound methods once, so an edge costs one call per sensor.
    """

    def __init__(
        self, sensors: Sequence[Sensor], sample_hz: float, sample_interval: float | None
    ) -> None:
        #: The lock the meter's edges hold (taken directly: cheaper than ``with cond``).
        self.lock = _thread.allocate_lock()
        self._cond: threading.Condition | None = None
        self.sensors = list(sensors)
        self.size = len(self.sensors)
        #: The counters by class, read at an edge by one ``read_edge`` call per class.
        by_class: dict[type[CounterSensor], list[tuple[int, CounterSensor]]] = {}
        for i, s in enumerate(sensors):
            if isinstance(s, CounterSensor):
                by_class.setdefault(type(s), []).append((i, s))
        for cls in list(by_class):  # a class that reads another's counters reads the rest too
            pairs = by_class.get(cls)
            if pairs is None:  # read by a companion already
                continue
            companion = cls.edge_companion([s for _, s in pairs])
            if companion is not None and companion is not cls and companion in by_class:
                pairs += by_class.pop(companion)
        self.counters: list[tuple[tuple[int, ...], tuple[CounterSensor, ...], EdgeRead]] = [
            (tuple(i for i, _ in pairs), tuple(s for _, s in pairs), cls.read_edge)
            for cls, pairs in by_class.items()
        ]
        self.powers = [
            (i, s.power_w, _Integrator())
            for i, s in enumerate(sensors)
            if isinstance(s, PowerSensor)
        ]
        self.integrators = {i: integ for i, _, integ in self.powers}
        #: Whether an edge shares one read of the machine's CPU times among its counters
        #: (estimates and process shares read them): only where they would read them twice.
        self.edge = sum(cls.cpu_time_reads([s for _, s in pairs])
                        for cls, pairs in by_class.items()) > 1
        #: The counters' one class when it is all an edge reads (one call, one test).
        self.only = (self.counters[0] if len(self.counters) == 1 and not self.powers
                     and not self.edge else None)
        self.watch: list[tuple[int, Callable[[], float], float]] = []
        for i, s in enumerate(sensors):
            if isinstance(s, CounterSensor):
                interval = s.watch_interval_s()
                if interval is not None:
                    self.watch.append((i, s.energy_j, interval))
        self.next_watch = [0.0] * len(self.watch)
        #: Seconds between samples of the power sensors: the same all through a window.
        self.interval = sample_interval if sample_interval is not None else 1.0 / sample_hz
        #: Where in its interval the next sample is taken, as a fraction of the interval.
        self.phase = 0.5
        self.windows: dict[str, _Open] = {}
        self.ticks = 0
        self.stopped = False
        self.thread: threading.Thread | None = None
        #: Whether the sampler keeps a sampling schedule (it will wake for the next sample on
        #: its own): a window opened then needs no wake-up. Set by the sampler, lock held.
        self.sampling = False

    @property
    def cond(self) -> threading.Condition:
        """The condition over :attr:`lock` that parks the sampler, made (lock held) before the
        first thread starts: a meter whose sensors are all counters read at the edges
        (estimates, on a VM) starts none, and its first measurement does without importing
        :mod:`threading`."""
        cond = self._cond
        if cond is None:
            import threading

            cond = self._cond = threading.Condition(self.lock)
        return cond

    # -- reading (call with the lock held) --------------------------------------------------

    def fail(self, i: int, err: BaseException) -> None:
        """Record a sensor fault in every open window; the sensor starts afresh after."""
        msg = _fault_message(self.sensors[i].name, err)
        if any(i not in w.errors for w in self.windows.values()):  # once per window, not per tick
            log.warning("sensor failed: %s", msg, exc_info=not isinstance(err, SensorError),
                        extra=IN_RESULTS)
        for w in self.windows.values():
            w.errors.setdefault(i, msg)
        if i in self.integrators:
            self.integrators[i].last_t = None

    def _read_power(self, i: int, power: Callable[[], float], integ: _Integrator,
                    t: float) -> bool:
        try:
            w = power()
            if not math.isfinite(w):
                raise SensorError(f"power reading is not finite ({w})")
        except Exception as err:  # the boundary that reports a sensor's fault, whatever it is
            self.fail(i, err)
            return False
        integ.add(t, w)
        return True

    def snapshot(self, t: float) -> list[float | None]:
        """Every sensor's cumulative energy at time ``t``; None where a read failed."""
        values: list[float | None] = [None] * self.size
        only = self.only
        if only is not None:  # one class of counters and nothing else: one call, one test
            indices, group, read = only
            try:
                faults = read(group, t, values, indices)
            except Exception as err:  # the boundary that reports a sensor's fault
                faults = [(i, err) for i in indices]
            if faults:
                for i, fault in faults:
                    values[i] = None
                    self.fail(i, fault)
            return values
        edge = self.edge
        if edge:  # sensors that need the machine's CPU times share one read of them
            begin_edge()
        try:
            for indices, group, read in self.counters:
                try:
                    faults = read(group, t, values, indices)
                except Exception as err:  # the boundary that reports a sensor's fault
                    faults = [(i, err) for i in indices]
                if faults:
                    for i, fault in faults:
                        values[i] = None
                        self.fail(i, fault)
        finally:
            if edge:
                end_edge()
        if self.powers:
            for i, power, integ in self.powers:
                if self._read_power(i, power, integ, t):
                    values[i] = integ.total_j
        return values

    def sample(self, t: float) -> None:
        """One tick of the sampler: integrate every power sensor up to ``t``."""
        self.ticks += 1
        for i, power, integ in self.powers:
            self._read_power(i, power, integ, t)

    def watch_counters(self, now: float) -> None:
        """Read the wrapping counters that are due, so that no wrap goes unseen."""
        for k, (i, read, interval) in enumerate(self.watch):
            if now >= self.next_watch[k]:
                self.next_watch[k] = now + interval
                if self.windows:
                    try:
                        value = read()
                        if not math.isfinite(value):
                            raise SensorError(f"energy reading is not finite ({value})")
                    except Exception as err:  # the boundary that reports a sensor's fault
                        self.fail(i, err)


def _sampler(shared: _Shared) -> None:
    """The meter's one background thread.

    It samples power-only sensors while a window is open (woken by the first window) and parks
    on the condition otherwise: once in every interval of ``shared.interval`` seconds, at a
    place in the interval that moves by the golden ratio. When the last window has closed it
    parks at its next sample's time, not before: a window opened until then is sampled on the
    same schedule, and opening it wakes nothing. When counters can wrap it also wakes
    on its own every watch interval (a minute or more for real RAPL counters) and reads them if
    a window is open; windows do not wake it for that, so window edges stay cheap.

    Sensor faults are recorded by :meth:`_Shared.fail` and never end the thread. Should the
    thread end all the same (a bug), the error is logged, the open windows are marked partial
    and the next window starts a new thread.
    """
    try:
        _loop(shared)
    except BaseException as err:
        log.error("the sampler thread stopped", exc_info=True, extra=IN_RESULTS)
        with shared.cond:
            for i, _, _ in shared.powers:
                shared.fail(i, RuntimeError(f"sampler thread stopped ({type(err).__name__}: "
                                            f"{err})"))
            shared.thread = None
            shared.sampling = False


def _loop(shared: _Shared) -> None:
    cond = shared.cond
    interval = shared.interval
    slot: float | None = None  # start of the current sampling interval
    next_sample = 0.0
    with cond:
        while not shared.stopped:
            now = time.perf_counter()
            if shared.powers and shared.windows:
                if slot is None:  # a window just opened: its edge was a sample
                    slot = now
                    next_sample = slot + shared.phase * interval
                elif now >= next_sample:
                    shared.sample(now)
                    slot += interval
                    if slot + interval <= now:  # late by more than an interval: no catch-up
                        slot = now
                    shared.phase = (shared.phase + _GOLDEN) % 1.0
                    next_sample = slot + shared.phase * interval
            elif slot is not None and now >= next_sample:
                slot = None  # no window at a sample's time: park until one opens
            # Until then the schedule is kept, so that a window opened before the next sample
            # (a training loop's next batch) is sampled on it without waking this thread: a
            # wake-up hands the GIL over and back, which costs the code being measured.
            shared.sampling = slot is not None
            if shared.watch:
                shared.watch_counters(now)
            deadlines = list(shared.next_watch)
            if slot is not None:
                deadlines.append(next_sample)
            if deadlines:
                cond.wait(timeout=max(min(deadlines) - now, 0.0))
            else:
                cond.wait()


#: The meters' shared states alive in this process, rearmed in a forked child.
_LIVE: weakref.WeakSet[_Shared] = weakref.WeakSet()
_fork_hook: list[bool] = []  # one hook for every meter, registered with the first


def track_for_fork(shared: _Shared) -> None:
    """Have ``shared`` rearmed in a child made by ``os.fork``: one hook for the process (not
    one per meter, which would pile up in a process that makes many meters)."""
    _LIVE.add(shared)
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
        _fork_hook.append(True)


def _after_fork() -> None:
    """In a child made by ``os.fork`` (a sweep's worker): the sampler threads did not come
    along, and the lock each shares with its meter may have been held at the fork; each meter
    gets a fresh lock, and a new thread when a window needs one."""
    for shared in list(_LIVE):
        shared.lock = _thread.allocate_lock()
        shared._cond = None  # made over the new lock when a thread needs it
        shared.thread = None
        shared.sampling = False


def _stop(shared: _Shared) -> None:
    with shared.lock:  # the condition's own lock
        shared.stopped = True
        if shared._cond is not None:  # no condition: no thread ever waited on it
            shared._cond.notify_all()
