"""Whole-process cost of a first measurement: wattprint's, CodeCarbon's and Zeus's.

Each candidate runs as ``python -c "..."`` many times, interleaved, and the medians are
compared with a bare ``python -c "pass"``. ``import wattprint`` loads the modules behind its
names on first use, so what a user's first measurement costs is timed too: the import, an
``EnergyMeter()`` (sensor detection, the site's carbon intensity) and one window. Beside it,
in the same rounds, the same for CodeCarbon 3.3.2 (``OfflineEmissionsTracker`` start and stop)
and Zeus 0.16 (``ZeusMonitor`` and one window), from their own venv (``peers.py``; skipped with
a message where it cannot be made), and each process's peak memory (its maximum resident set).
Bytecode is written and used as in an installed package (``PYTHONDONTWRITEBYTECODE`` is dropped
for the runs, after one warm-up run of each). Floor: wattprint's first measurement within 50 ms
of a bare interpreter, whole process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import peers as peers_venv
from _common import median, verdict

FLOOR_S = 0.050
ROUNDS = 21
FIRST = "import wattprint; m = wattprint.EnergyMeter(); m.begin('w'); m.end('w')"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


#: A first measurement with each peer, as its README shows it (no GPU here: CPU only).
CODECARBON = ("from codecarbon import OfflineEmissionsTracker\n"
              "t = OfflineEmissionsTracker(country_iso_code='DEU', save_to_file=False,"
              " log_level='error')\n"
              "t.start(); t.stop()")
ZEUS = ("from zeus.monitor import ZeusMonitor\n"
        "m = ZeusMonitor(gpu_indices=[]); m.begin_window('w'); m.end_window('w')")
PEER_ROUNDS = 7  # each takes seconds: fewer rounds, still interleaved with wattprint's


#: Appended to every candidate (bare python too): its own peak resident memory, from the
#: kernel's high-water mark of its address space (``ru_maxrss`` would also count the parent's,
#: which the child's counter inherits through fork and exec).
HWM = ("\nprint('VmHWM', [l for l in open('/proc/self/status')"
       " if l.startswith('VmHWM')][0].split()[1])")


def run_once(code: str, python: str = sys.executable) -> tuple[float, float]:
    """Wall seconds of ``python -c code``, and its peak resident memory in MiB."""
    t = time.perf_counter()
    done = subprocess.run([python, "-c", code + HWM], env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")
    hwm = [line for line in done.stdout.splitlines() if line.startswith("VmHWM ")]
    return elapsed, int(hwm[-1].split()[1]) / 1024 if hwm else float("nan")  # kB


def main() -> dict[str, float]:
    candidates: dict[str, tuple[str, str]] = {
        "python (bare)": ("pass", sys.executable),
        "wattprint": ("import wattprint", sys.executable),
        "first window": (FIRST, sys.executable),
    }
    peers = ("CodeCarbon tracker", "Zeus monitor")
    python = peers_venv.peer_python()
    if python is not None:
        for name, code in zip(peers, (CODECARBON, ZEUS), strict=True):
            try:
                run_once(code, python)  # warm-up, and a check that it runs here
                candidates[name] = (code, python)
            except RuntimeError as err:
                print(f"  {name}: not compared ({err})")
    for code, exe in candidates.values():
        run_once(code, exe)  # warm-up: bytecode written, files in the page cache
    times: dict[str, list[float]] = {name: [] for name in candidates}
    peak: dict[str, list[float]] = {name: [] for name in candidates}
    for r in range(ROUNDS):
        for name, (code, exe) in candidates.items():
            if name in peers and r >= PEER_ROUNDS:
                continue
            seconds, mib = run_once(code, exe)
            times[name].append(seconds)
            peak[name].append(mib)
    med = {name: median(ts) for name, ts in times.items()}
    bare = med["python (bare)"]
    print(f"first measurement, whole process (median of {ROUNDS} interleaved rounds; "
          f"CodeCarbon and Zeus {PEER_ROUNDS})")
    for name, m in med.items():
        print(f"  {name:<19} {m * 1e3:8.1f} ms   over bare {(m - bare) * 1e3:7.1f} ms   "
              f"peak memory {max(peak[name]):6.1f} MiB")
    first = med["first window"] - bare
    for name in peers:
        if name in med:
            print(f"  {name} / wattprint's first window = "
                  f"{(med[name] - bare) / max(first, 1e-4):.1f}x the time over bare python, "
                  f"{max(peak[name]) / max(peak['first window']):.1f}x the peak memory")
    print(f"  floor: import + EnergyMeter() + one window {first * 1e3:.1f} ms over bare python "
          f"<= {FLOOR_S * 1e3:.0f} ms -> {verdict(first <= FLOOR_S)}")
    return med


if __name__ == "__main__":
    main()
