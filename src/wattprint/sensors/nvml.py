"""NVIDIA GPUs through NVML (the ``pynvml`` module of ``nvidia-ml-py``), one sensor per visible GPU.

For each GPU that CUDA would show this process, the best reading NVML offers, in this order:

1. :class:`GpuEnergyCounter`: ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
   driver loaded (Volta and newer). A 64-bit counter: it does not wrap in practice.
2. :class:`GpuPowerSensor`: ``nvmlDeviceGetPowerUsage``, milliwatts, sampled by the meter. On
   Ampere and newer (except GA100) NVML reports the average of the last second.
3. :class:`GpuEstimate`: ``TDP x utilisation``, not a measurement. The TDP is the user's
   ``gpu_tdp_w``, else the enforced power limit (``nvmlDeviceGetEnforcedPowerLimit``, mW); the
   utilisation is ``nvmlDeviceGetUtilizationRates(handle).gpu`` (percent of the last sample
   period in which a kernel ran).

Which GPUs, and their numbering, follow ``CUDA_VISIBLE_DEVICES`` (see
:func:`parse_visible_devices`), so that component ``gpu:N`` is what torch calls ``cuda:N``.
Integer entries are NVML indices, which are in PCI bus order; CUDA numbers GPUs fastest first
unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. The two agree when all GPUs are the same model; on a
machine with mixed models set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (a warning is logged otherwise).

The NVML module is a parameter (``DetectOptions.nvml``) so tests inject a stand-in, and
``nvml=False`` turns the backend off; nothing here imports ``pynvml`` or initialises NVML at
import time. The sensors of one :func:`discover` share one ``nvmlInit``; ``nvmlShutdown`` runs
when the last of them is closed.

Each sensor's ``notes(duration_s)`` flags windows shorter than what its reading rests on: the
energy counter's 20-100 ms steps, the 1 s NVML averages power over, the 1/6-1 s utilisation
period; and the counter flags a window over which it did not move at all.

Every ``NVMLError`` raised by a read becomes a :class:`~wattprint.errors.SensorError` naming the
GPU and the NVML call, chained with ``raise ... from err``.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from types import ModuleType

from .._lazy import import_module, installed
from .._log import get_logger
from ..errors import ConfigError, CounterWrapError, SensorError
from .base import CounterSensor, MissingSensor, PowerSensor, Sensor, Source
from .sync import cuda_synchronize  # re-exported: it lived here first

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NamedTuple

    from ._registry import DetectOptions
else:
    from .._typing import NamedTuple

__all__ = [
    "NAME",
    "GpuEnergyCounter",
    "GpuEstimate",
    "GpuPowerSensor",
    "VisibleDevices",
    "available",
    "cuda_synchronize",
    "discover",
    "parse_visible_devices",
]

NAME = "nvml"

log = get_logger(__name__)

_INSTALL_FIX = "pip install 'wattprint[nvidia]'"

# NVML return codes (nvml.h; the same numbers as pynvml.NVML_ERROR_*).
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12
_NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

_INIT_FIXES = {
    _NVML_ERROR_LIBRARY_NOT_FOUND: (
        "install the NVIDIA driver (it ships libnvidia-ml.so.1); in a container, run it with "
        "the NVIDIA Container Toolkit (docker run --gpus all)"
    ),
    _NVML_ERROR_DRIVER_NOT_LOADED: "load the NVIDIA kernel driver; `nvidia-smi` should work",
    _NVML_ERROR_NO_PERMISSION: "give this user read/write access to /dev/nvidia*",
    _NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVML library and the kernel driver differ in version: reboot or reload the driver"
    ),
}
_INIT_FIX_DEFAULT = "check that `nvidia-smi` works on this machine"
#: On Linux, paths of which one exists wherever an NVIDIA driver is loaded (its procfs entry,
#: its control device, and WSL's GPU device). With none of them, NVML cannot start, and
#: ``pynvml`` (tens of milliseconds of ctypes set-up) is not imported to find that out.
DRIVER_MARKS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------


class VisibleDevices(NamedTuple):
    """The GPUs CUDA shows: NVML indices in CUDA's order, and the entry parsing stopped at."""

    indices: tuple[int, ...]
    #: The first entry CUDA would reject (it ignores that entry and all after it), or None.
    stopped_at: str | None = None
    #: Why ``stopped_at`` was rejected.
    stop_reason: str | None = None


def parse_visible_devices(value: str | None, uuids: Sequence[str]) -> VisibleDevices:
    """Resolve a ``CUDA_VISIBLE_DEVICES`` value against the GPUs NVML sees.

    ``uuids[i]`` is the UUID of NVML index ``i`` (``""`` when it could not be read).

    * ``None`` (unset): every GPU, in NVML order.
    * ``""`` (or only spaces): no GPU.
    * A comma list of entries, each an NVML index (``"1"``) or a GPU UUID, in full or any prefix
      of it that names exactly one GPU (``"GPU-8f2c"``), as CUDA accepts. Spaces around entries
      are ignored. The order of the list is the order of the visible GPUs.

    Like CUDA, parsing stops at the first invalid entry: an index out of range, a UUID prefix
    that matches no GPU or more than one, anything else (``"-1"`` hides every GPU this way).
    wattprint also stops at an entry naming a GPU already listed, so no GPU is counted twice, and
    at ``MIG-`` entries: NVML has no energy or power reading per MIG instance.
    """
    if value is None:
        return VisibleDevices(tuple(range(len(uuids))))
    indices: list[int] = []
    if not value.strip():
        return VisibleDevices(())
    for raw in value.split(","):
        entry = raw.strip()
        index, reason = _resolve_entry(entry, uuids)
        if index is not None and index in indices:
            index, reason = None, f"it names NVML index {index} a second time"
        if index is None:
            return VisibleDevices(tuple(indices), stopped_at=entry, stop_reason=reason)
        indices.append(index)
    return VisibleDevices(tuple(indices))


def _resolve_entry(entry: str, uuids: Sequence[str]) -> tuple[int | None, str]:
    if entry.isascii() and entry.isdigit():  # digits 0-9 only
        index = int(entry)
        if index < len(uuids):
            return index, ""
        return None, f"there is no GPU with index {index} ({len(uuids)} GPUs)"
    if entry[:4].upper() == "GPU-":
        prefix = entry.lower()
        found = [i for i, uuid in enumerate(uuids) if uuid and uuid.lower().startswith(prefix)]
        if len(found) == 1:
            return found[0], ""
        if not found:
            return None, "no GPU has a UUID starting with it"
        return None, f"it is the start of {len(found)} GPUs' UUIDs"
    if entry[:4].upper() == "MIG-":
        return None, "MIG instances are not supported: NVML has no energy reading per instance"
    return None, "it is neither a GPU index nor a GPU UUID"


# -- the shared NVML session ----------------------------------------------------------------------


class _Session:
    """One ``nvmlInit``, shared by the sensors of one :func:`discover`.

    ``nvmlShutdown`` runs once, when the last holder lets go.
    """

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._lock = _thread.allocate_lock()
        self._holders: set[int] = set()
        self._done = False

    def hold(self, holder: object) -> None:
        with self._lock:
            self._holders.add(id(holder))

    def release(self, holder: object) -> None:
        with self._lock:
            self._holders.discard(id(holder))
            if self._holders or self._done:
                return
            self._done = True
        try:
            self._module.nvmlShutdown()
        except self._module.NVMLError as err:  # closing must not fail; nothing is lost
            log.debug("nvmlShutdown failed: %s", err)


class _Gpu(NamedTuple):
    """One GPU as NVML sees it, and where it sits among the visible ones."""

    module: ModuleType
    session: _Session
    handle: Any
    nvml_index: int
    ordinal: int
    name: str
    uuid: str

    @property
    def label(self) -> str:
        return f"{self.name} (NVML index {self.nvml_index}, {self.uuid})"


#: The GPU energy counter does not count continuously: it moves in steps, every 20-100 ms on
#: recent GPUs (NVIDIA documents no period; PETSc's notes on its use of
#: ``nvmlDeviceGetTotalEnergyConsumption`` give this range). Shorter windows get a note.
ENERGY_UPDATE_S = 0.1
#: ``nvmlDeviceGetPowerUsage`` is the average of the last second on Ampere and newer GPUs
#: except GA100 (NVML reference); older GPUs report the power now.
POWER_AVERAGE_S = 1.0
#: ``nvmlDeviceGetUtilizationRates`` is a share of a sample period of 1/6 s to 1 s.
UTILISATION_PERIOD_S = 1.0
#: How far apart a window's edge and the sensor's own note of its read may be.
_EDGE_TOLERANCE_S = 1e-3

SHORT_FOR_COUNTER = (
    "The window is shorter than the 20-100 ms steps in which the GPU energy counter moves, so "
    "its GPU energy is whole steps of the counter (often 0 J or one step), not its own."
)
SHORT_FOR_POWER = (
    "The window is shorter than the 1 s over which NVML averages GPU power on Ampere and newer "
    "GPUs (but A100), so its GPU energy is that average times its length, not its own draw."
)
SHORT_FOR_UTILISATION = (
    "The window is shorter than the 1/6 s to 1 s over which NVML measures GPU utilisation, so "
    "its GPU estimate reflects the time before it as much as the window."
)


class _NvmlSensor:
    """What the GPU sensors share: naming, error translation, close."""

    name: str
    _gpu: _Gpu
    _closed: bool

    def _setup(self, gpu: _Gpu) -> None:
        self._gpu = gpu
        self._handle = gpu.handle
        self._nvml_error: type[BaseException] = gpu.module.NVMLError
        self._closed = False
        self.name = f"nvml:gpu{gpu.ordinal}"
        gpu.session.hold(self)

    def _failed(self, call: str, err: BaseException) -> SensorError:
        return SensorError(f"{self.name}: {call} failed on {self._gpu.label}: {err}")

    def _check_open(self) -> None:
        if self._closed:
            raise SensorError(f"{self.name}: read after close()")

    def close(self) -> None:
        """Let go of NVML; the last sensor of a :func:`discover` to close shuts it down."""
        if not self._closed:
            self._closed = True
            self._gpu.session.release(self)


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
        self._setup(gpu)
        self._read = gpu.module.nvmlDeviceGetTotalEnergyConsumption
        self._last_mj = first_mj
        self._offset_mj = 0
        #: When the last read was taken, and when the value it returned was first read.
        self._read_t: float | None = None
        self._same_since_t: float | None = None
        self.component = f"gpu:{gpu.ordinal}"
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
        except self._nvml_error as err:
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
        self._setup(gpu)
        self._read = gpu.module.nvmlDeviceGetPowerUsage
        self.component = f"gpu:{gpu.ordinal}"
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
        except self._nvml_error as err:
            raise self._failed("nvmlDeviceGetPowerUsage", err) from err
        return float(mw) / 1000.0

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the second over which NVML averages power."""
        return (SHORT_FOR_POWER,) if duration_s < POWER_AVERAGE_S else ()


#: Share of TDP an idle GPU is taken to draw. An idle data-centre GPU is not at 0 W: the idle
#: draw nvidia-smi shows is roughly a tenth of the board's limit (about 50-60 W of an A100 SXM's
#: 400 W, 60-80 W of an H100 SXM's 700 W, about 10 W of a T4's 70 W). Same shape as the CPU
#: estimate: ``P = TDP x (idle share + (1 - idle share) x utilisation)``.
GPU_IDLE_FRACTION = 0.1


class GpuEstimate(_NvmlSensor, PowerSensor):
    """An estimate, not a measurement: ``tdp_w x (0.1 + 0.9 x utilisation)``.

    Utilisation is ``nvmlDeviceGetUtilizationRates().gpu / 100``; see :data:`GPU_IDLE_FRACTION`.
    """

    def __init__(self, gpu: _Gpu, tdp_w: float, tdp_from: str, why_not_measured: str) -> None:
        self._setup(gpu)
        self._read = gpu.module.nvmlDeviceGetUtilizationRates
        self.tdp_w = tdp_w
        self.component = f"gpu:{gpu.ordinal}"
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
        except self._nvml_error as err:
            raise self._failed("nvmlDeviceGetUtilizationRates", err) from err
        share = GPU_IDLE_FRACTION + (1.0 - GPU_IDLE_FRACTION) * float(percent) / 100.0
        return self.tdp_w * share

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the period NVML's utilisation is a share of."""
        return (SHORT_FOR_UTILISATION,) if duration_s < UTILISATION_PERIOD_S else ()


# -- the backend ----------------------------------------------------------------------------------


def available(options: DetectOptions) -> bool:
    """True when an NVML module was given or ``pynvml`` is installed, unless NVML is turned off
    (``nvml=False``). Imports nothing."""
    if options.nvml is False:
        return False
    if options.nvml not in (None, True) or "pynvml" in sys.modules:
        return True
    return installed("pynvml")


def discover(
    options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """One sensor per visible GPU whose ``gpu:N`` component is not in ``covered``; none, and
    nothing missing, when NVML is turned off (``nvml=False``)."""
    if options.gpu_tdp_w is not None and not options.gpu_tdp_w > 0:
        raise ConfigError(f"gpu_tdp_w must be > 0 watts, not {options.gpu_tdp_w}")
    if options.nvml is False:
        return [], []
    module = options.nvml
    if module is None or module is True:
        if "pynvml" not in sys.modules:
            if not installed("pynvml"):
                return [], [_missing("nvidia-ml-py is not installed", _INSTALL_FIX)]
            if not _driver_present():
                return [], [_missing(
                    f"no NVIDIA driver is loaded (none of {', '.join(DRIVER_MARKS)} exists)",
                    _INIT_FIXES[_NVML_ERROR_LIBRARY_NOT_FOUND])]
        try:
            module = import_module("pynvml", __package__)
        except ImportError:
            return [], [_missing("nvidia-ml-py is not installed", _INSTALL_FIX)]
    try:
        module.nvmlInit()
    except module.NVMLError as err:
        return [], [_missing(f"NVML could not start: {err}", _init_fix(err))]
    session = _Session(module)
    token = object()
    session.hold(token)  # until the sensors hold it; released at once if there are none
    try:
        return _discover_gpus(module, session, options, covered)
    finally:
        session.release(token)


def _discover_gpus(
    module: ModuleType, session: _Session, options: DetectOptions, covered: set[str]
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


def _warn_if_order_differs(visible_names: Sequence[str]) -> None:
    if len(set(visible_names)) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        log.warning(
            "GPUs of different models (%s) and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA "
            "numbers them fastest first, so gpu:N may not be cuda:N; set "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID",
            ", ".join(sorted(set(visible_names))),
        )


def _driver_present() -> bool:
    """Whether an NVIDIA driver may be loaded: always off Linux, else one of
    :data:`DRIVER_MARKS` exists."""
    return not sys.platform.startswith("linux") or any(map(os.path.exists, DRIVER_MARKS))


def _init_fix(err: BaseException) -> str:
    """How to fix a failed ``nvmlInit``, by its NVML return code (``NVMLError.value``)."""
    code = getattr(err, "value", None)
    return _INIT_FIXES.get(code, _INIT_FIX_DEFAULT) if isinstance(code, int) else _INIT_FIX_DEFAULT


def _text(value: str | bytes) -> str:
    """NVML strings: ``str`` from nvidia-ml-py >= 11.515, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _missing(reason: str, fix: str | None = None) -> MissingSensor:
    return MissingSensor(backend=NAME, reason=reason, fix=fix)
