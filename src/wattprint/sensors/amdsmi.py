"""AMD GPUs through AMD SMI (the ``amdsmi`` module of ROCm), one sensor per visible GPU.

For each GPU that HIP would show this process, the best reading AMD SMI offers:

1. :class:`AmdEnergyCounter`: ``amdsmi_get_energy_count``, an energy accumulator in ticks of
   ``counter_resolution`` microjoules (``energy_accumulator``; ``power`` in ROCm releases before
   6.1). Wraps are undone (see :meth:`AmdEnergyCounter.energy_j`).
2. :class:`AmdPowerSensor`: ``amdsmi_get_power_info``, the socket power in watts
   (``socket_power``, else ``current_socket_power``, else ``average_socket_power``; AMD SMI
   gives ``"N/A"`` for what a GPU lacks), sampled by the meter.

A GPU with neither is missing, with the reason. Which GPUs, and their numbering, follow
``ROCR_VISIBLE_DEVICES`` (applied first) and then ``HIP_VISIBLE_DEVICES`` (positions among
what ROCr shows), so that ``gpu:N`` is what torch on ROCm calls ``cuda:N``. Integer entries
are positions in ``amdsmi_get_processor_handles()``, which lists GPUs in PCI order, as ROCr
does. A ``GPU-...`` entry is matched as a prefix of the UUIDs AMD SMI gives
(``amdsmi_get_gpu_device_uuid``); ROCr's own ``GPU-<16 hex digits>`` IDs are not those, so such
an entry stops parsing, as an invalid one does, and ``wattprint sensors`` says so: list GPUs
by index. ``CUDA_VISIBLE_DEVICES``, which HIP also honours, is left to NVML.

The module is a parameter (``DetectOptions.amdsmi``) so tests inject a stand-in; ``None``
imports the installed ``amdsmi`` (only where the amdgpu driver is loaded, see
:data:`DRIVER_MARKS`, and the import system finds it) and ``amdsmi=False``
turns the backend off. The sensors of one :func:`discover` share one
``amdsmi_init``; ``amdsmi_shut_down`` runs when the last of them is closed. Every
``AmdSmiException`` raised by a read becomes a :class:`~wattprint.errors.SensorError` naming the
GPU and the call, chained with ``raise ... from err``.

This module is the backend: what detection asks on every machine, and why AMD SMI is missing
where it is. The sensor classes and the GPUs' enumeration are in :mod:`._amdsmi_gpus`,
imported once AMD SMI has started (the classes are also reached here, by name): a machine
without the amdgpu driver never loads them.
"""

from __future__ import annotations

import os
import sys

from .._lazy import import_module, installed
from .._log import get_logger
from .base import MissingSensor
from .nvml import parse_visible_devices

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._amdsmi_gpus import AmdEnergyCounter, AmdPowerSensor
    from ._registry import DetectOptions
    from .base import Sensor

__all__ = [
    "ASSUMED_MAX_POWER_W",
    "NAME",
    "AmdEnergyCounter",
    "AmdPowerSensor",
    "available",
    "discover",
    "visible_indices",
]

NAME = "amdsmi"

log = get_logger(__name__)

INSTALL_FIX = (
    "install ROCm (it ships libamd_smi.so and the amdsmi package) and "
    "pip install 'wattprint[amd]'"
)
INIT_FIX = (
    "load the amdgpu kernel driver (`amd-smi list` should work) and give this user access to "
    "/dev/kfd and /dev/dri (the render and video groups)"
)

#: Power a GPU is taken never to exceed when deciding whether a step back of the accumulator
#: is a wrap: well above the 750 W of an MI300X and the 1000 W of an MI355X.
ASSUMED_MAX_POWER_W = 1500.0
#: A step back is a wrap only if the energy it implies fits in this many times
#: :data:`ASSUMED_MAX_POWER_W` x the time since the previous read (+ :data:`READ_SLACK_S`).
POWER_MARGIN = 2.0
READ_SLACK_S = 0.05

#: On Linux, paths of which one exists wherever the amdgpu driver is loaded (its module, and
#: the compute device ROCm uses). With none of them AMD SMI cannot see a GPU, and ``amdsmi``
#: is not looked for (a path search) nor imported (it loads ``libamd_smi.so``).
DRIVER_MARKS = ("/sys/module/amdgpu", "/dev/kfd")


# -- HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES ----------------------------------------------------


def visible_indices(
    uuids: list[str], rocr: str | None, hip: str | None
) -> tuple[tuple[int, ...], str | None]:
    """The AMD SMI indices HIP shows, in HIP's order, and why parsing stopped, if it did.

    ``ROCR_VISIBLE_DEVICES`` picks from every GPU (by index or UUID, as ROCr accepts), then
    ``HIP_VISIBLE_DEVICES`` picks from those by position. Parsing stops at the first invalid
    entry, as the runtime does (see :func:`wattprint.sensors.nvml.parse_visible_devices`).
    """
    first = parse_visible_devices(rocr, uuids)
    indices = first.indices
    stopped = (f"ROCR_VISIBLE_DEVICES={rocr!r}: entry {first.stopped_at!r} and the ones after it "
               f"are ignored: {first.stop_reason}") if first.stopped_at is not None else None
    if hip is not None:
        second = parse_visible_devices(hip, [uuids[i] for i in indices])
        if second.stopped_at is not None and stopped is None:
            stopped = (f"HIP_VISIBLE_DEVICES={hip!r}: entry {second.stopped_at!r} and the ones "
                       f"after it are ignored: {second.stop_reason}")
        indices = tuple(indices[i] for i in second.indices)
    return indices, stopped


# -- the backend ----------------------------------------------------------------------------------


def available(options: DetectOptions) -> bool:
    """True when an AMD SMI module was given or ``amdsmi`` is installed, unless turned off."""
    if options.amdsmi is False:
        return False
    if options.amdsmi not in (None, True) or "amdsmi" in sys.modules:
        return True
    return installed("amdsmi")


def discover(
    options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """One sensor per visible AMD GPU whose ``gpu:N`` is not in ``covered``."""
    if options.amdsmi is False:
        return [], []
    module = options.amdsmi
    if module is None or module is True:
        if "amdsmi" not in sys.modules:
            if not _driver_present():
                return [], [_missing(
                    f"no AMD GPU driver is loaded (none of {', '.join(DRIVER_MARKS)} exists)",
                    f"{INSTALL_FIX}; `amd-smi list` should then show the GPUs")]
            if not installed("amdsmi"):
                return [], [_missing("the amdsmi package (ROCm) is not installed", INSTALL_FIX)]
        try:
            module = import_module("amdsmi", __package__)
        except (ImportError, OSError) as err:  # OSError: libamd_smi.so missing
            return [], [_missing(f"amdsmi cannot be imported: {err}", INSTALL_FIX)]
    try:
        module.amdsmi_init()
    except module.AmdSmiException as err:
        return [], [_missing(f"AMD SMI could not start: {err}", INIT_FIX)]
    from ._amdsmi_gpus import open_gpus

    return open_gpus(module, covered)


def _driver_present() -> bool:
    """Whether the amdgpu driver may be loaded: always off Linux, else one of
    :data:`DRIVER_MARKS` exists."""
    return not sys.platform.startswith("linux") or any(map(os.path.exists, DRIVER_MARKS))


def _missing(reason: str, fix: str | None = None) -> MissingSensor:
    return MissingSensor(backend=NAME, reason=reason, fix=fix)


#: The sensor classes, defined in :mod:`._amdsmi_gpus` and reached here by name.
_SENSOR_CLASSES = ("AmdEnergyCounter", "AmdPowerSensor")


def __getattr__(name: str) -> Any:
    """:class:`AmdEnergyCounter` and :class:`AmdPowerSensor`, from :mod:`._amdsmi_gpus`,
    imported at the first use of one of them."""
    if name in _SENSOR_CLASSES:
        from . import _amdsmi_gpus

        return getattr(_amdsmi_gpus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
