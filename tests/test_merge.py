"""``wattprint merge``: the node files of one job summed, each machine once.

The node files are real ``wattprint measure --out`` reports. One run measures a second one
inside it, so the two windows overlap as the nodes of one job do; the inner file's ``host`` is
then set to another machine's, as if it had been measured there.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wattprint.cli import app
from wattprint.errors import ConfigError
from wattprint.merge import REPORT_FORMAT, NodeReport, merge_reports, this_host

WATTPRINT = [sys.executable, "-m", "wattprint"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(0.2)"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node-a.json (in France, measured inside node-b's window), node-b.json (in Germany) and,
    measured after both ended, later.json."""
    folder = tmp_path_factory.mktemp("nodes")
    a, b, later = folder / "node-a.json", folder / "node-b.json", folder / "later.json"
    r = run("measure", "--country", "DE", "--out", str(b), "--", *WATTPRINT, "measure",
            "--country", "FR", "--out", str(a), "--", *SLEEP)
    assert r.returncode == 0, r.stderr
    r = run("measure", "--out", str(later), "--", *SLEEP)
    assert r.returncode == 0, r.stderr
    data = load(a)
    data["host"] = {"hostname": "node-a", "machine_id": "a" * 32}
    save(a, data)
    data = load(later)
    data["host"] = {"hostname": "node-c", "machine_id": "c" * 32}
    save(later, data)
    return folder


@pytest.fixture
def nodes(measured: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Fresh copies of node-a.json and node-b.json, for a test to edit."""
    copies = []
    for name in ("node-a.json", "node-b.json"):
        copy = tmp_path / name
        copy.write_bytes((measured / name).read_bytes())
        copies.append(copy)
    return copies[0], copies[1]


def test_measure_records_the_host_merge_needs(nodes: tuple[Path, Path]) -> None:
    data = load(nodes[1])
    here = this_host()
    assert data["host"] == {"hostname": here.hostname, "machine_id": here.machine_id,
                            "host_id": None}
    assert data["report_format"] == REPORT_FORMAT
    assert {"command", "command_line", "exit_code", "sensors", "measurement"} <= set(data)


def test_the_job_is_the_sum_of_its_nodes(nodes: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = (load(p) for p in nodes)
    job_file = tmp_path / "job.json"
    r = run("merge", str(nodes[0]), str(nodes[1]), "--out", str(job_file), "--json")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert load(job_file) == job  # --out and --json carry the same report
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["job.json", "node-a.json", "node-b.json"]  # no temporary file left
    host_b = b["host"]["hostname"]
    expected = {f"node-a/{k}": v for k, v in a["measurement"]["components"].items()}
    expected |= {f"{host_b}/{k}": v for k, v in b["measurement"]["components"].items()}
    assert job["components"] == expected  # each component once, exactly as measured
    ma, mb = a["measurement"], b["measurement"]
    assert job["energy_j"] == ma["energy_j"] + mb["energy_j"]
    assert job["energy_j"] == pytest.approx(sum(c["energy_j"] for c in expected.values()))
    fa, fb = ma["footprint"], mb["footprint"]
    assert fa["location"] != fb["location"]  # France and Germany: each at its own intensity
    assert fa["intensity_g_per_kwh"] != fb["intensity_g_per_kwh"]
    assert job["footprint"]["co2_g"] == fa["co2_g"] + fb["co2_g"]
    assert job["footprint"]["water_l"] == fa["water_l"] + fb["water_l"]
    assert [n["footprint"] for n in job["nodes"]] == [fa, fb]
    assert job["start"] == min(ma["start"], mb["start"]) == mb["start"]
    assert job["end"] == max(ma["end"], mb["end"]) == mb["end"]
    assert job["measured"] is False and job["partial"] is False and job["errors"] == []


def test_the_report_on_stderr_names_each_node(nodes: tuple[Path, Path]) -> None:
    r = CliRunner().invoke(app, ["merge", str(nodes[0]), str(nodes[1])])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "node-a/cpu" in r.stderr and "FR" in r.stderr and "DE" in r.stderr


def test_the_same_machine_twice_is_refused(nodes: tuple[Path, Path], tmp_path: Path) -> None:
    twin = tmp_path / "twin.json"
    twin.write_bytes(nodes[1].read_bytes())
    job_file = save(tmp_path / "job.json", {"old": True})
    r = run("merge", str(nodes[0]), str(nodes[1]), str(twin), "--out", str(job_file))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "node-b.json" in lines[0] and "twin.json" in lines[0] and "twice" in lines[0]
    assert load(job_file) == {"old": True}  # a refused merge leaves --out as it was


def test_the_same_machine_id_under_another_name_is_refused(nodes: tuple[Path, Path]) -> None:
    data = load(nodes[1])
    data["host"] = {"hostname": "renamed", "machine_id": "a" * 32}
    save(nodes[1], data)
    with pytest.raises(ConfigError, match=r"same machine.*machine id"):
        merge_reports(nodes)


def test_a_file_given_twice_is_refused(nodes: tuple[Path, Path]) -> None:
    r = CliRunner().invoke(app, ["merge", str(nodes[0]), str(nodes[0])])
    assert r.exit_code == 2
    assert "given twice" in r.stderr and "node-a.json" in r.stderr


def test_a_partial_node_makes_the_job_partial(nodes: tuple[Path, Path]) -> None:
    data = load(nodes[0])
    data["measurement"]["partial"] = True
    data["measurement"]["errors"] = ["nvml:0: the GPU fell off the bus"]
    save(nodes[0], data)
    job = merge_reports(nodes)
    assert job.partial
    assert job.errors == ("node-a: nvml:0: the GPU fell off the bus",)
    assert job.to_dict()["nodes"][0]["partial"] is True


def test_measured_only_when_every_component_is(nodes: tuple[Path, Path]) -> None:
    for path in nodes:
        data = load(path)
        for c in data["measurement"]["components"].values():
            c["measured"] = True
        save(path, data)
    assert merge_reports(nodes).measured
    data = load(nodes[1])
    next(iter(data["measurement"]["components"].values()))["measured"] = False
    save(nodes[1], data)
    assert not merge_reports(nodes).measured


def test_windows_that_do_not_overlap_are_not_one_job(nodes: tuple[Path, Path],
                                                     measured: Path) -> None:
    later = measured / "later.json"
    r = CliRunner().invoke(app, ["merge", str(nodes[0]), str(later)])
    assert r.exit_code == 2
    assert "not one job" in r.stderr and "--allow-disjoint" in r.stderr
    job = merge_reports([nodes[0], later], allow_disjoint=True)
    assert job.energy_j == (NodeReport.read(nodes[0]).measurement.energy_j
                            + NodeReport.read(later).measurement.energy_j)
    assert any("do not all overlap" in n for n in job.notes)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda d: "{not json", "bad JSON"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "host"}), "no 'host'"),
    (lambda d: json.dumps({**d, "report_format": REPORT_FORMAT + 1}), "newer"),
    (lambda d: json.dumps({**d, "measurement": {**d["measurement"], "energy_j": "a lot"}}),
     "'energy_j'"),
    (lambda d: json.dumps([d]), "no 'measurement'"),
    (lambda d: json.dumps({**d, "measurement": {**d["measurement"],
                                                "energy_j": d["measurement"]["energy_j"] + 1}}),
     "not the sum of its components"),
    (lambda d: json.dumps({**d, "host": {**d["host"], "host_id": 7}}), "'host_id'"),
])
def test_a_file_that_is_not_a_report_is_refused(nodes: tuple[Path, Path], edit: Any,
                                                reason: str) -> None:
    nodes[1].write_text(edit(load(nodes[1])))
    r = CliRunner().invoke(app, ["merge", str(nodes[0]), str(nodes[1])])
    assert r.exit_code == 2
    assert "node-b.json" in r.stderr and reason in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_the_sum_is_exact_for_many_nodes(nodes: tuple[Path, Path], tmp_path: Path) -> None:
    base = load(nodes[1])
    paths = []
    for i in range(5):
        data = json.loads(json.dumps(base))
        data["host"] = {"hostname": f"n{i}", "machine_id": None}
        data["measurement"]["components"]["cpu"]["energy_j"] = 0.1 * (i + 1)
        data["measurement"]["energy_j"] = math.fsum(
            c["energy_j"] for c in data["measurement"]["components"].values())
        paths.append(save(tmp_path / f"n{i}.json", data))
    job = merge_reports(paths)
    cpu = [job.components[f"n{i}/cpu"].energy_j for i in range(5)]
    assert cpu == [0.1 * (i + 1) for i in range(5)]
    assert job.energy_j == math.fsum(NodeReport.read(p).measurement.energy_j for p in paths)
    assert len(job.components) == 5 * len(base["measurement"]["components"])


def test_a_host_id_tells_cloned_machines_apart(nodes: tuple[Path, Path], tmp_path: Path) -> None:
    """Cloned VMs share a machine id: refused as one machine, until each is measured with its
    own --host-id, which then names it in the job."""
    clone = load(nodes[0])
    clone["host"]["machine_id"] = load(nodes[1])["host"]["machine_id"] or "b" * 32
    base = load(nodes[1])
    base["host"]["machine_id"] = clone["host"]["machine_id"]
    a, b = save(tmp_path / "vm-a.json", clone), save(tmp_path / "vm-b.json", base)
    with pytest.raises(ConfigError, match=r"machine id.*--host-id"):
        merge_reports([a, b])
    r = run("measure", "--host-id", "vm-1", "--out", str(tmp_path / "m.json"), "--", *SLEEP)
    assert r.returncode == 0, r.stderr
    assert load(tmp_path / "m.json")["host"]["host_id"] == "vm-1"
    clone["host"]["host_id"], base["host"]["host_id"] = "vm-1", "vm-2"
    job = merge_reports([save(a, clone), save(b, base)])
    assert {name.split("/")[0] for name in job.components} == {"vm-1", "vm-2"}


def test_one_host_id_in_two_files_is_one_machine(nodes: tuple[Path, Path]) -> None:
    """Containers on one machine read the same counters: the same id makes merge refuse."""
    for path in nodes:
        data = load(path)
        data["host"]["host_id"] = "rack-3-node-7"
        save(path, data)
    with pytest.raises(ConfigError, match="host 'rack-3-node-7'"):
        merge_reports(nodes)


def test_a_node_whose_command_failed_gives_the_job_its_exit_code(
    nodes: tuple[Path, Path],
) -> None:
    data = load(nodes[1])
    data["exit_code"] = 3
    save(nodes[1], data)
    job = merge_reports(nodes)
    assert job.exit_code == 3 and job.to_dict()["exit_code"] == 3
    assert any("exited with code 3" in n for n in job.notes)
    r = CliRunner().invoke(app, ["merge", str(nodes[0]), str(nodes[1])])
    assert r.exit_code == 0  # the merge itself worked
    assert "exited with code 3" in r.stderr
    assert merge_reports([nodes[0]]).exit_code == 0
