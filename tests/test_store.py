"""The results store: real SQLite files in tmp_path, real processes writing at once."""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattprint.errors import ConfigError, MissingExtra, StoreError
from wattprint.record import RunRecord
from wattprint.store import (
    MIGRATIONS,
    PHASES,
    PROVENANCES,
    RUN_KEYS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    Store,
)

# spawn: the children start clean, whatever the test process holds.
SPAWN = mp.get_context("spawn")


def full_record(cell_key: str = "mlp/int8-dynamic/iris/inference/2", sweep_id: str = "s1",
                **changes: Any) -> dict[str, Any]:
    """A run record with every key set."""
    record: dict[str, Any] = {
        "sweep_id": sweep_id,
        "cell_key": cell_key,
        "model_name": "mlp",
        "variant": "int8-dynamic",
        "parent": "fp32",
        "dataset": "iris",
        "repetition": 2,
        "phase": "inference",
        "task": "classification",
        "hardware": "cpu",
        "status": "ok",
        "error": "none: kept as text",
        "started_at": 1_730_000_000.123456,
        "ended_at": 1_730_000_012.654321,
        "duration_s": 12.530865,
        "energy_j": 431.1234567891,
        "energy_kwh": 431.1234567891 / 3.6e6,
        "co2_g": 0.04185,
        "water_l": 0.000376,
        "intensity_g_per_kwh": 349.5,
        "intensity_source": "Electricity Maps 2024, DE",
        "pue": 1.56,
        "wue_l_per_kwh": 1.8,
        "provenance": "mixed",
        "components": {
            "cpu": {"energy_j": 400.5, "source": "rapl", "measured": True, "scope": "machine"},
            "gpu:0": {"energy_j": 30.6234567891, "source": "estimate", "measured": False,
                      "scope": "process"},
        },
        "num_samples": 150,
        "samples_per_second": 11.970_437,
        "kwh_per_1000_queries": 7.98e-4,
        "metrics": {"accuracy": 0.9666666666666667, "f1_macro": 0.96,
                    "confusion": [[1, 0], [0, 1]]},
        "framework": "onnx",
        "num_parameters": 12_345_678_901,
        "effective_parameters": 3_086_419_725,
        "size_bytes": 49_382_716,
        "dtype": "int8",
        "optimization": {"kind": "quantize", "method": "dynamic", "target_dtype": "int8",
                         "amount": None},
        "host": {"hostname": "node-1", "cpu_count": 16},
        "extra": {"batch_size": 32},
        "notes": "a note",
        "partial": True,
        "errors": ["gpu:0: not readable"],
        "measurement_notes": ["window shorter than 0.1 s"],
        "location": "DE (Electricity Maps 2024)",
        "tier": "datacenter",
        "water_intensity_l_per_kwh": 3.14,
    }
    record.update(changes)
    return record


def small_record(cell_key: str, sweep_id: str = "s1", **changes: Any) -> dict[str, Any]:
    return {"sweep_id": sweep_id, "cell_key": cell_key, "status": "ok", **changes}


def without_id(run: RunRecord) -> dict[str, Any]:
    return {k: v for k, v in run.to_dict().items() if k != "id"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def store(db: Path) -> Any:
    with Store(db) as s:
        s.begin_sweep("s1", project="demo", config={"models": ["mlp"], "seed": 0})
        yield s


def raw(db: Path) -> sqlite3.Connection:
    """A plain SQLite connection, to look at the file as it is."""
    return sqlite3.connect(db)


# -- records ----------------------------------------------------------------------------------


def test_full_record_round_trips(store: Store) -> None:
    record = full_record()
    samples = [(0.0, "cpu", 41.5), (0.1, "cpu", 43.25), (0.1, "gpu:0", 80.0)]
    run_id = store.write_run(record, samples=samples)

    (got,) = store.runs()
    assert isinstance(got, RunRecord)
    assert got.id == run_id
    assert without_id(got) == record
    assert got == RunRecord.from_dict(record)  # the record written is the record read
    assert type(got.repetition) is int and type(got.num_parameters) is int
    assert type(got.energy_j) is float
    assert got.components is not None and got.components["cpu"].measured is True
    assert got.errors == ("gpu:0: not readable",) and got.partial is True
    assert store.samples(run_id) == samples


def test_numpy_values_are_stored_as_plain_numbers(store: Store) -> None:
    store.write_run(small_record("np", num_samples=np.int64(7), energy_j=np.float32(0.5),
                                 metrics={"accuracy": np.float64(0.25), "per_class": np.arange(3)}))
    (got,) = store.runs()
    assert (got.num_samples, got.energy_j) == (7, 0.5)
    assert type(got.num_samples) is int
    assert got.metrics == {"accuracy": 0.25, "per_class": [0, 1, 2]}


def test_missing_keys_are_null(store: Store) -> None:
    store.write_run(small_record("minimal"))
    (got,) = store.runs()
    data = got.to_dict()
    assert {k for k, v in data.items() if v is not None} == {"id", "sweep_id", "cell_key",
                                                             "status"}
    assert set(data) == {"id", *RUN_KEYS}


def test_every_allowed_phase_status_and_provenance_is_stored(store: Store) -> None:
    for i, (phase, status, provenance) in enumerate(
        zip(PHASES * 2, RUN_STATUSES * 3, PROVENANCES, strict=True)
    ):
        store.write_run(small_record(f"c{i}", phase=phase, status=status, provenance=provenance))
    got = [(r.phase, r.status, r.provenance) for r in store.runs()]
    assert got == list(zip(PHASES * 2, RUN_STATUSES * 3, PROVENANCES, strict=True))
    assert "fake" in PROVENANCES  # FakeSensor runs are stored, and say so


def test_run_keys_are_the_columns_of_the_table(store: Store, db: Path) -> None:
    columns = [row[1] for row in raw(db).execute("PRAGMA table_info(runs)")]
    assert columns == ["id", *RUN_KEYS]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"energy_wh": 1.0, "gpu": "a100"}, ["energy_wh", "gpu"]),
        ({"status": None}, ["status"]),
        ({"status": "finished"}, ["status", "'finished'", "ok, failed"]),
        ({"phase": "eval"}, ["phase", "inference, training, optimization"]),
        ({"provenance": "guessed"}, ["provenance", "measured"]),
        ({"energy_j": "12 J"}, ["energy_j", "number"]),
        ({"repetition": 1.5}, ["repetition", "int"]),
        ({"repetition": True}, ["repetition", "int"]),
        ({"metrics": [0.9]}, ["metrics", "dict"]),
        ({"metrics": {"when": object()}}, ["metrics", "JSON"]),
        ({"sweep_id": "no-such-sweep"}, ["no-such-sweep", "begin_sweep"]),
    ],
)
def test_bad_records_are_refused_and_nothing_is_written(
    store: Store, change: dict[str, Any], words: list[str]
) -> None:
    record = {**small_record("bad"), **change}
    with pytest.raises(ConfigError) as info:
        store.write_run(record)
    for word in words:
        assert word in str(info.value)
    assert store.runs() == []


def test_bad_samples_are_refused_and_nothing_is_written(store: Store) -> None:
    short: list[Any] = [(0.0, "cpu", 1.0), (0.1, "cpu")]
    with pytest.raises(ConfigError, match="sample 1"):
        store.write_run(small_record("c"), samples=short)
    wordy: list[Any] = [(0.0, "cpu", "many")]
    with pytest.raises(ConfigError, match="watts"):
        store.write_run(small_record("c"), samples=wordy)
    assert store.runs() == []


def test_same_cell_replaces_the_run_and_its_samples(store: Store, db: Path) -> None:
    store.write_run(small_record("other"), samples=[(0.0, "cpu", 5.0)])
    failed = small_record("cell", status="failed", error="RuntimeError: boom", energy_j=1.0)
    store.write_run(failed, samples=[(0.0, "cpu", 1.0), (0.5, "cpu", 2.0)])
    new_id = store.write_run(small_record("cell", metrics={"accuracy": 0.5}),
                             samples=[(0.0, "gpu:0", 9.0)])

    runs = {r.cell_key: r for r in store.runs(sweep_id="s1")}
    assert sorted(runs) == ["cell", "other"]
    replaced = runs["cell"]
    assert replaced.id == new_id
    assert (replaced.status, replaced.error, replaced.energy_j) == ("ok", None, None)
    assert replaced.metrics == {"accuracy": 0.5}
    assert store.samples(new_id) == [(0.0, "gpu:0", 9.0)]
    assert store.samples(runs["other"].id or 0) == [(0.0, "cpu", 5.0)]
    assert raw(db).execute("SELECT count(*) FROM samples").fetchone()[0] == 2


def test_finished_cells_are_the_ok_ones_of_that_sweep(store: Store) -> None:
    store.begin_sweep("s2", project="demo", config={})
    store.write_run(small_record("a"))
    store.write_run(small_record("b", status="failed", error="x"))
    store.write_run(small_record("c", status="failed", error="x"))
    store.write_run(small_record("c"))
    store.write_run(small_record("d", sweep_id="s2"))
    assert store.finished_cells("s1") == {"a", "c"}
    assert store.finished_cells("s2") == {"d"}
    assert store.finished_cells("nothing") == set()


def test_filters(store: Store) -> None:
    store.begin_sweep("s2", project="demo", config={})
    rows = [
        ("1", "s1", "classification", "cpu", "ok", "inference"),
        ("2", "s1", "classification", "cuda:0", "ok", "inference"),
        ("3", "s1", "regression", "cpu", "failed", "training"),
        ("4", "s1", "classification", "cpu", "ok", "optimization"),
        ("5", "s2", "classification", "cpu", "ok", "inference"),
        ("6", "s2", "regression", "cuda:0", "failed", "inference"),
    ]
    for key, sweep, task, hardware, status, phase in rows:
        store.write_run(small_record(key, sweep_id=sweep, task=task, hardware=hardware,
                                     status=status, phase=phase))

    def keys(**filters: Any) -> list[str]:
        return [r.cell_key for r in store.runs(**filters)]

    assert keys() == ["1", "2", "3", "4", "5", "6"]
    assert keys(sweep_id="s2") == ["5", "6"]
    assert keys(task="regression") == ["3", "6"]
    assert keys(hardware="cuda:0") == ["2", "6"]
    assert keys(status="failed") == ["3", "6"]
    assert keys(phase="inference") == ["1", "2", "5", "6"]
    assert keys(sweep_id="s1", task="classification", hardware="cpu", phase="inference") == ["1"]
    assert keys(sweep_id="s3") == []
    with pytest.raises(ConfigError, match="ok, failed"):
        store.runs(status="finished")
    with pytest.raises(ConfigError, match="inference"):
        store.runs(phase="eval")


# -- sweeps -----------------------------------------------------------------------------------


def test_sweeps_begin_resume_and_end(db: Path) -> None:
    with Store(db) as store:
        assert store.sweeps() == [] and store.latest_sweep_id() is None
        assert store.begin_sweep("s1", project="p", config={"a": 1}, host={"h": "x"}) is False
        assert store.begin_sweep("s2", project="p", config={"b": 2}) is False
        assert store.latest_sweep_id() == "s2"
        store.write_run(small_record("c1", status="failed", error="e"))
        store.write_run(small_record("c2"))
        assert store.latest_sweep_id() == "s1"
        store.end_sweep("s1", "interrupted")
        assert {s["id"]: s["status"] for s in store.sweeps()} == {"s1": "interrupted",
                                                                   "s2": "running"}
        assert store.begin_sweep("s1", project="other", config={"ignored": True}) is True
        s1 = store.sweeps()[0]
        assert s1["id"] == "s1" and s1["status"] == "running"
        assert (s1["project"], s1["config"], s1["host"]) == ("p", {"a": 1}, {"h": "x"})
        assert (s1["num_runs"], s1["num_ok"], s1["num_failed"]) == (2, 1, 1)
        assert s1["created_at"] <= s1["updated_at"]
        store.end_sweep("s1", "finished")
        with pytest.raises(ConfigError, match="finished, interrupted, failed"):
            store.end_sweep("s1", "done")
        with pytest.raises(ConfigError, match="no sweep 'nope'"):
            store.end_sweep("nope", "failed")
    with Store(db) as again:
        assert [(s["id"], s["status"]) for s in again.sweeps()] == [("s1", "finished"),
                                                                    ("s2", "running")]


# -- the file ---------------------------------------------------------------------------------


def test_new_store_is_wal_at_the_current_version(db: Path) -> None:
    Store(db).close()
    conn = raw(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert SCHEMA_VERSION >= 2


def test_version_1_store_migrates_with_its_rows(db: Path) -> None:
    conn = raw(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO sweeps VALUES ('old', 'p', '{\"k\": 1}', 1.0, 2.0, 'finished',"
                 " NULL)")
    conn.execute("INSERT INTO runs (sweep_id, cell_key, status, energy_j, metrics, task)"
                 " VALUES ('old', 'c', 'ok', 12.5, '{\"accuracy\": 0.75}', 'regression')")
    conn.execute("INSERT INTO samples VALUES (1, 0.5, 'cpu', 30.0)")
    conn.commit()
    assert "notes" not in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()

    with Store(db) as store:
        (run,) = store.runs()
        assert (run.cell_key, run.energy_j, run.metrics) == ("c", 12.5, {"accuracy": 0.75})
        assert run.notes is None
        assert store.samples(run.id or 0) == [(0.5, "cpu", 30.0)]
        assert store.sweeps()[0]["config"] == {"k": 1}
        store.write_run(small_record("new", sweep_id="old", notes="after"))
        assert store.runs(task="regression")[0].cell_key == "c"

    conn = raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"runs_by_task_hardware", "runs_left_out", "runs_by_sweep"} <= indexes
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_sweeps_runs_are_read_in_the_order_they_were_written(db: Path) -> None:
    """The report's reads of a sweep (its overview, components, model rows) go through the
    index runs_by_sweep, whose rows are in rowid order, not through UNIQUE (sweep_id,
    cell_key), whose order jumps about the file: no sort for ORDER BY id either."""
    with Store(db) as store:
        store.begin_sweep("s1", project="p", config={})
        store.begin_sweep("s2", project="p", config={})
        for i in range(30):  # cell keys in another order than the ids
            store.write_run(small_record(f"{(i * 7) % 30:02d}", sweep_id=f"s{1 + i % 2}",
                                         energy_j=float(i), components={
                                             "cpu": {"energy_j": float(i), "source": "rapl",
                                                     "measured": True}}))
        assert [c.runs for c in store.component_runs("s1")] == [15]
        assert store.sweep_overview("s2").runs_ok == 15
    conn = raw(db)
    for query in ("SELECT energy_kwh, co2_g, water_l FROM runs WHERE sweep_id = ? AND "
                  "status = 'ok'",
                  "SELECT provenance, components FROM runs WHERE sweep_id = ? AND "
                  "components IS NOT NULL ORDER BY id"):
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", ("s1",)))
        assert "INDEX runs_by_sweep" in plan and "B-TREE" not in plan, plan


def test_version_4_store_gains_the_site_columns(db: Path) -> None:
    """Runs stored before the site was kept read None for it; new runs keep it."""
    conn = raw(db)
    for step in MIGRATIONS[:4]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO sweeps (id, project, config_json, created_at, updated_at, status)"
                 " VALUES ('old', 'p', '{}', 1.0, 2.0, 'finished')")
    conn.execute("INSERT INTO runs (sweep_id, cell_key, status, pue, partial)"
                 " VALUES ('old', 'c', 'ok', 1.2, 0)")
    conn.commit()
    conn.close()

    with Store(db) as store:
        (old,) = store.runs()
        assert (old.pue, old.partial) == (1.2, False)
        assert (old.location, old.tier, old.water_intensity_l_per_kwh) == (None, None, None)
        store.write_run(small_record("new", sweep_id="old", tier="datacenter", location="SE",
                                     water_intensity_l_per_kwh=0.5))
        new = store.runs()[1]
        assert (new.location, new.tier, new.water_intensity_l_per_kwh) == ("SE", "datacenter",
                                                                           0.5)
    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5


def test_store_from_a_newer_wattprint_is_refused(db: Path) -> None:
    Store(db).close()
    conn = raw(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as info:
        Store(db)
    message = str(info.value)
    assert str(db) in message and f"schema version {SCHEMA_VERSION + 1}" in message
    assert "upgrade wattprint" in message
    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    content = "model,energy_j\n" * 100
    path.write_text(content)
    with pytest.raises(StoreError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message and "not a SQLite database" in message
    assert "move the file away" in message
    assert path.read_text() == content


def test_other_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = raw(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a wattprint results store"):
        Store(path)
    tables = [row[0] for row in raw(path).execute("SELECT name FROM sqlite_master")]
    assert tables == ["t"]


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "results.db"
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)
    assert not (tmp_path / "no").exists()
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_closed_store_refuses_use(db: Path) -> None:
    with Store(db) as store:
        store.begin_sweep("s", project="p", config={})
    store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.runs()


def test_store_locked_too_long_gives_up(store: Store, db: Path) -> None:
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    waiting = Store(db, timeout_s=0.2)
    with pytest.raises(StoreError, match="locked by another process"):
        waiting.write_run(small_record("c"))
    assert waiting.runs() == []  # reads are not blocked by a writer
    blocker.execute("ROLLBACK")
    waiting.write_run(small_record("c"))
    assert [r.cell_key for r in store.runs()] == ["c"]
    waiting.close()


def test_busy_answers_are_retried_other_errors_are_not(db: Path) -> None:
    # SQLite's busy handler waits on a held lock (above); some busy answers come without it
    # (a stale WAL snapshot, recovery by another process), and those the store retries itself.
    calls: list[int] = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    def broken() -> str:
        calls.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    with Store(db) as store:
        assert store._retry(busy_twice) == "done" and len(calls) == 3
        calls.clear()
        with pytest.raises(StoreError, match="disk I/O error"):
            store._retry(broken)
        assert len(calls) == 1
    with Store(db, timeout_s=0) as impatient:
        calls.clear()
        with pytest.raises(StoreError, match="locked by another process"):
            impatient._retry(busy_twice)
        assert len(calls) == 1


# -- export -----------------------------------------------------------------------------------


def _two_sweeps(store: Store) -> None:
    store.begin_sweep("s2", project="demo", config={})
    store.write_run(full_record())
    store.write_run(small_record("broken", status="failed", error="ValueError: x, \"y\"\nz"))
    store.write_run(small_record("elsewhere", sweep_id="s2", energy_j=1.0))


def test_export_json_parses_back_to_the_same_records(store: Store, tmp_path: Path) -> None:
    _two_sweeps(store)
    out = tmp_path / "s1.json"
    text = store.export("json", sweep_id="s1", out=out)
    assert out.read_text(encoding="utf-8") == text
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["runs"] == [r.to_dict() for r in store.runs(sweep_id="s1")]
    assert [RunRecord.from_dict(r) for r in data["runs"]] == store.runs(sweep_id="s1")
    assert [s["id"] for s in data["sweeps"]] == ["s1"]
    assert [r["cell_key"] for r in json.loads(store.export("json"))["runs"]] == [
        full_record()["cell_key"], "broken", "elsewhere"]


def test_export_csv_flattens_json_columns(store: Store, tmp_path: Path) -> None:
    _two_sweeps(store)
    out = tmp_path / "s1.csv"
    text = store.export("csv", sweep_id="s1", out=out)
    assert out.read_text(encoding="utf-8") == text
    rows = list(csv.DictReader(io.StringIO(text)))
    record = full_record()
    full, broken = rows
    assert full["cell_key"] == record["cell_key"] and broken["cell_key"] == "broken"
    for key in ("energy_j", "energy_kwh", "co2_g", "water_l", "started_at", "pue"):
        assert float(full[key]) == record[key], key
    assert int(full["num_parameters"]) == record["num_parameters"]
    assert float(full["metrics_accuracy"]) == record["metrics"]["accuracy"]
    assert json.loads(full["metrics_confusion"]) == [[1, 0], [0, 1]]
    assert float(full["components_gpu:0_energy_j"]) == 30.6234567891
    assert full["components_cpu_source"] == "rapl"
    assert full["optimization_method"] == "dynamic" and full["optimization_amount"] == ""
    assert json.loads(full["errors"]) == ["gpu:0: not readable"]
    assert full["partial"] == "True" and full["extra_batch_size"] == "32"
    assert not {"metrics", "components", "optimization", "host", "extra"} & set(full)
    assert broken["error"] == 'ValueError: x, "y"\nz'
    assert broken["energy_j"] == "" and broken["metrics_accuracy"] == ""


def test_export_of_a_sweep_without_runs(store: Store) -> None:
    header = store.export("csv", sweep_id="s1").splitlines()
    assert len(header) == 1 and header[0].split(",") == ["id", *(
        k for k in RUN_KEYS if k not in ("components", "metrics", "optimization", "host", "extra")
    )]
    assert json.loads(store.export("json", sweep_id="s1"))["runs"] == []
    assert len(store.to_dataframe("s1")) == 0


def test_export_refuses_unknown_format_and_sweep(store: Store) -> None:
    with pytest.raises(ConfigError, match="'csv' or 'json'"):
        store.export("xlsx")
    with pytest.raises(ConfigError, match="no sweep 'typo'"):
        store.export("csv", sweep_id="typo")


def test_dataframe_has_the_csv_columns(store: Store) -> None:
    _two_sweeps(store)
    df = store.to_dataframe("s1")
    header = next(csv.reader(io.StringIO(store.export("csv", sweep_id="s1"))))
    assert list(df.columns) == header
    assert list(df["cell_key"]) == [full_record()["cell_key"], "broken"]
    assert df["energy_j"].iloc[0] == full_record()["energy_j"]
    assert df["metrics_accuracy"].iloc[0] == full_record()["metrics"]["accuracy"]
    assert len(store.to_dataframe()) == 3


def test_dataframe_without_pandas_names_the_extra(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    with pytest.raises(MissingExtra) as info:
        store.to_dataframe()
    assert info.value.extra == "pandas" and "wattprint[pandas]" in str(info.value)


def test_store_imports_no_upper_layer_and_no_pandas() -> None:
    code = ("import sys, wattprint.store; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas' or "
            "m.startswith(('wattprint.sweep', 'wattprint.optimize', 'wattprint.workloads'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- several writers --------------------------------------------------------------------------

ROWS_PER_WRITER = 50
SHARED_CELLS = 5
SAMPLES_PER_ROW = 10


def _writer(path: str, worker: int, barrier: Any) -> None:
    barrier.wait()  # every process opens the new file, and writes, at the same moment
    with Store(path) as store:
        store.begin_sweep("shared", project="p", config={"n": 1})
        for i in range(ROWS_PER_WRITER):
            samples = [(j / 10, "cpu", float(worker)) for j in range(SAMPLES_PER_ROW)]
            store.write_run(small_record(f"w{worker}-{i}", sweep_id="shared", repetition=i),
                            samples=samples)
            # the same cells from every process: each must end up once
            store.write_run(small_record(f"shared-{i % SHARED_CELLS}", sweep_id="shared",
                                         extra={"worker": worker}))


def test_processes_writing_at_once_lose_nothing(db: Path) -> None:
    writers = 4
    barrier = SPAWN.Barrier(writers)
    procs = [SPAWN.Process(target=_writer, args=(str(db), w, barrier)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)  # a guard against a hang, not a measure of speed
    assert [p.exitcode for p in procs] == [0] * writers

    with Store(db) as store:
        counts = Counter(r.cell_key for r in store.runs(sweep_id="shared"))
        mine = {f"w{w}-{i}" for w in range(writers) for i in range(ROWS_PER_WRITER)}
        shared = {f"shared-{i}" for i in range(SHARED_CELLS)}
        assert set(counts) == mine | shared
        assert set(counts.values()) == {1}
        assert [s["id"] for s in store.sweeps()] == ["shared"]
    conn = raw(db)
    per_run = dict(conn.execute("SELECT r.cell_key, count(s.run_id) FROM runs r"
                                " LEFT JOIN samples s ON s.run_id = r.id GROUP BY r.id"))
    assert all(per_run[k] == SAMPLES_PER_ROW for k in mine)
    assert all(per_run[k] == 0 for k in shared)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_threads_can_share_one_store(store: Store) -> None:
    def write(t: int) -> None:
        for i in range(25):
            store.write_run(small_record(f"t{t}-{i}"), samples=[(0.0, "cpu", float(t))])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = store.runs()
    assert len(runs) == 100 == len({r.cell_key for r in runs})
    assert all(len(store.samples(r.id or 0)) == 1 for r in runs)


KILL_SAMPLES = 2000
KILL_AT_SAMPLE = 1000


def _killed_writer(path: str, paused: Any) -> None:
    with Store(path) as store:
        store.begin_sweep("k", project="p", config={})
        samples = [(j / 100, "cpu", 1.0) for j in range(KILL_SAMPLES)]
        for i in range(3):
            store.write_run(small_record(f"c{i}", sweep_id="k", num_samples=KILL_SAMPLES),
                            samples=samples)
        # The fourth run pauses halfway through its samples, inside its transaction, with a
        # cache small enough that the uncommitted pages are already in the WAL file.
        conn = store._conn
        assert conn is not None
        conn.execute("PRAGMA cache_size = 2")
        written = Counter[str]()

        def trace(sql: str) -> None:
            if sql.startswith("INSERT INTO samples"):
                written["samples"] += 1
                if written["samples"] == KILL_AT_SAMPLE:
                    paused.set()
                    time.sleep(600)

        conn.set_trace_callback(trace)
        store.write_run(small_record("c3", sweep_id="k", num_samples=KILL_SAMPLES),
                        samples=samples)


def test_process_killed_mid_write_leaves_a_consistent_store(db: Path) -> None:
    paused = SPAWN.Event()
    proc = SPAWN.Process(target=_killed_writer, args=(str(db), paused))
    proc.start()
    assert paused.wait(120), "the writer never reached the middle of its fourth run"
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    assert Path(f"{db}-wal").stat().st_size > 0  # the half-written run reached the WAL

    conn = raw(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_run = conn.execute("SELECT r.cell_key, r.num_samples, count(s.run_id) FROM runs r"
                           " LEFT JOIN samples s ON s.run_id = r.id GROUP BY r.id"
                           " ORDER BY r.id").fetchall()
    assert per_run == [(f"c{i}", KILL_SAMPLES, KILL_SAMPLES) for i in range(3)]
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 3 * KILL_SAMPLES
    conn.close()
    with Store(db, timeout_s=5) as store:  # not left locked
        store.write_run(small_record("c3", sweep_id="k"))
        assert store.finished_cells("k") == {"c0", "c1", "c2", "c3"}


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork here")
def test_store_refuses_use_across_fork(store: Store) -> None:
    def child() -> None:
        try:
            store.runs()
        except StoreError as err:
            os._exit(0 if "open a new Store in this process" in str(err) else 2)
        os._exit(1)

    proc = mp.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    store.write_run(small_record("parent-still-works"))
    assert len(store.runs()) == 1


def _components_of_records(runs: list[RunRecord]) -> list[tuple[Any, ...]]:
    """The sums component_runs gives, made from the records as a reader of them would: in
    the order each first appears, runs in id order and each run's components in its order."""
    found: dict[tuple[Any, ...], list[float]] = {}
    for run in sorted(runs, key=lambda r: r.id or 0):
        for name, c in (run.components or {}).items():
            found.setdefault((run.provenance, name, c.source, c.measured), []).append(c.energy_j)
    return [(*key, len(joules), math.fsum(joules)) for key, joules in found.items()]


def test_components_summed_are_the_records_sums_in_their_order(db: Path) -> None:
    """The components summed for a report (exactly rounded, ordered as the records give
    them) are what the records give, a NaN (not strict JSON in the column) included."""

    def comp(energy_j: float, source: str = "rapl", measured: bool = True) -> dict[str, Any]:
        return {"energy_j": energy_j, "source": source, "measured": measured}

    rows = [  # (provenance, components): names in different orders, one only later
        ("measured", {"gpu:0": comp(0.1), "cpu": comp(1e16), "ram": comp(3.0, "estimate",
                                                                        False)}),
        ("mixed", {"cpu": comp(2.0, "estimate", False), "gpu:0": comp(0.2)}),
        ("measured", {"cpu": comp(1.0), "gpu:0": comp(0.3)}),  # 1e16 + 1.0 + ...: exact sums
        (None, {"cpu": comp(4.0)}),
        ("measured", {"ram": comp(3.5, "estimate", False), "npu": comp(7)}),  # an integer
        ("measured", {"cpu": comp(-1e16), "gpu:0": comp(float("nan"))}),
        ("measured", {"cpu": comp(0.25), "gpu:0": comp(0.4)}),
    ]
    with Store(db) as store:
        store.begin_sweep("s1", project="p", config={})
        store.begin_sweep("s2", project="p", config={})
        store.write_run(small_record("other", sweep_id="s2", provenance="measured",
                                     components={"cpu": comp(99.0)}))
        for i, (kind, components) in enumerate(rows):
            store.write_run(small_record(f"c{i}", provenance=kind, components=components))
        store.write_run(small_record("none"))  # no components
        got = [(c.provenance, c.component, c.source, c.measured, c.runs, c.energy_j)
               for c in store.component_runs("s1")]
        want = _components_of_records(store.runs(sweep_id="s1"))
    assert [g[:5] for g in got] == [w[:5] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[5] == w[5] or (math.isnan(g[5]) and math.isnan(w[5])), (g, w)
    assert got[0][:2] == ("measured", "gpu:0") and got[1][1] == "cpu"  # the first run's order
    assert got[1] == ("measured", "cpu", "rapl", True, 4, 1.25)  # 1e16 + 1 - 1e16 + 0.25
    assert len(got) == 7 and math.isnan(got[0][5])
