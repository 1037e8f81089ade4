"""Cells per second of a sweep on Ray against the local executor, on the same no-op sweep.

The sweep is as close to no work as the config allows: one scikit-learn model saved as a
``.skops`` file (loaded, never trained: a group has no training cell), listed MODELS times,
each measured REPETITIONS times on one sample of digits with no warm-up. Each cell is then
the runner's own cost: a meter window and a power trace around one ``predict`` call, the
record made, sent to the sweep's process and written to the SQLite store.

Side by side, in one run, in this process, alternating ROUNDS times (the median of each is
shown): the local executor (a forked worker per group), and the Ray executor on a Ray instance
started here first (one node offering ``wattprint_node`` once: one task at a time, as on any
node of a cluster; the start-up is shown apart and not counted). Then the driver's own share:
how many of the sweep's records the store takes per second (``Store.write_run``, one
transaction each, as the sweep writes them), and a record's size.
``python benchmarks/bench_ray.py [MODELS] [REPETITIONS]`` (defaults 16 and 50: 800 cells). No
floor: the figures feed docs/scale.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median

MODELS = 16
REPETITIONS = 50
ROUNDS = 3


def noop_model(path: Path) -> Path:
    """A tiny logistic regression on digits, saved as skops."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(x[:200], y[:200])
    skops.io.dump(model, path)
    return path


def config(root: Path, model: Path, models: int, repetitions: int) -> dict[str, Any]:
    return {
        "project": "bench-ray",
        "models": [{"name": f"m{i}", "path": str(model), "task": "classification"}
                   for i in range(models)],
        "datasets": [{"name": "digits", "split": "test", "limit": 10}],
        "monitoring": {"repetitions": repetitions, "warmup": 0, "num_samples": 1,
                       "batch_size": 1},
        "output": {"export_formats": [], "db": str(root / "wattprint.db"),
                   "output_dir": str(root / "out")},
    }


def timed_sweep(cfg: dict[str, Any], backend: str) -> tuple[int, float, float]:
    """Cells stored, wall seconds, and CPU seconds of this process (the driver: not the
    workers, forked or Ray's) of one sweep; the store's file is new."""
    import wattprint

    Path(cfg["output"]["db"]).unlink(missing_ok=True)
    t, cpu = time.perf_counter(), time.process_time()
    report = wattprint.Benchmark({**cfg, "execution": {"backend": backend}}).run(progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    runs = report["runs"]
    failed = [r["error"] for r in runs if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"{backend}: {len(failed)} cells failed: {failed[0]}")
    return len(runs), wall, cpu


def store_rate(db: Path, n: int = 1000) -> tuple[dict[int, float], int, dict[int, int]]:
    """Records per second ``Store.write_run`` takes with each count of power samples (none,
    the 3 a no-op cell carries, the 1,200 of a minute traced at 20 Hz); a record's JSON size
    in bytes; the store's bytes per run with each count."""
    from wattprint import Store

    with Store(db) as store:
        (sweep,) = [s["id"] for s in store.sweeps()]
        record = store.runs(sweep_id=sweep, phase="inference")[0]
    size = len(json.dumps(record.to_dict(), default=str).encode())
    rates: dict[int, list[float]] = {0: [], 3: [], 1200: []}
    per_run: dict[int, int] = {}
    for r in range(ROUNDS):
        for count in rates:
            samples = [(0.05 * i, "cpu", 20.0 + i % 7) for i in range(count)] or None
            writes = n if count < 100 else n // 5
            target = db.with_name(f"rate-{count}-{r}.db")
            with Store(target) as store:
                store.begin_sweep("s", project="bench", config={})
                t = time.perf_counter()
                for i in range(writes):
                    store.write_run(record.replace(sweep_id="s", cell_key=f"c/{i}",
                                                   repetition=i), samples)
                rates[count].append(writes / (time.perf_counter() - t))
            per_run[count] = target.stat().st_size // writes
    return {count: median(r) for count, r in rates.items()}, size, per_run


def main(models: int = MODELS, repetitions: int = REPETITIONS) -> dict[str, float]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    with tempfile.TemporaryDirectory(prefix="wpbench", dir="/tmp") as tmp:
        root = Path(tmp)
        cfg = config(root, noop_model(root / "noop.skops"), models, repetitions)
        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), resources={"wattprint_node": 1},
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _temp_dir=str(root / "ray"))
        start_s = time.perf_counter() - t
        runs: dict[str, list[tuple[int, float, float]]] = {"local": [], "ray": []}
        try:
            for backend in runs:  # a first sweep each: imports, Ray's workers started
                timed_sweep({**cfg, "monitoring": {**cfg["monitoring"], "repetitions": 1}},
                            backend)
            for r in range(ROUNDS):
                for backend in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                    runs[backend].append(timed_sweep(cfg, backend))
        finally:
            ray.shutdown()
        rates, size, per_run = store_rate(root / "wattprint.db")
    cells = runs["local"][0][0]
    local_rate = median([n / wall for n, wall, _ in runs["local"]])
    ray_rate = median([n / wall for n, wall, _ in runs["ray"]])
    local_s, ray_s = (median([wall for _, wall, _ in runs[b]]) for b in ("local", "ray"))
    local_cpu, ray_cpu = (median([cpu for _, _, cpu in runs[b]]) for b in ("local", "ray"))
    ray_cells = runs["ray"][0][0]
    print(f"no-op sweep: {models} models x {repetitions} repetitions = {cells} cells, "
          f"{os.cpu_count()} CPUs, median of {ROUNDS} alternating rounds")
    print(f"  local executor  {local_rate:7.1f} cells/s  ({local_s:5.2f} s; sweep's process "
          f"{1e3 * local_cpu / cells:.2f} ms CPU per cell)")
    print(f"  ray executor    {ray_rate:7.1f} cells/s  ({ray_s:5.2f} s; driver "
          f"{1e3 * ray_cpu / ray_cells:.2f} ms CPU per cell; Ray's start-up {start_s:.1f} s "
          f"apart)   ray / local = {ray_rate / local_rate:.2f}")
    print(f"  the store alone {rates[0]:7.0f} records/s ({rates[3]:.0f} with 3 power samples "
          f"each, {rates[1200]:.0f} with 1,200); a record is {size} bytes as JSON, "
          f"{per_run[0]} bytes stored ({per_run[1200]} with 1,200 samples)")
    return {"local_cells_per_s": local_rate, "ray_cells_per_s": ray_rate,
            "driver_cpu_ms_per_cell": 1e3 * ray_cpu / ray_cells,
            "ratio": ray_rate / local_rate, "store_records_per_s": rates[0],
            "store_records_per_s_1200_samples": rates[1200], "record_bytes": size,
            "row_bytes": per_run[0], "ray_start_s": start_s}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
