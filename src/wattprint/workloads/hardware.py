"""Hardware profiles: the label a run is filed under, for comparing like with like."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from ..errors import ConfigError
from ..sensors.base import Sensor

__all__ = ["PROFILES", "HardwareProfile", "detect_hardware", "resolve_hardware"]


class HardwareProfile(NamedTuple):
    """A known kind of hardware and its board power (TDP), for labels and estimates."""

    name: str
    kind: str  # "cpu", "gpu" or "soc"
    tdp_w: float | None
    #: Substrings of the device name (as NVML or the CPU reports it) that identify it.
    matches: tuple[str, ...] = ()


#: Makers' published board power: T4 70 W, V100 SXM2 300 W, A100 SXM4 400 W, H100 SXM5 700 W,
#: L4 72 W. Apple does not publish a TDP for its M chips: no figure is assumed.
PROFILES: dict[str, HardwareProfile] = {
    p.name.lower(): p
    for p in (
        HardwareProfile("CPU", "cpu", None),
        HardwareProfile("T4", "gpu", 70.0, ("T4",)),
        HardwareProfile("V100", "gpu", 300.0, ("V100",)),
        HardwareProfile("A100", "gpu", 400.0, ("A100",)),
        HardwareProfile("H100", "gpu", 700.0, ("H100",)),
        HardwareProfile("L4", "gpu", 72.0, ("L4",)),
        HardwareProfile("M1", "soc", None, ("Apple M1",)),
        HardwareProfile("M2", "soc", None, ("Apple M2",)),
        HardwareProfile("M3", "soc", None, ("Apple M3",)),
    )
}


def _mentions(text: str, names: tuple[str, ...]) -> bool:
    """Whole-word match: "L4" is in "NVIDIA L4" but not in "NVIDIA L40S"."""
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def resolve_hardware(name: str) -> HardwareProfile:
    """The profile called ``name`` (any case); anything else is rejected with the list."""
    profile = PROFILES.get(name.strip().lower())
    if profile is None:
        known = ", ".join(p.name for p in PROFILES.values())
        raise ConfigError(f"unknown hardware {name!r}: use 'auto' or one of {known}")
    return profile


def detect_hardware(sensors: Sequence[Sensor]) -> str:
    """The profile name for what the sensors read: the first GPU's, else ``"CPU"``.

    A GPU that matches no profile keeps its own name as NVML reports it.
    """
    for sensor in sensors:
        if sensor.component.startswith("gpu"):
            text = sensor.description
            for profile in PROFILES.values():
                if profile.kind == "gpu" and _mentions(text, profile.matches):
                    return profile.name
            return text.split(" (", 1)[0].split(":", 1)[0] or "GPU"
    for sensor in sensors:
        for profile in PROFILES.values():
            if profile.kind == "soc" and _mentions(sensor.description, profile.matches):
                return profile.name
    return "CPU"
