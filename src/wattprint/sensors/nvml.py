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

This module is the backend: what detection asks on every machine, and why NVML is missing
where it is. The sensor classes and the GPUs' enumeration are in :mod:`._nvml_gpus`, imported
once NVML has started (the classes are also reached here, by name): a machine without an
NVIDIA driver never loads them.

Each sensor's ``notes(duration_s)`` flags windows shorter than what its reading rests on: the
energy counter's 20-100 ms steps, the 1 s NVML averages power over, the 1/6-1 s utilisation
period; and the counter flags a window over which it did not move at all.

Every ``NVMLError`` raised by a read becomes a :class:`~wattprint.errors.SensorError` naming the
GPU and the NVML call, chained with ``raise ... from err``.
"""

from __future__ import annotations

import os
import sys

from .._lazy import import_module, installed
from .._log import get_logger
from ..errors import ConfigError
from .base import MissingSensor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NamedTuple

    from ._nvml_gpus import GpuEnergyCounter, GpuEstimate, GpuPowerSensor
    from ._registry import DetectOptions
    from .base import Sensor
    from .sync import cuda_synchronize
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


#: The GPU energy counter does not count continuously: it moves in steps, every 20-100 ms on
#: recent GPUs (NVIDIA documents no period; PETSc's notes on its use of
#: ``nvmlDeviceGetTotalEnergyConsumption`` give this range). Shorter windows get a note.
ENERGY_UPDATE_S = 0.1
#: ``nvmlDeviceGetPowerUsage`` is the average of the last second on Ampere and newer GPUs
#: except GA100 (NVML reference); older GPUs report the power now.
POWER_AVERAGE_S = 1.0
#: ``nvmlDeviceGetUtilizationRates`` is a share of a sample period of 1/6 s to 1 s.
UTILISATION_PERIOD_S = 1.0

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


#: Share of TDP an idle GPU is taken to draw. An idle data-centre GPU is not at 0 W: the idle
#: draw nvidia-smi shows is roughly a tenth of the board's limit (about 50-60 W of an A100 SXM's
#: 400 W, 60-80 W of an H100 SXM's 700 W, about 10 W of a T4's 70 W). Same shape as the CPU
#: estimate: ``P = TDP x (idle share + (1 - idle share) x utilisation)``.
GPU_IDLE_FRACTION = 0.1


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
    from ._nvml_gpus import open_gpus

    return open_gpus(module, options, covered)


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


def _missing(reason: str, fix: str | None = None) -> MissingSensor:
    return MissingSensor(backend=NAME, reason=reason, fix=fix)


#: The sensor classes, defined in :mod:`._nvml_gpus` and reached here by name.
_SENSOR_CLASSES = ("GpuEnergyCounter", "GpuEstimate", "GpuPowerSensor")


def __getattr__(name: str) -> Any:
    """:class:`GpuEnergyCounter`, :class:`GpuPowerSensor` and :class:`GpuEstimate`, from
    :mod:`._nvml_gpus`, imported at the first use of one of them; and
    :func:`~wattprint.sensors.sync.cuda_synchronize`, which lived here first."""
    if name in _SENSOR_CLASSES:
        from . import _nvml_gpus

        return getattr(_nvml_gpus, name)
    if name == "cuda_synchronize":
        from .sync import cuda_synchronize

        return cuda_synchronize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
