"""A sensor with known power, for tests, docs and demos. Part of the public API."""

from __future__ import annotations

import itertools
import time

from ..errors import ConfigError, SensorError
from .base import PowerSensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_ids = itertools.count()


class FakeSensor(PowerSensor):
    """A power sensor whose power you choose.

    Give exactly one of:

    * ``power_w``: a constant power in watts;
    * ``power_fn``: a function of the seconds since the sensor was made, returning watts;
    * ``trace``: ``(seconds, watts)`` points, replayed with linear interpolation and held
      flat before the first and after the last point.

    ``fail_after_s`` makes every read after that many seconds raise :class:`SensorError`, to show
    how a failing sensor is reported. ``measured`` is False: a fake is never a measurement.
    """

    def __init__(
        self,
        power_w: float | None = None,
        *,
        power_fn: Callable[[float], float] | None = None,
        trace: Sequence[tuple[float, float]] | None = None,
        component: str = "cpu",
        name: str | None = None,
        fail_after_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        given = [x is not None for x in (power_w, power_fn, trace)]
        if sum(given) != 1:
            raise ConfigError("FakeSensor needs exactly one of power_w, power_fn or trace")
        if trace is not None:
            points = sorted((float(t), float(w)) for t, w in trace)
            if not points:
                raise ConfigError("FakeSensor trace needs at least one (seconds, watts) point")
            self._times = [t for t, _ in points]
            self._watts = [w for _, w in points]
            from bisect import bisect_right  # here: only a trace needs it

            self._bisect_right = bisect_right
        if power_w is not None and power_w < 0:
            raise ConfigError(f"FakeSensor power_w must be >= 0, not {power_w}")
        self._power_w = power_w
        self._power_fn = power_fn
        self._trace = trace is not None
        self._clock = clock
        self._t0 = clock()
        self._fail_after_s = fail_after_s
        self.name = name or f"fake:{next(_ids)}"
        self.component = component
        self.source = Source.FAKE
        self.measured = False
        self.description = "fake sensor with known power"

    def power_w(self) -> float:
        elapsed = self._clock() - self._t0
        if self._fail_after_s is not None and elapsed >= self._fail_after_s:
            raise SensorError(f"{self.name}: simulated failure after {self._fail_after_s} s")
        if self._power_w is not None:
            return self._power_w
        if self._power_fn is not None:
            return float(self._power_fn(elapsed))
        return self._interpolate(elapsed)

    def _interpolate(self, t: float) -> float:
        times, watts = self._times, self._watts
        if t <= times[0]:
            return watts[0]
        if t >= times[-1]:
            return watts[-1]
        i = self._bisect_right(times, t)
        t0, t1, w0, w1 = times[i - 1], times[i], watts[i - 1], watts[i]
        return w0 + (w1 - w0) * (t - t0) / (t1 - t0)
