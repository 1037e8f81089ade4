"""`wattprint demo`, the main job, end to end as a user runs it: real data, real models."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

WATTPRINT = [sys.executable, "-m", "wattprint"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([*WATTPRINT, "demo", "--repetitions", "1", "--country", "FR"],
                          cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "160"})
    return folder, proc


def test_demo_stores_every_cell_and_writes_report_and_labels(
        demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, proc = demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(folder / "wattprint.db") as db:
        rows = db.execute("SELECT model_name, variant, phase, status, metrics FROM runs").fetchall()
    assert rows and all(r[3] == "ok" for r in rows), [r for r in rows if r[3] != "ok"]
    phases = {(m, v, p) for m, v, p, _, _ in rows}
    for model in ("logreg", "svc", "forest", "cnn", "cnn-onnx"):
        assert (model, "fp32", "inference") in phases
    # SmallCNN is trained once: cnn-onnx takes cnn's weights (the same predictions)
    trained = sorted(m for m, _, p, _, _ in rows if p == "training")
    assert trained == ["cnn", "forest", "logreg", "svc"]
    for variant in [("cnn", "int8-dynamic"), ("cnn", "pruned-l1_unstructured-0.5"),
                    ("cnn-onnx", "onnx"), ("cnn-onnx", "int8-static")]:
        assert (*variant, "optimization") in phases and (*variant, "inference") in phases
    accuracy = {(m, v): json.loads(metrics)["accuracy"]
                for m, v, p, _, metrics in rows if p == "inference"}
    assert min(accuracy.values()) >= 0.85, accuracy
    assert accuracy["cnn-onnx", "fp32"] == accuracy["cnn", "fp32"]
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "cnn-onnx" in html
    labels = sorted(p.name for p in (folder / "labels").glob("*.svg"))
    assert "logreg.svg" in labels and len(labels) == len(accuracy)


def test_demo_prints_the_star_table(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, proc = demo
    assert "★" in proc.stdout and "report.html" in proc.stdout
    for model in ("logreg", "svc", "forest", "cnn"):
        assert model in proc.stdout


def test_score_command_on_the_demo_results(
        demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, _ = demo
    proc = subprocess.run([*WATTPRINT, "score", "--json", "--method", "range"], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert {s["stars"] for s in scores} <= {1, 2, 3, 4, 5}
    best = min(scores, key=lambda s: s["kwh_per_1000_queries"])
    assert best["stars"] == 5 and all(s["method"] == "range" for s in scores)
    bad = subprocess.run([*WATTPRINT, "score", "--task", "regression"], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "classification" in bad.stderr
    assert "Traceback" not in bad.stderr
