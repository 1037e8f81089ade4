"""The results store: every benchmark run, one row each, in one SQLite file.

::

    with Store("wattprint.db") as store:
        store.begin_sweep(sweep_id, project="demo", config=config)
        store.write_run(RunRecord(sweep_id=sweep_id, cell_key="mlp/fp32/iris/inference/0",
                                  status="ok", energy_j=12.5, metrics={"accuracy": 0.97}))
        store.end_sweep(sweep_id, "finished")
        runs = store.runs(sweep_id=sweep_id)  # [RunRecord(...)]

Tables (``SCHEMA_VERSION`` 5)::

    sweeps   id TEXT PK (chosen by the caller, or claimed by claim_sweep), project, config_json,
             created_at, updated_at (unix time, s), status ('running' | 'finished' |
             'interrupted' | 'failed'), host_json, owner_pid, owner_host, owner_started_at
             (the process that last began it: its pid, host name and start time)
    runs     id INTEGER PK, sweep_id -> sweeps.id, cell_key, UNIQUE (sweep_id, cell_key), and
             one column per field of RunRecord (RUN_KEYS); dict-valued fields are JSON text
    samples  run_id -> runs.id, t_s, component, watts: an optional power timeline of a run

A run is a :class:`~wattprint.record.RunRecord`: the store writes its fields as they are and
reads the same record back (with the row's ``id``), so nothing between the harness and the
star table reshapes it. ``write_run`` also takes the record's JSON form (a dict of its
fields), which it turns into a record first: an unknown key or a value of the wrong type is a
:class:`~wattprint.errors.ConfigError` naming it. A float NaN in a number column is stored as
NULL (SQLite has no NaN).

What the measurement of a run says about itself is kept in columns of its own, so that no
reader has to look for it (schema version 4): ``partial`` (a bool: a sensor failed inside the
window, and its component is missing from the energy), ``errors`` (a list of texts: what
failed) and ``measurement_notes`` (a list of texts: what a reader should know that is no
error, :attr:`~wattprint.measurement.Measurement.notes`). ``notes`` stays free text. A run
stored before version 4 reads ``None`` for the three, except that the runner then kept
``partial`` and ``errors`` in ``extra``: the migration copies them into the columns. Version
5 adds the site beside ``pue`` and ``wue_l_per_kwh``: ``location``, ``tier`` and
``water_intensity_l_per_kwh`` (None for runs stored before).

The schema is versioned with ``PRAGMA user_version``: each entry of :data:`MIGRATIONS` takes a
store one version up, and opening an older store applies the missing steps in one transaction.
A store written by a newer wattprint is refused rather than misread.

Several processes may write to one store at once and nothing is lost: the file is in WAL mode,
every write is one ``BEGIN IMMEDIATE`` transaction, and a write that finds the store locked
waits and retries for up to ``timeout_s``. A process killed mid-write leaves no trace of that
write. Runs of one config started at once each get their own sweep: :meth:`Store.claim_sweep`
picks the next free id and records it in one transaction, and refuses to resume a sweep that
another live process is still running. A full disk is a
:class:`~wattprint.errors.StoreError` that says so. A :class:`Store` may be shared by the
threads of one process, but not across ``fork``: open a new one in the child.

``Store(path, read_only=True)`` is for the commands that only read (export, score, report,
label): it never creates a file, never writes, and refuses an empty file or another program's
file (SQLite or not) without touching it, leaving no ``-wal`` or ``-shm`` file beside it.
An export written to a file (:meth:`Store.export`) replaces it whole or not at all; so does
each of the two files of the optimization-energy study's layout (:meth:`Store.export_phases`:
``optimization_results.csv`` and ``inference_results.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import importlib
import io
import json
import numbers
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._files import make_folder, write_text
from ._log import get_logger
from .errors import ConfigError, MissingExtra, OutputError, StoreError
from .record import FIELDS, PHASES, PROVENANCES, RUN_STATUSES, RunRecord

__all__ = [
    "MIGRATIONS",
    "PHASES",
    "PROVENANCES",
    "RUN_KEYS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SWEEP_STATUSES",
    "RunRecord",
    "Store",
]

_log = get_logger(__name__)
_T = TypeVar("_T")

SWEEP_STATUSES = ("running", "finished", "interrupted", "failed")

#: ``PRAGMA application_id`` of a wattprint store (ASCII "WATT"), so that another program's
#: SQLite file is never taken for one.
APPLICATION_ID = 0x57415454

#: The steps from one schema version to the next: ``MIGRATIONS[n]`` takes version ``n`` to
#: ``n + 1``. A step, once released, never changes; a new schema is a new step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the three tables.
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        """CREATE TABLE sweeps (
            id TEXT PRIMARY KEY NOT NULL,
            project TEXT NOT NULL,
            config_json TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
            host_json TEXT
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
            cell_key TEXT NOT NULL,
            model_name TEXT,
            variant TEXT,
            parent TEXT,
            dataset TEXT,
            repetition INTEGER,
            phase TEXT,
            task TEXT,
            hardware TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            error TEXT,
            started_at REAL,
            ended_at REAL,
            duration_s REAL,
            energy_j REAL,
            energy_kwh REAL,
            co2_g REAL,
            water_l REAL,
            intensity_g_per_kwh REAL,
            intensity_source TEXT,
            pue REAL,
            wue_l_per_kwh REAL,
            provenance TEXT,
            components TEXT,
            num_samples INTEGER,
            samples_per_second REAL,
            kwh_per_1000_queries REAL,
            metrics TEXT,
            framework TEXT,
            num_parameters INTEGER,
            effective_parameters INTEGER,
            size_bytes INTEGER,
            dtype TEXT,
            optimization TEXT,
            host TEXT,
            extra TEXT,
            UNIQUE (sweep_id, cell_key)
        )""",
        """CREATE TABLE samples (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            t_s REAL NOT NULL,
            component TEXT NOT NULL,
            watts REAL NOT NULL
        )""",
        "CREATE INDEX samples_by_run ON samples (run_id, t_s)",
    ),
    # 2: free-text notes on a run; an index for the task / hardware filters of the reports.
    (
        "ALTER TABLE runs ADD COLUMN notes TEXT",
        "CREATE INDEX runs_by_task_hardware ON runs (task, hardware)",
    ),
    # 3: the process that runs a sweep, so that a resume can tell whether it is still alive.
    (
        "ALTER TABLE sweeps ADD COLUMN owner_pid INTEGER",
        "ALTER TABLE sweeps ADD COLUMN owner_host TEXT",
        "ALTER TABLE sweeps ADD COLUMN owner_started_at REAL",
    ),
    # 4: what a run's measurement says about itself: partial, its errors and its notes. Runs
    # stored before kept partial and errors in extra (JSON); they are copied into the columns.
    (
        "ALTER TABLE runs ADD COLUMN partial INTEGER",
        "ALTER TABLE runs ADD COLUMN errors TEXT",
        "ALTER TABLE runs ADD COLUMN measurement_notes TEXT",
        """UPDATE runs SET
            partial = json_extract(extra, '$.partial'),
            errors = CASE json_type(extra, '$.errors')
                WHEN 'array' THEN json_extract(extra, '$.errors') END
        WHERE json_valid(extra) AND json_type(extra, '$.partial') IN ('true', 'false')""",
    ),
    # 5: the site a run's footprint was computed for, beside its pue and wue_l_per_kwh.
    (
        "ALTER TABLE runs ADD COLUMN location TEXT",
        "ALTER TABLE runs ADD COLUMN tier TEXT",
        "ALTER TABLE runs ADD COLUMN water_intensity_l_per_kwh REAL",
    ),
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# Run records: each field of a RunRecord is one column; how each kind is stored.

#: The columns of a run, in order: the fields of :class:`~wattprint.record.RunRecord`.
RUN_KEYS: tuple[str, ...] = FIELDS
_JSON_KEYS = frozenset(("components", "metrics", "optimization", "host", "extra"))
_LIST_KEYS = frozenset(("errors", "measurement_notes"))
_BOOL_KEYS = frozenset(("partial",))
_SWEEP_ID, _CELL_KEY = RUN_KEYS.index("sweep_id"), RUN_KEYS.index("cell_key")

_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_KEYS)}) VALUES ({', '.join('?' * len(RUN_KEYS))})"
)
_SELECT_RUNS = f"SELECT id, {', '.join(RUN_KEYS)} FROM runs"


def _json_default(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, numbers.Integral):  # numpy integers
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats
        return float(value)
    to_dict = getattr(value, "to_dict", None)  # RunComponent, RunRecord
    if callable(to_dict):
        return to_dict()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a str, not {type(value).__name__}")
    return value


def _json(key: str, value: object) -> str:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a dict, not {type(value).__name__}")
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key} cannot be stored as JSON: {err}") from err


def _encode_record(record: RunRecord | Mapping[str, Any]) -> list[object]:
    """The column values of ``record`` in ``RUN_KEYS`` order (a dict is made a
    :class:`RunRecord` first, which checks it)."""
    run = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
    missing = [k for k in ("sweep_id", "cell_key") if not getattr(run, k)]
    if missing:
        raise ConfigError(f"a run record needs {', '.join(missing)} to be stored")
    values: list[object] = []
    for key in RUN_KEYS:
        value = getattr(run, key)
        if value is None:
            values.append(None)
        elif key in _JSON_KEYS:
            try:
                values.append(json.dumps(value, default=_json_default, allow_nan=True))
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"run record field {key!r} cannot be stored as JSON: {err}") from err
        elif key in _LIST_KEYS:
            values.append(json.dumps(list(value)))
        elif key in _BOOL_KEYS:
            values.append(int(value))
        else:
            values.append(value)
    return values


def _encode_samples(samples: Iterable[tuple[float, str, float]]) -> list[tuple[float, str, float]]:
    rows: list[tuple[float, str, float]] = []
    for i, sample in enumerate(samples):
        try:
            t_s, component, watts = sample
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"sample {i} must be a (t_s, component, watts) tuple, not {sample!r}"
            ) from err
        if (not isinstance(component, str) or isinstance(t_s, bool) or isinstance(watts, bool)
                or not isinstance(t_s, numbers.Real) or not isinstance(watts, numbers.Real)):
            raise ConfigError(f"sample {i} must be a (t_s, component, watts) tuple of a "
                              f"number, a str and a number, not {sample!r:.80}")
        rows.append((float(t_s), component, float(watts)))
    return rows


def _decode_run(row: sqlite3.Row) -> RunRecord:
    run = dict(zip(row.keys(), row, strict=True))
    for key in _JSON_KEYS | _LIST_KEYS:
        if run[key] is not None:
            run[key] = json.loads(run[key])
    for key in _BOOL_KEYS:
        if run[key] is not None:
            run[key] = bool(run[key])
    return RunRecord(**{k: v for k, v in run.items() if v is not None})


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    """``{"a": {"b": 1}}`` under ``metrics`` -> ``metrics_a_b = 1``; lists stay JSON text."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}_{key}", inner, into)
    elif isinstance(value, list):
        into[prefix] = json.dumps(value)
    else:
        into[prefix] = value


def _flat_table(runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of ``runs`` with every JSON column flattened (see :meth:`Store.export`)."""
    # One group of columns per key, in RUN_KEYS order; a JSON key's group grows as leaves appear.
    groups: dict[str, dict[str, None]] = {
        key: {} if key in _JSON_KEYS else {key: None} for key in ("id", *RUN_KEYS)
    }
    rows = []
    for run in runs:
        row: dict[str, Any] = {}
        for key, value in run.items():
            if key in _LIST_KEYS and value is not None:
                row[key] = json.dumps(value)
            elif key not in _JSON_KEYS:
                row[key] = value
            elif value is not None:
                flat: dict[str, Any] = {}
                _flatten(key, value, flat)
                groups[key].update(dict.fromkeys(flat))
                row.update(flat)
        rows.append(row)
    columns = [column for group in groups.values() for column in group]
    return columns, rows


#: What a spreadsheet reads as the start of a formula (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """The CSV of ``rows``: a header, then one line per row, each ended by ``\n``.

    The writer ends its lines with ``\r\n`` so that it quotes a cell holding either
    character (with ``\n`` alone it leaves a ``\r`` bare, which ends a row in a reader); each
    line's ending is then made ``\n``.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    lines = []
    for row in [dict(zip(columns, columns, strict=True)),
                *({key: _csv_cell(value) for key, value in row.items()} for row in rows)]:
        writer.writerow(row)
        lines.append(buffer.getvalue()[:-2] + "\n")
        buffer.seek(0)
        buffer.truncate()
    return "".join(lines)


def _csv_cell(value: Any) -> Any:
    """``value`` safe to open in a spreadsheet: a text that would start a formula gets a
    leading ``'``; numbers, and texts that are plain numbers (``-1.5``), are left as they are."""
    if (isinstance(value, str) and value.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


# --------------------------------------------------------------------------------------------
# The optimization study's two files (Store.export_phases).

#: The files :meth:`Store.export_phases` writes, by phase.
PHASE_FILES = {"optimization": "optimization_results.csv",
               "inference": "inference_results.csv"}
_J_PER_KWH = 3.6e6
#: The columns both files begin with: the study's names (CodeCarbon's) where a stored field
#: maps onto them, in the study's units (``duration`` s, ``energy_consumed`` and
#: ``cpu/gpu/ram_energy`` kWh, ``emissions`` kg CO2e), then the store's own.
_STUDY_HEAD = ("timestamp", "project_name", "run_id", "sweep_id", "cell_key", "model",
               "framework")
_STUDY_ENERGY = ("duration", "energy_consumed", "energy_j", "emissions", "water_l",
                 "cpu_energy", "gpu_energy", "ram_energy")
_STUDY_TAIL = ("hardware", "location", "provenance", "status", "error", "partial", "errors")
_OPTIMIZATION_COLUMNS = (*_STUDY_HEAD, "strategy", "version", "parent", "dataset", "task",
                         "method", "target_dtype", "amount", "sparsity", *_STUDY_ENERGY,
                         "size_before_bytes", "size_after_bytes", "num_parameters",
                         "effective_parameters", *_STUDY_TAIL)
_INFERENCE_COLUMNS = (*_STUDY_HEAD, "version", "parent", "dataset", "task", "repetition",
                      "num_samples", *_STUDY_ENERGY, "kwh_per_1000_queries",
                      "samples_per_second", "correctness", *_STUDY_TAIL)


def _iso_utc(unix_s: float | None) -> str | None:
    if unix_s is None:
        return None
    return datetime.datetime.fromtimestamp(unix_s, tz=datetime.timezone.utc).isoformat(
        timespec="seconds")


def _component_kwh(run: RunRecord, kind: str) -> float | None:
    """The kWh of the run's components of one kind (``cpu``, ``gpu`` for every ``gpu:N``,
    ``ram``); None when the run has none of that kind."""
    joules = [c.energy_j for name, c in (run.components or {}).items()
              if name.split(":", 1)[0] == kind]
    return sum(joules) / _J_PER_KWH if joules else None


def _phase_row(run: RunRecord, projects: Mapping[str, str]) -> dict[str, Any]:
    """What both files say of one run (the columns of :data:`_STUDY_HEAD`, ``_ENERGY`` and
    ``_TAIL``, and the model's place: version, parent, dataset, task)."""
    return {
        "timestamp": _iso_utc(run.started_at),
        "project_name": projects.get(run.sweep_id or ""), "run_id": run.id,
        "sweep_id": run.sweep_id, "cell_key": run.cell_key, "model": run.model_name,
        "framework": run.framework, "version": run.variant, "parent": run.parent,
        "dataset": run.dataset, "task": run.task,
        "duration": run.duration_s, "energy_consumed": run.energy_kwh,
        "energy_j": run.energy_j, "emissions": None if run.co2_g is None else run.co2_g / 1000,
        "water_l": run.water_l, "cpu_energy": _component_kwh(run, "cpu"),
        "gpu_energy": _component_kwh(run, "gpu"), "ram_energy": _component_kwh(run, "ram"),
        "hardware": run.hardware, "location": run.location, "provenance": run.provenance,
        "status": run.status, "error": run.error, "partial": run.partial,
        "errors": None if run.errors is None else json.dumps(list(run.errors)),
    }


def _phase_tables(sweeps: list[dict[str, Any]], records: list[RunRecord]
                  ) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """The columns and rows of ``optimization_results.csv`` and ``inference_results.csv``
    (see :meth:`Store.export_phases`), by phase."""
    projects = {str(s["id"]): str(s["project"]) for s in sweeps}
    sizes: dict[tuple[object, ...], int] = {}
    for run in records:
        key = (run.sweep_id, run.model_name, run.dataset, run.variant)
        if run.size_bytes is not None and (key not in sizes or run.phase == "training"):
            sizes[key] = run.size_bytes
    optimization: list[dict[str, Any]] = []
    inference: list[dict[str, Any]] = []
    metric_columns: dict[str, None] = {}
    for run in records:
        row = _phase_row(run, projects)
        if run.phase == "optimization":
            step = run.optimization or {}
            row.update(strategy=step.get("kind"), method=step.get("method"),
                       target_dtype=step.get("target_dtype"), amount=step.get("amount"),
                       sparsity=step.get("sparsity"),
                       size_before_bytes=sizes.get((run.sweep_id, run.model_name, run.dataset,
                                                    run.parent)),
                       size_after_bytes=run.size_bytes, num_parameters=run.num_parameters,
                       effective_parameters=run.effective_parameters)
            optimization.append(row)
        elif run.phase == "inference":
            metrics: dict[str, Any] = {}
            if run.metrics:
                _flatten("metrics", dict(run.metrics), metrics)
            metric_columns.update(dict.fromkeys(metrics))
            row.update(repetition=run.repetition, num_samples=run.num_samples,
                       kwh_per_1000_queries=run.kwh_per_1000_queries,
                       samples_per_second=run.samples_per_second,
                       correctness=run.metric("accuracy"), **metrics)
            inference.append(row)
    return {"optimization": (list(_OPTIMIZATION_COLUMNS), optimization),
            "inference": ([*_INFERENCE_COLUMNS, *metric_columns], inference)}


# --------------------------------------------------------------------------------------------
# SQLite errors, translated.

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26
_MESSAGE_CODES = (
    ("not a database", _SQLITE_NOTADB),
    ("malformed", _SQLITE_CORRUPT),
    ("disk is full", _SQLITE_FULL),
    ("disk i/o error", _SQLITE_IOERR),
    ("locked", _SQLITE_BUSY),
    ("busy", _SQLITE_BUSY),
    ("unable to open", _SQLITE_CANTOPEN),
    ("readonly", _SQLITE_READONLY),
)


def _code(err: sqlite3.Error) -> int | None:
    """The primary SQLite result code of ``err`` (read from the message before Python 3.11)."""
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(err).lower()
    return next((c for words, c in _MESSAGE_CODES if words in text), None)


def _is_busy(err: sqlite3.Error) -> bool:
    return _code(err) in (_SQLITE_BUSY, _SQLITE_LOCKED)


# --------------------------------------------------------------------------------------------


class Store:
    """The results store in the SQLite file ``path``, created (with its schema) if absent.

    ``timeout_s`` is how long a write waits for another process's write to end before it
    gives up with :class:`~wattprint.errors.StoreError`. A path whose folder is missing, a file
    that is not a wattprint store, or a store from a newer wattprint raise ``StoreError`` with
    the file and the fix. ``":memory:"`` opens a private in-memory store.

    ``read_only=True`` opens an existing store for reading only: a missing file is a
    ``StoreError`` ("no results database at ...") and is not created; an empty file or another
    program's file is refused ("... is not a wattprint database") and left byte for byte as it
    was; the write methods raise ``StoreError``. A store of an older schema is still upgraded.
    """

    def __init__(self, path: str | os.PathLike[str] = "wattprint.db", *,
                 timeout_s: float = 30.0, read_only: bool = False) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real) or not (
            timeout_s >= 0
        ):
            raise ConfigError(f"timeout_s must be a number of seconds >= 0, not {timeout_s!r}")
        self.path: Path = Path(os.fspath(path))
        self.timeout_s: float = float(timeout_s)
        self.read_only: bool = bool(read_only)
        folder = self.path.parent
        if read_only and (str(self.path) == ":memory:" or not self.path.exists()):
            raise StoreError(
                f"no results database at {str(self.path)!r}; run a benchmark first "
                "(wattprint run CONFIG.yaml, or wattprint demo) or pass the path of a results store"
            )
        if not folder.is_dir():
            raise StoreError(
                f"cannot open the results store {str(self.path)!r}: the folder {str(folder)!r} "
                "does not exist; create it first or pass another path"
            )
        if self.path.is_dir():
            raise StoreError(
                f"the results store {str(self.path)!r} is a folder; pass a file path such as "
                f"{str(self.path / 'wattprint.db')!r}"
            )
        self._lock: threading.Lock = threading.Lock()
        self._pid: int = os.getpid()
        try:
            if read_only:
                uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode={self._mode()}"
                conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s,
                                       isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as err:
            raise self._error(err) from err
        self._conn: sqlite3.Connection | None = conn
        try:
            conn.row_factory = sqlite3.Row
            self._retry(lambda: conn.execute("PRAGMA foreign_keys = ON"))
            # The schema is checked before anything is written: another program's file is
            # left as it was, not even switched to WAL.
            version = self._transaction(self._schema_version, write=False)
            if read_only:
                if version == 0:
                    raise StoreError(self._not_ours("it is an empty SQLite database"))
                self._retry(lambda: conn.execute("PRAGMA query_only = ON"))
            else:
                mode = self._retry(
                    lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                if mode not in ("wal", "memory"):
                    _log.warning("results store %s: journal mode %s, not WAL; writers from "
                                 "several processes will wait on each other more", self.path,
                                 mode)
            if version < SCHEMA_VERSION:
                if read_only:  # an older store is upgraded, as any wattprint opening it does
                    self._retry(lambda: conn.execute("PRAGMA query_only = OFF"))
                    self._transaction(self._migrate, write=True, upgrade=True)
                    self._retry(lambda: conn.execute("PRAGMA query_only = ON"))
                else:
                    self._transaction(self._migrate, write=True)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _not_ours(self, why: str) -> str:
        return (f"{str(self.path)!r} is not a wattprint database: {why}; pass the path of a "
                "results store, or move the file away")

    def _mode(self) -> str:
        """How a read-only store opens the file, decided from its header without opening it.

        A file that is not a wattprint store is refused here, untouched. A store is opened
        ``rw`` (never ``rwc``: nothing is created) with ``query_only`` set: as the last
        connection it then removes the ``-wal`` and ``-shm`` files it made, which a ``ro``
        connection to a WAL database would leave behind. A SQLite file whose header does not
        carry wattprint's ``application_id`` yet has a ``-wal`` beside it may be a store just
        made, its schema still in the WAL: it is opened ``ro`` and checked by its schema.
        """
        try:
            with open(self.path, "rb") as f:
                header = f.read(100)
        except OSError as err:
            raise StoreError(f"cannot read the results store {str(self.path)!r}: "
                             f"{err.strerror or err}") from err
        if not header:
            raise StoreError(self._not_ours("the file is empty"))
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise StoreError(self._not_ours("it is not a SQLite database"))
        if int.from_bytes(header[68:72], "big") == APPLICATION_ID:
            return "rw"
        if header[18] == 2 and Path(f"{self.path}-wal").exists():
            return "ro"
        raise StoreError(self._not_ours("it is another program's SQLite database"))

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file. Closing twice is harmless; using a closed store raises."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and os.getpid() == self._pid:
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- sweeps -------------------------------------------------------------------------------

    def begin_sweep(self, sweep_id: str, *, project: str, config: Mapping[str, Any],
                    host: Mapping[str, Any] | None = None) -> bool:
        """Record that sweep ``sweep_id`` runs; True if the store already had it (a resume).

        A new sweep keeps ``project``, ``config`` and ``host``; an existing one keeps what it
        was begun with and is marked ``running`` again. Either way this process becomes its
        owner. To choose a free id for a config, use :meth:`claim_sweep`.
        """
        _text("sweep_id", sweep_id)
        _text("project", project)
        config_json = _json("config", config)
        host_json = None if host is None else _json("host", host)
        owner = _this_process()

        def body(conn: sqlite3.Connection) -> bool:
            if _reclaim(conn, sweep_id, owner):
                return True
            _insert_sweep(conn, sweep_id, project, config_json, host_json, owner)
            return False

        return self._transaction(body, write=True)

    def claim_sweep(self, base: str, *, project: str, config: Mapping[str, Any],
                    host: Mapping[str, Any] | None = None, resume: bool = False) -> str:
        """Begin a sweep of the config whose hash is ``base``; return its id.

        A new sweep takes the first id after the config's latest: ``base``, then ``base-2``,
        ``base-3``...; the id is chosen and recorded in one ``BEGIN IMMEDIATE`` transaction, so
        runs of one config started at once never share a sweep. With ``resume``, the latest
        sweep of ``base`` is marked ``running`` again (a new one is begun if there is none);
        if another process that is still alive is running it, :class:`StoreError` names that
        process. A process on another host cannot be checked, and counts as alive.
        """
        _text("sweep_id", base)
        _text("project", project)
        config_json = _json("config", config)
        host_json = None if host is None else _json("host", host)
        owner = _this_process()

        def body(conn: sqlite3.Connection) -> str:
            rows = conn.execute(
                "SELECT id, status, owner_pid, owner_host, owner_started_at FROM sweeps"
                " WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY rowid",
                (base, len(base) + 1, base + "-"),
            ).fetchall()
            numbers = [_sweep_number(base, str(row["id"])) for row in rows]
            if resume and rows:
                latest = rows[numbers.index(max(numbers))]
                sweep_id = str(latest["id"])
                if latest["status"] == "running" and _other_live_process(
                        latest["owner_pid"], latest["owner_host"], latest["owner_started_at"]):
                    raise StoreError(
                        f"sweep {sweep_id!r} in the results store {str(self.path)!r} is still "
                        f"being run by process {latest['owner_pid']} on host "
                        f"{latest['owner_host']!r}; let it finish (or stop it) and then "
                        "resume, or run without --resume to begin a new sweep")
                _reclaim(conn, sweep_id, owner)
                return sweep_id
            sweep_id = f"{base}-{max(numbers) + 1}" if rows else base
            _insert_sweep(conn, sweep_id, project, config_json, host_json, owner)
            return sweep_id

        return self._transaction(body, write=True)

    def end_sweep(self, sweep_id: str, status: str) -> None:
        """Mark the sweep ``finished``, ``interrupted`` or ``failed``."""
        ends = SWEEP_STATUSES[1:]
        if status not in ends:
            raise ConfigError(f"a sweep ends {', '.join(ends)}, not {status!r}")

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute("UPDATE sweeps SET status = ?, updated_at = ? WHERE id = ?",
                               (status, time.time(), sweep_id))
            if not cur.rowcount:
                raise self._no_sweep(sweep_id)

        self._transaction(body, write=True)

    def sweeps(self) -> list[dict[str, Any]]:
        """Every sweep, oldest first: ``id``, ``project``, ``config`` and ``host`` (dicts),
        ``created_at``, ``updated_at`` (unix time), ``status``, ``owner`` (the process that
        last began it: ``pid``, ``host``, ``started_at``; None before schema 3), and
        ``num_runs``, ``num_ok``, ``num_failed`` (its stored runs)."""

        def body(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT s.id, s.project, s.config_json, s.host_json, s.created_at, s.updated_at,"
                " s.status, s.owner_pid, s.owner_host, s.owner_started_at,"
                " count(r.id) AS num_runs,"
                " coalesce(sum(r.status = 'ok'), 0) AS num_ok,"
                " coalesce(sum(r.status = 'failed'), 0) AS num_failed"
                " FROM sweeps AS s LEFT JOIN runs AS r ON r.sweep_id = s.id"
                " GROUP BY s.id ORDER BY s.created_at, s.rowid"
            ).fetchall()
            return [_decode_sweep(row) for row in rows]

        return self._transaction(body, write=False)

    def latest_sweep_id(self) -> str | None:
        """The sweep most recently begun, ended or written to; None in an empty store."""

        def body(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT id FROM sweeps ORDER BY updated_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            return None if row is None else str(row[0])

        return self._transaction(body, write=False)

    # -- runs ---------------------------------------------------------------------------------

    def write_run(self, record: RunRecord | Mapping[str, Any],
                  samples: Iterable[tuple[float, str, float]] | None = None) -> int:
        """Store one run (and its power ``samples``: ``(t_s, component, watts)``) in one
        transaction; return its id. ``record`` is a :class:`~wattprint.record.RunRecord`
        with its ``sweep_id`` and ``cell_key``, or its JSON form
        (:meth:`RunRecord.from_dict <wattprint.record.RunRecord.from_dict>`).

        A run with the ``(sweep_id, cell_key)`` of a stored run replaces it, samples and all:
        a retried cell never makes a second row. The sweep must have been begun.
        """
        values = _encode_record(record)
        rows = [] if samples is None else _encode_samples(samples)
        sweep_id, cell_key = values[_SWEEP_ID], values[_CELL_KEY]
        now = time.time()

        def body(conn: sqlite3.Connection) -> int:
            cur = conn.execute("UPDATE sweeps SET updated_at = ? WHERE id = ?", (now, sweep_id))
            if not cur.rowcount:
                raise self._no_sweep(str(sweep_id))
            conn.execute(
                "DELETE FROM samples WHERE run_id IN"
                " (SELECT id FROM runs WHERE sweep_id = ? AND cell_key = ?)",
                (sweep_id, cell_key),
            )
            conn.execute("DELETE FROM runs WHERE sweep_id = ? AND cell_key = ?",
                         (sweep_id, cell_key))
            run_id = conn.execute(_INSERT_RUN, values).lastrowid
            assert run_id is not None  # an INSERT into a rowid table always sets it
            conn.executemany(
                "INSERT INTO samples (run_id, t_s, component, watts) VALUES (?, ?, ?, ?)",
                [(run_id, *row) for row in rows],
            )
            return run_id

        return self._transaction(body, write=True)

    def finished_cells(self, sweep_id: str) -> set[str]:
        """The cell keys of the sweep whose run is stored with status ``ok``."""

        def body(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT cell_key FROM runs WHERE sweep_id = ? AND status = 'ok'", (sweep_id,)
            ).fetchall()
            return {str(row[0]) for row in rows}

        return self._transaction(body, write=False)

    def runs(self, *, sweep_id: str | None = None, task: str | None = None,
             hardware: str | None = None, status: str | None = None,
             phase: str | None = None) -> list[RunRecord]:
        """The stored runs matching every filter given, in the order they were written: each
        the :class:`~wattprint.record.RunRecord` that was written, with its row ``id`` (for
        :meth:`samples`)."""
        if status is not None and status not in RUN_STATUSES:
            raise ConfigError(f"status is one of {', '.join(RUN_STATUSES)}, not {status!r}")
        if phase is not None and phase not in PHASES:
            raise ConfigError(f"phase is one of {', '.join(PHASES)}, not {phase!r}")
        filters = {"sweep_id": sweep_id, "task": task, "hardware": hardware, "status": status,
                   "phase": phase}
        given = {column: value for column, value in filters.items() if value is not None}
        where = " AND ".join(f"{column} = ?" for column in given)
        sql = f"{_SELECT_RUNS}{' WHERE ' + where if where else ''} ORDER BY id"

        def body(conn: sqlite3.Connection) -> list[RunRecord]:
            return [_decode_run(row) for row in conn.execute(sql, tuple(given.values()))]

        return self._transaction(body, write=False)

    def samples(self, run_id: int) -> list[tuple[float, str, float]]:
        """The power timeline of a run, ``(t_s, component, watts)`` in time order."""

        def body(conn: sqlite3.Connection) -> list[tuple[float, str, float]]:
            rows = conn.execute(
                "SELECT t_s, component, watts FROM samples WHERE run_id = ? ORDER BY t_s, rowid",
                (run_id,),
            )
            return [(float(t), str(c), float(w)) for t, c, w in rows]

        return self._transaction(body, write=False)

    # -- export -------------------------------------------------------------------------------

    def export(self, fmt: str, *, sweep_id: str | None = None,
               out: str | os.PathLike[str] | None = None) -> str:
        """The runs (of one sweep, or all) as ``"csv"`` or ``"json"`` text; also written to
        ``out`` when given. Power samples are not exported.

        JSON is ``{"schema_version", "sweeps", "runs"}`` with the records exactly as
        :meth:`runs` and :meth:`sweeps` return them. CSV has one row per run; the JSON columns
        are flattened into one column per leaf, the names joined with ``_``
        (``metrics_accuracy``, ``components_cpu_energy_j``, ``optimization_method``); a list
        stays JSON text; an empty cell is a missing value. A text that a spreadsheet would take
        for a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return,
        and is not a plain number) gets a leading ``'``, as OWASP advises; numbers are left
        as they are. An unknown ``sweep_id`` is a :class:`~wattprint.errors.ConfigError`.

        ``out`` is replaced whole or not at all; a failed write raises
        :class:`~wattprint.errors.OutputError` and leaves the file there as it was.
        """
        if fmt not in ("csv", "json"):
            raise ConfigError(f"export format is 'csv' or 'json', not {fmt!r}")
        sweeps, records = self._snapshot(sweep_id)
        runs = [r.to_dict() for r in records]
        if fmt == "json":
            text = json.dumps({"schema_version": SCHEMA_VERSION, "sweeps": sweeps, "runs": runs},
                              indent=2, default=_json_default) + "\n"
        else:
            text = _csv_text(*_flat_table(runs))
        if out is not None:
            write_text(out, text, encoding="utf-8", newline="")
        return text

    def export_phases(self, folder: str | os.PathLike[str], *,
                      sweep_id: str | None = None) -> list[Path]:
        """Write the runs (of one sweep, or all) as the optimization-energy study did: one
        row per optimization run in ``folder/optimization_results.csv`` and one per inference
        run in ``folder/inference_results.csv``; return both paths. Training runs are in
        neither (:meth:`export` has every run).

        The study's column names (CodeCarbon's) are kept where a stored field maps onto them,
        in its units: ``timestamp`` (ISO 8601, UTC, of ``started_at``), ``project_name`` (the
        sweep's project), ``run_id`` (the row id), ``model``, ``framework``, ``duration``
        (seconds), ``energy_consumed`` (kWh), ``emissions`` (kg CO2e), ``cpu_energy``,
        ``gpu_energy`` and ``ram_energy`` (kWh of the components of that kind, every
        ``gpu:N`` together; empty when none was measured), ``strategy`` (the optimization:
        ``pruning``, ``quantization`` or ``export``), ``version`` (the variant: ``fp32``,
        ``int8``, ...) and ``correctness`` (the run's accuracy; empty without one). The
        other columns are stored fields under their own names, units in the names:

        - both files: ``sweep_id``, ``cell_key``, ``parent``, ``dataset``, ``task``,
          ``energy_j``, ``water_l``, ``hardware``, ``location``, ``provenance``, ``status``,
          ``error``, ``partial`` and ``errors`` (a JSON list);
        - optimization: ``method``, ``target_dtype``, ``amount``, ``sparsity``,
          ``size_before_bytes`` (the parent variant's size, where the sweep stored it),
          ``size_after_bytes``, ``num_parameters``, ``effective_parameters``;
        - inference: ``repetition``, ``num_samples``, ``kwh_per_1000_queries``,
          ``samples_per_second`` and every metric as ``metrics_<name>``.

        Failed and partial runs are rows too (``status``, ``partial``). Cells are written as
        :meth:`export` writes them (a formula-like text gets a leading ``'``). A phase
        without runs gives a file with its header only. ``folder`` is made if missing; a
        folder that is a file is an :class:`~wattprint.errors.OutputError`, an unknown
        ``sweep_id`` a :class:`~wattprint.errors.ConfigError`. Each file is replaced whole or
        not at all.
        """
        target = Path(os.fspath(folder))
        if target.exists() and not target.is_dir():
            raise OutputError(f"cannot write into {str(target)!r}: it is a file, not a folder; "
                              "pass a folder", path=target, reason="not a folder")
        sweeps, records = self._snapshot(sweep_id)
        tables = _phase_tables(sweeps, records)
        make_folder(target)
        return [write_text(target / name, _csv_text(*tables[phase]), encoding="utf-8",
                           newline="")
                for phase, name in PHASE_FILES.items()]

    def to_dataframe(self, sweep_id: str | None = None) -> Any:
        """The runs as a ``pandas.DataFrame``, one row per run, with the columns of the CSV
        export (JSON columns flattened) and native values. Needs the ``pandas`` extra."""
        try:
            pd = importlib.import_module("pandas")  # no stubs: typed as a module
        except ImportError as err:
            raise MissingExtra("a DataFrame of results", "pandas") from err
        _, records = self._snapshot(sweep_id)
        columns, rows = _flat_table([r.to_dict() for r in records])
        return pd.DataFrame.from_records(rows, columns=columns)

    def _snapshot(self, sweep_id: str | None) -> tuple[list[dict[str, Any]], list[RunRecord]]:
        sweeps = self.sweeps()
        if sweep_id is not None:
            sweeps = [s for s in sweeps if s["id"] == sweep_id]
            if not sweeps:
                raise self._no_sweep(sweep_id)
        return sweeps, self.runs(sweep_id=sweep_id)

    # -- plumbing -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            raise StoreError(
                f"the results store {str(self.path)!r} was opened in process {self._pid}; "
                "a SQLite connection must not cross fork: open a new Store in this process"
            )
        if self._conn is None:
            raise StoreError(f"the results store {str(self.path)!r} is closed")
        return self._conn

    def _transaction(self, body: Callable[[sqlite3.Connection], _T], *, write: bool,
                     upgrade: bool = False) -> _T:
        """``body`` in one transaction, retried while another process holds the store."""
        if write and self.read_only and not upgrade:
            raise StoreError(f"the results store {str(self.path)!r} was opened read-only; "
                             "open it with Store(path) to write")
        with self._lock:
            conn = self._connection()

            def attempt() -> _T:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):  # the first error is the one
                            conn.execute("ROLLBACK")
                    raise
                return result

            return self._retry(attempt)

    def _retry(self, attempt: Callable[[], _T]) -> _T:
        """``attempt()``, again while SQLite says busy, for up to ``timeout_s`` in all.

        SQLite's own busy handler already waits on locks; this covers the busy answers it
        gives without waiting (a snapshot that went stale, WAL recovery by another process).
        """
        deadline = time.monotonic() + self.timeout_s
        delay_s = 0.001
        while True:
            try:
                return attempt()
            except sqlite3.Error as err:
                left_s = deadline - time.monotonic()
                if not _is_busy(err) or left_s <= 0:
                    raise self._error(err) from err
            time.sleep(min(delay_s, left_s))
            delay_s = min(delay_s * 2, 0.05)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        foreign = (
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            if version == 0
            else conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID
        )
        if foreign:
            raise StoreError(self._not_ours(
                "it is a SQLite database but not a wattprint results store"))
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the results store {str(self.path)!r} has schema version {version}, newer than "
                f"this wattprint reads ({SCHEMA_VERSION}); upgrade wattprint "
                "(pip install -U wattprint) or pass another path"
            )
        return version

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = self._schema_version(conn)  # again: another process may have migrated it
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version:
            _log.info("results store %s: schema version %d -> %d", self.path, version,
                      SCHEMA_VERSION)

    def _no_sweep(self, sweep_id: str) -> ConfigError:
        return ConfigError(
            f"no sweep {sweep_id!r} in the results store {str(self.path)!r}; "
            "begin_sweep() it first"
        )

    def _error(self, err: sqlite3.Error) -> StoreError:
        where = repr(str(self.path))
        code = _code(err)
        if code == _SQLITE_NOTADB:
            message = self._not_ours(f"it is not a SQLite database ({err})")
        elif code == _SQLITE_CORRUPT:
            message = (f"the results store {where} is damaged ({err}); restore it from a copy, "
                       "or move it away to start a new one")
        elif code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            message = (f"the results store {where} stayed locked by another process for "
                       f"{self.timeout_s:g} s ({err}); wait for it, or pass a longer timeout_s")
        elif code == _SQLITE_CANTOPEN:
            message = (f"cannot open the results store {where} ({err}); check that the file "
                       "and its folder are readable and writable")
        elif code == _SQLITE_FULL:
            message = (f"the results store {where} is full: the disk or its quota has no room "
                       f"left ({err}); free some space, or pass a store on another disk. "
                       "What was stored before is kept")
        elif code == _SQLITE_IOERR:
            message = (f"the results store {where} could not be read or written ({err}): the "
                       "disk may be full or failing, or a file-size limit (ulimit -f) reached")
        elif code == _SQLITE_READONLY:
            message = (f"cannot write the results store {where} ({err}); check that the file, "
                       "its -wal and -shm files and its folder are writable")
        else:
            message = f"results store {where}: {err}"
        return StoreError(message)


# --------------------------------------------------------------------------------------------
# Sweeps and the processes that run them.

_Owner = tuple[int, str, "float | None"]


def _this_process() -> _Owner:
    """This process as a sweep's owner: pid, host name and start time (unix time, s)."""
    import psutil

    pid = os.getpid()
    try:
        started_at: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        started_at = None
    return pid, socket.gethostname(), started_at


def _other_live_process(pid: int | None, host: str | None, started_at: float | None) -> bool:
    """Whether another process, still alive, owns a running sweep.

    No owner (a sweep begun before schema 3) or this process: no. A pid that is gone, a zombie,
    or reused by a process started at another time: no. A process on another host: yes, since
    it cannot be checked from here.
    """
    import psutil

    if pid is None:
        return False
    if host != socket.gethostname():
        return True
    if pid == os.getpid():
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(process.create_time() - started_at) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # not ours to inspect, so alive
        return True


def _sweep_number(base: str, sweep_id: str) -> int:
    """``base`` is sweep 1 of its config, ``base-2`` sweep 2, ...; another suffix counts as 1."""
    tail = sweep_id[len(base) + 1:]
    return int(tail) if tail.isdigit() else 1


def _reclaim(conn: sqlite3.Connection, sweep_id: str, owner: _Owner) -> bool:
    """Mark a stored sweep running, owned by ``owner``; False if there is no such sweep."""
    cur = conn.execute(
        "UPDATE sweeps SET status = 'running', updated_at = ?, owner_pid = ?, owner_host = ?,"
        " owner_started_at = ? WHERE id = ?", (time.time(), *owner, sweep_id))
    return bool(cur.rowcount)


def _insert_sweep(conn: sqlite3.Connection, sweep_id: str, project: str, config_json: str,
                  host_json: str | None, owner: _Owner) -> None:
    now = time.time()
    conn.execute(
        "INSERT INTO sweeps (id, project, config_json, created_at, updated_at, status,"
        " host_json, owner_pid, owner_host, owner_started_at)"
        " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        (sweep_id, project, config_json, now, now, host_json, *owner),
    )


def _decode_sweep(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project"],
        "config": json.loads(row["config_json"]),
        "host": None if row["host_json"] is None else json.loads(row["host_json"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "status": row["status"],
        "owner": None if row["owner_pid"] is None else {
            "pid": row["owner_pid"], "host": row["owner_host"],
            "started_at": row["owner_started_at"]},
        "num_runs": row["num_runs"],
        "num_ok": row["num_ok"],
        "num_failed": row["num_failed"],
    }
