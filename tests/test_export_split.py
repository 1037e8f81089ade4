"""``wattprint export --split-phases``: the optimization-energy study's two CSV files
(``optimization_results.csv``, ``inference_results.csv``) from a real sweep in a real store,
written by the real command and read back with the csv module."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint import FakeSensor
from wattprint.meter import EnergyMeter
from wattprint.record import RunRecord
from wattprint.store import Store

WATTPRINT = [sys.executable, "-m", "wattprint"]
TIMEOUT_S = 300  # a guard against a hung child, never a measure of speed
#: The study's columns (CodeCarbon's names) that both files begin with.
STUDY_HEAD = ["timestamp", "project_name", "run_id", "sweep_id", "cell_key", "model",
              "framework"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A torch MLP with its pruned and int8 variants and a logistic regression, two
    repetitions each, on 60 digits, measured with a fake 20 W sensor."""
    tmp = tmp_path_factory.mktemp("split-sweep")
    db = tmp / "wattprint.db"
    config = {
        "project": "split-phases",
        "models": [
            {"name": "mlp", "source": "torch:MLP", "epochs": 1,
             "quantization": {"enabled": True, "method": "dynamic"},
             "pruning": {"enabled": True, "method": "l1_unstructured", "amount": 0.5}},
            {"name": "logreg", "source": "sklearn:LogisticRegression"},
        ],
        "datasets": [{"name": "digits", "task": "classification", "limit": 60}],
        "monitoring": {"repetitions": 2, "warmup": 0, "batch_size": 16},
        "location": {"country": "FR"},
        "output": {"export_formats": [], "output_dir": str(tmp / "results"), "db": str(db)},
    }
    meter = EnergyMeter(sensors=[FakeSensor(power_w=20.0)], country="FR")
    try:
        report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    finally:
        meter.close()
    assert [r["error"] for r in report["runs"] if r["status"] != "ok"] == []
    return db, str(report["sweep_id"])


def test_both_files_hold_every_run_of_their_phase_as_stored(sweep: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    db, sweep_id = sweep
    out = tmp_path / "results"  # made by the command
    proc = cli("export", "--split-phases", "--out", str(out), "--sweep", sweep_id,
               "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["inference_results.csv",
                                                     "optimization_results.csv"]
    with Store(db, read_only=True) as store:
        runs = {r.id: r for r in store.runs(sweep_id=sweep_id)}

    columns, rows = read_csv(out / "optimization_results.csv")
    assert columns[:len(STUDY_HEAD)] == STUDY_HEAD
    assert {"strategy", "version", "duration", "energy_consumed", "emissions", "cpu_energy",
            "size_before_bytes", "size_after_bytes", "provenance", "partial",
            "errors"} <= set(columns)
    steps = {i: r for i, r in runs.items() if r.phase == "optimization"}
    assert len(steps) == 2
    assert sorted(int(row["run_id"]) for row in rows) == sorted(steps)
    trained = next(r for r in runs.values() if r.phase == "training" and r.model_name == "mlp")
    for row in rows:
        run = steps[int(row["run_id"])]
        assert run.optimization is not None and run.energy_kwh is not None
        assert (row["model"], row["version"], row["parent"], row["dataset"]) == (
            "mlp", run.variant, "fp32", "digits")
        assert row["project_name"] == "split-phases" and row["sweep_id"] == sweep_id
        assert row["strategy"] == run.optimization["kind"]
        assert row["method"] == run.optimization["method"]
        assert float(row["energy_consumed"]) == run.energy_kwh
        assert float(row["energy_j"]) == run.energy_j
        assert float(row["duration"]) == run.duration_s
        assert float(row["emissions"]) == pytest.approx((run.co2_g or 0) / 1000, rel=1e-12)
        assert float(row["cpu_energy"]) == pytest.approx(run.energy_kwh, rel=1e-12)
        assert row["gpu_energy"] == "" and row["ram_energy"] == ""
        assert int(row["size_after_bytes"]) == run.size_bytes
        assert int(row["size_before_bytes"]) == trained.size_bytes
        assert (row["provenance"], row["status"], row["partial"]) == ("fake", "ok", "False")
        assert row["errors"] == "[]"
        assert row["timestamp"].startswith("20") and row["timestamp"].endswith("+00:00")
    assert {row["strategy"] for row in rows} == {"pruning", "quantization"}
    pruned = next(row for row in rows if row["strategy"] == "pruning")
    assert float(pruned["amount"]) == 0.5 and float(pruned["sparsity"]) > 0

    columns, rows = read_csv(out / "inference_results.csv")
    assert columns[:len(STUDY_HEAD)] == STUDY_HEAD
    assert {"version", "dataset", "repetition", "kwh_per_1000_queries", "samples_per_second",
            "correctness", "metrics_accuracy", "provenance", "partial"} <= set(columns)
    inferred = {i: r for i, r in runs.items() if r.phase == "inference"}
    assert len(inferred) == 2 * 4  # fp32, int8, pruned of the MLP and the regression, twice
    assert sorted(int(row["run_id"]) for row in rows) == sorted(inferred)
    for row in rows:
        run = inferred[int(row["run_id"])]
        assert (row["model"], row["version"], row["dataset"], int(row["repetition"])) == (
            run.model_name, run.variant, run.dataset, run.repetition)
        assert float(row["kwh_per_1000_queries"]) == run.kwh_per_1000_queries
        assert float(row["samples_per_second"]) == run.samples_per_second
        assert float(row["energy_consumed"]) == run.energy_kwh
        assert number(row["correctness"]) == run.metric("accuracy") is not None
        assert float(row["metrics_accuracy"]) == run.metric("accuracy")
        assert int(row["num_samples"]) == run.num_samples
        assert (row["provenance"], row["partial"], row["cell_key"]) == (
            "fake", "False", run.cell_key)


def hand_store(db: Path, rows: list[dict[str, Any]], sweep_id: str = "s1") -> Path:
    with Store(db) as store:
        store.begin_sweep(sweep_id, project="hand", config={})
        for row in rows:
            store.write_run(RunRecord.from_dict({"sweep_id": sweep_id, **row}))
        store.end_sweep(sweep_id, "finished")
    return db


def inference_row(i: int, model: str = "m", **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cell_key": f"{model}/fp32/digits/inference/{i}", "model_name": model,
        "variant": "fp32", "dataset": "digits", "repetition": i, "phase": "inference",
        "task": "classification", "hardware": "CPU", "status": "ok", "energy_j": 36.0,
        "energy_kwh": 1e-5, "kwh_per_1000_queries": 1e-5, "num_samples": 1000,
        "metrics": {"accuracy": 0.75, "f1_macro": 0.5},
        "components": {"cpu": {"energy_j": 30.0, "source": "rapl", "measured": True},
                       "gpu:0": {"energy_j": 4.0, "source": "nvml", "measured": True},
                       "gpu:1": {"energy_j": 2.0, "source": "nvml", "measured": True}},
    }
    row.update(changes)
    return row


def test_a_phase_without_runs_has_its_header_and_files_are_replaced_whole(
        tmp_path: Path) -> None:
    db = hand_store(tmp_path / "w.db", [
        inference_row(0),
        inference_row(1, "=HYPERLINK(1)", status="failed", error="@boom", energy_j=None,
                      energy_kwh=None, kwh_per_1000_queries=None, metrics=None,
                      components=None, partial=True, errors=["gpu:0: not readable"]),
    ])
    old = tmp_path / "optimization_results.csv"
    old.write_text("an older, longer file\n" * 100)
    proc = cli("export", "--split-phases", "--db", str(db), cwd=tmp_path)  # into the cwd
    assert proc.returncode == 0, proc.stderr
    assert "optimization_results.csv" in proc.stderr and "inference_results.csv" in proc.stderr
    columns, rows = read_csv(old)
    assert rows == [] and columns[:len(STUDY_HEAD)] == STUDY_HEAD
    assert old.read_text().count("\n") == 1
    columns, rows = read_csv(tmp_path / "inference_results.csv")
    assert columns[-2:] == ["metrics_accuracy", "metrics_f1_macro"]
    ok, failed = rows
    assert (ok["cpu_energy"], ok["gpu_energy"]) == (repr(30.0 / 3.6e6), repr(6.0 / 3.6e6))
    assert (ok["correctness"], ok["metrics_f1_macro"], ok["project_name"]) == (
        "0.75", "0.5", "hand")
    # a failed, partial run is a row; text a spreadsheet would run is neutralised
    assert (failed["status"], failed["partial"], failed["energy_consumed"]) == (
        "failed", "True", "")
    assert (failed["model"], failed["error"]) == ("'=HYPERLINK(1)", "'@boom")
    assert failed["errors"] == '["gpu:0: not readable"]'


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = hand_store(tmp_path / "w.db", [inference_row(0)])
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("keep me")
    cases = {
        "is a file": ["--out", str(a_file)],
        "no sweep 'nope'": ["--sweep", "nope", "--out", str(tmp_path / "out")],
        "writes CSV": ["--format", "json", "--out", str(tmp_path / "out")],
    }
    for words, args in cases.items():
        proc = cli("export", "--split-phases", *args, "--db", str(db), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in one_line(proc.stderr)
    assert a_file.read_text() == "keep me"
    assert not (tmp_path / "out").exists()
    # the plain export is as it was: CSV on stdout
    proc = cli("export", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("id,sweep_id,cell_key,")
