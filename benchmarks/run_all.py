"""Run every benchmark: ``make bench`` or ``python benchmarks/run_all.py``."""

from __future__ import annotations

import bench_harness
import bench_import
import bench_ray
import bench_sampler
import bench_sampling_error
import bench_window

if __name__ == "__main__":
    for bench in (bench_import, bench_window, bench_sampler, bench_sampling_error, bench_harness,
                  bench_ray):
        bench.main()
        print()
