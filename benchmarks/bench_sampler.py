"""Slowdown of a CPU-bound loop while the sampler runs, against the same loop without it.

The sampler at 10 Hz (``sample_interval=0.1``) and at the default ``sample_hz=20`` (one sample
in every interval for the whole window). Runs are interleaved (without, 10 Hz, 20 Hz, without,
...) and the medians compared. Floor: under 1% for the default rate. In the same rounds, a
control: the loop without a sampler a second time, against the first. What the two differ by
is the noise on the run's figures. On a 2-core VM, ten runs in one afternoon read -4.83 to
+2.09% at 20 Hz (four over the floor, mean -0.26%), and the control, in the six that had it,
-3.04 to +0.75%; in one run 10 Hz, which wakes half as often, read +3.35% beside +1.11% at
20 Hz.

Then a batch loop: batches of a few milliseconds, each run bare and then in a window of its own,
paired. What each window adds is its two edges, and any wake-up of the sampler
(it hands the GIL over and back in the middle of the batch); a window opened before the
sampler's next sample is due wakes nothing. Printed for reference, without a floor.
"""

from __future__ import annotations

import time

from _common import median, verdict

from wattprint import EnergyMeter, FakeSensor

FLOOR = 0.01
CONTROL = "without sampler, again"
ROUNDS = 24  # a multiple of the four loops: each is first, second, ... as often
LOOP = 6_000_000


def cpu_loop(n: int = LOOP) -> float:
    t = time.perf_counter()
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return time.perf_counter() - t


BATCHES = 1000
BATCH = 40_000  # iterations of cpu_loop's loop: a few milliseconds


def batch_windows() -> None:
    """Batches in turn without and with a window of their own, paired: the median of what
    each window added to its batch over the bare batch before it."""
    meter = EnergyMeter([FakeSensor(power_w=30.0)])
    with meter.window():  # start the thread
        cpu_loop(BATCH)
    bare, added = [], []
    clock = time.perf_counter
    for _ in range(BATCHES):
        t = clock()
        cpu_loop(BATCH)
        t1 = clock()
        meter.begin("batch")
        cpu_loop(BATCH)
        meter.end("batch")
        t2 = clock()
        bare.append(t1 - t)
        added.append((t2 - t1) - (t1 - t))
    meter.close()
    print(f"batch loop, {BATCHES} batches, each without then with a window of its own "
          f"(default sample_hz=20)")
    print(f"  batch without a window   {median(bare) * 1e3:8.2f} ms (median)")
    print(f"  a window adds            {median(added) * 1e6:+8.0f} µs per batch (median of the "
          f"pairs' differences)")


def main() -> float:
    meters: dict[str, EnergyMeter | None] = {
        "without sampler": None,
        CONTROL: None,
        "sample_interval=0.1": EnergyMeter([FakeSensor(power_w=30.0)], sample_interval=0.1),
        "sample_hz=20 (default)": EnergyMeter([FakeSensor(power_w=30.0)]),
    }
    names = list(meters)
    timed: dict[str, list[float]] = {name: [] for name in names}
    samples = dict.fromkeys(names, 0)
    cpu_loop()  # warm up
    for r in range(ROUNDS):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: no fixed position
        for name in order:
            meter = meters[name]
            if meter is None:
                timed[name].append(cpu_loop())
                continue
            with meter.window() as w:
                timed[name].append(cpu_loop())
            assert w.measurement is not None
            samples[name] += w.measurement.samples
    for meter in meters.values():
        if meter is not None:
            meter.close()
    bare = timed["without sampler"]
    print(f"CPU-bound loop, {ROUNDS} rounds, order rotated each round")
    print(f"  without sampler          {median(bare) * 1e3:8.1f} ms (median)")
    slowdowns = {}
    for name in names[2:]:
        # Paired: each run against the bare run of its own round, then the median ratio.
        ratio = median([t / b for t, b in zip(timed[name], bare, strict=True)])
        slowdowns[name] = ratio - 1
        print(f"  {name:<24} {median(timed[name]) * 1e3:8.1f} ms   "
              f"{samples[name] / ROUNDS:5.1f} samples per run   "
              f"with / without = {ratio:.4f} ({slowdowns[name] * 100:+.2f}%)")
    control = median([t / b for t, b in zip(timed[CONTROL], bare, strict=True)])
    print(f"  {CONTROL:<24} {median(timed[CONTROL]) * 1e3:8.1f} ms   "
          f"{'':>23}with / without = {control:.4f} ({(control - 1) * 100:+.2f}%: the control, "
          "the noise on this run's figures)")
    default = slowdowns["sample_hz=20 (default)"]
    print(f"  floor: default sampler slowdown < {FLOOR * 100:.0f}% -> "
          f"{verdict(default < FLOOR)}")
    print()
    batch_windows()
    return default


if __name__ == "__main__":
    main()
