"""The AMD SMI sensors and the session they share: what :mod:`.amdsmi` uses once AMD SMI has
started.

:func:`open_gpus` lists the GPUs HIP shows this process and makes the best sensor of each (see
:mod:`.amdsmi` for the order). A machine without the amdgpu driver never imports this module.
"""

from __future__ import annotations

import _thread
import os
import time
from types import ModuleType

from ..errors import CounterWrapError, SensorError
from ._gpu_library import GpuSensor, LibrarySession
from .amdsmi import (
    ASSUMED_MAX_POWER_W,
    INIT_FIX,
    POWER_MARGIN,
    READ_SLACK_S,
    _missing,
    log,
    visible_indices,
)
from .base import CounterSensor, MissingSensor, PowerSensor, Sensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["AmdEnergyCounter", "AmdPowerSensor", "open_gpus"]

#: The accumulator's width: 64 bits in the driver's metrics table; older firmware keeps 32.
_WIDTHS = (32, 64)

_clock = time.perf_counter


# -- a GPU and its sensors ------------------------------------------------------------------------


class _Gpu:
    """One GPU as AMD SMI sees it, and where it sits among the visible ones."""

    __slots__ = ("handle", "index", "module", "name", "ordinal", "session", "uuid")

    def __init__(self, module: ModuleType, session: LibrarySession, handle: Any, index: int,
                 ordinal: int, name: str, uuid: str) -> None:
        self.module, self.session, self.handle = module, session, handle
        self.index, self.ordinal, self.name, self.uuid = index, ordinal, name, uuid

    @property
    def label(self) -> str:
        return f"{self.name} (AMD SMI index {self.index}, {self.uuid or 'no UUID'})"


class _AmdSensor(GpuSensor):
    """What the AMD SMI sensors share (see :class:`~._gpu_library.GpuSensor`)."""

    def _setup_amdsmi(self, gpu: _Gpu) -> None:
        self._setup(gpu, "amdsmi", gpu.module.AmdSmiException)


def _accumulator(reading: dict[str, Any]) -> tuple[int, float]:
    """``(ticks, microjoules per tick)`` from an ``amdsmi_get_energy_count`` result."""
    ticks = reading.get("energy_accumulator", reading.get("power"))
    resolution = reading.get("counter_resolution")
    if not isinstance(ticks, int) or isinstance(ticks, bool) or ticks < 0:
        raise ValueError(f"no energy accumulator in {reading!r}")
    if not isinstance(resolution, (int, float)) or not resolution > 0:
        raise ValueError(f"no counter resolution in {reading!r}")
    return ticks, float(resolution)


class AmdEnergyCounter(_AmdSensor, CounterSensor):
    """A GPU's energy accumulator (``amdsmi_get_energy_count``), in joules since detection.

    The accumulator counts ticks of ``counter_resolution`` µJ. When it goes back, it wrapped at
    2^32 (from below 2^32) or 2^64 ticks, if the energy that implies fits in
    :data:`POWER_MARGIN` x :data:`ASSUMED_MAX_POWER_W` x the time since the last read; else it
    was reset (driver reload, GPU reset) and the read raises
    :class:`~wattprint.errors.CounterWrapError`, the next read continuing from the new value.
    The meter reads it every :meth:`watch_interval_s` so that no 32-bit wrap goes unseen.
    """

    def __init__(self, gpu: _Gpu, first: tuple[int, float]) -> None:
        self._setup_amdsmi(gpu)
        self._read = gpu.module.amdsmi_get_energy_count
        self._lock = _thread.allocate_lock()
        self._last_ticks: int | None = first[0]
        self._resolution_uj = first[1]
        self._last_t = _clock()
        self._total_uj = 0.0
        self.source = Source.AMDSMI
        self.measured = True
        self.description = (
            f"{gpu.label}: energy accumulator amdsmi_get_energy_count "
            f"({first[1]:g} µJ per tick)"
        )

    def energy_j(self) -> float:
        self._check_open()
        with self._lock:
            try:
                ticks, resolution = _accumulator(self._read(self._handle))
            except self._error as err:
                self._last_ticks = None
                raise self._failed("amdsmi_get_energy_count", err) from err
            except ValueError as err:
                self._last_ticks = None
                raise SensorError(f"{self.name}: {err}") from err
            now = _clock()
            last, self._last_ticks = self._last_ticks, ticks
            elapsed, self._last_t = now - self._last_t, now
            self._resolution_uj = resolution
            if last is None:  # a fresh baseline after a failure
                return self._total_uj / 1e6
            if ticks >= last:
                self._total_uj += (ticks - last) * resolution
                return self._total_uj / 1e6
            self._total_uj += self._wrapped(last, ticks, elapsed) * resolution
            return self._total_uj / 1e6

    def _wrapped(self, last: int, now: int, elapsed_s: float) -> int:
        limit_uj = POWER_MARGIN * ASSUMED_MAX_POWER_W * 1e6 * (elapsed_s + READ_SLACK_S)
        for bits in _WIDTHS:
            if last < 1 << bits:
                ticks = now - last + (1 << bits)
                if ticks * self._resolution_uj <= limit_uj:
                    return ticks
                break
        raise CounterWrapError(
            f"{self.name}: the energy accumulator of {self._gpu.label} went back from {last} to "
            f"{now} ticks, further than a wrap allows in {elapsed_s:.3f} s (driver reloaded or "
            "GPU reset?); the energy across it is lost"
        )

    def watch_interval_s(self) -> float:
        """A quarter of the shortest time a 32-bit accumulator can take to wrap."""
        wrap_s = (1 << 32) * self._resolution_uj / 1e6 / ASSUMED_MAX_POWER_W
        return max(wrap_s / 4.0, 0.05)


class AmdPowerSensor(_AmdSensor, PowerSensor):
    """A GPU's socket power (``amdsmi_get_power_info``, W), for GPUs without an accumulator."""

    def __init__(self, gpu: _Gpu, key: str, why_not_counter: str) -> None:
        self._setup_amdsmi(gpu)
        self._read = gpu.module.amdsmi_get_power_info
        self._key = key
        self.source = Source.AMDSMI
        self.measured = True
        self.description = (
            f"{gpu.label}: power amdsmi_get_power_info {key}, sampled "
            f"(no energy accumulator: {why_not_counter})"
        )

    def power_w(self) -> float:
        self._check_open()
        try:
            info = self._read(self._handle)
        except self._error as err:
            raise self._failed("amdsmi_get_power_info", err) from err
        value = info.get(self._key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SensorError(f"{self.name}: amdsmi_get_power_info gave {self._key}={value!r} "
                              f"on {self._gpu.label}")
        return float(value)


_POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")


def _power_key(info: dict[str, Any]) -> str | None:
    for key in _POWER_KEYS:
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return key
    return None


# -- the GPUs -------------------------------------------------------------------------------------


def open_gpus(module: ModuleType,
              covered: set[str]) -> tuple[list[Sensor], list[MissingSensor]]:
    """The sensors of :func:`.amdsmi.discover` once ``module.amdsmi_init()`` has succeeded:
    one per visible GPU whose ``gpu:N`` is not in ``covered``, sharing one session, which is
    shut down at once when there are none."""
    session = LibrarySession(module.amdsmi_shut_down, module.AmdSmiException,
                             "amdsmi_shut_down", log)
    return session.discover(lambda held: _discover_gpus(module, held, covered))


def _discover_gpus(
    module: ModuleType, session: LibrarySession, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    try:
        handles = list(module.amdsmi_get_processor_handles())
    except module.AmdSmiException as err:
        return [], [_missing(f"amdsmi_get_processor_handles failed: {err}", INIT_FIX)]
    if not handles:
        return [], [_missing("AMD SMI sees no GPU on this machine")]
    names: list[str] = []
    uuids: list[str] = []
    for handle in handles:
        names.append(_market_name(module, handle))
        try:
            uuids.append(str(module.amdsmi_get_gpu_device_uuid(handle)))
        except module.AmdSmiException:
            uuids.append("")
    rocr = os.environ.get("ROCR_VISIBLE_DEVICES")
    hip = os.environ.get("HIP_VISIBLE_DEVICES")
    indices, stopped = visible_indices(uuids, rocr, hip)
    missing: list[MissingSensor] = []
    if stopped is not None:
        missing.append(_missing(stopped, "list GPUs by index or UUID (amd-smi list shows both)"))
    if not indices:
        return [], [*missing, _missing(
            f"ROCR_VISIBLE_DEVICES={rocr!r}, HIP_VISIBLE_DEVICES={hip!r} hide all "
            f"{len(handles)} GPUs", "unset them or list the GPUs to measure")]
    sensors: list[Sensor] = []
    for ordinal, index in enumerate(indices):
        component = f"gpu:{ordinal}"
        if component in covered:
            missing.append(_missing(f"{component} ({names[index]}) is already read by an "
                                    "earlier backend"))
            continue
        gpu = _Gpu(module, session, handles[index], index, ordinal, names[index], uuids[index])
        found = _best_sensor(gpu)
        if isinstance(found, MissingSensor):
            missing.append(found)
        else:
            sensors.append(found)
    return sensors, missing


def _market_name(module: ModuleType, handle: Any) -> str:
    try:
        name = module.amdsmi_get_gpu_asic_info(handle).get("market_name")
    except module.AmdSmiException:
        name = None
    return str(name).strip() if name and name != "N/A" else "AMD GPU"


def _best_sensor(gpu: _Gpu) -> Sensor | MissingSensor:
    """The accumulator if it works, else the socket power, else why not."""
    module, handle = gpu.module, gpu.handle
    try:
        return AmdEnergyCounter(gpu, _accumulator(module.amdsmi_get_energy_count(handle)))
    except (module.AmdSmiException, ValueError) as err:
        no_counter = str(err)
    try:
        key = _power_key(module.amdsmi_get_power_info(handle))
        no_power = "no socket power in amdsmi_get_power_info (N/A)"
    except module.AmdSmiException as err:
        key, no_power = None, str(err)
    if key is not None:
        return AmdPowerSensor(gpu, key, no_counter)
    return _missing(f"gpu:{gpu.ordinal} {gpu.label}: no energy accumulator: {no_counter}; "
                    f"no power reading: {no_power}")

