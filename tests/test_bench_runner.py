"""Benchmark sweeps end to end: real recipes, real variants, a real SQLite store, the CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint import ConfigError, FakeSensor
from wattprint.meter import EnergyMeter
from wattprint.sweep.config import load_config
from wattprint.sweep.runner import plan_cells

WATTPRINT = [sys.executable, "-m", "wattprint"]


def _config(tmp_path: Path, **monitoring: Any) -> dict[str, Any]:
    return {
        "project": "digits-sweep",
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression", "task": "classification"},
            {"name": "svc", "source": "sklearn:SVC", "task": "classification"},
            {"name": "forest", "source": "sklearn:RandomForestClassifier",
             "task": "classification"},
            {"name": "cnn", "source": "torch:SmallCNN", "task": "classification",
             "export": "onnx", "quantization": {"enabled": True, "method": "dynamic"},
             "pruning": {"enabled": True, "method": "l1_unstructured", "amount": 0.5}},
            {"name": "cnn-torch", "source": "torch:SmallCNN", "task": "classification",
             "epochs": 3, "quantization": {"enabled": True, "method": "dynamic"}},
        ],
        "datasets": [{"name": "digits", "split": "test"}],
        "monitoring": {"repetitions": 2, "warmup": 2, "batch_size": 16, **monitoring},
        "location": {"country": "FR"},
        "output": {"export_formats": ["json", "csv"], "output_dir": str(tmp_path / "results"),
                   "db": str(tmp_path / "wattprint.db")},
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    tmp_path = tmp_path_factory.mktemp("sweep")
    config = _config(tmp_path)
    meter = EnergyMeter(sensors=[FakeSensor(power_w=20.0)], country="FR")
    report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    # Each xdist worker runs this sweep for the tests it was given: a cell that failed in one
    # worker's sweep fails each of them with its error, not only a test that counts failures.
    failed = [f"{r['cell_key']}: {r['error']}" for r in report["runs"] if r["status"] != "ok"]
    if failed:
        pytest.fail("the module's sweep failed cells:\n" + "\n".join(failed), pytrace=False)
    return tmp_path, report, load_config(config)


def test_every_cell_is_stored_once(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    tmp_path, report, config = sweep
    planned = {c.key for g in plan_cells(config) for c in g.cells}
    with sqlite3.connect(tmp_path / "wattprint.db") as db:
        keys = [k for (k,) in db.execute("SELECT cell_key FROM runs WHERE sweep_id = ?",
                                         (report["sweep_id"],))]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sorted(keys) == sorted(planned)
    # 3 sklearn models x (training + 2 reps) + cnn (training, fp32 x2, onnx export + x2,
    # int8 of the onnx + x2, pruned + x2) + cnn-torch (training, fp32 x2, int8 + x2)
    assert len(planned) == 3 * 3 + (1 + 2 + 3 * 3) + (1 + 2 + 3)
    summary = report["final_report"]["analysis_summary"]
    assert summary["runs_failed"] == 0, [r["error"] for r in report["runs"] if r["error"]]
    assert summary["runs_ok"] == len(planned)


def test_accuracy_and_variants(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    _, report, _ = sweep
    rows = {(m["model"], m["variant"]): m
            for m in report["final_report"]["analysis_summary"]["models"]}
    for key in [("logreg", "fp32"), ("svc", "fp32"), ("forest", "fp32"), ("cnn", "fp32"),
                ("cnn", "onnx"), ("cnn", "int8-dynamic"), ("cnn-torch", "int8-dynamic")]:
        assert rows[key]["accuracy"] >= 0.9, (key, rows[key])
        assert rows[key]["repetitions"] == 2
    onnx, int8 = rows[("cnn", "onnx")], rows[("cnn", "int8-dynamic")]
    assert int8["framework"] == onnx["framework"] == "onnx"
    assert int8["size_bytes"] < onnx["size_bytes"]
    pruned = rows[("cnn", "pruned-l1_unstructured-0.5")]
    assert pruned["effective_parameters"] < pruned["num_parameters"]
    assert pruned["parent"] == "fp32" and int8["parent"] == "onnx"
    # The step that made each variant is measured and attached.
    for key in [("cnn", "onnx"), ("cnn", "int8-dynamic"), ("cnn", "pruned-l1_unstructured-0.5")]:
        assert rows[key]["step_phase"] == "optimization" and rows[key]["step_energy_j"] > 0
    assert rows[("logreg", "fp32")]["step_phase"] == "training"


def test_figures_follow_the_meter(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    _, report, _ = sweep
    for run in report["runs"]:
        assert run["provenance"] == "fake"
        assert run["energy_j"] == pytest.approx(20.0 * run["duration_s"], rel=1e-6)
        assert run["energy_kwh"] == pytest.approx(run["energy_j"] / 3.6e6)
        if run["phase"] == "inference":
            assert run["kwh_per_1000_queries"] == pytest.approx(
                run["energy_kwh"] * 1000 / run["num_samples"])
    summary = report["final_report"]["analysis_summary"]
    assert summary["total_energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in report["runs"]))
    assert summary["total_co2_emissions_kg"] > 0 and summary["total_water_l"] > 0


def test_exports_written(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    _, report, _ = sweep
    paths = {Path(p).suffix: Path(p) for p in report["exports"]}
    rows = json.loads(paths[".json"].read_text())["runs"]
    assert len(rows) == len(report["runs"])
    assert paths[".csv"].read_text().count("\n") >= len(report["runs"]) + 1


def test_a_failing_cell_is_stored_and_the_sweep_goes_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    config = {
        "project": "p",
        "models": [{"name": "bad", "path": str(broken), "task": "classification"},
                   {"name": "ok", "source": "sklearn:LogisticRegression"}],
        "datasets": [{"name": "iris"}],
        "monitoring": {"warmup": 0},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0)])
    report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    summary = report["final_report"]["analysis_summary"]
    assert summary["runs_failed"] == 1 and summary["runs_ok"] == 2
    failed = [r for r in report["runs"] if r["status"] == "failed"]
    assert "broken.onnx" in failed[0]["error"] and "Traceback" not in failed[0]["error"]


def test_hub_model_without_network_fails_its_cell(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = {
        "project": "p",
        "models": [{"name": "hub", "hf": "someone/not-cached-model-xyz",
                    "task": "text-classification"}],
        "datasets": [{"name": "iris"}],
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    with pytest.raises(ConfigError) as err:  # refused before anything runs
        wattprint.Benchmark(config)
    assert ("models[0].hf: 'someone/not-cached-model-xyz' is a Hugging Face hub model that is "
            "not in the local cache") in str(err.value)
    assert "allow_network: true" in str(err.value)
    assert not (tmp_path / "w.db").exists()
    # Allowed to download, but offline: the cell fails saying why, the sweep goes on. The
    # hub client reads HF_HUB_OFFLINE when first imported: told here too, whenever that was.
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    report = wattprint.Benchmark({**config, "allow_network": True}).run(
        meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]), progress=False)
    (run,) = report["runs"]
    assert run["status"] == "failed"
    assert run["error"].startswith("ModelError: someone/not-cached-model-xyz: cannot be loaded "
                                   "as a Hugging Face transformers model: download from the "
                                   "Hugging Face hub failed: "), run["error"]
    assert "Supported:" not in run["error"]  # the file formats are not what went wrong


def _cli(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kw)


def _yaml(tmp_path: Path, config: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["models"][0].update(colour="red"), "models[0].colour"),
        (lambda c: c["monitoring"].update(repetitions="many"), "monitoring.repetitions"),
        (lambda c: c["models"].append({"name": "m", "path": "missing.onnx"}), "models[5].path"),
        (lambda c: c["datasets"].append({"name": "digitz"}), "datasets[1].name"),
        (lambda c: c["models"][3]["quantization"].update(method="magic"),
         "models[3].quantization.method"),
    ],
)
def test_invalid_config_exits_2_and_writes_nothing(tmp_path: Path, change: Any,
                                                   field: str) -> None:
    config = _config(tmp_path)
    change(config)
    proc = _cli("run", str(_yaml(tmp_path, config)), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "wattprint.db").exists()


def _rows(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=120) as conn:
            return [k for (k,) in conn.execute("SELECT cell_key FROM runs WHERE status='ok'")]
    except sqlite3.OperationalError:
        return []


def _sweep_under_way(tmp_path: Path, project: str) -> tuple[Path, Path, subprocess.Popen[str]]:
    """``wattprint run`` of a 6-cell sweep in a child process, once 3 cells are stored:
    the config's path, the store's path and the child."""
    config = {
        "project": project,
        "models": [{"name": f"m{i}", "source": "sklearn:LogisticRegression"} for i in range(2)],
        "datasets": [{"name": "digits", "limit": 200}],
        "monitoring": {"repetitions": 3, "warmup": 0, "num_samples": 1000},
        "output": {"export_formats": [], "db": str(tmp_path / "wattprint.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    path = _yaml(tmp_path, config)
    db = tmp_path / "wattprint.db"
    proc = subprocess.Popen([*WATTPRINT, "run", str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(_rows(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    return path, db, proc


def test_sigkill_then_resume(tmp_path: Path) -> None:
    path, db, proc = _sweep_under_way(tmp_path, "resume")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = set(_rows(db))
    total = len({c.key for g in plan_cells(load_config(path)) for c in g.cells})
    assert 3 <= len(before) < total, "the sweep should have been killed part-way"

    done = _cli("run", str(path), "--resume", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM runs")]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (sweeps,) = conn.execute("SELECT count(*) FROM sweeps").fetchone()
    assert len(keys) == len(set(keys)) == total
    assert sweeps == 1
    assert report["final_report"]["analysis_summary"]["runs_ok"] == total
    # The rows from before the kill are kept, not measured again.
    stored = {r["cell_key"]: r for r in report["runs"]}
    assert before <= set(stored)


def test_ctrl_c_keeps_what_finished_then_resume(tmp_path: Path) -> None:
    path, db, proc = _sweep_under_way(tmp_path, "interrupt")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    before = set(_rows(db))
    total = len({c.key for g in plan_cells(load_config(path)) for c in g.cells})
    assert 3 <= len(before) < total, "the sweep should have been interrupted part-way"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        statuses = {s for (s,) in conn.execute("SELECT status FROM runs")}
        (sweep_status,) = conn.execute("SELECT status FROM sweeps").fetchone()
    assert statuses == {"ok"}  # the cell running at the Ctrl-C is not stored as a failure
    assert sweep_status == "interrupted"

    done = _cli("run", str(path), "--resume", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM runs")]
    assert len(keys) == len(set(keys)) == total
    assert before <= set(keys)


def test_export_and_schema_commands(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    tmp_path, report, _ = sweep
    proc = _cli("export", "--format", "json", "--sweep", report["sweep_id"], "--db",
                str(tmp_path / "wattprint.db"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["runs"]) == len(report["runs"])
    bad = _cli("export", "--format", "xml", "--db", str(tmp_path / "wattprint.db"), cwd=tmp_path)
    assert bad.returncode == 2 and "csv or json" in bad.stderr
    schema = json.loads(_cli("schema", cwd=tmp_path).stdout)
    assert {"models", "datasets", "monitoring", "output"} <= set(schema["properties"])


def test_inference_runs_keep_a_power_timeline(sweep: tuple[Path, dict[str, Any], Any]) -> None:
    tmp_path, report, _ = sweep
    with wattprint.Store(tmp_path / "wattprint.db") as store:
        for run in report["runs"]:
            samples = store.samples(run["id"])
            if run["phase"] != "inference":
                assert samples == []
                continue
            assert samples, run["cell_key"]
            assert {c for _, c, _ in samples} == {"cpu"}
            assert all(w == pytest.approx(20.0) for _, _, w in samples)
            assert samples[-1][0] >= run["duration_s"] * 0.9
