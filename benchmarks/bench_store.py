"""``wattprint score`` on a store of a million runs, and ``wattprint report`` of a sweep of
100,000 runs: time, peak memory of the command (its whole process) and the HTML's size.

The store is made here: one sweep written through :class:`wattprint.Store` (a real measured
window per model, so every field is as the runner writes it), then multiplied in SQL (each
copy a new repetition with its energy scaled), so that making it takes seconds, not hours.
Half the models are int8 variants of the other half, so the report's savings have work to
do. The report is also made of a sweep as large in which half the runs failed (a traceback each)
and a quarter are partial (a GPU sensor that could not be read): a report lists those one by
one, so it must not read them one by one past the first it lists. The score is also taken of
a store as large that fails alike. ``python benchmarks/bench_store.py [RUNS_FOR_SCORE]
[RUNS_FOR_REPORT]`` (defaults 1,000,000 and 100,000). Floors: score <= 2 s and <= 300 MiB;
report <= 10 s, <= 500 MiB, HTML <= 10 MB.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import verdict

from wattprint import EnergyMeter, RunRecord, Store

MODELS = 40
SCORE_FLOOR = (2.0, 300.0)
REPORT_FLOOR = (10.0, 500.0, 10.0)


def make_store(path: Path, runs: int, sweep: str, failing: bool = False) -> None:
    """``runs`` inference runs of MODELS models, every other one an int8 variant of the one
    before it (with the optimization run that made it). ``failing``: every other copy failed
    (a three-line error, seven kinds of first line) and every fourth one partial, written as
    the runner writes them (the store keeps its sums as they come)."""
    meter = EnergyMeter(["estimate"])
    with Store(path) as store:
        store.begin_sweep(sweep, project="bench", config={"runs": runs})
        for i in range(MODELS):
            name, variant, parent = ((f"m{i}", "base", None) if i % 2 == 0
                                     else (f"m{i - 1}", "int8", "base"))
            with meter.window(f"m{i}") as w:
                sum(range(20_000 * (i + 1)))
            store.write_run(RunRecord.from_measurement(
                w.measurement, sweep_id=sweep, cell_key=f"{name}/{variant}/digits/inference/0",
                model_name=name, variant=variant, parent=parent, dataset="digits",
                repetition=0, phase="inference", task="classification", hardware="CPU",
                num_samples=100, metrics={"accuracy": 0.9 + i / 1000}, framework="sklearn",
                num_parameters=1000 * (i + 1), size_bytes=4000 * (i + 1)))
            if parent is not None:
                store.write_run(RunRecord.from_measurement(
                    w.measurement, sweep_id=sweep, cell_key=f"{name}/{variant}/digits/opt/0",
                    model_name=name, variant=variant, parent=parent, dataset="digits",
                    phase="optimization", task="classification", hardware="CPU"))
        store.end_sweep(sweep, "finished")
    meter.close()
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)") if row[1] != "id"]
    failed = "n % 2 = 0" if failing else "0"
    partial = "n % 4 = 1" if failing else "0"
    special = {
        "cell_key": "cell_key || '/' || n", "repetition": "repetition + n",
        "status": f"CASE WHEN {failed} THEN 'failed' ELSE status END",
        "error": (f"CASE WHEN {failed} THEN 'ModelError: model output is not finite (' || "
                  "(n % 7) || ')' || char(10) || '  File model.py' || char(10) || "
                  "hex(randomblob(100)) ELSE error END"),
        "partial": f"CASE WHEN {partial} THEN 1 ELSE partial END",
        "errors": f"CASE WHEN {partial} THEN '[\"gpu:0: not readable\"]' ELSE errors END",
    }
    for c in ("energy_j", "energy_kwh", "co2_g"):
        special[c] = f"{c} * (1 + (n % 17) / 100.0)"
    copied = ", ".join(special.get(c, c) for c in columns)
    copies = runs // MODELS - 1
    with conn:
        conn.execute(f"""
            WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {copies})
            INSERT INTO runs ({', '.join(columns)})
            SELECT {copied} FROM runs, k WHERE runs.phase = 'inference'""")
    conn.close()


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``python -m wattprint ARGS`` in a fresh process (its own
    peak resident memory, read by the process itself as it ends)."""
    code = ("import resource, runpy, sys\n"
            f"sys.argv = ['wattprint', *{args!r}]\n"
            "try:\n    runpy.run_module('wattprint', run_name='__main__')\n"
            "finally:\n    sys.stderr.write("
            "f'MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n")
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    peak_kib = int(done.stderr.rsplit("MAXRSS ", 1)[1].split()[0])
    return wall, peak_kib / 1024


def main(score_runs: int = 1_000_000, report_runs: int = 100_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        make_store(root / "report.db", report_runs, "s-report")
        report_wall, report_mib = timed(["report", "--db", "report.db", "--out",
                                         "report.html"], root)
        html_mb = (root / "report.html").stat().st_size / 1e6
        make_store(root / "failing.db", report_runs, "s-failing", failing=True)
        failing_wall, failing_mib = timed(["report", "--db", "failing.db", "--out",
                                           "failing.html"], root)
        failing_mb = (root / "failing.html").stat().st_size / 1e6
        make_store(root / "score.db", score_runs, "s-score")
        made_s = time.perf_counter() - t
        score_wall, score_mib = timed(["score", "--db", "score.db"], root)
        (root / "score.db").unlink()
        make_store(root / "score-failing.db", score_runs, "s-score", failing=True)
        failing_score = timed(["score", "--db", "score-failing.db"], root)
    print(f"stores of {score_runs:,} and {report_runs:,} runs ({MODELS} models), made in "
          f"{made_s:.0f} s")
    print(f"  wattprint score   {score_wall:6.2f} s  {score_mib:7.0f} MiB peak   floor "
          f"{SCORE_FLOOR[0]:g} s, {SCORE_FLOOR[1]:g} MiB -> "
          f"{verdict(score_wall <= SCORE_FLOOR[0] and score_mib <= SCORE_FLOOR[1])}")
    print(f"    half failed, a quarter partial  {failing_score[0]:6.2f} s  "
          f"{failing_score[1]:7.0f} MiB peak   -> " + verdict(
              failing_score[0] <= SCORE_FLOOR[0] and failing_score[1] <= SCORE_FLOOR[1]))
    print(f"  wattprint report  {report_wall:6.2f} s  {report_mib:7.0f} MiB peak  "
          f"{html_mb:6.1f} MB HTML   floor {REPORT_FLOOR[0]:g} s, {REPORT_FLOOR[1]:g} MiB, "
          f"{REPORT_FLOOR[2]:g} MB -> " + verdict(
              report_wall <= REPORT_FLOOR[0] and report_mib <= REPORT_FLOOR[1]
              and html_mb <= REPORT_FLOOR[2]))
    print(f"    half failed, a quarter partial  {failing_wall:6.2f} s  {failing_mib:7.0f} MiB "
          f"peak  {failing_mb:6.1f} MB HTML   -> " + verdict(
              failing_wall <= REPORT_FLOOR[0] and failing_mib <= REPORT_FLOOR[1]
              and failing_mb <= REPORT_FLOOR[2]))
    return {"score_s": score_wall, "score_mib": score_mib, "report_s": report_wall,
            "report_mib": report_mib, "report_mb": html_mb}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
