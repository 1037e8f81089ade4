"""Distributed jobs: each process reads what it owns, the job counts each part once.

The torchrun tests start a real two-process job (gloo backend, on the CPU) with FakeSensors
standing in for one host (cpu, ram) and two GPUs; ``tests/dist_job.py`` is the job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from readme_blocks import readme_block

from wattprint import EnergyMeter, Measurement
from wattprint.distributed import Part, combine, detect_rank, own
from wattprint.errors import ConfigError, WindowError
from wattprint.footprint import Site
from wattprint.measurement import ComponentEnergy
from wattprint.sensors import FakeSensor, Source

JOB = Path(__file__).with_name("dist_job.py")
POWER_W = {"cpu": 10.0, "ram": 3.0, "gpu:0": 100.0, "gpu:1": 200.0}


def fakes() -> list[FakeSensor]:
    return [FakeSensor(w, component=c, name=f"fake-{c}") for c, w in POWER_W.items()]


def torchrun_env(rank: int, local_rank: int, world: int = 2) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world)}


# -- who reads what --------------------------------------------------------------------------


def test_a_process_outside_a_job_has_no_rank() -> None:
    assert detect_rank(environ={}) is None
    assert detect_rank(environ={"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}) is None
    with pytest.raises(ConfigError, match="init_process_group"):
        detect_rank(environ={}, required=True)


@pytest.mark.parametrize(
    ("env", "reader", "gpus"),
    [
        (torchrun_env(0, 0), True, (0,)),
        (torchrun_env(1, 1), False, (1,)),
        (torchrun_env(9, 1, 16), False, (1,)),  # second process of the second node
        (torchrun_env(8, 0, 16), True, (0,)),  # first process of the second node
        ({"RANK": "3", "WORLD_SIZE": "4", "SLURM_LOCALID": "0"}, True, (0,)),
        ({"RANK": "3", "WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "3"}, False, (3,)),
    ],
)
def test_the_host_is_read_by_its_first_process_and_each_gpu_by_its_own(
    env: dict[str, str], reader: bool, gpus: tuple[int, ...]
) -> None:
    rank = detect_rank(environ=env, host_id="h")
    assert rank is not None
    assert (rank.host_reader, rank.gpus, rank.host) == (reader, gpus, "h")
    kept = {s.component for s in own(fakes(), rank)}
    expected = {f"gpu:{g}" for g in gpus if f"gpu:{g}" in POWER_W}
    assert kept == ({"cpu", "ram"} if reader else set()) | expected


def test_a_process_that_sees_one_gpu_owns_it_and_gpus_can_be_named() -> None:
    env = torchrun_env(3, 3, 4)
    rank = detect_rank(environ=env, visible_gpus=[0])  # a launcher gave it one GPU
    assert rank is not None and rank.gpus == (0,)
    rank = detect_rank(environ=env, visible_gpus=[0, 1, 2, 3], gpus=[2, 3])
    assert rank is not None and rank.gpus == (2, 3)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RANK": "1", "WORLD_SIZE": "2"}, "LOCAL_RANK"),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "one"}, "LOCAL_RANK='one'"),
        ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK='x'"),
    ],
)
def test_a_launcher_environment_that_cannot_say_is_one_clear_error(
    env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        detect_rank(environ=env)


def test_the_meter_of_each_torchrun_process_reads_only_what_it_owns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in torchrun_env(1, 1).items():
        monkeypatch.setenv(key, value)
    second = EnergyMeter(fakes(), country="FR")
    assert second.rank is not None and not second.rank.host_reader
    assert second.components == ("gpu:1",)
    everything = EnergyMeter(fakes(), country="FR", distributed=False)
    assert everything.rank is None and len(everything.components) == 4
    monkeypatch.setenv("LOCAL_RANK", "5")  # owns no GPU of these: reads nothing, still works
    idle = EnergyMeter(fakes(), country="FR")
    assert idle.components == ()
    with idle.window() as w:
        pass
    assert w.measurement is not None
    assert (w.measurement.energy_j, dict(w.measurement.components)) == (0.0, {})
    assert not w.measurement.partial
    with pytest.raises(ConfigError, match="init_process_group"):
        EnergyMeter(fakes(), country="FR", sync="dist")  # no process group here
    with pytest.raises(ConfigError, match="sync"):
        EnergyMeter(fakes(), country="FR", sync="cuda")


# -- one job from the processes' measurements ----------------------------------------------------


def measurement(energy: dict[str, float], *, start_s: float = 0.0, seconds: float = 1.0,
                errors: tuple[str, ...] = (), country: str = "FR") -> Measurement:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=start_s)
    comps = {c: ComponentEnergy(j, Source.FAKE, False, sensors=(f"fake-{c}",))
             for c, j in energy.items()}
    return Measurement("step", t0, t0 + timedelta(seconds=seconds), seconds,
                       sum(energy.values()), comps, Site(country=country).resolve(),
                       partial=bool(errors), errors=errors)


def test_the_job_has_a_component_per_host_and_device_and_their_sum() -> None:
    job = combine([
        Part(1, "a", measurement({"gpu:1": 200.0}, start_s=0.1)),
        Part(0, "a", measurement({"cpu": 10.0, "ram": 3.0, "gpu:0": 100.0})),
        Part(2, "b", measurement({"cpu": 12.0, "gpu:0": 90.0}, seconds=1.5)),
    ])
    assert {k: c.energy_j for k, c in job.components.items()} == {
        "a/cpu": 10.0, "a/ram": 3.0, "a/gpu:0": 100.0, "a/gpu:1": 200.0,
        "b/cpu": 12.0, "b/gpu:0": 90.0,
    }
    assert job.energy_j == pytest.approx(415.0)
    assert job.duration_s == pytest.approx(1.5)  # earliest start to latest end
    assert all(c.source is Source.FAKE and not c.measured for c in job.components.values())
    assert not job.partial and job.footprint.co2_g > 0


def test_a_part_counted_twice_is_refused() -> None:
    parts = [Part(0, "a", measurement({"cpu": 10.0})), Part(1, "a", measurement({"cpu": 10.0}))]
    with pytest.raises(WindowError, match="a/cpu is measured by rank 0 and by rank 1"):
        combine(parts)


def test_a_partial_process_makes_the_job_partial_and_says_where() -> None:
    job = combine([
        Part(0, "a", measurement({"cpu": 10.0})),
        Part(1, "a", measurement({}, errors=("fake-gpu:1: simulated failure",))),
    ])
    assert job.partial
    assert job.errors == ("rank 1 (a): fake-gpu:1: simulated failure",)
    assert set(job.components) == {"a/cpu"}


def test_processes_at_different_sites_are_noted() -> None:
    job = combine([Part(0, "a", measurement({"cpu": 1.0})),
                   Part(1, "b", measurement({"cpu": 1.0}, country="DE"))])
    assert any("sites differ" in n for n in job.notes)


def test_gather_outside_a_job_is_this_process_in_the_same_shape() -> None:
    meter = EnergyMeter([FakeSensor(5.0, component="cpu")], country="FR", distributed=False)
    with meter.window() as w:
        pass
    job = meter.gather()
    assert job is not None and w.measurement is not None
    (key,) = job.components
    assert key.endswith("/cpu") and job.energy_j == w.measurement.energy_j


# -- a real torchrun job -----------------------------------------------------------------------


def temp_env(folder: Path) -> dict[str, str]:
    """The environment with TMPDIR in ``folder``: torchrun leaves a torchelastic_* folder in
    the temporary directory, which then goes with the test's own."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(folder / "tmp")}


def run_job(out: Path, *extra: str, wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [*wrap, sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", "2", str(JOB), str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=temp_env(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def load(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    job = json.loads((out / "job.json").read_text())
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    return job, ranks


@pytest.mark.slow
def test_torchrun_on_one_host_counts_the_host_and_each_gpu_once(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    run_job(tmp_path)
    job, ranks = load(tmp_path)
    assert ranks[0]["components"] == ["cpu", "gpu:0", "ram"]
    assert ranks[1]["components"] == ["gpu:1"]
    assert set(job["components"]) == {"node/cpu", "node/ram", "node/gpu:0", "node/gpu:1"}
    own_figures = {f"node/{c}": e["energy_j"] for r in ranks
                   for c, e in r["measurement"]["components"].items()}
    assert {k: c["energy_j"] for k, c in job["components"].items()} == own_figures
    assert job["energy_j"] == pytest.approx(sum(own_figures.values()))
    # sync="dist": rank 1 slept half as long, but its window ended at the same barrier.
    durations = [r["measurement"]["duration_s"] for r in ranks]
    assert min(durations) >= 0.39
    for key, watts in POWER_W.items():
        rank = ranks[1] if key == "gpu:1" else ranks[0]
        seconds = rank["measurement"]["duration_s"]
        assert job["components"][f"node/{key}"]["energy_j"] == pytest.approx(watts * seconds)
    assert not job["partial"] and not job["measured"]


@pytest.mark.slow
def test_torchrun_as_two_hosts_counts_both_hosts_and_a_failure_travels(
    tmp_path: Path,
) -> None:
    """Two host ids on one machine stand for two nodes; rank 1's GPU sensor fails inside the
    window: the job is partial, says which rank and host, and leaves that GPU out."""
    pytest.importorskip("torch.distributed")
    run_job(tmp_path, "--hosts", "--fail")
    job, ranks = load(tmp_path)
    assert ranks[0]["rank"]["host"] == "node-0" and ranks[1]["rank"]["host"] == "node-1"
    assert ranks[1]["components"] == ["cpu", "gpu:1", "ram"]
    assert set(job["components"]) == {"node-0/cpu", "node-0/ram", "node-0/gpu:0",
                                      "node-1/cpu", "node-1/ram"}
    cpu = [c["energy_j"] for k, c in job["components"].items() if k.endswith("/cpu")]
    assert len(cpu) == 2 and all(e == pytest.approx(10.0 * 0.4, rel=0.3) for e in cpu)
    assert ranks[1]["measurement"]["partial"] and job["partial"]
    assert any(e.startswith("rank 1 (node-1): fake-gpu:1") for e in job["errors"])


@pytest.mark.slow
def test_the_readme_example_runs_under_torchrun(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    script = tmp_path / "train.py"
    script.write_text(readme_block("distributed"))
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=temp_env(tmp_path),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if " J over " in ln]  # rank 0 only
    host_components = [c for c in line.split(" J over ")[1].split("'") if "/" in c]
    assert host_components and all(c.endswith(("/cpu", "/ram")) for c in host_components)
    assert len({c.split("/")[0] for c in host_components}) == 1  # one host, read once


@pytest.mark.slow
def test_wattprint_measure_around_torchrun_meters_the_whole_job(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    report = tmp_path / "measure.json"
    run_job(tmp_path / "job", wrap=(sys.executable, "-m", "wattprint", "measure", "--country",
                                    "FR", "--out", str(report), "--"))
    document = json.loads(report.read_text())
    assert document["exit_code"] == 0
    measured = document["measurement"]
    job, _ = load(tmp_path / "job")
    # The machine, metered once around the whole job: the job's windows lie inside it.
    assert measured["duration_s"] > job["duration_s"]
    assert measured["components"] and not any("/" in c for c in measured["components"])
    assert measured["energy_j"] == pytest.approx(
        sum(c["energy_j"] for c in measured["components"].values()))
