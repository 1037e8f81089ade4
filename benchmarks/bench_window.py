"""Cost of one window (begin + end) on a fake two-socket powercap tree, and on estimation.

Floor: under 50 µs median on the fake tree.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import median, verdict
from powercap import Zone, build_tree

from wattprint import EnergyMeter

FLOOR_S = 50e-6
N = 5000


def window_cost(meter: EnergyMeter, n: int = N) -> list[float]:
    costs = []
    begin, end = meter.begin, meter.end
    for _ in range(n):
        t = time.perf_counter()
        begin("w")
        end("w")
        costs.append(time.perf_counter() - t)
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
        meters = {
            "fake two-socket powercap tree": EnergyMeter(["rapl"], powercap_root=root),
            "estimation (cpu + ram)": EnergyMeter(["estimate"]),
        }
        results = {}
        for name, meter in meters.items():
            window_cost(meter, 200)  # warm up
            results[name] = median(window_cost(meter))
            meter.close()
    print(f"window begin+end, median of {N}")
    for name, m in results.items():
        print(f"  {name:<32} {m * 1e6:7.1f} µs")
    tree = results["fake two-socket powercap tree"]
    est = results["estimation (cpu + ram)"]
    print(f"  estimation / powercap = {est / tree:.2f}x")
    print(f"  floor: powercap tree < {FLOOR_S * 1e6:.0f} µs -> {verdict(tree < FLOOR_S)}")
    return results


if __name__ == "__main__":
    main()
