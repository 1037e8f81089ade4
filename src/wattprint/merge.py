"""One distributed job measured on several machines: ``wattprint merge node-*.json``.

Each node runs ``wattprint measure --out node-N.json -- torchrun ...``; each file meters its
whole machine once. :func:`merge_reports` reads the files (:class:`NodeReport`, validated) and
sums them into a :class:`JobReport` without counting anything twice:

* the same machine (host name or machine id) in two files is refused: two measurements of one
  machine overlap and cannot be separated. Where those do not tell machines apart, a host id
  does (``wattprint measure --host-id``, or ``WATTPRINT_HOST_ID``): cloned VMs that share a
  machine id get different ones, containers that share one machine's counters the same one;
  a host id, where given, is the node's only identity;
* a file whose energy is not the sum of its components (edited, or damaged) is refused;
* the same file given twice is refused;
* files whose windows do not all overlap (one node ended before another began) are refused as
  not one job, unless ``allow_disjoint`` is given (a job run in turns on several machines);
* a file that is not a ``measure`` report (bad JSON, a missing key, a newer format) is refused
  with the file and the reason named.

Every node keeps its own footprint at its own site (nodes may be in different countries); the
job's CO2 and water are the sums of the nodes'. A partial node makes the job partial, its
errors prefixed with its host; the job is ``measured`` only if every component is. Windows are
compared in UTC by each node's own clock, so the nodes' clocks are assumed to be kept in time
(NTP), as a distributed job's are.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import ConfigError
from .footprint import Footprint, FootprintModel, Site
from .measurement import ComponentEnergy, Measurement
from .sensors.base import Source

__all__ = ["REPORT_FORMAT", "Host", "JobReport", "NodeReport", "merge_reports", "this_host"]

#: The format of ``measure``'s JSON that this version writes and reads; a file with a higher
#: number was written by a newer wattprint and is refused.
REPORT_FORMAT = 1

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


@dataclass(frozen=True)
class Host:
    """The machine a report was measured on: its host name and, where the system has one, its
    machine id (``/etc/machine-id``)."""

    hostname: str
    machine_id: str | None = None
    #: The id given to the node (``--host-id``, ``WATTPRINT_HOST_ID``): where given, its name
    #: in the job and its only identity.
    host_id: str | None = None

    @property
    def name(self) -> str:
        """The node's name in a job: its host id, else its host name."""
        return self.host_id or self.hostname

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "machine_id": self.machine_id,
                "host_id": self.host_id}


def this_host(host_id: str | None = None) -> Host:
    """The machine this process runs on; ``host_id`` (default ``WATTPRINT_HOST_ID``) names it
    where host names and machine ids cannot tell machines apart."""
    given = (host_id if host_id is not None else os.environ.get("WATTPRINT_HOST_ID", "")).strip()
    machine_id = None
    for name in _MACHINE_ID_FILES:
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            machine_id = text
            break
    return Host(socket.gethostname(), machine_id, given or None)


def _bad(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{str(path)!r} is not a wattprint measure report: {what}")


def _get(path: Path, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
         where: str = "") -> Any:
    if key not in data:
        raise _bad(path, f"no {where}{key!r}")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _bad(path, f"{where}{key!r} is {value!r}")
    return value


def _number(path: Path, data: Mapping[str, Any], key: str, where: str = "") -> float:
    value = float(_get(path, data, key, (int, float), where))
    if not math.isfinite(value) or value < 0:
        raise _bad(path, f"{where}{key!r} is {value!r}, not a finite number >= 0")
    return value


def _optional_number(path: Path, data: Mapping[str, Any], key: str,
                     where: str = "") -> float | None:
    return None if data.get(key) is None else _number(path, data, key, where)


def _time(path: Path, data: Mapping[str, Any], key: str) -> datetime:
    text = _get(path, data, key, str, "measurement ")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(path, f"measurement {key!r} is {text!r}, not an ISO time") from None
    if value.tzinfo is None:
        raise _bad(path, f"measurement {key!r} is {text!r}, a time without a time zone")
    return value


def _strings(path: Path, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _get(path, data, key, list, where)
    if not all(isinstance(v, str) for v in values):
        raise _bad(path, f"{where}{key!r} holds something that is not text")
    return tuple(values)


def _component(path: Path, name: str, data: Any) -> ComponentEnergy:
    where = f"component {name!r} "
    if not isinstance(data, dict):
        raise _bad(path, f"{where}is {data!r}")
    source = _get(path, data, "source", str, where)
    try:
        typed = Source(source)
    except ValueError:
        raise _bad(path, f"{where}'source' is {source!r}") from None
    return ComponentEnergy(
        energy_j=_number(path, data, "energy_j", where), source=typed,
        measured=_get(path, data, "measured", bool, where),
        scope=_get(path, data, "scope", str, where),
        sensors=_strings(path, data, "sensors", where),
        dynamic_j=_optional_number(path, data, "dynamic_j", where))


def _site(path: Path, data: Any) -> FootprintModel:
    """The resolved site the node's footprint was computed with, as the file records it."""
    where = "footprint "
    if not isinstance(data, dict):
        raise _bad(path, f"'footprint' is {data!r}")
    given = data.get("site")
    try:
        site = Site(**given) if isinstance(given, dict) else None
    except (TypeError, ConfigError) as e:
        raise _bad(path, f"footprint 'site' is {given!r} ({e})") from None
    tier = data.get("tier")
    if tier is not None and not isinstance(tier, str):
        raise _bad(path, f"footprint 'tier' is {tier!r}")
    return FootprintModel(
        intensity_g_per_kwh=_number(path, data, "intensity_g_per_kwh", where),
        intensity_source=_get(path, data, "intensity_source", str, where),
        location=_get(path, data, "location", str, where),
        pue=_number(path, data, "pue", where),
        wue_l_per_kwh=_number(path, data, "wue_l_per_kwh", where),
        water_intensity_l_per_kwh=_number(path, data, "water_intensity_l_per_kwh", where),
        water_intensity_source=_get(path, data, "water_intensity_source", str, where),
        tier=tier, site=site)


@dataclass(frozen=True)
class NodeReport:
    """One node's ``wattprint measure`` report, read and checked by :meth:`read`."""

    path: Path
    host: Host
    command_line: str
    exit_code: int
    measurement: Measurement

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> NodeReport:
        """The report in ``path``; :class:`~wattprint.errors.ConfigError` naming the file and
        what is wrong when it is not a ``measure`` report this version can read."""
        file = Path(os.fspath(path))
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read {str(file)!r}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise _bad(file, "not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise _bad(file, f"bad JSON ({e})") from None
        if not isinstance(data, dict) or "measurement" not in data:
            raise _bad(file, "no 'measurement'")
        fmt = data.get("report_format")
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > REPORT_FORMAT:
            raise _bad(file, f"format {fmt} is newer than this wattprint reads "
                             f"({REPORT_FORMAT}); use wattprint {data.get('wattprint_version')}"
                             " or newer")
        if "host" not in data:
            raise _bad(file, "no 'host' (written by a wattprint before 'merge' existed; "
                             "measure again)")
        host = _get(file, data, "host", dict)
        hostname = _get(file, host, "hostname", str, "host ")
        machine_id = host.get("machine_id")
        if machine_id is not None and not isinstance(machine_id, str):
            raise _bad(file, f"host 'machine_id' is {machine_id!r}")
        host_id = host.get("host_id")
        if host_id is not None and (not isinstance(host_id, str) or not host_id.strip()):
            raise _bad(file, f"host 'host_id' is {host_id!r}")
        m = _get(file, data, "measurement", dict)
        where = "measurement "
        components = _get(file, m, "components", dict, where)
        measurement = Measurement(
            name=_get(file, m, "name", str, where), start=_time(file, m, "start"),
            end=_time(file, m, "end"), duration_s=_number(file, m, "duration_s", where),
            energy_j=_number(file, m, "energy_j", where),
            components={k: _component(file, k, v) for k, v in components.items()},
            site=_site(file, m.get("footprint")),
            idle_j=_optional_number(file, m, "idle_j", where),
            dynamic_j=_optional_number(file, m, "dynamic_j", where),
            samples=int(_number(file, m, "samples", where)),
            partial=_get(file, m, "partial", bool, where),
            errors=_strings(file, m, "errors", where), notes=_strings(file, m, "notes", where))
        parts = math.fsum(c.energy_j for c in measurement.components.values())
        if not math.isclose(measurement.energy_j, parts, rel_tol=1e-9, abs_tol=1e-9):
            raise _bad(file, f"measurement energy_j {measurement.energy_j!r} J is not the sum "
                             f"of its components ({parts!r} J): the file was changed or damaged")
        return cls(path=file, host=Host(hostname, machine_id, host_id),
                   command_line=_get(file, data, "command_line", str),
                   exit_code=_get(file, data, "exit_code", int), measurement=measurement)

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "file": str(self.path), "host": self.host.to_dict(),
            "command_line": self.command_line, "exit_code": self.exit_code,
            "start": m.start.isoformat(), "end": m.end.isoformat(),
            "duration_s": m.duration_s, "energy_j": m.energy_j, "measured": m.measured,
            "partial": m.partial, "footprint": m.footprint.to_dict(),
        }


@dataclass(frozen=True)
class JobReport:
    """The nodes of one job summed: each component once, named ``"<host>/<component>"``.

    ``co2_g`` and ``water_l`` are the sums of the nodes' own footprints, each at its site;
    ``start`` and ``end`` span the earliest start to the latest end.
    """

    nodes: tuple[NodeReport, ...]
    start: datetime
    end: datetime
    energy_j: float
    components: Mapping[str, ComponentEnergy]
    kwh: float
    co2_g: float
    water_l: float
    water_onsite_l: float
    water_offsite_l: float
    idle_j: float | None
    dynamic_j: float | None
    samples: int
    partial: bool
    errors: tuple[str, ...]
    notes: tuple[str, ...]
    #: The first non-zero exit code of the nodes' commands (in the order given), else 0.
    exit_code: int = 0

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def measured(self) -> bool:
        """True when every component of every node comes from a hardware counter."""
        return bool(self.components) and all(c.measured for c in self.components.values())

    @property
    def power_w(self) -> float:
        """Mean power over the job's window."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "wattprint_version": __version__,
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "duration_s": self.duration_s, "energy_j": self.energy_j,
            "power_w": self.power_w, "measured": self.measured,
            "components": {k: v.to_dict() for k, v in self.components.items()},
            "idle_j": self.idle_j, "dynamic_j": self.dynamic_j, "samples": self.samples,
            "partial": self.partial, "errors": list(self.errors), "notes": list(self.notes),
            "exit_code": self.exit_code,
            "footprint": {"energy_j": self.energy_j, "kwh": self.kwh, "co2_g": self.co2_g,
                          "water_l": self.water_l, "water_onsite_l": self.water_onsite_l,
                          "water_offsite_l": self.water_offsite_l},
            "nodes": [n.to_dict() for n in self.nodes],
        }


def _check_once(nodes: Sequence[NodeReport]) -> None:
    """Refuse a file given twice, and one machine measured in two files."""
    seen: dict[str, NodeReport] = {}
    for node in nodes:
        keys = [("file", str(node.path.resolve())), ("host", node.host.name)]
        if node.host.machine_id and not node.host.host_id:
            keys.append(("machine id", node.host.machine_id))
        for kind, key in keys:
            other = seen.get(f"{kind}:{key}")
            if other is None:
                seen[f"{kind}:{key}"] = node
                continue
            if kind == "file":
                also = "" if other.path == node.path else f" (also as {str(other.path)!r})"
                raise ConfigError(f"{str(node.path)!r} is given twice{also}; each node's "
                                  "file is counted once")
            raise ConfigError(
                f"{str(other.path)!r} and {str(node.path)!r} measured the same machine "
                f"({kind} {key!r}): each measures the whole machine, so merging them would "
                "count it twice; keep one (machines that only share a machine id, as cloned "
                "VMs do, are told apart by measuring each with its own --host-id)")


def _check_overlap(nodes: Sequence[NodeReport]) -> None:
    """Refuse nodes whose windows do not all overlap: some node ended before another began."""
    late = max(nodes, key=lambda n: n.measurement.start)
    early = min(nodes, key=lambda n: n.measurement.end)
    if late.measurement.start > early.measurement.end:
        raise ConfigError(
            f"not one job: {str(early.path)!r} ended ({early.measurement.end.isoformat()}) "
            f"before {str(late.path)!r} began ({late.measurement.start.isoformat()}); pass "
            "--allow-disjoint to sum measurements taken at different times")


def merge_reports(paths: Sequence[str | os.PathLike[str]], *,
                  allow_disjoint: bool = False) -> JobReport:
    """Read the node reports at ``paths`` and sum them into one :class:`JobReport`.

    :class:`~wattprint.errors.ConfigError` when a file is not a report, a file or a machine
    comes twice, or (unless ``allow_disjoint``) the windows do not all overlap.
    """
    if not paths:
        raise ConfigError("no reports given: wattprint merge NODE.json [NODE.json ...]")
    nodes = tuple(NodeReport.read(p) for p in paths)
    _check_once(nodes)
    notes: list[str] = []
    if len(nodes) > 1:
        if allow_disjoint:
            try:
                _check_overlap(nodes)
            except ConfigError:
                notes.append("the nodes' windows do not all overlap (--allow-disjoint): "
                             "measurements taken at different times are summed")
        else:
            _check_overlap(nodes)
    components: dict[str, ComponentEnergy] = {}
    errors: list[str] = []
    for node in nodes:
        name = node.host.name
        m = node.measurement
        if node.exit_code != 0:
            notes.append(f"{name}: the command exited with code {node.exit_code}")
        for component, energy in m.components.items():
            components[f"{name}/{component}"] = energy
        errors += [f"{name}: {e}" for e in m.errors]
        notes += [f"{name}: {n}" for n in m.notes]
    measurements = [n.measurement for n in nodes]
    prints = [m.footprint for m in measurements]
    idle = [m.idle_j for m in measurements]
    dynamic = [m.dynamic_j for m in measurements]
    if any(v is None for v in idle) and not all(v is None for v in idle):
        notes.append("idle power was calibrated on some nodes only: no job idle figure")
    return JobReport(
        nodes=nodes, start=min(m.start for m in measurements),
        end=max(m.end for m in measurements), energy_j=math.fsum(m.energy_j for m in measurements),
        components=components, kwh=_sum(prints, "kwh"), co2_g=_sum(prints, "co2_g"),
        water_l=_sum(prints, "water_l"), water_onsite_l=_sum(prints, "water_onsite_l"),
        water_offsite_l=_sum(prints, "water_offsite_l"),
        idle_j=None if None in idle else math.fsum(v for v in idle if v is not None),
        dynamic_j=None if None in dynamic else math.fsum(v for v in dynamic if v is not None),
        samples=sum(m.samples for m in measurements),
        partial=any(m.partial for m in measurements), errors=tuple(errors), notes=tuple(notes),
        exit_code=next((n.exit_code for n in nodes if n.exit_code != 0), 0))


def _sum(prints: Sequence[Footprint], name: str) -> float:
    return math.fsum(float(getattr(p, name)) for p in prints)
