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
from collections.abc import Callable

from ..errors import SensorError
from .base import CounterSensor, Sensor
from .estimate import machine_busy_cpu_s, short_window_note, utilisation_resolution_s

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
        self.description = (
            f"share of {inner.description or inner.name} by this process's CPU time"
        )
        self._energy_j = 0.0
        self._last: tuple[float, float, float] | None = None
        self._resolution_s = utilisation_resolution_s()
        self._short_note = short_window_note(
            self._resolution_s,
            "this process's share of the CPU energy is coarse (never above the machine's)",
        )

    def energy_j(self) -> float:
        return self._share(self.inner.energy_j)

    def energy_j_at(self, t: float) -> float:
        return self._share(lambda: self.inner.energy_j_at(t))

    def _share(self, read_inner: Callable[[], float]) -> float:
        try:
            energy_j = read_inner()
            proc_s = self._process_cpu_s()
            busy_s = self._machine_busy_cpu_s()
        except SensorError:
            self._last = None  # the next read starts from a fresh baseline
            raise
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
        inner = self.inner.notes(duration_s)
        return inner if duration_s >= self._resolution_s else (*inner, self._short_note)

    def close(self) -> None:
        self.inner.close()


def wrap_for_process(sensors: list[Sensor]) -> list[Sensor]:
    """Each CPU counter wrapped in :class:`ProcessShare`; the other sensors unchanged."""
    return [
        ProcessShare(s) if isinstance(s, CounterSensor) and s.component == "cpu" else s
        for s in sensors
    ]
