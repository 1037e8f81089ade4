"""Nothing lost, nothing half-written: output files are replaced whole or not at all, a full
disk is one line and exit 2, ``--out`` is checked before the work, the commands that only read
never make or change a database, runs of one config started at once each get their own sweep,
and a CSV export is safe to open in a spreadsheet.

Everything is real: SQLite files in ``tmp_path``, the ``wattprint`` command in child
processes, file-size limits set with ``setrlimit`` in the child.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint.errors import StoreError
from wattprint.store import MIGRATIONS, SCHEMA_VERSION, Store
from wattprint.sweep.config import load_config
from wattprint.sweep.runner import plan_cells

WATTPRINT = [sys.executable, "-m", "wattprint"]
TIMEOUT_S = 300  # a guard against a hung child, never a measure of speed
#: The file-size limit of the children that must fail to write: above the 32 KiB a SQLite
#: reader needs for the store's -shm file, below every output written under it.
LIMIT = 64 * 1024
READ_COMMANDS = ("export", "score", "report", "label")


def cli(*args: str, cwd: Path, preexec: Callable[[], None] | None = None,
        start_new_session: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S, preexec_fn=preexec,
                          start_new_session=start_new_session)


def file_size_limit() -> None:
    """In the child: writes past LIMIT bytes fail (EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def run_row(i: int, model: str | None = None, **changes: Any) -> dict[str, Any]:
    """A successful inference run of model ``m<i % 5>``, with every figure a rating needs."""
    kwh = 1e-6 * (1 + i % 5)
    row: dict[str, Any] = {
        "cell_key": f"cell-{i}", "model_name": model or f"m{i % 5}", "variant": "fp32",
        "dataset": "digits", "repetition": i // 5, "phase": "inference",
        "task": "classification", "hardware": "CPU", "status": "ok",
        "started_at": 1_750_000_000.0 + i, "ended_at": 1_750_000_001.0 + i, "duration_s": 1.0,
        "energy_j": kwh * 3.6e6, "energy_kwh": kwh, "co2_g": kwh * 400.0, "water_l": kwh,
        "intensity_g_per_kwh": 400.0, "intensity_source": "given", "pue": 1.2,
        "wue_l_per_kwh": 1.0, "provenance": "measured", "num_samples": 1000,
        "kwh_per_1000_queries": kwh, "metrics": {"accuracy": 0.9},
        "components": {"cpu": {"energy_j": kwh * 3.6e6, "source": "rapl", "measured": True}},
        "num_parameters": 1000 * (1 + i % 5), "size_bytes": 4000,
    }
    row.update(changes)
    return row


def make_store(db: Path, rows: list[dict[str, Any]], sweep_id: str = "s1") -> Path:
    with Store(db) as store:
        store.begin_sweep(sweep_id, project="outputs", config={})
        for row in rows:
            store.write_run({"sweep_id": sweep_id, **row})
        store.end_sweep(sweep_id, "finished")
    return db


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose export and report are each well over LIMIT bytes."""
    db = tmp_path_factory.mktemp("big") / "wattprint.db"
    return make_store(db, [run_row(i) for i in range(400)])


def siblings(db: Path) -> list[Path]:
    return [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal"))
            if p.exists()]


def test_children_run_the_wattprint_under_test(tmp_path: Path) -> None:
    """The CLI children import the same package as this process (PYTHONPATH included)."""
    proc = subprocess.run([sys.executable, "-c", "import wattprint; print(wattprint.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert Path(proc.stdout.strip()) == Path(wattprint.__file__)


# --------------------------------------------------------------------------------------------
# 1, 2: written whole or not at all; a full disk is one line and exit 2.


def _limited_command(name: str, db: Path, out_dir: Path) -> tuple[list[str], Path]:
    """The command line and the output path of ``name``, whose output exceeds LIMIT."""
    if name == "measure":
        out = out_dir / "measure.json"
        # The command line is kept twice in the JSON: 2 x 40 kB.
        return ["measure", "--json", "--out", str(out), "--", sys.executable, "-c", "pass",
                "x" * 40_000], out
    out = out_dir / {"export": "runs.csv", "report": "report.html", "label": "m0.png"}[name]
    args = {"export": ["export", "--format", "csv"], "report": ["report"],
            "label": ["label", "m0"]}[name]
    return [*args, "--db", str(db), "--out", str(out)], out


@pytest.mark.parametrize("name", ["export", "report", "label", "measure"])
def test_a_file_size_limit_keeps_the_old_file_and_is_one_line(
        name: str, big_store: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args, out = _limited_command(name, big_store, out_dir)
    # Without the limit the output is larger than the limit: the limit is what stops it.
    whole = cli(*args, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert out.stat().st_size > LIMIT
    good = b"a good file from an earlier run\n"
    out.write_bytes(good)
    db_before = big_store.read_bytes()

    proc = cli(*args, cwd=tmp_path, preexec=file_size_limit)

    assert proc.returncode == 2, proc.stderr
    assert out.read_bytes() == good
    assert os.listdir(out_dir) == [out.name]  # no temporary file left behind
    line = one_line(proc.stderr)
    assert str(out) in line and "File too large" in line
    assert big_store.read_bytes() == db_before and not siblings(big_store)
    if name == "measure":  # what was measured is still printed
        result = json.loads(proc.stdout)
        assert result["exit_code"] == 0 and result["measurement"]["duration_s"] > 0


def test_a_new_output_file_has_the_mode_of_a_normal_file(big_store: Path,
                                                        tmp_path: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    fresh = tmp_path / "fresh.csv"
    assert cli("export", "--db", str(big_store), "--out", str(fresh), cwd=tmp_path).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    kept = tmp_path / "kept.csv"
    kept.write_text("old\n")
    kept.chmod(0o640)
    assert cli("export", "--db", str(big_store), "--out", str(kept), cwd=tmp_path).returncode == 0
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert kept.read_text().startswith("id,")
    assert sorted(os.listdir(tmp_path)) == ["fresh.csv", "kept.csv"]


def test_a_full_store_is_a_clear_store_error(tmp_path: Path) -> None:
    db = make_store(tmp_path / "wattprint.db", [run_row(0)])
    with Store(db) as store:
        # SQLite's own "database or disk is full" (SQLITE_FULL): the store may not grow.
        store._connection().execute("PRAGMA max_page_count = 16")
        with pytest.raises(StoreError) as info:
            store.write_run({"sweep_id": "s1", **run_row(1, notes="n" * 200_000)})
        message = str(info.value)
        assert str(db) in message and "full" in message and "free some space" in message
        assert [r.cell_key for r in store.runs()] == ["cell-0"]  # what was stored is kept


# --------------------------------------------------------------------------------------------
# 3: --out is checked before any work.


def _without_dac_override() -> None:
    """In a child running as root: drop the capabilities that let root write anywhere, so a
    0o555 folder refuses new files as it does for any other user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A 0o555 folder, and what a child must run first for it to be read-only to it."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    preexec = _without_dac_override if os.geteuid() == 0 else None
    try:
        probe = subprocess.run(
            [sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"],
            preexec_fn=preexec, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.SubprocessError:  # prctl refused: no way to drop root's override
        probe = None
    if probe is None or probe.returncode == 0:
        folder.chmod(0o755)
        pytest.skip("this user writes in a 0o555 folder anyway (root whose CAP_DAC_OVERRIDE "
                    "cannot be dropped here)")
    yield folder, preexec
    folder.chmod(0o755)


def _command_with_out(name: str, db: Path, out: Path, marker: Path) -> list[str]:
    if name == "measure":  # the program would leave ``marker`` if it ran
        return ["measure", "--out", str(out), "--", sys.executable, "-c",
                f"open({str(marker)!r}, 'w').close()"]
    if name == "label":
        return ["label", "m0", "--db", str(db), "--out", str(out)]
    return [name, "--db", str(db), "--out", str(out)]


OUT_NAMES = {"export": "runs.csv", "report": "report.html", "label": "m0.svg",
             "measure": "measure.json"}


@pytest.mark.parametrize("name", ["export", "report", "label", "measure"])
@pytest.mark.parametrize("where", ["a folder", "a missing folder", "a read-only folder"])
def test_a_bad_out_is_refused_before_the_work(name: str, where: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    db = make_store(tmp_path / "wattprint.db", [run_row(i) for i in range(5)])
    marker = tmp_path / "the-program-ran"
    preexec = None
    if where == "a folder":
        out = tmp_path / OUT_NAMES[name]
        out.mkdir()
    elif where == "a missing folder":
        out = tmp_path / "no-such-folder" / OUT_NAMES[name]
    else:
        folder, preexec = request.getfixturevalue("read_only_folder")
        out = folder / OUT_NAMES[name]
    db_before = db.read_bytes()

    proc = cli(*_command_with_out(name, db, out, marker), cwd=tmp_path, preexec=preexec)

    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "--out" in line and str(out) in line
    assert not marker.exists(), "the program ran although its --out could not be written"
    assert proc.stdout == ""
    assert db.read_bytes() == db_before
    if where == "a folder":
        assert out.is_dir() and list(out.iterdir()) == []
    elif where == "a read-only folder":
        assert list(out.parent.iterdir()) == []
    else:
        assert not out.parent.exists()


# --------------------------------------------------------------------------------------------
# 4: the commands that only read never make or change a database.


def _read_command(name: str, db: Path, out_dir: Path) -> list[str]:
    return {
        "export": ["export", "--db", str(db)],
        "score": ["score", "--db", str(db)],
        "report": ["report", "--db", str(db), "--out", str(out_dir / "report.html")],
        "label": ["label", "m0", "--db", str(db), "--out", str(out_dir / "m0.svg")],
    }[name]


@pytest.mark.parametrize("name", READ_COMMANDS)
def test_a_missing_database_is_not_created(name: str, tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    proc = cli(*_read_command(name, db, tmp_path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert f"no results database at {db}" in line
    assert sorted(os.listdir(tmp_path)) == []


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("model,energy_j\nlogreg,1.5\n" * 50)


def _other_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('kept as it is')")
    conn.commit()
    conn.close()


def _other_sqlite_in_wal_mode(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('kept as it is')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("name", READ_COMMANDS)
@pytest.mark.parametrize("make", [_empty, _text, _other_sqlite, _other_sqlite_in_wal_mode],
                         ids=["empty", "text", "other-sqlite", "other-sqlite-wal"])
def test_a_file_that_is_no_store_is_refused_and_left_alone(
        name: str, make: Callable[[Path], None], tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    make(db)
    before = db.read_bytes()
    proc = cli(*_read_command(name, db, tmp_path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert f"{str(db)!r} is not a wattprint database" in line
    assert db.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["data.db"]  # no -wal, -shm, report or label


def test_read_only_store_refuses_writes_and_upgrades_an_old_store(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO sweeps (id, project, config_json, created_at, updated_at, status)"
                 " VALUES ('old', 'p', '{}', 1.0, 2.0, 'finished')")
    conn.close()
    with Store(db, read_only=True) as store:
        assert [s["id"] for s in store.sweeps()] == ["old"]
        with pytest.raises(StoreError, match="read-only"):
            store.begin_sweep("new", project="p", config={})
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r[0] for r in conn.execute("SELECT id FROM sweeps")] == ["old"]
    conn.close()
    assert not siblings(db)
    with pytest.raises(StoreError, match="no results database"):
        Store(tmp_path / "none.db", read_only=True)
    assert not (tmp_path / "none.db").exists()


# --------------------------------------------------------------------------------------------
# 5: concurrent runs of one config.


def _sweep_yaml(tmp_path: Path, project: str, models: int, repetitions: int,
                samples: int | None = None) -> tuple[Path, Path]:
    import yaml

    db = tmp_path / "wattprint.db"
    monitoring: dict[str, Any] = {"repetitions": repetitions, "warmup": 0}
    if samples is not None:
        monitoring["num_samples"] = samples
    config = {
        "project": project,
        "models": [{"name": f"m{i}", "source": "sklearn:LogisticRegression"}
                   for i in range(models)],
        "datasets": [{"name": "digits", "limit": 100}],
        "monitoring": monitoring,
        "output": {"export_formats": [], "db": str(db), "output_dir": str(tmp_path / "out")},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, db


def _sleeping_with_the_store_open(pid: int, db: Path) -> bool:
    """Whether process ``pid`` has ``db`` open and its main thread sleeps: in the store's
    wait for the write lock, the only sleep of ``wattprint run`` before its sweep begins."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        files = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return str(db.resolve()) in files and "nanosleep" in wchan


def test_two_runs_of_one_config_at_once_each_get_their_own_sweep(tmp_path: Path) -> None:
    path, db = _sweep_yaml(tmp_path, "race", models=1, repetitions=2)
    Store(db).close()
    planned = {c.key for g in plan_cells(load_config(path)) for c in g.cells}
    # Hold the store's write lock while both start, so that both choose their sweep id
    # before either can record it: the moment a race would give them the same id.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    procs = [subprocess.Popen([*WATTPRINT, "run", str(path), "--json"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 240  # a guard only: if unseen, the lock goes anyway
        while time.monotonic() < deadline and not all(
                p.poll() is not None or _sleeping_with_the_store_open(p.pid, db) for p in procs):
            time.sleep(0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
    printed = [json.loads(stdout)["sweep_id"] for stdout, _ in outputs]
    assert len(set(printed)) == 2, printed

    with sqlite3.connect(db) as conn:
        stored = {sweep: {k for (k,) in conn.execute(
            "SELECT cell_key FROM runs WHERE sweep_id = ? AND status = 'ok'", (sweep,))}
            for sweep in printed}
        sweeps = {s for (s,) in conn.execute("SELECT id FROM sweeps")}
    conn.close()
    assert sweeps == set(printed)
    assert all(cells == planned for cells in stored.values()), stored
    base = min(printed, key=len)
    assert sorted(printed) == sorted([base, f"{base}-2"])


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=120) as conn:
            return int(conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'")
                       .fetchone()[0])
    except sqlite3.Error:
        return 0


#: A probe of the store's write lock takes it only if it is free at once.
NO_WAIT_S = 0


def _write_lock_free(db: Path) -> bool:
    conn = sqlite3.connect(db, timeout=NO_WAIT_S, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_resume_of_a_sweep_a_live_process_runs_is_refused(tmp_path: Path) -> None:
    path, db = _sweep_yaml(tmp_path, "owned", models=2, repetitions=2, samples=1500)
    owner = subprocess.Popen([*WATTPRINT, "run", str(path)], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _stored(db) < 1 and owner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Stop it (and any worker) between two writes: alive, but holding no lock.
        while True:
            os.killpg(owner.pid, signal.SIGSTOP)
            if _write_lock_free(db) or owner.poll() is not None:
                break
            os.killpg(owner.pid, signal.SIGCONT)
            time.sleep(0.01)
        assert owner.poll() is None, "the sweep ended before it could be resumed alongside"
        with sqlite3.connect(db) as conn:
            (sweep_id,) = conn.execute("SELECT id FROM sweeps").fetchone()
        conn.close()

        refused = cli("run", str(path), "--resume", cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        line = one_line(refused.stderr)
        assert sweep_id in line and f"process {owner.pid}" in line and "--resume" in line
    finally:
        os.killpg(owner.pid, signal.SIGKILL)
        owner.communicate(timeout=TIMEOUT_S)

    # Its owner is dead: the sweep resumes, and every cell ends up stored once.
    done = cli("run", str(path), "--resume", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sweep_id"] == sweep_id
    planned = {c.key for g in plan_cells(load_config(path)) for c in g.cells}
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM runs")]
        assert [s for (s,) in conn.execute("SELECT id FROM sweeps")] == [sweep_id]
    conn.close()
    assert sorted(keys) == sorted(planned)


# --------------------------------------------------------------------------------------------
# 6: CSV safe in a spreadsheet.

FORMULAS = ['=HYPERLINK("http://x")', "@SUM(1)", "-2+3", "+1+1", "\tcmd", "\rcmd"]


def test_csv_export_neutralises_formulas_and_keeps_numbers(tmp_path: Path) -> None:
    rows = [run_row(i, model=name, energy_j=-1.5, metrics={"note": "-1.5", "cmd": "=1+2"})
            for i, name in enumerate([*FORMULAS, "plain"])]
    db = make_store(tmp_path / "wattprint.db", rows)
    out = tmp_path / "runs.csv"
    proc = cli("export", "--format", "csv", "--db", str(db), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    text = out.read_bytes().decode("utf-8")  # as written: a \r inside a cell stays a \r
    exported = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["model_name"] for r in exported] == [f"'{name}" for name in FORMULAS] + ["plain"]
    for row in exported:
        assert row["energy_j"] == "-1.5"  # a number, negative or not, is left alone
        assert row["metrics_note"] == "-1.5"  # and so is a text that is a plain number
        assert row["metrics_cmd"] == "'=1+2"
        assert float(row["kwh_per_1000_queries"]) > 0
    with Store(db) as store:
        assert store.export("csv") == text
        data = json.loads(store.export("json"))
    assert [r["model_name"] for r in data["runs"]] == [*FORMULAS, "plain"]  # JSON unchanged
    assert data["runs"][0]["metrics"] == {"note": "-1.5", "cmd": "=1+2"}
