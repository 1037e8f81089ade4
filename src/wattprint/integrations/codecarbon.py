"""CodeCarbon's ``emissions.csv`` and its ``@track_emissions`` decorator, over wattprint.

Tools that read CodeCarbon's output (its dashboard, notebooks, the optimization-energy study's
scripts) read wattprint's runs too: :func:`row_from_measurement` and :func:`row_from_record`
make a :class:`CodeCarbonRow`, one line of ``emissions.csv`` with CodeCarbon's columns
(:data:`COLUMNS`, the order of CodeCarbon's ``EmissionsData``) in CodeCarbon's units:

=================================  ===========================================================
column                             what wattprint writes
=================================  ===========================================================
``timestamp``                      end of the run, ISO 8601 in UTC (``2026-11-30T19:29:33+00:00``)
``duration``                       seconds
``emissions``                      kg CO2eq (wattprint's ``co2_g`` / 1000; PUE included)
``emissions_rate``                 kg CO2eq per second
``cpu/gpu/ram_power``              mean watts over the run (every ``gpu:N`` together)
``cpu/gpu/ram_energy``             kWh (every ``gpu:N`` together)
``energy_consumed``                kWh of IT energy, every component (PUE not included)
``country_name/_iso_code``         from the grid data's location (alpha-3 code, as CodeCarbon)
``region``                         the Electricity Maps zone, when it is finer than a country
``cloud_provider/_region``         from a cloud region (``aws``, ``eu-west-1``)
``codecarbon_version``             **the wattprint version** (the column keeps its name)
``ram_total_size``                 installed memory in GB as CodeCarbon counts them (2^30 B)
``tracking_mode``                  ``machine`` or ``process``; `` (partial)`` appended, see below
``on_cloud``                       ``Y`` with a cloud region, else ``N``
``pue``, ``wue``                   the site's PUE and WUE (litres per kWh)
``water_consumed``                 litres of water (on and off site)
``experiment_id``, ``*_utilization_percent``, ``ram_used_gb``
                                   empty: wattprint has no experiment ids and does not sample
                                   utilisation
=================================  ===========================================================

A figure wattprint does not have is an empty cell, never a made-up number: a component kind
that was not metered (no GPU sensor: ``gpu_*`` empty), ``gpu_model``, ``longitude`` and
``latitude`` (wattprint makes no network call to find them), and, for a run exported from the
store, the machine's facts that its sweep did not record.

**Partial runs.** When a sensor failed in the window its component is left out of the
measurement. Such a row is marked ``tracking_mode = "machine (partial)"`` (or ``process
(partial)``), and the figures the failure could make wrong are empty: ``energy_consumed``,
``emissions``, ``emissions_rate`` and ``water_consumed`` (their total misses the failed
component), and the ``gpu_*`` columns (which sum every ``gpu:N``, any of which may be the one
that failed). The ``cpu_*`` and ``ram_*`` figures stay where they were measured: each is one
component, there whole or not at all.

Files are appended as CodeCarbon appends them (:func:`append_rows`): the header is written
once, when the file is new or empty; a file whose header is not :data:`COLUMNS` is refused
(:class:`~wattprint.errors.OutputError`) and left as it was. Each append writes whole rows or
nothing, under a file lock, so processes that share one ``emissions.csv`` do not mix lines.
:func:`export_text` makes a whole file of a store's runs (``wattprint export --format
codecarbon``).

:func:`track_emissions` is CodeCarbon's decorator: each call of the function is measured by an
:class:`~wattprint.EnergyMeter` and written to the CSV file and/or the results store.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import math
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .._log import get_logger
from .._version import __version__
from ..errors import ConfigError, OutputError, WattprintError

if TYPE_CHECKING:
    from ..footprint import Site
    from ..measurement import Measurement
    from ..meter import EnergyMeter
    from ..record import RunRecord
    from ..sensors import Sensor
    from ..store import Store

__all__ = ["COLUMNS", "CodeCarbonRow", "Machine", "append_rows", "check_csv", "csv_text",
           "export_text", "row_from_measurement", "row_from_record", "track_emissions"]

log = get_logger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")

_J_PER_KWH = 3.6e6
_BYTES_PER_GB = 1024**3  # CodeCarbon's GB: psutil's total / 2^30
#: The project name of ``wattprint measure`` rows, as its runs are filed in the store.
MEASURE_PROJECT = "measure"
#: The file name CodeCarbon writes by default (``save_to_file=True``).
DEFAULT_FILE = "emissions.csv"


@dataclass(frozen=True, kw_only=True)
class CodeCarbonRow:
    """One row of CodeCarbon's ``emissions.csv``; the fields are its columns, in its order
    (:data:`COLUMNS`), in its units (see the module). None is an empty cell."""

    timestamp: str
    project_name: str
    run_id: str
    experiment_id: str | None = None
    duration: float | None = None
    emissions: float | None = None
    emissions_rate: float | None = None
    cpu_power: float | None = None
    gpu_power: float | None = None
    ram_power: float | None = None
    cpu_energy: float | None = None
    gpu_energy: float | None = None
    ram_energy: float | None = None
    energy_consumed: float | None = None
    water_consumed: float | None = None
    country_name: str | None = None
    country_iso_code: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None
    os: str | None = None
    python_version: str | None = None
    codecarbon_version: str | None = None
    cpu_count: int | None = None
    cpu_model: str | None = None
    gpu_count: int | None = None
    gpu_model: str | None = None
    longitude: float | None = None
    latitude: float | None = None
    ram_total_size: float | None = None
    tracking_mode: str = "machine"
    cpu_utilization_percent: float | None = None
    gpu_utilization_percent: float | None = None
    ram_utilization_percent: float | None = None
    ram_used_gb: float | None = None
    on_cloud: str = "N"
    pue: float | None = None
    wue: float | None = None

    def values(self) -> tuple[str | float | int | None, ...]:
        """The cells, in :data:`COLUMNS` order."""
        return tuple(getattr(self, name) for name in COLUMNS)

    def to_dict(self) -> dict[str, str | float | int | None]:
        """The row as ``{column: value}``, in :data:`COLUMNS` order."""
        return dict(zip(COLUMNS, self.values(), strict=True))


#: CodeCarbon's ``emissions.csv`` columns, in its order (its ``EmissionsData`` fields).
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CodeCarbonRow))


@dataclass(frozen=True, kw_only=True)
class Machine:
    """The facts of the machine a run was on that a row carries (None: not known)."""

    os: str | None = None
    python_version: str | None = None
    cpu_count: int | None = None
    cpu_model: str | None = None
    ram_total_bytes: int | None = None
    wattprint_version: str | None = None

    @classmethod
    def here(cls) -> Machine:
        """This machine and this wattprint."""
        return _this_machine()

    @classmethod
    def from_host(cls, host: Mapping[str, Any] | None) -> Machine:
        """The facts in a sweep's ``host`` (as the sweep runner and :func:`track_emissions`
        store it: ``platform``, ``python``, ``cpu_count``, ``processor``, ``wattprint``,
        ``ram_total_bytes``); what it lacks is None."""
        host = host or {}

        def text(key: str) -> str | None:
            value = host.get(key)
            return value if isinstance(value, str) and value else None

        def whole(key: str) -> int | None:
            value = host.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(os=text("platform"), python_version=text("python"),
                   cpu_count=whole("cpu_count"), cpu_model=text("processor"),
                   ram_total_bytes=whole("ram_total_bytes"), wattprint_version=text("wattprint"))

    def to_host(self) -> dict[str, Any]:
        """The facts under the keys of a sweep's ``host`` (see :meth:`from_host`)."""
        return {"platform": self.os, "python": self.python_version, "cpu_count": self.cpu_count,
                "processor": self.cpu_model, "ram_total_bytes": self.ram_total_bytes,
                "wattprint": self.wattprint_version}


@functools.cache
def _this_machine() -> Machine:
    import platform

    from ..sensors.hardware import machine_facts

    cpu_model, ram = machine_facts()
    return Machine(os=platform.platform(), python_version=platform.python_version(),
                   cpu_count=os.cpu_count(), cpu_model=cpu_model, ram_total_bytes=ram,
                   wattprint_version=__version__)


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    country_name: str | None = None
    country_iso_code: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None


_CLOUD = re.compile(r"(?P<provider>[^:\s]+):(?P<region>\S+) -> (?P<zone>\S+)")


@functools.cache
def _place(location: str | None) -> _Place:
    """Country, region and cloud of a footprint's ``location`` key: a zone (``DE``,
    ``US-CAL-CISO``), an alpha-3 code (Ember's countries), ``provider:region -> ZONE``; a
    given intensity or the world average have none."""
    if not location:
        return _Place()
    cloud = _CLOUD.fullmatch(location)
    provider = region = None
    key = location
    if cloud is not None:
        provider, region, key = cloud["provider"], cloud["region"], cloud["zone"]
    from ..footprint import list_countries

    by_a2 = {c.alpha2.upper(): c for c in list_countries()}
    by_a3 = {c.alpha3.upper(): c for c in list_countries()}
    key = key.upper()
    country = by_a2.get(key) or by_a3.get(key)
    zone = None
    if country is None and "-" in key:
        country = by_a2.get(key.split("-", 1)[0])
        zone = key if country is not None else None
    return _Place(country_name=None if country is None else country.name,
                  country_iso_code=None if country is None else country.alpha3,
                  region=zone, cloud_provider=provider, cloud_region=region)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _per_second(amount: float | None, duration_s: float | None) -> float | None:
    if amount is None or duration_s is None or not duration_s > 0:
        return None
    return _finite(amount / duration_s)


def _row(*, end: datetime | None, project_name: str, run_id: str, duration_s: float | None,
         energy_j: float | None, co2_g: float | None, water_l: float | None,
         pue: float | None, wue: float | None, location: str | None,
         components: Mapping[str, tuple[float, str]], partial: bool,
         machine: Machine) -> CodeCarbonRow:
    """The row of a run; ``components`` maps each name to ``(joules, scope)``."""
    duration_s = _finite(duration_s)
    kinds: dict[str, list[float]] = {}
    for name, (joules, _) in components.items():
        kinds.setdefault(name.split(":", 1)[0], []).append(joules)
    gpus = len(kinds.get("gpu", ()))
    if partial:  # see the module: a total, or a sum over GPUs, may miss the failed component
        energy_j = co2_g = water_l = None
        kinds.pop("gpu", None)

    def kwh(kind: str) -> float | None:
        joules = kinds.get(kind)
        return None if joules is None else _finite(math.fsum(joules) / _J_PER_KWH)

    def watts(kind: str) -> float | None:
        joules = kinds.get(kind)
        return None if joules is None else _per_second(math.fsum(joules), duration_s)

    emissions = None if co2_g is None else _finite(co2_g / 1000)
    scopes = {scope for _, scope in components.values()}
    mode = "process" if scopes == {"process"} else "machine"
    place = _place(location)
    ram_gb = machine.ram_total_bytes
    return CodeCarbonRow(
        timestamp="" if end is None else end.astimezone(timezone.utc).isoformat(
            timespec="seconds"),
        project_name=project_name, run_id=run_id, duration=duration_s,
        emissions=emissions, emissions_rate=_per_second(emissions, duration_s),
        cpu_power=watts("cpu"), gpu_power=watts("gpu"), ram_power=watts("ram"),
        cpu_energy=kwh("cpu"), gpu_energy=kwh("gpu"), ram_energy=kwh("ram"),
        energy_consumed=None if energy_j is None else _finite(energy_j / _J_PER_KWH),
        country_name=place.country_name, country_iso_code=place.country_iso_code,
        region=place.region, cloud_provider=place.cloud_provider,
        cloud_region=place.cloud_region, os=machine.os,
        python_version=machine.python_version, codecarbon_version=machine.wattprint_version,
        cpu_count=machine.cpu_count, cpu_model=machine.cpu_model,
        gpu_count=None if partial else gpus, gpu_model=None, longitude=None, latitude=None,
        ram_total_size=None if ram_gb is None else ram_gb / _BYTES_PER_GB,
        tracking_mode=f"{mode} (partial)" if partial else mode,
        on_cloud="Y" if place.cloud_provider else "N", pue=_finite(pue), wue=_finite(wue),
        water_consumed=None if water_l is None else _finite(water_l),
    )


def row_from_measurement(m: Measurement, *, project_name: str = "wattprint",
                         run_id: str | None = None, machine: Machine | None = None
                         ) -> CodeCarbonRow:
    """The ``emissions.csv`` row of a measurement made here (``machine`` defaults to this
    machine; ``run_id`` to a new UUID, as CodeCarbon's)."""
    fp = m.footprint
    return _row(end=m.end, project_name=project_name,
                run_id=str(uuid.uuid4()) if run_id is None else run_id,
                duration_s=m.duration_s, energy_j=m.energy_j, co2_g=fp.co2_g,
                water_l=fp.water_l, pue=fp.pue, wue=fp.wue_l_per_kwh, location=fp.location,
                components={k: (c.energy_j, c.scope) for k, c in m.components.items()},
                partial=m.partial, machine=Machine.here() if machine is None else machine)


def record_run_id(sweep_id: str, cell_key: str) -> str:
    """The ``run_id`` of a stored run: a UUID of its sweep and cell, the same at every export
    (and in the rows :func:`track_emissions` writes for a run it also stores)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"wattprint:{sweep_id}/{cell_key}"))


def row_from_record(record: RunRecord, *, project_name: str | None = None,
                    machine: Machine | None = None) -> CodeCarbonRow:
    """The ``emissions.csv`` row of a stored run. ``project_name`` is its sweep's project
    (default: its sweep id); ``machine`` the facts its sweep recorded (default: none, empty
    cells: the machine exporting is not the one that ran)."""
    if record.sweep_id is not None and record.cell_key is not None:
        run_id = record_run_id(record.sweep_id, record.cell_key)
    else:
        run_id = "" if record.id is None else str(record.id)
    energy_j = record.energy_j
    if energy_j is None and record.energy_kwh is not None:
        energy_j = record.energy_kwh * _J_PER_KWH
    end = (None if record.ended_at is None
           else datetime.fromtimestamp(record.ended_at, tz=timezone.utc))
    return _row(end=end, project_name=project_name or record.sweep_id or "",
                run_id=run_id, duration_s=record.duration_s, energy_j=energy_j,
                co2_g=record.co2_g, water_l=record.water_l, pue=record.pue,
                wue=record.wue_l_per_kwh, location=record.location,
                components={k: (c.energy_j, c.scope)
                            for k, c in (record.components or {}).items()},
                partial=bool(record.partial), machine=machine or Machine())


# -- the file --------------------------------------------------------------------------------

#: What a spreadsheet reads as the start of a formula (as the store's CSV export guards it).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _cell(value: str | float | int | None) -> str | float | int:
    if value is None:
        return ""
    if (isinstance(value, str) and value.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def csv_text(rows: Sequence[CodeCarbonRow], *, header: bool = True) -> str:
    """The CSV lines of ``rows`` (after the header, unless ``header`` is False), each ended by
    ``\\n``; an empty cell for None, a text that would start a spreadsheet formula prefixed
    by ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in row.values()])
    return buffer.getvalue()


def _header_problem(first_line: str) -> str | None:
    """Why ``first_line`` is not the header of :data:`COLUMNS`, or None."""
    found = next(csv.reader([first_line]), [])
    if tuple(found) == COLUMNS:
        return None
    for i, (want, got) in enumerate(zip(COLUMNS, found, strict=False)):
        if want != got:
            return f"column {i + 1} is {got[:60]!r} where {want!r} is expected"
    if len(found) < len(COLUMNS):
        return f"it has {len(found)} columns; CodeCarbon's file has {len(COLUMNS)}"
    return f"it has {len(found)} columns, more than CodeCarbon's {len(COLUMNS)}"


def _refused(path: Path, problem: str) -> OutputError:
    return OutputError(
        f"cannot append to {str(path)!r}: its header is not CodeCarbon's emissions.csv header "
        f"({problem}); the file is left as it was. Pass a new file, or move this one away",
        path=path, reason="the header differs")


def _os_error(path: Path, err: OSError) -> OutputError:
    reason = err.strerror or str(err)
    return OutputError(f"cannot write {str(path)!r}: {reason}; the file is left as it was",
                       path=path, reason=reason, errno=err.errno)


def _first_line(f: io.BufferedReader | int) -> str:
    data = b""
    while b"\n" not in data and len(data) < 65536:
        chunk = os.read(f, 4096) if isinstance(f, int) else f.read(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")


def check_csv(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`~wattprint.errors.OutputError` unless rows can be appended to ``path``:
    a folder, a missing folder, or an existing file whose header is not :data:`COLUMNS`
    are refused. Call it before the work whose row goes there."""
    from .._files import check_writable

    target = Path(os.fspath(path))
    if target.is_file() and target.stat().st_size > 0:
        try:
            with open(target, "rb") as f:
                problem = _header_problem(_first_line(f))
        except OSError as err:
            raise _os_error(target, err) from err
        if problem is not None:
            raise _refused(target, problem)
        if not os.access(target, os.W_OK):
            raise OutputError(f"cannot write {str(target)!r}: permission denied",
                              path=target, reason="permission denied")
        return target
    return check_writable(target)


def append_rows(path: str | os.PathLike[str], rows: Sequence[CodeCarbonRow]) -> Path:
    """Append ``rows`` to the CodeCarbon file ``path``, as CodeCarbon does: the header first
    when the file is new or empty; a file whose header differs is refused
    (:class:`~wattprint.errors.OutputError`) and left as it was. The rows are written whole
    or not at all (a failed write is cut back off), under an exclusive lock on the file."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: it is a folder; pass a file path",
                          path=target, reason="it is a folder")
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o666)
    except OSError as err:
        raise _os_error(target, err) from err
    try:
        with _locked(fd):
            size = os.fstat(fd).st_size
            if size > 0:
                os.lseek(fd, 0, os.SEEK_SET)
                problem = _header_problem(_first_line(fd))
                if problem is not None:
                    raise _refused(target, problem)
                needs_newline = _last_byte(fd, size) not in (b"\n", b"")
            data = csv_text(rows, header=size == 0)
            if size > 0 and needs_newline:
                data = "\n" + data  # a last line left unended by an editor: end it first
            _write_all(fd, data.encode("utf-8"), size, target)
    except OSError as err:
        if isinstance(err, WattprintError):
            raise
        raise _os_error(target, err) from err
    finally:
        os.close(fd)
    return target


def _last_byte(fd: int, size: int) -> bytes:
    return os.pread(fd, 1, size - 1) if size > 0 else b""


def _write_all(fd: int, data: bytes, size: int, target: Path) -> None:
    """Write ``data`` at the end; on failure cut the file back to ``size`` bytes."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise _os_error(target, err) from err


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """An exclusive lock on the open file ``fd`` while the block runs, where the system has
    one (a file system without locks goes unlocked)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks to take
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


def export_text(store: Store, *, sweep_id: str | None = None,
                out: str | os.PathLike[str] | None = None) -> str:
    """Every run of ``store`` (or of one sweep) as a whole ``emissions.csv``: the header, then
    one row per run, oldest first (:func:`row_from_record`: the sweep's project as
    ``project_name``, the machine facts its sweep recorded). Written to ``out`` when given,
    replacing it whole or not at all. An unknown ``sweep_id`` is a
    :class:`~wattprint.errors.ConfigError`."""
    from .._files import write_text

    sweeps = store.sweeps()
    if sweep_id is not None and sweep_id not in {s["id"] for s in sweeps}:
        raise ConfigError(f"no sweep {sweep_id!r} in the results store {str(store.path)!r}")
    about = {str(s["id"]): (str(s["project"]), Machine.from_host(s.get("host")))
             for s in sweeps}
    rows = []
    for record in store.runs(sweep_id=sweep_id):
        project, machine = about.get(record.sweep_id or "", (record.sweep_id or "", Machine()))
        rows.append(row_from_record(record, project_name=project, machine=machine))
    text = csv_text(rows)
    if out is not None:
        write_text(out, text, encoding="utf-8", newline="")
    return text


# -- the decorator ---------------------------------------------------------------------------


@overload
def track_emissions(fn: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def track_emissions(
    fn: None = None, /, *, project_name: str | None = None, country: str | None = None,
    country_iso_code: str | None = None, zone: str | None = None,
    cloud_provider: str | None = None, cloud_region: str | None = None,
    carbon_intensity_g_per_kwh: float | None = None, pue: float | None = None,
    wue_l_per_kwh: float | None = None, tier: str | None = None, site: Site | None = None,
    output_dir: str | os.PathLike[str] = ".", output_file: str | os.PathLike[str] | None = None,
    save_to_file: bool = False, db: str | os.PathLike[str] | None = None,
    meter: EnergyMeter | None = None, sensors: str | Sequence[Sensor | str] = "auto",
    measure_power_secs: float | None = None, cpu_tdp_w: float | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def track_emissions(
    fn: Callable[_P, _R] | None = None, /, *, project_name: str | None = None,
    country: str | None = None, country_iso_code: str | None = None, zone: str | None = None,
    cloud_provider: str | None = None, cloud_region: str | None = None,
    carbon_intensity_g_per_kwh: float | None = None, pue: float | None = None,
    wue_l_per_kwh: float | None = None, tier: str | None = None, site: Site | None = None,
    output_dir: str | os.PathLike[str] = ".", output_file: str | os.PathLike[str] | None = None,
    save_to_file: bool = False, db: str | os.PathLike[str] | None = None,
    meter: EnergyMeter | None = None, sensors: str | Sequence[Sensor | str] = "auto",
    measure_power_secs: float | None = None, cpu_tdp_w: float | None = None,
) -> Callable[_P, _R] | Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Measure every call of the decorated function, as CodeCarbon's ``@track_emissions``.

    Usable bare (``@track_emissions``) or with options. Each call runs in its own window of an
    :class:`~wattprint.EnergyMeter` (made on the first call, from ``sensors``, ``cpu_tdp_w``,
    ``measure_power_secs`` (the sampling interval of power-only sensors) and the place; or
    ``meter``, used as given). The place is CodeCarbon's ``country_iso_code`` (or ``country``,
    alpha-2 or alpha-3), ``cloud_provider`` with ``cloud_region`` (or ``cloud_region`` as
    ``"aws:eu-west-1"``), a ``zone``, a ``carbon_intensity_g_per_kwh``, or a
    :class:`~wattprint.Site`, with ``pue``, ``wue_l_per_kwh`` and ``tier``.

    The call's row is appended to the CodeCarbon file ``output_dir/output_file`` when
    ``output_file`` is given, or to ``output_dir/emissions.csv`` with ``save_to_file=True``;
    the run is written to the results store ``db`` when given (a sweep of its own per
    function, project ``project_name``, default the function's name; ``status`` ``failed``
    with the exception when the call raised). The function's result is returned; an exception
    it raises propagates after the measurement up to it is written. A file whose header is
    not CodeCarbon's, or a store that cannot be opened, is refused before the function runs.
    If writing fails after a call that raised, the write's error is added to that exception
    as a note; after a call that returned, it is raised
    (:class:`~wattprint.errors.OutputError`, :class:`~wattprint.errors.StoreError`).
    """
    place = _decorator_site(site=site, country=country, country_iso_code=country_iso_code,
                            zone=zone, cloud_provider=cloud_provider, cloud_region=cloud_region,
                            carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh, pue=pue,
                            wue_l_per_kwh=wue_l_per_kwh, tier=tier)
    if meter is not None and (place is not None or sensors != "auto" or cpu_tdp_w is not None
                              or measure_power_secs is not None):
        raise ConfigError("track_emissions: give either meter= or the sensors and place to "
                          "make one (sensors, cpu_tdp_w, measure_power_secs, country, ...), "
                          "not both")
    if measure_power_secs is not None and not measure_power_secs > 0:
        raise ConfigError(f"measure_power_secs must be > 0, not {measure_power_secs!r}")
    csv_path: Path | None = None
    if output_file is not None or save_to_file:
        csv_path = Path(os.fspath(output_dir)) / (output_file or DEFAULT_FILE)

    def make_meter() -> EnergyMeter:
        from ..meter import EnergyMeter

        if meter is not None:
            return meter
        return EnergyMeter(sensors, sample_interval=measure_power_secs, cpu_tdp_w=cpu_tdp_w,
                           site=place)

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        import inspect

        if inspect.iscoroutinefunction(func):
            raise ConfigError(f"track_emissions measures a call until it returns; "
                              f"{func.__qualname__} is a coroutine function, whose call returns "
                              "at once. Measure inside it with EnergyMeter.window()")
        tracker = _Tracker(func, project_name or func.__name__, make_meter, csv_path,
                           None if db is None else Path(os.fspath(db)))

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return tracker.call(func, *args, **kwargs)

        return wrapper

    return decorate if fn is None else decorate(fn)


def _decorator_site(*, site: Site | None, country: str | None, country_iso_code: str | None,
                    zone: str | None, cloud_provider: str | None, cloud_region: str | None,
                    carbon_intensity_g_per_kwh: float | None, pue: float | None,
                    wue_l_per_kwh: float | None, tier: str | None) -> Site | None:
    """The :class:`Site` the decorator's options name (None: none named), checked now."""
    from ..footprint import Site

    if country is not None and country_iso_code is not None and country != country_iso_code:
        raise ConfigError(f"give one of country={country!r} and "
                          f"country_iso_code={country_iso_code!r}")
    country = country or country_iso_code
    if cloud_provider is not None:
        if cloud_region is None:
            raise ConfigError("cloud_provider needs cloud_region (e.g. cloud_provider='aws', "
                              "cloud_region='eu-west-1')")
        cloud_region = f"{cloud_provider}:{cloud_region}"
    given: dict[str, object] = {
        "country": country, "zone": zone, "cloud_region": cloud_region,
        "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh, "pue": pue,
        "wue_l_per_kwh": wue_l_per_kwh, "tier": tier}
    named = [k for k, v in given.items() if v is not None]
    if site is not None:
        if named:
            raise ConfigError(f"give site= or {', '.join(named)}, not both")
        return site
    if not named:
        return None
    made = Site(country=country, zone=zone, cloud_region=cloud_region,
                carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh, pue=pue,
                wue_l_per_kwh=wue_l_per_kwh, tier=tier)
    made.resolve()  # an unknown place is said when decorating, not at the first call
    return made


class _Tracker:
    """What one decorated function needs at each call: its meter (made on the first call),
    where its rows go, and its sweep in the store."""

    def __init__(self, func: Callable[..., Any], project: str,
                 make_meter: Callable[[], EnergyMeter], csv_path: Path | None,
                 db: Path | None) -> None:
        self.label = f"{getattr(func, '__module__', '?')}.{func.__qualname__}"
        self.project = project
        self.csv_path = csv_path
        self.db = db
        key = f"{project}\0{self.label}".encode()
        self.sweep_id = f"emissions-{hashlib.sha256(key).hexdigest()[:12]}"
        self._make_meter = make_meter
        self._meter: EnergyMeter | None = None
        self._lock = threading.Lock()
        self._calls = itertools.count()

    def meter(self) -> EnergyMeter:
        with self._lock:
            if self._meter is None:
                self._meter = self._make_meter()
            return self._meter

    def call(self, func: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.csv_path is not None:
            check_csv(self.csv_path)
        store = None if self.db is None else _open_store(self.db)
        try:
            meter = self.meter()
            n = next(self._calls)
            window = f"{self.label}#{n}"
            meter.begin(window)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                measurement = meter.end(window)
                failure = self._write(store, measurement, n, exc)
                if failure is not None:
                    _note(exc, f"wattprint: the measurement of this call was not written: "
                               f"{failure}")
                raise
            measurement = meter.end(window)
            failure = self._write(store, measurement, n, None)
            if failure is not None:
                raise failure
            return result
        finally:
            if store is not None:
                store.close()

    def _write(self, store: Store | None, m: Measurement, n: int,
               exc: BaseException | None) -> WattprintError | None:
        """Write the call's row and run; the first error, once both were tried, or None."""
        cell_key = f"call/{m.start:%Y%m%dT%H%M%S.%f}/{os.getpid()}/{n}"
        machine = Machine.here()
        failure: WattprintError | None = None
        if store is not None:
            try:
                _store_call(store, self, m, cell_key, machine, exc)
            except WattprintError as err:
                failure = err
        if self.csv_path is not None:
            row = row_from_measurement(m, project_name=self.project, machine=machine,
                                       run_id=record_run_id(self.sweep_id, cell_key))
            try:
                append_rows(self.csv_path, [row])
            except WattprintError as err:
                failure = failure or err
        return failure


def _note(exc: BaseException, text: str) -> None:
    """Log ``text`` and add it to ``exc`` as a note (Python 3.11+), shown with its traceback."""
    log.warning("%s", text)
    add_note = getattr(exc, "add_note", None)
    if callable(add_note):
        add_note(text)


def _open_store(db: Path) -> Store:
    from .._files import store_problem
    from ..store import Store

    problem = store_problem(db)
    if problem is not None:
        raise OutputError(problem, path=db, reason=problem)
    return Store(db)


def _store_call(store: Store, tracker: _Tracker, m: Measurement, cell_key: str,
                machine: Machine, exc: BaseException | None) -> None:
    from ..record import RunRecord

    store.begin_sweep(tracker.sweep_id, project=tracker.project,
                      config={"track_emissions": {"function": tracker.label}},
                      host=machine.to_host())
    error = None if exc is None else f"{type(exc).__name__}: {exc}"[:2000]
    store.write_run(RunRecord.from_measurement(
        m, sweep_id=tracker.sweep_id, cell_key=cell_key, model_name=tracker.label,
        status="ok" if exc is None else "failed", error=error,
        extra={"function": tracker.label, "project_name": tracker.project}))
    store.end_sweep(tracker.sweep_id, "finished")
