"""Whole-process import time of wattprint, side by side with codecarbon when installed.

Each candidate runs as ``python -c "import X"`` many times, interleaved, and the medians are
compared with a bare ``python -c "pass"``. Floor: wattprint under 80 ms whole process.
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
    candidates = {"python (bare)": "pass", "wattprint": "import wattprint"}
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
    if "codecarbon" in med:
        print(f"  codecarbon / wattprint = {med['codecarbon'] / med['wattprint']:.2f}x")
    else:
        print("  codecarbon not installed: pip install codecarbon to compare")
    print(f"  floor: wattprint < {FLOOR_S * 1e3:.0f} ms -> {verdict(med['wattprint'] < FLOOR_S)}")
    return med


if __name__ == "__main__":
    main()
