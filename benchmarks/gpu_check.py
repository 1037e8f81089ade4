"""What wattprint reads from an NVIDIA GPU, checked against itself.

Run ``python benchmarks/gpu_check.py``. Needs torch with CUDA and nvidia-ml-py; takes about a
minute (under 5). On the first visible GPU (``cuda:0``, which is wattprint's ``gpu:0``) it
prints:

1. the hardware label runs are filed under, beside NVML's name, the table's board power and the
   GPU's enforced power limit;
2. how often the energy counter (``nvmlDeviceGetTotalEnergyConsumption``) moves, polled for a
   second under load;
3. a matrix-multiply loop and an idle sleep, each measured by two meters over the same windows:
   one reads the energy counter, the other samples ``nvmlDeviceGetPowerUsage`` (the same NVML
   with the counter hidden, so wattprint falls back to sampling power, as on GPUs without one);
4. windows of 1 ms, 10 ms and 100 ms of that loop: the energy and the notes each meter attaches;
5. device synchronisation on and off: the work a window without it lets escape.

Without a GPU it prints one line saying why not and exits 0. Not part of ``run_all.py``.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from wattprint import EnergyMeter, Measurement
from wattprint.sensors.hardware import detect_hardware, resolve_hardware

#: Side of the square fp16 matrices multiplied: a fraction of a millisecond per product on a
#: data-centre GPU, so that even a 1 ms window holds whole products.
SIDE = 4096
#: Sections are skipped once this many seconds have passed, to stay well under 5 minutes.
BUDGET_S = 240.0
#: Window lengths, seconds: the matmul windows measured by both meters, the idle one, the
#: counter's polling, the short windows, the queued work of the synchronisation check.
COMPARE_S = (2.0, 5.0, 10.0)
IDLE_S = 3.0
POLL_S = 1.0
SHORT_S = (0.001, 0.01, 0.1)
SYNC_WORK_S = 0.5


def why_no_gpu() -> str | None:
    """Why this machine cannot run the check, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed (pip install 'wattprint[nvidia]')"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return f"NVML could not start: {err}"
    pynvml.nvmlShutdown()
    return None


def power_only(pynvml: types.ModuleType) -> types.ModuleType:
    """``pynvml`` as on a GPU without an energy counter: that call says Not Supported, so
    wattprint samples ``nvmlDeviceGetPowerUsage`` instead (its own fallback, unchanged)."""
    module = types.ModuleType(f"{pynvml.__name__}_power_only")
    module.__dict__.update(vars(pynvml))

    def no_counter(handle: Any) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    module.nvmlDeviceGetTotalEnergyConsumption = no_counter  # type: ignore[attr-defined]
    return module


def gpu_j(m: Measurement) -> float:
    return m.components["gpu:0"].energy_j if "gpu:0" in m.components else float("nan")


class Load:
    """Matrix products on ``cuda:0``, queued for a given time; the caller synchronises."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.a = torch.randn(SIDE, SIDE, device="cuda:0", dtype=torch.float16)
        self.b = torch.randn(SIDE, SIDE, device="cuda:0", dtype=torch.float16)
        self.c = torch.empty_like(self.a)
        self.queue(20)
        torch.cuda.synchronize(0)
        t = time.perf_counter()
        self.queue(100)
        torch.cuda.synchronize(0)
        self.product_s = (time.perf_counter() - t) / 100

    def queue(self, n: int) -> None:
        mm, a, b, c = self.torch.matmul, self.a, self.b, self.c
        for _ in range(n):
            mm(a, b, out=c)

    def queue_for(self, seconds: float) -> int:
        n = max(1, round(seconds / self.product_s))
        self.queue(n)
        return n

    def drain(self) -> float:
        """Wait for the queued work; the seconds it took."""
        t = time.perf_counter()
        self.torch.cuda.synchronize(0)
        return time.perf_counter() - t


def both(counter: EnergyMeter, power: EnergyMeter, work: Callable[[], object],
         name: str) -> tuple[Measurement, Measurement]:
    """One window on each meter around ``work``, the power meter's outside the counter's."""
    power.begin(name)
    counter.begin(name)
    work()
    c = counter.end(name)  # synchronises the device first
    p = power.end(name)
    return c, p


def section(title: str) -> None:
    print(f"\n== {title}")


def show_hardware(counter: EnergyMeter, pynvml: types.ModuleType, torch: Any) -> None:
    section("hardware")
    for s in counter.sensors:
        print(f"  {s.component}: {type(s).__name__}: {s.description}")
    label = detect_hardware(counter.sensors)
    hw = resolve_hardware(label)
    tdp = f"{hw.tdp_w:g} W" if hw.tdp_w is not None else "not in the table"
    print(f"  torch cuda:0: {torch.cuda.get_device_name(0)}")
    print(f"  hardware label: {label!r} (in the table: {hw.known}; kind {hw.kind}; "
          f"board power {tdp})")
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        try:
            limit = f"{pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000:g} W"
        except pynvml.NVMLError as err:
            limit = f"unknown ({err})"
        print(f"  NVML index {index}: {name!r}, enforced power limit {limit}")


def show_update_period(counter: EnergyMeter, load: Load) -> None:
    section(f"energy counter update period (polled for {POLL_S:g} s under load)")
    sensor = next((s for s in counter.sensors if s.component == "gpu:0"), None)
    read = getattr(sensor, "energy_j", None)
    if read is None:
        print("  gpu:0 has no energy counter here: nothing to poll")
        return
    load.queue_for(POLL_S * 1.5)
    changes: list[float] = []
    last = read()
    t0 = time.perf_counter()
    polls = 0
    while (now := time.perf_counter()) - t0 < POLL_S:
        value = read()
        polls += 1
        if value != last:
            changes.append(now)
            last = value
    load.drain()
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    if gaps:
        median_ms = statistics.median(gaps) * 1e3
        print(f"  {len(changes)} changes in {polls} reads: median {median_ms:.1f} ms apart"
              f" (min {min(gaps) * 1e3:.1f}, max {max(gaps) * 1e3:.1f}); "
              f"{1e6 / max(polls, 1):.1f} us per read")
    else:
        print(f"  the counter moved {len(changes)} times in {polls} reads over {POLL_S:g} s")


def show_counter_vs_power(counter: EnergyMeter, power: EnergyMeter, load: Load) -> None:
    section("energy counter against sampled power, same windows (gpu:0)")
    print(f"  {'window':<14} {'s':>6} {'counter J':>10} {'sampled J':>10} {'ratio':>6} "
          f"{'counter W':>9} {'sampled W':>9} {'samples':>7}")
    cases: list[tuple[str, float, Callable[[], object]]] = []
    for seconds in COMPARE_S:
        cases.append((f"matmul {seconds:g} s", seconds, functools.partial(load.queue_for, seconds)))
    cases.append((f"idle {IDLE_S:g} s", IDLE_S, functools.partial(time.sleep, IDLE_S)))
    for label, _, work in cases:
        for rep in range(2):
            c, p = both(counter, power, work, f"{label}#{rep}")
            cj, pj = gpu_j(c), gpu_j(p)
            print(f"  {label:<14} {c.duration_s:6.2f} {cj:10.1f} {pj:10.1f} "
                  f"{pj / cj if cj else float('nan'):6.3f} {cj / c.duration_s:9.1f} "
                  f"{pj / p.duration_s:9.1f} {p.samples:7d}")
    print("  sampled power on Ampere and newer (but A100) is a 1 s average: it lags the load, so")
    print("  the ratio nears 1 as windows grow")


def show_short_windows(counter: EnergyMeter, power: EnergyMeter, load: Load) -> None:
    section("short windows of the matmul loop")
    for seconds in SHORT_S:
        rows = []
        for rep in range(5):
            c, p = both(counter, power, functools.partial(load.queue_for, seconds),
                        f"short-{seconds}-{rep}")
            rows.append(f"{c.duration_s * 1e3:.2f} ms: {gpu_j(c):.3f} J counter, "
                        f"{gpu_j(p):.3f} J sampled")
        print(f"  {seconds * 1e3:g} ms ({max(1, round(seconds / load.product_s))} products):")
        for row in rows:
            print(f"    {row}")
        # The last window's notes (the others differ only in the duration they name).
        print(f"    counter meter's notes: {' | '.join(c.notes) or 'none'}")
        print(f"    power meter's notes:   {' | '.join(p.notes) or 'none'}")


def show_sync(pynvml: types.ModuleType, load: Load) -> None:
    section(f"device synchronisation at window edges ({SYNC_WORK_S:g} s of queued products)")
    for sync in (True, False):
        with EnergyMeter(["nvml"], nvml=pynvml, sync_cuda=sync) as meter:
            for rep in range(2):
                load.drain()
                meter.begin("w")
                load.queue_for(SYNC_WORK_S)
                m = meter.end("w")
                left = load.drain()
                print(f"  sync {'on ' if sync else 'off'} #{rep}: window {m.duration_s:.3f} s, "
                      f"{gpu_j(m):.1f} J; GPU work still running after it: {left:.3f} s")


def main() -> int:
    reason = why_no_gpu()
    if reason is not None:
        print(f"gpu_check: no NVIDIA GPU to check here: {reason}")
        return 0
    import pynvml
    import torch

    start = time.perf_counter()
    load = Load(torch)
    print(f"gpu_check: {SIDE}x{SIDE} fp16 products on cuda:0, {load.product_s * 1e3:.3f} ms each")
    counter = EnergyMeter(["nvml"], nvml=pynvml)
    power = EnergyMeter(["nvml"], nvml=power_only(pynvml), sample_hz=20.0)
    try:
        steps: list[Callable[[], None]] = [
            lambda: show_hardware(counter, pynvml, torch),
            lambda: show_update_period(counter, load),
            lambda: show_counter_vs_power(counter, power, load),
            lambda: show_short_windows(counter, power, load),
            lambda: show_sync(pynvml, load),
        ]
        for step in steps:
            if time.perf_counter() - start > BUDGET_S:
                print(f"\n(time budget of {BUDGET_S:g} s spent: the remaining checks skipped)")
                break
            step()
    finally:
        counter.close()
        power.close()
    print(f"\ngpu_check: done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
