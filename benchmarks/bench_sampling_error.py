"""Integration error of the sampler for power that changes in steps, against the exact integral.

Three :class:`FakeSensor` signals, each measured by its own meter in a real 30 s window at the
default ``sample_hz=20`` (the three windows run at the same time, so the benchmark takes 30 s):
1 Hz and 2 Hz square waves between 10 W and 100 W, and one 1 s burst of 100 W on 10 W.
Beside the measured error, the same signal and window are integrated (simulated) on two other
schedules: a fixed grid at the same rate, and the adaptive schedule the meter had before
(faster for young windows, slowing to 1 Hz after 20 s). Floor: under 2 % for each signal.

A 2 Hz square wave is the hard case: at 10 Hz its period is five sampling intervals, which a
fixed grid samples 3:2 or 2:3 (16 % off, every time); with the sample's place moving by the
golden ratio the error is random with a typical size of ``dP * h * sqrt(n) / 3`` (120 steps of
90 W in 30 s: about 2 % at 10 Hz, which is why the default rate is 20 Hz: about 1 %).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

from _common import verdict

from wattprint import EnergyMeter, FakeSensor

FLOOR = 0.02
WINDOW_S = 30.0
SAMPLE_HZ = 20.0
#: The sampling interval of the default rate before (10 Hz), for the old schedule's column.
OLD_H = 0.1
LOW_W, HIGH_W = 10.0, 100.0
BURST_AT_S, BURST_S = 10.0, 1.0

Power = Callable[[float], float]


def square(hz: float) -> Power:
    return lambda t: HIGH_W if (t * hz) % 1.0 < 0.5 else LOW_W


def burst(t: float) -> float:
    return HIGH_W if BURST_AT_S <= t < BURST_AT_S + BURST_S else LOW_W


def exact_j(power: Power, edges: list[float], a: float, b: float) -> float:
    """Exact integral of a piecewise-constant power with its steps at ``edges``."""
    points = sorted({a, b, *(x for x in edges if a < x < b)})
    return sum(power((x + y) / 2) * (y - x) for x, y in itertools.pairwise(points))


def square_edges(hz: float, b: float) -> list[float]:
    return [k / (2 * hz) for k in range(math.floor(b * 2 * hz) + 1)]


def trapezoid(power: Power, times: list[float]) -> float:
    return sum((power(x) + power(y)) / 2 * (y - x) for x, y in itertools.pairwise(times))


def fixed_grid(a: float, b: float, h: float) -> list[float]:
    n = math.ceil((b - a) / h)
    return [a + k * h for k in range(n) if a + k * h < b] + [b]


def old_schedule(a: float, b: float, h: float) -> list[float]:
    """The sampler before: interval = age / 20, within h / 4 and 10 h."""
    times, t = [a], a
    while True:
        t += min(max((t - a) / 20.0, h / 4), h * 10)
        if t >= b:
            return [*times, b]
        times.append(t)


def main() -> float:
    signals: list[tuple[str, Power, list[float]]] = [
        ("1 Hz square 10/100 W", square(1.0), square_edges(1.0, WINDOW_S + 5)),
        ("2 Hz square 10/100 W", square(2.0), square_edges(2.0, WINDOW_S + 5)),
        ("1 s burst 100 W on 10 W", burst, [BURST_AT_S, BURST_AT_S + BURST_S]),
    ]
    runs = []
    for label, power, edges in signals:
        sensor = FakeSensor(power_fn=power, name=label)
        meter = EnergyMeter([sensor], sample_hz=SAMPLE_HZ)
        runs.append((label, power, edges, sensor, meter))
    starts = {}
    for label, _, _, sensor, meter in runs:
        meter.begin(label)
        starts[label] = meter._shared.windows[label].t0 - sensor._t0
    time.sleep(WINDOW_S)
    h = 1.0 / SAMPLE_HZ
    print(f"Sampling error: {WINDOW_S:.0f} s windows at sample_hz={SAMPLE_HZ:g}, "
          "integrated vs exact energy (the 3 windows run at once)")
    print(f"  {'signal':<24} {'exact J':>8} {'measured J':>11} {'error':>8} {'samples':>8}   "
          f"{'fixed grid*':>11} {'old schedule*':>13}")
    worst = 0.0
    for label, power, edges, _, meter in runs:
        m = meter.end(label)
        meter.close()
        a = starts[label]
        b = a + m.duration_s
        exact = exact_j(power, edges, a, b)
        error = m.energy_j / exact - 1
        grid = trapezoid(power, fixed_grid(a, b, h)) / exact - 1
        old = trapezoid(power, old_schedule(a, b, OLD_H)) / exact - 1
        worst = max(worst, abs(error))
        partial = "  PARTIAL: " + "; ".join(m.errors) if m.partial else ""
        print(f"  {label:<24} {exact:8.1f} {m.energy_j:11.1f} {error * 100:+7.2f}% "
              f"{m.samples:8d}   {grid * 100:+10.2f}% {old * 100:+12.2f}%{partial}")
    print(f"  * simulated on the same signal and window: samples every {h:g} s on a fixed grid; "
          "the adaptive schedule before, from its 10 Hz default (1 Hz after 20 s)")
    print(f"  floor: |error| < {FLOOR * 100:.0f}% for each signal -> "
          f"{verdict(worst < FLOOR)} (worst {worst * 100:.2f}%)")
    return worst


if __name__ == "__main__":
    main()
