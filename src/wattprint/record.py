"""One measured run, as it is stored, read back and rated: :class:`RunRecord`.

A run record is made once, where the run is measured (the inference harness, the sweep runner),
from the :class:`~wattprint.measurement.Measurement` by :meth:`RunRecord.from_measurement`.
The results store writes it as one row and reads it back as the same record; the star ratings,
the summaries and the report read its fields. Nothing on the way reshapes it: each quantity
has one name and one unit (``co2_g`` grams, ``energy_j`` joules, ``started_at`` unix seconds).
The shapes other tools document (``measure_energy``'s ``co2_kg``, ML-EcoLyzer's
``total_co2_emissions_kg``) are views made from a record at the edge, never read back.

A record checks its fields when it is made (:class:`~wattprint.errors.ConfigError` naming the
field): a record that exists is one the store can keep. :meth:`RunRecord.from_dict` takes the
JSON form (:meth:`RunRecord.to_dict`, an export's ``runs``) and refuses unknown keys.

What a run's measurement says about itself travels with it: ``partial`` (a sensor failed in
the window, its component is missing from ``energy_j``), ``errors`` (what failed) and
``measurement_notes`` (what else a reader should know). Ratings skip a partial run; the report
marks it.

A run's quality figure, the one that stands beside its energy in the star tables and the
report, is :func:`quality`: a :class:`Quality` (metric, value, which way is better) read from
its ``metrics`` by the fixed order of :data:`QUALITY_METRICS` (accuracy, word error rate,
pass rate, exact match, perplexity, R², RMSE, MAE).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError

if TYPE_CHECKING:
    from .measurement import Measurement

__all__ = ["PHASES", "PROVENANCES", "QUALITY_METRICS", "RUN_STATUSES", "InferenceTotals",
           "JudgedRuns", "Quality", "QualityMetric", "RunComponent", "RunRecord", "mean_quality",
           "provenance", "quality"]

RUN_STATUSES = ("ok", "failed")
PHASES = ("inference", "training", "optimization")
#: Where a run's energy came from: ``measured`` (hardware counters), ``sampled`` (a measured
#: power, integrated), ``estimate``, ``fake`` (a :class:`~wattprint.sensors.FakeSensor`: tests,
#: demos), ``mixed``, or ``none`` (no component measured).
PROVENANCES = ("measured", "sampled", "estimate", "mixed", "fake", "none")


def _bad(name: str, want: str, value: object) -> ConfigError:
    return ConfigError(f"run record field {name!r} must be {want}, not "
                       f"{type(value).__name__} {value!r:.60}")


def _text(name: str, value: object) -> str:
    if type(value) is str:  # the common case, checked first: the same rule, sooner
        return value
    if not isinstance(value, str):
        raise _bad(name, "a str", value)
    return value


def _real(name: str, value: object) -> float:
    if type(value) is float:  # the common case, checked first: the same rule, sooner
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(name, "a number", value)
    return float(value)


def _int(name: str, value: object) -> int:
    if type(value) is int:  # the common case, checked first: the same rule, sooner
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _bad(name, "an int", value)
    return int(value)


def _count(name: str, value: object) -> int | float:
    """An int stays an int, a float a float (``effective_parameters`` may be fractional)."""
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return _real(name, value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "a bool", value)
    return value


def _mapping(name: str, value: object) -> dict[str, Any]:
    if type(value) is dict and all(type(k) is str for k in value):
        return dict(value)  # a copy, as below, without a str() of each key
    if not isinstance(value, Mapping):
        raise _bad(name, "a dict", value)
    return {str(k): v for k, v in value.items()}


def _texts(name: str, value: object) -> tuple[str, ...]:
    if type(value) is tuple and all(type(item) is str for item in value):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(
            isinstance(item, str) for item in value):
        raise _bad(name, "a list of str", value)
    return tuple(value)


def _choice(allowed: tuple[str, ...]) -> Any:
    def check(name: str, value: object) -> str:
        if type(value) is str and value in allowed:
            return value
        if value not in allowed:
            raise ConfigError(f"run record field {name!r} is {value!r}; allowed: "
                              f"{', '.join(allowed)}")
        return _text(name, value)

    return check


def _components(name: str, value: object) -> dict[str, RunComponent]:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _bad(name, "a dict of components", value)
    return {str(k): v if isinstance(v, RunComponent) else RunComponent.from_dict(v, str(k))
            for k, v in value.items()}


@dataclass(frozen=True)
class RunComponent:
    """The energy of one component of a run (``cpu``, ``ram``, ``gpu:0``) and where it came
    from: ``source`` is ``rapl``, ``nvml``, ``estimate`` or ``fake``; ``measured`` is True only
    for a hardware counter or power register; ``scope`` is ``machine`` or ``process``."""

    energy_j: float
    source: str
    measured: bool
    scope: str = "machine"

    def to_dict(self) -> dict[str, Any]:
        return {"energy_j": self.energy_j, "source": self.source, "measured": self.measured,
                "scope": self.scope}

    @classmethod
    def from_dict(cls, data: object, name: str = "?") -> RunComponent:
        if (type(data) is dict and data.keys() <= _COMPONENT_KEYS
                and type(data.get("energy_j")) is float and type(data.get("source")) is str
                and type(data.get("measured")) is bool
                and type(scope := data.get("scope") or "machine") is str):
            # the common case, checked first: the same rules as below, sooner
            return cls(data["energy_j"], data["source"], data["measured"], scope)
        where = f"components[{name!r}]"
        if not isinstance(data, Mapping):
            raise _bad(where, "a dict", data)
        unknown = sorted(str(k) for k in data if k not in ("energy_j", "source", "measured",
                                                            "scope"))
        if unknown:
            raise ConfigError(f"run record field {where} has unknown key(s) "
                              f"{', '.join(unknown)}; the keys are energy_j, source, measured, "
                              "scope")
        try:
            return cls(energy_j=_real(f"{where}.energy_j", data["energy_j"]),
                       source=_text(f"{where}.source", data["source"]),
                       measured=_bool(f"{where}.measured", data["measured"]),
                       scope=_text(f"{where}.scope", data.get("scope") or "machine"))
        except KeyError as err:
            raise ConfigError(f"run record field {where} needs {err.args[0]!r}") from None


_COMPONENT_KEYS = frozenset(("energy_j", "source", "measured", "scope"))


def provenance(components: Mapping[str, RunComponent], samples: int = 0) -> str:
    """One word for where a run's energy came from (one of :data:`PROVENANCES`): ``measured``
    (hardware counters), ``sampled`` (measured power integrated over ``samples`` readings),
    ``estimate``, ``fake``, ``mixed``, or ``none``."""
    kinds = set()
    for c in components.values():
        if c.source in ("estimate", "fake"):
            kinds.add(c.source)
        elif c.measured:
            kinds.add("sampled" if samples else "measured")
        else:
            kinds.add("estimate")
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run: one row of the results store, one repetition in the star table.

    Units are in the names; a field not known is None. ``sweep_id`` and ``cell_key`` name
    the run in the store (:meth:`~wattprint.store.Store.write_run` needs both); ``id`` is set
    on a record read back from the store. ``components`` maps each component to its
    :class:`RunComponent`; ``metrics`` (``accuracy``, ``f1_macro``, ``rmse``, ...),
    ``optimization``, ``host`` and ``extra`` are JSON-ready dicts. ``location``, ``tier``,
    ``pue``, ``wue_l_per_kwh``, ``intensity_g_per_kwh`` and ``water_intensity_l_per_kwh`` are
    the site the footprint was computed for.
    """

    sweep_id: str | None = None
    cell_key: str | None = None
    model_name: str | None = None
    variant: str | None = None
    parent: str | None = None
    dataset: str | None = None
    repetition: int | None = None
    phase: str | None = None
    task: str | None = None
    hardware: str | None = None
    status: str
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    energy_j: float | None = None
    energy_kwh: float | None = None
    co2_g: float | None = None
    water_l: float | None = None
    intensity_g_per_kwh: float | None = None
    intensity_source: str | None = None
    pue: float | None = None
    wue_l_per_kwh: float | None = None
    provenance: str | None = None
    components: Mapping[str, RunComponent] | None = None
    num_samples: int | None = None
    samples_per_second: float | None = None
    kwh_per_1000_queries: float | None = None
    metrics: Mapping[str, Any] | None = None
    framework: str | None = None
    num_parameters: int | None = None
    effective_parameters: int | float | None = None
    size_bytes: int | None = None
    dtype: str | None = None
    optimization: Mapping[str, Any] | None = None
    host: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None
    notes: str | None = None
    partial: bool | None = None
    errors: tuple[str, ...] | None = None
    measurement_notes: tuple[str, ...] | None = None
    location: str | None = None
    tier: str | None = None
    water_intensity_l_per_kwh: float | None = None
    id: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        fields = self.__dict__  # set as object.__setattr__ would: the record is frozen
        for name, check, passes in _CHECKS:
            value = fields[name]
            # a value of the type its check passes unchanged (a float of a float field) is
            # taken as it is, without the call: the same rules, sooner
            if value is not None and type(value) is not passes:
                checked = check(name, value)
                if checked is not value:
                    fields[name] = checked

    # -- making one -----------------------------------------------------------------------

    @classmethod
    def from_measurement(cls, m: Measurement, **fields: Any) -> RunRecord:
        """The record of a run measured by ``m``: its times, energy, footprint at the meter's
        site, components with provenance, and what the measurement says about itself; the
        other fields (``status`` defaults to ``ok``) are given as keywords."""
        fp = m.footprint
        site = m.site
        comps = {name: RunComponent(c.energy_j, c.source.value, c.measured, c.scope)
                 for name, c in m.components.items()}
        made: dict[str, Any] = {
            "status": "ok",
            "started_at": m.start.timestamp(), "ended_at": m.end.timestamp(),
            "duration_s": m.duration_s, "energy_j": m.energy_j, "energy_kwh": fp.kwh,
            "co2_g": fp.co2_g, "water_l": fp.water_l,
            "intensity_g_per_kwh": fp.intensity_g_per_kwh,
            "intensity_source": fp.intensity_source, "location": fp.location,
            "pue": fp.pue, "wue_l_per_kwh": fp.wue_l_per_kwh, "tier": site.tier,
            "water_intensity_l_per_kwh": fp.water_intensity_l_per_kwh,
            "provenance": provenance(comps, m.samples), "components": comps,
            "partial": m.partial, "errors": tuple(m.errors),
            "measurement_notes": tuple(m.notes),
        }
        made.update(fields)
        return cls(**made)

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with ``changes`` (checked as at construction)."""
        return dataclasses.replace(self, **changes)

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field (``id`` first), components as dicts, lists for tuples."""
        out: dict[str, Any] = {"id": self.id}
        for name in FIELDS:
            value = getattr(self, name)
            if name == "components" and value is not None:
                value = {k: c.to_dict() for k, c in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of the JSON form ``data`` (:meth:`to_dict`); keys left out are None.
        An unknown key is a :class:`~wattprint.errors.ConfigError` listing the known ones."""
        if isinstance(data, RunRecord):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(f"a run record must be a RunRecord or a dict, not "
                              f"{type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            raise ConfigError(
                f"unknown run record key(s): {', '.join(unknown)}; the keys are the fields of "
                f"wattprint.RunRecord: {', '.join(FIELDS)}"
            )
        if data.get("status") is None:
            raise ConfigError("a run record needs status ('ok' or 'failed')")
        return cls(**{k: v for k, v in data.items() if v is not None})

    # -- what a reader asks -------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """The run finished (its figures are there)."""
        return self.status == "ok"

    def metric(self, name: str) -> Any:
        """``metrics[name]``, or None."""
        return None if self.metrics is None else self.metrics.get(name)


#: The stored fields of a run record, in the store's column order (``id`` is the row's own).
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunRecord) if f.name != "id")
_KEYS = frozenset((*FIELDS, "id"))

_CHECK_BY_NAME: dict[str, Any] = {
    "status": _choice(RUN_STATUSES), "phase": _choice(PHASES),
    "provenance": _choice(PROVENANCES), "repetition": _int, "num_samples": _int,
    "num_parameters": _int, "size_bytes": _int, "id": _int,
    "effective_parameters": _count, "components": _components,
    "metrics": _mapping, "optimization": _mapping, "host": _mapping, "extra": _mapping,
    "partial": _bool, "errors": _texts, "measurement_notes": _texts,
}
_FLOATS = ("started_at", "ended_at", "duration_s", "energy_j", "energy_kwh", "co2_g", "water_l",
           "intensity_g_per_kwh", "pue", "wue_l_per_kwh", "samples_per_second",
           "kwh_per_1000_queries", "water_intensity_l_per_kwh")
#: The type a check passes unchanged, without looking further (the others: none).
_PASSES: dict[Any, type] = {_real: float, _text: str, _int: int, _bool: bool}
_CHECKS: tuple[tuple[str, Any, type | None], ...] = tuple(
    (name, check, _PASSES.get(check))
    for name in (*FIELDS, "id")
    for check in [_CHECK_BY_NAME.get(name, _real if name in _FLOATS else _text)]
)


# -- a run's quality figure ----------------------------------------------------------------------


@dataclass(frozen=True)
class QualityMetric:
    """A metric that can stand for a run's quality: its ``metrics`` key, the short ``label``
    tables show, whether a higher value is better, the format of its value and what it is in
    words."""

    metric: str
    label: str
    higher_is_better: bool
    spec: str
    description: str


#: The metrics a run's quality is read from, first present first: a classifier's ``accuracy``;
#: the word error rate of speech recognition (``wer``, lower is better); a code set's
#: ``pass_rate`` (its tests ran), else ``exact_match``; a language model's ``perplexity``
#: (lower is better); a regressor's ``r2``, else ``rmse`` or ``mae`` (lower is better).
#: Fractions show three decimals, the others three significant digits.
QUALITY_METRICS: tuple[QualityMetric, ...] = (
    QualityMetric("accuracy", "acc", True, ".3f", "accuracy"),
    QualityMetric("wer", "WER", False, ".3f", "word error rate"),
    QualityMetric("pass_rate", "pass", True, ".3f", "pass rate of the code tests"),
    QualityMetric("exact_match", "exact", True, ".3f", "exact match"),
    QualityMetric("perplexity", "ppl", False, ".3g", "perplexity"),
    QualityMetric("r2", "R²", True, ".3f", "coefficient of determination"),
    QualityMetric("rmse", "RMSE", False, ".3g", "root mean squared error"),
    QualityMetric("mae", "MAE", False, ".3g", "mean absolute error"),
)


@dataclass(frozen=True)
class Quality:
    """A run's (or a model's, averaged over its repetitions) quality figure: the value of
    ``metric`` (a key of :data:`QUALITY_METRICS`) and which way is better. ``str()`` is the
    short text tables show: ``"acc 0.930"``, ``"WER 0.250"``, ``"ppl 41.2"``."""

    metric: str
    value: float
    higher_is_better: bool

    @property
    def label(self) -> str:
        """The short name of the metric in tables (``acc``, ``WER``, ``ppl``)."""
        known = _QUALITY_BY_NAME.get(self.metric)
        return self.metric if known is None else known.label

    @property
    def description(self) -> str:
        """The metric in words (``word error rate``)."""
        known = _QUALITY_BY_NAME.get(self.metric)
        return self.metric.replace("_", " ") if known is None else known.description

    @property
    def value_text(self) -> str:
        """The value as tables show it: three decimals for a fraction (``0.250``), else three
        significant digits (``41.2``)."""
        known = _QUALITY_BY_NAME.get(self.metric)
        return format(self.value, ".3g" if known is None else known.spec)

    def __str__(self) -> str:
        return f"{self.label} {self.value_text}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``metric``, ``value``, ``higher_is_better``."""
        return dataclasses.asdict(self)


_QUALITY_BY_NAME = {q.metric: q for q in QUALITY_METRICS}


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def quality(record: RunRecord) -> Quality | None:
    """The run's quality figure: the first metric of :data:`QUALITY_METRICS` the record has as
    a finite number; None when it has none (a failed run, an unlabelled dataset)."""
    return mean_quality([record])


def mean_quality(records: Iterable[RunRecord]) -> Quality | None:
    """The quality figure of several runs of one model (its repetitions): the first metric of
    :data:`QUALITY_METRICS` that any of them has as a finite number, averaged over the runs
    that have it (exactly rounded, :func:`math.fsum`); None when none has any."""
    runs = list(records)
    for q in QUALITY_METRICS:
        values = [v for v in (_finite(r.metric(q.metric)) for r in runs) if v is not None]
        if values:
            return Quality(q.metric, math.fsum(values) / len(values), q.higher_is_better)
    return None


class JudgedRuns(NamedTuple):
    """Stored runs of one model that the store's sums leave out and that one judgement covers
    (see :meth:`wattprint.store.Store.judged_runs`): the fields that tell whether a run can be
    rated (partial, errors, metrics, and which figures are numbers, finite, or missing) are
    alike in all of them, so the figures of the first stand for all. ``ids`` and
    ``cell_keys`` name them all, in id order. A tuple, not records: a store may hold hundreds
    of thousands of such runs, with a few reasons between them."""

    ids: tuple[int, ...]
    cell_keys: tuple[str | None, ...]
    model_name: str
    variant: str
    parent: str | None
    dataset: str
    task: str
    hardware: str
    partial: bool
    errors: tuple[str, ...] | None
    energy_j: float | None
    energy_kwh: float | None
    kwh_per_1000_queries: float | None
    co2_g: float | None
    metrics: Mapping[str, Any] | None
    num_samples: int | None


@dataclass(frozen=True)
class InferenceTotals:
    """The successful inference runs of one model in one sweep (task, hardware, model, dataset
    and variant, each as stored), summed by the store for the star table (see
    :meth:`wattprint.store.Store.inference_totals`).

    The sums are over the *clean* runs: not partial, every figure finite, an energy per query
    there. ``left_out`` counts the others, which
    :meth:`~wattprint.store.Store.judged_runs` reads for the reader to tell why each is left
    out. ``first_id`` is the group's first run (clean or not); ``firsts`` maps each of
    ``parent``, ``num_parameters``, ``effective_parameters`` and ``size_bytes`` to the first
    clean run that has it, as ``(row id, value)``. ``quality_sums`` holds, per metric of
    :data:`QUALITY_METRICS` that some clean run has as a number, ``(sum, count)``.
    """

    sweep_id: str
    task: str
    hardware: str
    model_name: str
    dataset: str
    variant: str
    first_id: int
    first_clean_id: int | None
    runs: int
    kwh_sum: float
    kwh_sum_sq: float
    kwh_min: float | None
    kwh_max: float | None
    co2_sum: float
    co2_runs: int
    quality_sums: Mapping[str, tuple[float, int]]
    provenances: tuple[str, ...]
    pruned: bool
    firsts: Mapping[str, tuple[int, Any]]
    left_out: int
