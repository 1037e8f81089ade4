"""NVIDIA GPUs through NVML, driven by the pynvml stand-in in ``nvml_standin.py``."""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nvml_standin import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    StandinGPU,
    make_nvml,
)

from wattprint.errors import (
    ConfigError,
    CounterWrapError,
    SensorError,
    WattprintError,
)
from wattprint.sensors import CounterSensor, MissingSensor, PowerSensor, Sensor, Source, nvml
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.nvml import GPU_IDLE_FRACTION, cuda_synchronize, parse_visible_devices

UUID_A = "GPU-aaaa1111-2222-3333-4444-555555555555"
UUID_B = "GPU-bbbb1111-2222-3333-4444-555555555555"
UUID_C = "GPU-bbbb9999-2222-3333-4444-555555555555"
PYNVML_INSTALLED = importlib.util.find_spec("pynvml") is not None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


def gpus(n: int = 2, **kwargs: object) -> list[StandinGPU]:
    uuids = [UUID_A, UUID_B, UUID_C]
    return [StandinGPU(uuid=uuids[i], **kwargs) for i in range(n)]  # type: ignore[arg-type]


def found(
    module: types.ModuleType, covered: set[str] | None = None, **options: object
) -> tuple[list[Sensor], list[MissingSensor]]:
    return nvml.discover(DetectOptions(nvml=module, **options), covered or set())  # type: ignore[arg-type]


@pytest.fixture
def closing() -> Iterator[Callable[[list[Sensor]], list[Sensor]]]:
    """Close the sensors a test made, when it ends."""
    made: list[Sensor] = []

    def keep(sensors: list[Sensor]) -> list[Sensor]:
        made.extend(sensors)
        return sensors

    yield keep
    for s in made:
        s.close()


# -- what is found --------------------------------------------------------------------------------


def test_energy_counter_per_gpu_in_joules(clock: Clock) -> None:
    module = make_nvml(gpus(2, power_mw=300_000), clock=clock)
    sensors, missing = found(module)
    assert missing == []
    assert [s.component for s in sensors] == ["gpu:0", "gpu:1"]
    assert [s.name for s in sensors] == ["nvml:gpu0", "nvml:gpu1"]
    s = sensors[0]
    assert isinstance(s, CounterSensor)
    assert s.source is Source.NVML and s.measured
    assert s.watch_interval_s() is None
    assert "NVIDIA H100" in s.description
    assert "NVML index 0" in s.description and UUID_A in s.description

    module.standin.gpus[0].energy_mj = 12_345_678
    assert s.energy_j() == pytest.approx(12_345.678)
    clock.t += 2.0  # 300 W for 2 s
    assert s.energy_j() == pytest.approx(12_345.678 + 600.0)
    for sensor in sensors:
        sensor.close()


def test_energy_counter_advances_with_real_clock() -> None:
    module = make_nvml(gpus(1, power_mw=1_000_000))  # time.perf_counter
    (s,), _ = found(module)
    assert isinstance(s, CounterSensor)
    first = s.energy_j()
    assert s.energy_j() >= first
    s.close()


def test_power_only_gpu(closing: Callable[[list[Sensor]], list[Sensor]]) -> None:
    module = make_nvml(gpus(1, supports_energy=False, power_mw=250_500))
    (s,), missing = found(module)
    closing([s])
    assert missing == []
    assert isinstance(s, PowerSensor) and not isinstance(s, CounterSensor)
    assert s.source is Source.NVML and s.measured
    assert s.power_w() == pytest.approx(250.5)
    assert "nvmlDeviceGetPowerUsage" in s.description and "Not Supported" in s.description


def test_estimate_from_power_limit_and_utilisation(
    closing: Callable[[list[Sensor]], list[Sensor]],
) -> None:
    module = make_nvml(
        gpus(1, supports_energy=False, supports_power=False, util_percent=40,
             power_limit_mw=300_000)
    )
    (s,), missing = found(module)
    closing([s])
    assert missing == []
    assert isinstance(s, PowerSensor)
    assert s.source is Source.ESTIMATE and not s.measured
    # 300 W x (0.1 idle + 0.9 x 40 %): an idle GPU is not taken to draw nothing.
    assert s.power_w() == pytest.approx(300.0 * (GPU_IDLE_FRACTION + 0.9 * 0.4))
    assert "estimate from TDP x utilisation" in s.description
    assert "enforced power limit" in s.description
    module.standin.gpus[0].util_percent = 100
    assert s.power_w() == pytest.approx(300.0)


def test_estimate_prefers_the_given_tdp(closing: Callable[[list[Sensor]], list[Sensor]]) -> None:
    module = make_nvml(gpus(1, supports_energy=False, supports_power=False, util_percent=40))
    (s,), _ = found(module, gpu_tdp_w=200.0)
    closing([s])
    assert isinstance(s, PowerSensor)
    assert s.power_w() == pytest.approx(200.0 * (GPU_IDLE_FRACTION + 0.9 * 0.4))
    assert "200 W (gpu_tdp_w)" in s.description
    module.standin.gpus[0].util_percent = 0
    assert s.power_w() == pytest.approx(200.0 * GPU_IDLE_FRACTION)


def test_estimate_needs_a_tdp() -> None:
    module = make_nvml(
        gpus(1, supports_energy=False, supports_power=False, power_limit_mw=None)
    )
    sensors, (m,) = found(module)
    assert sensors == []
    assert m.backend == "nvml" and "gpu:0" in m.reason and "no power limit" in m.reason
    assert m.fix is not None and "gpu_tdp_w" in m.fix
    assert module.standin.refcount == 0  # nothing holds NVML


def test_gpu_with_no_reading_at_all_is_missing() -> None:
    module = make_nvml(
        gpus(1, supports_energy=False, supports_power=False, util_percent=None)
    )
    sensors, (m,) = found(module, gpu_tdp_w=300.0)
    assert sensors == []
    assert "no energy counter" in m.reason and "no utilisation" in m.reason


def test_bad_gpu_tdp_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gpu_tdp_w"):
        found(make_nvml(gpus(1)), gpu_tdp_w=0.0)


def test_mixed_gpus_each_get_their_best_reading(
    closing: Callable[[list[Sensor]], list[Sensor]],
) -> None:
    module = make_nvml([
        StandinGPU(name="NVIDIA A100", uuid=UUID_A),
        StandinGPU(name="Tesla P100", uuid=UUID_B, supports_energy=False),
        StandinGPU(name="GRID K520", uuid=UUID_C, supports_energy=False, supports_power=False),
    ])
    sensors, missing = found(module)
    closing(sensors)
    assert missing == []
    assert [(s.component, type(s).__name__, s.measured) for s in sensors] == [
        ("gpu:0", "GpuEnergyCounter", True),
        ("gpu:1", "GpuPowerSensor", True),
        ("gpu:2", "GpuEstimate", False),
    ]


def test_covered_components_are_skipped(closing: Callable[[list[Sensor]], list[Sensor]]) -> None:
    module = make_nvml(gpus(2))
    sensors, missing = found(module, covered={"gpu:0"})
    closing(sensors)
    assert [s.component for s in sensors] == ["gpu:1"]
    assert missing == []


def test_gpu_whose_handle_fails_is_missing_and_keeps_its_number(
    closing: Callable[[list[Sensor]], list[Sensor]],
) -> None:
    module = make_nvml([
        StandinGPU(uuid=UUID_A, handle_error=NVML_ERROR_NO_PERMISSION),
        StandinGPU(uuid=UUID_B),
    ])
    sensors, (m,) = found(module)
    closing(sensors)
    assert [s.component for s in sensors] == ["gpu:1"]
    assert "gpu:0" in m.reason and "Insufficient Permissions" in m.reason


def test_legacy_bytes_names_are_decoded(closing: Callable[[list[Sensor]], list[Sensor]]) -> None:
    (s,), _ = found(make_nvml(gpus(1), legacy_bytes=True))
    closing([s])
    assert "NVIDIA H100" in s.description and "b'" not in s.description


# -- failures -------------------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(SensorError, WattprintError)
    assert issubclass(CounterWrapError, SensorError)


@pytest.mark.parametrize(
    ("gpu", "read", "call"),
    [
        (StandinGPU(), "energy_j", "nvmlDeviceGetTotalEnergyConsumption"),
        (StandinGPU(supports_energy=False), "power_w", "nvmlDeviceGetPowerUsage"),
        (
            StandinGPU(supports_energy=False, supports_power=False),
            "power_w",
            "nvmlDeviceGetUtilizationRates",
        ),
    ],
)
def test_gpu_failing_mid_window_raises_sensor_error(
    gpu: StandinGPU, read: str, call: str
) -> None:
    module = make_nvml([gpu])
    (s,), _ = found(module)
    gpu.fail_after_reads = gpu.reads + 1  # one more good read, then the GPU is lost
    getattr(s, read)()
    with pytest.raises(SensorError) as info:
        getattr(s, read)()
    err = info.value
    assert isinstance(err.__cause__, module.NVMLError)
    assert err.__cause__.value == NVML_ERROR_GPU_IS_LOST
    assert "nvml:gpu0" in str(err) and call in str(err) and "GPU is lost" in str(err)
    assert gpu.uuid in str(err)
    s.close()


def test_counter_going_back_raises_then_stays_monotonic(clock: Clock) -> None:
    module = make_nvml(gpus(1, power_mw=0, energy_mj=50_000), clock=clock)
    (s,), _ = found(module)
    assert isinstance(s, CounterSensor)
    assert s.energy_j() == pytest.approx(50.0)
    module.standin.gpus[0].energy_mj = 1_000  # GPU reset: the counter starts again
    with pytest.raises(CounterWrapError, match="went back"):
        s.energy_j()
    module.standin.gpus[0].energy_mj = 3_000
    assert s.energy_j() == pytest.approx(50.0 + 3.0)  # 2 J since the reset, none invented
    s.close()


def test_module_absent_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # nvidia-ml-py absent, also where it is installed: the finders and the import do not see it
    real_installed, real_import = nvml.installed, nvml.import_module

    def installed(name: str) -> bool:
        return False if name == "pynvml" else real_installed(name)

    def import_module(name: str, package: str) -> Any:
        if name == "pynvml":
            raise ModuleNotFoundError("No module named 'pynvml'", name="pynvml")
        return real_import(name, package)

    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.setattr(nvml, "installed", installed)
    monkeypatch.setattr(nvml, "import_module", import_module)
    options = DetectOptions(nvml=None)
    assert not nvml.available(options)
    assert nvml.available(DetectOptions(nvml=make_nvml()))
    sensors, (m,) = nvml.discover(options, set())
    assert sensors == []
    assert m == MissingSensor(
        backend="nvml",
        reason="nvidia-ml-py is not installed",
        fix="pip install 'wattprint[nvidia]'",
    )


@pytest.mark.parametrize(
    ("code", "text", "fix_word"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found", "driver"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded", "nvidia-smi"),
    ],
)
def test_nvml_init_failure_is_missing_with_fix(code: int, text: str, fix_word: str) -> None:
    sensors, (m,) = found(make_nvml(gpus(1), init_error=code))
    assert sensors == []
    assert m.backend == "nvml" and text in m.reason
    assert m.fix is not None and fix_word in m.fix


def test_no_gpu() -> None:
    module = make_nvml([])
    sensors, (m,) = found(module)
    assert sensors == [] and "no GPU" in m.reason
    assert module.standin.refcount == 0


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------


def visible(module: types.ModuleType) -> tuple[list[tuple[str, str]], list[MissingSensor]]:
    sensors, missing = found(module)
    try:
        return [(s.component, s.description) for s in sensors], missing
    finally:
        for s in sensors:
            s.close()


def test_visible_unset_means_all() -> None:
    shown, missing = visible(make_nvml(gpus(3)))
    assert [c for c, _ in shown] == ["gpu:0", "gpu:1", "gpu:2"]
    assert missing == []


def test_visible_reorders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    shown, missing = visible(make_nvml(gpus(2)))
    assert [c for c, _ in shown] == ["gpu:0", "gpu:1"]
    assert "NVML index 1" in shown[0][1] and UUID_B in shown[0][1]
    assert "NVML index 0" in shown[1][1] and UUID_A in shown[1][1]
    assert missing == []


@pytest.mark.parametrize(
    ("value", "indices"),
    [
        (UUID_C, [2]),
        ("GPU-bbbb9", [2]),
        ("gpu-AAAA", [0]),
        (" 2 , GPU-aaaa ", [2, 0]),
    ],
)
def test_visible_by_uuid(monkeypatch: pytest.MonkeyPatch, value: str, indices: list[int]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    shown, missing = visible(make_nvml(gpus(3)))
    assert [nvml_index(d) for _, d in shown] == indices
    assert missing == []


def nvml_index(description: str) -> int:
    match = re.search(r"NVML index (\d+)", description)
    assert match is not None
    return int(match.group(1))


@pytest.mark.parametrize("value", ["", "  ", "-1", "NoDevFiles"])
def test_visible_hides_all(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    module = make_nvml(gpus(2))
    shown, (m,) = visible(module)
    assert shown == []
    assert "CUDA_VISIBLE_DEVICES" in m.reason and "hides all 2 GPUs" in m.reason
    assert module.standin.refcount == 0


@pytest.mark.parametrize(
    ("value", "kept", "why"),
    [
        ("0,7,1", ["gpu:0"], "no GPU with index 7"),
        ("0,GPU-bbbb,1", ["gpu:0"], "start of 2 GPUs"),  # ambiguous prefix
        ("0,GPU-ffff,1", ["gpu:0"], "no GPU has a UUID"),
        ("0,0,1", ["gpu:0"], "second time"),
        ("0,MIG-aaaa1111/1/0", ["gpu:0"], "MIG"),
        ("0,,1", ["gpu:0"], "neither"),
    ],
)
def test_visible_stops_at_first_invalid_entry(
    monkeypatch: pytest.MonkeyPatch, value: str, kept: list[str], why: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    shown, (m,) = visible(make_nvml(gpus(3)))
    assert [c for c, _ in shown] == kept
    assert "ignored" in m.reason and why in m.reason
    assert "NVML index 0" in shown[0][1]


@given(st.permutations(range(5)), st.integers(0, 5))
def test_parse_visible_devices_keeps_the_order_given(order: list[int], n: int) -> None:
    chosen = order[:n]
    uuids = [f"GPU-{i:08x}-0000" for i in range(5)]
    result = parse_visible_devices(",".join(map(str, chosen)), uuids)
    assert result.indices == tuple(chosen)
    assert result.stopped_at is None
    by_uuid = parse_visible_devices(",".join(uuids[i] for i in chosen), uuids)
    assert by_uuid.indices == tuple(chosen)


def test_parse_visible_devices_unset_and_empty() -> None:
    assert parse_visible_devices(None, ["GPU-a", "GPU-b"]).indices == (0, 1)
    assert parse_visible_devices("", ["GPU-a", "GPU-b"]).indices == ()


def test_mixed_models_warn_about_device_order(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER")
    module = make_nvml([StandinGPU(name="A100", uuid=UUID_A), StandinGPU(name="T4", uuid=UUID_B)])
    with caplog.at_level(logging.WARNING, logger="wattprint.sensors.nvml"):
        visible(module)
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in caplog.text


# -- one NVML init, shut down once ----------------------------------------------------------------


def test_sensors_share_one_init_and_close_is_idempotent() -> None:
    module = make_nvml(gpus(2))
    sensors, _ = found(module)
    state = module.standin
    assert (state.init_count, state.refcount) == (1, 1)
    sensors[0].close()
    sensors[0].close()
    assert state.shutdown_count == 0  # the other sensor still needs NVML
    with pytest.raises(SensorError, match="after close"):
        sensors[0].energy_j()  # type: ignore[attr-defined]
    sensors[1].close()
    sensors[1].close()
    assert (state.shutdown_count, state.refcount) == (1, 0)


def test_no_sensor_means_nvml_is_shut_down_at_once() -> None:
    module = make_nvml(gpus(2))
    assert found(module, covered={"gpu:0", "gpu:1"}) == ([], [])
    assert (module.standin.init_count, module.standin.refcount) == (1, 0)


# -- device synchronisation -----------------------------------------------------------------------


def fake_torch(available: bool, initialized: bool, calls: list[object]) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: available,
        is_initialized=lambda: initialized,
        device_count=lambda: 2,
        synchronize=lambda device=None: calls.append(device),
    )
    return torch


def test_cuda_synchronize_waits_for_every_visible_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(True, True, calls))
    cuda_synchronize()
    assert calls == [0, 1]


def test_cuda_synchronize_creates_no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    torch = fake_torch(True, True, calls)
    torch._C = types.SimpleNamespace(  # type: ignore[attr-defined]
        _cuda_hasPrimaryContext=lambda device: device == 1
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    cuda_synchronize()
    assert calls == [1]  # device 0 has no context: synchronising would create one


@pytest.mark.parametrize(("available", "initialized"), [(False, False), (True, False)])
def test_cuda_synchronize_skips_unused_cuda(
    monkeypatch: pytest.MonkeyPatch, available: bool, initialized: bool
) -> None:
    calls: list[object] = []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(available, initialized, calls))
    cuda_synchronize()
    assert calls == []


def test_cuda_synchronize_without_torch_imports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    cuda_synchronize()
    assert "torch" not in sys.modules


def test_importing_the_backend_imports_no_vendor_module() -> None:
    code = (
        "import sys, wattprint.sensors.nvml as m; "
        "assert 'pynvml' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- fidelity and integration ---------------------------------------------------------------------


@pytest.mark.skipif(not PYNVML_INSTALLED, reason="nvidia-ml-py is not installed")
def test_standin_matches_real_pynvml() -> None:  # pragma: no cover - needs nvidia-ml-py
    import pynvml

    standin = make_nvml()
    for name, value in vars(standin).items():
        if name.startswith(("nvml", "NVML")):
            assert hasattr(pynvml, name), name
            if name.startswith("NVML_ERROR_"):
                assert getattr(pynvml, name) == value, name


def test_detect_returns_the_gpu_sensors(tmp_path: Path) -> None:
    pytest.importorskip("wattprint.sensors.rapl", reason="the rapl backend is not written yet")
    from wattprint.sensors import detect

    module = make_nvml(gpus(2))
    detected = detect(powercap_root=tmp_path / "none", nvml=module)
    try:
        gpu_sensors = [s for s in detected if s.source is Source.NVML]
        assert [s.component for s in gpu_sensors] == ["gpu:0", "gpu:1"]
        assert {"gpu:0", "gpu:1"} <= detected.components()
        assert not any(m.backend == "nvml" for m in detected.missing)
    finally:
        for s in detected:
            s.close()
    assert module.standin.refcount == 0


# -- notes: windows too short for the GPU's clocks, counters that do not move --------------------


def test_counter_notes_a_window_shorter_than_its_update_period(clock: Clock) -> None:
    (s,), _ = found(make_nvml(gpus(1), clock=clock))
    (note,) = s.notes(0.004)
    assert note == nvml.SHORT_FOR_COUNTER and "20-100 ms steps" in note
    assert s.notes(0.1) == ()
    s.close()


def test_counter_notes_zero_energy_over_a_long_window(clock: Clock) -> None:
    module = make_nvml(gpus(1, power_mw=0), clock=clock)
    (s,), _ = found(module)
    assert isinstance(s, CounterSensor)
    s.energy_j_at(10.0)
    s.energy_j_at(10.5)  # a GPU at 0 W: the counter did not move
    (note,) = s.notes(0.5)
    assert "gpu:0 did not move during the window (0 J)" in note and "unknown" in note
    module.standin.gpus[0].power_mw = 300_000
    clock.t += 0.5
    s.energy_j_at(11.0)
    assert s.notes(0.5) == ()  # it moved
    clock.t += 1.0
    s.energy_j_at(12.0)  # another read, the counter moved again, then stood still
    s.energy_j_at(12.0 + 1e-4)
    assert s.notes(1e-4) != () and "did not move" not in s.notes(1e-4)[0]  # short, not zero
    s.close()


def test_power_and_estimate_note_windows_shorter_than_their_averaging() -> None:
    power = make_nvml(gpus(1, supports_energy=False))
    estimate = make_nvml(gpus(1, supports_energy=False, supports_power=False))
    (p,), _ = found(power)
    (e,), _ = found(estimate)
    assert "1 s over which NVML averages GPU power" in p.notes(0.2)[0]
    assert "utilisation" in e.notes(0.2)[0]
    assert p.notes(2.0) == () and e.notes(2.0) == ()
    p.close()
    e.close()


def test_meter_puts_the_gpu_notes_in_its_measurements() -> None:
    from wattprint import EnergyMeter

    idle = make_nvml([StandinGPU(power_mw=0)])
    busy = make_nvml([StandinGPU(power_mw=300_000)])
    with EnergyMeter(["nvml"], nvml=idle) as meter:
        short = meter.end(meter.begin("short"))
        meter.begin("long")
        time.sleep(0.15)
        long = meter.end("long")
    assert short.notes == (nvml.SHORT_FOR_COUNTER,)
    assert long.energy_j == 0.0
    assert len(long.notes) == 1 and "did not move" in long.notes[0]
    with EnergyMeter(["nvml"], nvml=busy) as meter:
        meter.begin("long")
        time.sleep(0.15)
        long = meter.end("long")
    assert long.energy_j > 0 and long.notes == ()


# -- turning NVML off -----------------------------------------------------------------------------


@pytest.fixture
def installed_pynvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A "pynvml" that import finds: the stand-in with one GPU."""
    module = make_nvml(gpus(1))
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_nvml_false_reads_no_gpu(installed_pynvml: types.ModuleType) -> None:
    assert not nvml.available(DetectOptions(nvml=False))
    assert nvml.discover(DetectOptions(nvml=False), set()) == ([], [])
    assert installed_pynvml.standin.init_count == 0
    (s,), _ = nvml.discover(DetectOptions(), set())  # the default still finds it
    s.close()


def test_detect_and_meter_pass_nvml_false(tmp_path: Path,
                                          installed_pynvml: types.ModuleType) -> None:
    from wattprint import EnergyMeter
    from wattprint.sensors import detect

    detected = detect(powercap_root=tmp_path / "none", nvml=False)
    try:
        assert not any(s.component.startswith("gpu") for s in detected)
        assert not any(m.backend == "nvml" for m in detected.missing)
    finally:
        for s in detected:
            s.close()
    with EnergyMeter(powercap_root=str(tmp_path / "none"), nvml=False) as meter:
        assert not any(s.source is Source.NVML for s in meter.sensors)
    assert installed_pynvml.standin.init_count == 0
    with pytest.raises(ConfigError, match="nvml=False"):
        detect(nvml=False, only=["nvml"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the driver marks are Linux's")
def test_without_a_driver_pynvml_is_not_imported(tmp_path: Path) -> None:
    # No driver mark on this Linux machine: NVML is missing with the driver's fix, found
    # without importing pynvml (tens of milliseconds of ctypes set-up at each start).
    code = (
        "import sys\n"
        "from wattprint.sensors import nvml\n"
        "from wattprint.sensors._registry import DetectOptions\n"
        f"nvml.DRIVER_MARKS = ({str(tmp_path / 'proc-driver-nvidia')!r},)\n"
        "sensors, missing = nvml.discover(DetectOptions(), set())\n"
        "assert sensors == [] and 'pynvml' not in sys.modules, sys.modules.keys()\n"
        "print(missing[0].reason, '|', missing[0].fix)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    if PYNVML_INSTALLED:
        assert "no NVIDIA driver is loaded" in done.stdout
        assert "proc-driver-nvidia" in done.stdout and "install the NVIDIA driver" in done.stdout
    else:
        assert "nvidia-ml-py is not installed" in done.stdout
