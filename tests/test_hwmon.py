"""Jetson and INA3221/INA238 power rails, on sysfs trees built by ``hwmon_tree.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hwmon_tree import Channel, agx_orin, legacy_nano, orin_nano, set_rail, write_board

from wattprint import EnergyMeter
from wattprint.errors import SensorError
from wattprint.sensors import MissingSensor, PowerSensor, Sensor, Source, detect, hwmon
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.hardware import detect_hardware


def found(root: Path, covered: set[str] | None = None,
          ) -> tuple[list[Sensor], list[MissingSensor]]:
    return hwmon.discover(DetectOptions(hwmon_root=str(root)), covered or set())


@pytest.fixture
def closing() -> Iterator[list[Sensor]]:
    made: list[Sensor] = []
    yield made
    for s in made:
        s.close()


def watts(sensors: list[Sensor]) -> dict[str, float]:
    return {s.component: s.power_w() for s in sensors if isinstance(s, PowerSensor)}


def test_orin_nano_parts_add_up_to_the_input_rail(tmp_path: Path,
                                                  closing: list[Sensor]) -> None:
    sensors, missing = found(orin_nano(tmp_path))
    closing.extend(sensors)
    assert missing == []
    assert all(s.source is Source.HWMON and s.measured for s in sensors)
    assert watts(sensors) == pytest.approx({"cpu+gpu:0": 1.0, "soc": 1.5, "board": 2.5})
    assert sum(watts(sensors).values()) == pytest.approx(5.0)  # VDD_IN, never added on top
    (rest,) = [s for s in sensors if s.component == "board"]
    assert set(rest.covers) >= {"cpu", "ram", "gpu:0"}
    assert rest.description.startswith("NVIDIA Jetson Orin Nano Developer Kit: input rail VDD_IN")


def test_readings_follow_the_hardware(tmp_path: Path, closing: list[Sensor]) -> None:
    root = orin_nano(tmp_path)
    sensors, _ = found(root)
    closing.extend(sensors)
    set_rail(root / "hwmon1" / "curr1_input", 2000)  # VDD_IN: 10 W now
    set_rail(root / "hwmon1" / "curr2_input", 1000)  # CPU+GPU+CV: 5 W
    assert watts(sensors) == pytest.approx({"cpu+gpu:0": 5.0, "soc": 1.5, "board": 3.5})


def test_a_meter_on_an_orin_nano_measures_the_input_rail_only(tmp_path: Path) -> None:
    root = orin_nano(tmp_path)
    meter = EnergyMeter(powercap_root=str(tmp_path / "none"), nvml=False, amdsmi=False,
                        powermetrics=False, hwmon_root=str(root), sample_hz=200)
    try:
        assert {s.source for s in meter.sensors} == {Source.HWMON}  # no estimate beside it
        with meter.window() as w:
            time.sleep(0.2)
        m = w.measurement
        assert m is not None and not m.partial
        assert m.energy_j == pytest.approx(5.0 * m.duration_s, rel=0.02)
        assert detect_hardware(meter.sensors) == "Jetson Orin Nano"
    finally:
        meter.close()


def test_agx_orin_has_no_input_rail_so_every_rail_counts(tmp_path: Path,
                                                         closing: list[Sensor]) -> None:
    sensors, missing = found(agx_orin(tmp_path))
    closing.extend(sensors)
    assert missing == []
    assert watts(sensors) == pytest.approx({"gpu:0": 7.6, "cpu": 3.8, "board": 3.0, "ram": 0.5})
    assert not any(s.covers for s in sensors)
    assert detect_hardware(sensors) == "Jetson AGX Orin"


def test_legacy_nano_reads_the_iio_driver(tmp_path: Path, closing: list[Sensor]) -> None:
    root = legacy_nano(tmp_path)
    sensors, missing = found(root)
    closing.extend(sensors)
    assert missing == []
    assert watts(sensors) == pytest.approx({"gpu:0": 0.3, "cpu": 0.6, "board": 1.6})
    assert "ina3221x 6-0040" in sensors[0].description
    assert detect_hardware(sensors) == "Jetson Nano"


def test_a_covered_rail_is_not_read_but_still_taken_from_the_input(
    tmp_path: Path, closing: list[Sensor]
) -> None:
    sensors, missing = found(legacy_nano(tmp_path), covered={"gpu:0"})
    closing.extend(sensors)
    assert watts(sensors) == pytest.approx({"cpu": 0.6, "board": 1.6})
    assert "already read by an earlier backend" in missing[0].reason


def test_board_without_model_is_named_by_its_monitor(tmp_path: Path,
                                                     closing: list[Sensor]) -> None:
    sensors, _ = found(orin_nano(tmp_path, model=None))
    closing.extend(sensors)
    assert sensors[0].description.startswith("ina3221 power monitor: rail")


def test_ina238_power_file_is_used(tmp_path: Path, closing: list[Sensor]) -> None:
    root = write_board(tmp_path, [("ina238", [Channel("VDD_GPU", 12000, 1000)])], None)
    (root / "hwmon1" / "power1_input").write_text("12500000\n")  # µW
    (s,), _ = found(root)
    closing.append(s)
    assert isinstance(s, PowerSensor) and s.component == "gpu:0"
    assert s.power_w() == pytest.approx(12.5)


def test_no_monitor_says_why_and_how(tmp_path: Path) -> None:
    root = write_board(tmp_path, [], None, others=("coretemp", "nvme"))
    sensors, (why,) = found(root)
    assert sensors == [] and why.backend == "hwmon"
    assert "no INA3221/INA238 power monitor" in why.reason
    assert why.fix is not None and "Jetson" in why.fix
    sensors, (why,) = found(tmp_path / "absent")
    assert sensors == [] and "no INA3221/INA238" in why.reason


def test_garbage_reading_raises(tmp_path: Path, closing: list[Sensor]) -> None:
    root = orin_nano(tmp_path)
    sensors, _ = found(root)
    closing.extend(sensors)
    (root / "hwmon1" / "curr3_input").write_text("oops\n")
    soc = next(s for s in sensors if s.component == "soc")
    assert isinstance(soc, PowerSensor)
    with pytest.raises(SensorError, match="not a number"):
        soc.power_w()


def test_read_after_close_raises(tmp_path: Path) -> None:
    sensors, _ = found(orin_nano(tmp_path))
    s = sensors[0]
    s.close()
    s.close()
    assert isinstance(s, PowerSensor)
    with pytest.raises(SensorError, match="after close"):
        s.power_w()
    for other in sensors[1:]:
        other.close()


@pytest.mark.parametrize(("rail", "component"), [
    ("VDD_GPU_SOC", "gpu:0"), ("VDD_CPU_CV", "cpu"), ("VDD_IN", None), ("POM_5V_IN", None),
    ("POM_5V_GPU", "gpu:0"), ("POM_5V_CPU", "cpu"), ("VDD_CPU_GPU_CV", "cpu+gpu:0"),
    ("VDD_SOC", "soc"), ("VDDQ_VDD2_1V8AO", "ram"), ("VDD_SYS_DDR", "ram"),
    ("VIN_SYS_5V0", "board"), ("VDD_4V0_WIFI", "rail:vdd_4v0_wifi"),
])
def test_rail_components(rail: str, component: str | None) -> None:
    assert hwmon.component_of(rail) == component


def test_detect_finds_the_board(tmp_path: Path) -> None:
    detected = detect(powercap_root=tmp_path / "none", nvml=False, amdsmi=False,
                      powermetrics=False, hwmon_root=orin_nano(tmp_path))
    try:
        assert {s.source for s in detected} == {Source.HWMON}
        assert not any(m.backend == "hwmon" for m in detected.missing)
    finally:
        for s in detected:
            s.close()


def test_unknown_rails_beside_an_input_are_not_added(tmp_path: Path,
                                                     closing: list[Sensor]) -> None:
    # A TX2: VDD_IN with module rails on two monitors, and the carrier board's own monitor.
    root = write_board(tmp_path, [
        ("ina3221", [Channel("VDD_SYS_GPU", 5000, 100), Channel("VDD_SYS_SOC", 5000, 200),
                     Channel("VDD_4V0_WIFI", 5000, 20)]),
        ("ina3221", [Channel("VDD_IN", 5000, 800), Channel("VDD_SYS_CPU", 5000, 150),
                     Channel("VDD_SYS_DDR", 5000, 100)]),
        ("ina3221", [Channel("VDD_MUX", 19000, 400), Channel("VDD_5V0_IO_SYS", 5000, 300)]),
    ], "quill")
    sensors, missing = found(root)
    closing.extend(sensors)
    assert missing == []
    assert watts(sensors) == pytest.approx({"gpu:0": 0.5, "soc": 1.0, "cpu": 0.75,
                                            "ram": 0.5, "board": 1.25})
    assert sum(watts(sensors).values()) == pytest.approx(4.0)  # VDD_IN
    rest = next(s for s in sensors if s.component == "board")
    assert "not added: VDD_4V0_WIFI, VDD_MUX, VDD_5V0_IO_SYS" in rest.description


def test_the_board_flows_into_a_run(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    import wattprint

    meter = EnergyMeter(["hwmon"], hwmon_root=str(orin_nano(tmp_path)))
    try:
        result = wattprint.measure_energy(lambda batch: batch, np.zeros((4, 1)), "m", "t",
                                          num_samples=4, meter=meter, progress=False)
    finally:
        meter.close()
    assert result["hardware"] == "Jetson Orin Nano"
    assert set(result["components"]) == {"cpu+gpu:0", "soc", "board"}
    assert result["measured"] is True


def test_sysfs_links_off_i2c_are_not_opened(tmp_path: Path, closing: list[Sensor]) -> None:
    # As in /sys/class/hwmon: links to the devices. Only the I2C device's entry is read.
    devices = tmp_path / "devices"
    board = orin_nano(tmp_path / "board")
    monitor = devices / "platform" / "c240000.i2c" / "i2c-1" / "1-0040" / "hwmon" / "hwmon1"
    monitor.parent.mkdir(parents=True)
    (board / "hwmon1").rename(monitor)
    cpu = devices / "platform" / "coretemp.0" / "hwmon" / "hwmon0"
    cpu.mkdir(parents=True)
    (cpu / "name").write_text("ina3221\n")  # would be read as a monitor if opened
    for name, value in (("in1_label", "VDD_GPU"), ("in1_input", "5000"), ("curr1_input", "9")):
        (cpu / name).write_text(value + "\n")
    root = tmp_path / "class" / "hwmon"
    root.mkdir(parents=True)
    (root / "hwmon0").symlink_to(cpu)
    (root / "hwmon1").symlink_to(monitor)
    sensors, missing = found(root)
    closing.extend(sensors)
    assert missing == []
    assert sorted(s.component for s in sensors) == ["board", "cpu+gpu:0", "soc"]
