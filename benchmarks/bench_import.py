"""Whole-process import time of wattprint, side by side with codecarbon when installed.

Each candidate runs as ``python -c "..."`` many times, interleaved, and the medians are
compared with a bare ``python -c "pass"``. ``import wattprint`` loads the modules behind its
names on first use, so what a user's first measurement costs is timed too: the import, an
``EnergyMeter()`` (sensor detection, the site's carbon intensity) and one window. Bytecode is
written and used as in an installed package (``PYTHONDONTWRITEBYTECODE`` is dropped for the
runs, after one warm-up run of each). Floor: that first measurement within 50 ms of a bare
interpreter, whole process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

from _common import median, verdict

FLOOR_S = 0.050
ROUNDS = 21
FIRST = "import wattprint; m = wattprint.EnergyMeter(); m.begin('w'); m.end('w')"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    return time.perf_counter() - t


def main() -> dict[str, float]:
    candidates = {
        "python (bare)": "pass",
        "wattprint": "import wattprint",
        "first window": FIRST,
    }
    if importlib.util.find_spec("codecarbon") is not None:
        candidates["codecarbon"] = "import codecarbon"
    for code in candidates.values():
        run_once(code)  # warm-up: bytecode written, files in the page cache
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(ROUNDS):
        for name, code in candidates.items():
            times[name].append(run_once(code))
    med = {name: median(ts) for name, ts in times.items()}
    bare = med["python (bare)"]
    print(f"import time, whole process (median of {ROUNDS}, interleaved)")
    for name, m in med.items():
        print(f"  {name:<15} {m * 1e3:8.1f} ms   import itself {(m - bare) * 1e3:7.1f} ms")
    first = med["first window"] - bare
    if "codecarbon" in med:
        print(f"  import codecarbon / import wattprint = "
              f"{(med['codecarbon'] - bare) / max(med['wattprint'] - bare, 1e-4):.2f}x")
    else:
        print("  codecarbon not installed: pip install codecarbon to compare")
    print(f"  floor: import + EnergyMeter() + one window {first * 1e3:.1f} ms over bare python "
          f"<= {FLOOR_S * 1e3:.0f} ms -> {verdict(first <= FLOOR_S)}")
    return med


if __name__ == "__main__":
    main()
