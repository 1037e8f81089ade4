"""Sweeps on Ray: the executor's config and command line, a Ray instance started by the sweep,
and a ``ray start`` cluster on this machine whose driver is killed mid-sweep and resumed.

The cluster tests run ``wattprint run --executor ray`` in child processes, so Ray's threads
and processes never live in the test process. Each Ray gets its own temporary folder, and the
``ray start`` one its own ports, so that sessions running at once on one machine do not meet;
it is stopped by killing its process group, never by ``ray stop`` (which stops every Ray on
the machine).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wattprint.errors import ConfigError, MissingExtra
from wattprint.sweep.config import config_hash, load_config
from wattprint.sweep.runner import plan_cells

WATTPRINT = [sys.executable, "-m", "wattprint"]
RAY = str(Path(sys.executable).with_name("ray"))


def _config(tmp_path: Path, project: str, **monitoring: Any) -> dict[str, Any]:
    return {
        "project": project,
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression", "task": "classification"},
            {"name": "svc", "source": "sklearn:SVC", "task": "classification"},
        ],
        "datasets": [{"name": "digits", "split": "test", "limit": 100}],
        "monitoring": {"repetitions": 2, "warmup": 0, **monitoring},
        "output": {"export_formats": [], "db": str(tmp_path / "wattprint.db"),
                   "output_dir": str(tmp_path / "out")},
    }


def _yaml(path: Path, config: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


#: The token of the test's Ray clusters (Ray's token authentication, on by default), given
#: to each process in its environment: none is written to ~/.ray.
TOKEN = os.urandom(16).hex()


def _env(ray_tmp: str) -> dict[str, str]:
    return {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def _rows(db: Path, status: str | None = "ok") -> list[tuple[str, ...]]:
    if not db.exists():
        return []
    where = "" if status is None else f"WHERE status = '{status}'"
    try:
        with sqlite3.connect(db, timeout=120) as conn:
            return list(conn.execute(
                f"SELECT cell_key, phase, status, model_name, variant FROM runs {where}"))
    except sqlite3.OperationalError:
        return []


def _short_folder() -> Iterator[str]:
    """A short private folder for Ray's sockets (a Unix socket's path has ~107 bytes)."""
    folder = tempfile.mkdtemp(prefix="wpray", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    yield from _short_folder()


@pytest.fixture(scope="module")
def cluster_tmp() -> Iterator[str]:
    yield from _short_folder()


# -- the config and the command line, without a cluster ----------------------------------------

@pytest.mark.parametrize(("execution", "line"), [
    ({"backend": "dask"}, "execution.backend: 'dask' is not allowed (allowed: local, ray)"),
    ({"address": "auto"}, "execution.address: only with backend: ray"),
    ({"backend": "ray", "nodes": 3}, "execution.nodes: unknown key (allowed: backend, address,"),
    ({"backend": "ray", "num_gpus": -1}, "execution.num_gpus: must be >= 0"),
])
def test_execution_section_is_checked(tmp_path: Path, execution: dict[str, Any],
                                      line: str) -> None:
    config = {**_config(tmp_path, "checked"), "execution": execution}
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert line in str(err.value)


def test_where_cells_run_is_not_part_of_the_sweep(tmp_path: Path) -> None:
    config = _config(tmp_path, "same")
    on_ray = {**config, "execution": {"backend": "ray", "address": "auto", "num_gpus": 1}}
    assert load_config(config).execution.backend == "local"
    assert config_hash(load_config(on_ray)) == config_hash(load_config(config))


@pytest.mark.parametrize("module", ["ray", "threadpoolctl"])
def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    from wattprint.sweep.ray_executor import import_ray

    monkeypatch.setitem(sys.modules, module, None)  # what an absent package imports as
    with pytest.raises(MissingExtra, match=r"pip install 'wattprint\[ray\]'"):
        import_ray()


def test_command_without_ray_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    path = _yaml(tmp_path / "sweep.yaml", _config(tmp_path, "no-ray"))
    code = ("import sys; sys.modules['ray'] = None; from wattprint.cli import main; "
            f"sys.argv = ['wattprint', 'run', {str(path)!r}, '--executor', 'ray']; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: the ray executor needs the 'ray' extra: pip install 'wattprint[ray]'"]
    assert not (tmp_path / "wattprint.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "auto"], "--address is for --executor ray"),
    (["--executor", "dask"], "--executor: 'dask' is not allowed (allowed: local, ray)"),
])
def test_executor_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    path = _yaml(tmp_path / "sweep.yaml", _config(tmp_path, "options"))
    proc = subprocess.run([*WATTPRINT, "run", str(path), *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "wattprint.db").exists()


def test_a_model_trained_for_another_runs_in_its_task() -> None:
    from wattprint.sweep.ray_executor import task_units

    config = load_config({
        "project": "units",
        "models": [
            {"name": "cnn", "source": "torch:SmallCNN", "task": "classification"},
            {"name": "logreg", "source": "sklearn:LogisticRegression"},
            {"name": "cnn-onnx", "source": "torch:SmallCNN", "task": "classification",
             "export": "onnx"},
        ],
        "datasets": [{"name": "digits"}, {"name": "iris"}],
    })
    units = [[(g.model.name, g.dataset.name) for g in unit]
             for unit in task_units(plan_cells(config))]
    assert units == [[("cnn", "digits"), ("cnn-onnx", "digits")], [("logreg", "digits")],
                     [("cnn", "iris"), ("cnn-onnx", "iris")], [("logreg", "iris")]]


def test_importing_the_sweep_does_not_import_ray() -> None:
    code = ("import sys, wattprint, wattprint.sweep, wattprint.sweep.runner, wattprint.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


# -- on a Ray cluster --------------------------------------------------------------------------

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the ray extra is not installed")


@pytest.mark.slow
@needs_ray
def test_a_sweep_on_ray_stores_what_the_local_executor_does(tmp_path: Path,
                                                            ray_tmp: str) -> None:
    stored = {}
    for executor in ("local", "ray"):
        folder = tmp_path / executor
        folder.mkdir()
        path = _yaml(folder / "sweep.yaml", _config(folder, "digits-on-ray"))
        proc = subprocess.run([*WATTPRINT, "run", str(path), "--executor", executor, "--json"],
                              capture_output=True, text=True, timeout=300, cwd=folder,
                              env=_env(ray_tmp))
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        stored[executor] = (report["sweep_id"], sorted(_rows(folder / "wattprint.db", None)))
    assert stored["ray"] == stored["local"]
    planned = {c.key for g in plan_cells(load_config(path)) for c in g.cells}
    assert {row[0] for row in stored["ray"][1]} == planned
    assert {row[2] for row in stored["ray"][1]} == {"ok"}


#: A sweep on Ray of a model whose format this process registered (greenAI's habit: a class
#: that opens the file), after a loader Ray cannot send is refused; prints what was stored.
FORMATS_SCRIPT = """\
import json, threading
import numpy as np
import wattprint
from wattprint.errors import ConfigError


class CentroidModel:
    def __init__(self, data_path):
        self.centroids = np.load(data_path)

    def get_number_of_parameters(self):
        return self.centroids.size

    def run(self, input_data):
        x = np.asarray(input_data, dtype=float).reshape(len(input_data), -1)
        return ((x[:, None, :] - self.centroids) ** 2).sum(axis=-1).argmin(axis=1)


with open("centroids.greenai", "wb") as f:
    np.save(f, np.random.default_rng(0).random((10, 64)))
config = {"project": "formats-on-ray",
          "models": [{"name": "centroids", "path": "centroids.greenai",
                      "task": "classification"}],
          "datasets": [{"name": "digits", "split": "test", "limit": 50}],
          "monitoring": {"repetitions": 1, "warmup": 0},
          "execution": {"backend": "ray"},
          "output": {"export_formats": [], "db": "wattprint.db", "output_dir": "out"}}
lock = threading.Lock()
wattprint.register_format(".greenai", lambda path, **options: lock)
try:
    wattprint.Benchmark(config).run()
except ConfigError as err:
    print("refused:", err)
wattprint.register_format(".greenai", CentroidModel)
result = wattprint.Benchmark(config).execute()
print(json.dumps([[r.status, r.error, r.num_parameters] for r in result.runs]))
"""


@pytest.mark.slow
@needs_ray
def test_formats_registered_in_the_driver_load_in_ray_workers(tmp_path: Path,
                                                              ray_tmp: str) -> None:
    """A format registered with register_format before a sweep on Ray goes with each task;
    a loader that cannot be sent is refused, naming its suffix, before Ray starts or
    anything is stored."""
    script = tmp_path / "sweep_script.py"
    script.write_text(FORMATS_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=_env(ray_tmp))
    assert proc.returncode == 0, proc.stderr
    refused, stored = proc.stdout.strip().splitlines()
    assert refused.startswith("refused: the loader registered for '.greenai' (<function")
    assert "cannot be sent to Ray's workers: TypeError: cannot pickle '_thread.lock'" in refused
    runs = json.loads(stored)
    assert runs and all(run == ["ok", None, 640] for run in runs), runs
    with sqlite3.connect(tmp_path / "wattprint.db") as conn:
        sweeps = conn.execute("SELECT count(*) FROM sweeps").fetchone()[0]
    assert sweeps == 1  # the refused sweep stored nothing


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        for s in sockets:
            stack.enter_context(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@pytest.fixture(scope="module")
def ray_cluster(cluster_tmp: str) -> Iterator[str]:
    """``ray start --head`` on this machine offering ``wattprint_node`` once: its address.
    Stopped by killing its process group (``--block`` keeps its processes in it; nothing of
    it needs to outlive the test, so SIGKILL, which takes no time)."""
    port, client, agent, agent_grpc, metrics, env_agent, dash = _free_ports(7)
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", f"--temp-dir={cluster_tmp}",
         "--num-cpus=2", "--resources", '{"wattprint_node": 1}', "--disable-usage-stats",
         "--include-dashboard=false", f"--ray-client-server-port={client}",
         f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}",
         f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
         f"--runtime-env-agent-port={env_agent}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(cluster_tmp),
        start_new_session=True)
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "Ray runtime started" in line:
                break
            assert line, "ray start ended:\n" + "".join(seen)
        else:
            pytest.fail("ray start took over 120 s:\n" + "".join(seen))
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)


@pytest.mark.slow
@needs_ray
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_stop_the_driver_then_resume_on_a_cluster(tmp_path: Path, ray_cluster: str,
                                                  cluster_tmp: str, signum: int) -> None:
    """Killed (SIGKILL: nothing of it runs on) or stopped by Ctrl-C (SIGINT: it cancels its
    tasks, marks the sweep interrupted and exits with 130), then resumed: every cell once."""
    config = _config(tmp_path, f"stopped-on-ray-{signum}", repetitions=4, num_samples=600)
    config["models"] = [{"name": f"m{i}", "source": "sklearn:LogisticRegression"}
                        for i in range(3)]
    path = _yaml(tmp_path / "sweep.yaml", config)
    db = tmp_path / "wattprint.db"
    total = {c.key for g in plan_cells(load_config(path)) for c in g.cells}
    run = [*WATTPRINT, "run", str(path), "--executor", "ray", "--address", ray_cluster]
    proc = subprocess.Popen(run, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env(cluster_tmp))
    try:
        deadline = time.monotonic() + 180
        while len(_rows(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signum)
        try:
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
    before = {row[0] for row in _rows(db)}
    assert 3 <= len(before) < len(total), f"the driver should stop part-way:\n{stderr}"
    if signum == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in stderr, stderr
        assert "Traceback" not in stderr
        assert {row[2] for row in _rows(db, None)} == {"ok"}  # the running cell: not stored
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status FROM sweeps").fetchall() == [("interrupted",)]

    done = subprocess.run([*run, "--resume", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=_env(cluster_tmp))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM runs")]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (sweeps,) = conn.execute("SELECT count(*) FROM sweeps").fetchone()
    assert sorted(keys) == sorted(total)  # every cell once: none lost, none twice
    assert sweeps == 1
    assert report["final_report"]["analysis_summary"]["runs_ok"] == len(total)
    # The rows from before the kill are kept, not measured again.
    ended = {r["cell_key"]: r["ended_at"] for r in report["runs"]}
    with sqlite3.connect(db) as conn:
        kept = dict(conn.execute("SELECT cell_key, ended_at FROM runs"))
    assert before <= set(ended) and all(kept[k] == ended[k] for k in before)


def _env_asking(ray_tmp: str, threads: int | None) -> dict[str, str]:
    """:func:`_env` with ``OMP_NUM_THREADS`` set to ``threads``, or without it (None)."""
    env = {k: v for k, v in _env(ray_tmp).items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@pytest.mark.slow
@needs_ray
def test_cells_on_a_cluster_take_the_threads_the_driver_asks_for(tmp_path: Path,
                                                                 ray_cluster: str,
                                                                 cluster_tmp: str) -> None:
    """Ray sets a worker's ``OMP_NUM_THREADS`` to the CPUs its task asks for (1) where the
    node has none; the cells still take the threads the local executor would give them:
    as many as ``OMP_NUM_THREADS`` asks of ``wattprint run``, else the cores; a model whose
    options name ``threads``, that many; a scikit-learn model's BLAS (no more than the CPUs)
    and OpenMP pools, as many."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from wattprint._cgroup import allotted_cores
    from wattprint.store import Store

    for asked in (None, allotted_cores() + 1):  # neither Ray's 1 (on 2 cores) nor the cores
        folder = tmp_path / f"asked-{asked}"
        folder.mkdir()
        config = _config(folder, f"threads-on-ray-{asked}", repetitions=1)
        own = allotted_cores() + 2  # the model's own: neither of the above
        config["models"] = [{"name": "mlp", "source": "torch:MLP", "epochs": 1,
                             "export": "onnx"},
                            {"name": "mlp-own", "source": "torch:MLP", "epochs": 1,
                             "export": "onnx", "options": {"threads": own}},
                            {"name": "lr", "source": "sklearn:LogisticRegression"},
                            {"name": "lr-own", "source": "sklearn:LogisticRegression",
                             "options": {"threads": own}}]
        path = _yaml(folder / "sweep.yaml", config)
        env = _env_asking(cluster_tmp, asked)
        proc = subprocess.run([*WATTPRINT, "run", str(path), "--executor", "ray",
                               "--address", ray_cluster], capture_output=True, text=True,
                              timeout=300, cwd=folder, env=env)
        assert proc.returncode == 0, proc.stderr
        with Store(folder / "wattprint.db", read_only=True) as store:
            runs = store.runs(phase="inference")
            host = store.sweeps()[0]["host"]
        threads = asked if asked is not None else allotted_cores()
        cpus = len(os.sched_getaffinity(0))
        assert {(r.model_name, r.variant, k, v) for r in runs
                for k, v in (r.host or {}).items()} == {
            ("mlp", "fp32", "torch_threads", threads), ("mlp", "onnx", "onnx_threads", threads),
            ("mlp-own", "fp32", "torch_threads", own), ("mlp-own", "onnx", "onnx_threads", own),
            ("lr", "fp32", "blas_threads", min(threads, cpus)),
            ("lr", "fp32", "openmp_threads", threads),
            ("lr-own", "fp32", "blas_threads", min(own, cpus)),
            ("lr-own", "fp32", "openmp_threads", own)}
        assert host["omp_num_threads"] == asked


#: A sweep of a model whose parameter count is the BLAS threads of the process that loads it
#: (the fewest of its BLAS pools, NumPy's OpenBLAS among them, as threadpoolctl reads them: a
#: pool loaded later, SciPy's, takes what the environment says then), on the executor named
#: by argv[1] (and
#: the cluster at argv[2]); prints the counts the runs stored.
BLAS_SCRIPT = """\
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
import wattprint


class BlasThreads:
    def __init__(self, path):
        self.threads = min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

    def get_number_of_parameters(self):
        return self.threads

    def run(self, input_data):
        x = np.asarray(input_data, dtype=float).reshape(len(input_data), -1)
        return (x @ np.ones((x.shape[1], 10))).argmax(axis=1)


with open("threads.blas", "w") as f:
    f.write("a model file")
execution = {"backend": sys.argv[1]}
if sys.argv[1] == "ray":
    execution["address"] = sys.argv[2]
config = {"project": "blas-" + sys.argv[1],
          "models": [{"name": "blas", "path": "threads.blas", "task": "classification"}],
          "datasets": [{"name": "digits", "split": "test", "limit": 50}],
          "monitoring": {"repetitions": 1, "warmup": 0}, "execution": execution,
          "output": {"export_formats": [], "db": "wattprint.db", "output_dir": "out"}}
wattprint.register_format(".blas", BlasThreads)
result = wattprint.Benchmark(config).execute()
print(json.dumps(sorted({(r.status, r.error, r.num_parameters) for r in result.runs})))
"""


@pytest.mark.slow
@needs_ray
def test_blas_on_a_cluster_takes_the_threads_of_the_local_executor(tmp_path: Path,
                                                                   ray_cluster: str,
                                                                   cluster_tmp: str) -> None:
    """NumPy's OpenBLAS, loaded in a Ray worker under the ``OMP_NUM_THREADS`` Ray gives it
    (1, the CPUs a task asks for), runs as many threads as in a local worker: one per CPU
    where the driver asks none, else as many as it asks, up to the CPUs."""
    pytest.importorskip("threadpoolctl")
    stored = {}
    for asked in (None, 3):
        env = _env_asking(cluster_tmp, asked)
        for executor in ("local", "ray"):
            folder = tmp_path / f"{executor}-{asked}"
            folder.mkdir()
            script = folder / "blas_script.py"
            script.write_text(BLAS_SCRIPT)
            proc = subprocess.run([sys.executable, str(script), executor, ray_cluster],
                                  capture_output=True, text=True, timeout=300, cwd=folder,
                                  env=env)
            assert proc.returncode == 0, proc.stderr
            stored[executor, asked] = json.loads(proc.stdout.strip().splitlines()[-1])
    cpus = len(os.sched_getaffinity(0))
    assert stored["local", None] == [["ok", None, cpus]]
    assert stored["ray", None] == stored["local", None]
    assert stored["local", 3] == [["ok", None, min(3, cpus)]]  # OpenBLAS: no more than CPUs
    assert stored["ray", 3] == stored["local", 3]
