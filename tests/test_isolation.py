"""A cell that hangs, or whose process dies, does not stop the sweep; SIGTERM is like Ctrl-C.

The sweeps with a model that never returns or that kills its process run in a child Python (a
sweep that hangs must not hang the tests), with models whose format the child registers.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import wattprint
from wattprint import FakeSensor
from wattprint.errors import ConfigError
from wattprint.meter import EnergyMeter
from wattprint.sweep import runner
from wattprint.sweep.config import load_config
from wattprint.sweep.runner import plan_cells
from wattprint.workloads import registry
from wattprint.workloads.model import Model

WATTPRINT = [sys.executable, "-m", "wattprint"]
TIMEOUT = "timed out after 4 s (monitoring.cell_timeout_s)"

#: A model format for the child sweeps: ``.scripted`` files load as a model that predicts
#: zeros, except that the first prediction of the sweep (a marker file tells) does ``behaviour``.
SCRIPTED = '''
import os, signal, time
from pathlib import Path

import numpy as np

import wattprint
from wattprint.workloads.model import Model


class Scripted(Model):
    framework = "custom"

    def __init__(self, path, behaviour, marker):
        self.path = Path(path)
        self.behaviour = behaviour
        self.marker = Path(marker)
        self.num_parameters = 12
        self.size_bytes = 100

    def predict(self, batch):
        if self.behaviour != "ok" and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            if self.behaviour == "hang":
                while True:
                    time.sleep(0.5)
            if self.behaviour == "kill":  # what the out-of-memory killer does
                os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros((len(batch), 3))


def load(path, *, task, trust, **options):
    return Scripted(path, options.get("behaviour", "ok"), options.get("marker", "-"))


wattprint.register_format(".scripted", load)
'''

#: A torch network whose forward never returns while it is exported to ONNX.
HANGS_ON_EXPORT = '''
import time

import torch
from torch import nn


class HangsOnExport(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            while True:
                time.sleep(0.5)
        return self.fc(x)
'''

#: The child: run the sweep of ``config.json`` with a fake meter, print the stored rows.
SWEEP = '''
import json, sys, time
import wattprint
from wattprint import FakeSensor
from wattprint.meter import EnergyMeter

config = json.loads(open(sys.argv[1]).read())
started = time.monotonic()
report = wattprint.Benchmark(config).run(
    meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]), progress=False)
print(json.dumps({"runs": report["runs"], "wall_s": time.monotonic() - started}, default=str))
'''


def _child_sweep(tmp_path: Path, config: dict[str, Any], *,
                 preamble: str = "") -> dict[str, Any]:
    """Run ``config`` in a child Python that first runs ``preamble`` and registers
    ``.scripted``; the stored rows by cell key, and the sweep's wall time."""
    (tmp_path / "sweep_child.py").write_text(
        textwrap.dedent(preamble) + SCRIPTED + SWEEP)
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH"))
                                        if p)
    try:
        proc = subprocess.run([sys.executable, str(tmp_path / "sweep_child.py"),
                               str(tmp_path / "config.json")], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the sweep hung")
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = {r["cell_key"]: r for r in result["runs"]}
    assert len(runs) == len(result["runs"])
    return {"runs": runs, "wall_s": result["wall_s"]}


def _scripted(tmp_path: Path, name: str, behaviour: str = "ok") -> dict[str, Any]:
    path = tmp_path / f"{name}.scripted"
    path.write_text("weights")
    return {"name": name, "path": str(path), "task": "classification",
            "options": {"behaviour": behaviour, "marker": str(tmp_path / f"{name}.marker")}}


def _config(tmp_path: Path, models: list[dict[str, Any]], **monitoring: Any) -> dict[str, Any]:
    return {
        "project": "isolation",
        "models": models,
        "datasets": [{"name": "iris"}],
        "monitoring": {"warmup": 0, "repetitions": 2, **monitoring},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }


def test_cell_timeout_setting() -> None:
    base = {"project": "p", "models": [{"name": "m", "source": "sklearn:LogisticRegression"}],
            "datasets": [{"name": "iris"}]}
    assert load_config(base).monitoring.cell_timeout_s == 1800
    week = 7 * 24 * 3600
    assert load_config({**base, "monitoring": {"cell_timeout_s": week}}).monitoring \
        .cell_timeout_s == week
    for bad in (0, -1, week + 1):
        with pytest.raises(ConfigError, match=r"monitoring\.cell_timeout_s"):
            load_config({**base, "monitoring": {"cell_timeout_s": bad}})


def test_the_time_limit_is_not_part_of_the_sweep_id() -> None:
    from wattprint.sweep.config import config_hash

    base = {"project": "p", "models": [{"name": "m", "source": "sklearn:LogisticRegression"}],
            "datasets": [{"name": "iris"}]}
    longer = {**base, "monitoring": {"cell_timeout_s": 7200}}
    # A sweep stopped by the time limit resumes under a longer one.
    assert config_hash(load_config(longer)) == config_hash(load_config(base))
    # A store written before the limit existed keeps its sweep ids: this config, with the
    # sampling rate that was the default then, hashed so before.
    then = {**base, "monitoring": {"frequency_hz": 10.0, "cell_timeout_s": 60}}
    assert config_hash(load_config(then)) == "77b920d3826c6e14"


def test_a_cell_that_never_returns_is_stopped_and_the_sweep_goes_on(tmp_path: Path) -> None:
    config = _config(tmp_path, [_scripted(tmp_path, "stuck", "hang"),
                                _scripted(tmp_path, "fine")], cell_timeout_s=4)
    result = _child_sweep(tmp_path, config)
    runs = result["runs"]
    stuck = runs["stuck/fp32/iris/inference/0"]
    assert stuck["status"] == "failed"
    assert stuck["error"] == TIMEOUT
    # The next cell of the same model runs in a new worker; the other model is untouched.
    for key in ("stuck/fp32/iris/inference/1", "fine/fp32/iris/inference/0",
                "fine/fp32/iris/inference/1"):
        assert runs[key]["status"] == "ok", runs[key]["error"]
        assert runs[key]["energy_j"] > 0
    assert len(runs) == 4
    assert result["wall_s"] < 120  # stopped after 4 s, not left to hang


def test_cells_needing_a_timed_out_variant_fail_naming_it(tmp_path: Path) -> None:
    import torch

    (tmp_path / "hang_models.py").write_text(HANGS_ON_EXPORT)
    torch.manual_seed(0)
    state = {"fc.weight": torch.randn(10, 64) * 0.1, "fc.bias": torch.zeros(10)}
    torch.save(state, tmp_path / "net.pt")
    net = {"name": "net", "path": str(tmp_path / "net.pt"), "task": "classification",
           "options": {"model_class": "hang_models:HangsOnExport", "input_shape": [64]},
           "export": "onnx",
           "quantization": {"enabled": True, "method": "dynamic"},
           "pruning": {"enabled": True, "method": "l1_unstructured", "amount": 0.5}}
    config = _config(tmp_path, [net], repetitions=1, cell_timeout_s=5)
    config["datasets"] = [{"name": "digits", "limit": 64}]
    # The workers start with the frameworks imported, so that the cells that do not hang
    # finish well within their 5 s.
    preamble = """
        import onnxruntime, torch, torch.nn.utils.prune, torch.onnx
        import wattprint.optimize, wattprint.workloads.harness
        import wattprint.workloads.loaders.onnx_loader, wattprint.workloads.loaders.torch_loader
    """
    runs = _child_sweep(tmp_path, config, preamble=preamble)["runs"]
    timed_out = "timed out after 5 s (monitoring.cell_timeout_s)"
    status = {key.split("/digits/")[0] + "/" + key.split("/")[3]: (r["status"], r["error"])
              for key, r in runs.items()}
    assert status["net/onnx/optimization"] == ("failed", timed_out)
    assert status["net/fp32/inference"] == ("ok", None)
    # The pruned variant is made from fp32 by the worker started after the timeout.
    assert status["net/pruned-l1_unstructured-0.5/optimization"] == ("ok", None)
    assert status["net/pruned-l1_unstructured-0.5/inference"] == ("ok", None)
    needs_onnx = f"needs variant 'onnx', which failed: {timed_out}"
    assert status["net/onnx/inference"] == ("failed", needs_onnx)
    assert status["net/int8-dynamic/optimization"] == ("failed", needs_onnx)
    assert status["net/int8-dynamic/inference"][0] == "failed"
    assert "needs variant 'int8-dynamic'" in status["net/int8-dynamic/inference"][1]
    assert len(runs) == len({c.key for g in plan_cells(load_config(config)) for c in g.cells})


def test_a_worker_killed_by_sigkill_fails_its_cell_and_the_sweep_goes_on(
        tmp_path: Path) -> None:
    config = _config(tmp_path, [_scripted(tmp_path, "doomed", "kill"),
                                _scripted(tmp_path, "fine")])
    runs = _child_sweep(tmp_path, config)["runs"]
    doomed = runs["doomed/fp32/iris/inference/0"]
    assert doomed["status"] == "failed"
    assert doomed["error"] == "the worker process was killed by SIGKILL (out of memory?)"
    # It was a worker that died, not the sweep's process.
    assert int((tmp_path / "doomed.marker").read_text()) != os.getpid()
    for key in ("doomed/fp32/iris/inference/1", "fine/fp32/iris/inference/0",
                "fine/fp32/iris/inference/1"):
        assert runs[key]["status"] == "ok", runs[key]["error"]


def test_workers_use_torch_after_this_process_did(tmp_path: Path) -> None:
    """The sweep's process ran torch's OpenMP threads before the sweep: its team of threads
    is not in a forked worker, which must still train and predict with torch."""
    config = _config(tmp_path, [{"name": "cnn", "source": "torch:SmallCNN", "epochs": 1}],
                     repetitions=1, cell_timeout_s=60)
    config["datasets"] = [{"name": "digits", "limit": 100}]
    preamble = """
        import torch
        torch.set_num_threads(2)
        torch.ones(1 << 20).add_(1).sum()
        x = torch.randn(512, 512)
        x @ x
    """
    runs = _child_sweep(tmp_path, config, preamble=preamble)["runs"]
    assert {k: r["status"] for k, r in runs.items()} == {
        "cnn/fp32/digits/training/0": "ok", "cnn/fp32/digits/inference/0": "ok"}, \
        [r["error"] for r in runs.values()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_does_not_outlive_a_killed_sweep(tmp_path: Path) -> None:
    config = _config(tmp_path, [_scripted(tmp_path, "stuck", "hang")], cell_timeout_s=600)
    (tmp_path / "sweep_child.py").write_text(SCRIPTED + SWEEP)
    (tmp_path / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "sweep_child.py"),
                             str(tmp_path / "config.json")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "stuck.marker"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.1)  # the worker wrote its process id into the marker
    worker = int(marker.read_text())
    proc.kill()  # SIGKILL: the sweep's process cannot stop its worker itself
    proc.wait(timeout=120)
    assert worker != proc.pid
    deadline = time.monotonic() + 120
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker), "the hanging worker should have died with the sweep's process"


class _PidModel(Model):
    """Predicts zeros and notes the process it predicted in."""

    framework = "custom"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.num_parameters = 3

    def predict(self, batch: Any) -> Any:
        (self.path.parent / "predicted_in").write_text(str(os.getpid()))
        # what a collection of the oldest generation would walk, here
        (self.path.parent / "collected_objects").write_text(str(len(gc.get_objects())))
        return np.zeros((len(batch), 3))


def _pid_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[int]]:
    """A one-model sweep here: the process that predicted, and those ``on_cell`` ran in."""
    from wattprint.store import Store

    monkeypatch.setattr(registry, "_SUFFIXES", dict(registry._SUFFIXES))
    wattprint.register_format(".pid", lambda path, *, task, trust, **options: _PidModel(path))
    (tmp_path / "m.pid").write_text("weights")
    config = load_config(_config(tmp_path, [{"name": "m", "path": str(tmp_path / "m.pid"),
                                             "task": "classification"}],
                                  repetitions=1))
    stored_in: list[int] = []
    with Store(tmp_path / "w.db") as store:
        runner.run_sweep(config, store, meter=EnergyMeter(sensors=[FakeSensor(power_w=5.0)]),
                         on_cell=lambda cell, record: stored_in.append(os.getpid()),
                         progress=False)
        (run,) = store.runs()
    assert run.status == "ok", run.error
    return int((tmp_path / "predicted_in").read_text()), stored_in


def test_cells_run_in_a_worker_and_are_stored_here(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    predicted_in, stored_in = _pid_sweep(tmp_path, monkeypatch)
    assert predicted_in != os.getpid()
    assert stored_in == [os.getpid()]


def test_a_workers_collector_leaves_what_it_inherits_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Collecting garbage in a worker walks only what the worker made, not every object it
    inherited (this process's modules, frameworks and data): walking them copies their pages,
    which a worker's first collections did inside measured windows."""
    here = len(gc.get_objects())
    predicted_in, _ = _pid_sweep(tmp_path, monkeypatch)
    assert predicted_in != os.getpid()
    assert int((tmp_path / "collected_objects").read_text()) < here / 4
    assert gc.get_freeze_count() == 0  # this process's objects are collected here as before


def test_without_fork_cells_run_in_this_process(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CAN_FORK", False)
    predicted_in, stored_in = _pid_sweep(tmp_path, monkeypatch)
    assert predicted_in == os.getpid()
    assert stored_in == [os.getpid()]


# -- SIGTERM --------------------------------------------------------------------------------------


def _ok_rows(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=120) as conn:
            return [k for (k,) in conn.execute("SELECT cell_key FROM runs WHERE status='ok'")]
    except sqlite3.OperationalError:
        return []


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (task / "children").read_text().split())
    return found


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (and was reaped, or is a zombie left to be)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_keeps_what_finished_then_resume(tmp_path: Path) -> None:
    config = {
        "project": "terminate",
        "models": [{"name": f"m{i}", "source": "sklearn:LogisticRegression"} for i in range(2)],
        "datasets": [{"name": "digits", "limit": 200}],
        "monitoring": {"repetitions": 3, "warmup": 0, "num_samples": 1000},
        "output": {"export_formats": [], "db": str(tmp_path / "wattprint.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    db = tmp_path / "wattprint.db"
    proc = subprocess.Popen([*WATTPRINT, "run", str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 240
    while len(_ok_rows(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        time.sleep(0.05)
    workers |= _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the sweep did not stop on SIGTERM")
    assert proc.returncode == 143, stderr
    (said,) = stderr.strip().splitlines()  # one line, no traceback
    assert said.startswith("interrupted: sweep ") and "by SIGTERM" in said, stderr
    assert workers, "the cells should have run in worker processes"
    assert all(_gone(pid) for pid in workers), "the workers should have been stopped"

    before = set(_ok_rows(db))
    total = len({c.key for g in plan_cells(load_config(path)) for c in g.cells})
    assert 3 <= len(before) < total, "the sweep should have been stopped part-way"
    with sqlite3.connect(db) as conn:
        statuses = {s for (s,) in conn.execute("SELECT status FROM runs")}
        (sweep_status,) = conn.execute("SELECT status FROM sweeps").fetchone()
    assert statuses == {"ok"}  # the cell running at the SIGTERM is not stored as a failure
    assert sweep_status == "interrupted"

    done = subprocess.run([*WATTPRINT, "run", str(path), "--resume", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT cell_key, status FROM runs").fetchall()
        (sweep_status,) = conn.execute("SELECT status FROM sweeps").fetchone()
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)) == total
    assert {s for _, s in rows} == {"ok"}
    assert before <= set(keys)
    assert sweep_status == "finished"
