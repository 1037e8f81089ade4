"""Slowdown of a CPU-bound loop while the 10 Hz sampler runs, against the same loop without it.

Runs are interleaved (without, with, without, ...) and the medians compared. Floor: under 1%.
"""

from __future__ import annotations

import time

from _common import median, verdict

from wattprint import EnergyMeter, FakeSensor

FLOOR = 0.01
ROUNDS = 15
LOOP = 3_000_000


def cpu_loop() -> float:
    t = time.perf_counter()
    acc = 0
    for i in range(LOOP):
        acc = (acc + i * i) % 1_000_003
    return time.perf_counter() - t


def main() -> float:
    meter = EnergyMeter([FakeSensor(power_w=30.0)], sample_hz=10.0)
    bare, sampled, samples = [], [], 0
    cpu_loop()  # warm up
    for _ in range(ROUNDS):
        bare.append(cpu_loop())
        with meter.window() as w:
            sampled.append(cpu_loop())
        assert w.measurement is not None
        samples += w.measurement.samples
    meter.close()
    b, s = median(bare), median(sampled)
    slowdown = s / b - 1
    print(f"CPU-bound loop, median of {ROUNDS} interleaved runs")
    print(f"  without sampler   {b * 1e3:8.1f} ms")
    print(f"  with 10 Hz sampler {s * 1e3:7.1f} ms   ({samples / ROUNDS:.0f} samples per run)")
    print(f"  with / without = {s / b:.4f}  (slowdown {slowdown * 100:+.2f}%)")
    print(f"  floor: slowdown < {FLOOR * 100:.0f}% -> {verdict(slowdown < FLOOR)}")
    return slowdown


if __name__ == "__main__":
    main()
