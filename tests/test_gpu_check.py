"""benchmarks/gpu_check.py: one line and exit 0 without a GPU; its logic on the NVML stand-in."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from nvml_standin import StandinGPU, make_nvml

from wattprint.sensors import CounterSensor, PowerSensor, detect

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, on any machine
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no NVIDIA GPU to check here: ")


def test_power_only_hides_the_counter_so_wattprint_samples_power() -> None:
    gpu_check = load_script()
    module = make_nvml([StandinGPU(name="NVIDIA H200", power_mw=123_000)])
    (power,) = detect(nvml=gpu_check.power_only(module), only=["nvml"])
    (counter,) = detect(nvml=module, only=["nvml"])
    try:
        assert isinstance(power, PowerSensor) and not isinstance(power, CounterSensor)
        assert power.power_w() == pytest.approx(123.0)
        assert isinstance(counter, CounterSensor)  # the module itself is unchanged
    finally:
        power.close()
        counter.close()


class FakeTensor:
    pass


def fake_torch() -> types.ModuleType:
    """Enough of torch for the script: products that take 0.2 ms of wall time."""
    torch = types.ModuleType("torch")

    def matmul(a: Any, b: Any, out: Any = None) -> Any:
        end = time.perf_counter() + 2e-4
        while time.perf_counter() < end:
            pass
        return out

    torch.__dict__.update(
        __version__="0.0-fake",
        float16="float16",
        randn=lambda *shape, **kw: FakeTensor(),
        empty_like=lambda t: FakeTensor(),
        matmul=matmul,
        cuda=types.SimpleNamespace(
            is_available=lambda: True, is_initialized=lambda: True, device_count=lambda: 1,
            synchronize=lambda device=None: None, get_device_name=lambda i=0: "NVIDIA H200",
        ),
    )
    return torch


def test_every_section_runs_on_the_standin(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "torch", fake_torch())
    monkeypatch.setitem(sys.modules, "pynvml", make_nvml([StandinGPU(name="NVIDIA H200")]))
    gpu_check = load_script()
    for name, value in [("COMPARE_S", (0.05,)), ("IDLE_S", 0.05), ("POLL_S", 0.05),
                        ("SHORT_S", (0.001, 0.01)), ("SYNC_WORK_S", 0.01)]:
        monkeypatch.setattr(gpu_check, name, value)
    assert gpu_check.main() == 0
    out = capsys.readouterr().out
    for expected in ("hardware label: 'H200' (in the table: True; kind gpu; board power 700 W)",
                     "NVML index 0: 'NVIDIA H200', enforced power limit 700 W",
                     "energy counter against sampled power", "matmul 0.05 s", "idle 0.05 s",
                     "short windows", "counter meter's notes: The window is shorter",
                     "sync on  #0", "sync off #1", "gpu_check: done in"):
        assert expected in out, expected
