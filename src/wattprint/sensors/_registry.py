"""The ordered registry of sensor backends and :func:`detect`.

Each backend is one module with ``NAME``, a cheap ``available(options)`` and
``discover(options, covered)`` returning ``(sensors, missing)``. Backends run in order; each
sees the components that earlier ones already cover, so estimation only fills the gaps.
"""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import ConfigError, SensorUnavailable
from .base import Detected, MissingSensor, Sensor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NamedTuple, Protocol

    class Backend(Protocol):
        NAME: str

        def available(self, options: DetectOptions) -> bool: ...

        def discover(
            self, options: DetectOptions, covered: set[str]
        ) -> tuple[list[Sensor], list[MissingSensor]]: ...
else:
    from .._typing import NamedTuple

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
DEFAULT_HWMON_ROOT = "/sys/class/hwmon"
MODES = ("machine", "process")


class DetectOptions(NamedTuple):
    """What backends need to know. Roots and modules are injectable for tests."""

    powercap_root: str = DEFAULT_POWERCAP_ROOT
    #: The NVML module to use; ``None`` (or ``True``) means import ``pynvml`` if installed,
    #: ``False`` turns NVML off.
    nvml: ModuleType | bool | None = None
    #: The AMD SMI module to use; ``None`` (or ``True``) means import ``amdsmi`` if installed,
    #: ``False`` turns AMD GPUs off.
    amdsmi: ModuleType | bool | None = None
    #: The powermetrics argv to run, as given; ``None`` (or ``True``) means the default command
    #: on macOS, ``False`` turns it off.
    powermetrics: Sequence[str] | bool | None = None
    hwmon_root: str = DEFAULT_HWMON_ROOT
    cpu_tdp_w: float | None = None
    gpu_tdp_w: float | None = None
    mode: str = "machine"


def _backends() -> dict[str, Backend]:
    # Imported here, not at package import: backends may touch hardware modules.
    from . import amdsmi, estimate, hwmon, nvml, powermetrics, rapl

    # Order matters: estimation last, so that it fills only what no reading covers; a board's
    # power rails before NVML, so that a Jetson's measured GPU rail is not left for an estimate.
    return {b.NAME: b for b in (rapl, hwmon, nvml, amdsmi, powermetrics, estimate)}


def backend_names() -> tuple[str, ...]:
    return tuple(_backends())


def detect(
    powercap_root: str | os.PathLike[str] | None = None,
    nvml: ModuleType | bool | None = None,
    *,
    amdsmi: ModuleType | bool | None = None,
    powermetrics: Sequence[str] | bool | None = None,
    hwmon_root: str | os.PathLike[str] | None = None,
    cpu_tdp_w: float | None = None,
    gpu_tdp_w: float | None = None,
    mode: str = "machine",
    only: Sequence[str] | None = None,
) -> Detected:
    """Find the sensors of this machine.

    RAPL domains come from the powercap tree at ``powercap_root`` (default
    ``/sys/class/powercap``), GPUs from the NVML module given (default: ``pynvml`` from
    nvidia-ml-py, if installed; ``nvml=False`` reads no GPU, as on a machine without one), AMD
    GPUs from the AMD SMI module given (default: ``amdsmi`` of ROCm, if installed;
    ``amdsmi=False`` turns it off), Apple Silicon from the ``powermetrics`` command given (the
    argv, run as given while a window is open; default on macOS: ``/usr/bin/powermetrics``;
    ``powermetrics=False`` turns it off), Jetson and INA3221/INA238 power rails from the hwmon
    tree at ``hwmon_root`` (default ``/sys/class/hwmon``), and estimation sensors cover what
    no counter covers.

    ``mode="process"`` wraps the machine's CPU counters so that they report this process's
    share, by its share of the machine's busy CPU time.

    ``only`` restricts detection to the named backends (``"rapl"``, ``"nvml"``, ``"amdsmi"``,
    ``"powermetrics"``, ``"hwmon"``, ``"estimate"``);
    a named backend that finds nothing raises :class:`SensorUnavailable` with the reason and fix.
    Nothing found without ``only`` is normal: the result then holds estimates.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    options = DetectOptions(
        powercap_root=(os.fspath(powercap_root) if powercap_root is not None
                       else DEFAULT_POWERCAP_ROOT),
        nvml=nvml,
        amdsmi=amdsmi,
        powermetrics=powermetrics,
        hwmon_root=(os.fspath(hwmon_root) if hwmon_root is not None else DEFAULT_HWMON_ROOT),
        cpu_tdp_w=cpu_tdp_w,
        gpu_tdp_w=gpu_tdp_w,
        mode=mode,
    )
    backends = _backends()
    if only is not None:
        unknown = [name for name in only if name not in backends]
        if unknown:
            raise ConfigError(
                f"unknown sensor backend {unknown[0]!r}; known: {', '.join(backends)}"
            )
        for name, given in (("nvml", nvml), ("amdsmi", amdsmi),
                            ("powermetrics", powermetrics)):
            if given is False and name in only:
                raise ConfigError(
                    f"the {name} backend is asked for but turned off ({name}=False)"
                )
    sensors: list[Sensor] = []
    missing: list[MissingSensor] = []
    covered: set[str] = set()
    for name, backend in backends.items():
        if only is not None and name not in only:
            continue
        found, lacking = backend.discover(options, covered)
        if only is not None and not found and lacking:
            raise SensorUnavailable(f"{name}: {lacking[0].reason}", fix=lacking[0].fix)
        sensors.extend(found)
        missing.extend(lacking)
        covered.update(s.component for s in found)
        covered.update(c for s in found for c in s.covers)
    if mode == "process":
        from .process import wrap_for_process

        sensors = wrap_for_process(sensors)
    return Detected(tuple(sensors), tuple(missing))
