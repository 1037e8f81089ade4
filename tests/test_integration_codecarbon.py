"""CodeCarbon's ``emissions.csv`` written by wattprint (``measure --codecarbon-csv``,
``export --format codecarbon``, ``@wattprint.track_emissions``), read back with the csv module
and pandas, as CodeCarbon's readers read it, and appended to by CodeCarbon's own writer."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from codecarbon.output_methods.emissions_data import EmissionsData
from codecarbon.output_methods.file import FileOutput
from readme_blocks import readme_block

import wattprint
from wattprint import FakeSensor
from wattprint.errors import ConfigError, OutputError
from wattprint.integrations import codecarbon as cc
from wattprint.record import RunRecord
from wattprint.store import Store

WATTPRINT = [sys.executable, "-m", "wattprint"]
TIMEOUT_S = 300  # a guard against a hung child, never a measure of speed

#: CodeCarbon's own ``EmissionsData`` fields, in its order: the columns of its emissions.csv
#: (CodeCarbon is installed with the test extras).
CODECARBON_COLUMNS = [f.name for f in dataclasses.fields(EmissionsData)]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def known_run(seconds: float = 0.2) -> wattprint.Measurement:
    meter = wattprint.EnergyMeter([FakeSensor(power_w=50.0)], country="DE")
    with meter.window("known") as w:
        time.sleep(seconds)
    meter.close()
    assert w.measurement is not None
    return w.measurement


def test_the_columns_are_codecarbons_in_its_order() -> None:
    assert list(cc.COLUMNS) == CODECARBON_COLUMNS
    assert cc.csv_text([]).splitlines() == [",".join(CODECARBON_COLUMNS)]
    row = cc.row_from_measurement(known_run(0.01))
    assert list(row.to_dict()) == CODECARBON_COLUMNS


def test_units_of_a_known_run_read_back_with_csv_and_pandas(tmp_path: Path) -> None:
    m = known_run()
    fp = m.footprint
    path = cc.append_rows(tmp_path / "emissions.csv", [cc.row_from_measurement(m)])
    header, rows = read_csv(path)
    assert header == CODECARBON_COLUMNS and len(rows) == 1
    row = rows[0]
    kwh = m.energy_j / 3.6e6
    assert number(row["energy_consumed"]) == pytest.approx(kwh, rel=1e-12)
    assert number(row["cpu_energy"]) == pytest.approx(kwh, rel=1e-12)  # the only component
    assert number(row["emissions"]) == pytest.approx(fp.co2_g / 1000, rel=1e-12)
    assert number(row["duration"]) == pytest.approx(m.duration_s, rel=1e-12)
    assert number(row["emissions_rate"]) == pytest.approx(fp.co2_g / 1000 / m.duration_s)
    assert number(row["cpu_power"]) == pytest.approx(50.0, rel=0.05)
    assert number(row["water_consumed"]) == pytest.approx(fp.water_l, rel=1e-12)
    assert number(row["pue"]) == fp.pue
    assert (row["country_name"], row["country_iso_code"]) == ("Germany", "DEU")
    assert row["codecarbon_version"] == wattprint.__version__  # the column keeps its name
    assert row["gpu_energy"] == row["gpu_power"] == row["ram_energy"] == ""  # not metered
    assert row["gpu_count"] == "0"
    assert row["tracking_mode"] == "machine" and row["on_cloud"] == "N"
    assert row["longitude"] == row["latitude"] == ""  # no network call finds them
    assert row["timestamp"].endswith("+00:00")
    from wattprint.sensors.estimate import installed_memory_bytes

    assert number(row["ram_total_size"]) == pytest.approx(installed_memory_bytes() / 2**30)

    pd = pytest.importorskip("pandas")
    df = pd.read_csv(path)
    assert list(df.columns) == CODECARBON_COLUMNS and len(df) == 1
    assert df["energy_consumed"][0] == pytest.approx(kwh, rel=1e-12)
    assert df["emissions"][0] == pytest.approx(fp.co2_g / 1000, rel=1e-12)
    assert df["cpu_power"][0] == pytest.approx(50.0, rel=0.05)
    assert math.isnan(df["gpu_energy"][0])
    assert pd.to_datetime(df["timestamp"][0]).tzinfo is not None


def test_a_second_run_is_appended_under_the_one_header(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    path.touch()  # an empty file is a new one: it gets the header
    cc.append_rows(path, [cc.row_from_measurement(known_run(0.01), project_name="a")])
    cc.append_rows(path, [cc.row_from_measurement(known_run(0.01), project_name="b")])
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines.count(",".join(CODECARBON_COLUMNS)) == 1
    _, rows = read_csv(path)
    assert [r["project_name"] for r in rows] == ["a", "b"]
    assert rows[0]["run_id"] != rows[1]["run_id"]
    pd = pytest.importorskip("pandas")
    assert list(pd.read_csv(path)["project_name"]) == ["a", "b"]


def test_a_file_with_another_header_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    other = "timestamp,project_name,run_id,duration,emissions\n2024-01-01,x,1,2.0,0.1\n"
    path.write_text(other)
    row = cc.row_from_measurement(known_run(0.01))
    for attempt in (lambda: cc.append_rows(path, [row]), lambda: cc.check_csv(path)):
        with pytest.raises(OutputError, match="header"):
            attempt()
    assert path.read_text() == other
    # the command refuses it before the program runs
    ran = tmp_path / "ran"
    proc = cli("measure", "--codecarbon-csv", str(path), "--", sys.executable, "-c",
               f"import pathlib; pathlib.Path({str(ran)!r}).touch()", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--codecarbon-csv" in proc.stderr and "header" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not ran.exists() and path.read_text() == other


def test_measure_appends_codecarbon_rows_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    program = [sys.executable, "-c", "sum(range(10**6))"]
    # An empty powercap tree: no counter here, the CPU and RAM are estimated (from the TDP).
    options = ["--country", "FR", "--cpu-tdp", "100", "--powercap-root", str(tmp_path)]
    outs = []
    for n in range(2):
        out = tmp_path / f"m{n}.json"
        proc = cli("measure", *options, "--out", str(out), "--codecarbon-csv", str(path),
                   "--", *program, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        import json

        outs.append(json.loads(out.read_text())["measurement"])
    header, rows = read_csv(path)
    assert header == CODECARBON_COLUMNS and len(rows) == 2
    for row, m in zip(rows, outs, strict=True):
        fp = m["footprint"]
        assert row["project_name"] == "measure"
        assert number(row["energy_consumed"]) == pytest.approx(m["energy_j"] / 3.6e6, rel=1e-12)
        assert number(row["emissions"]) == pytest.approx(fp["co2_g"] / 1000, rel=1e-12)
        assert number(row["duration"]) == pytest.approx(m["duration_s"], rel=1e-12)
        cpu_j = m["components"]["cpu"]["energy_j"]
        assert number(row["cpu_energy"]) == pytest.approx(cpu_j / 3.6e6, rel=1e-12)
        assert number(row["cpu_power"]) == pytest.approx(cpu_j / m["duration_s"], rel=1e-9)
        assert (row["country_iso_code"], row["country_name"]) == ("FRA", "France")
        assert row["tracking_mode"] == "machine"
    pd = pytest.importorskip("pandas")
    assert len(pd.read_csv(path)) == 2


def test_export_codecarbon_from_a_store_written_by_measure(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    program = [sys.executable, "-c", "sum(range(10**5))"]
    for _ in range(2):
        proc = cli("measure", "--grade", "--db", str(db), "--intensity", "300", "--cpu-tdp", "50",
                   "--powercap-root", str(tmp_path), "--", *program, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    proc = cli("export", "--format", "codecarbon", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "emissions.csv"
    out.write_text(proc.stdout)
    header, rows = read_csv(out)
    assert header == CODECARBON_COLUMNS and len(rows) == 2
    with Store(db, read_only=True) as store:
        runs = store.runs()
    for row, run in zip(rows, runs, strict=True):
        assert row["project_name"] == "measure"
        assert number(row["energy_consumed"]) == pytest.approx(run.energy_j / 3.6e6, rel=1e-12)
        assert number(row["emissions"]) == pytest.approx(run.co2_g / 1000, rel=1e-12)
        assert number(row["duration"]) == pytest.approx(run.duration_s, rel=1e-12)
        assert row["run_id"] == cc.record_run_id(run.sweep_id, run.cell_key)
        assert row["country_iso_code"] == "" and row["os"] == ""  # not recorded: empty
    # --out writes the same file; the other formats are as they were
    again = tmp_path / "again.csv"
    proc = cli("export", "--format", "codecarbon", "--db", str(db), "--out", str(again),
               cwd=tmp_path)
    assert proc.returncode == 0 and again.read_text() == out.read_text()
    plain = cli("export", "--db", str(db), cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.startswith("id,sweep_id,cell_key,")
    bad = cli("export", "--format", "codecarbon", "--split-phases", "--db", str(db),
              cwd=tmp_path)
    assert bad.returncode == 2 and "--format codecarbon" in bad.stderr
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(again)
    assert list(df.columns) == CODECARBON_COLUMNS and len(df) == 2


def test_the_decorator_returns_the_result_and_writes_the_row_and_the_run(
        tmp_path: Path) -> None:
    path, db = tmp_path / "out" / "runs.csv", tmp_path / "runs.db"
    path.parent.mkdir()

    @wattprint.track_emissions(project_name="training", country="DE", output_dir=path.parent,
                               output_file=path.name, db=db,
                               sensors=[FakeSensor(power_w=50.0)])
    def train(seconds: float) -> str:
        time.sleep(seconds)
        return "trained"

    assert train.__name__ == "train"
    assert train(0.1) == "trained"
    _, rows = read_csv(path)
    assert len(rows) == 1 and rows[0]["project_name"] == "training"
    assert number(rows[0]["cpu_power"]) == pytest.approx(50.0, rel=0.05)
    assert rows[0]["country_iso_code"] == "DEU"
    with Store(db, read_only=True) as store:
        (run,) = store.runs()
        (sweep,) = store.sweeps()
    assert run.ok and run.energy_j is not None
    assert number(rows[0]["energy_consumed"]) == pytest.approx(run.energy_j / 3.6e6)
    assert rows[0]["run_id"] == cc.record_run_id(run.sweep_id or "", run.cell_key or "")
    assert sweep["project"] == "training"
    # an export of the store says what the CSV says of the same run
    with Store(db, read_only=True) as store:
        exported = cc.export_text(store).splitlines()[1].split(",")
    assert exported[:3] == [rows[0]["timestamp"], "training", rows[0]["run_id"]]
    assert dict(zip(CODECARBON_COLUMNS, exported, strict=True))["os"] == rows[0]["os"] != ""


def test_an_exception_propagates_and_the_measurement_up_to_it_is_written(
        tmp_path: Path) -> None:
    path, db = tmp_path / "emissions.csv", tmp_path / "runs.db"

    @wattprint.track_emissions(output_file=path, db=db, sensors=[FakeSensor(power_w=50.0)])
    def fails() -> None:
        time.sleep(0.05)
        raise ValueError("out of data")

    with pytest.raises(ValueError, match="out of data"):
        fails()
    _, rows = read_csv(path)
    assert len(rows) == 1 and number(rows[0]["energy_consumed"])
    assert number(rows[0]["duration"]) == pytest.approx(0.05, abs=0.04)
    assert rows[0]["project_name"] == "fails"  # the function's name by default
    with Store(db, read_only=True) as store:
        (run,) = store.runs()
    assert run.status == "failed" and run.error == "ValueError: out of data"
    assert run.energy_j is not None and run.energy_j > 0


def test_the_decorator_bare_and_with_save_to_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    @wattprint.track_emissions
    def bare(x: int) -> int:
        return x + 1

    assert bare(1) == 2
    assert not list(tmp_path.iterdir())  # no file asked for, none written

    @wattprint.track_emissions(save_to_file=True, sensors=[FakeSensor(power_w=5.0)])
    def saved() -> int:
        return 3

    assert saved() == 3 and saved() == 3
    _, rows = read_csv(tmp_path / "emissions.csv")  # CodeCarbon's default name
    assert len(rows) == 2


def test_the_decorator_refuses_a_foreign_file_before_the_function_runs(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    path.write_text("a,b\n1,2\n")
    calls: list[int] = []

    @wattprint.track_emissions(output_file=path, sensors=[FakeSensor(power_w=5.0)])
    def work() -> None:
        calls.append(1)

    with pytest.raises(OutputError, match="header"):
        work()
    assert calls == [] and path.read_text() == "a,b\n1,2\n"
    with pytest.raises(ConfigError, match="country"):
        wattprint.track_emissions(country="DE", country_iso_code="FR")
    with pytest.raises(ConfigError, match="meter"):
        wattprint.track_emissions(meter=wattprint.EnergyMeter([FakeSensor(power_w=1.0)]),
                                  country="DE")


def _partial_meter() -> wattprint.EnergyMeter:
    return wattprint.EnergyMeter([FakeSensor(power_w=20.0),
                                  FakeSensor(power_w=30.0, component="ram"),
                                  FakeSensor(power_w=50.0, component="gpu:0",
                                             fail_after_s=0.05)], country="DE")


def _assert_partial_row(row: dict[str, Any]) -> None:
    assert row["tracking_mode"] == "machine (partial)"
    for column in ("energy_consumed", "emissions", "emissions_rate", "water_consumed",
                   "gpu_energy", "gpu_power", "gpu_count"):
        assert row[column] in ("", None), column  # no plausible number for what failed
    assert float(row["cpu_energy"]) > 0 and float(row["ram_energy"]) > 0  # measured whole
    assert float(row["cpu_power"]) == pytest.approx(20.0, rel=0.05)
    assert float(row["duration"]) > 0


def test_a_partial_run_is_recognisable_and_has_no_made_up_figures(tmp_path: Path) -> None:
    meter = _partial_meter()
    with meter.window("partial") as w:
        time.sleep(0.2)
    m = w.measurement
    assert m is not None and m.partial and "gpu:0" not in m.components
    path = tmp_path / "emissions.csv"
    cc.append_rows(path, [cc.row_from_measurement(m),
                          cc.row_from_record(RunRecord.from_measurement(m))])
    _, rows = read_csv(path)
    for row in rows:
        _assert_partial_row(row)
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(path)
    assert df["energy_consumed"].isna().all() and not df["cpu_energy"].isna().any()

    # the same through the decorator
    out = tmp_path / "decorated.csv"

    @wattprint.track_emissions(output_file=out, meter=_partial_meter())
    def work() -> str:
        time.sleep(0.2)
        return "done"

    assert work() == "done"
    _, rows = read_csv(out)
    _assert_partial_row(rows[0])


def test_the_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(readme_block("codecarbon"), namespace)
    assert namespace["loss"] == sum(i * i for i in range(300_000))
    header, rows = read_csv(tmp_path / "emissions.csv")
    assert header == CODECARBON_COLUMNS and rows == [namespace["row"]]
    assert rows[0]["project_name"] == "training" and float(rows[0]["energy_consumed"]) > 0
    with Store(tmp_path / "wattprint.db", read_only=True) as store:
        (run,) = store.runs()
    assert run.ok and run.model_name is not None and run.model_name.endswith(".train")


def test_the_decorator_keeps_import_light() -> None:
    code = ("import sys, wattprint\n"
            "@wattprint.track_emissions(country='DE', output_file='never.csv')\n"
            "def f():\n    pass\n"
            "print(' '.join(n for n in ('pandas', 'sqlite3', 'typer', 'rich', 'torch') "
            "if n in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT_S)
    assert done.stdout.strip() == ""


def test_codecarbon_appends_its_own_rows_to_a_file_wattprint_wrote(tmp_path: Path) -> None:
    """CodeCarbon's file writer takes wattprint's emissions.csv as its own (a header it did
    not accept would make it back the file up and start a new one), and pandas reads both
    rows under CodeCarbon's columns."""
    meter = wattprint.EnergyMeter([FakeSensor(power_w=50.0)], country="DE")
    with meter.window("w") as w:
        time.sleep(0.02)
    meter.close()
    assert w.measurement is not None
    path = tmp_path / "emissions.csv"
    cc.append_rows(path, [cc.row_from_measurement(w.measurement, project_name="ours")])
    theirs = EmissionsData(**{
        **{f.name: 0.0 for f in dataclasses.fields(EmissionsData)
           if f.type in ("float", float)},
        **{f.name: "x" for f in dataclasses.fields(EmissionsData) if f.type in ("str", str)},
        "project_name": "theirs", "run_id": "r2", "timestamp": "2026-11-30T12:00:00"})
    FileOutput("emissions.csv", str(tmp_path)).out(theirs, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emissions.csv"]  # no backup
    import pandas as pd

    df = pd.read_csv(path)
    assert list(df.columns) == CODECARBON_COLUMNS
    assert list(df["project_name"]) == ["ours", "theirs"]
    fp = w.measurement.footprint
    assert df["energy_consumed"][0] == pytest.approx(w.measurement.energy_j / 3.6e6)
    assert df["emissions"][0] == pytest.approx(fp.co2_g / 1000)
    assert df["wue"][0] == pytest.approx(fp.wue_l_per_kwh)
