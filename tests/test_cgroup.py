"""The CPU limit of a process's control groups, read from cgroup trees built in tmp_path (a
fake /proc/self beside them), and the torch and onnxruntime threads taken under it, or as
``OMP_NUM_THREADS`` asks."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint import EnergyMeter, FakeSensor, _cgroup
from wattprint._cgroup import (
    affinity_cpus,
    allotted_cores,
    asked_threads,
    cpu_limit,
    default_threads,
    model_threads,
)
from wattprint.record import RunRecord
from wattprint.store import Store


def proc(tmp_path: Path, cgroup: str, *mounts: str) -> Path:
    """A /proc/self folder with ``cgroup`` as its cgroup file and ``mounts`` as the lines of
    its mountinfo."""
    folder = tmp_path / "proc"
    folder.mkdir(exist_ok=True)
    (folder / "cgroup").write_text(cgroup)
    (folder / "mountinfo").write_text("".join(line + "\n" for line in (
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw", *mounts)))
    return folder


def group(mount: Path, path: str, **files: str) -> Path:
    folder = mount.joinpath(*Path(path).parts[1:])
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")
    return folder


def v2_mount(point: Path, root: str = "/") -> str:
    return f"30 22 0:26 {root} {point} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"


def v1_mount(point: Path, controllers: str = "cpu,cpuacct", root: str = "/") -> str:
    return f"31 22 0:27 {root} {point} rw,nosuid - cgroup cgroup rw,{controllers}"


def test_v2_takes_the_smallest_limit_on_the_group_and_those_above_it(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    group(mount, "/", cpu_max="max 100000")
    group(mount, "/kubepods", cpu_max="max 100000")
    group(mount, "/kubepods/pod1", cpu_max="250000 100000")  # the pod: 2.5 CPUs
    group(mount, "/kubepods/pod1/ctr", cpu_max="max 100000")
    self = proc(tmp_path, "0::/kubepods/pod1/ctr\n", v2_mount(mount))
    assert cpu_limit(self) == 2.5
    group(mount, "/kubepods/pod1/ctr", cpu_max="50000 100000")  # the container: half a CPU
    assert cpu_limit(self) == 0.5


def test_v2_without_a_limit_is_none(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    group(mount, "/", cpu_max="max 100000")
    group(mount, "/user.slice", cpu_max="max 100000")
    group(mount, "/user.slice/session", cpu_max="max 100000")
    assert cpu_limit(proc(tmp_path, "0::/user.slice/session\n", v2_mount(mount))) is None
    # a group without the cpu controller has no cpu.max at all
    group(mount, "/bare")
    assert cpu_limit(proc(tmp_path, "0::/bare\n", v2_mount(mount))) is None


def test_v1_reads_the_cfs_quota_of_the_hierarchy_with_the_cpu_controller(
        tmp_path: Path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    memory = tmp_path / "memory"
    group(cpu, "/", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    group(cpu, "/docker", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    group(cpu, "/docker/abc", cpu_cfs_quota_us="150000", cpu_cfs_period_us="100000")
    group(memory, "/docker/abc", cpu_cfs_quota_us="10000", cpu_cfs_period_us="100000")
    self = proc(tmp_path, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
                v1_mount(memory, "memory"), v1_mount(cpu))
    assert cpu_limit(self) == 1.5  # the memory hierarchy's files are not the cpu controller's
    group(cpu, "/docker/abc", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    assert cpu_limit(self) is None


def test_a_container_sees_its_own_group_as_the_mount_s_root(tmp_path: Path) -> None:
    """Docker without a cgroup namespace mounts the container's own group (root
    ``/docker/abc``) at /sys/fs/cgroup/cpu; the limit is on that folder itself."""
    cpu = tmp_path / "sys fs cgroup" / "cpu"
    group(cpu, "/", cpu_cfs_quota_us="200000", cpu_cfs_period_us="100000")
    point = str(cpu).replace(" ", "\\040")  # as mountinfo writes a space
    self = proc(tmp_path, "4:cpu,cpuacct:/docker/abc\n", v1_mount(Path(point), root="/docker/abc"))
    assert cpu_limit(self) == 2.0
    # a group outside the mount's root is not under that mount
    other = proc(tmp_path, "4:cpu,cpuacct:/elsewhere\n", v1_mount(Path(point), root="/docker/abc"))
    assert cpu_limit(other) is None


def test_hybrid_hierarchies_take_the_v1_cpu_limit(tmp_path: Path) -> None:
    cpu, unified = tmp_path / "cpu", tmp_path / "unified"
    group(cpu, "/job", cpu_cfs_quota_us="300000", cpu_cfs_period_us="100000")
    group(unified, "/job")
    self = proc(tmp_path, "3:cpu:/job\n0::/job\n", v1_mount(cpu, "cpu"), v2_mount(unified))
    assert cpu_limit(self) == 3.0


@pytest.mark.parametrize("text", ["", "garbage 100000", "100000 0", "0 100000"])
def test_unreadable_limits_are_none_not_a_guess(tmp_path: Path, text: str) -> None:
    mount = tmp_path / "cg"
    group(mount, "/job", cpu_max=text)
    assert cpu_limit(proc(tmp_path, "0::/job\n", v2_mount(mount))) is None


def test_no_cgroup_file_system_is_none(tmp_path: Path) -> None:
    assert cpu_limit(tmp_path / "no-such-proc") is None
    assert cpu_limit(proc(tmp_path, "0::/job\n")) is None  # nothing mounted


def test_torch_and_onnxruntime_take_no_more_threads_than_the_cpu_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep under a limit of 1.5 CPUs (a container's ``--cpus 1.5``) runs torch and
    onnxruntime on one thread, rounded down, and records it beside the limit, whatever CPUs
    the process sees."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    mount = tmp_path / "cg"
    group(mount, "/ctr", cpu_max="150000 100000")
    monkeypatch.setattr(_cgroup, "PROC_SELF", proc(tmp_path, "0::/ctr\n", v2_mount(mount)))
    assert allotted_cores() == 1
    assert sweep_threads(tmp_path, torch) == ({"fp32": ("torch_threads", 1),
                                               "onnx": ("onnx_threads", 1)}, 1.5, None)


def sweep_threads(tmp_path: Path, torch: Any) -> tuple[dict[str, tuple[str, int]],
                                                          float | None, int | None]:
    """Run a sweep of a torch MLP and its ONNX export, torch set to 2 threads first (what it
    takes on a 2-CPU machine); each variant's recorded threads, and the sweep's host's
    ``cpu_limit`` and ``omp_num_threads``."""
    runs, sweep = run_sweep(tmp_path, torch, [
        {"name": "mlp", "source": "torch:MLP", "epochs": 1, "export": "onnx"}])
    threads = {str(r.variant): next(iter((r.host or {}).items())) for r in runs
               if r.phase == "inference"}
    return threads, sweep["host"]["cpu_limit"], sweep["host"]["omp_num_threads"]


def run_sweep(tmp_path: Path, torch: Any, models: list[dict[str, Any]]
              ) -> tuple[list[RunRecord], dict[str, Any]]:
    """Run a sweep of ``models`` on 80 digits, torch (where given) set to 2 threads first
    (what it takes on a 2-CPU machine) and as it was after; its runs, all ok, and its
    sweep."""
    tmp_path.mkdir(exist_ok=True)
    config = {
        "project": "threads",
        "models": models,
        "datasets": [{"name": "digits", "task": "classification", "limit": 80}],
        "monitoring": {"repetitions": 1, "warmup": 0, "batch_size": 16},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    before = None if torch is None else torch.get_num_threads()
    try:
        if torch is not None:
            torch.set_num_threads(2)
        meter = EnergyMeter([FakeSensor(power_w=5.0)])
        wattprint.Benchmark(config).run(meter=meter, progress=False)
        meter.close()
    finally:
        if before is not None:
            torch.set_num_threads(before)
    with Store(tmp_path / "w.db", read_only=True) as store:
        runs = store.runs()
        sweep = store.sweeps()[0]
    assert [r.error for r in runs if r.status != "ok"] == []
    return runs, sweep


@pytest.mark.parametrize(("value", "threads"), [
    ("3", 3), (" 2 ", 2), ("4,2", 4), ("1", 1)])
def test_omp_num_threads_asks_for_threads(monkeypatch: pytest.MonkeyPatch, value: str,
                                          threads: int) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert asked_threads() == threads
    assert default_threads() == threads


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ",2", "\u0663"])
def test_an_omp_num_threads_that_is_not_a_count_is_ignored_with_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        assert asked_threads() is None
        assert default_threads() == allotted_cores()
    assert [r.getMessage() for r in caplog.records] == [
        f"OMP_NUM_THREADS={value!r} is not a whole number of threads of at least 1: ignored; "
        "torch and onnxruntime take the cores this process is allotted (set it to 1, 2, ...)"]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_omp_num_threads_is_the_allotted_cores(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture,
                                                  value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        assert asked_threads() is None
        assert default_threads() == allotted_cores()
    assert caplog.records == []


def test_a_sweep_takes_the_threads_omp_num_threads_asks_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``OMP_NUM_THREADS=N wattprint run ...``: torch and onnxruntime take N threads, more or
    fewer than the cores (one thread runs a small model faster on a small machine), even
    under a CPU limit; the runs and the sweep's host record it."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    asked = allotted_cores() + 1  # neither what torch had nor the cores
    monkeypatch.setenv("OMP_NUM_THREADS", str(asked))
    assert sweep_threads(tmp_path / "more", torch) == (  # this machine's limit, if any
        {"fp32": ("torch_threads", asked), "onnx": ("onnx_threads", asked)}, cpu_limit(), asked)
    mount = tmp_path / "cg"
    group(mount, "/ctr", cpu_max="100000 100000")
    monkeypatch.setattr(_cgroup, "PROC_SELF", proc(tmp_path, "0::/ctr\n", v2_mount(mount)))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert sweep_threads(tmp_path / "limited", torch) == (
        {"fp32": ("torch_threads", 3), "onnx": ("onnx_threads", 3)}, 1.0, 3)


def test_a_model_s_threads_are_the_default_within_its_scope_and_only_there(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with model_threads(5):
        assert default_threads() == 5
        with model_threads(None):  # a model that asks none: the one around it stands
            assert default_threads() == 5
        with model_threads(1):
            assert default_threads() == 1
        assert default_threads() == 5
    assert default_threads() == 2
    with pytest.raises(RuntimeError), model_threads(3):
        raise RuntimeError("a cell's failure leaves the scope")
    assert default_threads() == 2


def test_a_model_s_threads_option_is_its_torch_threads_and_its_onnx_export_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``options: {threads: N}`` on a torch recipe: its cells run torch on N threads and its
    ONNX export's session on N, over what ``OMP_NUM_THREADS`` asks; the next model, which
    names none, takes what the environment asks again. The two differ only by ``threads``,
    so the second takes the first's training (one training run). A torch model loaded from
    its file takes its ``threads`` too (its loader does not see the option)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    own = allotted_cores() + 1  # neither the cores nor what the environment asks
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.save({"weight": torch.zeros(10, 64), "bias": torch.zeros(10)}, tmp_path / "lin.pt")
    runs, _ = run_sweep(tmp_path, torch, [
        {"name": "mlp-own", "source": "torch:MLP", "epochs": 1, "export": "onnx",
         "options": {"threads": own}},
        {"name": "mlp", "source": "torch:MLP", "epochs": 1, "export": "onnx"},
        {"name": "linear", "path": str(tmp_path / "lin.pt"), "options": {
            "model_class": "torch.nn:Linear", "threads": own, "input_shape": [64],
            "model_kwargs": {"in_features": 64, "out_features": 10}}}])
    threads = {(str(r.model_name), str(r.variant)): next(iter((r.host or {}).items()))
               for r in runs if r.phase == "inference"}
    assert threads == {("mlp-own", "fp32"): ("torch_threads", own),
                       ("mlp-own", "onnx"): ("onnx_threads", own),
                       ("mlp", "fp32"): ("torch_threads", 1),
                       ("mlp", "onnx"): ("onnx_threads", 1),
                       ("linear", "fp32"): ("torch_threads", own)}  # a file's, loaded
    assert [str(r.model_name) for r in runs if r.phase == "training"] == ["mlp-own"]


def matmul_onnx(path: Path, inputs: int, outputs: int) -> Path:
    """Save at ``path`` an ONNX model of one MatMul by ones, ``(n, inputs)`` to
    ``(n, outputs)``; return the path."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((inputs, outputs), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", outputs])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_an_onnx_session_takes_the_allotted_cores_or_omp_num_threads_unless_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    path = matmul_onnx(tmp_path / "tiny.onnx", 4, 3)

    def threads(**options: object) -> int:
        model = wattprint.load_model(path, **options)
        return int(model.session.get_session_options().intra_op_num_threads)

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads() == allotted_cores()
    assert threads(threads=0) == 0  # onnxruntime's own choice, as asked
    monkeypatch.setenv("OMP_NUM_THREADS", str(allotted_cores() + 2))  # as torch takes them
    assert threads() == allotted_cores() + 2
    assert threads(threads=1) == 1  # the model's own option first
    monkeypatch.delenv("OMP_NUM_THREADS")
    mount = tmp_path / "cg"
    group(mount, "/ctr", cpu_max="100000 100000")
    monkeypatch.setattr(_cgroup, "PROC_SELF", proc(tmp_path, "0::/ctr\n", v2_mount(mount)))
    assert threads() == 1
    assert threads(threads=3) == 3
    with pytest.raises(wattprint.ConfigError, match="threads must be a whole number"):
        threads(threads=True)


def test_an_onnx_model_s_threads_are_its_quantized_copies_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ONNX file's ``threads`` option: its own session takes it (its loader's option), and
    so does the session of each copy the sweep quantizes from it, loaded back from its file."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    matmul_onnx(tmp_path / "digits.onnx", 64, 10)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    own = allotted_cores() + 1
    runs, _ = run_sweep(tmp_path, torch, [
        {"name": "linear", "path": str(tmp_path / "digits.onnx"), "options": {"threads": own},
         "quantization": {"enabled": True, "method": "dynamic"}}])
    assert {str(r.variant): (r.host or {}).get("onnx_threads") for r in runs
            if r.phase == "inference"} == {"fp32": own, "int8-dynamic": own}


def blas_openmp_threads() -> dict[str, int]:
    """The most threads of the BLAS pools and of the OpenMP pools loaded in this process, as
    threadpoolctl reads them."""
    import threadpoolctl

    found: dict[str, int] = {}
    for pool in threadpoolctl.threadpool_info():
        key = f"{pool['user_api']}_threads"
        found[key] = max(found.get(key, 0), pool["num_threads"])
    return found


def sized(threads: int) -> dict[str, int]:
    """The pools a scikit-learn model's cells run on when they are to take ``threads``:
    BLAS no more than the CPUs (OpenBLAS caps itself), OpenMP as many."""
    return {"blas_threads": min(threads, affinity_cpus()), "openmp_threads": threads}


def pools_of(runs: list[RunRecord]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(r.model_name), str(r.phase)): dict(r.host or {}) for r in runs}


@pytest.mark.parametrize("isolated", [True, False])
def test_a_scikit_learn_model_runs_its_blas_and_openmp_pools_on_the_sweep_s_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: bool) -> None:
    """A scikit-learn model's cells run the BLAS and OpenMP pools of their process on the
    threads torch would take: the model's ``threads`` option, else ``OMP_NUM_THREADS``; each
    run, training and inference, records them. Run in this process (no worker), the pools
    are as they were after the sweep."""
    pytest.importorskip("threadpoolctl")
    import sklearn  # noqa: F401 - its pools, loaded before they are read

    from wattprint.sweep import runner

    monkeypatch.setattr(runner, "CAN_FORK", isolated and runner.CAN_FORK)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    own = allotted_cores() + 1  # neither the cores nor what the environment asks
    before = blas_openmp_threads()
    runs, _ = run_sweep(tmp_path, None, [
        {"name": "lr", "source": "sklearn:LogisticRegression", "options": {"threads": own}},
        {"name": "forest", "source": "sklearn:RandomForestClassifier"}])
    assert pools_of(runs) == {("lr", "training"): sized(own), ("lr", "inference"): sized(own),
                              ("forest", "training"): sized(1),
                              ("forest", "inference"): sized(1)}
    assert blas_openmp_threads() == before


def test_the_command_line_records_a_scikit_learn_model_s_pools_not_torch_s(
        tmp_path: Path) -> None:
    """``wattprint run`` in a fresh process: skops imports torch as the first model is
    saved, after its pools were sized, and torch's OpenMP pool keeps its own threads. Each
    run records the pools its model ran on: one thread for a model that asks one, and for
    the next model as many as its ``threads``."""
    import yaml

    pytest.importorskip("threadpoolctl")
    own = allotted_cores() + 1
    config = {"project": "sklearn-threads",
              "models": [{"name": "lr-1", "source": "sklearn:LogisticRegression",
                          "options": {"threads": 1}},
                         {"name": "lr", "source": "sklearn:LogisticRegression",
                          "options": {"threads": own}}],
              "datasets": [{"name": "digits", "task": "classification", "limit": 60}],
              "monitoring": {"repetitions": 1, "warmup": 0},
              "output": {"export_formats": [], "db": "w.db", "output_dir": "out"}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-m", "wattprint", "run", "sweep.yaml"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    with Store(tmp_path / "w.db", read_only=True) as store:
        runs = store.runs()
    assert pools_of(runs) == {("lr-1", "training"): sized(1), ("lr-1", "inference"): sized(1),
                              ("lr", "training"): sized(own), ("lr", "inference"): sized(own)}


def test_a_scikit_learn_model_without_scikit_learn_fails_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where scikit-learn cannot be imported, its model's pools are not sized: its cells fail
    naming the extra to install, as they would without the sizing, not with the worker's
    ImportError."""
    (tmp_path / "data.csv").write_text("a,b,label\n" + "".join(
        f"{i / 40},{1 - i / 40},{i % 2}\n" for i in range(40)))
    monkeypatch.setitem(sys.modules, "sklearn", None)  # ``import sklearn`` raises
    config = {"project": "no-sklearn",
              "models": [{"name": "lr", "source": "sklearn:LogisticRegression"}],
              "datasets": [{"name": str(tmp_path / "data.csv"), "task": "classification"}],
              "monitoring": {"repetitions": 1, "warmup": 0},
              "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                         "output_dir": str(tmp_path / "out")}}
    meter = EnergyMeter([FakeSensor(power_w=5.0)])
    runs = wattprint.Benchmark(config).execute(meter=meter).runs
    meter.close()
    # what names the extra depends on what this process imported before: the recipe or the
    # loader of scikit-learn models
    extra = re.compile(r"(needs variant 'fp32', which failed: )?MissingExtra: [a-z -]+ needs "
                       r"the 'sklearn' extra: pip install 'wattprint\[sklearn\]'")
    assert sorted((r.phase, r.status) for r in runs) == [("inference", "failed"),
                                                         ("training", "failed")]
    assert all(extra.fullmatch(str(r.error)) for r in runs), [r.error for r in runs]


#: Runs the sweep at argv[1] in this process, with no worker per model (``CAN_FORK`` off),
#: wattprint's warnings shown on stderr.
IN_PROCESS = """\
import logging, sys, yaml, wattprint
logging.basicConfig(level=logging.WARNING)
from wattprint.sweep import runner
runner.CAN_FORK = False
wattprint.Benchmark(yaml.safe_load(open(sys.argv[1]))).run(progress=False)
"""


@pytest.mark.filterwarnings(  # Keras's TensorFlow backend, on NumPy 2, as it saves the model
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_a_keras_model_runs_tensorflow_on_the_sweep_s_threads(tmp_path: Path) -> None:
    """A Keras model (TensorFlow backend), and a TensorFlow SavedModel, run TensorFlow on the
    threads the sweep gives them: the model's ``threads``, else the allotted cores; each run
    records them (``tf_threads``); on Keras's torch backend, torch's. With a
    worker per model, each model takes its own; in one process, TensorFlow keeps the threads
    it took first, the next model's runs record those, and a warning says so."""
    import yaml

    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend here")
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    net.save(tmp_path / "net.keras")
    net.export(tmp_path / "saved", verbose=False)  # a TensorFlow SavedModel of it
    own = allotted_cores() + 1
    config = {"project": "tf-threads",
              "models": [{"name": "net-1", "path": str(tmp_path / "net.keras"),
                          "task": "classification", "options": {"threads": 1}},
                         {"name": "net", "path": str(tmp_path / "net.keras"),
                          "task": "classification", "options": {"threads": own}},
                         {"name": "net-cores", "path": str(tmp_path / "net.keras"),
                          "task": "classification"},
                         {"name": "saved", "path": str(tmp_path / "saved"), "trust": True,
                          "task": "classification", "options": {"threads": 1}}],
              "datasets": [{"name": "digits", "task": "classification", "limit": 40}],
              "monitoring": {"repetitions": 1, "warmup": 0},
              "output": {"export_formats": [], "db": "w.db", "output_dir": "out"}}
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    recorded = {}
    for how, command in (("workers", ["-m", "wattprint", "run", "sweep.yaml"]),
                         ("one process", ["-c", IN_PROCESS, "sweep.yaml"])):
        folder = tmp_path / how.replace(" ", "-")
        folder.mkdir()
        (folder / "sweep.yaml").write_text(yaml.safe_dump(config))
        proc = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                              timeout=600, cwd=folder, env=env)
        assert proc.returncode == 0, proc.stderr
        with Store(folder / "w.db", read_only=True) as store:
            runs = store.runs()
        assert {r.status for r in runs} == {"ok"}
        recorded[how] = ({str(r.model_name): dict(r.host or {}) for r in runs},
                         [line for line in proc.stderr.splitlines() if "TensorFlow took" in line])
    assert recorded["workers"] == ({"net-1": {"tf_threads": 1}, "net": {"tf_threads": own},
                                    "net-cores": {"tf_threads": allotted_cores()},
                                    "saved": {"tf_threads": 1}}, [])
    runs, warnings = recorded["one process"]
    assert runs == {"net-1": {"tf_threads": 1}, "net": {"tf_threads": 1},
                    "net-cores": {"tf_threads": 1}, "saved": {"tf_threads": 1}}
    # on the torch backend, a Keras model runs on torch's threads
    pytest.importorskip("torch")
    config["models"] = config["models"][:2]
    (tmp_path / "torch.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "wattprint", "run", "torch.yaml"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**env, "KERAS_BACKEND": "torch"})
    assert proc.returncode == 0, proc.stderr
    with Store(tmp_path / "w.db", read_only=True) as store:
        assert {str(r.model_name): dict(r.host or {}) for r in store.runs()} == {
            "net-1": {"torch_threads": 1}, "net": {"torch_threads": own}}
    expected = [f"model 'net' runs on the 1 threads TensorFlow took when it first ran in this "
                f"process, not {own}: it takes its threads once"]
    if allotted_cores() != 1:
        expected.append("model 'net-cores' runs on the 1 threads TensorFlow took when it first "
                        f"ran in this process, not {allotted_cores()}: it takes its threads "
                        "once")
    assert [w.partition("model ")[1] + w.partition("model ")[2] for w in warnings] == expected


def test_a_scikit_learn_model_takes_the_allotted_cores_within_the_cpu_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing asked, a scikit-learn model's pools take the cores the process is
    allotted: under a limit of 1.5 CPUs, one thread, whatever CPUs the process sees."""
    pytest.importorskip("threadpoolctl")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runs, _ = run_sweep(tmp_path / "free", None, [
        {"name": "lr", "source": "sklearn:LogisticRegression"}])
    assert pools_of(runs) == {("lr", "training"): sized(allotted_cores()),
                              ("lr", "inference"): sized(allotted_cores())}
    mount = tmp_path / "cg"
    group(mount, "/ctr", cpu_max="150000 100000")
    monkeypatch.setattr(_cgroup, "PROC_SELF", proc(tmp_path, "0::/ctr\n", v2_mount(mount)))
    runs, _ = run_sweep(tmp_path / "limited", None, [
        {"name": "lr", "source": "sklearn:LogisticRegression"}])
    assert pools_of(runs) == {("lr", "training"): sized(1), ("lr", "inference"): sized(1)}


def test_the_command_line_shows_an_omp_num_threads_that_is_not_a_count(tmp_path: Path) -> None:
    """``OMP_NUM_THREADS=two wattprint run``: the sweep runs on the cores, says once on
    stderr what it ignored, and its host records no count asked."""
    import yaml

    config = {"project": "omp-two",
              "models": [{"name": "lr", "source": "sklearn:LogisticRegression"}],
              "datasets": [{"name": "digits", "task": "classification", "limit": 60}],
              "monitoring": {"repetitions": 1, "warmup": 0},
              "output": {"export_formats": [], "db": "w.db", "output_dir": "out"}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "wattprint", "run", "sweep.yaml"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "two"})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "OMP_NUM_THREADS='two'" in line]
    assert lines == ["warning: OMP_NUM_THREADS='two' is not a whole number of threads of at "
                     "least 1: ignored; torch and onnxruntime take the cores this process is "
                     "allotted (set it to 1, 2, ...)"]
    with Store(tmp_path / "w.db", read_only=True) as store:
        assert store.sweeps()[0]["host"]["omp_num_threads"] is None
        assert {r.status for r in store.runs()} == {"ok"}
