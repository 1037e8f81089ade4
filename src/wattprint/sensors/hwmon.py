"""Power rails of NVIDIA Jetson and other boards with INA3221 / INA238 monitors, from sysfs.

Where the rails are read:

* hwmon (current kernels): ``<hwmon_root>/hwmon*/`` whose ``name`` is ``ina3221`` or
  ``ina238``; each channel ``N`` with ``inN_label`` (the rail's name), ``inN_input`` (bus
  voltage, mV) and ``currN_input`` (mA), or ``powerN_input`` (µW) where the driver gives it.
  Disabled channels (``inN_enable`` = 0) and the INA3221's summation channel are skipped.
* The IIO driver of older Jetson kernels (L4T 32 and before): ``<sysfs>/bus/i2c/drivers/
  ina3221x/*/iio:device*/`` with ``rail_name_N`` and ``in_powerN_input`` (mW), where
  ``<sysfs>`` is two levels above ``hwmon_root`` (``/sys`` for ``/sys/class/hwmon``).

Which component each rail is (:func:`component_of`): ``VDD_GPU_SOC``, ``POM_5V_GPU`` ->
``gpu:0``; ``VDD_CPU_CV``, ``POM_5V_CPU`` -> ``cpu``; a rail naming both (``VDD_CPU_GPU_CV``)
-> ``cpu+gpu:0``; ``VDD_SOC`` -> ``soc``; DRAM rails (``VDDQ_*``, ``*_DDR*``) -> ``ram``; a
system supply (``VIN_SYS_5V0``) -> ``board``; other rails -> ``rail:<name>``.

The board's input rail (``VDD_IN``, ``POM_5V_IN``) is the total of the others: it is never
added on top of them. Its sensor reports the rest of the board, the input rail less the rails
read beside it (component ``board``), so that the components add up to the input rail; the
board then covers ``cpu``, ``ram`` and ``gpu:0``, and nothing is estimated beside it. Rails
the table does not know (a TX2's carrier-board rails, ``VDD_MUX``...) are then not read: they
are inside the input, or outside the module. ``VIN_SYS_5V0`` of the Jetson AGX Orin is not an
input: it is the module's 5 V system supply, a branch beside ``VDD_GPU_SOC`` and
``VDD_CPU_CV`` (as ``SYS5V`` is on the AGX Xavier); the AGX Orin has no input rail, and all
of its rails are added.

Every sensor is power only (measured: a power monitor's registers), sampled by the meter. The
board's name (``NVIDIA Jetson Orin Nano Developer Kit``) comes from the device tree
(``<sysfs>/firmware/devicetree/base/model``) and leads each description, so that runs are
filed under the board (:mod:`wattprint.sensors.hardware`).

Detection on a machine without such a monitor lists ``hwmon_root`` once, reads the ``name``
of only those entries that link to an I2C device (the monitors are I2C chips; a server's
``coretemp`` or ``nvme`` entries are skipped by their link) and stats the legacy driver's
folder: microseconds.
"""

from __future__ import annotations

import _thread
import os

from ..errors import SensorError, SensorPermissionError
from .base import MissingSensor, PowerSensor, Sensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._registry import DetectOptions

__all__ = [
    "DEFAULT_HWMON_ROOT",
    "INPUT_RAILS",
    "NAME",
    "RailSensor",
    "RestOfBoard",
    "available",
    "component_of",
    "discover",
]

NAME = "hwmon"
DEFAULT_HWMON_ROOT = "/sys/class/hwmon"
#: hwmon driver names of the power monitors read.
CHIPS = ("ina3221", "ina238")
#: The legacy IIO driver's folder, relative to the sysfs root.
LEGACY_DRIVER = os.path.join("bus", "i2c", "drivers", "ina3221x")
#: Rails that are the board's input: the total of the other rails.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")
#: Components of rails that are not parts of the input: a rail the table does not know (the
#: TX2's carrier-board rails, ``VDD_MUX``...) and a separate system supply. Beside an input
#: rail they are not read: what of them is inside the input is in the rest of the board.
_BRANCHES = ("rail:", "board")

NOT_FOUND_FIX = (
    "on NVIDIA Jetson and boards with INA3221/INA238 power monitors, load the monitor's driver "
    "(ina3221 or ina238; JetPack loads it) so that /sys/class/hwmon/hwmon*/name names it"
)

_READ_BYTES = 32
_pread = os.pread
_CHANNEL = r"^in(\d+)_label$"
_LEGACY_CHANNEL = r"^rail_name_(\d+)$"


def component_of(rail: str) -> str | None:
    """The component a rail powers; ``None`` for the board's input rail (the total)."""
    name = rail.strip().upper()
    if name in INPUT_RAILS:
        return None
    import re  # here, not at import: a first measurement on a machine without rails has none

    words = set(re.split(r"[^A-Z0-9]+", name))
    gpu, cpu = "GPU" in words, "CPU" in words
    if gpu and cpu:
        return "cpu+gpu:0"
    if gpu:
        return "gpu:0"
    if cpu:
        return "cpu"
    if "SOC" in words:
        return "soc"
    if any(w.startswith(("VDDQ", "DDR", "DRAM")) for w in words) or "DDR" in name:
        return "ram"
    if name.startswith(("VIN_SYS", "SYS5V", "VDD_5V_SYS")):
        return "board"
    return "rail:" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class _Rail:
    """One rail: its name, where it is read, and its files: the product of their values
    times ``scale`` is watts (voltage and current: mV x mA x 1e-6; one power file: µW x 1e-6
    or mW x 1e-3)."""

    __slots__ = ("chip", "files", "label", "scale", "where")

    def __init__(self, label: str, where: str, files: tuple[str, ...], scale: float,
                 chip: str) -> None:
        self.label = label
        self.chip = chip
        self.where = where  # for people: ``hwmon1 ina3221 channel 2``
        self.files = files
        self.scale = scale


class _Files:
    """A rail's files, open for the sensor's life and read with ``os.pread``."""

    def __init__(self, rail: _Rail) -> None:
        self.rail = rail
        self.fds: list[int] = []
        try:
            for path in rail.files:
                self.fds.append(os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        except OSError as err:
            self.close()
            raise _error(rail, "opening", err) from err
        self.lock = _thread.allocate_lock()

    def watts(self) -> float:
        value = self.rail.scale
        with self.lock:
            if not self.fds:
                raise SensorError(f"{self.rail.where}: read after close()")
            for fd, path in zip(self.fds, self.rail.files, strict=True):
                try:
                    value *= int(_pread(fd, _READ_BYTES, 0))
                except OSError as err:
                    raise _error(self.rail, "reading", err) from err
                except ValueError as err:
                    raise SensorError(f"{path}: not a number: {err}") from err
        return value

    def close(self) -> None:
        for fd in self.fds:
            try:  # noqa: SIM105 - contextlib.suppress would load contextlib on a first window
                os.close(fd)
            except OSError:  # closing must not fail
                pass
        self.fds = []


def _error(rail: _Rail, doing: str, err: OSError) -> SensorError:
    if isinstance(err, PermissionError):
        return SensorPermissionError(
            f"{rail.where} ({rail.label}): permission denied {doing} {err.filename}",
            fix="run as root, or `sudo chmod a+r` the rail's files (a udev rule keeps it)",
        )
    return SensorError(f"{rail.where} ({rail.label}): {doing} {err.filename} failed: "
                       f"{err.strerror or err}")


class RailSensor(PowerSensor):
    """One rail's power, from its monitor's registers."""

    def __init__(self, rail: _Rail, component: str, board: str) -> None:
        self._files = _Files(rail)
        self.rail = rail
        self.name = f"hwmon:{rail.label.lower()}"
        self.component = component
        self.source = Source.HWMON
        self.measured = True
        self.description = f"{board}: rail {rail.label}, {rail.where}, sampled"

    def power_w(self) -> float:
        return self._files.watts()

    def close(self) -> None:
        self._files.close()


class RestOfBoard(PowerSensor):
    """The board's input rail less the rails read beside it: the rest of the board.

    The input rail is the total; reported this way the components add up to it, and it is
    never counted on top of its parts. Each part's rail is read again here, right after the
    input rail, so that the rest is one instant's difference. It is not clamped: where a part
    rises between the two reads it may dip below 0 W for that instant, and the components
    still add up to the input rail.
    """

    def __init__(self, total: _Rail, parts: Sequence[_Rail], board: str,
                 covers: tuple[str, ...], others: Sequence[str] = ()) -> None:
        self._total = _Files(total)
        self._parts: list[_Files] = []
        try:
            for part in parts:
                self._parts.append(_Files(part))
        except SensorError:
            self.close()
            raise
        self.name = f"hwmon:{total.label.lower()}"
        self.component = "board"
        self.source = Source.HWMON
        self.measured = True
        self.covers = covers
        less = " - ".join(p.label for p in parts)
        self.description = (f"{board}: input rail {total.label} ({total.where})"
                            + (f" - {less}" if less else "") + ": the rest of the board, sampled"
                            + (f" (not added: {', '.join(others)})" if others else ""))

    def power_w(self) -> float:
        return self._total.watts() - sum(p.watts() for p in self._parts)

    def close(self) -> None:
        self._total.close()
        for part in self._parts:
            part.close()


# -- finding the rails ------------------------------------------------------------------------


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(256).decode("utf-8", "replace").strip("\x00 \n\t")
    except OSError:
        return None


def _hwmon_rails(root: str) -> tuple[list[_Rail], list[str]]:
    """The rails of every INA hwmon device under ``root``, and the devices that have none."""
    rails: list[_Rail] = []
    empty: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: _natural(e.name))
    except OSError:
        return [], []
    for entry in entries:
        if entry.is_symlink() and not _on_i2c(entry.path):
            continue  # the monitors are I2C devices: a server's coretemp, nvme... are not read
        chip = _read_text(os.path.join(entry.path, "name"))
        if chip not in CHIPS:
            continue
        found = _chip_rails(entry.path, entry.name, chip)
        rails.extend(found)
        if not found:
            empty.append(f"{entry.name} ({chip})")
    return rails, empty


def _on_i2c(link: str) -> bool:
    """Whether an hwmon entry (a link to its device, as sysfs has it) is an I2C device's."""
    try:
        return "/i2c-" in os.readlink(link)  # .../i2c-1/1-0040/hwmon/hwmon1
    except OSError:
        return True  # cannot tell: read its name


def _chip_rails(path: str, device: str, chip: str) -> list[_Rail]:
    import re

    try:
        files = set(os.listdir(path))
    except OSError:
        return []
    channels = sorted({int(m.group(1)) for f in files if (m := re.match(_CHANNEL, f))})
    if not channels and chip == "ina238":  # one channel, often unlabelled
        channels = [1] if "curr1_input" in files or "power1_input" in files else []
    rails: list[_Rail] = []
    for n in channels:
        label = _read_text(os.path.join(path, f"in{n}_label")) or f"{chip}_{device}_{n}"
        if label.lower().startswith("sum of"):
            continue  # the INA3221's summation channel
        if _read_text(os.path.join(path, f"in{n}_enable")) == "0":
            continue
        where = f"{device} {chip} channel {n}"
        if f"power{n}_input" in files:
            rails.append(_Rail(label, where, (os.path.join(path, f"power{n}_input"),), 1e-6,
                               chip))
        elif f"in{n}_input" in files and f"curr{n}_input" in files:
            rails.append(_Rail(label, where, (os.path.join(path, f"in{n}_input"),
                                              os.path.join(path, f"curr{n}_input")), 1e-6,
                               chip))
    return rails


def _legacy_rails(sysfs: str) -> list[_Rail]:
    """Rails of the ina3221x IIO driver of older Jetson kernels."""
    base = os.path.join(sysfs, LEGACY_DRIVER)
    rails: list[_Rail] = []
    try:
        devices = sorted(d for d in os.listdir(base) if not d.startswith(("bind", "unbind",
                                                                             "uevent", "module")))
    except OSError:
        return []
    for device in devices:
        try:
            iios = sorted(d for d in os.listdir(os.path.join(base, device))
                          if d.startswith("iio:device") or d == "iio_device")
        except OSError:
            continue
        for iio in iios:
            folder = os.path.join(base, device, iio)
            try:
                files = set(os.listdir(folder))
            except OSError:
                continue
            import re  # here: only a board with these rails needs it

            for n in sorted(int(m.group(1)) for f in files if (m := re.match(_LEGACY_CHANNEL, f))):
                label = _read_text(os.path.join(folder, f"rail_name_{n}")) or f"{device}_{n}"
                if f"in_power{n}_input" in files:
                    rails.append(_Rail(label, f"ina3221x {device} {iio} channel {n}",
                                       (os.path.join(folder, f"in_power{n}_input"),), 1e-3,
                                       "ina3221x"))
    return rails


def _natural(name: str) -> tuple[str, int]:
    digits = name.lstrip("abcdefghijklmnopqrstuvwxyz_")
    return (name[: len(name) - len(digits)], int(digits) if digits.isdigit() else -1)


def board_name(sysfs: str) -> str | None:
    """The board's model from the device tree (``/sys/firmware/devicetree/base/model``)."""
    return _read_text(os.path.join(sysfs, "firmware", "devicetree", "base", "model")) or None


# -- the backend ----------------------------------------------------------------------------------


def available(options: DetectOptions) -> bool:
    """True when the hwmon root exists (what is in it is for :func:`discover`)."""
    return os.path.isdir(options.hwmon_root)


def discover(
    options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """One sensor per rail whose component is not in ``covered``; the input rail as the rest
    of the board. Nothing covered twice: a rail two monitors expose under one name is read
    once."""
    root = options.hwmon_root
    sysfs = os.path.dirname(os.path.dirname(os.path.normpath(root)))
    rails, empty = _hwmon_rails(root)
    if not rails:
        rails = _legacy_rails(sysfs)
    if not rails:
        where = f"no INA3221/INA238 power monitor under {root}"
        if empty:
            where = f"INA power monitors without readable rails under {root}: {', '.join(empty)}"
        return [], [MissingSensor(NAME, where, NOT_FOUND_FIX)]
    board = board_name(sysfs) or f"{rails[0].chip} power monitor"
    seen: set[str] = set()
    unique: list[_Rail] = []
    for rail in rails:
        if rail.label.upper() not in seen:
            seen.add(rail.label.upper())
            unique.append(rail)
    total = next((r for r in unique if component_of(r.label) is None), None)
    sensors: list[Sensor] = []
    missing: list[MissingSensor] = []
    parts: list[_Rail] = []
    others: list[str] = []
    try:
        for rail in unique:
            component = component_of(rail.label)
            if component is None:
                continue
            if total is not None and component.startswith(_BRANCHES):
                # Inside the input (and then in the rest of the board) or outside the module
                # (a carrier board's rails): either way not added beside the input.
                others.append(rail.label)
                continue
            if component in covered:
                missing.append(MissingSensor(NAME, f"{rail.label}: {component} is already read "
                                                   "by an earlier backend"))
                if total is None:
                    continue
            else:
                sensors.append(RailSensor(rail, component, board))
            parts.append(rail)
        if total is not None:
            # The input rail holds the whole module: nothing is estimated beside it.
            sensors.append(RestOfBoard(total, parts, board, ("cpu", "ram", "gpu:0"), others))
    except SensorError as err:
        for s in sensors:
            s.close()
        return [], [MissingSensor(NAME, str(getattr(err, "reason", err)),
                                  getattr(err, "fix", None))]
    return sensors, missing

