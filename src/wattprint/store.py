"""The results store: every benchmark run, one row each, in one SQLite file.

::

    with Store("wattprint.db") as store:
        store.begin_sweep(sweep_id, project="demo", config=config)
        store.write_run(RunRecord(sweep_id=sweep_id, cell_key="mlp/fp32/iris/inference/0",
                                  status="ok", energy_j=12.5, metrics={"accuracy": 0.97}))
        store.end_sweep(sweep_id, "finished")
        runs = store.runs(sweep_id=sweep_id)  # [RunRecord(...)]

Tables (``SCHEMA_VERSION`` 9)::

    sweeps   id TEXT PK (chosen by the caller, or claimed by claim_sweep), project, config_json,
             created_at, updated_at (unix time, s), status ('running' | 'finished' |
             'interrupted' | 'failed'), host_json, owner_pid, owner_host, owner_started_at
             (the process that last began it: its pid, host name and start time)
    runs     id INTEGER PK, sweep_id -> sweeps.id, cell_key, UNIQUE (sweep_id, cell_key), and
             one column per field of RunRecord (RUN_KEYS); dict-valued fields are JSON text
    samples  run_id -> runs.id, t_s, component, watts: an optional power timeline of a run
    run_totals  per sweep and model (task, hardware, model_name, dataset, variant): the sums
             of its successful inference runs that the star table needs, kept by triggers as
             runs are written (a model whose run was replaced is marked stale and summed
             again when read): rating a million runs reads one row per model
             (:meth:`Store.inference_totals`); it counts the runs it leaves out (partial, a
             figure not finite), which are indexed by what judges them (``runs_left_out``, a
             partial index), so that they are read grouped by reason
             (:meth:`Store.judged_runs`)

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

A report of a large sweep reads it without decoding every run into a record:
:meth:`Store.timeline_run_id` (the run with the longest power timeline, one query),
:meth:`Store.sweep_overview` (totals, counts, provenances and sites: a
:class:`SweepOverview`), :meth:`Store.model_runs` (a :class:`ModelRuns` per model and phase),
:meth:`Store.component_runs` (energy components summed: :class:`ComponentRuns`), and as
records only :meth:`Store.notable_runs` (failed, partial, not summed for the stars: the first
of each, to the report's cap), :meth:`Store.failed_runs` (the first failures, beside
:meth:`Store.failure_counts`, which counts them all per error) and :meth:`Store.savings_runs`
(what the savings of optimized variants are made of).

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
import math
import numbers
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from ._files import make_folder, write_text
from ._log import get_logger
from .errors import ConfigError, MissingExtra, OutputError, StoreError
from .record import (
    FIELDS,
    PHASES,
    PROVENANCES,
    QUALITY_METRICS,
    RUN_STATUSES,
    InferenceTotals,
    JudgedRuns,
    RunRecord,
)

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
# -- the star table's sums, kept as runs are written ------------------------------------------
#
# A successful inference run is *clean* when it is not partial, its energy, kWh, kWh per 1000
# queries and CO2 are finite where present, its metrics hold no NaN or infinity, and it has an
# energy per query. The table run_totals holds, per sweep and model (task, hardware,
# model_name, dataset, variant as stored), the sums of its clean runs and the count of the
# others (the index runs_left_out finds them); triggers keep it as runs are inserted, and
# mark a model's row stale when one of its runs is deleted or changed (a retried cell), to be
# summed again from its runs when read.

_FIRSTS = ("parent", "num_parameters", "effective_parameters", "size_bytes")
_GROUP = ("sweep_id", "task", "hardware", "model_name", "dataset", "variant")
# What judges a run the sums leave out (Store.judged_runs), besides its partial, errors and
# metrics texts, as one integer: whether each figure is missing (0), a finite number (1), an
# infinity (2) or no number (3), and whether its number of samples is missing (0), a finite
# number above 0 (2), another number (1) or no number (3), in two bits each.
_JUDGED_FIGURES = ("energy_j", "energy_kwh", "kwh_per_1000_queries", "co2_g")
_JUDGED_KIND = " + ".join(
    f"{4 ** i} * (CASE typeof({c}) WHEN 'null' THEN 0 WHEN 'text' THEN 3 WHEN 'blob' THEN 3 "
    f"ELSE 1 + ({test}) END)"
    for i, (c, test) in enumerate([
        *((c, f"abs({c}) > 1.7976931348623157e308") for c in _JUDGED_FIGURES),
        ("num_samples", "num_samples > 0 AND abs(num_samples) <= 1.7976931348623157e308")]))


def _run_terms(p: str) -> dict[str, str]:
    """SQL expressions of one run's contributions; ``p`` is the prefix of its columns
    (``NEW.`` in a trigger, ``""`` in a query of the runs table)."""
    k = (f"(CASE WHEN {p}kwh_per_1000_queries IS NOT NULL THEN {p}kwh_per_1000_queries "
         f"WHEN {p}num_samples > 0 THEN COALESCE({p}energy_kwh, {p}energy_j / 3600000.0) "
         f"* 1000.0 / {p}num_samples END)")
    finite = " AND ".join(f"({p}{c} IS NULL OR abs({p}{c}) <= 1.7976931348623157e308)"
                          for c in ("energy_j", "energy_kwh", "kwh_per_1000_queries", "co2_g"))
    clean = (f"(COALESCE({p}partial, 0) = 0 AND {finite} AND ({p}metrics IS NULL OR "
             f"(instr({p}metrics, 'NaN') = 0 AND instr({p}metrics, 'Infinity') = 0)) "
             f"AND {k} IS NOT NULL)")
    terms = {
        "clean": clean, "k": k,
        "co2": f"(CASE WHEN {p}num_samples > 0 THEN {p}co2_g * 1000.0 / {p}num_samples END)",
        "pruned": (f"({p}variant LIKE 'pruned%' OR (CASE WHEN {p}optimization IS NOT NULL "
                   f"AND instr({p}optimization, 'NaN') = 0 AND instr({p}optimization, "
                   f"'Infinity') = 0 THEN json_extract({p}optimization, '$.kind') END) "
                   "= 'pruning')"),
    }
    for q in QUALITY_METRICS:
        # nested, so that JSON with NaN (which SQLite's JSON functions refuse) is never parsed
        terms[f"q_{q.metric}"] = (
            f"(CASE WHEN instr({p}metrics, 'NaN') = 0 AND instr({p}metrics, 'Infinity') = 0 "
            f"AND instr({p}metrics, '\"{q.metric}\"') > 0 THEN CASE WHEN json_type({p}metrics, "
            f"'$.{q.metric}') IN ('integer', 'real') THEN json_extract({p}metrics, "
            f"'$.{q.metric}') END END)")
    return terms


#: The successful inference runs that the sums leave out, and the order that groups them by
#: what judges them: the WHERE and the columns of the index runs_left_out, which a query must
#: repeat word for word to be read through it.
def _left_out_rule() -> str:
    """The WHERE of the runs left out of the sums, made from the rule the sums use."""
    return f"status = 'ok' AND phase = 'inference' AND NOT COALESCE({_run_terms('')['clean']}, 0)"


_LEFT_OUT = _left_out_rule()
_LEFT_OUT_ORDER = (*_GROUP, _JUDGED_KIND, "partial", "parent", "errors", "metrics")


def _totals_select(p: str, *, ids: bool = False) -> str:
    """``SELECT`` list of run_totals' columns (:data:`_TOTALS_COLUMNS`), from the runs of a
    group (aggregates over rows whose columns have the prefix ``p``; ``clean`` etc. must be
    columns of the source when ``p`` is empty and the source is the ``base`` of
    :func:`_totals_query`). ``ids``: schema 6's columns, whose ``unclean`` lists the ids of
    the runs left out where ``left_out`` now counts them."""
    quality = ", ".join(f"total(CASE WHEN clean THEN q_{q.metric} END), "
                        f"count(CASE WHEN clean THEN q_{q.metric} END)"
                        for q in QUALITY_METRICS)
    provenance = ", ".join(f"total(clean AND provenance = '{v}')" for v in PROVENANCES)
    firsts = ", ".join(f"min(CASE WHEN clean AND {c} IS NOT NULL THEN id END)"
                       for c in _FIRSTS)
    return (f"{', '.join(_GROUP)}, min(id), min(CASE WHEN clean THEN id END), total(clean), "
            "total(CASE WHEN clean THEN k END), total(CASE WHEN clean THEN k * k END), "
            "min(CASE WHEN clean THEN k END), max(CASE WHEN clean THEN k END), "
            "total(CASE WHEN clean THEN co2 END), count(CASE WHEN clean THEN co2 END), "
            f"{quality}, {provenance}, max(clean AND pruned), {firsts}, "
            + ("group_concat(CASE WHEN NOT clean THEN id END)" if ids else "total(NOT clean)")
            + ", 0")


#: run_totals' columns as schema 6 made them: ``unclean`` lists the ids of the runs left out of
#: the sums, a text that each such run made longer (and slower to write: schema 8 counts them).
_TOTALS_COLUMNS_6 = (
    *_GROUP, "first_id", "first_clean_id", "runs", "kwh_sum", "kwh_sum_sq", "kwh_min",
    "kwh_max", "co2_sum", "co2_runs",
    *(f"q_{q.metric}_{part}" for q in QUALITY_METRICS for part in ("sum", "n")),
    *(f"p_{v}" for v in PROVENANCES), "pruned", *(f"first_{c}" for c in _FIRSTS), "unclean",
    "stale")
#: run_totals' columns as read and written now: ``left_out`` counts the runs left out of the
#: sums (the index runs_left_out finds them); ``unclean`` stays, NULL.
_TOTALS_COLUMNS = tuple("left_out" if c == "unclean" else c for c in _TOTALS_COLUMNS_6)


def _totals_query(where: str, *, ids: bool = False) -> str:
    """The run_totals rows of the successful inference runs matching ``where``, summed from
    the runs themselves (the backfill, and the sum of a stale row); ``ids``: as schema 6."""
    terms = _run_terms("")
    computed = ", ".join(f"{expr} AS {name}" for name, expr in terms.items())
    return (f"WITH base AS MATERIALIZED (SELECT *, {computed} FROM runs "
            f"WHERE status = 'ok' AND phase = 'inference' AND ({where})) "
            f"SELECT {_totals_select('', ids=ids)} FROM base GROUP BY {', '.join(_GROUP)}")


def _nullable_min(a: str, b: str) -> str:
    return f"CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL THEN {a} ELSE min({a}, {b}) END"


def _nullable_max(a: str, b: str) -> str:
    return f"CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL THEN {a} ELSE max({a}, {b}) END"


def _totals_insert_trigger(*, ids: bool = False) -> str:
    """The trigger that adds each successful inference run to its model's run_totals row;
    ``ids``: as schema 6 made it (``unclean`` lists the ids of the runs left out)."""
    t = _run_terms("NEW.")
    clean = t["clean"]
    columns = _TOTALS_COLUMNS_6 if ids else _TOTALS_COLUMNS
    values = [
        *(f"NEW.{c}" for c in _GROUP), "NEW.id", f"CASE WHEN {clean} THEN NEW.id END",
        f"({clean})", f"CASE WHEN {clean} THEN {t['k']} ELSE 0.0 END",
        f"CASE WHEN {clean} THEN {t['k']} * {t['k']} ELSE 0.0 END",
        f"CASE WHEN {clean} THEN {t['k']} END", f"CASE WHEN {clean} THEN {t['k']} END",
        f"CASE WHEN {clean} THEN COALESCE({t['co2']}, 0.0) ELSE 0.0 END",
        f"({clean} AND {t['co2']} IS NOT NULL)",
    ]
    for q in QUALITY_METRICS:
        term = t[f"q_{q.metric}"]
        values += [f"CASE WHEN {clean} THEN COALESCE({term}, 0.0) ELSE 0.0 END",
                   f"({clean} AND {term} IS NOT NULL)"]
    values += [f"({clean} AND NEW.provenance IS '{v}')" for v in PROVENANCES]
    values += [f"({clean} AND {t['pruned']})"]
    values += [f"CASE WHEN {clean} AND NEW.{c} IS NOT NULL THEN NEW.id END" for c in _FIRSTS]
    values += [f"CASE WHEN {clean} THEN NULL ELSE CAST(NEW.id AS TEXT) END" if ids
               else f"CASE WHEN {clean} THEN 0 ELSE 1 END", "0"]
    sums = [c for c in columns if c in ("runs", "kwh_sum", "kwh_sum_sq", "co2_sum",
                                        "co2_runs", "left_out") or c.startswith(("q_", "p_"))]
    mins = ["first_id", "first_clean_id", "kwh_min", *(f"first_{c}" for c in _FIRSTS)]
    updates = [f"{c} = {c} + excluded.{c}" for c in sums]
    updates += [f"{c} = {_nullable_min(c, 'excluded.' + c)}" for c in mins]
    updates += [f"kwh_max = {_nullable_max('kwh_max', 'excluded.kwh_max')}",
                "pruned = max(pruned, excluded.pruned)"]
    if ids:
        updates.append("unclean = CASE WHEN excluded.unclean IS NULL THEN unclean WHEN "
                       "unclean IS NULL THEN excluded.unclean ELSE unclean || ',' || "
                       "excluded.unclean END")
    return f"""CREATE TRIGGER run_totals_insert AFTER INSERT ON runs
            WHEN NEW.status = 'ok' AND NEW.phase = 'inference' BEGIN
            INSERT INTO run_totals ({', '.join(columns)}) VALUES ({', '.join(values)})
            ON CONFLICT ({', '.join(_GROUP)}) DO UPDATE SET {', '.join(updates)};
            END"""


def _totals_migration() -> tuple[str, ...]:
    """Schema 6: run_totals, its triggers, and its rows from the runs already stored."""
    same_group = " AND ".join(f"{c} IS OLD.{c}" for c in _GROUP)
    types = {"first_id": "INTEGER", "first_clean_id": "INTEGER", "runs": "INTEGER",
             "co2_runs": "INTEGER", "pruned": "INTEGER", "stale": "INTEGER", "unclean": "TEXT",
             **{c: "TEXT" for c in _GROUP}}
    for c in _TOTALS_COLUMNS_6:
        whole = c.endswith("_n") or c.startswith(("p_", "first_"))
        types.setdefault(c, "INTEGER" if whole else "REAL")
    columns = ", ".join(f"{c} {types[c]}" for c in _TOTALS_COLUMNS_6)
    return (
        f"CREATE TABLE run_totals ({columns}, UNIQUE ({', '.join(_GROUP)}))",
        _totals_insert_trigger(ids=True),
        f"""CREATE TRIGGER run_totals_delete AFTER DELETE ON runs
            WHEN OLD.status = 'ok' AND OLD.phase = 'inference' BEGIN
            UPDATE run_totals SET stale = 1 WHERE {same_group};
            END""",
        f"""CREATE TRIGGER run_totals_update AFTER UPDATE ON runs
            WHEN OLD.status = 'ok' AND OLD.phase = 'inference' BEGIN
            UPDATE run_totals SET stale = 1 WHERE {same_group};
            END""",
        f"INSERT INTO run_totals ({', '.join(_TOTALS_COLUMNS_6)}) "
        f"{_totals_query('1', ids=True)}",
    )


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
    # 6: the star table's sums per sweep and model, kept by triggers as runs are written, so
    # that rating a million runs reads a row per model (see _totals_migration); filled from
    # the runs already stored.
    _totals_migration(),
    # 7: the successful inference runs left out of those sums, indexed by what judges them
    # (see Store.judged_runs), so that a quarter of a million partial runs are read grouped,
    # in order, without being sorted.
    (f"CREATE INDEX runs_left_out ON runs ({', '.join(_LEFT_OUT_ORDER)}, id, cell_key) "
     f"WHERE {_LEFT_OUT}",),
    # 8: run_totals counts the runs left out of its sums (left_out) instead of listing their
    # ids in a text that each one made longer: the index of step 7 finds them.
    (
        "ALTER TABLE run_totals ADD COLUMN left_out INTEGER NOT NULL DEFAULT 0",
        "UPDATE run_totals SET left_out = CASE WHEN unclean IS NULL OR unclean = '' THEN 0 "
        "ELSE length(unclean) - length(replace(unclean, ',', '')) + 1 END, unclean = NULL",
        "DROP TRIGGER run_totals_insert",
        _totals_insert_trigger(),
    ),
    # 9: the runs of a sweep in the order they were written (an index's rows end with the
    # rowid): a report reads a sweep's runs from the table in order, not in the order of the
    # UNIQUE (sweep_id, cell_key) index, which jumped about the file (a 100,000-run sweep's
    # overview, components and model rows each took 2-3.5 times as long).
    ("CREATE INDEX runs_by_sweep ON runs (sweep_id)",),
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


class RunSite(NamedTuple):
    """The site a run's footprint assumes, as stored (each None where the run has none)."""

    location: str | None
    intensity_g_per_kwh: float | None
    intensity_source: str | None
    pue: float | None
    wue_l_per_kwh: float | None
    water_intensity_l_per_kwh: float | None
    tier: str | None


@dataclass(frozen=True)
class SweepOverview:
    """What a report says of all the runs of one sweep, read without decoding them
    (:meth:`Store.sweep_overview`): the energy (kWh), CO2e (g) and water (L) of its
    successful runs (exactly rounded sums, a missing figure counting 0), how many runs ended
    ok and failed, how many ok runs are partial, and the ok runs counted by ``provenance``
    (None where unknown) and by :class:`RunSite`, each in the order of its first run."""

    energy_kwh: float
    co2_g: float
    water_l: float
    runs_ok: int
    runs_failed: int
    runs_partial: int
    provenances: tuple[tuple[str | None, int], ...]
    sites: tuple[tuple[RunSite, int], ...]


@dataclass(frozen=True)
class ModelRuns:
    """The runs of one sweep of one model (task, hardware, model name, variant, dataset, each
    as stored) in one phase, counted and summed (:meth:`Store.model_runs`): ``parent`` is the
    first one any of them names; ``energy_j``, ``co2_g`` and ``water_l`` sum the successful
    ones (a missing figure counting 0); ``provenances`` are theirs, in order of first run."""

    task: str | None
    hardware: str | None
    model_name: str | None
    variant: str | None
    parent: str | None
    dataset: str | None
    phase: str | None
    first_id: int
    runs: int
    runs_ok: int
    runs_failed: int
    energy_j: float
    co2_g: float
    water_l: float
    provenances: tuple[str, ...]


@dataclass(frozen=True)
class ComponentRuns:
    """The energy components of the runs of one sweep with one provenance, one component name,
    source and measured flag (:meth:`Store.component_runs`): how many runs have it and the sum
    of its energy in joules over them (exactly rounded)."""

    provenance: str | None
    component: str
    source: str
    measured: bool
    runs: int
    energy_j: float


_DECODED_KEYS = _JSON_KEYS | _LIST_KEYS


def _decode_run(row: sqlite3.Row) -> RunRecord:
    run = {k: v for k, v in zip(row.keys(), row, strict=True) if v is not None}
    for key in _DECODED_KEYS & run.keys():
        run[key] = json.loads(run[key])
    for key in _BOOL_KEYS & run.keys():
        run[key] = bool(run[key])
    return RunRecord(**run)


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

    def inference_totals(self, *, sweep_id: str | None = None,
                         groups: Iterable[tuple[str, str]] | None = None,
                         ) -> list[InferenceTotals]:
        """The successful inference runs summed per sweep and model, for the star table: one
        :class:`~wattprint.record.InferenceTotals` per (sweep, task, hardware, model,
        dataset, variant) as stored, in the order of each one's first run.

        The sums are kept as runs are written (the ``run_totals`` table, by triggers), so a
        store of a million runs is read in a row per model; a model one of whose runs was
        replaced since is summed again from its runs. No run is decoded into a record.
        ``sweep_id`` keeps one sweep; ``groups`` keeps those ``(task, hardware)`` pairs,
        spelled as stored (:meth:`inference_groups` lists them). A run is *clean* when it is
        not partial, its energy, kWh, kWh per 1000 queries and CO2 are finite where present,
        its metrics hold no NaN or infinity, and it has an energy per query
        (``kwh_per_1000_queries``, else ``energy_kwh`` or ``energy_j``, per 1000 of its
        ``num_samples``); the sums (SQLite's floating-point sums) are of clean runs, the
        others are counted (:meth:`judged_runs` reads them).
        """
        where, params = self._inference_where(sweep_id, groups, runs=False)

        def body(conn: sqlite3.Connection) -> list[InferenceTotals]:
            rows = conn.execute(f"SELECT {', '.join(_TOTALS_COLUMNS)} FROM run_totals "
                                f"WHERE {where}", params).fetchall()
            fresh = [tuple(r) for r in rows if not r[-1]]
            stale = [tuple(r[:len(_GROUP)]) for r in rows if r[-1]]
            for chunk in _chunks(stale, 100):
                same = " OR ".join(
                    "(" + " AND ".join(f"{c} IS ?" for c in _GROUP) + ")" for _ in chunk)
                fresh += [tuple(r) for r in conn.execute(
                    _totals_query(same), [v for key in chunk for v in key])]
            fresh.sort(key=lambda r: r[len(_GROUP)])
            index = {c: i for i, c in enumerate(_TOTALS_COLUMNS)}
            wanted = {r[index[f"first_{c}"]] for r in fresh for c in _FIRSTS} - {None}
            values: dict[int, tuple[Any, ...]] = {}
            for ids in _chunks(sorted(wanted), 500):
                marks = ", ".join("?" * len(ids))
                for row in conn.execute(f"SELECT id, {', '.join(_FIRSTS)} FROM runs "
                                        f"WHERE id IN ({marks})", ids):
                    values[row[0]] = tuple(row[1:])
            return [_totals_record(r, index, values) for r in fresh]

        return self._transaction(body, write=False)

    def inference_groups(self, *, sweep_id: str | None = None) -> list[tuple[str, str]]:
        """The ``(task, hardware)`` pairs, as stored, that have successful inference runs
        (tasks or hardware that are NULL are left out), in the order of their first run."""
        where, params = self._inference_where(sweep_id, None, runs=False)
        has_runs = " AND ".join(f"r.{c} IS run_totals.{c}" for c in _GROUP)
        sql = (f"SELECT task, hardware FROM run_totals WHERE {where} AND task IS NOT NULL "
               "AND hardware IS NOT NULL AND (stale = 0 OR EXISTS (SELECT 1 FROM runs r WHERE "
               f"r.status = 'ok' AND r.phase = 'inference' AND {has_runs})) "
               "GROUP BY task, hardware ORDER BY min(first_id)")
        return self._transaction(
            lambda conn: [(str(t), str(h)) for t, h in conn.execute(sql, params)], write=False)

    def first_unnamed_inference_run(self, *, sweep_id: str | None = None) -> RunRecord | None:
        """The first successful inference run without a model name, variant, dataset, task or
        hardware (such a run cannot be rated: the reader says so), or None."""
        where, params = self._inference_where(sweep_id, None)
        unnamed = " OR ".join(f"{c} IS NULL OR {c} = ''" for c in
                              ("model_name", "variant", "dataset", "task", "hardware"))
        sql = f"{_SELECT_RUNS} WHERE {where} AND ({unnamed}) ORDER BY id LIMIT 1"
        totals_where, totals_params = self._inference_where(sweep_id, None, runs=False)
        # the kept sums say whether there is any such run: the runs are searched only then
        any_sql = f"SELECT 1 FROM run_totals WHERE {totals_where} AND ({unnamed}) LIMIT 1"

        def body(conn: sqlite3.Connection) -> RunRecord | None:
            if conn.execute(any_sql, totals_params).fetchone() is None:
                return None
            row = conn.execute(sql, params).fetchone()
            return None if row is None else _decode_run(row)

        return self._transaction(body, write=False)

    def runs_by_id(self, ids: Iterable[int]) -> list[RunRecord]:
        """The stored runs with these row ids, in id order."""
        wanted = sorted(set(ids))

        def body(conn: sqlite3.Connection) -> list[RunRecord]:
            out: list[RunRecord] = []
            for chunk in _chunks(wanted, 500):
                marks = ", ".join("?" * len(chunk))
                out += [_decode_run(row) for row in conn.execute(
                    f"{_SELECT_RUNS} WHERE id IN ({marks}) ORDER BY id", chunk)]
            return out

        return self._transaction(body, write=False)

    def judged_runs(self, totals: Iterable[InferenceTotals]) -> list[JudgedRuns]:
        """The runs that these sums leave out (each one's ``left_out``), grouped by what
        judges whether they can be rated (:class:`~wattprint.record.JudgedRuns`), in order of
        their first runs: a quarter of a million partial runs with a few errors between them
        are a few groups, read in their order from the index ``runs_left_out`` (without it,
        if it cannot serve: sorted by SQLite, and the log says so). Their model, variant,
        dataset, task and hardware are their sums' (the runs of a sum have the same); each
        errors or metrics text is decoded once."""
        owner = {(t.sweep_id, t.task, t.hardware, t.model_name, t.dataset, t.variant): t
                 for t in totals if t.left_out}
        if not owner:
            return []
        expected = sum(t.left_out for t in owner.values())
        sweeps = {key[0] for key in owner}
        one_sweep = len(sweeps) == 1
        select = (
            f"SELECT {', '.join(_GROUP)}, min(id), json_group_array(id), "
            "json_group_array(cell_key), parent, partial, errors, "
            f"{', '.join(_JUDGED_FIGURES)}, metrics, num_samples FROM runs {{}}"
            + (" AND sweep_id = ?" if one_sweep else "")
            + f" GROUP BY {', '.join(_LEFT_OUT_ORDER)} ORDER BY min(id)")
        params = tuple(sweeps) if one_sweep else ()
        errors_read: dict[str | None, tuple[str, ...] | None] = {None: None}
        metrics_read: dict[str | None, Any] = {None: None}
        width = len(_GROUP)

        def judged(conn: sqlite3.Connection, query: str) -> list[JudgedRuns]:
            out: list[JudgedRuns] = []
            cursor = conn.execute(query, params)
            cursor.row_factory = None  # plain tuples
            for row in cursor:
                t = owner.get(row[:width])
                if t is None:  # a model of other sums
                    continue
                (_, ids_text, keys_text, parent, partial, errors, energy_j, energy_kwh, k,
                 co2_g, metrics, samples) = row[width:]
                ids, keys = json.loads(ids_text), json.loads(keys_text)
                if ids != sorted(ids):  # in id order through the index; sorted without it
                    pairs = sorted(zip(ids, keys, strict=True))
                    ids, keys = [i for i, _ in pairs], [key for _, key in pairs]
                if errors not in errors_read:
                    errors_read[errors] = tuple(json.loads(errors))
                if metrics not in metrics_read:
                    metrics_read[metrics] = json.loads(metrics)
                out.append(JudgedRuns(
                    tuple(ids), tuple(keys), t.model_name, t.variant, parent, t.dataset,
                    t.task, t.hardware, bool(partial), errors_read[errors], energy_j,
                    energy_kwh, k, co2_g, metrics_read[metrics], samples))
            return out

        def body(conn: sqlite3.Connection) -> list[JudgedRuns]:
            # through the index of the runs left out: read in order, grouped as they come
            try:
                out = judged(conn, select.format(
                    f"INDEXED BY runs_left_out WHERE {_LEFT_OUT}"))
            except sqlite3.OperationalError as err:  # the index was dropped or changed
                why = str(err)
            else:
                found = sum(len(j.ids) for j in out)
                if found == expected:
                    return out
                why = f"it holds {found} of the {expected} the sums count"
            _log.warning("results store %s: the index of the runs left out of the star "
                         "table's sums cannot serve (%s); they are read without it",
                         self.path, why)
            out = judged(conn, select.format(f"WHERE {_left_out_rule()}"))  # sorted by SQLite
            found = sum(len(j.ids) for j in out)
            if found != expected:  # the sums and the runs disagree: say so, list what is there
                _log.warning("results store %s: the star table's sums count %d runs left out, "
                             "the runs %d", self.path, expected, found)
            return out

        return self._transaction(body, write=False)

    @staticmethod
    def _inference_where(sweep_id: str | None, groups: Iterable[tuple[str, str]] | None, *,
                         runs: bool = True) -> tuple[str, tuple[Any, ...]]:
        """The ``WHERE`` of successful inference runs (``runs``), or of run_totals rows, of
        one sweep and some ``(task, hardware)`` groups."""
        where = "status = 'ok' AND phase = 'inference'" if runs else "1"
        params: list[Any] = []
        if sweep_id is not None:
            where += " AND sweep_id = ?"
            params.append(sweep_id)
        if groups is not None:
            pairs = sorted(set(groups))
            if not pairs:
                return where + " AND 0", tuple(params)
            where += " AND (" + " OR ".join("(task = ? AND hardware = ?)" for _ in pairs) + ")"
            params += [v for pair in pairs for v in pair]
        return where, tuple(params)

    def samples(self, run_id: int) -> list[tuple[float, str, float]]:
        """The power timeline of a run, ``(t_s, component, watts)`` in time order."""

        def body(conn: sqlite3.Connection) -> list[tuple[float, str, float]]:
            rows = conn.execute(
                "SELECT t_s, component, watts FROM samples WHERE run_id = ? ORDER BY t_s, rowid",
                (run_id,),
            )
            return [(float(t), str(c), float(w)) for t, c, w in rows]

        return self._transaction(body, write=False)

    # -- a large sweep, read for its report without decoding every run --------------------------

    def timeline_run_id(self, sweep_id: str) -> int | None:
        """The row id of the successful inference run of the sweep with the most distinct
        sample times (:meth:`samples`), the latest on ties; None when no such run has
        samples. One query, whatever the number of runs."""

        def body(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT r.id FROM runs AS r JOIN samples AS s ON s.run_id = r.id"
                " WHERE r.sweep_id = ? AND r.status = 'ok' AND r.phase = 'inference'"
                " GROUP BY r.id ORDER BY count(DISTINCT s.t_s) DESC, r.id DESC LIMIT 1",
                (sweep_id,)).fetchone()
            return None if row is None else int(row[0])

        return self._transaction(body, write=False)

    def sweep_overview(self, sweep_id: str) -> SweepOverview:
        """The totals, counts, provenances and sites of every run of the sweep (a
        :class:`SweepOverview`), read from a few columns: no run is decoded."""
        site = ", ".join(RunSite._fields)

        def body(conn: sqlite3.Connection) -> SweepOverview:
            figures = conn.execute("SELECT energy_kwh, co2_g, water_l FROM runs"
                                   " WHERE sweep_id = ? AND status = 'ok'", (sweep_id,))
            figures.row_factory = None  # plain tuples: a third of the time of sqlite3.Row
            sums = [math.fsum(v or 0.0 for v in column)
                    for column in zip(*figures.fetchall(), strict=True)] or [0.0, 0.0, 0.0]
            counts = conn.execute(
                "SELECT coalesce(sum(status = 'ok'), 0), coalesce(sum(status = 'failed'), 0),"
                " coalesce(sum(status = 'ok' AND partial), 0) FROM runs WHERE sweep_id = ?",
                (sweep_id,)).fetchone()
            kinds = conn.execute(
                "SELECT provenance, count(*) FROM runs WHERE sweep_id = ? AND status = 'ok'"
                " GROUP BY provenance ORDER BY min(id)", (sweep_id,)).fetchall()
            sites = conn.execute(
                f"SELECT {site}, count(*) FROM runs WHERE sweep_id = ? AND status = 'ok'"
                f" GROUP BY {site} ORDER BY min(id)", (sweep_id,)).fetchall()
            return SweepOverview(
                energy_kwh=sums[0], co2_g=sums[1], water_l=sums[2], runs_ok=int(counts[0]),
                runs_failed=int(counts[1]), runs_partial=int(counts[2]),
                provenances=tuple((kind, int(n)) for kind, n in kinds),
                sites=tuple((RunSite(*row[:-1]), int(row[-1])) for row in sites))

        return self._transaction(body, write=False)

    def model_runs(self, sweep_id: str) -> list[ModelRuns]:
        """The runs of the sweep per model and phase (one :class:`ModelRuns` each), in the
        order of each one's first run; no run is decoded."""
        group = ("task", "hardware", "model_name", "variant", "dataset", "phase")

        def body(conn: sqlite3.Connection) -> list[ModelRuns]:
            rows = conn.execute(
                f"SELECT {', '.join(group)}, min(id), count(*), sum(status = 'ok'),"
                " sum(status = 'failed'), total(CASE WHEN status = 'ok' THEN energy_j END),"
                " total(CASE WHEN status = 'ok' THEN co2_g END),"
                " total(CASE WHEN status = 'ok' THEN water_l END),"
                " min(CASE WHEN parent IS NOT NULL THEN id END)"
                f" FROM runs WHERE sweep_id = ? GROUP BY {', '.join(group)} ORDER BY min(id)",
                (sweep_id,)).fetchall()
            kinds: dict[tuple[Any, ...], list[str]] = {}
            for row in conn.execute(
                    f"SELECT {', '.join(group)}, provenance FROM runs WHERE sweep_id = ? AND"
                    " status = 'ok' AND provenance IS NOT NULL"
                    f" GROUP BY {', '.join(group)}, provenance ORDER BY min(id)", (sweep_id,)):
                kinds.setdefault(tuple(row[:-1]), []).append(str(row[-1]))
            parent_ids = [int(r[-1]) for r in rows if r[-1] is not None]
            parents: dict[int, str] = {}
            for ids in _chunks(parent_ids, 500):
                parents.update((int(i), str(p)) for i, p in conn.execute(
                    f"SELECT id, parent FROM runs WHERE id IN ({', '.join('?' * len(ids))})",
                    ids))
            return [ModelRuns(
                task=r[0], hardware=r[1], model_name=r[2], variant=r[3], dataset=r[4],
                phase=r[5], parent=None if r[-1] is None else parents[int(r[-1])],
                first_id=int(r[6]), runs=int(r[7]), runs_ok=int(r[8]), runs_failed=int(r[9]),
                energy_j=float(r[10]), co2_g=float(r[11]), water_l=float(r[12]),
                provenances=tuple(kinds.get(tuple(r[:6]), ()))) for r in rows]

        return self._transaction(body, write=False)

    def component_runs(self, sweep_id: str) -> list[ComponentRuns]:
        """The energy components of the sweep's runs, per run provenance, component name,
        source and measured flag (one :class:`ComponentRuns` each), in the order of each
        one's first run. Only the ``provenance`` and ``components`` columns are read."""

        def body(conn: sqlite3.Connection) -> list[ComponentRuns]:
            found: dict[tuple[Any, ...], list[float]] = {}
            for kind, text in conn.execute(
                    "SELECT provenance, components FROM runs WHERE sweep_id = ? AND"
                    " components IS NOT NULL ORDER BY id", (sweep_id,)):
                for name, c in json.loads(text).items():
                    key = (kind, str(name), str(c["source"]), bool(c["measured"]))
                    found.setdefault(key, []).append(float(c["energy_j"]))
            return [ComponentRuns(kind, name, source, measured, len(joules), math.fsum(joules))
                    for (kind, name, source, measured), joules in found.items()]

        return self._transaction(body, write=False)

    def notable_runs(self, sweep_id: str, *, limit: int | None = None) -> list[RunRecord]:
        """The runs of the sweep a reader must see one by one, in the order they were
        written: the failed ones, the partial ones, and the successful inference runs that
        :meth:`inference_totals` leaves out of its sums (not *clean*).

        With ``limit``, only the first ``limit`` of the failed and partial runs are read (a
        report lists no more; :class:`SweepOverview` counts them all), and every one of the
        others, which only the scores can tell apart."""
        clean = _run_terms("")["clean"]
        if limit is None:
            sql = (f"{_SELECT_RUNS} WHERE sweep_id = ? AND (status = 'failed' OR "
                   f"coalesce(partial, 0) != 0 OR (status = 'ok' AND phase = 'inference' AND "
                   f"NOT {clean})) ORDER BY id")
            return self._transaction(
                lambda conn: [_decode_run(row) for row in conn.execute(sql, (sweep_id,))],
                write=False)
        bad = (f"{_SELECT_RUNS} WHERE sweep_id = ? AND (status = 'failed' OR "
               "coalesce(partial, 0) != 0) ORDER BY id LIMIT ?")
        unclean = (f"{_SELECT_RUNS} WHERE sweep_id = ? AND status = 'ok' AND "
                   f"coalesce(partial, 0) = 0 AND phase = 'inference' AND NOT {clean} ORDER BY id")

        def body(conn: sqlite3.Connection) -> list[RunRecord]:
            found = [_decode_run(row) for row in conn.execute(bad, (sweep_id, max(limit, 0)))]
            found += [_decode_run(row) for row in conn.execute(unclean, (sweep_id,))]
            return sorted(found, key=lambda r: r.id or 0)

        return self._transaction(body, write=False)

    def failed_runs(self, sweep_id: str, *, limit: int | None = None) -> list[RunRecord]:
        """The failed runs of the sweep in the order they were written; the first ``limit``
        of them when given."""
        sql = f"{_SELECT_RUNS} WHERE sweep_id = ? AND status = 'failed' ORDER BY id LIMIT ?"
        return self._transaction(
            lambda conn: [_decode_run(row) for row in conn.execute(
                sql, (sweep_id, -1 if limit is None else max(limit, 0)))],
            write=False)

    def failure_counts(self, sweep_id: str) -> list[tuple[str, int]]:
        """The failed runs of the sweep counted by the first line of their error (``no error
        recorded`` where there is none), the most common first, ties in the order of their
        first run; no run is decoded."""
        first = ("CASE WHEN error IS NULL OR error = '' THEN 'no error recorded' ELSE "
                 "substr(error, 1, instr(error || char(10), char(10)) - 1) END")
        sql = (f"SELECT {first} AS line, count(*) FROM runs WHERE sweep_id = ? AND "
               "status = 'failed' GROUP BY line ORDER BY count(*) DESC, min(id)")
        return self._transaction(
            lambda conn: [(str(line), int(n)) for line, n in conn.execute(sql, (sweep_id,))],
            write=False)

    def savings_runs(self, sweep_id: str) -> list[RunRecord]:
        """The runs of the sweep that the savings of its optimized variants are made of
        (:func:`wattprint.score.savings` of them is that of all its runs), in the order they
        were written: every optimization run; the successful inference runs of each model
        name and dataset of which some successful inference run names a parent; and the
        first successful inference run without a model name, variant, dataset, task or
        hardware (which makes the savings an error), if there is one."""
        sql = ("WITH named AS MATERIALIZED (SELECT DISTINCT model_name, dataset FROM runs"
               " WHERE sweep_id = ? AND status = 'ok' AND phase = 'inference'"
               f" AND parent IS NOT NULL) {_SELECT_RUNS} WHERE sweep_id = ? AND"
               " (phase = 'optimization' OR (status = 'ok' AND phase = 'inference' AND EXISTS"
               " (SELECT 1 FROM named WHERE named.model_name IS runs.model_name AND"
               " named.dataset IS runs.dataset))) ORDER BY id")
        found = self._transaction(
            lambda conn: [_decode_run(row) for row in conn.execute(sql, (sweep_id, sweep_id))],
            write=False)
        unnamed = self.first_unnamed_inference_run(sweep_id=sweep_id)
        if unnamed is not None and all(r.id != unnamed.id for r in found):
            found = sorted([*found, unnamed], key=lambda r: r.id or 0)
        return found

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


def _chunks(items: list[_T], size: int) -> Iterable[list[_T]]:
    """``items`` in lists of at most ``size`` (SQLite caps the parameters of a statement)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _totals_record(row: tuple[Any, ...], index: Mapping[str, int],
                   values: Mapping[int, tuple[Any, ...]]) -> InferenceTotals:
    """A run_totals row (columns as :data:`_TOTALS_COLUMNS`) as its typed record; ``values``
    holds the ``_FIRSTS`` columns of the runs the row names as first."""

    def get(name: str) -> Any:
        return row[index[name]]

    firsts = {}
    for k, name in enumerate(_FIRSTS):
        run_id = get(f"first_{name}")
        if run_id is not None:
            firsts[name] = (int(run_id), values[run_id][k])
    first_clean = get("first_clean_id")
    return InferenceTotals(
        sweep_id=get("sweep_id"), task=get("task"), hardware=get("hardware"),
        model_name=get("model_name"), dataset=get("dataset"), variant=get("variant"),
        first_id=int(get("first_id")),
        first_clean_id=None if first_clean is None else int(first_clean),
        runs=int(get("runs")), kwh_sum=float(get("kwh_sum")),
        kwh_sum_sq=float(get("kwh_sum_sq")), kwh_min=get("kwh_min"), kwh_max=get("kwh_max"),
        co2_sum=float(get("co2_sum")), co2_runs=int(get("co2_runs")),
        quality_sums={q.metric: (float(get(f"q_{q.metric}_sum")), int(get(f"q_{q.metric}_n")))
                      for q in QUALITY_METRICS if get(f"q_{q.metric}_n")},
        provenances=tuple(v for v in PROVENANCES if get(f"p_{v}")),
        pruned=bool(get("pruned")), firsts=firsts,
        left_out=int(get("left_out")),
    )
