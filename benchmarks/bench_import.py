"""Whole-process import time of wattprint, side by side with codecarbon when installed.

Each candidate runs as ``python -c "..."`` many times, interleaved, and the medians are
compared with a bare ``python -c "pass"``. ``import wattprint`` loads the modules behind its
names on first use, so the full core (meter, sensors, footprint: ``wattprint.EnergyMeter``) is
timed too. Floor: ``import wattprint`` under 80 ms whole process.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

from _common import median, verdict

FLOOR_S = 0.080
ROUNDS = 21


def run_once(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


def main() -> dict[str, float]:
    candidates = {
        "python (bare)": "pass",
        "wattprint": "import wattprint",
        "wattprint core": "import wattprint; wattprint.EnergyMeter; wattprint.footprint",
    }
    if importlib.util.find_spec("codecarbon") is not None:
        candidates["codecarbon"] = "import codecarbon"
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(ROUNDS):
        for name, code in candidates.items():
            times[name].append(run_once(code))
    med = {name: median(ts) for name, ts in times.items()}
    bare = med["python (bare)"]
    print(f"import time, whole process (median of {ROUNDS}, interleaved)")
    for name, m in med.items():
        print(f"  {name:<15} {m * 1e3:8.1f} ms   import itself {(m - bare) * 1e3:7.1f} ms")
    core = med["wattprint core"]
    if "codecarbon" in med:
        print(f"  codecarbon / wattprint = {med['codecarbon'] / med['wattprint']:.2f}x, "
              f"codecarbon / wattprint core = {med['codecarbon'] / core:.2f}x")
    else:
        print("  codecarbon not installed: pip install codecarbon to compare")
    print(f"  floor: wattprint < {FLOOR_S * 1e3:.0f} ms -> {verdict(med['wattprint'] < FLOOR_S)}"
          f"; wattprint core < {FLOOR_S * 1e3:.0f} ms -> {verdict(core < FLOOR_S)}")
    return med


if __name__ == "__main__":
    main()
