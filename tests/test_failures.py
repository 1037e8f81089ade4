"""Failures stay visible across the layers: a partial run or a model that outputs NaN is stored
as what it is, is never rated, and says why in the score table, the JSON and the report."""

from __future__ import annotations

import io
import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nvml_standin import cli_with_gpus
from rich.console import Console

import wattprint
from wattprint import FakeSensor, measure_energy
from wattprint import score as scoring
from wattprint.errors import ModelError
from wattprint.meter import EnergyMeter
from wattprint.record import RunRecord
from wattprint.report import write_label, write_report
from wattprint.score import calculate_scores, print_scores, savings, star_ratings
from wattprint.store import MIGRATIONS, SCHEMA_VERSION, Store
from wattprint.workloads import registry
from wattprint.workloads.harness import FINITE_CHUNK_BYTES
from wattprint.workloads.model import Model


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_energy keeps its results in the working folder by default (wattprint.db,
    results/): each test here works in a folder of its own."""
    monkeypatch.chdir(tmp_path)

WATTPRINT = [sys.executable, "-m", "wattprint"]


def _config(tmp_path: Path, models: list[dict[str, Any]], **monitoring: Any) -> dict[str, Any]:
    return {
        "project": "failures",
        "models": models,
        "datasets": [{"name": "digits", "limit": 300}],
        "monitoring": {"warmup": 0, "repetitions": 1, **monitoring},
        "hardware": {"device_profile": "cpu"},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }


# -- a sensor that fails mid-window, in a real sweep -------------------------------------------


@pytest.fixture(scope="module")
def partial_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two identical recipes, ``a`` then ``b``, measured by a CPU and a GPU fake sensor. The GPU
    sensor's clock starts at its first reading after ``b`` was trained and saved, which is at
    the start of ``b``'s inference window: it fails 0.1 s later, inside that window (0.4 s
    long on a fast machine), so ``b`` misses the GPU's energy and looks the more efficient."""
    tmp_path = tmp_path_factory.mktemp("partial")
    out = tmp_path / "out"
    began: list[float] = []

    def since_b_began_inference() -> float:
        if next(out.glob("*/b/digits/fp32.skops"), None) is None:
            return 0.0
        if not began:
            began.append(time.monotonic())
        return time.monotonic() - began[0]

    gpu = FakeSensor(power_w=50.0, component="gpu:0", name="gpu:0", fail_after_s=0.1,
                     clock=since_b_began_inference)
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0, name="cpu"), gpu])
    recipe = {"source": "sklearn:LogisticRegression", "task": "classification"}
    config = _config(tmp_path, [{"name": "a", **recipe}, {"name": "b", **recipe}],
                     num_samples=2_000)
    report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    return tmp_path / "w.db", report


def _inference(report: dict[str, Any], model: str) -> dict[str, Any]:
    (run,) = [r for r in report["runs"] if r["model_name"] == model
              and r["phase"] == "inference"]
    return run


def test_a_run_whose_sensor_failed_is_stored_partial_with_its_error(
        partial_sweep: tuple[Path, dict[str, Any]]) -> None:
    db, report = partial_sweep
    a, b = _inference(report, "a"), _inference(report, "b")
    assert b["status"] == "ok"  # the cell ran; its measurement is partial
    assert b["partial"] is True
    assert b["errors"] and all("gpu:0" in e for e in b["errors"])
    assert "gpu:0" not in b["components"] and "cpu" in b["components"]
    assert a["partial"] is False and a["errors"] == [] and "gpu:0" in a["components"]
    assert b["energy_j"] < a["energy_j"]  # what made the partial run look best
    assert "partial" not in (b["extra"] or {})  # a column, not hidden in extra
    with sqlite3.connect(db) as conn:  # a column of the table, as stored
        stored = dict(conn.execute("SELECT model_name, partial FROM runs WHERE phase ="
                                   " 'inference'").fetchall())
    assert stored == {"a": 0, "b": 1}


def test_a_partial_run_is_not_rated(partial_sweep: tuple[Path, dict[str, Any]]) -> None:
    db, _ = partial_sweep
    scores = calculate_scores("classification", "cpu", db=db)
    assert [(s.model, s.stars) for s in scores] == [("a", 5)]
    (unrated,) = scores.unrated
    assert (unrated.model, unrated.runs) == ("b", 1)
    assert unrated.reason.startswith("partial, gpu:0")
    assert unrated.cell_keys == (_inference(partial_sweep[1], "b")["cell_key"],)


def test_the_sweep_summary_of_wattprint_run_marks_partial_runs(tmp_path: Path) -> None:
    """``wattprint run`` with a GPU (the NVML stand-in) lost after its eighth reading: the
    inference runs measured after that are partial, and the summary on the terminal says so
    beside the model's energy, with what failed, as the HTML report does."""
    (tmp_path / "sweep.yaml").write_text(
        "project: p\nmodels: [{name: lr, source: 'sklearn:LogisticRegression'}]\n"
        "datasets: [{name: iris}]\nmonitoring: {repetitions: 3, warmup: 0}\n"
        "output: {export_formats: []}\n")
    proc = cli_with_gpus("[StandinGPU(fail_after_reads=8)]", "run", "sweep.yaml",
                         cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with sqlite3.connect(tmp_path / "wattprint.db") as conn:
        partial = [errors for (errors,) in conn.execute(
            "SELECT errors FROM runs WHERE phase = 'inference' AND partial = 1")]
    conn.close()
    assert partial  # how many depends on when the sampler's readings came: one at least
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("│ lr ")]
    assert "partial (1)" in row, proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("(1) ")]
    assert note == (f"(1) lr fp32 iris: {len(partial)} of 3 runs partial, their energy without "
                    f"what failed: {json.loads(partial[0])[0]}"), proc.stdout
    assert "GPU is lost" in note
    assert "warning:" not in proc.stderr  # the summary says it: not once more per failure


def test_the_score_table_lists_the_partial_run_as_not_rated(
        partial_sweep: tuple[Path, dict[str, Any]]) -> None:
    db, _ = partial_sweep
    buffer = io.StringIO()
    print_scores(calculate_scores("classification", "cpu", db=db),
                 console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "★★★★★" in text
    assert "b: not rated: partial, gpu:0" in text
    (row,) = [line for line in text.splitlines() if " b " in line]
    assert "not rated" in row and "★" not in row


def test_score_json_carries_the_partial_run_as_not_rated(
        partial_sweep: tuple[Path, dict[str, Any]]) -> None:
    db, _ = partial_sweep
    proc = subprocess.run([*WATTPRINT, "score", "--json", "--db", str(db)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    entries = {e["model"]: e for e in json.loads(proc.stdout)}
    assert entries["a"]["rated"] is True and entries["a"]["stars"] == 5
    assert entries["b"]["rated"] is False and entries["b"]["stars"] is None
    assert entries["b"]["reason"].startswith("partial, gpu:0")


def test_the_report_marks_the_partial_run(partial_sweep: tuple[Path, dict[str, Any]],
                                          tmp_path: Path) -> None:
    db, report = partial_sweep
    html = write_report(db, sweep_id=report["sweep_id"], out=tmp_path / "r.html").read_text()
    ratings = html.split('<section id="ratings">')[1].split("</section>")[0]
    assert 'class="flag flag-not-rated"' in ratings and "partial, gpu:0" in ratings
    runs = html.split('<section id="runs">')[1].split("</section>")[0]
    assert 'class="flag flag-partial"' in runs
    assert "1 partial" in html.split('<section id="totals">')[1].split("</section>")[0]


def test_the_report_shows_the_notes_of_a_run_beside_its_status(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    notes = ["window shorter than <0.1 s>", "no accuracy: 10 predictions for 6 labels"]
    with Store(db) as store:
        store.begin_sweep("s", project="p", config={})
        store.write_run(_run("plain", 1.0, sweep_id="s"))
        store.write_run(_run("noted", 0.5, sweep_id="s", measurement_notes=notes))
        store.write_run(_run("broken", 0.7, sweep_id="s", partial=True, errors=["gpu:0: gone"],
                             measurement_notes=notes[:1]))
    html = write_report(db, sweep_id="s", out=tmp_path / "r.html").read_text()
    runs = html.split('<section id="runs">')[1].split("</section>")[0]
    rows = {row.split("<td>")[1].split("</td>")[0]: row for row in runs.split("<tr>")[2:]}
    assert set(rows) == {"plain", "noted", "broken"}
    assert 'class="hint"' not in rows["plain"]
    assert ('<span class="hint" title="window shorter than &lt;0.1 s&gt;; no accuracy: 10 '
            'predictions for 6 labels">2 notes</span>') in rows["noted"]
    assert 'class="flag flag-partial" title="gpu:0: gone"' in rows["broken"]
    assert '<span class="hint" title="window shorter than &lt;0.1 s&gt;">note</span>' in \
        rows["broken"]


# -- a model whose output is NaN -----------------------------------------------------------------


class _Constant(Model):
    """Predicts the same scores for every input: NaN, or zeros."""

    framework = "custom"

    def __init__(self, path: Path, value: float) -> None:
        self.path = path
        self.value = value
        self.num_parameters = 10
        self.size_bytes = 100

    def predict(self, batch: Any) -> Any:
        return np.full((len(batch), 10), self.value)


def test_a_model_that_outputs_nan_fails_its_cell_and_is_not_rated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_SUFFIXES", dict(registry._SUFFIXES))
    wattprint.register_format(".constant", lambda path, *, task, trust, **options: _Constant(
        Path(path), float(options["value"])))
    models = []
    for name, value in (("nan", "nan"), ("zeros", "0")):
        (tmp_path / f"{name}.constant").write_text("weights")
        models.append({"name": name, "path": str(tmp_path / f"{name}.constant"),
                       "task": "classification", "options": {"value": value}})
    report = wattprint.Benchmark(_config(tmp_path, models, num_samples=50)).run(
        meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]), progress=False)
    nan = _inference(report, "nan")
    assert nan["status"] == "failed"
    assert "model output is not finite" in nan["error"]
    assert _inference(report, "zeros")["status"] == "ok"
    scores = calculate_scores("classification", "cpu", db=tmp_path / "w.db")
    assert [s.model for s in scores] == ["zeros"]
    assert scores.unrated == []  # failed, not merely unrated: in the failed cells, not here
    buffer = io.StringIO()
    print_scores(scores, console=Console(file=buffer, width=200))
    assert "nan" not in buffer.getvalue()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_measure_energy_refuses_outputs_that_are_not_finite(bad: float) -> None:
    def predict(batch: Any) -> Any:
        out = np.zeros((len(batch), 3))
        out[0, 1] = bad
        return out

    x = np.zeros((20, 4))
    with pytest.raises(ModelError, match="model output is not finite"):
        measure_energy(predict, (x, np.zeros(20, dtype=np.int64)), "m", "classification",
                       num_samples=20, warmup=0, progress=False,
                       meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]))


def _per_sample_outputs(values: list[Any]) -> Any:
    """A model whose answer to sample i is values[i]: the outputs the check is given."""
    return lambda row: values[int(row[0])]


def _rows(count: int, labelled: bool) -> Any:
    """Row i is [i] (see :func:`_per_sample_outputs`); ``labelled``: with class labels, so
    that the outputs are also stacked for the accuracy and checked in that stack."""
    x = np.arange(count, dtype=np.float64).reshape(count, 1)
    return (x, np.arange(count) % 3) if labelled else x


#: Outputs of 50 float64 values the finiteness check sums at a time: a NaN is looked for on
#: either side of the first chunk's end.
PER_CHUNK = FINITE_CHUNK_BYTES // 400


@pytest.mark.parametrize("labelled", [False, True], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("where", [0, PER_CHUNK - 1, PER_CHUNK, 999])
def test_one_nan_among_a_thousand_outputs_is_found_wherever_it_is(where: int,
                                                                  labelled: bool) -> None:
    assert 0 < PER_CHUNK < 999  # the outputs fill more than one chunk
    outputs = [np.full(50, 0.5) for _ in range(1000)]
    outputs[where][7] = np.nan
    outputs[(where + 1) % 1000][3] = -np.inf
    x = _rows(1000, labelled)
    with pytest.raises(ModelError, match=r"1 NaN and 1 infinite of 50000 values"):
        measure_energy(_per_sample_outputs(outputs), x, "m", "t", num_samples=1000, warmup=0,
                       progress=False, db=None, output_dir=None,
                       meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]))


@pytest.mark.parametrize("outputs", [
    [np.full(300, 1e308) for _ in range(200)],  # finite, though their sum is not
    [np.full(300, 6e4, dtype=np.float16) for _ in range(200)],  # float16 tops out at 65504
    [np.full(3, -3.4e38, dtype=np.float32) for _ in range(200)],
    [np.arange(5) for _ in range(200)],  # integers: nothing to check
    [np.array(["a", "b"]) if i % 2 else np.array([1.0, 2.0]) for i in range(200)],
    [np.array([None, 1.0], dtype=object) for _ in range(200)],
    [np.ones((4, 3), dtype=np.float32) if i % 3 else np.ones(2) for i in range(200)],
    [np.ones((3, 4)).T for _ in range(200)],  # not contiguous
    [np.array([-1e300, 2.5], dtype=">f8") for _ in range(200)],  # big-endian
    [np.ones(0) if i == 0 else np.ones(1000) for i in range(200)],  # the first one empty
], ids=["float64-sum-overflows", "float16", "float32", "int", "text-and-floats", "objects",
        "float32-and-float64", "transposed", "big-endian", "first-empty"])
@pytest.mark.parametrize("labelled", [False, True], ids=["unlabelled", "labelled"])
def test_finite_outputs_pass_the_check_whatever_their_sum(outputs: list[Any],
                                                          labelled: bool) -> None:
    x = _rows(200, labelled)
    result = measure_energy(_per_sample_outputs(outputs), x, "m", "t", num_samples=200,
                            warmup=0, progress=False, db=None, output_dir=None,
                            meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]))
    assert result["num_samples"] == 200 and result["energy_j"] > 0


@pytest.mark.parametrize("bad", [
    [np.array([1.0, 2.0]) if i != 150 else np.array([complex(0, np.nan)]) for i in range(200)],
    [np.array(["a"]) if i % 2 else np.array([np.inf]) for i in range(200)],
    [np.full(2, 6e4, dtype=np.float16) if i != 199 else np.array([np.nan], dtype=np.float16)
     for i in range(200)],
    [np.ones(3, dtype=np.float32) if i != 5 else np.array([np.inf]) for i in range(200)],
    [np.ones((3, 4)).T if i != 130 else np.full((3, 4), np.nan).T for i in range(200)],
    [np.array([1.0, 2.0 if i != 64 else np.nan], dtype=">f8") for i in range(200)],
    [np.ones(1) if i == 0 else np.full(1000, np.inf if i == 190 else 1.0) for i in range(200)],
], ids=["complex", "text-and-floats", "float16", "float32-and-float64", "transposed",
        "big-endian", "first-small"])
@pytest.mark.parametrize("labelled", [False, True], ids=["unlabelled", "labelled"])
def test_outputs_that_are_not_finite_are_refused_whatever_their_kind(bad: list[Any],
                                                                    labelled: bool) -> None:
    x = _rows(200, labelled)
    with pytest.raises(ModelError, match="model output is not finite"):
        measure_energy(_per_sample_outputs(bad), x, "m", "t", num_samples=200, warmup=0,
                       progress=False, db=None, output_dir=None,
                       meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]))


def test_measure_energy_reports_partial_errors_and_notes() -> None:
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0),
                                 FakeSensor(power_w=1.0, component="gpu:0", name="gpu:0",
                                            fail_after_s=0.0)])
    result = measure_energy(lambda batch: ["text"] * len(batch), np.zeros((10, 2)), "m",
                            "classification", num_samples=10, warmup=0, progress=False,
                            meter=meter)
    assert result["partial"] is True and "gpu:0" in result["errors"][0]
    assert result["notes"] == []


def test_training_and_optimization_records_carry_partial_errors_and_notes() -> None:
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0),
                                 FakeSensor(power_w=1.0, component="gpu:0", name="gpu:0",
                                            fail_after_s=0.0)])
    with meter.window("train") as w:
        pass
    assert w.measurement is not None
    record = RunRecord.from_measurement(w.measurement)  # as the runner makes its records
    assert record.partial is True and record.errors and "gpu:0" in record.errors[0]
    assert record.measurement_notes == tuple(w.measurement.notes)


# -- rating rules ---------------------------------------------------------------------------------


def _run(model: str, kwh_per_1000: float, **more: Any) -> dict[str, Any]:
    return {"sweep_id": "s", "cell_key": f"{model}/fp32/iris/inference/{more.get('rep', 0)}",
            "model_name": model, "variant": "fp32", "parent": None, "dataset": "iris",
            "phase": "inference", "task": "classification", "hardware": "cpu", "status": "ok",
            "num_samples": 1000, "kwh_per_1000_queries": kwh_per_1000,
            "energy_kwh": kwh_per_1000, "metrics": {"accuracy": 0.9},
            **{k: v for k, v in more.items() if k != "rep"}}


def test_partial_and_non_finite_runs_are_left_out_of_the_ranking() -> None:
    records = [_run("a", 3.0), _run("b", 1.0, partial=True, errors=["gpu:0: not readable"]),
               _run("c", 2.0, energy_j=math.nan), _run("d", 2.5, metrics={"accuracy": math.inf})]
    scores = star_ratings(records)
    assert isinstance(scores, scoring.ScoreList) and [s.model for s in scores] == ["a"]
    reasons = {u.model: u.reason for u in scores.unrated}
    assert reasons == {"b": "partial, gpu:0: not readable", "c": "energy_j is not finite",
                       "d": "metric accuracy is not finite"}


def test_a_model_is_rated_on_its_complete_runs_only() -> None:
    records = [_run("a", 2.0, rep=0), _run("a", 0.1, rep=1, partial=True, errors=["x"]),
               _run("b", 1.0)]
    scores = star_ratings(records)
    a = next(s for s in scores if s.model == "a")
    assert (a.kwh_per_1000_queries, a.repetitions, a.stars) == (2.0, 1, 3)
    assert [(u.model, u.runs) for u in scores.unrated] == [("a", 1)]


def test_a_partial_optimization_step_is_not_counted_in_savings() -> None:
    step = {**_run("m", 0.0, phase="optimization", partial=True, errors=["x"]),
            "variant": "int8", "parent": "fp32", "energy_kwh": 0.001,
            "cell_key": "m/int8/iris/optimization/0"}
    variant = {**_run("m", 1.0), "variant": "int8", "parent": "fp32",
               "cell_key": "m/int8/iris/inference/0"}
    (row,) = savings([RunRecord.from_dict(r) for r in (_run("m", 2.0), variant, step)])
    assert row.step_energy_kwh is None and row.break_even_queries is None


def test_unrated_to_dict_sits_beside_the_scores() -> None:
    scores = star_ratings([_run("a", 1.0), _run("b", 1.0, partial=True, errors=[])])
    assert scores[0].to_dict()["rated"] is True
    (unrated,) = scores.unrated
    data = json.loads(json.dumps(unrated.to_dict()))
    assert data["rated"] is False and data["stars"] is None and data["reason"] == "partial"
    assert data["model"] == "b" and data["cell_keys"] == ["b/fp32/iris/inference/0"]
    assert scoring.why_not_rated(_run("a", 1.0)) is None
    assert isinstance(unrated, scoring.Unrated)


def test_names_and_reasons_in_the_report_are_escaped(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    evil = "<script>alert(1)</script>"
    with Store(db) as store:
        store.begin_sweep("s", project="p", config={})
        store.write_run(_run("a", 1.0, sweep_id="s"))
        store.write_run(_run(evil, 0.5, sweep_id="s", partial=True, errors=[f"{evil}: failed"]))
    html = write_report(db, sweep_id="s", out=tmp_path / "r.html").read_text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;: failed" in html


# -- the store ------------------------------------------------------------------------------------


def test_partial_errors_and_notes_are_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        store.begin_sweep("s", project="p", config={})
        store.write_run({"sweep_id": "s", "cell_key": "c", "status": "ok", "partial": True,
                         "errors": ("gpu:0: not readable",),
                         "measurement_notes": ["window shorter than 0.1 s"]})
        store.write_run({"sweep_id": "s", "cell_key": "d", "status": "ok"})
        c, d = store.runs()
        csv_text = store.export("csv")
    assert (c.partial, c.errors, c.measurement_notes) == (
        True, ("gpu:0: not readable",), ("window shorter than 0.1 s",))
    assert (d.partial, d.errors, d.measurement_notes) == (None, None, None)
    assert '"[""gpu:0: not readable""]"' in csv_text


@pytest.mark.parametrize(("key", "value"), [("partial", "yes"), ("partial", 1),
                                            ("errors", "one error"), ("errors", [1])])
def test_bad_partial_or_errors_are_refused(tmp_path: Path, key: str, value: Any) -> None:
    with Store(tmp_path / "w.db") as store:
        store.begin_sweep("s", project="p", config={})
        with pytest.raises(wattprint.ConfigError, match=key) as info:
            store.write_run({"sweep_id": "s", "cell_key": "c", "status": "ok", key: value})
        assert "must be" in str(info.value)


def test_a_version_3_store_keeps_partial_and_errors_from_extra(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    conn = sqlite3.connect(db)
    for step in MIGRATIONS[:3]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO sweeps (id, project, config_json, created_at, updated_at, status)"
                 " VALUES ('s', 'p', '{}', 1.0, 2.0, 'finished')")
    for key, extra in (("bad", '{"batch_size": 1, "partial": true, "errors": ["gpu:0: gone"]}'),
                       ("good", '{"batch_size": 1, "partial": false, "errors": []}'),
                       ("plain", '{"epochs": 3}'), ("none", None)):
        conn.execute("INSERT INTO runs (sweep_id, cell_key, status, extra) VALUES"
                     " ('s', ?, 'ok', ?)", (key, extra))
    conn.commit()
    conn.close()
    assert SCHEMA_VERSION == 9
    with Store(db, read_only=True) as store:
        got = {r.cell_key: (r.partial, r.errors) for r in store.runs()}
    assert got == {"bad": (True, ("gpu:0: gone",)), "good": (False, ()), "plain": (None, None),
                   "none": (None, None)}


def test_a_label_for_a_model_that_is_not_rated_says_why(
        partial_sweep: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db, _ = partial_sweep
    with pytest.raises(wattprint.ConfigError, match=r"'b' is not rated.*partial, gpu:0"):
        write_label("b", db=db, out=tmp_path / "b.svg")
    assert not (tmp_path / "b.svg").exists()
    assert write_label("a", db=db, out=tmp_path / "a.svg").exists()
