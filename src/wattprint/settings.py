"""Settings without code: environment variables, ``wattprint.toml`` and ``[tool.wattprint]``.

Each setting is spelled like the Python argument it stands for (``country``, ``pue``,
``cpu_tdp_w``, ...); see :data:`KEYS` for the whole list and its environment variables. The
first of these that gives a setting wins:

1. an explicit argument (``EnergyMeter(country="DE")``) or command-line option (``--db``);
2. the environment (``WATTPRINT_COUNTRY=DE``; an empty variable counts as unset);
3. ``wattprint.toml`` in the working folder (top-level keys: ``country = "DE"``);
4. the ``[tool.wattprint]`` table of ``pyproject.toml`` in the working folder;
5. the default.

The four ways to choose the grid (``country``, ``zone``, ``cloud_region``,
``carbon_intensity_g_per_kwh``) are one setting: the first source that names any of them
decides it, and one source may name only one of them.

The files hold settings only, never commands or code: every value must be a string or a number
of the documented kind, an unknown key is an error that lists the known ones (a typo must not
pass silently), and a ``db`` path in a file is relative to that file's folder and may not lead
out of it (a file may come from a stranger). Every bad value raises
:class:`~wattprint.errors.ConfigError` (or :class:`~wattprint.errors.LocationError` for an
unknown place) that names where it came from.

Nothing here runs at ``import wattprint``: settings are read when a meter or a command needs
them. Reading is cheap: a few environment lookups and reading two small files; a file is parsed
only when its text changed since the last read, and a ``pyproject.toml`` that does not mention
wattprint is not parsed at all.
"""

from __future__ import annotations

import math
import os
import sys
from types import MappingProxyType

from .errors import ConfigError, LocationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from functools import lru_cache
    from pathlib import Path
    from typing import Any, NamedTuple

    from .footprint import Site
else:
    from ._cache import lru_cache
    from ._typing import NamedTuple

# pathlib and difflib load only when needed: a first measurement imports none of them.

__all__ = ["KEYS", "LOCATION_KEYS", "SITE_KEYS", "Key", "Origin", "Settings", "load_settings"]

WATTPRINT_TOML = "wattprint.toml"
PYPROJECT_TOML = "pyproject.toml"


class Key(NamedTuple):
    """One setting: its name (the Python argument's), environment variable, kind and rule."""

    name: str
    env: str
    kind: str  # "text", "number" or "path"
    #: For numbers: the smallest value allowed, and whether it is allowed itself.
    minimum: float = 0.0
    inclusive: bool = True
    help: str = ""


#: Every setting, in the order they are shown.
KEYS: tuple[Key, ...] = (
    Key("country", "WATTPRINT_COUNTRY", "text", help="ISO country code (DE, DEU)"),
    Key("zone", "WATTPRINT_ZONE", "text", help="Electricity Maps zone (US-CAL-CISO)"),
    Key("cloud_region", "WATTPRINT_CLOUD_REGION", "text", help="cloud region (aws:eu-west-1)"),
    Key("carbon_intensity_g_per_kwh", "WATTPRINT_CARBON_INTENSITY", "number",
        help="grid carbon intensity, gCO2/kWh"),
    Key("pue", "WATTPRINT_PUE", "number", 1.0, help="power usage effectiveness"),
    Key("wue_l_per_kwh", "WATTPRINT_WUE", "number", help="on-site water, L/kWh"),
    Key("water_intensity_l_per_kwh", "WATTPRINT_WATER_INTENSITY", "number",
        help="the grid's off-site water, L/kWh"),
    Key("tier", "WATTPRINT_TIER", "text", help="datacenter, desktop or edge"),
    Key("cpu_tdp_w", "WATTPRINT_CPU_TDP", "number", 0.0, False, help="CPU TDP in watts"),
    Key("gpu_tdp_w", "WATTPRINT_GPU_TDP", "number", 0.0, False, help="GPU TDP in watts"),
    Key("sample_hz", "WATTPRINT_SAMPLE_HZ", "number", 0.0, False,
        help="power samples per second"),
    Key("mode", "WATTPRINT_MODE", "text", help="machine or process"),
    Key("db", "WATTPRINT_DB", "path", help="results database of the commands' --db"),
)
_BY_NAME: Mapping[str, Key] = MappingProxyType({k.name: k for k in KEYS})
#: The settings that choose the grid: one setting, given one way.
LOCATION_KEYS = ("country", "zone", "cloud_region", "carbon_intensity_g_per_kwh")
#: The settings that make up a :class:`~wattprint.Site`.
SITE_KEYS = (*LOCATION_KEYS, "pue", "wue_l_per_kwh", "water_intensity_l_per_kwh", "tier")


class Origin(NamedTuple):
    """Where a setting came from: ``kind`` is ``"argument"``, ``"environment"``,
    ``"wattprint.toml"``, ``"pyproject.toml"`` or ``"default"``; ``where`` the environment
    variable or the file's path (empty for the others)."""

    kind: str
    where: str = ""

    def __str__(self) -> str:
        return f"environment {self.where}" if self.kind == "environment" else self.kind

    def to_dict(self) -> dict[str, str]:
        return {"source": str(self), "kind": self.kind, "where": self.where}


ARGUMENT = Origin("argument")
DEFAULT = Origin("default")


class Settings(NamedTuple):
    """The settings in effect, each with its :class:`Origin` in ``origins``.

    ``None`` means "not set": the site defaults (see :class:`~wattprint.Site`), a TDP from the
    hardware table, and for ``db`` each command's own default.
    """

    country: str | None = None
    zone: str | None = None
    cloud_region: str | None = None
    carbon_intensity_g_per_kwh: float | None = None
    pue: float | None = None
    wue_l_per_kwh: float | None = None
    water_intensity_l_per_kwh: float | None = None
    tier: str | None = None
    cpu_tdp_w: float | None = None
    gpu_tdp_w: float | None = None
    sample_hz: float = 20.0
    mode: str = "machine"
    db: Path | None = None
    origins: Mapping[str, Origin] = MappingProxyType({})

    def origin(self, name: str) -> Origin:
        """Where setting ``name`` came from."""
        if name not in _BY_NAME:
            raise KeyError(name)
        return self.origins.get(name, DEFAULT)

    def site_args(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~wattprint.Site`."""
        return {name: getattr(self, name) for name in SITE_KEYS}

    def with_site(self, site: Site) -> Settings:
        """These settings with the site's fields in place of the site settings, each from
        ``Origin("argument", "site=")``: a site given whole is the whole site."""
        origins = {**self.origins, **dict.fromkeys(SITE_KEYS, Origin("argument", "site="))}
        return self._replace(**site.to_dict(), origins=MappingProxyType(origins))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready: each setting's ``value``, ``source`` (``"environment WATTPRINT_PUE"``),
        ``kind`` and ``where`` (the variable or the file)."""
        result = {}
        for key in KEYS:
            value = getattr(self, key.name)
            result[key.name] = {"value": os.fspath(value) if isinstance(value, os.PathLike)
                                else value, "env": key.env, **self.origin(key.name).to_dict()}
        return result


_FIELDS = tuple(f for f in Settings._fields if f != "origins")  # KEYS' order

if TYPE_CHECKING:
    _Layer = dict[str, tuple[Any, Origin]]


def load_settings(
    arguments: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings in effect: ``arguments`` (explicit ones; ``None`` values count as not
    given), then ``environ`` (default ``os.environ``), then ``wattprint.toml``, then
    ``pyproject.toml``'s ``[tool.wattprint]`` in ``cwd`` (default: the working folder), then
    the defaults. Arguments are taken as they are (their callers check them); every other
    value is checked here, and a bad one raises :class:`~wattprint.errors.ConfigError` naming
    its source.
    """
    given = {k: v for k, v in (arguments or {}).items() if v is not None}
    unknown = sorted(set(given) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; known: {', '.join(_BY_NAME)}")
    folder = os.getcwd() if cwd is None else os.fspath(cwd)
    layers: list[_Layer] = [
        {k: (v, ARGUMENT) for k, v in given.items()},
        _environment(os.environ if environ is None else environ),
        _file_layer(os.path.join(folder, WATTPRINT_TOML), WATTPRINT_TOML, folder),
        _file_layer(os.path.join(folder, PYPROJECT_TOML), PYPROJECT_TOML, folder),
    ]
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for name in _FIELDS:
        if name in LOCATION_KEYS:
            continue
        for layer in layers:
            if name in layer:
                values[name], origins[name] = layer[name]
                break
    for i, layer in enumerate(layers):
        named = [k for k in LOCATION_KEYS if k in layer]
        if not named:
            continue
        if len(named) > 1 and i > 0:
            origin = layer[named[0]][1]
            where = (f"{' and '.join(_BY_NAME[k].env for k in named)} in the environment"
                     if origin.kind == "environment" else _label(origin))
            raise ConfigError(f"{where}: give at most one of {', '.join(LOCATION_KEYS)} (they "
                              f"all choose the grid); got {' and '.join(named)}")
        for name in named:
            values[name], origins[name] = layer[name]
        break
    return Settings(**values, origins=MappingProxyType(origins))


# -- the environment ----------------------------------------------------------------------------


def _environment(environ: Mapping[str, str]) -> _Layer:
    layer: _Layer = {}
    for key in KEYS:
        raw = environ.get(key.env)
        if raw is None or not raw.strip():
            continue
        origin = Origin("environment", key.env)
        text = raw.strip()
        if key.kind == "number":
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(
                    f"{key.env}={raw!r} in the environment: not a number; {key.name} is "
                    f"{_rule(key)}. Fix it or unset {key.env}") from None
            value: Any = _checked_number(key, number, origin, raw)
        elif key.kind == "path":
            from pathlib import Path

            value = Path(text).expanduser()
        else:
            value = _checked_text(key, text, origin, raw)
        layer[key.name] = (value, origin)
    return layer


# -- files --------------------------------------------------------------------------------------

_BLANK = b" \t\"'"


def _may_have_table(data: bytes) -> bool:
    """Whether a pyproject.toml's text could hold a wattprint table: ``[tool.wattprint]``,
    ``tool.wattprint.pue = ...``, or under ``[tool]`` ``wattprint.pue = ...`` or
    ``wattprint = {...}`` (quoted keys too). Others (``wattprint>=1`` in the dependencies, a
    ``wattprint = "..."`` script) are not parsed: parsing costs milliseconds."""
    start = 0
    while (i := data.find(b"wattprint", start)) >= 0:
        start = i + len(b"wattprint")
        before = data[max(0, i - 64):i].rstrip(_BLANK)
        after = data[start:start + 64].lstrip(_BLANK)
        if before.endswith(b".") and before[:-1].rstrip(_BLANK).endswith(b"tool"):
            return True
        own_key = not before or before.endswith((b"\n", b"{", b","))
        if own_key and after.startswith(b"."):
            return True
        if own_key and after.startswith(b"=") and (
                b"tool" in before[-16:] or _table_of(data, i) == b"tool"):
            return True
    return False


def _table_of(data: bytes, i: int) -> bytes:
    """The name of the ``[table]`` whose lines hold position ``i``."""
    at = data.rfind(b"\n[", 0, i)
    start = at + 2 if at >= 0 else 1 if data.startswith(b"[") else -1
    if start < 0:
        return b""
    end = data.find(b"]", start)
    return data[start:end].strip(_BLANK) if end >= 0 else b""


def _file_layer(path: str, kind: str, folder: str) -> _Layer:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"{kind}: cannot read {path}: {err.strerror or err}") from err
    table = _read_table(path, kind, data)
    if table is None:
        return {}
    origin = Origin(kind, str(path))
    layer: _Layer = {}
    for name, value in table:
        key = _BY_NAME.get(name)
        if key is None:
            import difflib

            close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{_label(origin)}: unknown key {name!r}; {hint}known keys: "
                              f"{', '.join(_BY_NAME)}")
        layer[name] = (_file_value(key, value, origin, folder), origin)
    return layer


@lru_cache(maxsize=16)
def _read_table(path: str, kind: str, data: bytes) -> tuple[tuple[str, Any], ...] | None:
    """The settings table in ``data``, the text of the file at ``path`` (the text keys the
    cache: a changed file is parsed again); None when a pyproject.toml has no
    ``[tool.wattprint]``."""
    if kind == PYPROJECT_TOML and not _may_have_table(data):
        return None
    toml = _toml_module(path)
    try:
        parsed = toml.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, toml.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    if kind == PYPROJECT_TOML:
        tool = parsed.get("tool")
        table = tool.get("wattprint") if isinstance(tool, dict) else None
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: tool.wattprint must be a table of settings "
                              "([tool.wattprint] with keys such as country = \"DE\")")
        return tuple(table.items())
    return tuple(parsed.items())


def _toml_module(path: str) -> Any:
    """tomllib (Python 3.11+), or on Python 3.10 the same parser as the tomli package."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import importlib

    try:
        return importlib.import_module("tomli")
    except ImportError:
        raise ConfigError(f"{path}: reading TOML needs Python 3.11 or newer, or on Python 3.10 "
                          "the tomli package: pip install tomli (or use the WATTPRINT_* "
                          "environment variables)") from None


def _file_value(key: Key, value: Any, origin: Origin, folder: str) -> Any:
    label = _label(origin)
    if key.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label}: {key.name} must be {_rule(key)}, not {value!r}")
        return _checked_number(key, float(value), origin, value)
    if not isinstance(value, str):
        raise ConfigError(f"{label}: {key.name} must be a string, not {value!r}")
    if key.kind == "path":
        return _inside(key, value, origin, folder)
    return _checked_text(key, value.strip(), origin, value)


def _inside(key: Key, value: str, origin: Origin, folder: str) -> Path:
    """``value`` as a path relative to ``folder``, refused when it leads out of it (a file may
    come from a stranger: it cannot make wattprint write elsewhere)."""
    label = _label(origin)
    if not value.strip():
        raise ConfigError(f"{label}: {key.name} must be a file name, not an empty string")
    from pathlib import Path

    base, path = Path(folder), Path(value)
    if path.is_absolute() or value.startswith("~"):
        raise ConfigError(f"{label}: {key.name} = {value!r} must be relative to the file's "
                          f"folder; for a path elsewhere use --db or {key.env}")
    root = base.resolve()
    if root not in (base / path).resolve().parents:  # symbolic links followed
        raise ConfigError(f"{label}: {key.name} = {value!r} leads out of {root}; a settings "
                          f"file cannot send results there: use --db or {key.env}")
    return base / path


# -- checks -------------------------------------------------------------------------------------


def _label(origin: Origin) -> str:
    if origin.kind == PYPROJECT_TOML:
        return f"{PYPROJECT_TOML} [tool.wattprint]"
    return origin.kind


def _rule(key: Key) -> str:
    sign = ">=" if key.inclusive else ">"
    return f"a number {sign} {key.minimum:g} ({key.help})"


def _prefix(origin: Origin, key: Key, raw: Any) -> str:
    if origin.kind == "environment":
        return f"{key.env}={raw!r} in the environment"
    return _label(origin)


def _where(origin: Origin, key: Key, raw: Any) -> str:
    return f"{_prefix(origin, key, raw)}: {key.name}"


def _checked_number(key: Key, number: float, origin: Origin, raw: Any) -> float:
    ok = number >= key.minimum if key.inclusive else number > key.minimum
    if not (math.isfinite(number) and ok):
        sign = ">=" if key.inclusive else ">"
        fix = f"; fix it or unset {key.env}" if origin.kind == "environment" else ""
        raise ConfigError(f"{_where(origin, key, raw)} must be a finite number {sign} "
                          f"{key.minimum:g} ({key.help}), not {raw!r}{fix}")
    return number


def _checked_text(key: Key, text: str, origin: Origin, raw: Any) -> str:
    where = _where(origin, key, raw)
    if not text:
        raise ConfigError(f"{where} must not be empty")
    if key.name == "tier":
        from .footprint import TIERS

        if text.lower() not in TIERS:
            raise ConfigError(f"{where} must be one of {', '.join(TIERS)}, not {raw!r}")
        return text.lower()
    if key.name == "mode":
        from .sensors._registry import MODES

        if text not in MODES:
            raise ConfigError(f"{where} must be one of {', '.join(MODES)}, not {raw!r}")
        return text
    # A place: look it up now, so that an unknown one names where it came from.
    from .footprint import resolve_intensity

    place: dict[str, Any] = {key.name: text}
    try:
        resolve_intensity(**place)
    except (ConfigError, LocationError) as err:
        raise type(err)(f"{_prefix(origin, key, raw)}: {err}") from None
    return text
