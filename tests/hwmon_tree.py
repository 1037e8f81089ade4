"""Build sysfs trees of boards with INA3221 / INA238 power monitors in a directory.

:func:`orin_nano` writes what a Jetson Orin Nano shows (L4T 35/36: the hwmon ``ina3221``
driver, in mV and mA), :func:`agx_orin` the two monitors of a Jetson AGX Orin, and
:func:`legacy_nano` what a Jetson Nano shows on L4T 32 (the ``ina3221x`` IIO driver under
``bus/i2c/drivers``, power in mW). Each returns the hwmon root to pass as ``hwmon_root``
(``<root>/class/hwmon``); the device-tree model is at ``<root>/firmware/devicetree/base/model``.
:func:`set_rail` changes a rail's reading in place (same inode), as the hardware does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["Channel", "agx_orin", "legacy_nano", "orin_nano", "set_rail", "write_board"]


class Channel:
    """One monitor channel: its rail name and reading (mV and mA; mW on the IIO driver)."""

    def __init__(self, label: str, mv: int, ma: int) -> None:
        self.label, self.mv, self.ma = label, mv, ma


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _model(root: Path, model: str | None) -> None:
    if model is not None:
        _write(root / "firmware" / "devicetree" / "base" / "model", model + "\x00")


def write_board(root: Path, monitors: Sequence[tuple[str, Sequence[Channel]]],
                model: str | None, *, others: Sequence[str] = ("cpu_thermal",)) -> Path:
    """hwmon devices: first ``others`` (sensors that are no power monitor), then one per
    ``(chip name, channels)``. Returns the hwmon root."""
    hwmon = root / "class" / "hwmon"
    hwmon.mkdir(parents=True, exist_ok=True)
    n = 0
    for other in others:
        _write(hwmon / f"hwmon{n}" / "name", other + "\n")
        _write(hwmon / f"hwmon{n}" / "temp1_input", "41000\n")
        n += 1
    for chip, channels in monitors:
        device = hwmon / f"hwmon{n}"
        _write(device / "name", chip + "\n")
        for i, ch in enumerate(channels, start=1):
            _write(device / f"in{i}_label", ch.label + "\n")
            _write(device / f"in{i}_input", f"{ch.mv}\n")
            _write(device / f"curr{i}_input", f"{ch.ma}\n")
            _write(device / f"in{i}_enable", "1\n")
            _write(device / f"in{i + 3}_input", "40\n")  # shunt voltage, unlabelled
        if chip == "ina3221":
            _write(device / "in7_label", "sum of shunt voltages\n")
            _write(device / "in7_input", "120\n")
            _write(device / "curr4_input", "0\n")
        n += 1
    _model(root, model)
    return hwmon


def orin_nano(root: Path, *, vdd_in_ma: int = 1000, cpu_gpu_ma: int = 200,
              soc_ma: int = 300, model: str | None = "NVIDIA Jetson Orin Nano Developer Kit",
              ) -> Path:
    """A Jetson Orin Nano: VDD_IN (the module's input), VDD_CPU_GPU_CV and VDD_SOC, at
    5 V: 5 W in, 1 W CPU+GPU+CV, 1.5 W SOC by default."""
    return write_board(root, [("ina3221", [Channel("VDD_IN", 5000, vdd_in_ma),
                                           Channel("VDD_CPU_GPU_CV", 5000, cpu_gpu_ma),
                                           Channel("VDD_SOC", 5000, soc_ma)])], model)


def agx_orin(root: Path, model: str | None = "NVIDIA Jetson AGX Orin Developer Kit") -> Path:
    """A Jetson AGX Orin: no input rail; GPU+SOC, CPU+CV and the 5 V system supply on one
    monitor, DRAM on another."""
    return write_board(root, [
        ("ina3221", [Channel("VDD_GPU_SOC", 19000, 400), Channel("VDD_CPU_CV", 19000, 200),
                     Channel("VIN_SYS_5V0", 5000, 600)]),
        ("ina3221", [Channel("VDDQ_VDD2_1V8AO", 5000, 100)]),
    ], model)


def legacy_nano(root: Path, powers_mw: Sequence[int] = (2500, 300, 600),
                model: str | None = "NVIDIA Jetson Nano Developer Kit") -> Path:
    """A Jetson Nano on L4T 32: POM_5V_IN, POM_5V_GPU, POM_5V_CPU on the ina3221x IIO driver,
    and an hwmon tree without a power monitor."""
    hwmon = write_board(root, [], model)
    iio = root / "bus" / "i2c" / "drivers" / "ina3221x" / "6-0040" / "iio:device0"
    for n, (label, mw) in enumerate(zip(("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"), powers_mw,
                                        strict=True)):
        _write(iio / f"rail_name_{n}", label + "\n")
        _write(iio / f"in_power{n}_input", f"{mw}\n")
        _write(iio / f"in_voltage{n}_input", "5000\n")
        _write(iio / f"in_current{n}_input", f"{mw // 5}\n")
    _write(root / "bus" / "i2c" / "drivers" / "ina3221x" / "uevent", "")
    return hwmon


def set_rail(path: Path, value: int) -> None:
    """Rewrite one reading file in place (same inode), as the driver's value changes."""
    with open(path, "r+") as f:
        f.seek(0)
        f.write(f"{value}\n")
        f.truncate()
