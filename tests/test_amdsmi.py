"""AMD GPUs through AMD SMI, driven by the amdsmi stand-in in ``amdsmi_standin.py``."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from amdsmi_standin import (
    AMDSMI_STATUS_DRIVER_NOT_LOADED,
    StandinAmdGPU,
    make_amdsmi,
)

from wattprint import EnergyMeter
from wattprint.errors import ConfigError, CounterWrapError, SensorError
from wattprint.sensors import (
    CounterSensor,
    MissingSensor,
    PowerSensor,
    Sensor,
    Source,
    _amdsmi_gpus,
    amdsmi,
)
from wattprint.sensors import detect as detect_sensors
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.hardware import detect_hardware

UUIDS = ["1fff74a1-0000-1000-80d3-000000000000", "2fff74a1-0000-1000-80d3-000000000000",
         "3fff74a1-0000-1000-80d3-000000000000"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _no_visible_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIP_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_amdsmi_gpus, "_clock", clock)
    return clock


def gpus(n: int = 2, **kwargs: object) -> list[StandinAmdGPU]:
    return [StandinAmdGPU(uuid=UUIDS[i], **kwargs) for i in range(n)]  # type: ignore[arg-type]


def found(module: types.ModuleType,
          covered: set[str] | None = None) -> tuple[list[Sensor], list[MissingSensor]]:
    return amdsmi.discover(DetectOptions(amdsmi=module), covered or set())


@pytest.fixture
def closing() -> Iterator[list[Sensor]]:
    made: list[Sensor] = []
    yield made
    for s in made:
        s.close()


def test_energy_accumulator_per_gpu_in_joules(clock: Clock, closing: list[Sensor]) -> None:
    module = make_amdsmi(gpus(2, power_w=500.0), clock=clock)
    sensors, missing = found(module)
    closing.extend(sensors)
    assert missing == []
    assert [s.component for s in sensors] == ["gpu:0", "gpu:1"]
    assert [s.name for s in sensors] == ["amdsmi:gpu0", "amdsmi:gpu1"]
    s = sensors[0]
    assert isinstance(s, AmdCounter) and s.source is Source.AMDSMI and s.measured
    assert "AMD Instinct MI300X" in s.description and "AMD SMI index 0" in s.description
    first = s.energy_j()
    clock.t += 2.0  # 500 W for 2 s
    assert s.energy_j() - first == pytest.approx(1000.0, rel=1e-4)
    assert s.watch_interval_s() > 0


AmdCounter = amdsmi.AmdEnergyCounter


def test_power_only_gpu_is_sampled(closing: list[Sensor]) -> None:
    module = make_amdsmi(gpus(1, supports_energy=False, power_w=312.0))
    (s,), missing = found(module)
    closing.append(s)
    assert missing == []
    assert isinstance(s, PowerSensor) and s.measured and s.source is Source.AMDSMI
    assert s.power_w() == 312.0
    assert "current_socket_power" in s.description and "no energy accumulator" in s.description


def test_gpu_with_neither_reading_is_missing() -> None:
    module = make_amdsmi(gpus(1, supports_energy=False, supports_power=False))
    sensors, (why,) = found(module)
    assert sensors == [] and why.backend == "amdsmi"
    assert "no energy accumulator" in why.reason and "no power reading" in why.reason
    assert module.standin.shutdown_count == 1


def test_gpu_failing_mid_window_marks_it_partial() -> None:
    module = make_amdsmi(gpus(1))
    meter = EnergyMeter(["amdsmi"], amdsmi=module, sync_cuda=False)
    with meter.window() as w:
        gpu = module.standin.gpus[0]
        gpu.fail_after_reads = gpu.reads  # the GPU is lost inside the window
        time.sleep(0.01)
    m = w.measurement
    assert m is not None and m.partial
    assert any("amdsmi:gpu0" in e and "amdsmi_get_energy_count" in e for e in m.errors)
    meter.close()
    assert module.standin.shutdown_count == 1


def test_power_only_gpu_failing_raises_sensor_error(closing: list[Sensor]) -> None:
    module = make_amdsmi(gpus(1, supports_energy=False, fail_after_reads=2,
                              fail_error=AMDSMI_STATUS_DRIVER_NOT_LOADED))
    (s,), _ = found(module)
    closing.append(s)
    assert isinstance(s, PowerSensor)
    s.power_w()
    with pytest.raises(SensorError, match="amdsmi_get_power_info failed") as info:
        s.power_w()
    assert isinstance(info.value.__cause__, module.AmdSmiException)


@pytest.mark.parametrize("width", [32, 64])
def test_accumulator_wrap_is_undone(clock: Clock, closing: list[Sensor], width: int) -> None:
    gpu = StandinAmdGPU(uuid=UUIDS[0], power_w=600.0, ticks=float((1 << width) - 1000))
    module = make_amdsmi([gpu], clock=clock)
    (s,), _ = found(module)
    closing.append(s)
    assert isinstance(s, CounterSensor)
    before = s.energy_j()
    clock.t += 0.5  # 300 J = ~19.7 M ticks: past the wrap
    after = s.energy_j()
    assert gpu.ticks > 1 << width  # the stand-in's raw value went round
    assert after - before == pytest.approx(300.0, rel=1e-4)


def test_accumulator_reset_raises_then_stays_monotonic(clock: Clock,
                                                       closing: list[Sensor]) -> None:
    gpu = StandinAmdGPU(uuid=UUIDS[0], ticks=5e10)
    module = make_amdsmi([gpu], clock=clock)
    (s,), _ = found(module)
    closing.append(s)
    assert isinstance(s, CounterSensor)
    first = s.energy_j()
    gpu.ticks = 1000.0  # driver reloaded: far less than a wrap allows
    with pytest.raises(CounterWrapError, match="went back"):
        s.energy_j()
    clock.t += 1.0
    assert s.energy_j() >= first


def test_hip_and_rocr_visible_devices(monkeypatch: pytest.MonkeyPatch,
                                      closing: list[Sensor]) -> None:
    names = ["AMD Instinct MI300X", "AMD Instinct MI210", "AMD Instinct MI250X"]
    module = make_amdsmi([StandinAmdGPU(market_name=n, uuid=u) for n, u in zip(names, UUIDS,
                                                                                strict=True)])
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "2,0")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    sensors, missing = found(module)
    closing.extend(sensors)
    assert missing == []
    assert [(s.component, s.description.split(" (")[0]) for s in sensors] == [
        ("gpu:0", "AMD Instinct MI300X")]


def test_visible_devices_hiding_all_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "")
    sensors, missing = found(make_amdsmi(gpus(2)))
    assert sensors == [] and "hide all 2 GPUs" in missing[-1].reason


def test_covered_gpu_is_skipped_and_said(closing: list[Sensor]) -> None:
    sensors, missing = found(make_amdsmi(gpus(2)), covered={"gpu:0"})
    closing.extend(sensors)
    assert [s.component for s in sensors] == ["gpu:1"]
    assert "already read by an earlier backend" in missing[0].reason


def test_init_failure_says_how_to_fix() -> None:
    sensors, (why,) = found(make_amdsmi(gpus(1), init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED))
    assert sensors == [] and "could not start" in why.reason
    assert why.fix is not None and "amdgpu" in why.fix


@pytest.mark.skipif(importlib.util.find_spec("amdsmi") is not None, reason="amdsmi installed")
def test_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amdsmi, "DRIVER_MARKS", ("/",))  # as if the driver were loaded
    sensors, (why,) = amdsmi.discover(DetectOptions(), set())
    assert sensors == [] and "not installed" in why.reason
    assert why.fix is not None and "wattprint[amd]" in why.fix


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the marks are Linux paths")
def test_without_the_driver_it_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(amdsmi, "DRIVER_MARKS", (str(tmp_path / "kfd"),))
    sensors, (why,) = amdsmi.discover(DetectOptions(), set())
    assert sensors == [] and "no AMD GPU driver is loaded" in why.reason
    assert why.fix is not None and "wattprint[amd]" in why.fix


def test_amdsmi_false_reads_nothing_and_only_refuses_it(tmp_path: Path) -> None:
    assert amdsmi.discover(DetectOptions(amdsmi=False), set()) == ([], [])
    assert not amdsmi.available(DetectOptions(amdsmi=False))
    with pytest.raises(ConfigError, match="amdsmi=False"):
        detect_sensors(amdsmi=False, only=["amdsmi"])


def test_label_and_meter_pass_through(tmp_path: Path) -> None:
    module = make_amdsmi(gpus(1))
    meter = EnergyMeter(powercap_root=str(tmp_path / "none"), nvml=False, amdsmi=module,
                        powermetrics=False, hwmon_root=str(tmp_path / "none"))
    try:
        assert [s.name for s in meter.sensors if s.source is Source.AMDSMI] == ["amdsmi:gpu0"]
        assert detect_hardware(meter.sensors) == "MI300X"
    finally:
        meter.close()
    assert module.standin.shutdown_count == 1


def test_importing_the_backend_imports_no_vendor_module() -> None:
    import subprocess

    code = ("import sys, wattprint.sensors.amdsmi as a; "
            "from wattprint.sensors import detect; detect(); "
            "print('amdsmi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == str(importlib.util.find_spec("amdsmi") is not None)


def test_the_label_flows_into_a_run(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    import wattprint

    meter = EnergyMeter(["amdsmi"], amdsmi=make_amdsmi(gpus(1)), sync_cuda=False)
    try:
        result = wattprint.measure_energy(lambda batch: batch, np.zeros((4, 1)), "m", "t",
                                          num_samples=4, meter=meter, progress=False)
    finally:
        meter.close()
    assert result["hardware"] == "MI300X"
    assert result["components"]["gpu:0"]["source"] == "amdsmi"
    assert result["components"]["gpu:0"]["measured"] is True
