"""Cost of one window (begin + end) on a fake two-socket powercap tree, and on estimation.

Beside them, the floor any meter pays on that tree: two ``os.pread`` of each counter the meter
reads, on descriptors kept open, and the values parsed. Floors: the tree's window within 2x
that raw floor (and under 50 µs); a window on the estimation path, and one in
``mode="process"``, within 2x the tree's window; process mode reads ``/proc/stat`` at most
once per edge, however many CPU sensors it wraps (back to back, as here, the kernel is asked at
most once per ``estimate.FRESH_S``; the same windows reading it at every edge are printed
beside). CodeCarbon's RAPL reader and Zeus's monitor are timed on the same tree, in their own
venv (``peers.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import peers as peers_venv
from _common import median, verdict
from powercap import Zone, build_tree

from wattprint import EnergyMeter
from wattprint.sensors import estimate, rapl

#: The same window with CodeCarbon 3.3.2's RAPL reader (``IntelRAPL``: ``start`` then
#: ``get_cpu_details``, DRAM included where it finds it) and Zeus 0.16's monitor (a CPU-only
#: ``ZeusMonitor`` window, its RAPL folder pointed at the tree), on the same tree, in their own
#: venv (``peers.py``). Arguments: tree root, windows, rounds. Prints the medians as JSON.
PEER_WINDOWS = """\
import json, statistics, sys, time
root, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}
from codecarbon.core.cpu import IntelRAPL
from codecarbon.core.units import Time
cc = IntelRAPL(rapl_dir=root + "/intel-rapl", rapl_include_dram=True)
dur = Time.from_seconds(1.0)
def cc_window():
    cc.start(); cc.get_cpu_details(dur)
import zeus.device.cpu.rapl as zr
zr.RAPL_DIR = root + "/intel-rapl"
from zeus.monitor import ZeusMonitor
zm = ZeusMonitor(gpu_indices=[], cpu_indices=[0, 1])
def zeus_window():
    zm.begin_window("w"); zm.end_window("w")
counters = {"codecarbon": len(cc._rapl_files),
            "zeus": sum(1 + (c.dram is not None) for c in zm.cpus.cpus)}
for name, window in (("codecarbon", cc_window), ("zeus", zeus_window)):
    for _ in range(100):
        window()
costs = {"codecarbon": [], "zeus": []}
for _ in range(rounds):
    for name, window in (("codecarbon", cc_window), ("zeus", zeus_window)):
        for _ in range(n // rounds):
            t = time.perf_counter(); window(); costs[name].append(time.perf_counter() - t)
medians = {k: statistics.median(v) for k, v in costs.items()}
print(json.dumps({"median_s": medians, "counters": counters}))
"""

FLOOR_S = 50e-6
EVERY = "reading /proc/stat at every edge: "
IN_PYTHON = "powercap tree, counters read in Python"
N = 5000
ROUNDS = 10


def window_cost(meter: EnergyMeter, n: int = N) -> list[float]:
    costs = []
    begin, end = meter.begin, meter.end
    for _ in range(n):
        t = time.perf_counter()
        begin("w")
        end("w")
        costs.append(time.perf_counter() - t)
    return costs


def raw_floor(paths: list[str], n: int = N) -> list[float]:
    """Two edges of ``pread`` + ``int`` on each path, descriptors kept open."""
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    costs = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            for _edge in range(2):
                for fd in fds:
                    int(os.pread(fd, 24, 0))
            costs.append(time.perf_counter() - t)
    finally:
        for fd in fds:
            os.close(fd)
    return costs


def proc_stat_reads(meter: EnergyMeter, n: int = 100, fresh_s: float | None = None) -> float:
    """Reads of ``/proc/stat`` the kernel serves per window edge, back to back (``fresh_s``:
    :data:`estimate.FRESH_S` for the run, 0 for a read at every edge)."""
    reads = 0
    real = estimate._pread

    def counting(fd: int, size: int, offset: int) -> bytes:
        nonlocal reads
        if fd == estimate._proc_stat_fd:
            reads += 1
        return real(fd, size, offset)

    estimate._pread = counting
    try:
        with fresh(fresh_s):
            window_cost(meter, n)
    finally:
        estimate._pread = real
    return reads / (2 * n)


@contextlib.contextmanager
def fresh(seconds: float | None) -> Iterator[None]:
    """``estimate.FRESH_S`` set to ``seconds`` (None: left as shipped) while inside."""
    shipped = estimate.FRESH_S
    if seconds is not None:
        estimate.FRESH_S = seconds
    try:
        yield
    finally:
        estimate.FRESH_S = shipped


def window_cost_at(meter: EnergyMeter, n: int, *, fresh_s: float | None) -> list[float]:
    with fresh(fresh_s):
        return window_cost(meter, n)


def window_cost_in_python(meter: EnergyMeter, n: int) -> list[float]:
    """The windows with the RAPL counters read one ``os.pread`` at a time, as where the native
    edge reader is not built (or ``WATTPRINT_PURE_PYTHON=1``)."""
    native, rapl._read_counters = rapl._read_counters, None
    try:
        return window_cost(meter, n)
    finally:
        rapl._read_counters = native


def proc_stat_floor(n: int = N) -> list[float]:
    """Two ``pread`` of ``/proc/stat`` on a kept descriptor: what the kernel alone takes to
    write the machine's CPU times at both edges of a window (it formats the whole file however
    little is read), and what the estimation path and process mode cannot go below."""
    fd = os.open("/proc/stat", os.O_RDONLY)
    costs = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.pread(fd, 512, 0)
            os.pread(fd, 512, 0)
            costs.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return costs


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        build_tree(
            Path(root),
            [
                Zone("intel-rapl:0", "package-0", energy_uj=1_000_000),
                Zone("intel-rapl:0:0", "core", energy_uj=500_000),
                Zone("intel-rapl:0:1", "dram", energy_uj=100_000),
                Zone("intel-rapl:1", "package-1", energy_uj=2_000_000),
                Zone("intel-rapl:1:0", "core", energy_uj=600_000),
                Zone("intel-rapl:1:1", "dram", energy_uj=200_000),
            ],
        )
        tree_meter = EnergyMeter(["rapl"], powercap_root=root)
        counters = [s.path for s in tree_meter.sensors]  # type: ignore[attr-defined]
        estimation = EnergyMeter(["estimate"])
        process = EnergyMeter(["rapl", "estimate"], mode="process", powercap_root=root)
        # name: (meter, estimate.FRESH_S for its run: None as shipped, 0 a read at every edge)
        meters: dict[str, tuple[EnergyMeter, float | None]] = {
            "fake two-socket powercap tree": (tree_meter, None),
            "estimation (cpu + ram)": (estimation, None),
            "process mode, two packages": (process, None),
            EVERY + "estimation": (estimation, 0.0),
            EVERY + "process mode": (process, 0.0),
        }
        raw_name = f"raw pread floor ({len(counters)} counters)"
        kernel_name = "kernel: /proc/stat at two edges"
        runs: dict[str, Callable[[int], list[float]]] = {
            raw_name: lambda n: raw_floor(counters, n),
            kernel_name: proc_stat_floor,
        }
        for name, (meter, fresh_s) in meters.items():
            window_cost_at(meter, 200, fresh_s=fresh_s)  # warm up
            runs[name] = functools.partial(window_cost_at, meter, fresh_s=fresh_s)
        if rapl.edge_reader() == "native":
            runs[IN_PYTHON] = functools.partial(window_cost_in_python, tree_meter)
        # Side by side: rounds in turn, so that a machine that slows down slows every figure.
        costs: dict[str, list[float]] = {name: [] for name in runs}
        for _round in range(ROUNDS):
            for name, run in runs.items():
                costs[name] += run(N // ROUNDS)
        results = {name: median(c) for name, c in costs.items()}
        peer = peers_venv.run_peer(PEER_WINDOWS, root, str(N), str(ROUNDS),
                                   what="CodeCarbon's and Zeus's RAPL windows")
        reads = {name: proc_stat_reads(meter, fresh_s=fresh_s)
                 for name, (meter, fresh_s) in meters.items()}
        for meter in (tree_meter, estimation, process):
            meter.close()
    print(f"window begin+end, median of {N} in {ROUNDS} interleaved rounds")
    for name, m in results.items():
        extra = f"   /proc/stat reads per edge: {reads[name]:.2g}" if name in reads else ""
        print(f"  {name:<36} {m * 1e6:7.1f} µs{extra}")
    if peer is not None:
        for name, label in (("codecarbon", "CodeCarbon 3.3.2 IntelRAPL"), ("zeus", "Zeus 0.16 "
                                                                             "ZeusMonitor")):
            print(f"  {label:<36} {peer['median_s'][name] * 1e6:7.1f} µs   "
                  f"({peer['counters'][name]} counters, its own venv, same tree)")
    floor = results[raw_name]
    kernel = results[kernel_name]
    tree = results["fake two-socket powercap tree"]
    est = results["estimation (cpu + ram)"]
    proc = results["process mode, two packages"]
    print(f"  powercap / raw floor = {tree / floor:.2f}x (floor 2x) -> "
          f"{verdict(tree <= 2 * floor)}; powercap < {FLOOR_S * 1e6:.0f} µs -> "
          f"{verdict(tree < FLOOR_S)}  (edge reader: {rapl.edge_reader()})")
    if IN_PYTHON in results:
        print(f"  without the native edge reader: {results[IN_PYTHON] / floor:.2f}x the raw "
              f"floor, {(results[IN_PYTHON] - tree) * 1e6:.1f} µs more a window")
    else:
        print("  the native edge reader is not built here (see hatch_build.py): the counters "
              "are read in Python")
    # the ratio moves with the host's system calls: what the window adds to them, beside it
    print(f"  the window over the raw reads: {(tree - floor) * 1e6:.1f} µs a window (the time, "
          f"the wrap state and the record), the reads {floor * 1e6:.1f} µs")
    print(f"  estimation / powercap = {est / tree:.2f}x (floor 2x) -> {verdict(est <= 2 * tree)}")
    print(f"  process mode / powercap = {proc / tree:.2f}x (floor 2x) -> "
          f"{verdict(proc <= 2 * tree)}; /proc/stat reads per edge "
          f"{reads['process mode, two packages']:.2g} (floor 1) -> "
          f"{verdict(reads['process mode, two packages'] <= 1)}")
    if peer is not None:
        print(f"  CodeCarbon's window / wattprint's = "
              f"{peer['median_s']['codecarbon'] / tree:.1f}x, Zeus's / wattprint's = "
              f"{peer['median_s']['zeus'] / tree:.1f}x")
    every_est, every_proc = results[EVERY + "estimation"], results[EVERY + "process mode"]
    print(f"  windows further apart than estimate.FRESH_S ({estimate.FRESH_S * 1e3:g} ms) read "
          f"the kernel at each edge: estimation {every_est / tree:.2f}x, process mode "
          f"{every_proc / tree:.2f}x the powercap window; the kernel's two /proc/stat reads "
          f"alone are {kernel / tree:.2f}x it (less them: estimation "
          f"{(every_est - kernel) / tree:.2f}x, process mode {(every_proc - kernel) / tree:.2f}x)")
    return results


if __name__ == "__main__":
    main()
