"""The NVML sensors and the session they share: what :mod:`.nvml` uses once NVML has started.

:func:`open_gpus` lists the GPUs CUDA shows this process and makes the best sensor of each (see
:mod:`.nvml` for the order). A machine without an NVIDIA driver never imports this module.
"""

from __future__ import annotations

import os
import time
from types import ModuleType

from ..errors import CounterWrapError
from ._gpu_library import GpuSensor, LibrarySession
from .base import CounterSensor, MissingSensor, PowerSensor, Sensor, Source
from .nvml import (
    _INIT_FIX_DEFAULT,
    ENERGY_UPDATE_S,
    GPU_IDLE_FRACTION,
    POWER_AVERAGE_S,
    SHORT_FOR_COUNTER,
    SHORT_FOR_POWER,
    SHORT_FOR_UTILISATION,
    UTILISATION_PERIOD_S,
    _missing,
    _warn_if_order_differs,
    log,
    parse_visible_devices,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from ._registry import DetectOptions
else:
    from .._typing import NamedTuple

__all__ = ["GpuEnergyCounter", "GpuEstimate", "GpuPowerSensor", "open_gpus"]

#: How far apart a window's edge and the sensor's own note of its read may be.
_EDGE_TOLERANCE_S = 1e-3


class _Gpu(NamedTuple):
    """One GPU as NVML sees it, and where it sits among the visible ones."""

    module: ModuleType
    session: LibrarySession
    handle: Any
    nvml_index: int
    ordinal: int
    name: str
    uuid: str

    @property
    def label(self) -> str:
        return f"{self.name} (NVML index {self.nvml_index}, {self.uuid})"


class _NvmlSensor(GpuSensor):
    """What the NVML sensors share (see :class:`~._gpu_library.GpuSensor`)."""

    def _setup_nvml(self, gpu: _Gpu) -> None:
        self._setup(gpu, "nvml", gpu.module.NVMLError)


class GpuEnergyCounter(_NvmlSensor, CounterSensor):
    """A GPU's energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since driver load).

    If the counter goes backwards (the driver was reloaded or the GPU reset), the read raises
    :class:`~wattprint.errors.CounterWrapError`; later reads continue from the new value, so
    ``energy_j()`` stays monotonic and the energy across the reset is lost, not invented.

    :meth:`notes` flags a window shorter than the counter's update period
    (:data:`ENERGY_UPDATE_S`), and a window of at least that long over which the counter did
    not move: a GPU draws power even when idle, so 0 J means the counter is not updating
    (Zeus warns on such zero readings too), not that the work was free.
    """

    def __init__(self, gpu: _Gpu, first_mj: int) -> None:
        self._setup_nvml(gpu)
        self._read = gpu.module.nvmlDeviceGetTotalEnergyConsumption
        self._last_mj = first_mj
        self._offset_mj = 0
        #: When the last read was taken, and when the value it returned was first read.
        self._read_t: float | None = None
        self._same_since_t: float | None = None
        self.source = Source.NVML
        self.measured = True
        self.description = (
            f"{gpu.label}: energy counter nvmlDeviceGetTotalEnergyConsumption "
            "(mJ since driver load)"
        )

    def energy_j(self) -> float:
        return self.energy_j_at(time.perf_counter())

    def energy_j_at(self, t: float) -> float:
        self._check_open()
        try:
            mj = int(self._read(self._handle))
        except self._error as err:
            self._read_t = self._same_since_t = None
            raise self._failed("nvmlDeviceGetTotalEnergyConsumption", err) from err
        if mj != self._last_mj or self._same_since_t is None:
            self._same_since_t = t
        self._read_t = t
        if mj < self._last_mj:
            self._offset_mj += self._last_mj
            last, self._last_mj = self._last_mj, mj
            raise CounterWrapError(
                f"{self.name}: the energy counter of {self._gpu.label} went back from {last} "
                f"to {mj} mJ (driver reloaded or GPU reset?); the energy across it is lost"
            )
        self._last_mj = mj
        return (self._offset_mj + mj) / 1000.0

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the counter's update period; a counter that did not move.

        Called by the meter right after the window's last read, so the counter stood still
        over the window if its value has not changed since ``duration_s`` before that read.
        """
        if duration_s < ENERGY_UPDATE_S:
            return (SHORT_FOR_COUNTER,)
        if (
            self._read_t is not None
            and self._same_since_t is not None
            and self._read_t - self._same_since_t >= duration_s - _EDGE_TOLERANCE_S
        ):
            return (
                f"The energy counter of {self.component} did not move during the window (0 J): "
                "a GPU draws power even when idle, so the counter is not updating; treat this "
                "GPU energy as unknown, not as zero.",
            )
        return ()


class GpuPowerSensor(_NvmlSensor, PowerSensor):
    """A GPU's power reading (``nvmlDeviceGetPowerUsage``, mW), for GPUs without a counter."""

    def __init__(self, gpu: _Gpu, why_not_counter: str) -> None:
        self._setup_nvml(gpu)
        self._read = gpu.module.nvmlDeviceGetPowerUsage
        self.source = Source.NVML
        self.measured = True
        self.description = (
            f"{gpu.label}: power nvmlDeviceGetPowerUsage, sampled "
            f"(no energy counter: {why_not_counter})"
        )

    def power_w(self) -> float:
        self._check_open()
        try:
            mw = self._read(self._handle)
        except self._error as err:
            raise self._failed("nvmlDeviceGetPowerUsage", err) from err
        return float(mw) / 1000.0

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the second over which NVML averages power."""
        return (SHORT_FOR_POWER,) if duration_s < POWER_AVERAGE_S else ()


class GpuEstimate(_NvmlSensor, PowerSensor):
    """An estimate, not a measurement: ``tdp_w x (0.1 + 0.9 x utilisation)``.

    Utilisation is ``nvmlDeviceGetUtilizationRates().gpu / 100``; see :data:`GPU_IDLE_FRACTION`.
    """

    def __init__(self, gpu: _Gpu, tdp_w: float, tdp_from: str, why_not_measured: str) -> None:
        self._setup_nvml(gpu)
        self._read = gpu.module.nvmlDeviceGetUtilizationRates
        self.tdp_w = tdp_w
        self.source = Source.ESTIMATE
        self.measured = False
        self.description = (
            f"{gpu.label}: estimate from TDP x utilisation, {tdp_w:g} W ({tdp_from}) x "
            f"({GPU_IDLE_FRACTION:g} + {1 - GPU_IDLE_FRACTION:g} x nvmlDeviceGetUtilizationRates);"
            f" not measured ({why_not_measured})"
        )

    def power_w(self) -> float:
        self._check_open()
        try:
            percent = self._read(self._handle).gpu
        except self._error as err:
            raise self._failed("nvmlDeviceGetUtilizationRates", err) from err
        share = GPU_IDLE_FRACTION + (1.0 - GPU_IDLE_FRACTION) * float(percent) / 100.0
        return self.tdp_w * share

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the period NVML's utilisation is a share of."""
        return (SHORT_FOR_UTILISATION,) if duration_s < UTILISATION_PERIOD_S else ()


# -- the GPUs -------------------------------------------------------------------------------------


def open_gpus(
    module: ModuleType, options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """The sensors of :func:`.nvml.discover` once ``module.nvmlInit()`` has succeeded: one per
    visible GPU whose ``gpu:N`` is not in ``covered``, sharing one session, which is shut down
    at once when there are none."""
    session = LibrarySession(module.nvmlShutdown, module.NVMLError, "nvmlShutdown", log)
    return session.discover(lambda held: _discover_gpus(module, held, options, covered))


def _discover_gpus(
    module: ModuleType, session: LibrarySession, options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    try:
        count = int(module.nvmlDeviceGetCount())
    except module.NVMLError as err:
        return [], [_missing(f"nvmlDeviceGetCount failed: {err}", _INIT_FIX_DEFAULT)]
    if count == 0:
        return [], [_missing("NVML sees no GPU on this machine")]
    handles: list[Any] = []
    names: list[str] = []
    uuids: list[str] = []
    errors: dict[int, str] = {}
    for index in range(count):
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            name = _text(module.nvmlDeviceGetName(handle))
            uuid = _text(module.nvmlDeviceGetUUID(handle))
        except module.NVMLError as err:
            handle, name, uuid = None, "", ""
            errors[index] = str(err)
        handles.append(handle)
        names.append(name)
        uuids.append(uuid)

    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = parse_visible_devices(env, uuids)
    missing: list[MissingSensor] = []
    if not visible.indices:
        reason = f"CUDA_VISIBLE_DEVICES={env!r} hides all {count} GPUs"
        if visible.stopped_at is not None:
            reason += f" (entry {visible.stopped_at!r}: {visible.stop_reason})"
        return [], [_missing(reason, "unset CUDA_VISIBLE_DEVICES or list the GPUs to measure")]
    if visible.stopped_at is not None:
        missing.append(
            _missing(
                f"CUDA_VISIBLE_DEVICES={env!r}: entry {visible.stopped_at!r} and the ones after it "
                f"are ignored, as CUDA does, because {visible.stop_reason}",
                "list GPUs by index or by UUID (nvidia-smi -L shows both)",
            )
        )
    _warn_if_order_differs([names[i] for i in visible.indices])

    sensors: list[Sensor] = []
    for ordinal, index in enumerate(visible.indices):
        if f"gpu:{ordinal}" in covered:
            continue
        if index in errors:
            missing.append(_missing(f"gpu:{ordinal} (NVML index {index}): {errors[index]}"))
            continue
        gpu = _Gpu(module, session, handles[index], index, ordinal, names[index], uuids[index])
        found = _best_sensor(gpu, options.gpu_tdp_w)
        if isinstance(found, MissingSensor):
            missing.append(found)
        else:
            sensors.append(found)
    return sensors, missing


def _best_sensor(gpu: _Gpu, gpu_tdp_w: float | None) -> Sensor | MissingSensor:
    """The counter if it works, else the power reading, else the estimate, else why not."""
    module, handle = gpu.module, gpu.handle
    try:
        return GpuEnergyCounter(gpu, int(module.nvmlDeviceGetTotalEnergyConsumption(handle)))
    except module.NVMLError as err:
        no_counter = str(err)
    try:
        module.nvmlDeviceGetPowerUsage(handle)
        return GpuPowerSensor(gpu, no_counter)
    except module.NVMLError as err:
        no_power = str(err)
    why_not = f"no energy counter: {no_counter}; no power reading: {no_power}"
    tdp_w, tdp_from = gpu_tdp_w, "gpu_tdp_w"
    if tdp_w is None:
        tdp_from = "enforced power limit"
        try:
            tdp_w = module.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        except module.NVMLError as err:
            why_not += f"; no power limit: {err}"
    try:
        module.nvmlDeviceGetUtilizationRates(handle)
    except module.NVMLError as err:
        return _missing(f"gpu:{gpu.ordinal} {gpu.label}: {why_not}; no utilisation: {err}")
    if tdp_w is None or not tdp_w > 0:
        return _missing(
            f"gpu:{gpu.ordinal} {gpu.label}: {why_not}",
            "pass gpu_tdp_w (watts) to estimate its power from utilisation",
        )
    return GpuEstimate(gpu, tdp_w, tdp_from, why_not)


def _text(value: str | bytes) -> str:
    """NVML strings: ``str`` from nvidia-ml-py >= 11.515, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)

