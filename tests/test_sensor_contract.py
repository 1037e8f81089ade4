"""The contract every sensor backend must pass, run against each backend's sensors."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from amdsmi_standin import StandinAmdGPU, make_amdsmi
from hwmon_tree import legacy_nano, orin_nano
from nvml_standin import StandinGPU, make_nvml
from powercap import Zone, build_tree
from powermetrics_replay import __file__ as REPLAY

from wattprint import EnergyMeter, FakeSensor
from wattprint.sensors import CounterSensor, PowerSensor, Sensor, Source, detect
from wattprint.sensors.process import wrap_for_process


def rapl(tmp_path: Path) -> list[Sensor]:
    build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0", energy_uj=5_000), Zone("intel-rapl:0:0", "dram")],
    )
    return list(detect(powercap_root=tmp_path, only=["rapl"]))


def nvml(kind: str) -> Callable[[Path], list[Sensor]]:
    gpu = {
        "counter": StandinGPU(),
        "power": StandinGPU(supports_energy=False),
        "estimate": StandinGPU(supports_energy=False, supports_power=False),
    }[kind]

    def make(tmp_path: Path) -> list[Sensor]:
        return list(detect(powercap_root=tmp_path, nvml=make_nvml([gpu]), only=["nvml"]))

    return make


def amd(kind: str) -> Callable[[Path], list[Sensor]]:
    gpu = {"counter": StandinAmdGPU(), "power": StandinAmdGPU(supports_energy=False)}[kind]

    def make(tmp_path: Path) -> list[Sensor]:
        return list(detect(amdsmi=make_amdsmi([gpu]), only=["amdsmi"]))

    return make


def powermetrics(tmp_path: Path) -> list[Sensor]:
    return list(detect(powermetrics=[sys.executable, REPLAY], only=["powermetrics"]))


def hwmon(board: Callable[[Path], Path]) -> Callable[[Path], list[Sensor]]:
    def make(tmp_path: Path) -> list[Sensor]:
        return list(detect(hwmon_root=board(tmp_path), only=["hwmon"]))

    return make


def estimate(tmp_path: Path) -> list[Sensor]:
    return list(detect(powercap_root=tmp_path / "absent", only=["estimate"]))


def process_share(tmp_path: Path) -> list[Sensor]:
    return wrap_for_process(estimate(tmp_path))


def fake(tmp_path: Path) -> list[Sensor]:
    return [FakeSensor(power_w=12.5, component="gpu:0")]


BACKENDS: dict[str, Callable[[Path], list[Sensor]]] = {
    "rapl": rapl,
    "nvml-counter": nvml("counter"),
    "nvml-power": nvml("power"),
    "nvml-estimate": nvml("estimate"),
    "amdsmi-counter": amd("counter"),
    "amdsmi-power": amd("power"),
    "powermetrics": powermetrics,
    "hwmon-orin": hwmon(orin_nano),
    "hwmon-legacy": hwmon(legacy_nano),
    "estimate": estimate,
    "process-share": process_share,
    "fake": fake,
}


@pytest.fixture(params=list(BACKENDS))
def sensors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Sensor]]:
    found = BACKENDS[request.param](tmp_path)
    assert found, f"{request.param} found no sensor"
    yield found
    for s in found:
        s.close()


def test_identity_and_provenance(sensors: list[Sensor]) -> None:
    names = [s.name for s in sensors]
    assert len(set(names)) == len(names)
    for s in sensors:
        assert isinstance(s, CounterSensor) != isinstance(s, PowerSensor)
        assert ":" in s.name and s.component and s.description
        assert isinstance(s.source, Source) and isinstance(s.measured, bool)
        if s.source in (Source.ESTIMATE, Source.FAKE):
            assert not s.measured, "an estimate or a fake is never a measurement"
        assert s.scope in ("machine", "process")
        data = s.to_dict()
        json.dumps(data)
        assert data["source"] == s.source.value and data["measured"] == s.measured


def test_readings_are_finite_and_counters_monotonic(sensors: list[Sensor]) -> None:
    for s in sensors:
        if isinstance(s, CounterSensor):
            readings = []
            for _ in range(5):
                readings.append(s.energy_j())
                time.sleep(0.002)
            assert all(math.isfinite(r) for r in readings)
            assert readings == sorted(readings)
            interval = s.watch_interval_s()
            assert interval is None or interval > 0
        else:
            assert isinstance(s, PowerSensor)
            w = s.power_w()
            assert math.isfinite(w) and w >= 0


def test_a_meter_window_reports_each_component(sensors: list[Sensor]) -> None:
    meter = EnergyMeter(sensors)
    with meter.window() as w:
        time.sleep(0.02)
    m = w.measurement
    assert m is not None and not m.partial, m and m.errors
    assert set(m.components) == {s.component for s in sensors}
    for comp, part in m.components.items():
        group = [s for s in sensors if s.component == comp]
        assert part.source == group[0].source
        assert part.measured == all(s.measured for s in group)
        assert part.energy_j >= 0
    meter.close()


def test_close_twice_is_harmless(sensors: list[Sensor]) -> None:
    for s in sensors:
        s.close()
        s.close()
