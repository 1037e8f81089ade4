"""Star ratings, the Environmental Sustainability Score, savings and Pareto fronts of stored runs.

Pure functions over run records: each a :class:`~wattprint.record.RunRecord`, as the results
store (:mod:`wattprint.store`) reads it back, rated as it is. A function that takes records
also takes their JSON form (dicts, an export's ``runs``): each is made a record once, where it
comes in (:meth:`RunRecord.from_dict <wattprint.record.RunRecord.from_dict>`), so an unknown
key or a value of the wrong type is a :class:`~wattprint.errors.ConfigError` naming it. The
only I/O is reading a store when :func:`calculate_scores` or :func:`read_records` is given its
path. The statistics of repetitions live in ``wattprint._stats``, the text and tables
(:func:`print_scores`, :func:`energy_text`, ...) in ``wattprint._score_text``, and the savings
of optimized variants and the Pareto front (:func:`savings`, :class:`Saving`,
:func:`pareto_front`) in ``wattprint._savings``; all are re-exported here.

**A model** is one ``(model_name, variant, dataset)`` of one task and hardware, made of its
successful inference runs (``status == "ok"``, ``phase == "inference"``); failed runs and
training or optimization runs are never rated. Its figures average the repetitions:

- ``kwh_per_1000_queries``: the mean of the runs' ``kwh_per_1000_queries`` (a run without it
  but with ``energy_kwh`` and ``num_samples`` gives ``energy_kwh * 1000 / num_samples``);
- ``co2_g_per_1000_queries``: the mean of ``co2_g * 1000 / num_samples``;
- ``accuracy``: the mean of ``metrics["accuracy"]`` (a fraction, 0..1), None when no run has it;
- ``quality``: the model's quality figure beside its energy, a
  :class:`~wattprint.record.Quality` (accuracy, word error rate, pass rate, exact match,
  perplexity, ..., the first of :data:`~wattprint.record.QUALITY_METRICS` its runs have),
  the mean of its runs (:func:`~wattprint.record.mean_quality`); None when they have none.

Means are exactly rounded (:func:`math.fsum`), so the same figures in any order give the same
mean.

**Spread.** Beside the mean, a :class:`Score` has the repetitions' ``kwh_per_1000_queries_min``
and ``_max`` and, for ``n >= 2`` repetitions, the 95 % interval of the mean,
``mean -/+ t(0.975, n - 1) * s / sqrt(n)`` (``s`` the sample standard deviation, ``t`` Student's
quantile, :func:`t_quantile_975`) in ``kwh_per_1000_queries_ci95_low`` and ``_high``; one
repetition has no interval (None). Two models next to each other in the ranking whose intervals
overlap are in :attr:`Score.overlapping_neighbours`: their order is within the noise of their
runs, so the ranking between them is not significant (:attr:`Score.ranking_significant` is
False, and the table marks them ``≈``). A model with one repetition counts as its single
figure; two such models are never said to overlap, there being no interval to compare. The
stars themselves are not changed by this: they rank the means.

**Not rated.** A successful run that cannot stand beside the others is left out of the
ranking, never averaged in: a ``partial`` run (a sensor failed inside its window, so a
component's energy is missing and the figure is too low), and a run with a figure that is not
finite (NaN or infinite energy, CO2 or metric) or no energy figure at all. Such runs are not
dropped silently: :func:`calculate_scores` and :func:`star_ratings` return a
:class:`ScoreList` whose :attr:`~ScoreList.unrated` holds one :class:`Unrated` per model
with the runs left out and a short reason ("partial, gpu:0: not readable"), which
:func:`print_scores`, ``wattprint score --json`` and the HTML report show. A model with some
complete runs is rated on those; a model with none is only listed as not rated. A model left
out is also logged on the ``wattprint.score`` logger.

A model's label (:attr:`Score.model`) is ``model_name`` for the base variant (the one with no
``parent``) and ``model_name:variant`` for any other; the fields ``model_name`` and
``variant`` are kept beside it. Task and hardware names match case-insensitively.

**Ranks and percentiles.** Lower energy per 1000 queries is better. A model's rank ``r`` is the
number of models in its group with strictly lower energy, so equal figures share the best rank
of their tie. With ``n`` models, ``percentile = 100 * r / (n - 1)`` (0 for a lone model), as ML
Energy Score reports it: 0 is the most efficient model of the group, 100 the least; ten models
have 0, 11, 22, ... 100.

**Stars** (1..5), by ``method``:

``quintile`` (default)
    by rank: ``stars = 5 - floor(5 * r / n)``, so the best 20% of the group get 5 stars, the
    next 20% 4, and so on (10 models: two per level; 5 models: 5, 4, 3, 2, 1). Small groups use
    the same rule: 3 models get 5, 4 and 2 stars; 2 models 5 and 3. Tied models share the
    stars of their best rank.
``range``
    by value: the group's range ``[min, max]`` of energy per 1000 queries is cut into five
    equal bands of width ``w = (max - min) / 5``. The 5-star band is ``[min, min + w)``, the
    4-star band ``[min + w, min + 2w)``, ..., the 1-star band ``[min + 4w, max]``: a value on
    an edge between two bands goes to the upper (fewer-stars) band, and the maximum is in the
    1-star band. "On an edge" allows one part in 10^9 of the range for rounding, so
    ``min + w`` written in decimal lands on the edge. If all figures are equal (zero width),
    every model gets 5 stars.

A group of one model gets 5 stars by both methods: a rating is relative to its group, and
nothing in it does better. :attr:`Score.group_size` says how many models a rating compares.

**ESS**, the Environmental Sustainability Score, is parameters in millions per gram of CO2 per
1000 queries (higher is better). A pruned variant (its name starts with ``pruned`` or its
``optimization["kind"]`` is ``pruning``) is counted by its ``effective_parameters`` (the
weights left after pruning). :func:`ess` raises on zero CO2; :func:`ess_of` gives None when
the CO2 or the parameter count is missing or the CO2 is zero: an ESS over zero grams is not a
number to compare.
"""

from __future__ import annotations

import heapq
import math
import numbers
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._log import IN_RESULTS, get_logger
from ._score_text import (
    MAX_STARS,
    NOT_SIGNIFICANT_MARK,
    NOT_SIGNIFICANT_NOTE,
    ci95_text,
    energy_text,
    interval_text,
    print_scores,
    quality_text,
    star_glyphs,
)
from ._stats import Spread, overlap, spread, t_quantile_975
from .errors import ConfigError
from .record import (
    QUALITY_METRICS,
    InferenceTotals,
    JudgedRuns,
    Quality,
    RunRecord,
    mean_quality,
)

if TYPE_CHECKING:
    from ._savings import Saving, pareto_front, savings
    from .store import Store

__all__ = [
    "DEFAULT_DB",
    "METHODS",
    "NOT_SIGNIFICANT_MARK",
    "NOT_SIGNIFICANT_NOTE",
    "Saving",
    "Score",
    "ScoreList",
    "Unrated",
    "available_groups",
    "calculate_scores",
    "ci95_text",
    "energy_text",
    "ess",
    "ess_of",
    "interval_text",
    "pareto_front",
    "print_scores",
    "quality_text",
    "rate_stored_sweep",
    "read_records",
    "savings",
    "star_glyphs",
    "star_ratings",
    "t_quantile_975",
    "why_not_rated",
]

_log = get_logger(__name__)

#: The star-rating methods.
METHODS = ("quintile", "range")
#: The default path of the results store.
DEFAULT_DB = "wattprint.db"

_EDGE_TOLERANCE = 1e-9
_J_PER_KWH = 3.6e6

#: A run as the public functions take it: a record, or its JSON form (made a record at once).
RunLike = RunRecord | Mapping[str, Any]
_Key = tuple[str, str, str, str, str]  # task, hardware, model_name, dataset, variant (casefolded)


@dataclass(frozen=True)
class Score:
    """The rating of one model (``model_name`` x ``variant`` x ``dataset``) in its group.

    ``percentile`` is the model's place in its group, 0 for the most efficient and 100 for the
    least (``100 * rank / (group_size - 1)``, as ML Energy Score has it). ``group_size`` is
    the number of models rated together, ``repetitions`` the inference runs averaged,
    ``method`` the star method. ``ess`` is None where :func:`ess_of` gives None.
    ``provenance`` is the runs' provenance (``mixed`` when they differ), None when they do not
    say. ``pruned``: the variant was made by pruning, so its ESS counts
    ``effective_parameters``.

    ``kwh_per_1000_queries_min``/``_max`` are the repetitions' extremes and
    ``kwh_per_1000_queries_ci95_low``/``_high`` the 95 % Student t interval of the mean (None
    for one repetition); ``overlapping_neighbours`` names the models next to it in the ranking
    whose intervals overlap its own (module docstring, "Spread"). ``quality`` is the quality
    figure shown beside the energy (``accuracy`` stays for those who read it by that name);
    :meth:`to_dict` gives it as ``{"metric", "value", "higher_is_better"}``.
    """

    model: str
    model_name: str
    variant: str
    parent: str | None
    dataset: str
    task: str
    hardware: str
    kwh_per_1000_queries: float
    kwh_per_1000_queries_min: float
    kwh_per_1000_queries_max: float
    kwh_per_1000_queries_ci95_low: float | None
    kwh_per_1000_queries_ci95_high: float | None
    co2_g_per_1000_queries: float | None
    accuracy: float | None
    ess: float | None
    num_parameters: int | None
    effective_parameters: float | None
    size_bytes: int | None
    repetitions: int
    group_size: int
    percentile: float
    stars: int
    method: str
    provenance: str | None
    pruned: bool = False
    overlapping_neighbours: tuple[str, ...] = ()
    quality: Quality | None = None

    @property
    def ranking_significant(self) -> bool:
        """False when this model's interval overlaps a ranking neighbour's (see the module
        docstring, "Spread"): its order against them is not significant."""
        return not self.overlapping_neighbours

    def to_dict(self) -> dict[str, Any]:
        """The score as a JSON-ready dict, with ``stars_text`` (``★★★★☆``),
        ``ranking_significant`` and ``rated: True`` added."""
        out = asdict(self)
        out["overlapping_neighbours"] = list(self.overlapping_neighbours)
        out["ranking_significant"] = self.ranking_significant
        out["stars_text"] = star_glyphs(self.stars)
        out["rated"] = True
        return out


@dataclass(frozen=True)
class Unrated:
    """A model (``model_name`` x ``variant`` x ``dataset``) with successful runs that were not
    rated, and why.

    ``runs`` counts the runs left out and ``cell_keys`` names them; ``reason`` is short and
    says what went wrong ("partial, gpu:0: not readable", "energy_j is not finite"), the
    reasons of several runs joined by ``"; "``. The model may also be rated on its other runs.
    """

    model: str
    model_name: str
    variant: str
    parent: str | None
    dataset: str
    task: str
    hardware: str
    runs: int
    reason: str
    cell_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict beside :meth:`Score.to_dict`'s: ``rated: False``, ``stars:
        None``, ``stars_text: "not rated"`` and the ``reason``."""
        out = asdict(self)
        out["cell_keys"] = list(self.cell_keys)
        out.update(rated=False, stars=None, stars_text="not rated")
        return out


class ScoreList(list[Score]):
    """The rated models, most efficient first (a plain ``list`` of :class:`Score`), and in
    :attr:`unrated` the models whose runs were left out of the ranking, with why."""

    def __init__(self, scores: Iterable[Score] = (), unrated: Iterable[Unrated] = ()) -> None:
        super().__init__(scores)
        #: The models with runs left out of the ranking (see the module docstring).
        self.unrated: list[Unrated] = list(unrated)

    def _repr_html_(self) -> str:
        """The star tables for notebooks, the models not rated in red (``wattprint._html``)."""
        from ._html import scores_html

        return scores_html(self, self.unrated)


# --------------------------------------------------------------------------------------------
# Records to models.


@dataclass(frozen=True)
class _Model:
    """One model's runs averaged, before it is ranked."""

    task: str
    hardware: str
    model_name: str
    variant: str
    parent: str | None
    dataset: str
    kwh_per_1000_queries: float
    spread: Spread
    co2_g_per_1000_queries: float | None
    accuracy: float | None
    num_parameters: int | None
    effective_parameters: float | None
    size_bytes: int | None
    repetitions: int
    provenance: str | None
    pruned: bool
    quality: Quality | None = None

    @property
    def label(self) -> str:
        return self.model_name if self.parent is None else f"{self.model_name}:{self.variant}"

    @property
    def ess(self) -> float | None:
        parameters = self.effective_parameters if self.pruned else self.num_parameters
        return _ess_or_none(parameters, self.co2_g_per_1000_queries)


def _number(value: object) -> float | None:
    """``value`` as a finite float; None for None, NaN, infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def _fold(value: object) -> str:
    return str(value).casefold()


def _as_records(records: Iterable[RunLike]) -> list[RunRecord]:
    """``records`` as :class:`RunRecord` objects: a record is kept as it is, a dict (its JSON
    form) is made one, or refused with a :class:`~wattprint.errors.ConfigError` naming what
    is wrong."""
    return [r if isinstance(r, RunRecord) else RunRecord.from_dict(r) for r in records]


_T = TypeVar("_T")


def _first(values: Iterable[_T | None]) -> _T | None:
    """The first of ``values`` that is not None."""
    return next((v for v in values if v is not None), None)


def _not_finite(value: object) -> bool:
    if type(value) is float:  # the common case, checked first: the same rule, sooner
        return not math.isfinite(value)
    return (value is not None and isinstance(value, numbers.Real)
            and not isinstance(value, bool) and not math.isfinite(float(value)))


def why_not_rated(record: RunLike) -> str | None:
    """Why a successful run cannot be rated, in a few words; None when it can.

    A ``partial`` run ("partial, " and its errors), a figure that is NaN or infinite
    ("energy_j is not finite", "metric accuracy is not finite"), or no energy figure.
    ``record`` is a :class:`RunRecord` or its JSON form.
    """
    (run,) = _as_records([record])
    return _why_not(run.partial, run.errors, run.energy_j, run.energy_kwh,
                    run.kwh_per_1000_queries, run.co2_g, run.metrics, run.num_samples)


def _why_not(partial: bool | None, errors: Sequence[str] | None, energy_j: object,
             energy_kwh: object, kwh_per_1000_queries: object, co2_g: object,
             metrics: Mapping[str, Any] | None, num_samples: object) -> str | None:
    """:func:`why_not_rated` of a run with these fields (a stored run's, read without being
    made into a record: :meth:`~wattprint.store.Store.judged_runs`)."""
    reasons = []
    if partial:
        reasons.append(", ".join(["partial", *(errors or ())]))
    # the figures that must be finite numbers (when present) for a run to be rated
    figures = {"energy_j": energy_j, "energy_kwh": energy_kwh,
               "kwh_per_1000_queries": kwh_per_1000_queries, "co2_g": co2_g}
    reasons += [f"{key} is not finite" for key, value in figures.items() if _not_finite(value)]
    reasons += [f"metric {key} is not finite" for key, value in (metrics or {}).items()
                if _not_finite(value)]
    if not reasons and _kwh_per_1000_of(kwh_per_1000_queries, energy_kwh, energy_j,
                                        num_samples) is None:
        reasons.append("no energy figure")
    return "; ".join(reasons) or None


def _is_scored_run(record: RunRecord) -> bool:
    return record.ok and record.phase == "inference"


def _require(record: RunRecord) -> None:
    """A successful run to rate names its model (the fields of :data:`_Key`)."""
    named = {"model_name": record.model_name, "variant": record.variant,
             "dataset": record.dataset, "task": record.task, "hardware": record.hardware}
    missing = [k for k, value in named.items() if not value]
    if missing:
        raise ConfigError(
            f"run {record.cell_key!r} is a successful {record.phase} run without "
            f"{', '.join(missing)}; a run to score needs model_name, variant, dataset, task "
            "and hardware"
        )


def _kwh_per_1000(record: RunRecord) -> float | None:
    return _kwh_per_1000_of(record.kwh_per_1000_queries, record.energy_kwh, record.energy_j,
                            record.num_samples)


def _kwh_per_1000_of(kwh_per_1000_queries: object, energy_kwh: object, energy_j: object,
                     num_samples: object) -> float | None:
    stored = _number(kwh_per_1000_queries)
    if stored is not None:
        return stored
    kwh = _number(energy_kwh)
    if kwh is None:
        joules = _number(energy_j)
        kwh = None if joules is None else joules / _J_PER_KWH
    samples = _number(num_samples)
    if kwh is None or samples is None or samples <= 0:
        return None
    return kwh * 1000.0 / samples


def _co2_per_1000(record: RunRecord) -> float | None:
    co2 = _number(record.co2_g)
    samples = _number(record.num_samples)
    if co2 is None or samples is None or samples <= 0:
        return None
    return co2 * 1000.0 / samples


def _is_pruned(record: RunRecord) -> bool:
    kind = (record.optimization or {}).get("kind")
    return (record.variant or "").lower().startswith("pruned") or kind == "pruning"


def _provenance(rows: Sequence[RunRecord]) -> str | None:
    kinds = {r.provenance for r in rows if r.provenance is not None}
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _key(record: RunRecord | InferenceTotals | JudgedRuns) -> _Key:
    """The model a run, the store's sums of some runs, or a group of judged runs are of."""
    return (_fold(record.task), _fold(record.hardware), str(record.model_name),
            str(record.dataset), str(record.variant))


def _grouped_runs(records: Iterable[RunRecord], phase: str = "inference",
                  ) -> dict[_Key, list[RunRecord]]:
    """The successful runs of ``phase``, by model, in first-seen order."""
    groups: dict[_Key, list[RunRecord]] = defaultdict(list)
    for record in records:
        if not record.ok or record.phase != phase:
            continue
        _require(record)
        groups[_key(record)].append(record)
    return groups


def _unrated(rows: Sequence[RunRecord], why: Sequence[str]) -> Unrated:
    """The model of ``rows``, runs in id order that are not rated, for the reasons ``why``."""
    return _left_out(rows[0], _first(r.parent for r in rows), len(rows), why,
                     [r.cell_key for r in rows])


def _unrated_groups(judged: Sequence[tuple[JudgedRuns, str]]) -> Unrated:
    """:func:`_unrated` of the runs of one model in these judged groups, with why."""
    judged = sorted(judged, key=lambda pair: pair[0].ids[0])
    groups = [g for g, _ in judged]
    keys: Iterable[str | None] = (groups[0].cell_keys if len(groups) == 1 else (
        key for _, key in heapq.merge(*(zip(g.ids, g.cell_keys, strict=True) for g in groups))))
    return _left_out(groups[0], _first(g.parent for g in groups),
                     sum(len(g.ids) for g in groups), [why for _, why in judged], keys)


def _left_out(first: RunRecord | JudgedRuns, parent: str | None, runs: int,
              why: Iterable[str], cell_keys: Iterable[str | None]) -> Unrated:
    name, variant = str(first.model_name), str(first.variant)
    reason = "; ".join(dict.fromkeys(why))
    _log.warning("model %s:%s on %s: %d run(s) not rated: %s", name, variant,
                 first.dataset, runs, reason, extra=IN_RESULTS)
    return Unrated(
        model=name if parent is None else f"{name}:{variant}", model_name=name,
        variant=variant, parent=parent, dataset=str(first.dataset),
        task=str(first.task), hardware=str(first.hardware), runs=runs,
        reason=reason, cell_keys=tuple(map(str, cell_keys)))


def _models(records: Iterable[RunRecord]) -> tuple[list[_Model], list[Unrated]]:
    """The rated models, and the models with runs left out of the rating."""
    out = []
    unrated = []
    for all_rows in _grouped_runs(records).values():
        why = [why_not_rated(r) for r in all_rows]
        rows = [r for r, reason in zip(all_rows, why, strict=True) if reason is None]
        left_out = [r for r, reason in zip(all_rows, why, strict=True) if reason is not None]
        if left_out:
            unrated.append(_unrated(left_out, [w for w in why if w is not None]))
        figures = [f for f in (_kwh_per_1000(r) for r in rows) if f is not None]
        energy = _mean(figures)
        if energy is None:
            continue
        first = rows[0]
        effective = _first(r.effective_parameters for r in rows)
        out.append(_Model(
            task=str(first.task), hardware=str(first.hardware),
            model_name=str(first.model_name), variant=str(first.variant),
            parent=_first(r.parent for r in rows), dataset=str(first.dataset),
            kwh_per_1000_queries=energy, spread=spread(figures, lowest=0.0),
            co2_g_per_1000_queries=_mean(_co2_per_1000(r) for r in rows),
            accuracy=_mean(_number(r.metric("accuracy")) for r in rows),
            num_parameters=_first(r.num_parameters for r in rows),
            effective_parameters=None if effective is None else float(effective),
            size_bytes=_first(r.size_bytes for r in rows), repetitions=len(rows),
            provenance=_provenance(rows), pruned=any(_is_pruned(r) for r in rows),
            quality=mean_quality(rows),
        ))
    return out, unrated


class _Totals:
    """One model's sums over its rated runs, from the store's totals and the runs it left to
    be judged here (see :func:`_models_from_totals`)."""

    def __init__(self) -> None:
        self.first_id = math.inf
        self.first_clean: tuple[float, str, str, str, str, str] | None = None
        self.runs = 0
        self.kwh_sum = self.kwh_sum_sq = 0.0
        self.kwh_min = math.inf
        self.kwh_max = -math.inf
        self.co2_sum = 0.0
        self.co2_runs = 0
        self.quality: dict[str, list[float]] = {}
        self.provenances: set[str] = set()
        self.pruned = False
        self.firsts: dict[str, tuple[float, Any]] = {}
        self.left_out: list[tuple[JudgedRuns, str]] = []

    def name(self, row_id: float, task: str, hardware: str, model: str, dataset: str,
             variant: str) -> None:
        if self.first_clean is None or row_id < self.first_clean[0]:
            self.first_clean = (row_id, task, hardware, model, dataset, variant)

    def first(self, name: str, row_id: float, value: Any) -> None:
        if value is not None and (name not in self.firsts or row_id < self.firsts[name][0]):
            self.firsts[name] = (row_id, value)

    def add_totals(self, t: InferenceTotals) -> None:
        self.first_id = min(self.first_id, t.first_id)
        if t.runs == 0:
            return
        assert t.first_clean_id is not None and t.kwh_min is not None and t.kwh_max is not None
        self.name(t.first_clean_id, t.task, t.hardware, t.model_name, t.dataset, t.variant)
        self.runs += t.runs
        self.kwh_sum += t.kwh_sum
        self.kwh_sum_sq += t.kwh_sum_sq
        self.kwh_min = min(self.kwh_min, t.kwh_min)
        self.kwh_max = max(self.kwh_max, t.kwh_max)
        self.co2_sum += t.co2_sum
        self.co2_runs += t.co2_runs
        for metric, (total, count) in t.quality_sums.items():
            sums = self.quality.setdefault(metric, [0.0, 0])
            sums[0] += total
            sums[1] += count
        self.provenances.update(t.provenances)
        self.pruned = self.pruned or t.pruned
        for name, (row_id, value) in t.firsts.items():
            self.first(name, row_id, value)

    def add_run(self, r: RunRecord) -> None:
        """A run the store could not sum (it judged it unclean) that is rated after all."""
        row_id = math.inf if r.id is None else r.id
        kwh = _kwh_per_1000(r)
        assert kwh is not None
        self.name(row_id, str(r.task), str(r.hardware), str(r.model_name), str(r.dataset),
                  str(r.variant))
        self.runs += 1
        self.kwh_sum += kwh
        self.kwh_sum_sq += kwh * kwh
        self.kwh_min = min(self.kwh_min, kwh)
        self.kwh_max = max(self.kwh_max, kwh)
        co2 = _co2_per_1000(r)
        if co2 is not None:
            self.co2_sum += co2
            self.co2_runs += 1
        for q in QUALITY_METRICS:
            value = _number(r.metric(q.metric))
            if value is not None:
                sums = self.quality.setdefault(q.metric, [0.0, 0])
                sums[0] += value
                sums[1] += 1
        if r.provenance is not None:
            self.provenances.add(r.provenance)
        self.pruned = self.pruned or _is_pruned(r)
        for name in ("parent", "num_parameters", "effective_parameters", "size_bytes"):
            self.first(name, row_id, getattr(r, name))

    def spread(self) -> Spread:
        """As :func:`wattprint._stats.spread` makes it from the runs' figures."""
        n = self.runs
        if n < 2:
            return Spread(self.kwh_min, self.kwh_max, None, None)
        mean = self.kwh_sum / n
        # runs that all have one figure vary by nothing: the sums' rounding is no spread
        variance = 0.0 if self.kwh_min == self.kwh_max else max(
            self.kwh_sum_sq - self.kwh_sum * mean, 0.0) / (n - 1)
        half = t_quantile_975(n - 1) * math.sqrt(variance / n)
        return Spread(self.kwh_min, self.kwh_max, max(0.0, mean - half), mean + half)

    def model(self) -> _Model:
        assert self.first_clean is not None
        _, task, hardware, model_name, dataset, variant = self.first_clean
        quality = None
        for q in QUALITY_METRICS:
            if q.metric in self.quality:
                total, count = self.quality[q.metric]
                quality = Quality(q.metric, total / count, q.higher_is_better)
                break
        accuracy = self.quality.get("accuracy")
        effective = self.firsts.get("effective_parameters", (0, None))[1]
        return _Model(
            task=task, hardware=hardware, model_name=model_name, variant=variant,
            parent=self.firsts.get("parent", (0, None))[1], dataset=dataset,
            kwh_per_1000_queries=self.kwh_sum / self.runs, spread=self.spread(),
            co2_g_per_1000_queries=(self.co2_sum / self.co2_runs if self.co2_runs else None),
            accuracy=None if accuracy is None else accuracy[0] / accuracy[1],
            num_parameters=self.firsts.get("num_parameters", (0, None))[1],
            effective_parameters=None if effective is None else float(effective),
            size_bytes=self.firsts.get("size_bytes", (0, None))[1], repetitions=self.runs,
            provenance=(None if not self.provenances else self.provenances.pop()
                        if len(self.provenances) == 1 else "mixed"),
            pruned=self.pruned, quality=quality)


def _models_from_totals(totals: Sequence[InferenceTotals], rated: Sequence[RunRecord],
                        left_out: Sequence[tuple[JudgedRuns, str]],
                        ) -> tuple[list[_Model], list[Unrated]]:
    """:func:`_models` from the store's sums (:meth:`~wattprint.store.Store.inference_totals`)
    and the runs it left out of them, judged (:func:`_judged_runs`): those ``rated`` after
    all, as records, are rated here; the others are listed as not rated, with why.

    The figures are those of :func:`_models` up to the rounding of floating-point sums (the
    store sums in SQLite; :func:`_models` sums exactly, with :func:`math.fsum`)."""
    groups: dict[_Key, _Totals] = {}
    for t in totals:
        groups.setdefault(_key(t), _Totals()).add_totals(t)
    for run in rated:  # those of the models of these totals
        if (acc := groups.get(_key(run))) is not None:
            acc.add_run(run)
    for judged, why in left_out:
        if (acc := groups.get(_key(judged))) is not None:
            acc.left_out.append((judged, why))
    out: list[_Model] = []
    unrated: list[Unrated] = []
    for acc in sorted(groups.values(), key=lambda a: a.first_id):
        if acc.left_out:
            unrated.append(_unrated_groups(acc.left_out))
        if acc.runs:
            out.append(acc.model())
    return out, unrated


def _stored_models(db: str | os.PathLike[str], *, sweep_id: str | None,
                   groups: Sequence[tuple[str, str]], sums: StoredSums | None = None,
                   ) -> tuple[list[_Model], list[Unrated]]:
    """The models of these stored ``(task, hardware)`` groups, summed by the store (or taken
    from the sweep's ``sums``, when already read)."""
    with _open_store(db) as store:
        unnamed = store.first_unnamed_inference_run(sweep_id=sweep_id)
        if unnamed is not None:
            _require(unnamed)
        if sums is not None:
            wanted = set(groups)
            return _models_from_totals(
                [t for t in sums.totals if (t.task, t.hardware) in wanted], sums.rated,
                sums.left_out)
        totals = store.inference_totals(sweep_id=sweep_id, groups=groups)
        rated, left_out = _judged_runs(store, totals)
    return _models_from_totals(totals, rated, left_out)


def _judged_runs(store: Store, totals: Iterable[InferenceTotals],
                 ) -> tuple[list[RunRecord], list[tuple[JudgedRuns, str]]]:
    """The runs the store's ``totals`` leave out of their sums (partial ones, figures that
    are not finite), judged a group of alike runs at a time (:meth:`Store.judged_runs
    <wattprint.store.Store.judged_runs>`): those rated after all, read in full as records,
    and the others with why (:func:`why_not_rated`). A sweep with a quarter of a million
    partial runs is judged once per reason, not once per run."""
    rated: list[int] = []
    left_out: list[tuple[JudgedRuns, str]] = []
    for judged in store.judged_runs(totals):
        why = _why_not(judged.partial, judged.errors, judged.energy_j, judged.energy_kwh,
                       judged.kwh_per_1000_queries, judged.co2_g, judged.metrics,
                       judged.num_samples)
        if why is None:
            rated += judged.ids
        else:
            left_out.append((judged, why))
    return (store.runs_by_id(sorted(rated)) if rated else []), left_out


@dataclass(frozen=True)
class StoredSums:
    """What the ratings and savings of one stored sweep are made of, read once
    (:func:`stored_sums`): the store's sums per model (``totals``) and the runs they leave out,
    judged: those ``rated`` after all, and the others (``left_out``) with why."""

    totals: tuple[InferenceTotals, ...]
    rated: tuple[RunRecord, ...]
    left_out: tuple[tuple[JudgedRuns, str], ...]


def stored_sums(store: Store, sweep_id: str) -> StoredSums:
    """The sums of one sweep of an open ``store`` that :func:`rate_stored_sweep` and
    :func:`wattprint._savings.stored_savings` are made of; give them to both to read them once."""
    totals = store.inference_totals(sweep_id=sweep_id)
    rated, left_out = _judged_runs(store, totals)
    return StoredSums(tuple(totals), tuple(rated), tuple(left_out))


def rate_stored_sweep(store: Store, sweep_id: str, *, method: str = "quintile",
                      sums: StoredSums | None = None,
                      ) -> tuple[dict[tuple[str, str], ScoreList], list[str]]:
    """Every task and hardware group of one sweep of an open ``store``, rated from the
    store's sums (:meth:`~wattprint.store.Store.inference_totals`: a row per model, whatever
    the number of runs), and the groups that could not be rated (their error messages).

    The groups and their ratings are those of :func:`calculate_scores` ``(task, hardware,
    records=runs)`` for each group of :func:`available_groups` ``(runs)``, ``runs`` being the
    sweep's records, up to the rounding of the store's floating-point sums; a group with a
    successful inference run that names no model is not rated, as there. ``sums``: the
    sweep's :func:`stored_sums`, when already read.
    """
    _check_method(method)
    if sums is None:
        sums = stored_sums(store, sweep_id)
    totals = sums.totals
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for t in sorted(totals, key=lambda t: t.first_id):
        if t.task is not None and t.hardware is not None:
            seen.setdefault((t.task.casefold(), t.hardware.casefold()), (t.task, t.hardware))
    out: dict[tuple[str, str], ScoreList] = {}
    problems: list[str] = []
    for key in sorted(seen):
        task, hardware = seen[key]
        wanted = this_machines_hardware() if hardware.strip().casefold() == "auto" else hardware
        labels = {wanted.casefold(), hardware_label(wanted).casefold()}
        chosen = [t for t in totals if t.task is not None and t.hardware is not None
                  and t.task.casefold() == task.casefold() and t.hardware.casefold() in labels]
        unnamed = [t.first_id for t in chosen if not all(
            (t.model_name, t.variant, t.dataset, t.task, t.hardware))]
        if not chosen:
            problems.append(f"no successful inference runs of task {task!r} on hardware "
                            f"{wanted!r} in sweep {sweep_id!r}")
            continue
        try:
            if unnamed:
                _require(store.runs_by_id([min(unnamed)])[0])
            models, unrated = _models_from_totals(chosen, sums.rated, sums.left_out)
        except ConfigError as err:
            problems.append(str(err))
            continue
        out[(task, hardware)] = _rate(models, method, unrated)
    return out, problems


def stored_groups(db: str | os.PathLike[str] = DEFAULT_DB, *,
                  sweep_id: str | None = None) -> list[tuple[str, str]]:
    """The ``(task, hardware)`` pairs with successful inference runs in the store at ``db``
    (as :func:`available_groups` names them: one per spelling that differs only in case),
    read without decoding any run. A missing file raises ConfigError naming it."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for task, hardware in _stored_pairs(db, sweep_id):
        seen.setdefault((task.casefold(), hardware.casefold()), (task, hardware))
    return [seen[key] for key in sorted(seen)]


def _stored_pairs(db: str | os.PathLike[str], sweep_id: str | None) -> list[tuple[str, str]]:
    with _open_store(db) as store:
        return store.inference_groups(sweep_id=sweep_id)


def _open_store(db: str | os.PathLike[str]) -> Store:
    """The store at ``db``, read-only; a missing file is a ConfigError naming it."""
    path = Path(os.fspath(db))
    if not path.is_file():
        raise ConfigError(
            f"no results store at {str(path)!r}; run a benchmark first "
            "(wattprint run CONFIG.yaml, or wattprint demo) or pass the store's path"
        )
    from .store import Store

    return Store(path, read_only=True)


# --------------------------------------------------------------------------------------------
# Groups.


def available_groups(records: Iterable[RunLike]) -> list[tuple[str, str]]:
    """The ``(task, hardware)`` pairs that have successful inference runs, sorted.

    Names that differ only in case are one group, spelled as first seen.
    """
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for record in _as_records(records):
        task, hardware = record.task, record.hardware
        if _is_scored_run(record) and task is not None and hardware is not None:
            seen.setdefault((task.casefold(), hardware.casefold()), (task, hardware))
    return [seen[key] for key in sorted(seen)]


def _describe(groups: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{task}/{hardware}" for task, hardware in groups) or "none"


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown star method {method!r}; the methods are {', '.join(METHODS)}")


# --------------------------------------------------------------------------------------------
# Ratings.


def _stars_by_rank(rank: int, n: int) -> int:
    return MAX_STARS - (MAX_STARS * rank) // n


def _stars_by_range(value: float, low: float, high: float) -> int:
    if high <= low:
        return MAX_STARS
    position = MAX_STARS * (value - low) / (high - low)
    nearest = round(position)
    if abs(position - nearest) <= _EDGE_TOLERANCE * MAX_STARS:
        position = nearest
    band = min(MAX_STARS - 1, max(0, math.floor(position)))
    return MAX_STARS - band


def _rate(models: Sequence[_Model], method: str,
          unrated: Sequence[Unrated] = ()) -> ScoreList:
    n = len(models)
    energies = [m.kwh_per_1000_queries for m in models]
    low, high = (min(energies), max(energies)) if energies else (0.0, 0.0)
    scores = []
    for m in models:
        rank = sum(e < m.kwh_per_1000_queries for e in energies)
        stars = (_stars_by_rank(rank, n) if method == "quintile"
                 else _stars_by_range(m.kwh_per_1000_queries, low, high))
        scores.append(Score(
            model=m.label, model_name=m.model_name, variant=m.variant, parent=m.parent,
            dataset=m.dataset, task=m.task, hardware=m.hardware,
            kwh_per_1000_queries=m.kwh_per_1000_queries,
            kwh_per_1000_queries_min=m.spread.low, kwh_per_1000_queries_max=m.spread.high,
            kwh_per_1000_queries_ci95_low=m.spread.ci95_low,
            kwh_per_1000_queries_ci95_high=m.spread.ci95_high,
            co2_g_per_1000_queries=m.co2_g_per_1000_queries, accuracy=m.accuracy,
            ess=m.ess,
            num_parameters=m.num_parameters, effective_parameters=m.effective_parameters,
            size_bytes=m.size_bytes, repetitions=m.repetitions, group_size=n,
            percentile=100.0 * rank / (n - 1) if n > 1 else 0.0, stars=stars, method=method,
            provenance=m.provenance, pruned=m.pruned, quality=m.quality,
        ))
    scores.sort(key=lambda s: (s.kwh_per_1000_queries, s.model, s.dataset))
    scores = _mark_overlaps(scores)
    return ScoreList(scores, sorted(unrated, key=lambda u: (u.model, u.dataset)))


def _label_in(s: Score, several_data: bool) -> str:
    return f"{s.model} on {s.dataset}" if several_data else s.model


def _mark_overlaps(scores: Sequence[Score]) -> list[Score]:
    """``scores`` (sorted) with :attr:`Score.overlapping_neighbours` set: the models next to
    each in the ranking whose interval overlaps its own."""
    several_data = len({s.dataset for s in scores}) > 1

    def spread(s: Score) -> Spread:
        return Spread(s.kwh_per_1000_queries_min, s.kwh_per_1000_queries_max,
                       s.kwh_per_1000_queries_ci95_low, s.kwh_per_1000_queries_ci95_high)

    out = []
    for i, s in enumerate(scores):
        neighbours = [scores[j] for j in (i - 1, i + 1) if 0 <= j < len(scores)]
        overlapping = tuple(_label_in(n, several_data) for n in neighbours if overlap(
            spread(s), s.kwh_per_1000_queries, spread(n), n.kwh_per_1000_queries))
        out.append(replace(s, overlapping_neighbours=overlapping) if overlapping else s)
    return out


def star_ratings(records: Iterable[RunLike], *, method: str = "quintile") -> ScoreList:
    """Rate every model in ``records`` (:class:`RunRecord` objects, or their JSON form): one
    :class:`Score` each, most efficient first; the models whose runs could not be rated are in
    the result's :attr:`~ScoreList.unrated`.

    The successful inference runs of ``records`` must be of ONE task and hardware (any
    others, failed or training or optimization runs, are ignored); runs of several raise
    :class:`~wattprint.errors.ConfigError` naming them: rate each with :func:`calculate_scores`
    (see :func:`available_groups`). An unknown ``method`` raises ``ConfigError`` listing
    :data:`METHODS`. No inference runs give an empty list. The rules are in the module
    docstring.
    """
    _check_method(method)
    runs = _as_records(records)
    groups = available_groups(runs)
    if len(groups) > 1:
        raise ConfigError(
            f"star ratings compare models of one task and hardware; these runs are of "
            f"{_describe(groups)}: pass one group's runs, or use calculate_scores(task, hardware)"
        )
    models, unrated = _models(runs)
    return _rate(models, method, unrated)


def read_records(db: str | os.PathLike[str] = DEFAULT_DB, *,
                 sweep_id: str | None = None) -> list[RunRecord]:
    """Every stored run of the store at ``db`` (of one sweep, if ``sweep_id`` is given), each
    the :class:`RunRecord` that was written.

    A missing file raises :class:`~wattprint.errors.ConfigError` naming it; a file that is not
    a store raises :class:`~wattprint.errors.StoreError`. The store is opened read-only: no
    file is made or changed.
    """
    with _open_store(db) as store:
        return store.runs(sweep_id=sweep_id)


def calculate_scores(
    task: str,
    hardware: str,
    *,
    method: str = "quintile",
    db: str | os.PathLike[str] | None = None,
    records: Iterable[RunLike] | None = None,
    sweep_id: str | None = None,
) -> ScoreList:
    """The star ratings of the models of ``task`` on ``hardware``, most efficient first.

    Partial runs and runs with figures that are not finite are left out of the ranking and
    listed, with why, in the result's :attr:`~ScoreList.unrated` (see the module docstring).

    The runs come from ``records`` if given (:class:`RunRecord` objects, or their JSON form:
    an unknown key is a :class:`~wattprint.errors.ConfigError` naming it), else from the store
    at ``db`` (default ``wattprint.db``; see :func:`read_records`). ``sweep_id`` keeps only
    that sweep's runs; without it, runs of every sweep count, and repetitions of one model in
    several sweeps are averaged together. ``task`` and ``hardware`` match case-insensitively;
    ``hardware="auto"`` is this machine's profile, as the benchmark runner names it (``"CPU"``,
    ``"H100"``, ...).
    When no successful inference run matches, :class:`~wattprint.errors.ConfigError` lists the
    task and hardware pairs that have some.
    """
    _check_method(method)
    if hardware.strip().casefold() == "auto":
        hardware = this_machines_hardware()
    labels = {hardware.casefold(), hardware_label(hardware).casefold()}
    if records is None:
        store = DEFAULT_DB if db is None else db
        pairs = _stored_pairs(store, sweep_id)
        chosen_pairs = [(t, h) for t, h in pairs
                        if t.casefold() == task.casefold() and h.casefold() in labels]
        if not chosen_pairs:
            where = f"the store {str(store)!r}" + (
                "" if sweep_id is None else f" (sweep {sweep_id!r})")
            raise ConfigError(
                f"no successful inference runs of task {task!r} on hardware {hardware!r} in "
                f"{where}; task/hardware with runs: "
                f"{_describe(stored_groups(store, sweep_id=sweep_id))}")
        models, unrated = _stored_models(store, sweep_id=sweep_id, groups=chosen_pairs)
        return _rate(models, method, unrated)
    rows = [r for r in _as_records(records) if sweep_id is None or r.sweep_id == sweep_id]
    where = "the records given"
    if sweep_id is not None:
        where += f" (sweep {sweep_id!r})"
    chosen = [r for r in rows if r.task is not None and r.hardware is not None
              and r.task.casefold() == task.casefold() and r.hardware.casefold() in labels]
    if not any(_is_scored_run(r) for r in chosen):
        raise ConfigError(
            f"no successful inference runs of task {task!r} on hardware {hardware!r} in "
            f"{where}; task/hardware with runs: {_describe(available_groups(rows))}"
        )
    models, unrated = _models(chosen)
    return _rate(models, method, unrated)


def hardware_label(name: str) -> str:
    """The label runs on the device ``name`` are filed under: ``"NVIDIA H200"`` -> ``"H200"``
    (see :func:`wattprint.sensors.hardware.resolve_hardware`); any name has one."""
    from .errors import ConfigError
    from .sensors.hardware import resolve_hardware

    try:
        return resolve_hardware(name).name
    except ConfigError:  # an empty name: matches nothing stored
        return name


def this_machines_hardware() -> str:
    """The hardware profile of this machine, as stored runs name it: the first GPU's, else
    ``"CPU"`` (see :func:`wattprint.sensors.hardware.detect_hardware`)."""
    from .sensors import detect
    from .sensors.hardware import detect_hardware

    found = detect()
    try:
        return detect_hardware(found.sensors)
    finally:
        for sensor in found.sensors:
            sensor.close()


# --------------------------------------------------------------------------------------------
# ESS.


def ess(num_parameters: float, co2_g_per_1000_queries: float) -> float:
    """The Environmental Sustainability Score: parameters in millions per gram of CO2 per
    1000 queries. Pass the effective (non-zero) parameters of a pruned model.

    Raises :class:`~wattprint.errors.ConfigError` for a CO2 figure that is not > 0 or a
    parameter count that is negative or not finite.
    """
    params = _number(num_parameters)
    co2 = _number(co2_g_per_1000_queries)
    if params is None or params < 0:
        raise ConfigError(f"num_parameters must be a finite number >= 0, not {num_parameters!r}")
    if co2 is None or co2 <= 0:
        raise ConfigError(
            f"co2_g_per_1000_queries must be a finite number > 0, not {co2_g_per_1000_queries!r}"
            ": the ESS of a model that emits nothing per query is not defined"
        )
    return params / 1e6 / co2


def _ess_or_none(parameters: object, co2: object) -> float | None:
    params, grams = _number(parameters), _number(co2)
    if params is None or params < 0 or grams is None or grams <= 0:
        return None
    return ess(params, grams)


def ess_of(item: Score | RunLike) -> float | None:
    """The ESS of a :class:`Score` or of one run record (a :class:`RunRecord` or its JSON
    form); None when it cannot be known.

    A pruned variant counts its ``effective_parameters`` (None if it has none: its full count
    would overstate it), any other variant its ``num_parameters``. A run record's CO2 per 1000
    queries is ``co2_g * 1000 / num_samples``. None when the parameters or the CO2 are missing,
    or the CO2 is zero.
    """
    if isinstance(item, Score):
        params = item.effective_parameters if item.pruned else item.num_parameters
        return _ess_or_none(params, item.co2_g_per_1000_queries)
    (run,) = _as_records([item])
    params = run.effective_parameters if _is_pruned(run) else run.num_parameters
    return _ess_or_none(params, _co2_per_1000(run))


# --------------------------------------------------------------------------------------------
# Savings of optimized variants and Pareto fronts: in ``wattprint._savings``, which reads the
# models made here; loaded on first use, so that either module may be imported first.

_SAVINGS = ("Saving", "pareto_front", "savings")


def __getattr__(name: str) -> Any:
    if name in _SAVINGS:
        from . import _savings

        return getattr(_savings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SAVINGS})
