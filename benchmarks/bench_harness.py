"""What measure_energy adds to a 1,000-query loop over a model call of about 100 µs.

Side by side, interleaved, in one run: the bare loop (``for i in range(1000): model(data[i])``)
against the whole ``measure_energy`` call (one call per sample as ML Energy Score makes it, the
meter's window, collecting the outputs and checking them; nothing stored or written) on the same
1,000 queries. The meter is made once, outside: making one is a start-up cost, not a per-query one.
The comparison runs 5 times, the model sized afresh before each run (a 2-core VM's speed can
halve or double from one second to the next: a run at 65 µs per call would measure another
figure than the floor's). A run whose bare loop, over its rounds, took less than 80 or more
than 125 µs per call, the machine's speed having moved after the model was sized, is sized
again and repeated, up to 4 times; the last is counted whatever its speed, and marked. The
band is the same on both sides of 100 µs: a run at 150 µs per call would flatter the harness
as one at 65 µs wrongs it. Floor: under 2% added, in 5 of 5 runs; each run prints the time per
call it measured, and each run repeated says why.

In the same rounds, a control: the bare loop run a second time, against the first. The two
are the same code on the same data, so what their medians differ by is the noise that run's
figures carry (on a 2-core VM, identical 100 ms loops differ by 5-13% from one round to the
next, and their medians over a run's rounds by up to about 1.5%). After the runs, the mean of
what the harness added over the runs, beside the control's range.

Also in the same rounds, the loop as measure_energy runs it with nothing around it: the same
calls on the same prepared inputs, each output kept in a list, the list freed at the end. It
does what the harness's window holds, so what it differs by from the bare loop is what keeping
the outputs costs (each is written into fresh memory, where the bare loop's reuse the same
block), and noise the control cannot show: the control is the same code on the same memory.
Each run prints what each harness added over this loop beside it.

Where a loop's memory falls changes its time, and differently for the bare loop and for the
harness's. The model therefore computes in two buffers of its own, made with it, and returns a
copy of the last, as an inference engine computes in memory it allocated once. A chain of
NumPy expressions (``np.tanh(x @ w)``) allocates its temporaries afresh on every call,
wherever the heap has room: in one process, the same bare loop on the same data ran up to 8%
slower from one heap offset of its temporaries to another (offsets mod 4096, interleaved
rounds), and between loops doing the same calls that made a lottery of several percent a run
(-3.3 to +2.5% in one set of five), more than the floor, that no harness-side change moved.
With the buffers, the offsets move the loop by under 2%, and each round holds a block of
another size (``SHIFTS``: 16 offsets 256 bytes apart) while its loops run, so that each
loop's median takes in many layouts, not one.

The floor's meter reads counters at the window's edges, as a CPU machine's does (RAPL, here on
a fake two-socket powercap tree; estimation reads ``/proc/stat`` the same way): what it shows is
the harness. Beside it, in the same rounds, the same call with a power-only sensor
(``FakeSensor``), which the meter's sampler thread reads 20 times a second: each of its
wake-ups takes the GIL from the loop and gives it back, which on a VM can cost a millisecond
(``bench_sampler.py`` measures that, against its own floor).

After the runs, the same 1,000 queries of the last run's model in CodeCarbon 3.3.2 and Zeus 0.16,
in their own venv (``peers.py``; skipped with a message where it cannot be made), each against
its own bare loop in rotated rounds: CodeCarbon as ML Energy Score's ``measure_energy`` uses it,
an ``OfflineEmissionsTracker`` made, started and stopped around each call's loop; Zeus as its
README shows, one ``ZeusMonitor`` reading the same fake tree, a window around each call's loop.
Beside CodeCarbon, wattprint's ``measure_energy`` making its own meter per call, as ML Energy
Score makes its tracker (on this machine the meter finds what ``EnergyMeter()`` finds).

Each run also splits what it added in two: the time of the loop inside the meter's window
against the bare loop (the same model calls; what differs is that the harness keeps the outputs
and made the inputs before the loop), and the time outside the window (preparing the inputs,
checking the outputs, making the record), which is what the harness itself does. Beside them,
the minor page faults a measure_energy call took (median): the memory of the outputs it keeps
is the process's from run to run, so after the first run there are next to none; before it
was, a run of 3 KB outputs took 430-820, about 2 µs each on a VM, most inside the window.

After the runs, measure_energy's own cost on a model that returns its input (the last run's
inputs), without labels and with them: the labelled call also scores the outputs (accuracy
and macro F1, as many classes as the input has columns). Beside it, as a what-if, the same
without the check that every output is finite, which measure_energy always makes: the
difference is what that check costs here.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import peers as peers_venv
from _common import median, verdict
from powercap import Zone, build_tree

from wattprint import EnergyMeter, FakeSensor, measure_energy
from wattprint.workloads import harness as harness_module

FLOOR = 0.02
QUERIES = 1000
ROUNDS = 61
RUNS = 5
#: A run's bare loop, per call, must fall in this band (the floor's "about 100 µs"), else the
#: model is sized again and the run repeated, at most TRIES times in all.
BAND = (80e-6, 125e-6)
TRIES = 4
PEER_ROUNDS = 21
#: Bytes of the block each round holds while its loops run, one after another, round by round:
#: each is made above the heap's free space and moves what the loops allocate after it by 256
#: bytes, through every 256th offset mod 4096 (see the module's docstring).
SHIFTS = tuple(8192 + 256 * j for j in range(16))
COUNTERS = "counters (RAPL, fake tree)"
SAMPLED = "power sampled (FakeSensor)"
CONTROL = "the bare loop again"
KEPT = "the loop keeping its outputs"
Model = Callable[[np.ndarray], np.ndarray]


def calibrated_model() -> tuple[Model, int, float]:
    """A model of eight matrix products, each through ``tanh``, sized to take at least 100 µs
    per call here, now (the median of five timings of 50 calls); its input's width; that time.
    It computes in two buffers of its own and returns a copy (see the module's docstring)."""
    rng = np.random.default_rng(0)
    size = 32
    while True:
        w, a, b = rng.random((size, size)), np.empty(size), np.empty(size)

        def model(x: np.ndarray, w: np.ndarray = w, a: np.ndarray = a,
                  b: np.ndarray = b) -> np.ndarray:
            np.matmul(x, w, out=a)
            np.tanh(a, out=b)
            for _ in range(7):
                np.matmul(b, w, out=a)
                np.tanh(a, out=b)
            return b.copy()

        x = rng.random(size)  # one row, as the loops call it
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(50):
                model(x)
            timings.append((time.perf_counter() - t) / 50)
        per_call = median(timings)
        if per_call >= 100e-6 or size >= 1024:
            return model, size, per_call
        size = max(size + 1, int(size * 1.05))  # a call's time grows as size squared: +10%


#: The same queries in CodeCarbon's tracker and Zeus's window, in the peers' venv: argv is the
#: fake tree, the model's size and the rounds; it prints each one's median ratio to its own bare
#: loop, round by round, as JSON.
PEER_HARNESS = """\
import json, statistics, sys, time
import numpy as np
root, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
w, data = rng.random((size, size)), rng.random((1000, size))
def model(x, w=w, a=np.empty(size), b=np.empty(size)):
    np.matmul(x, w, out=a); np.tanh(a, out=b)
    for _ in range(7):
        np.matmul(b, w, out=a); np.tanh(a, out=b)
    return b.copy()
def queries():
    for i in range(1000):
        model(data[i])
from codecarbon import OfflineEmissionsTracker
def codecarbon():
    tracker = OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False,
                                      log_level="error")
    tracker.start(); queries(); tracker.stop()
import zeus.device.cpu.rapl as zr
zr.RAPL_DIR = root + "/intel-rapl"
from zeus.monitor import ZeusMonitor
zm = ZeusMonitor(gpu_indices=[], cpu_indices=[0, 1])
def zeus():
    zm.begin_window("w"); queries(); zm.end_window("w")
runs = {"bare": queries, "codecarbon": codecarbon, "zeus": zeus}
for run in runs.values():
    run()
times = {name: [] for name in runs}
names = list(runs)
for r in range(rounds):
    for name in names[r % 3:] + names[:r % 3]:
        t = time.perf_counter(); runs[name](); times[name].append(time.perf_counter() - t)
ratio = {name: statistics.median([a / b for a, b in zip(times[name], times["bare"])])
         for name in ("codecarbon", "zeus")}
print(json.dumps({"ratio": ratio, "bare_s": statistics.median(times["bare"])}))
"""


class Figures(NamedTuple):
    """One meter's medians over a run's rounds."""

    harness_s: float
    ratio: float  # harness / bare, per round
    in_window: float  # the window / bare, per round
    outside_s: float  # harness less its window
    faults: float  # minor page faults the process took in a measure_energy call


class Run(NamedTuple):
    """One run's figures over its rounds."""

    bare_s: float  # the bare loop's median
    figures: dict[str, Figures]  # each meter's
    control: float  # the bare loop again / the bare loop, per round (median)
    kept: float  # the loop keeping its outputs / the bare loop, per round (median)
    over_kept: dict[str, float]  # each meter's harness / the loop keeping its outputs


def compare(model: Model, data: np.ndarray, meters: dict[str, EnergyMeter]) -> Run:
    """The figures of ROUNDS rounds of the bare loop, the same loop again (the control: what
    two identical loops differ by in this run, the noise on every figure of it), the loop
    keeping its outputs (as measure_energy runs it, with nothing around it) and a
    measure_energy call with each meter, in an order rotated each round."""
    names = ["bare", CONTROL, KEPT, *meters]
    times: dict[str, list[float]] = {name: [] for name in names}
    windows: dict[str, list[float]] = {name: [] for name in meters}
    faults: dict[str, list[float]] = {name: [] for name in meters}
    calls = [data[i] for i in range(QUERIES)]  # as measure_energy prepares them
    for r in range(ROUNDS):
        shift = np.empty(SHIFTS[r % len(SHIFTS)], np.uint8)  # this round's heap layout
        for which in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            if which in ("bare", CONTROL):
                for i in range(QUERIES):
                    model(data[i])
                times[which].append(time.perf_counter() - t)
                continue
            if which == KEPT:
                outputs = []
                append = outputs.append
                for x in calls:
                    append(model(x))
                del outputs, append
                times[which].append(time.perf_counter() - t)
                continue
            faulted = minor_faults()
            result = measure_energy(model, data, "bench", "bench", num_samples=QUERIES,
                                    warmup=0, meter=meters[which], progress=False, db=None,
                                    output_dir=None)
            times[which].append(time.perf_counter() - t)
            faults[which].append(minor_faults() - faulted)
            windows[which].append(result["duration_seconds"])
        del shift
    bare = times["bare"]
    figures = {
        name: Figures(
            median(times[name]),
            median([h / b for h, b in zip(times[name], bare, strict=True)]),
            median([w / b for w, b in zip(windows[name], bare, strict=True)]),
            median([h - w for h, w in zip(times[name], windows[name], strict=True)]),
            median(faults[name]),
        )
        for name in meters
    }
    def ratio(name: str, to: list[float]) -> float:
        return median([x / y for x, y in zip(times[name], to, strict=True)])

    return Run(median(bare), figures, ratio(CONTROL, bare), ratio(KEPT, bare),
               {name: ratio(name, times[KEPT]) for name in meters})


def minor_faults() -> int:
    """The minor page faults this process has taken (a page of memory given it anew)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def paired(bare: Callable[[], None], harness: Callable[[], None],
           rounds: int) -> tuple[list[float], list[float]]:
    """The seconds of ``bare`` and of ``harness`` in each of ``rounds`` rounds, which one goes
    first alternating from round to round."""
    times: dict[Callable[[], None], list[float]] = {bare: [], harness: []}
    runs = [bare, harness]
    for r in range(rounds):
        for run in runs[r % 2:] + runs[:r % 2]:
            t = time.perf_counter()
            run()
            times[run].append(time.perf_counter() - t)
    return times[bare], times[harness]


def own_cost(data: np.ndarray, meter: EnergyMeter, labels: np.ndarray | None = None, *,
             check: bool = True) -> float:
    """Seconds measure_energy adds to 1,000 queries of a model that returns its input: the
    harness alone (the window, the loop's bookkeeping, the outputs' checks, the record).
    With ``labels`` also the accuracy and macro F1 of the outputs, scores of as many classes
    as the input has columns. ``check=False``: the same without the check that every output
    is finite (a what-if: measure_energy always checks), to show what that check costs."""
    def noop(x: np.ndarray) -> np.ndarray:
        return x

    def bare() -> None:
        for i in range(QUERIES):
            noop(data[i])

    dataset = data if labels is None else (data, labels)

    def harness() -> None:
        measure_energy(noop, dataset, "bench", "bench", num_samples=QUERIES, warmup=0,
                       meter=meter, progress=False, db=None, output_dir=None)

    checked = harness_module._check_finite
    if not check:
        harness_module._check_finite = lambda *args: None
    try:
        bare_s, harness_s = paired(bare, harness, ROUNDS)
    finally:
        harness_module._check_finite = checked
    return median(harness_s) - median(bare_s)


def meter_per_call(model: Model, data: np.ndarray) -> float:
    """The median ratio, round by round, of measure_energy making its own meter (as ML Energy
    Score makes a tracker per call) to the bare loop, over PEER_ROUNDS rotated rounds."""
    def harness() -> None:
        measure_energy(model, data, "bench", "bench", num_samples=QUERIES, warmup=0,
                       progress=False, db=None, output_dir=None)

    def bare() -> None:
        for i in range(QUERIES):
            model(data[i])

    harness()  # warm-up: the sensors' and the site's modules loaded once, as for the peers
    bare_s, harness_s = paired(bare, harness, PEER_ROUNDS)
    return median([h / b for h, b in zip(harness_s, bare_s, strict=True)])


def main() -> float:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as root:
        build_tree(Path(root), [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000),
                                Zone("intel-rapl:0:1", "dram", energy_uj=100_000),
                                Zone("intel-rapl:1", "package-1", energy_uj=2_000_000),
                                Zone("intel-rapl:1:1", "dram", energy_uj=200_000)])
        meters = {COUNTERS: EnergyMeter(["rapl"], powercap_root=root),
                  SAMPLED: EnergyMeter([FakeSensor(power_w=50.0)])}
        print(f"1,000 queries of a model call of about 100 µs, {ROUNDS} rounds, order rotated; "
              f"{RUNS} runs")
        added: list[float] = []
        sampled: list[float] = []
        controls: list[float] = []
        kept: list[float] = []
        over_kept: list[float] = []
        for run in range(RUNS):
            for attempt in range(1, TRIES + 1):
                model, width, per_call = calibrated_model()
                data = rng.random((QUERIES, width))
                measured = compare(model, data, meters)
                bare, figures, control = measured.bare_s, measured.figures, measured.control
                in_band = BAND[0] <= bare / QUERIES <= BAND[1]
                if in_band or attempt == TRIES:
                    break
                print(f"  run {run + 1}: the bare loop took {bare / QUERIES * 1e6:.0f} µs per "
                      f"call, outside {BAND[0] * 1e6:.0f}-{BAND[1] * 1e6:.0f} µs (the model was "
                      f"sized at {per_call * 1e6:.0f} µs): sized again and repeated")
            added.append(figures[COUNTERS].ratio - 1)
            sampled.append(figures[SAMPLED].ratio - 1)
            controls.append(control - 1)
            kept.append(measured.kept - 1)
            over_kept.append(measured.over_kept[COUNTERS] - 1)
            mark = "" if in_band else f" (outside the band after {TRIES} tries: counted)"
            print(f"  run {run + 1}: {bare / QUERIES * 1e6:.0f} µs per call, bare loop "
                  f"{bare * 1e3:.2f} ms (median){mark}")
            for name, f in figures.items():
                print(f"    {name:<30} {f.harness_s * 1e3:7.2f} ms: harness / bare = "
                      f"{f.ratio:.4f} (adds {(f.ratio - 1) * 100:+.2f}%: the loop in the window "
                      f"{(f.in_window - 1) * 100:+.2f}%, outside it {f.outside_s * 1e6:.0f} µs "
                      f"= {f.outside_s / bare * 100:.2f}%; {f.faults:.0f} page faults a call)")
            print(f"    {CONTROL:<30} {(control - 1) * 100:+.2f}% (the control: two identical "
                  "loops, the noise on this run's figures)")
            print(f"    {KEPT:<30} {(measured.kept - 1) * 100:+.2f}% (the calls as the harness "
                  "makes them, nothing around them; each harness over it: " + ", ".join(
                      f"{name.split(' (')[0]} {(r - 1) * 100:+.2f}%"
                      for name, r in measured.over_kept.items()) + ")")
        own = own_cost(data, meters[COUNTERS])
        unchecked = own_cost(data, meters[COUNTERS], check=False)
        labels = rng.integers(0, width, QUERIES)
        own_labelled = own_cost(data, meters[COUNTERS], labels)
        for meter in meters.values():
            meter.close()
        per_call_meter = meter_per_call(model, data)
        peer = peers_venv.run_peer(PEER_HARNESS, root, str(width), str(PEER_ROUNDS),
                                   what="CodeCarbon's tracker and Zeus's window")
    print(f"  measure_energy's own cost, on a model that does nothing: {own * 1e6:.0f} µs per "
          f"1,000 queries = {own / (per_call * QUERIES) * 100:.2f}% of this loop (what the runs "
          f"above measure, under this machine's noise)")
    print(f"  the same without the check that every output is finite (what-if: measure_energy "
          f"always checks): {unchecked * 1e6:.0f} µs = "
          f"{unchecked / (per_call * QUERIES) * 100:.2f}%; the check: "
          f"{(own - unchecked) * 1e6:.0f} µs")
    print(f"  the same with labels, accuracy and macro F1 over {width} classes: "
          f"{own_labelled * 1e6:.0f} µs = {own_labelled / (per_call * QUERIES) * 100:.2f}%")
    print(f"  the last run's model, {PEER_ROUNDS} rotated rounds, each against its own bare "
          "loop:")
    rows = [("wattprint measure_energy, a meter made per call", per_call_meter, "")]
    if peer is not None:
        rows += [("CodeCarbon 3.3.2, a tracker per call (ML Energy Score)",
                  peer["ratio"]["codecarbon"], "   (its own venv)"),
                 ("Zeus 0.16, a window per call (one monitor, same tree)", peer["ratio"]["zeus"],
                  "   (its own venv; a window only: nothing kept, checked or recorded)")]
    for label, ratio, why in rows:
        print(f"    {label:<55} adds {(ratio - 1) * 100:+6.2f}%{why}")
    print(f"  over the {RUNS} runs, {COUNTERS} adds {statistics.mean(added) * 100:+.2f}% on "
          f"average ({min(added) * 100:+.2f} to {max(added) * 100:+.2f}%); the control, "
          f"{min(controls) * 100:+.2f} to {max(controls) * 100:+.2f}%")
    print(f"  of which the loop keeping its outputs, against the bare loop, "
          f"{statistics.mean(kept) * 100:+.2f}% on average ({min(kept) * 100:+.2f} to "
          f"{max(kept) * 100:+.2f}%), and the harness over that loop "
          f"{statistics.mean(over_kept) * 100:+.2f}% ({min(over_kept) * 100:+.2f} to "
          f"{max(over_kept) * 100:+.2f}%)")
    under = sum(a < FLOOR for a in added)
    print(f"  {SAMPLED}: adds < {FLOOR * 100:.0f}% in {sum(a < FLOOR for a in sampled)} of "
          f"{RUNS} runs (the sampler's own floor is bench_sampler.py's)")
    print(f"  floor ({COUNTERS}): adds < {FLOOR * 100:.0f}% in {RUNS} of {RUNS} runs: "
          f"{under} of {RUNS} -> {verdict(under == RUNS)}")
    return max(added)


if __name__ == "__main__":
    main()
