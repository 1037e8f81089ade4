"""What optimized variants save against their parents (:func:`savings`, one :class:`Saving`
each) and the energy-quality Pareto front (:func:`pareto_front`) of stored runs.

Quality is each model's :class:`~wattprint.record.Quality` (accuracy, word error rate,
perplexity, ...: :attr:`Score.quality <wattprint.score.Score.quality>`), read in its metric's
direction (a lower word error rate is better), and only models measured by the same metric are
compared: an accuracy is never set against a word error rate.

Both read the models that :mod:`wattprint.score` makes of run records (its rules: what a model
is, which runs are rated, the spread of repetitions) and are re-exported from there: use
``from wattprint.score import savings, Saving, pareto_front``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._stats import overlap
from .errors import ConfigError
from .record import QUALITY_METRICS, Quality, RunRecord
from .score import (
    _J_PER_KWH,
    RunLike,
    Score,
    StoredSums,
    _as_records,
    _describe,
    _fold,
    _grouped_runs,
    _mean,
    _Model,
    _models,
    _number,
    star_ratings,
)

__all__ = ["Saving", "pareto_front", "savings", "stored_savings"]


# --------------------------------------------------------------------------------------------
# Savings of optimized variants.


def _change_pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def _significant(variant: _Model, parent: _Model | None) -> bool | None:
    if parent is None or (variant.spread.interval is None and parent.spread.interval is None):
        return None
    return not overlap(variant.spread, variant.kwh_per_1000_queries, parent.spread,
                        parent.kwh_per_1000_queries)


def _step_energy_kwh(rows: Sequence[RunRecord]) -> float | None:
    def kwh(record: RunRecord) -> float | None:
        value = _number(record.energy_kwh)
        if value is not None:
            return value
        joules = _number(record.energy_j)
        return None if joules is None else joules / _J_PER_KWH

    return _mean(kwh(r) for r in rows)


@dataclass(frozen=True)
class Saving:
    """What one optimized variant changes against its parent (see :func:`savings`)."""

    model: str
    model_name: str
    variant: str
    parent: str | None
    dataset: str
    task: str
    hardware: str
    kwh_per_1000_queries: float
    kwh_per_1000_queries_ci95_low: float | None
    kwh_per_1000_queries_ci95_high: float | None
    parent_kwh_per_1000_queries: float | None
    parent_kwh_per_1000_queries_ci95_low: float | None
    parent_kwh_per_1000_queries_ci95_high: float | None
    energy_change_pct: float | None
    energy_change_significant: bool | None
    co2_change_pct: float | None
    ess_change_pct: float | None
    accuracy_change_points: float | None
    quality_metric: str | None
    quality_change: float | None
    size_change_pct: float | None
    step_energy_kwh: float | None
    step_co2_g: float | None
    break_even_queries: float | None

    def to_dict(self) -> dict[str, Any]:
        """The saving as a JSON-ready dict, one key per field."""
        return asdict(self)


def savings(records: Iterable[RunLike]) -> list[Saving]:
    """What each optimized variant changes against its parent, one :class:`Saving` per
    variant. ``records`` are :class:`~wattprint.record.RunRecord` objects or their JSON form.

    A variant is a model (see :mod:`wattprint.score`) whose runs name a ``parent``; it is
    compared with the parent variant of the same ``model_name``, ``dataset``, task and
    hardware. Each saving has the variant's ``model`` label, ``model_name``, ``variant``,
    ``parent``, ``dataset``, ``task``, ``hardware``, both energies per 1000 queries, and:

    - ``energy_change_pct``, ``co2_change_pct``, ``ess_change_pct``, ``size_change_pct``:
      ``100 * (variant - parent) / parent`` (negative: the variant uses or weighs less);
    - ``kwh_per_1000_queries_ci95_low``/``_high`` and ``parent_kwh_per_1000_queries_ci95_low``
      /``_high``: the 95 % intervals of both means (None for one repetition);
    - ``energy_change_significant``: False when the two intervals overlap (the change is
      within the runs' noise: not significant), True when they are apart, None when neither
      side has an interval (one repetition each) or there are no parent runs. A side with one
      repetition counts as its single figure, as in the ranking (:mod:`wattprint.score`,
      "Spread");
    - ``accuracy_change_points``: ``100 * (variant - parent)`` accuracy, in percentage points;
    - ``quality_metric``, ``quality_change``: the metric of the variant's quality figure
      (:attr:`Score.quality <wattprint.score.Score.quality>`: ``"accuracy"``, ``"wer"``,
      ``"perplexity"``, ...) and ``variant - parent`` in that metric's own units (a fraction
      for accuracy and word error rate; negative is better where lower is: ``wer``,
      ``perplexity``). The change is None when the parent's figure is of another metric;
    - ``step_energy_kwh``, ``step_co2_g``: the successful optimization run that made the variant
      (the mean if there are several; a partial one is left out);
    - ``break_even_queries``: the number of queries after which the step has paid for itself,
      ``step energy / energy saved per query`` (a float: round it up to show it); None when
      the variant saves nothing or the step's energy is unknown.

    Any figure whose inputs are missing (no parent runs, no accuracy, a parent figure of zero)
    is None. Failed runs are ignored. The list is in order of task, hardware, model, dataset,
    variant.
    """
    runs = _as_records(records)
    return _savings_of(_models(runs)[0], runs)


def stored_savings(db: str | os.PathLike[str], *, sweep_id: str,
                   sums: StoredSums | None = None) -> list[Saving]:
    """:func:`savings` of every run of sweep ``sweep_id`` in the store at ``db``, its models
    summed by the store (:meth:`~wattprint.store.Store.inference_totals`; the figures agree
    with :func:`savings` of the records up to the rounding of floating-point sums) and only
    its optimization runs read as records: a sweep of a hundred thousand runs is one pass.
    ``sums``: the sweep's :func:`~wattprint.score.stored_sums`, when already read (a report
    rates the same sweep)."""
    from .score import _stored_models, _stored_pairs
    from .store import Store

    models, _ = _stored_models(db, sweep_id=sweep_id, groups=_stored_pairs(db, sweep_id),
                               sums=sums)
    with Store(db, read_only=True) as store:
        steps = store.runs(sweep_id=sweep_id, phase="optimization")
    return _savings_of(models, steps)


def _savings_of(rated: Sequence[_Model], runs: Iterable[RunRecord]) -> list[Saving]:
    """The savings of the ``rated`` models, with the steps among ``runs``."""
    models = {(_fold(m.task), _fold(m.hardware), m.model_name, m.dataset, m.variant): m
              for m in rated}
    steps = _grouped_runs(runs, phase="optimization")
    out = []
    for key in sorted(models):
        variant = models[key]
        if variant.parent is None:
            continue
        parent = models.get((*key[:4], variant.parent))
        step_rows = [r for r in steps.get(key, []) if not r.partial]
        step_kwh = _step_energy_kwh(step_rows)
        step_co2 = _mean(_number(r.co2_g) for r in step_rows)
        saved_kwh_per_query = (None if parent is None else
                               (parent.kwh_per_1000_queries - variant.kwh_per_1000_queries) / 1000)
        break_even = None
        if step_kwh is not None and saved_kwh_per_query is not None and saved_kwh_per_query > 0:
            break_even = step_kwh / saved_kwh_per_query
        accuracy_points = None
        if parent is not None and variant.accuracy is not None and parent.accuracy is not None:
            accuracy_points = 100.0 * (variant.accuracy - parent.accuracy)
        quality_change = None
        if (parent is not None and variant.quality is not None and parent.quality is not None
                and variant.quality.metric == parent.quality.metric):
            quality_change = variant.quality.value - parent.quality.value
        out.append(Saving(
            model=variant.label, model_name=variant.model_name,
            variant=variant.variant, parent=variant.parent, dataset=variant.dataset,
            task=variant.task, hardware=variant.hardware,
            kwh_per_1000_queries=variant.kwh_per_1000_queries,
            kwh_per_1000_queries_ci95_low=variant.spread.ci95_low,
            kwh_per_1000_queries_ci95_high=variant.spread.ci95_high,
            parent_kwh_per_1000_queries=None if parent is None
            else parent.kwh_per_1000_queries,
            parent_kwh_per_1000_queries_ci95_low=None if parent is None
            else parent.spread.ci95_low,
            parent_kwh_per_1000_queries_ci95_high=None if parent is None
            else parent.spread.ci95_high,
            energy_change_pct=_change_pct(
                variant.kwh_per_1000_queries,
                None if parent is None else parent.kwh_per_1000_queries),
            energy_change_significant=_significant(variant, parent),
            co2_change_pct=_change_pct(
                variant.co2_g_per_1000_queries,
                None if parent is None else parent.co2_g_per_1000_queries),
            ess_change_pct=_change_pct(variant.ess, None if parent is None else parent.ess),
            accuracy_change_points=accuracy_points,
            quality_metric=None if variant.quality is None else variant.quality.metric,
            quality_change=quality_change,
            size_change_pct=_change_pct(
                _number(variant.size_bytes),
                None if parent is None else _number(parent.size_bytes)),
            step_energy_kwh=step_kwh,
            step_co2_g=step_co2,
            break_even_queries=break_even,
        ))
    return out


# --------------------------------------------------------------------------------------------
# Pareto front.


def _metric_order(metric: str) -> tuple[int, str]:
    """Metrics in the order of :data:`~wattprint.record.QUALITY_METRICS`, unknown ones after,
    by name."""
    known = [q.metric for q in QUALITY_METRICS]
    return (known.index(metric), "") if metric in known else (len(known), metric)


def _at_least_as_good(a: Quality, b: Quality) -> bool:
    return a.value >= b.value if a.higher_is_better else a.value <= b.value


def _best_first(q: Quality) -> float:
    """A sort key that puts the better quality first."""
    return -q.value if q.higher_is_better else q.value


def pareto_front(items: Iterable[Score | RunLike]) -> list[Score]:
    """The energy-quality Pareto front of one task and hardware, lowest energy first.

    ``items`` are :class:`~wattprint.score.Score` objects or run records (a
    :class:`~wattprint.record.RunRecord` or its JSON form; rated first with
    :func:`~wattprint.score.star_ratings`, so they too must be of one task and hardware). A
    model's quality is its :attr:`Score.quality <wattprint.score.Score.quality>`, better in
    its metric's direction: a higher accuracy, a lower word error rate or perplexity. A model
    is on the front when no other model *of the same quality metric* has energy per 1000
    queries <= its own and quality at least as good with at least one of them strictly
    better. Models with identical energy and quality do not dominate each other: all of them
    are on the front. Models without a quality figure are left out.

    Models measured by different metrics are never compared: items that mix them (accuracy
    for some, word error rate for others) give one front per metric, each lowest energy
    first, the metrics in the order of :data:`~wattprint.record.QUALITY_METRICS`. Scores of
    several task and hardware groups raise :class:`~wattprint.errors.ConfigError`.
    """
    items = list(items)
    if all(isinstance(i, Score) for i in items):
        scores: list[Score] = [i for i in items if isinstance(i, Score)]
        groups = sorted({(s.task.casefold(), s.hardware.casefold()) for s in scores})
        if len(groups) > 1:
            raise ConfigError(
                "a Pareto front compares models of one task and hardware; these scores are of "
                f"{_describe(groups)}"
            )
    elif any(isinstance(i, Score) for i in items):
        raise ConfigError("pareto_front takes Score objects or run records, not both")
    else:
        scores = star_ratings([i for i in items if not isinstance(i, Score)])
    by_metric: dict[str, list[tuple[Score, Quality]]] = {}
    for s in scores:
        if s.quality is not None:
            by_metric.setdefault(s.quality.metric, []).append((s, s.quality))

    def dominates(a: tuple[Score, Quality], b: tuple[Score, Quality]) -> bool:
        (a_score, a_quality), (b_score, b_quality) = a, b
        no_worse = (a_score.kwh_per_1000_queries <= b_score.kwh_per_1000_queries
                    and _at_least_as_good(a_quality, b_quality))
        better = (a_score.kwh_per_1000_queries < b_score.kwh_per_1000_queries
                  or a_quality.value != b_quality.value)
        return no_worse and better

    front: list[Score] = []
    for metric in sorted(by_metric, key=_metric_order):
        points = by_metric[metric]
        on_front = [p for p in points if not any(dominates(q, p) for q in points)]
        on_front.sort(key=lambda p: (p[0].kwh_per_1000_queries, _best_first(p[1]), p[0].model))
        front += [s for s, _ in on_front]
    return front
