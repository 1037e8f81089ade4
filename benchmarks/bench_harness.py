"""What measure_energy adds to a 1,000-query loop over a model call of about 100 µs.

Side by side, interleaved, in one run: the bare loop (``for x in samples: model(x)``) against
the whole ``measure_energy`` call (one call per sample as ML Energy Score makes it, the meter's
window, collecting the outputs and checking them; nothing stored or written) on the same 1,000
queries. The meter is made once, outside: making one is a start-up cost, not a per-query one.
The comparison runs 5 times, the model sized afresh before each run (a 2-core VM's speed can
halve or double from one second to the next: a run at 65 µs per call would measure another
figure than the floor's). Floor: under 2% added, in 5 of 5 runs; each run prints the time per
call it measured.

Each run also splits what it added in two: the time of the loop inside the meter's window
against the bare loop (the same model calls; what differs is that the harness keeps the outputs
and made the inputs before the loop, so the difference is mostly where in memory the model's
arrays fell), and the time outside the window (preparing the inputs, checking the outputs,
making the record), which is what the harness itself does.
"""

from __future__ import annotations

import time

import numpy as np
from _common import median, verdict

from wattprint import EnergyMeter, FakeSensor, measure_energy

FLOOR = 0.02
QUERIES = 1000
ROUNDS = 61
RUNS = 5


def calibrated_model() -> tuple[object, float]:
    """A matrix product sized to take at least 100 µs per call here, now: the median of five
    timings of 50 calls."""
    rng = np.random.default_rng(0)
    size = 32
    while True:
        w = rng.random((size, size))

        def model(x: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            out = x
            for _ in range(8):
                out = np.tanh(out @ w)
            return out

        x = rng.random((1, size))
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(50):
                model(x)
            timings.append((time.perf_counter() - t) / 50)
        per_call = median(timings)
        if per_call >= 100e-6 or size >= 1024:
            return model, per_call
        size = int(size * 1.1)


def compare(model: object, data: np.ndarray,
            meter: EnergyMeter) -> tuple[float, float, float, float, float]:
    """Median bare and harness times of ROUNDS alternating rounds, the median ratio, the
    median ratio of the harness's window to the bare loop, and the median time the harness
    spent outside its window."""
    bare, harness, window = [], [], []
    for r in range(ROUNDS):
        for which in (("bare", "harness") if r % 2 == 0 else ("harness", "bare")):
            if which == "bare":
                t = time.perf_counter()
                for i in range(QUERIES):
                    model(data[i])  # type: ignore[operator]
                bare.append(time.perf_counter() - t)
            else:
                t = time.perf_counter()
                result = measure_energy(model, data, "bench", "bench", num_samples=QUERIES,
                                        warmup=0, meter=meter, progress=False, db=None,
                                        output_dir=None)
                harness.append(time.perf_counter() - t)
                window.append(result["duration_seconds"])
    ratio = median([h / b for h, b in zip(harness, bare, strict=True)])
    in_window = median([w / b for w, b in zip(window, bare, strict=True)])
    outside = median([h - w for h, w in zip(harness, window, strict=True)])
    return median(bare), median(harness), ratio, in_window, outside


def own_cost(data: np.ndarray, meter: EnergyMeter) -> float:
    """Seconds measure_energy adds to 1,000 queries of a model that returns its input: the
    harness alone (the window, the loop's bookkeeping, the outputs' checks, the record)."""
    def noop(x: np.ndarray) -> np.ndarray:
        return x

    bare, harness = [], []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for i in range(QUERIES):
            noop(data[i])
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        measure_energy(noop, data, "bench", "bench", num_samples=QUERIES, warmup=0,
                       meter=meter, progress=False, db=None, output_dir=None)
        harness.append(time.perf_counter() - t)
    return median(harness) - median(bare)


def main() -> float:
    rng = np.random.default_rng(1)
    meter = EnergyMeter([FakeSensor(power_w=50.0)])
    print(f"1,000 queries of a model call of about 100 µs, {ROUNDS} rounds, alternating; "
          f"{RUNS} runs")
    added = []
    for run in range(RUNS):
        model, per_call = calibrated_model()
        width = model.__defaults__[0].shape[0]  # type: ignore[attr-defined]
        data = rng.random((QUERIES, width))
        bare, harness, ratio, in_window, outside = compare(model, data, meter)
        added.append(ratio - 1)
        print(f"  run {run + 1}: {bare / QUERIES * 1e6:.0f} µs per call: bare loop "
              f"{bare * 1e3:7.2f} ms, measure_energy {harness * 1e3:7.2f} ms (medians): "
              f"harness / bare = {ratio:.4f} (adds {(ratio - 1) * 100:+.2f}%: the loop in the "
              f"window {(in_window - 1) * 100:+.2f}%, outside it {outside * 1e6:.0f} µs = "
              f"{outside / bare * 100:.2f}%)")
    own = own_cost(data, meter)
    print(f"  measure_energy's own cost, on a model that does nothing: {own * 1e6:.0f} µs per "
          f"1,000 queries = {own / (per_call * QUERIES) * 100:.2f}% of this loop (what the runs "
          f"above measure, under this machine's noise)")
    meter.close()
    under = sum(a < FLOOR for a in added)
    print(f"  floor: adds < {FLOOR * 100:.0f}% in {RUNS} of {RUNS} runs: {under} of {RUNS} -> "
          f"{verdict(under == RUNS)}")
    return max(added)


if __name__ == "__main__":
    main()
