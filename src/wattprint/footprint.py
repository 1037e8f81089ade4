"""From joules to kWh, grams of CO2 and litres of water.

The formulas (see DESIGN.md)::

    kwh             = energy_j / 3.6e6
    co2_g           = kwh x pue x intensity_g_per_kwh
    water_onsite_l  = kwh x wue_l_per_kwh                     (cooling, on IT energy; no PUE)
    water_offsite_l = kwh x pue x water_intensity_l_per_kwh   (the power plants' water)
    water_l         = water_onsite_l + water_offsite_l

The grid's carbon intensity is chosen by exactly one of

* ``country``: an ISO 3166 alpha-2 or alpha-3 code. The Electricity Maps 2024 figure of the zone
  with that alpha-2 code is used when there is one (it is the more recent), else Ember's yearly
  figure for the alpha-3 code. Ember's regional rows (``"World"``, ``"EU"``, ``"OECD"`` ...) are
  accepted too.
* ``zone``: an Electricity Maps zone id such as ``"DE"``, ``"US-CAL-CISO"`` or ``"SE-SE3"``.
* ``cloud_region``: ``"aws:us-east-1"``, ``"gcp:europe-west4"``, ``"azure:westeurope"``, or the bare
  region name when only one provider has it. It is mapped to the Electricity Maps zone that serves
  the region.
* ``carbon_intensity_g_per_kwh``: a number, used as is.

With none of them the world average (Ember's ``World`` row) is used, and the source says so.
Every figure names its dataset, year and key in ``Footprint.intensity_source``.

The grid's water intensity has no per-country data: one figure, the U.S. average
(:data:`DEFAULT_WATER_INTENSITY_L_PER_KWH`), is used everywhere unless
``water_intensity_l_per_kwh`` is given, and ``Footprint.water_intensity_source`` says, outside
the U.S., that it is the U.S. figure used for that place.

The data ships with the package (``wattprint/data``, licences in ``NOTICE.md``) and is read
lazily, once, on first use. No network access, ever.

For a meter that turns many windows into footprints, resolve the location once with
:meth:`FootprintModel.create` and call :meth:`FootprintModel.of` per window (a few µs).

``wattprint.footprint`` is this module, and calling it calls :func:`footprint`::

    import wattprint
    wattprint.footprint(3.6e6, country="DE").co2_g      # the function, as before
    from wattprint.footprint import Site, list_zones    # the module's other names
"""

from __future__ import annotations

import math
import sys
import types
from types import MappingProxyType

from ._data import read_text
from ._frozen import Frozen
from .errors import ConfigError, LocationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from functools import cache
    from typing import Any, NamedTuple
else:
    from ._cache import cache
    from ._typing import NamedTuple

__all__ = [
    "DEFAULT_PUE",
    "DEFAULT_WATER_INTENSITY_L_PER_KWH",
    "DEFAULT_WATER_INTENSITY_SOURCE",
    "DEFAULT_WUE_L_PER_KWH",
    "TIERS",
    "CloudRegion",
    "Country",
    "Footprint",
    "FootprintModel",
    "GridRegion",
    "Site",
    "Tier",
    "Zone",
    "footprint",
    "list_cloud_regions",
    "list_countries",
    "list_regions",
    "list_zones",
    "resolve_intensity",
]

J_PER_KWH = 3.6e6

#: Off-site water: litres consumed by the power plants per kWh drawn from the grid. wattprint
#: ships no per-country water figures (no table it could ship under a known licence was found),
#: so one documented figure is used for every location: the U.S. average electricity water
#: intensity factor (EWIF, water consumed) of 3.14 L/kWh used by Li, Yang, Islam and Ren,
#: "Making AI Less 'Thirsty'" (2023, arXiv:2304.03271). Outside the U.S. the source text says
#: that it is the U.S. figure used for that place. Grids that run on wind, solar or
#: run-of-river hydro use far less, thermal grids with cooling towers more; override with
#: ``water_intensity_l_per_kwh``.
DEFAULT_WATER_INTENSITY_L_PER_KWH = 3.14
DEFAULT_WATER_INTENSITY_SOURCE = (
    "U.S. average grid water consumption 3.14 L/kWh (Li et al. 2023, Making AI Less Thirsty)"
)

_LIST_HINT = " List them with `wattprint locations {what}`."


# --------------------------------------------------------------------------------------------
# Tiers: where the computer runs decides the PUE and the on-site water.


class Tier(NamedTuple):
    """Defaults for a kind of site. Explicit ``pue`` / ``wue_l_per_kwh`` arguments win.

    ``offsite_water`` says whether the grid's water (at the power plants) is counted.
    """

    name: str
    pue: float
    wue_l_per_kwh: float
    offsite_water: bool
    source: str


#: Site kinds and their defaults.
#:
#: * ``datacenter``: PUE 1.56, the industry average PUE reported by the Uptime Institute Global
#:   Data Center Survey 2024; on-site WUE 1.8 L/kWh, the U.S. data-centre average estimated by
#:   Shehabi et al. 2016, "United States Data Center Energy Usage Report" (LBNL-1005775).
#: * ``desktop`` and ``edge``: PUE 1.0 (no facility overhead is counted), WUE 0 (no cooling
#:   water).
#:
#: Every tier counts the grid's off-site water. With no tier and nothing given the defaults are
#: PUE 1.0 and WUE 0.0, with the default grid water intensity.
TIERS: Mapping[str, Tier] = MappingProxyType(
    {
        "datacenter": Tier(
            "datacenter",
            pue=1.56,  # Uptime Institute Global Data Center Survey 2024, average PUE
            wue_l_per_kwh=1.8,  # Shehabi et al. 2016 (LBNL), U.S. data-centre average on-site WUE
            offsite_water=True,
            source="Uptime Institute Global Data Center Survey 2024 (PUE 1.56); "
            "Shehabi et al. 2016, LBNL (WUE 1.8 L/kWh)",
        ),
        "desktop": Tier("desktop", 1.0, 0.0, True, "no facility overhead, no cooling water"),
        "edge": Tier("edge", 1.0, 0.0, True, "no facility overhead, no cooling water"),
    }
)

#: The PUE used when neither ``pue`` nor a ``tier`` is given: no facility overhead is counted.
#: The one default of the meter, :func:`footprint`, the sweep config and the CLI.
DEFAULT_PUE = 1.0
#: The on-site WUE (L/kWh) used when neither ``wue_l_per_kwh`` nor a ``tier`` is given.
DEFAULT_WUE_L_PER_KWH = 0.0


# --------------------------------------------------------------------------------------------
# Records.


_set = object.__setattr__


class Footprint(Frozen):
    """The footprint of an amount of energy at a place. Units are in the names.

    ``energy_j`` is the IT energy measured; ``kwh`` the same in kWh. ``co2_g`` and the off-site
    water include the facility overhead (PUE); the on-site water does not (WUE is defined per
    kWh of IT energy). ``site`` is the site as it was given (None when the footprint was made
    from a bare :class:`FootprintModel`). An immutable record
    (:class:`wattprint._frozen.Frozen`), as a frozen dataclass.
    """

    _fields = ("energy_j", "kwh", "co2_g", "water_l", "water_onsite_l", "water_offsite_l",
                 "intensity_g_per_kwh", "intensity_source", "location", "pue", "wue_l_per_kwh",
                 "water_intensity_l_per_kwh", "water_intensity_source", "tier", "site")
    __slots__ = _fields
    energy_j: float
    kwh: float
    co2_g: float
    water_l: float
    water_onsite_l: float
    water_offsite_l: float
    intensity_g_per_kwh: float
    intensity_source: str
    location: str
    pue: float
    wue_l_per_kwh: float
    water_intensity_l_per_kwh: float
    water_intensity_source: str
    tier: str | None
    site: Site | None

    def __init__(self, energy_j: float, kwh: float, co2_g: float, water_l: float,
                 water_onsite_l: float, water_offsite_l: float, intensity_g_per_kwh: float,
                 intensity_source: str, location: str, pue: float, wue_l_per_kwh: float,
                 water_intensity_l_per_kwh: float, water_intensity_source: str,
                 tier: str | None, site: Site | None = None) -> None:
        _set(self, "energy_j", energy_j)
        _set(self, "kwh", kwh)
        _set(self, "co2_g", co2_g)
        _set(self, "water_l", water_l)
        _set(self, "water_onsite_l", water_onsite_l)
        _set(self, "water_offsite_l", water_offsite_l)
        _set(self, "intensity_g_per_kwh", intensity_g_per_kwh)
        _set(self, "intensity_source", intensity_source)
        _set(self, "location", location)
        _set(self, "pue", pue)
        _set(self, "wue_l_per_kwh", wue_l_per_kwh)
        _set(self, "water_intensity_l_per_kwh", water_intensity_l_per_kwh)
        _set(self, "water_intensity_source", water_intensity_source)
        _set(self, "tier", tier)
        _set(self, "site", site)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the site as given under ``site``)."""
        return {
            "energy_j": self.energy_j,
            "kwh": self.kwh,
            "co2_g": self.co2_g,
            "water_l": self.water_l,
            "water_onsite_l": self.water_onsite_l,
            "water_offsite_l": self.water_offsite_l,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "intensity_source": self.intensity_source,
            "location": self.location,
            "pue": self.pue,
            "wue_l_per_kwh": self.wue_l_per_kwh,
            "water_intensity_l_per_kwh": self.water_intensity_l_per_kwh,
            "water_intensity_source": self.water_intensity_source,
            "tier": self.tier,
            "site": None if self.site is None else self.site.to_dict(),
        }


_LOCATION_KEYS = ("country", "zone", "cloud_region", "carbon_intensity_g_per_kwh")
_SITE_NUMBERS = (
    ("carbon_intensity_g_per_kwh", 0.0, "g/kWh"),
    ("pue", 1.0, "(total facility energy / IT energy)"),
    ("wue_l_per_kwh", 0.0, "L/kWh"),
    ("water_intensity_l_per_kwh", 0.0, "L/kWh"),
)


class Site(Frozen):
    """Where the energy was used: the grid, the facility and its water. Declared once.

    The same value is accepted by :class:`~wattprint.EnergyMeter` (``site=``),
    :func:`footprint` (``site=``), the sweep config's ``location:`` section and the CLI's
    ``measure`` options. At most one of ``country``, ``zone``, ``cloud_region`` or
    ``carbon_intensity_g_per_kwh`` (none: the world average). ``tier`` (one of :data:`TIERS`)
    sets the default ``pue`` and ``wue_l_per_kwh``; explicit values win; without a tier they are
    :data:`DEFAULT_PUE` and :data:`DEFAULT_WUE_L_PER_KWH`. ``water_intensity_l_per_kwh`` is the
    grid's off-site water, by default :data:`DEFAULT_WATER_INTENSITY_L_PER_KWH`.

    Construction checks the keys and ranges (:class:`~wattprint.errors.ConfigError`); the
    place itself is looked up in the shipped data by :meth:`resolve`
    (:class:`~wattprint.errors.LocationError` for unknown places). An immutable record
    (:class:`wattprint._frozen.Frozen`), as a frozen dataclass: ``site.replace(tier="edge")``
    is a copy with a field changed.
    """

    _fields = ("country", "zone", "cloud_region", "carbon_intensity_g_per_kwh", "pue",
                 "wue_l_per_kwh", "tier", "water_intensity_l_per_kwh")
    __slots__ = _fields
    country: str | None
    zone: str | None
    cloud_region: str | None
    carbon_intensity_g_per_kwh: float | None
    pue: float | None
    wue_l_per_kwh: float | None
    tier: str | None
    water_intensity_l_per_kwh: float | None

    def __init__(self, country: str | None = None, zone: str | None = None,
                 cloud_region: str | None = None,
                 carbon_intensity_g_per_kwh: float | None = None, pue: float | None = None,
                 wue_l_per_kwh: float | None = None, tier: str | None = None,
                 water_intensity_l_per_kwh: float | None = None) -> None:
        _set(self, "country", country)
        _set(self, "zone", zone)
        _set(self, "cloud_region", cloud_region)
        _set(self, "carbon_intensity_g_per_kwh", carbon_intensity_g_per_kwh)
        _set(self, "pue", pue)
        _set(self, "wue_l_per_kwh", wue_l_per_kwh)
        _set(self, "tier", tier)
        _set(self, "water_intensity_l_per_kwh", water_intensity_l_per_kwh)
        self._check()

    def _check(self) -> None:
        given = {k: getattr(self, k) for k in _LOCATION_KEYS if getattr(self, k) is not None}
        if len(given) > 1:
            got = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise ConfigError(f"give at most one of {', '.join(_LOCATION_KEYS)}; got {got}")
        for name in ("country", "zone", "cloud_region"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{name} must be a non-empty string, not {value!r}")
        for name, minimum, unit in _SITE_NUMBERS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _number(name, value, minimum, unit))
        tier = _tier(self.tier)
        if tier is not None:
            object.__setattr__(self, "tier", tier.name)

    def to_dict(self) -> dict[str, Any]:
        """The site as given: every field, None where not given."""
        return {"country": self.country, "zone": self.zone, "cloud_region": self.cloud_region,
                "carbon_intensity_g_per_kwh": self.carbon_intensity_g_per_kwh,
                "pue": self.pue, "wue_l_per_kwh": self.wue_l_per_kwh, "tier": self.tier,
                "water_intensity_l_per_kwh": self.water_intensity_l_per_kwh}

    def resolve(self) -> FootprintModel:
        """The resolved location and site defaults: a :class:`FootprintModel`."""
        tier = _tier(self.tier)
        pue = self.pue if self.pue is not None else tier.pue if tier else DEFAULT_PUE
        wue = (
            self.wue_l_per_kwh
            if self.wue_l_per_kwh is not None
            else tier.wue_l_per_kwh
            if tier
            else DEFAULT_WUE_L_PER_KWH
        )
        intensity, source, location = resolve_intensity(
            country=self.country,
            zone=self.zone,
            cloud_region=self.cloud_region,
            carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh,
        )
        if self.water_intensity_l_per_kwh is not None:
            water = self.water_intensity_l_per_kwh
            water_source = "given by the user"
        elif tier is None or tier.offsite_water:
            water = DEFAULT_WATER_INTENSITY_L_PER_KWH
            water_source = _default_water_source(location)
        else:
            water = 0.0
            water_source = f"not counted for tier {tier.name!r}"
        return FootprintModel(
            intensity_g_per_kwh=intensity,
            intensity_source=source,
            location=location,
            pue=pue,
            wue_l_per_kwh=wue,
            water_intensity_l_per_kwh=water,
            water_intensity_source=water_source,
            tier=tier.name if tier else None,
            site=self,
        )


def _site(site: Site | None, loose: Mapping[str, Any]) -> Site:
    """``site``, or a :class:`Site` built from the loose keyword arguments; not both."""
    given = [k for k, v in loose.items() if v is not None]
    if site is None:
        return Site(**loose)
    if not isinstance(site, Site):
        raise ConfigError(f"site must be a wattprint.Site, not {type(site).__name__}")
    if given:
        raise ConfigError(
            f"give either site= or the loose location arguments, not both (got site and "
            f"{', '.join(given)})"
        )
    return site


class FootprintModel(NamedTuple):
    """A resolved location and site: turns joules into a :class:`Footprint` cheaply.

    Build it once with :meth:`create` (which validates and reads the data), then call
    :meth:`of` for each amount of energy.
    """

    intensity_g_per_kwh: float
    intensity_source: str
    location: str
    pue: float = DEFAULT_PUE
    wue_l_per_kwh: float = DEFAULT_WUE_L_PER_KWH
    water_intensity_l_per_kwh: float = DEFAULT_WATER_INTENSITY_L_PER_KWH
    water_intensity_source: str = DEFAULT_WATER_INTENSITY_SOURCE
    tier: str | None = None
    #: The :class:`Site` this was resolved from.
    site: Site | None = None

    @classmethod
    def create(
        cls,
        *,
        country: str | None = None,
        zone: str | None = None,
        cloud_region: str | None = None,
        carbon_intensity_g_per_kwh: float | None = None,
        pue: float | None = None,
        wue_l_per_kwh: float | None = None,
        water_intensity_l_per_kwh: float | None = None,
        tier: str | None = None,
    ) -> FootprintModel:
        """Resolve the location and the site defaults; see :func:`footprint` for the rules."""
        return Site(
            country=country,
            zone=zone,
            cloud_region=cloud_region,
            carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh,
            pue=pue,
            wue_l_per_kwh=wue_l_per_kwh,
            tier=tier,
            water_intensity_l_per_kwh=water_intensity_l_per_kwh,
        ).resolve()

    def of(self, energy_j: float) -> Footprint:
        """The footprint of ``energy_j`` joules of IT energy. No validation: this is hot."""
        kwh = energy_j / J_PER_KWH
        facility_kwh = kwh * self.pue
        onsite = kwh * self.wue_l_per_kwh
        offsite = facility_kwh * self.water_intensity_l_per_kwh
        return Footprint(
            energy_j,
            kwh,
            facility_kwh * self.intensity_g_per_kwh,
            onsite + offsite,
            onsite,
            offsite,
            self.intensity_g_per_kwh,
            self.intensity_source,
            self.location,
            self.pue,
            self.wue_l_per_kwh,
            self.water_intensity_l_per_kwh,
            self.water_intensity_source,
            self.tier,
            self.site,
        )


class Zone(NamedTuple):
    """An Electricity Maps zone and its 2024 yearly figures."""

    zone: str
    name: str
    year: int
    intensity_g_per_kwh: float
    renewable_pct: float | None
    carbon_free_pct: float | None


class Country(NamedTuple):
    """A country with grid data, and the figure ``footprint(country=...)`` uses for it."""

    alpha2: str
    alpha3: str
    name: str
    intensity_g_per_kwh: float
    source: str


class GridRegion(NamedTuple):
    """One of Ember's regional aggregates (World, EU, OECD, continents ...)."""

    code: str
    name: str
    year: int
    intensity_g_per_kwh: float


class CloudRegion(NamedTuple):
    """A cloud provider's region, the Electricity Maps zone serving it, and where it is."""

    provider: str
    region: str
    zone: str
    location: str


# --------------------------------------------------------------------------------------------
# The public entry points.


def footprint(
    energy_j: float,
    *,
    country: str | None = None,
    zone: str | None = None,
    cloud_region: str | None = None,
    carbon_intensity_g_per_kwh: float | None = None,
    pue: float | None = None,
    wue_l_per_kwh: float | None = None,
    water_intensity_l_per_kwh: float | None = None,
    tier: str | None = None,
    site: Site | None = None,
) -> Footprint:
    """The carbon and water footprint of ``energy_j`` joules of IT energy.

    Location: at most one of ``country`` (ISO alpha-2 or alpha-3), ``zone`` (Electricity Maps),
    ``cloud_region`` (``"aws:us-east-1"``) or ``carbon_intensity_g_per_kwh``; none gives the
    world average. Unknown places raise :class:`~wattprint.errors.LocationError` with close
    matches.

    Site: ``tier`` is one of :data:`TIERS` (``"datacenter"``, ``"desktop"``, ``"edge"``) and
    sets the default ``pue`` and ``wue_l_per_kwh``; explicit values win. Without a tier the
    defaults are :data:`DEFAULT_PUE` (1.0) and :data:`DEFAULT_WUE_L_PER_KWH` (0.0 L/kWh).
    ``water_intensity_l_per_kwh`` is the grid's off-site water, by default
    :data:`DEFAULT_WATER_INTENSITY_L_PER_KWH`.

    ``site`` gives all of these at once as a :class:`Site`; giving it with any of the loose
    arguments is a :class:`~wattprint.errors.ConfigError`.

    Bad values (``pue`` < 1, negative WUE, intensity or energy) raise
    :class:`~wattprint.errors.ConfigError`.
    """
    energy_j = _number("energy_j", energy_j, 0.0, "J")
    loose = {
        "country": country,
        "zone": zone,
        "cloud_region": cloud_region,
        "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh,
        "pue": pue,
        "wue_l_per_kwh": wue_l_per_kwh,
        "tier": tier,
        "water_intensity_l_per_kwh": water_intensity_l_per_kwh,
    }
    return _site(site, loose).resolve().of(energy_j)


def resolve_intensity(
    country: str | None = None,
    zone: str | None = None,
    cloud_region: str | None = None,
    carbon_intensity_g_per_kwh: float | None = None,
) -> tuple[float, str, str]:
    """The grid's carbon intensity: ``(g CO2 per kWh, source text, location key)``."""
    given = {
        name: value
        for name, value in (
            ("country", country),
            ("zone", zone),
            ("cloud_region", cloud_region),
            ("carbon_intensity_g_per_kwh", carbon_intensity_g_per_kwh),
        )
        if value is not None
    }
    if len(given) > 1:
        got = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ConfigError(
            "give at most one of country, zone, cloud_region, carbon_intensity_g_per_kwh; "
            f"got {got}"
        )
    if carbon_intensity_g_per_kwh is not None:
        value = _number("carbon_intensity_g_per_kwh", carbon_intensity_g_per_kwh, 0.0, "g/kWh")
        return value, "given by the user", "user-given"
    if country is not None:
        return _resolve_country(country)
    if zone is not None:
        z = _find_zone(zone)
        return z.intensity_g_per_kwh, _zone_source(z), z.zone
    if cloud_region is not None:
        r = _find_cloud_region(cloud_region, list_cloud_regions())
        z = _zones()[r.zone.upper()]
        return z.intensity_g_per_kwh, _zone_source(z), f"{r.provider}:{r.region} -> {z.zone}"
    world = _ember_world()
    return (
        world.intensity_g_per_kwh,
        f"world average (no location given): Ember {world.year}, {world.code}",
        world.code,
    )


@cache
def list_zones() -> tuple[Zone, ...]:
    """Every Electricity Maps zone in the shipped data, by zone id."""
    return tuple(sorted(_zones().values(), key=lambda z: z.zone))


@cache
def list_countries() -> tuple[Country, ...]:
    """Every country with grid data, by alpha-2 code, with the figure that would be used."""
    out = []
    for a2, (a3, name) in sorted(_country_codes().items()):
        figure = _country_figure(a2, a3)
        if figure is not None:
            out.append(Country(a2, a3, name, figure[0], figure[1]))
    return tuple(out)


@cache
def list_regions() -> tuple[GridRegion, ...]:
    """Ember's regional aggregates (World, EU, ...), usable as ``country=``."""
    a3 = _alpha3_index()
    return tuple(
        sorted((r for r in _ember().values() if r.code.upper() not in a3), key=lambda r: r.code)
    )


@cache
def list_cloud_regions() -> tuple[CloudRegion, ...]:
    """Every cloud region in the shipped table, by provider and region."""
    rows = _read_csv("cloud_regions.csv")
    return tuple(
        sorted(
            (CloudRegion(r["provider"], r["region"], r["zone"], r["location"]) for r in rows),
            key=lambda c: (c.provider, c.region),
        )
    )


# --------------------------------------------------------------------------------------------
# Resolution.

_PROVIDER_ALIASES = {
    "aws": "aws",
    "amazon": "aws",
    "gcp": "gcp",
    "google": "gcp",
    "azure": "azure",
    "microsoft": "azure",
}
#: Codes people use that are not ISO 3166-1 alpha-2.
_COUNTRY_ALIASES = {"UK": "GB"}


def _resolve_country(country: str) -> tuple[float, str, str]:
    key = country.strip().upper()
    key = _COUNTRY_ALIASES.get(key, key)
    codes = _country_codes()
    a3_index = _alpha3_index()
    if key in codes:
        a2, a3 = key, codes[key][0]
    elif key in a3_index:
        a2, a3 = a3_index[key], key
    else:
        region = _ember().get(key)
        if region is not None:
            return region.intensity_g_per_kwh, f"Ember {region.year}, {region.code}", region.code
        raise LocationError(
            f"unknown country {country!r}: not an ISO 3166 alpha-2 or alpha-3 code."
            + _suggest(country, _country_candidates())
            + _LIST_HINT.format(what="countries")
        )
    figure = _country_figure(a2, a3)
    if figure is not None:
        return figure
    raise LocationError(
        f"no grid data shipped for country {country!r} ({a2}/{a3}, {codes[a2][1]}): give a zone, "
        "a cloud region or carbon_intensity_g_per_kwh." + _LIST_HINT.format(what="countries")
    )


def _country_figure(a2: str, a3: str) -> tuple[float, str, str] | None:
    """Electricity Maps' zone for the alpha-2 code if there is one, else Ember's alpha-3 row."""
    z = _zones().get(a2)
    if z is not None:
        return z.intensity_g_per_kwh, _zone_source(z), z.zone
    row = _ember().get(a3)
    if row is not None:
        return row.intensity_g_per_kwh, f"Ember {row.year}, country {row.code}", row.code
    return None


def _find_zone(zone: str) -> Zone:
    found = _zones().get(zone.strip().upper())
    if found is None:
        cands = {}
        for z in _zones().values():
            label = f"{z.zone} ({z.name})"
            cands[z.zone.lower()] = label
            cands.setdefault(z.name.lower(), label)
        raise LocationError(
            f"unknown Electricity Maps zone {zone!r}."
            + _suggest(zone, cands)
            + _LIST_HINT.format(what="zones")
        )
    return found


def _find_cloud_region(text: str, regions: Iterable[CloudRegion]) -> CloudRegion:
    """The region ``text`` names in ``regions``: ``provider:region`` or a bare, unique region."""
    by_key: dict[tuple[str, str], CloudRegion] = {}
    by_name: dict[str, list[CloudRegion]] = {}
    for r in regions:
        name = _region_key(r.region)
        by_key[(r.provider, name)] = r
        by_name.setdefault(name, []).append(r)
    provider, sep, name = text.strip().partition(":")
    if sep:
        canonical = _PROVIDER_ALIASES.get(provider.strip().lower())
        if canonical is None:
            raise LocationError(
                f"unknown cloud provider {provider!r} in {text!r}: use aws, gcp or azure, "
                "as in 'aws:us-east-1'"
            )
        found = by_key.get((canonical, _region_key(name)))
        matches = [found] if found else []
    else:
        matches = by_name.get(_region_key(provider), [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        options = ", ".join(f"'{r.provider}:{r.region}'" for r in matches)
        raise ConfigError(
            f"cloud region {text!r} exists at more than one provider "
            f"({', '.join(r.provider for r in matches)}): write one of {options}"
        )
    cands = {}
    for (prov, key), r in by_key.items():
        label = f"{r.provider}:{r.region} ({r.location})"
        cands[f"{prov}:{key}"] = label
        cands.setdefault(key, label)
    raise LocationError(
        f"unknown cloud region {text!r}."
        + _suggest(_region_key(text), cands)
        + _LIST_HINT.format(what="cloud")
    )


def _default_water_source(location: str) -> str:
    """The source text of the default water intensity: the U.S. figure, named as such."""
    place = location.rpartition("-> ")[2].strip().upper()  # a cloud region's zone
    if place in ("US", "USA") or place.startswith("US-"):
        return DEFAULT_WATER_INTENSITY_SOURCE
    where = {
        "World": "used with no location given",
        "user-given": "used for a place given only by its carbon intensity",
    }.get(location, f"used for {location}")
    return (
        f"{DEFAULT_WATER_INTENSITY_SOURCE}, {where}: wattprint ships no water figure per "
        "country; pass water_intensity_l_per_kwh for the local grid"
    )


def _region_key(region: str) -> str:
    # Azure's display names ("West Europe") and API names ("westeurope") both match.
    return region.strip().lower().replace(" ", "")


def _zone_source(z: Zone) -> str:
    return f"Electricity Maps {z.year}, zone {z.zone}"


def _suggest(text: str, candidates: Mapping[str, str]) -> str:
    """``" Did you mean A, B?"`` from close matches of ``text`` among candidate keys."""
    query, keys = text.strip().lower(), list(candidates)
    # Strict first; a looser pass only when nothing is close (short ids such as "DE-XX").
    import difflib  # only on this error path

    close = difflib.get_close_matches(query, keys, n=8, cutoff=0.6) or difflib.get_close_matches(
        query, keys, n=8, cutoff=0.5
    )
    labels = list(dict.fromkeys(candidates[c] for c in close))[:5]
    return f" Did you mean {', '.join(labels)}?" if labels else ""


def _country_candidates() -> dict[str, str]:
    cands = {}
    for c in list_countries():
        label = f"{c.alpha2} ({c.name})"
        cands[c.alpha2.lower()] = label
        cands[c.alpha3.lower()] = label
        cands.setdefault(c.name.lower(), label)
    for r in list_regions():
        cands.setdefault(r.code.lower(), r.code)
    return cands


def _number(name: str, value: float, minimum: float, unit: str) -> float:
    """``value`` as a float, or a ConfigError naming the allowed range."""
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a number >= {minimum:g} {unit}, not {value!r}") from err
    if not (math.isfinite(number) and number >= minimum):
        raise ConfigError(f"{name} must be a finite number >= {minimum:g} {unit}, not {value!r}")
    return number


def _tier(name: str | None) -> Tier | None:
    if name is None:
        return None
    found = TIERS.get(name.strip().lower())
    if found is None:
        raise ConfigError(f"tier must be one of {', '.join(TIERS)}, not {name!r}")
    return found


# --------------------------------------------------------------------------------------------
# Data: read lazily from the package, once.


@cache
def _read_csv(name: str) -> tuple[dict[str, str], ...]:

    text = read_text(name)
    import csv
    import io

    return tuple(csv.DictReader(io.StringIO(text)))


def _float_or_none(text: str) -> float | None:
    return float(text) if text.strip() else None


@cache
def _zones() -> dict[str, Zone]:
    """Electricity Maps zones keyed by upper-case id."""
    out = {}
    for r in _read_csv("grid-intensity-electricitymaps-2024.csv"):
        z = Zone(
            zone=r["zone"],
            name=r["name"],
            year=int(r["year"]),
            intensity_g_per_kwh=float(r["gco2eq_per_kwh"]),
            renewable_pct=_float_or_none(r["renewable_pct"]),
            carbon_free_pct=_float_or_none(r["carbon_free_pct"]),
        )
        out[z.zone.upper()] = z
    return out


@cache
def _ember() -> dict[str, GridRegion]:
    """Ember rows (countries by alpha-3 and regional aggregates) keyed by upper-case code."""
    return {
        r["code"].upper(): GridRegion(
            r["code"], r["name"], int(r["year"]), float(r["gco2_per_kwh"])
        )
        for r in _read_csv("grid-intensity-ember.csv")
    }


@cache
def _ember_world() -> GridRegion:
    """The Ember row of the world, read without parsing the other rows: it is all that a meter
    with no location needs."""
    header, *lines = read_text("grid-intensity-ember.csv").splitlines()
    line = next((x for x in lines if x[:6].upper() == "WORLD,"), None)
    if line is None or '"' in line:  # none (a KeyError, as from the whole table), or quoted
        return _ember()["WORLD"]
    r = dict(zip(header.split(","), line.split(","), strict=True))  # no quotes: plain commas
    return GridRegion(r["code"], r["name"], int(r["year"]), float(r["gco2_per_kwh"]))


@cache
def _country_codes() -> dict[str, tuple[str, str]]:
    """alpha-2 -> (alpha-3, name)."""
    return {r["alpha2"]: (r["alpha3"], r["name"]) for r in _read_csv("country_codes.csv")}


@cache
def _alpha3_index() -> dict[str, str]:
    """alpha-3 -> alpha-2."""
    return {a3: a2 for a2, (a3, _) in _country_codes().items()}


class _CallableModule(types.ModuleType):
    """This module's type: ``wattprint.footprint(...)`` calls :func:`footprint`, so that the
    module can be public under the name the function had at the package's root."""

    def __call__(self, energy_j: float, **location: Any) -> Footprint:
        return footprint(energy_j, **location)


sys.modules[__name__].__class__ = _CallableModule
