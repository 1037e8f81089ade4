"""Typed records of what a window measured."""

from __future__ import annotations

from ._frozen import Frozen
from .sensors.base import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from functools import cached_property
    from typing import Any

    from .footprint import Footprint, FootprintModel
else:
    from ._cache import cached_property

__all__ = ["ComponentEnergy", "Measurement"]

#: A component as the meter hands it over: its name, then :class:`ComponentEnergy`'s fields.
_Part = tuple[str, float, Source, bool, str, tuple[str, ...], "float | None"]


class ComponentEnergy(Frozen):
    """The energy of one component (``cpu``, ``ram``, ``gpu:0``) with its provenance.

    ``source`` is ``"rapl"``, ``"nvml"``, ``"amdsmi"``, ``"powermetrics"``, ``"hwmon"``,
    ``"estimate"`` or ``"fake"``; ``measured`` is True only for a hardware counter or power
    register. ``scope`` is ``"process"`` when the figure is this process's share of the
    machine's energy. ``sensors`` names what was read. ``dynamic_j`` is the energy above the
    calibrated idle power, when :meth:`EnergyMeter.calibrate_idle` ran. An immutable record
    (:class:`wattprint._frozen.Frozen`), as a frozen dataclass.
    """

    _fields = ("energy_j", "source", "measured", "scope", "sensors", "dynamic_j")
    energy_j: float
    source: Source
    measured: bool
    scope: str
    sensors: tuple[str, ...]
    dynamic_j: float | None

    def __init__(self, energy_j: float, source: Source, measured: bool, scope: str = "machine",
                 sensors: tuple[str, ...] = (), dynamic_j: float | None = None) -> None:
        fields = self.__dict__
        fields["energy_j"] = energy_j
        fields["source"] = source
        fields["measured"] = measured
        fields["scope"] = scope
        fields["sensors"] = sensors
        fields["dynamic_j"] = dynamic_j

    @classmethod
    def _of(cls, energy_j: float, source: Source, measured: bool, scope: str,
            sensors: tuple[str, ...], dynamic_j: float | None) -> ComponentEnergy:
        """The same record as ``ComponentEnergy(...)`` with every field given, made without a
        call of ``__init__`` (the meter makes these at every window's end;
        ``tests/test_meter.py`` checks the two agree)."""
        made = object.__new__(cls)
        fields = made.__dict__
        fields["energy_j"] = energy_j
        fields["source"] = source
        fields["measured"] = measured
        fields["scope"] = scope
        fields["sensors"] = sensors
        fields["dynamic_j"] = dynamic_j
        return made

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy_j": self.energy_j,
            "source": self.source.value,
            "measured": self.measured,
            "scope": self.scope,
            "sensors": list(self.sensors),
            "dynamic_j": self.dynamic_j,
        }


class Measurement(Frozen):
    """What one window measured.

    ``energy_j`` is the sum over ``components``. A component whose sensor failed inside the
    window is left out (never guessed) and the measurement is ``partial`` with the reason in
    ``errors``. ``idle_j`` and ``dynamic_j`` are set once idle power was calibrated.
    ``samples`` counts the power readings integrated per power-only sensor (0 when every
    sensor is a counter). ``footprint`` is the carbon and water of ``energy_j`` at the
    meter's location, computed on first access. ``notes`` says what a reader should know
    that is no error (a window shorter than a sensor's update period, see
    :meth:`~wattprint.sensors.Sensor.notes`). ``site`` is the resolved location that turns
    ``energy_j`` into the footprint. An immutable record (:class:`wattprint._frozen.Frozen`),
    as a frozen dataclass.
    """

    _fields = ("name", "start", "end", "duration_s", "energy_j", "components", "site", "idle_j",
               "dynamic_j", "samples", "partial", "errors", "notes")
    _hidden = ("site",)
    name: str
    duration_s: float
    energy_j: float
    site: FootprintModel
    idle_j: float | None
    dynamic_j: float | None
    samples: int
    partial: bool
    errors: tuple[str, ...]
    notes: tuple[str, ...]

    def __init__(self, name: str, start: datetime, end: datetime, duration_s: float,
                 energy_j: float, components: Mapping[str, ComponentEnergy],
                 site: FootprintModel, idle_j: float | None = None,
                 dynamic_j: float | None = None, samples: int = 0, partial: bool = False,
                 errors: tuple[str, ...] = (), notes: tuple[str, ...] = ()) -> None:
        fields = self.__dict__
        fields["name"] = name
        fields["start"] = start
        fields["end"] = end
        fields["duration_s"] = duration_s
        fields["energy_j"] = energy_j
        fields["components"] = components
        fields["site"] = site
        fields["idle_j"] = idle_j
        fields["dynamic_j"] = dynamic_j
        fields["samples"] = samples
        fields["partial"] = partial
        fields["errors"] = errors
        fields["notes"] = notes

    @classmethod
    def _of(cls, name: str, start: float, end: float, duration_s: float,
            energy_j: float, components: list[_Part], site: FootprintModel,
            idle_j: float | None, dynamic_j: float | None, samples: int, partial: bool,
            errors: tuple[str, ...], notes: tuple[str, ...]) -> Measurement:
        """The same record as ``Measurement(...)`` with every field given, made without a call
        of ``__init__`` (the meter makes one per window; ``tests/test_meter.py`` checks the two
        agree). ``start`` and ``end`` are :func:`time.time` readings here, and ``components``
        the :class:`ComponentEnergy` fields of each component, after its name: both are made
        into their records when first read (most windows are read for their total only)."""
        made = object.__new__(cls)
        fields = made.__dict__
        fields["name"] = name
        fields["_start_ts"] = start
        fields["_end_ts"] = end
        fields["duration_s"] = duration_s
        fields["energy_j"] = energy_j
        fields["_parts"] = components
        fields["site"] = site
        fields["idle_j"] = idle_j
        fields["dynamic_j"] = dynamic_j
        fields["samples"] = samples
        fields["partial"] = partial
        fields["errors"] = errors
        fields["notes"] = notes
        return made

    @cached_property
    def components(self) -> Mapping[str, ComponentEnergy]:
        """Each component's energy and provenance, by component name. A field: given to
        ``Measurement(...)``, or made from the meter's figures on first access."""
        of = ComponentEnergy._of
        return {part[0]: of(*part[1:]) for part in self.__dict__["_parts"]}

    @cached_property
    def start(self) -> datetime:
        """When the window opened (UTC). A field: given to ``Measurement(...)``, or made
        from the meter's clock reading on first access."""
        from datetime import datetime, timezone  # here: a first window has no use for it

        return datetime.fromtimestamp(self.__dict__["_start_ts"], timezone.utc)

    @cached_property
    def end(self) -> datetime:
        """When the window closed (UTC), as :attr:`start`."""
        from datetime import datetime, timezone

        return datetime.fromtimestamp(self.__dict__["_end_ts"], timezone.utc)

    @cached_property
    def footprint(self) -> Footprint:
        """kWh, CO2 and water of ``energy_j``, with the intensity used and its source."""
        return self.site.of(self.energy_j)

    @property
    def measured(self) -> bool:
        """True when every component comes from a hardware counter or power register."""
        return bool(self.components) and all(c.measured for c in self.components.values())

    @property
    def power_w(self) -> float:
        """Mean power over the window."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    def _repr_html_(self) -> str:
        """A compact table for notebooks, with each figure's provenance (``wattprint._html``)."""
        from ._html import measurement_html

        return measurement_html(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "measured": self.measured,
            "components": {k: v.to_dict() for k, v in self.components.items()},
            "idle_j": self.idle_j,
            "dynamic_j": self.dynamic_j,
            "samples": self.samples,
            "partial": self.partial,
            "errors": list(self.errors),
            "notes": list(self.notes),
            "footprint": self.footprint.to_dict(),
        }
