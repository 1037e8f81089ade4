"""This process's share of the machine's CPU energy, by its share of the busy CPU time.

Used by :func:`wattprint.sensors.detect` with ``mode="process"``: every CPU counter (RAPL package,
or the CPU estimate) is wrapped in a :class:`ProcessShare`. Over each interval between two reads,
the process is attributed ``inner energy delta x (process CPU s / machine busy CPU s)``, the share
clamped to [0, 1]: never more than the machine's energy (and the CPU estimate never more than the
TDP). Process CPU time counts children that were waited for (``os.times``); it advances in clock
ticks, like the machine's, so a window shorter than one tick gets a note that its share is coarse.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..errors import SensorError
from .base import CounterSensor, Sensor
from .estimate import machine_busy_cpu_s, short_window_note, utilisation_resolution_s

TYPE_CHECKING = False

__all__ = ["ProcessShare", "process_cpu_s", "wrap_for_process"]


def process_cpu_s() -> float:
    """CPU seconds of this process and its waited-for children: user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class ProcessShare(CounterSensor):
    """The share of ``inner``'s energy that this process's CPU time accounts for.

    ``process_cpu_s`` and ``machine_busy_cpu_s`` return cumulative CPU seconds; both are
    injectable for tests. The first read sets the baseline and reports what was attributed so far
    (0 J); so does the first read after a failed one.
    """

    def __init__(
        self,
        inner: CounterSensor,
        *,
        process_cpu_s: Callable[[], float] = process_cpu_s,
        machine_busy_cpu_s: Callable[[], float] = machine_busy_cpu_s,
    ) -> None:
        self.inner = inner
        self._process_cpu_s = process_cpu_s
        self._machine_busy_cpu_s = machine_busy_cpu_s
        self.name = f"{inner.name}@process"
        self.component = inner.component
        self.source = inner.source
        self.measured = inner.measured
        self.scope = "process"
        self.reads_cpu_times = 1 + inner.reads_cpu_times
        self.description = (
            f"share of {inner.description or inner.name} by this process's CPU time"
        )
        self._energy_j = 0.0
        self._last: tuple[float, float, float] | None = None
        #: How :meth:`read_edge` reads the group this share leads (see :func:`_plan`), made
        #: at its first edge.
        self._plan: _Plan | None = None
        self._resolution_s = utilisation_resolution_s()
        self._short_note = short_window_note(
            self._resolution_s,
            "this process's share of the CPU energy is coarse (never above the machine's)",
        )
        self._short = (self._short_note,)
        #: Whether the wrapped counter has notes of its own (a RAPL counter has none).
        self._inner_notes = type(inner).notes is not Sensor.notes

    def energy_j(self) -> float:
        try:
            energy_j = self.inner.energy_j()
            proc_s = self._process_cpu_s()
            busy_s = self._machine_busy_cpu_s()
        except SensorError:
            self._last = None  # the next read starts from a fresh baseline
            raise
        return self._advance(energy_j, proc_s, busy_s)

    def energy_j_at(self, t: float) -> float:
        return self._read_alone(t)

    @classmethod
    def read_edge(
        cls, sensors: Sequence[CounterSensor], t: float, out: list[float | None],
        at: Sequence[int],
    ) -> list[tuple[int, Exception]]:
        """The wrapped counters read together (one ``read_edge`` per class of them), then
        this process's and the machine's CPU times: each clock once per edge, however many
        shares use it. A share whose counter or clocks fail starts from a fresh baseline.

        ``sensors`` are shares, then any counters of the class they wrap that the meter
        gave the group to read in the same call (see :meth:`edge_companion`): those are
        read as they are, not shared."""
        lead: ProcessShare = sensors[0]  # type: ignore[assignment]  # a share leads the group
        plan = lead._plan
        if plan is None or plan[0] is not sensors:  # once per group: the meter passes the same
            plan = lead._plan = _plan(sensors)  # tuple at every edge
        _, shares, members, places, kind, proc_fn, busy_fn = plan
        inner: list[float | None] = [None] * len(members)
        clocks: dict[Callable[[], float], float | Exception] = {}
        if kind is not None:  # one read_edge call, each clock once, and nothing else unless
            # one fails (the common case: one class of counters, the default clocks)
            broken = kind.read_edge(members, t, inner, places)
            proc_s: float | Exception
            busy_s: float | Exception
            try:  # as _tick, inline: the edge's hot path
                proc_s = proc_fn()  # type: ignore[misc]  # set with kind
            except Exception as fault:  # the boundary of a sensor's fault, whatever it is
                proc_s = fault
            try:
                busy_s = busy_fn()  # type: ignore[misc]
            except Exception as fault:  # the boundary of a sensor's fault, whatever it is
                busy_s = fault
            if not broken and type(proc_s) is float and type(busy_s) is float:
                # each share's _advance, inline; zip stops at the last share
                for i, share, energy_j in zip(at, shares, inner):  # noqa: B905
                    last = share._last
                    if last is not None:
                        energy0_j, proc0_s, busy0_s = last
                        delta_busy_s = busy_s - busy0_s
                        if delta_busy_s > 0:
                            part = min(max((proc_s - proc0_s) / delta_busy_s, 0.0), 1.0)
                            gain = energy_j - energy0_j  # type: ignore[operator]  # all read
                            share._energy_j += max(gain, 0.0) * part
                    share._last = (energy_j, proc_s, busy_s)  # type: ignore[assignment]
                    out[i] = share._energy_j
                for k in range(len(shares), len(members)):  # the counters read as they are
                    out[at[k]] = inner[k]
                return broken
            clocks[proc_fn], clocks[busy_fn] = proc_s, busy_s  # type: ignore[index]
        else:  # each class of counters read together
            broken = []
            by_class: dict[type[CounterSensor], list[int]] = {}
            for k, member in enumerate(members):
                by_class.setdefault(type(member), []).append(k)
            for counters, ks in by_class.items():
                broken += counters.read_edge([members[k] for k in ks], t, inner, ks)
        failed = dict(broken)
        faults: list[tuple[int, Exception]] = []
        for k, (i, share) in enumerate(zip(at, shares)):  # noqa: B905 - the shares lead
            err = failed.get(k)
            if err is None:  # each clock read once at the edge, however many shares use it
                proc = clocks.get(share._process_cpu_s)
                if proc is None:
                    proc = clocks[share._process_cpu_s] = _tick(share._process_cpu_s)
                busy = clocks.get(share._machine_busy_cpu_s)
                if busy is None:
                    busy = clocks[share._machine_busy_cpu_s] = _tick(share._machine_busy_cpu_s)
                if isinstance(proc, Exception):
                    err = proc
                elif isinstance(busy, Exception):
                    err = busy
                else:
                    out[i] = share._advance(inner[k], proc, busy)  # type: ignore[arg-type]
                    continue
            share._last = None  # the next read starts from a fresh baseline
            faults.append((i, err))
        for k in range(len(shares), len(members)):  # their own faults, from their read_edge
            err = failed.get(k)
            if err is None:
                out[at[k]] = inner[k]
            else:
                faults.append((at[k], err))
        return faults

    @classmethod
    def edge_companion(cls, sensors: Sequence[CounterSensor]) -> type[CounterSensor] | None:
        """The class of the counters these shares wrap, when they all wrap one class and
        read the same clocks: the meter then gives this group its other counters of that
        class (a RAPL share's DRAM counters), all read in one call."""
        return _plan(sensors)[4]

    @classmethod
    def cpu_time_reads(cls, sensors: Sequence[CounterSensor]) -> int:
        """Once for the group where its shares read the same clocks (each clock is read once
        per edge), plus what the counters they wrap read."""
        shares: list[ProcessShare] = [s for s in sensors if isinstance(s, ProcessShare)]
        own = 1 if _plan(sensors)[4] is not None else len(shares)
        return own + sum(s.inner.reads_cpu_times for s in shares) + sum(
            s.reads_cpu_times for s in sensors if not isinstance(s, ProcessShare))

    def _advance(self, energy_j: float, proc_s: float, busy_s: float) -> float:
        """Attribute the interval since the last read; the process's energy so far."""
        if self._last is not None:
            energy0_j, proc0_s, busy0_s = self._last
            delta_busy_s = busy_s - busy0_s
            if delta_busy_s > 0:
                share = min(max((proc_s - proc0_s) / delta_busy_s, 0.0), 1.0)
                self._energy_j += max(energy_j - energy0_j, 0.0) * share
        self._last = (energy_j, proc_s, busy_s)
        return self._energy_j

    def watch_interval_s(self) -> float | None:
        return self.inner.watch_interval_s()

    def notes(self, duration_s: float) -> tuple[str, ...]:
        if self._inner_notes:
            inner = self.inner.notes(duration_s)
            return inner if duration_s >= self._resolution_s else (*inner, self._short_note)
        return () if duration_s >= self._resolution_s else self._short

    def close(self) -> None:
        self.inner.close()


if TYPE_CHECKING:
    #: A group's plan: the group as the meter passes it, its shares (they lead it), the
    #: counters read at an edge (the shares' wrapped ones, then the group's others) and their
    #: places, and, when they are all of one class and the shares read the same clocks, that
    #: class and the clocks (else None, None, None: each class of counters and each clock is
    #: sorted out at every edge).
    _Plan = tuple[Sequence[CounterSensor], tuple["ProcessShare", ...], list[CounterSensor],
                  range, type[CounterSensor] | None, Callable[[], float] | None,
                  Callable[[], float] | None]


def _plan(sensors: Sequence[CounterSensor]) -> _Plan:
    shares = tuple(s for s in sensors if isinstance(s, ProcessShare))
    others = list(sensors[len(shares):])
    if any(isinstance(s, ProcessShare) for s in others):
        raise ValueError("a group's process shares come first")
    members = [share.inner for share in shares] + others
    first = shares[0]
    kind, proc_fn, busy_fn = type(first.inner), first._process_cpu_s, first._machine_busy_cpu_s
    for share in shares:
        if (type(share.inner) is not kind or share._process_cpu_s is not proc_fn
                or share._machine_busy_cpu_s is not busy_fn):
            return sensors, shares, members, range(len(members)), None, None, None
    if any(type(s) is not kind for s in others):
        return sensors, shares, members, range(len(members)), None, None, None
    return sensors, shares, members, range(len(members)), kind, proc_fn, busy_fn


def _tick(clock: Callable[[], float]) -> float | Exception:
    """A clock's reading, or what it raised (the caller reports it as the sensor's fault)."""
    try:
        return clock()
    except Exception as err:  # the boundary of a sensor's fault, whatever it is
        return err


def wrap_for_process(sensors: list[Sensor]) -> list[Sensor]:
    """Each CPU counter wrapped in :class:`ProcessShare`; the other sensors unchanged."""
    return [
        ProcessShare(s) if isinstance(s, CounterSensor) and s.component == "cpu" else s
        for s in sensors
    ]
