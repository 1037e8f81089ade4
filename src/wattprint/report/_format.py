"""Figures as short text with their units, and the words for where a figure came from."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from ..score import energy_text

__all__ = [
    "BANDS",
    "PROVENANCE_WORDS",
    "co2_text",
    "component_provenance",
    "date_text",
    "energy_text",
    "number",
    "percent",
    "water_text",
]

#: Stars -> (band letter, colour): the A-E bands of the energy labels and the report's bars.
BANDS: dict[int, tuple[str, str]] = {
    5: ("A", "#1a9850"),
    4: ("B", "#8cc152"),
    3: ("C", "#f2c12e"),
    2: ("D", "#f08a3c"),
    1: ("E", "#d73027"),
}

#: What each provenance word means, as the report's legend and the label say it.
PROVENANCE_WORDS: dict[str, str] = {
    "measured": "read from a hardware energy counter (Intel/AMD RAPL, an NVIDIA energy "
                "counter) at the start and end of the run",
    "sampled": "a hardware power reading (for example NVIDIA power) sampled several times a "
               "second during the run and integrated over time",
    "estimate": "not measured: computed from a model of the hardware (CPU TDP x utilization, "
                "memory size), used where no counter can be read",
    "mixed": "the components (or repetitions) behind the figure do not share one provenance; "
             "the components table says which is which",
    "fake": "a FakeSensor with a known, constant power: test or demo figures, not a "
            "measurement of this machine",
    "none": "no component of the machine was measured for this run",
}


def _scaled(value: float, units: tuple[tuple[float, str], ...]) -> str:
    for scale, unit in units:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    scale, unit = units[-1]
    return f"{value / scale:.3g} {unit}"


def co2_text(grams: float | None) -> str:
    """A mass of CO2 in kg, g, mg or µg: ``"1.2 mg"``."""
    if grams is None:
        return "-"
    if grams == 0:
        return "0 g"
    return _scaled(grams, ((1e3, "kg"), (1.0, "g"), (1e-3, "mg"), (1e-6, "µg")))


def water_text(litres: float | None) -> str:
    """A volume of water in L or mL."""
    if litres is None:
        return "-"
    if litres == 0:
        return "0 L"
    return _scaled(litres, ((1.0, "L"), (1e-3, "mL"), (1e-6, "µL")))


def number(value: object, spec: str = ".3g") -> str:
    """``value`` formatted with ``spec``; ``-`` for None, NaN or a non-number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return format(value, spec)


def percent(value: float | None, spec: str = "+.1f") -> str:
    """A change in percent: ``"-42.0 %"``."""
    return "-" if value is None else f"{format(value, spec)} %"


def date_text(unix_s: float | None) -> str:
    """A unix time as ``YYYY-MM-DD HH:MM UTC``."""
    if unix_s is None:
        return "-"
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def component_provenance(source: object, measured: object) -> str:
    """The provenance word of one component: ``fake``, ``estimate`` or ``measured``."""
    if source in ("fake", "estimate"):
        return str(source)
    return "measured" if measured else "estimate"
