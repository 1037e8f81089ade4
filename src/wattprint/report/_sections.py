"""The sections of the HTML report, each a function of one sweep's stored runs
(:class:`~wattprint.record.RunRecord`, read as they were stored).

Each returns one ``<section>``; text from the store is escaped by :mod:`._markup`. The totals
and the site read a :class:`~wattprint.store.SweepOverview` (of the records,
:func:`overview_of`, or from the store); the runs table and the provenance take a
:class:`Digest` for a sweep too large to list run by run.
"""

from __future__ import annotations

import math
import shlex
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import score as scoring
from ..errors import ConfigError
from ..record import QUALITY_METRICS, Quality, RunRecord, quality
from ..store import ComponentRuns, ModelRuns, RunSite, SweepOverview
from . import charts
from ._format import (
    BANDS,
    PROVENANCE_WORDS,
    co2_text,
    component_provenance,
    date_text,
    energy_text,
    number,
    percent,
    water_text,
)
from ._markup import Markup, Num, badge, esc, figure, flag, hint, note, stars, table

__all__ = [
    "RUNS_LISTED",
    "Digest",
    "Scores",
    "energy_chart",
    "failed",
    "header",
    "overview_of",
    "pareto",
    "provenance",
    "rate",
    "ratings",
    "runs_table",
    "savings",
    "site",
    "timeline",
    "totals",
]

Run = RunRecord
#: The star ratings of a sweep, by (task, hardware).
Scores = dict[tuple[str, str], list[scoring.Score]]

#: A sweep with more runs than this is not listed run by run: its runs table lists the runs
#: that failed, are partial or are not rated, and one row per model and phase.
RUNS_LISTED = 1000


@dataclass(frozen=True)
class Digest:
    """A sweep of more than :data:`RUNS_LISTED` runs as the report shows it, read from the
    store without decoding every run: its ``overview`` (totals, counts, provenances, sites),
    its runs per model and phase (``models``), its energy components summed per provenance,
    component, source and measured flag (``components``), and the records its savings are
    made of (``savings_runs``, :meth:`~wattprint.store.Store.savings_runs`)."""

    sweep_id: str
    overview: SweepOverview
    models: Sequence[ModelRuns]
    components: Sequence[ComponentRuns]
    savings_runs: Sequence[Run]
    #: The savings made from the store's sums (:func:`wattprint._savings.stored_savings`), or
    #: the error that kept them from being made; None: made from ``savings_runs``.
    savings: Sequence[scoring.Saving] | ConfigError | None = None
    #: The store's path as the user gave it (named in the export command unless it is the
    #: default ``wattprint.db``).
    db: str = "wattprint.db"
    #: The first :data:`RUNS_LISTED` failed runs (:meth:`~wattprint.store.Store.failed_runs`)
    #: and every failed run counted per first line of its error
    #: (:meth:`~wattprint.store.Store.failure_counts`); None: taken from the runs given.
    failed_runs: Sequence[Run] | None = None
    failure_counts: Sequence[tuple[str, int]] | None = None

    @property
    def export_command(self) -> str:
        """The command that writes every run of the sweep."""
        where = "" if self.db == "wattprint.db" else f" --db {shlex.quote(self.db)}"
        return f"wattprint export --sweep {shlex.quote(self.sweep_id)}{where} --format csv"


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def _p(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def _label(run: Run) -> str:
    """A run's model as scores name it: ``model_name``, or ``model_name:variant``."""
    name, variant = run.model_name or "?", run.variant or "?"
    return name if run.parent is None else f"{name}:{variant}"


def _accuracy(value: object) -> str:
    """An accuracy (a fraction) in percent."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{100.0 * value:.3g} %"


def _band_color(stars_: int) -> str:
    return BANDS.get(stars_, ("?", "#999999"))[1]


def rate(runs: Sequence[Run]) -> tuple[Scores, list[str]]:
    """The star ratings of each task and hardware group, and the groups that could not be
    rated (their error messages)."""
    out: Scores = {}
    problems = []
    for task, hardware in scoring.available_groups(runs):
        try:
            out[(task, hardware)] = scoring.calculate_scores(task, hardware, records=runs)
        except ConfigError as err:
            problems.append(str(err))
    return out, problems


# --------------------------------------------------------------------------------------------


def header(sweep: Mapping[str, Any]) -> str:
    """The title and what the sweep is."""
    return (
        f'<header><h1>wattprint report: <span class="project">{esc(sweep.get("project"))}'
        f'</span></h1><p class="meta">sweep <code>{esc(sweep.get("id"))}</code> · '
        f"{esc(sweep.get('status'))} · begun {esc(date_text(sweep.get('created_at')))} · "
        f"last written {esc(date_text(sweep.get('updated_at')))} · "
        f"{esc(sweep.get('num_runs'))} runs: {esc(sweep.get('num_ok'))} ok, "
        f"{esc(sweep.get('num_failed'))} failed</p></header>"
    )


def overview_of(runs: Sequence[Run]) -> SweepOverview:
    """The overview of ``runs`` (one sweep's records), as
    :meth:`~wattprint.store.Store.sweep_overview` reads it from the store."""
    ok = [r for r in runs if r.ok]
    return SweepOverview(
        energy_kwh=math.fsum(r.energy_kwh or 0.0 for r in ok),
        co2_g=math.fsum(r.co2_g or 0.0 for r in ok),
        water_l=math.fsum(r.water_l or 0.0 for r in ok),
        runs_ok=len(ok), runs_failed=len(runs) - len(ok),
        runs_partial=sum(1 for r in ok if r.partial),
        provenances=tuple(Counter(r.provenance for r in ok).items()),
        sites=tuple(Counter(RunSite(r.location, r.intensity_g_per_kwh, r.intensity_source,
                                    r.pue, r.wue_l_per_kwh, r.water_intensity_l_per_kwh,
                                    r.tier) for r in ok).items()))


def totals(overview: SweepOverview) -> str:
    """Energy, CO2 and water summed over the successful runs, and where the energy came from."""
    kwh, grams, litres = overview.energy_kwh, overview.co2_g, overview.water_l
    ok, bad = overview.runs_ok, overview.runs_failed

    def card(key: str, value: float, big: str, what: str) -> str:
        return (f'<div class="card" data-total="{key}" data-value="{value!r}">'
                f'<div class="big">{esc(big)}</div><div class="what">{esc(what)}</div></div>')

    failed_note = (f'<a href="#failed">{esc(bad)} failed</a>' if bad else "0 failed")
    partial = overview.runs_partial
    if partial:
        failed_note += (f', <a href="#runs">{esc(partial)} partial</a> (a sensor failed '
                        "mid-run: not rated)")
    kinds: Counter[str] = Counter()
    for kind, n in overview.provenances:
        kinds[kind or "unknown"] += n
    mix = ", ".join(f"{n} {badge(word)}" for word, n in kinds.most_common()) or "no runs"
    return _section(
        "totals", "Totals",
        _p("Sums over every successful run of the sweep: training, optimization and inference."),
        '<div class="cards">',
        card("energy_kwh", kwh, energy_text(kwh), f"energy ({kwh:.4g} kWh)"),
        card("co2_g", grams, co2_text(grams),
             f"CO2e ({grams:.4g} g = {grams / 1000.0:.4g} kg)"),
        card("water_l", litres, water_text(litres), f"water ({litres:.4g} L)"),
        f'<div class="card" data-total="runs_ok" data-value="{ok}"><div class="big">{ok} ok'
        f'</div><div class="what">runs; {failed_note}</div></div>',
        "</div>",
        f'<p class="mix">Energy figures of these runs: {mix} '
        '(<a href="#provenance">what the words mean</a>).</p>',
    )


_PLACES = ("country", "zone", "cloud_region", "carbon_intensity_g_per_kwh")
_FROM_CONFIG = " (config)"


def _site_of(run: RunSite, location: Mapping[str, Any]) -> tuple[tuple[object, ...], bool]:
    """The site a run's figures assume: location, grid intensity and its source, PUE, WUE,
    the grid's water intensity and the tier; and whether any of it is the sweep config's.
    Where a run has no location, tier or water intensity of its own (one stored before the
    store kept them), the sweep config's is shown, marked ``(config)``."""
    borrowed = False

    def asked(value: object) -> str | None:
        nonlocal borrowed
        if value is None:
            return None
        borrowed = True
        return f"{value}{_FROM_CONFIG}"

    place = run.location if run.location is not None else asked(
        next((location[k] for k in _PLACES if location.get(k) is not None), None))
    water = (run.water_intensity_l_per_kwh if run.water_intensity_l_per_kwh is not None
             else asked(location.get("water_intensity_l_per_kwh")))
    tier = run.tier if run.tier is not None else asked(location.get("tier"))
    return (place, run.intensity_g_per_kwh, run.intensity_source, run.pue, run.wue_l_per_kwh,
            water, tier), borrowed


def site(sweep: Mapping[str, Any], overview: SweepOverview) -> str:
    """Where the energy was used: the location asked for, the location, grid intensity, PUE,
    WUE, grid water intensity and tier each run's figures assume, and the host."""
    location = (sweep.get("config") or {}).get("location") or {}
    asked = [(key, value) for key, value in location.items() if value is not None]
    asked_html = "<dl class=\"kv\">" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in asked) + "</dl>" if asked else ""
    sites = [(*_site_of(r, location), n) for r, n in overview.sites]
    assumed: Counter[tuple[object, ...]] = Counter()
    for assumes, _, n in sites:
        assumed[assumes] += n
    rows = [("-" if place is None else place, Num(number(i, ".4g")), source,
             Num(number(pue, ".3g")), Num(number(wue, ".3g")),
             Num(water if isinstance(water, str) else number(water, ".3g")),
             "-" if tier is None else tier, Num(str(n)))
            for (place, i, source, pue, wue, water, tier), n in assumed.most_common()]
    host = sweep.get("host") or {}
    host_html = "<dl class=\"kv\">" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in host.items()) + "</dl>"
    if not any(key in _PLACES for key, _ in asked):
        asked_html = _p("No country, zone, cloud region or intensity was given: the default "
                        "grid intensity applies.") + asked_html
    from_config = any(borrowed for _, borrowed, _ in sites)
    return _section(
        "site", "Location and assumptions",
        '<div class="cols"><div><h3>Location asked for</h3>', asked_html,
        "</div><div><h3>Host</h3>", host_html, "</div></div>",
        "<h3>Figures assumed</h3>",
        table(["location", "carbon intensity (g CO2e/kWh)", "source", "PUE", "WUE (L/kWh)",
               "grid water (L/kWh)", "tier", "runs"], rows)
        if rows else note("no successful runs", kind="site"),
        _p("CO2 = kWh x PUE x grid carbon intensity. Water = kWh x WUE (on site) + kWh x PUE "
           "x the grid's water intensity (off site)."),
        _p("A run stored without its own location, tier or grid water intensity (by an "
           "older wattprint) shows the sweep config's, marked (config).") if from_config
        else "",
    )


def ratings(scores: Scores, problems: Sequence[str]) -> str:
    """One star table per task and hardware."""
    parts = [_p("Models of one task on one hardware are rated against each other by energy "
                "per 1000 queries (quintiles of the group: the best 20 % get 5 stars). "
                "Figures are the mean of a model's inference repetitions; beside it, the "
                "repetitions' range (min – max) and the 95 % interval of the mean (Student t; "
                "none for a single repetition).")]
    marked = False
    for (task, hardware), group in scores.items():
        parts.append(f"<h3>{esc(task)} on {esc(hardware)}</h3>")
        unrated: list[scoring.Unrated] = getattr(group, "unrated", [])
        if not group:
            parts.append(note(f"{task} on {hardware}: no run could be rated",
                              kind="ratings"))
        rows = [(_stars_mark(s), s.model, s.dataset, Num(energy_text(s.kwh_per_1000_queries)),
                 Num(scoring.interval_text(s.kwh_per_1000_queries_min,
                                           s.kwh_per_1000_queries_max)),
                 Num(scoring.ci95_text(s)), Num(co2_text(s.co2_g_per_1000_queries)),
                 Num(scoring.quality_text(s.quality)),
                 Num(number(s.ess)), Num(number(s.num_parameters, ",")),
                 Num(number(s.size_bytes, ",")), Num(str(s.repetitions)), badge(s.provenance))
                for s in group]
        if group:
            parts.append(table(["stars", "model", "dataset", "energy / 1000 q",
                                "min – max", "95 % interval", "CO2e / 1000 q", "quality",
                                "ESS", "parameters", "size (bytes)", "reps", "provenance"],
                               rows, cls="ratings"))
        marked = marked or any(not s.ranking_significant for s in group)
        if unrated:
            parts.append(_unrated_table(unrated))
    if marked:
        parts.append(note(scoring.NOT_SIGNIFICANT_NOTE, kind="not-significant"))
    if not scores:
        parts.append(note("no successful inference runs: nothing to rate", kind="ratings"))
    parts.extend(note(f"not rated: {p}") for p in problems)
    parts.append(_p("Quality: the first of these that a model's runs have, the mean of its "
                    "repetitions: " + "; ".join(
                        f"{q.label}: {q.description} "
                        f"({'higher' if q.higher_is_better else 'lower'} is better)"
                        for q in QUALITY_METRICS) + "."))
    parts.append(_p("ESS: the Environmental Sustainability Score, parameters in millions per "
                    "gram of CO2e per 1000 queries (higher is better)."))
    return _section("ratings", "Star ratings", *parts)


def _stars_mark(s: scoring.Score) -> Markup:
    """The stars, and ``≈`` when the ranking against a neighbour is not significant."""
    if s.ranking_significant:
        return stars(s.stars)
    why = f"interval overlaps {', '.join(s.overlapping_neighbours)}: ranking not significant"
    return Markup(f'{stars(s.stars)} <span class="not-significant" title="{esc(why)}">'
                  f"{esc(scoring.NOT_SIGNIFICANT_MARK)}</span>")


def _significance(value: bool | None) -> str:
    return {True: "significant", False: "not significant", None: "-"}[value]


def _unrated_table(unrated: Sequence[scoring.Unrated]) -> str:
    """The models with runs left out of a group's rating, each with why."""
    rows = [(flag("not rated", u.reason), u.model, u.dataset, Num(str(u.runs)),
             Markup(f"<pre>{esc(u.reason)}</pre>"),
             ", ".join(u.cell_keys)) for u in unrated]
    return (_p("Not rated: these runs ended, but a figure of theirs cannot stand beside the "
               "others (a sensor failed mid-run, so a component's energy is missing; or a "
               "figure is not finite). They are left out of the stars above.")
            + table(["", "model", "dataset", "runs", "why", "cells"], rows, cls="unrated"))


def _model_labels(scores: Scores) -> dict[tuple[str, str, str, str], str]:
    flat = [s for group in scores.values() for s in group]
    several_groups = len(scores) > 1
    several_data = len({s.dataset for s in flat}) > 1
    out = {}
    for s in flat:
        label = s.model
        if several_data:
            label += f" · {s.dataset}"
        if several_groups:
            label += f" · {s.task}/{s.hardware}"
        out[(s.task, s.hardware, s.model, s.dataset)] = label
    return out


def _energy_bar(s: scoring.Score, label: str) -> charts.Bar:
    """The bar of one model: its mean energy per 1000 queries and, with two repetitions or
    more, their range (min - max) as an error bar."""
    several = s.repetitions > 1
    spread = (f"; its {s.repetitions} repetitions "
              f"{scoring.interval_text(s.kwh_per_1000_queries_min, s.kwh_per_1000_queries_max)}"
              if several else "; one repetition")
    return charts.Bar(
        label=label, value=s.kwh_per_1000_queries, color=_band_color(s.stars),
        text=energy_text(s.kwh_per_1000_queries),
        title=(f"{s.model} on {s.dataset} ({s.task}/{s.hardware}): "
               f"{energy_text(s.kwh_per_1000_queries)} per 1000 queries{spread}, "
               f"{s.stars} stars, {s.provenance or 'unknown'}"),
        low=s.kwh_per_1000_queries_min if several else None,
        high=s.kwh_per_1000_queries_max if several else None)


def energy_chart(scores: Scores) -> str:
    """Energy per 1000 queries of each model variant, as bars, with the range of its
    repetitions as an error bar."""
    labels = _model_labels(scores)
    bars = [_energy_bar(s, labels[(s.task, s.hardware, s.model, s.dataset)])
            for group in scores.values() for s in group if s.kwh_per_1000_queries > 0]
    if not bars:
        body = note("no inference energy recorded: no chart", kind="energy")
    else:
        log = charts.spans_decades([b.value for b in bars])
        svg = charts.bar_chart(bars, axis_label="energy per 1000 queries", fmt=energy_text,
                               log=log)
        ranges = any(b.spread is not None for b in bars)
        body = figure("energy", svg, "Energy per 1000 queries of each model variant (mean of "
                      "its repetitions); the colour is its star band, A (5 stars) to E (1)."
                      + (" The error bars span each model's repetitions, min to max (the 95 % "
                         "interval of the mean is in the star table)." if ranges else "")
                      + (" The axis is logarithmic: the figures span more than two decades."
                         if log else ""))
    return _section("energy", "Energy per 1000 queries", body)


def _quality_axis(q: Quality) -> str:
    """A quality metric as an axis names it: ``word error rate (lower is better)``."""
    return f"{q.description} ({'higher' if q.higher_is_better else 'lower'} is better)"


def _quality_value(q: Quality) -> str:
    """A quality value as the Pareto charts show it: an accuracy in percent, else as the
    tables do (``0.250``, ``41.2``)."""
    return _accuracy(q.value) if q.metric == "accuracy" else q.value_text


def _by_metric(group: Sequence[scoring.Score]) -> dict[str, list[scoring.Score]]:
    """The scores that have a quality figure, by its metric, in the order of
    :data:`~wattprint.record.QUALITY_METRICS` (unknown metrics after, by name); a metric
    none of whose models has a positive energy to draw is left out."""
    known = [q.metric for q in QUALITY_METRICS]
    out: dict[str, list[scoring.Score]] = {}
    for s in group:
        if s.quality is not None:
            out.setdefault(s.quality.metric, []).append(s)
    out = {metric: rows for metric, rows in out.items()
           if any(s.kwh_per_1000_queries > 0 for s in rows)}
    return dict(sorted(out.items(), key=lambda kv: (
        known.index(kv[0]) if kv[0] in known else len(known), kv[0])))


def pareto(scores: Scores) -> str:
    """Energy against quality (accuracy, word error rate, perplexity, ...) per task and
    hardware, with the Pareto front; models of different quality metrics are not compared."""
    parts = [_p("A model is on the Pareto front (ringed, joined by the dashed line) when no "
                "other model of its group uses less energy per 1000 queries and has at least "
                "as good a quality figure, in its metric's direction (a higher accuracy, a "
                "lower word error rate or perplexity). Models are compared only with models "
                "measured by the same metric.")]
    labels = _model_labels(scores)
    for (task, hardware), group in scores.items():
        def point(s: scoring.Score) -> charts.Point:
            assert s.quality is not None
            return charts.Point(
                x=s.kwh_per_1000_queries, y=s.quality.value,
                label=labels[(s.task, s.hardware, s.model, s.dataset)],
                color=_band_color(s.stars),
                title=(f"{s.model} on {s.dataset}: {energy_text(s.kwh_per_1000_queries)} per "
                       f"1000 queries, {s.quality.description} {_quality_value(s.quality)}, "
                       f"{s.stars} stars"))

        metrics = _by_metric(group)
        if not metrics:
            parts.append(note(f"{task} on {hardware}: no quality figure recorded (accuracy, "
                              "word error rate, perplexity, ...), no trade-off to draw",
                              kind="pareto"))
            continue
        if len(metrics) > 1:
            named = "; ".join(f"{rows[0].quality.description} "
                              f"({', '.join(s.model for s in rows)})"
                              for rows in metrics.values() if rows[0].quality is not None)
            parts.append(_p(f"{task} on {hardware}: its models are measured by different "
                            f"quality metrics ({named}), which are not compared with each "
                            "other: one chart and one front per metric."))
        for metric, metric_scores in metrics.items():
            first = metric_scores[0].quality
            assert first is not None

            def y_fmt(value: float, first: Quality = first) -> str:
                return _quality_value(Quality(first.metric, value, first.higher_is_better))

            points = [point(s) for s in metric_scores if s.kwh_per_1000_queries > 0]
            front = [point(s) for s in scoring.pareto_front(metric_scores)
                     if s.kwh_per_1000_queries > 0]
            svg = charts.scatter_chart(points, front, x_label="energy per 1000 queries",
                                       y_label=_quality_axis(first), x_fmt=energy_text,
                                       y_fmt=y_fmt)
            on_front = ", ".join(p.label for p in front)
            parts.append(figure(
                "pareto", svg, f"{task} on {hardware}: {first.description} against energy "
                f"per 1000 queries ({'higher' if first.higher_is_better else 'lower'} is "
                f"better). On the front: {on_front}.",
                group=f"{task}/{hardware}" if len(metrics) == 1
                else f"{task}/{hardware}/{metric}"))
    if not scores:
        parts.append(note("no successful inference runs: nothing to compare", kind="pareto"))
    return _section("pareto", "Energy and quality", *parts)


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} pt"


def _quality_change(r: scoring.Saving) -> str:
    """A variant's change of quality against its parent: an accuracy in percentage points
    (``-2.00 pt``), another metric in its own units with its label (``WER +0.020``)."""
    if r.quality_metric == "accuracy" or r.quality_change is None:
        return _points(r.accuracy_change_points)
    spec = {q.metric: q.spec for q in QUALITY_METRICS}.get(r.quality_metric or "", ".3g")
    label = Quality(r.quality_metric or "", r.quality_change, True).label
    return f"{label} {r.quality_change:+{spec}}"


def _spread_text(s: scoring.Score | None) -> str:
    """A model's energy per 1000 queries with the spread of its repetitions: their range
    (min – max) and the 95 % interval of the mean, or ``n=1: no interval``."""
    if s is None:
        return "no rated inference runs"
    mean = energy_text(s.kwh_per_1000_queries)
    if s.repetitions < 2:
        return f"{mean}, {scoring.ci95_text(s)}"
    return (f"{mean} (n={s.repetitions}), min – max "
            f"{scoring.interval_text(s.kwh_per_1000_queries_min, s.kwh_per_1000_queries_max)}"
            f", 95 % interval {scoring.ci95_text(s)}")


def _spreads(rows: Sequence[scoring.Saving], scores: Scores,
             label: Callable[[scoring.Saving], str]) -> str:
    """One line per optimized variant: its spread and its parent's (see :func:`_spread_text`)."""
    by_model = {(s.task.casefold(), s.hardware.casefold(), s.model_name, s.dataset, s.variant): s
                for group in scores.values() for s in group}

    def find(r: scoring.Saving, variant: str | None) -> scoring.Score | None:
        return by_model.get((r.task.casefold(), r.hardware.casefold(), r.model_name,
                             r.dataset, variant or ""))

    items = "".join(
        f'<li data-variant="{esc(label(r))}"><b>{esc(label(r))}</b>: '
        f'<span class="spread-variant">{esc(_spread_text(find(r, r.variant)))}</span>; '
        f"its parent {esc(r.parent or '-')}: "
        f'<span class="spread-parent">{esc(_spread_text(find(r, r.parent)))}</span></li>'
        for r in rows)
    return ("<h3>Spread of each variant and its parent</h3>"
            + _p("Energy per 1000 queries, the mean of the inference repetitions; then their "
                 "range (min – max) and the 95 % interval of the mean (Student t; none for "
                 "a single repetition). Overlapping intervals make a change not significant.")
            + f'<ul class="spreads">{items}</ul>')


def savings(runs: Sequence[Run], scores: Scores | None = None,
            made: Sequence[scoring.Saving] | ConfigError | None = None) -> str:
    """What each optimized variant changes against its parent: a table, the spread of each
    variant and its parent (from ``scores``, :func:`rate` of ``runs`` when not given), and
    a chart. ``made``: the savings already made (or the error that stopped them), else they
    are made from ``runs``."""
    try:
        if isinstance(made, ConfigError):
            raise made
        rows = list(made) if made is not None else scoring.savings(runs)
    except ConfigError as err:
        return _section("savings", "Optimization savings", note(f"not computed: {err}"))
    if not rows:
        return _section("savings", "Optimization savings",
                        note("no optimized variants in this sweep: nothing to compare",
                             kind="savings"))
    several_data = len({r.dataset for r in rows}) > 1

    def label(r: scoring.Saving) -> str:
        return f"{r.model} · {r.dataset}" if several_data else r.model

    def break_even(value: float | None) -> str:  # 12 digits: no ceil of rounding noise
        return "-" if value is None else f"{math.ceil(float(f'{value:.12g}')):,}"

    several_groups = len({(r.task, r.hardware) for r in rows}) > 1
    cells = []
    for r in rows:
        before = energy_text(r.parent_kwh_per_1000_queries)
        row: list[object] = [label(r), r.parent]
        if several_groups:
            row.append(f"{r.task}/{r.hardware}")
        row += [Num(f"{before} → {energy_text(r.kwh_per_1000_queries)}"),
                Num(percent(r.energy_change_pct)),
                _significance(r.energy_change_significant), Num(percent(r.co2_change_pct)),
                Num(percent(r.ess_change_pct)), Num(_quality_change(r)),
                Num(percent(r.size_change_pct)), Num(energy_text(r.step_energy_kwh)),
                Num(co2_text(r.step_co2_g)), Num(break_even(r.break_even_queries))]
        cells.append(row)
    headers = ["variant", "parent", *(["task/hardware"] if several_groups else []),
               "energy / 1000 q", "energy", "significance", "CO2e", "ESS", "quality", "size",
               "step energy", "step CO2e", "break-even queries"]
    svg = charts.diverging_bar_chart(
        [(label(r), [r.energy_change_pct, r.co2_change_pct, r.ess_change_pct]) for r in rows],
        ["energy / 1000 q", "CO2e / 1000 q", "ESS"], axis_label="change against the parent",
        fmt=lambda v: f"{v:+.0f} %" if v else "0 %")
    return _section(
        "savings", "Optimization savings",
        _p("Each optimized variant against the variant it was made from, on the same data, "
           "task and hardware (energy / 1000 q: the parent's, then the variant's). Negative "
           "energy and CO2 changes are savings; a positive ESS change is better. Break-even: "
           "the queries after which the energy of the optimization step itself is paid back "
           "(- when the variant saves nothing or the step was not measured). Significance: "
           "an energy change whose 95 % intervals (variant and parent) overlap is not "
           "significant, being within the noise of the runs (- when neither has two "
           "repetitions). Quality: the change of the quality figure, an accuracy in "
           "percentage points, another metric in its own units (a negative change of word "
           "error rate or perplexity is better)."),
        table(headers, cells, cls="savings"),
        _spreads(rows, rate(runs)[0] if scores is None else scores, label),
        figure("savings", svg, "Change of each optimized variant against its parent, in %."),
    )


def timeline(run: Run | None, samples: Sequence[tuple[float, str, float]]) -> str:
    """The power of each component over one run."""
    if run is None or not samples:
        return _section("timeline", "Power timeline",
                        note("no power samples recorded: no inference run of this sweep has a "
                             "power timeline in the store", kind="timeline"))
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t_s, component, watts in samples:
        series[component].append((t_s, watts))
    means = ", ".join(f"{name} {sum(w for _, w in pts) / len(pts):.3g} W"
                      for name, pts in series.items())
    svg = charts.line_chart(series, x_label="time since the run began (s)",
                            y_label="power (W)", x_fmt=lambda v: f"{v:.3g}",
                            y_fmt=lambda v: f"{v:.3g}")
    caption = (f"{_label(run)} on {run.dataset}, {run.phase} repetition {run.repetition} "
               f"(run {run.id}, {date_text(run.started_at)}, {run.provenance or 'unknown'}): "
               f"{len(samples)} points, each the mean power of a component over one slice of "
               f"the run. Mean: {means}.")
    return _section("timeline", "Power timeline",
                    _p("The inference run of the sweep with the most power samples (the "
                       "latest on ties)."),
                    figure("timeline", svg, caption))


def _star_lookup(scores: Scores) -> dict[tuple[object, ...], int]:
    return {(s.task.casefold(), s.hardware.casefold(), s.model_name, s.dataset, s.variant):
            s.stars for group in scores.values() for s in group}


def _run_row(r: Run, lookup: Mapping[tuple[object, ...], int]) -> tuple[object, ...]:
    """One run as a row of the runs table (every column)."""
    key: tuple[object, ...] = (str(r.task).casefold(), str(r.hardware).casefold(),
                               r.model_name, r.dataset, r.variant)
    scored = r.phase == "inference" and r.ok
    why = scoring.why_not_rated(r) if scored else None
    count = lookup.get(key) if scored and why is None else None
    status = Markup(f'<span class="status-{"ok" if r.ok else "failed"}">{esc(r.status)}'
                    "</span>")
    if r.ok and r.partial:
        status = Markup(f"{status} " + flag(
            "partial", "; ".join(r.errors or ()) or "a sensor failed"))
    notes = r.measurement_notes or ()
    if notes:  # what the measurement says about itself: a short window, labels that scored nothing
        status = Markup(f"{status} " + hint(
            "note" if len(notes) == 1 else f"{len(notes)} notes", "; ".join(notes)))
    return (
        _label(r), r.dataset, f"{r.task}/{r.hardware}", r.phase,
        Num(number(r.repetition, "d")),
        status,
        Num(number(r.duration_s)), Num(number(r.energy_j)),
        Num(co2_text(r.co2_g)), Num(water_text(r.water_l)),
        Num(energy_text(r.kwh_per_1000_queries)),
        Num(scoring.quality_text(quality(r))),
        stars(count) if count is not None
        else flag("not rated", why) if why is not None else "",
        badge(r.provenance) if r.ok else "",
    )


_RUN_HEADERS = ["model", "dataset", "task/hardware", "phase", "rep", "status", "time (s)",
                "energy (J)", "CO2e", "water", "energy / 1000 q", "quality", "stars",
                "provenance"]


def _is_listed(r: Run) -> bool:
    """A run that a digest lists one by one: failed, partial, or an inference run not rated."""
    return (not r.ok or bool(r.partial)
            or (r.phase == "inference" and scoring.why_not_rated(r) is not None))


def runs_table(runs: Sequence[Run], scores: Scores, digest: Digest | None = None) -> str:
    """Every run of the sweep, in the order they were written. The dataset and task/hardware
    columns are left out when the sweep has only one.

    With a ``digest`` (a sweep of more than :data:`RUNS_LISTED` runs), only the runs that
    failed, are partial or are not rated are listed, then one row per model and phase, and a
    line says how to export the others."""
    lookup = _star_lookup(scores)
    if digest is None:
        datasets = {r.dataset for r in runs}
        groups = {(str(r.task).casefold(), str(r.hardware).casefold()) for r in runs}
    else:
        datasets = {m.dataset for m in digest.models}
        groups = {(str(m.task).casefold(), str(m.hardware).casefold()) for m in digest.models}
    drop = {i for i, keep in ((1, len(datasets) > 1), (2, len(groups) > 1)) if not keep}
    listed = runs if digest is None else [r for r in runs if _is_listed(r)]
    rows = [[cell for i, cell in enumerate(_run_row(r, lookup)) if i not in drop]
            for r in (listed if digest is None else listed[:RUNS_LISTED])]
    headers = [h for i, h in enumerate(_RUN_HEADERS) if i not in drop]
    if digest is None:
        body = table(headers, rows, cls="runs") if rows else note("this sweep has no runs",
                                                                  kind="runs")
        return _section("runs", "Runs",
                        _p("One row per stored cell. Stars are those of the run's model in "
                           "its task and hardware group; a partial run (a sensor failed "
                           "inside its window: hover for what) is not rated. A note says what "
                           "else the measurement found (hover for it): a window too short "
                           "for a sensor, labels that could not score the outputs."), body)
    total = sum(m.runs for m in digest.models)
    # the failed and partial runs are counted by the store (the runs given may be the first of
    # them only); the others listed are the successful runs that are not rated
    notable = (digest.overview.runs_failed + digest.overview.runs_partial
               + sum(1 for r in listed if r.ok and not r.partial))
    more = total - min(notable, RUNS_LISTED)
    export = digest.export_command
    return _section(
        "runs", "Runs",
        _p(f"This sweep has {total:,} runs, too many to list one by one: listed here are "
           "the runs that failed, are partial (a sensor failed inside the window: hover for "
           "what) or are not rated, then one row per model and phase. A note says what else "
           "a run's measurement found (hover for it); the notes of every run are in the full "
           "data."),
        f'<p class="more-runs" data-more="{more}">{esc(f"{more:,}")} more runs are in the '
        f"full data: <code>{esc(export)}</code></p>",
        f"<h3>Runs that failed, are partial or are not rated ({notable:,})</h3>",
        _p(f"The first {RUNS_LISTED:,} of them.") if notable > RUNS_LISTED else "",
        table(headers, rows, cls="runs") if rows
        else note("no run failed, is partial or is not rated", kind="runs"),
        "<h3>Per model</h3>",
        _model_table(digest.models, scores, drop))


def _model_table(models: Sequence[ModelRuns], scores: Scores, drop: set[int]) -> str:
    """One row per model and phase: its runs counted and summed, and its stars."""
    rated: dict[tuple[object, ...], scoring.Score] = {
        (s.task.casefold(), s.hardware.casefold(), s.model_name, s.dataset, s.variant): s
        for group in scores.values() for s in group}
    headers = ["model", "dataset", "task/hardware", "phase", "runs", "ok", "failed",
               "energy (J)", "CO2e", "water", "energy / 1000 q", "stars", "provenance"]
    rows = []
    for m in models:
        name, variant = m.model_name or "?", m.variant or "?"
        score = rated.get((str(m.task).casefold(), str(m.hardware).casefold(), m.model_name,
                           m.dataset, m.variant)) if m.phase == "inference" else None
        row = (name if m.parent is None else f"{name}:{variant}", m.dataset,
               f"{m.task}/{m.hardware}", m.phase, Num(f"{m.runs:,}"), Num(f"{m.runs_ok:,}"),
               Num(f"{m.runs_failed:,}"), Num(number(m.energy_j)), Num(co2_text(m.co2_g)),
               Num(water_text(m.water_l)),
               Num(energy_text(score.kwh_per_1000_queries) if score is not None else "-"),
               stars(score.stars) if score is not None else "",
               Markup(" ".join(badge(p) for p in m.provenances)))
        rows.append([cell for i, cell in enumerate(row) if i not in drop])
    return table([h for i, h in enumerate(headers) if i not in drop], rows, cls="models")


def provenance(runs: Sequence[Run], digest: Digest | None = None) -> str:
    """Where every energy figure came from: per run and per component, with a legend. With
    a ``digest`` (a sweep of more than :data:`RUNS_LISTED` runs), the components are summed
    per run provenance, component, source and measured flag instead."""
    legend = "<dl class=\"legend\">" + "".join(
        f"<dt>{badge(word)}</dt><dd>{esc(text)}</dd>" for word, text in PROVENANCE_WORDS.items()
    ) + "</dl>"
    intro = _p("Every energy figure says where it came from. A run's kWh, CO2e, water, "
               "energy per 1000 queries and stars carry the provenance of its energy; a "
               "model's carries that of its repetitions.")
    if digest is not None:
        summed = [(badge(c.provenance), c.component, Num(f"{c.runs:,}"),
                   Num(number(c.energy_j)), c.source, "yes" if c.measured else "no",
                   badge(component_provenance(c.source, c.measured)))
                  for c in digest.components]
        body = table(["run", "component", "runs", "energy (J)", "source", "measured",
                      "component"], summed, cls="components-summed") if summed else \
            note("no run has component figures", kind="provenance")
        return _section(
            "provenance", "Provenance", intro, legend,
            f"<h3>Components, summed over the runs that have them ({len(summed)})</h3>",
            _p(f"The components of each run are in the full data: {digest.export_command}."),
            body)
    rows = []
    for r in runs:
        total = r.energy_j
        for name, c in (r.components or {}).items():
            share = 100.0 * c.energy_j / total if total is not None and total > 0 else None
            rows.append((r.cell_key, badge(r.provenance), name,
                         Num(number(c.energy_j)), Num(number(share, ".3g")),
                         c.source, "yes" if c.measured else "no",
                         badge(component_provenance(c.source, c.measured))))
    body = table(["cell", "run", "component", "energy (J)", "share (%)", "source", "measured",
                  "component"], rows, cls="components") if rows else \
        note("no run has component figures", kind="provenance")
    return _section(
        "provenance", "Provenance", intro,
        legend,
        f"<details{' open' if len(rows) <= 60 else ''}><summary><h3>Components of each run "
        f"({len(rows)})</h3></summary>{body}</details>",
    )


def failed(runs: Sequence[Run], digest: Digest | None = None) -> str:
    """The cells that failed, with their errors: every one, or, past :data:`RUNS_LISTED`,
    the first of them after a count of the cells per error (the store's, with a ``digest``
    that has them)."""
    if digest is not None and digest.failed_runs is not None \
            and digest.failure_counts is not None:
        failures, counts = digest.failed_runs, list(digest.failure_counts)
        total = sum(n for _, n in counts)
    else:
        failures = [r for r in runs if not r.ok]
        counts = Counter((r.error or "no error recorded").split("\n", 1)[0]
                         for r in failures).most_common()
        total = len(failures)
    rows = [(r.cell_key, _label(r), r.dataset, r.phase,
             Markup(f"<pre>{esc(r.error or 'no error recorded')}</pre>"))
            for r in failures[:RUNS_LISTED]]
    body = table(["cell", "model", "dataset", "phase", "error"], rows, cls="failed") if rows \
        else note("no failed cells", kind="failed")
    if total <= RUNS_LISTED:
        return _section("failed", "Failed cells", body)
    counted = table(["cells", "error (first line)"],
                    [(Num(f"{n:,}"), Markup(f"<pre>{esc(e)}</pre>")) for e, n in counts],
                    cls="failed-errors")
    return _section("failed", "Failed cells",
                    _p(f"{total:,} cells failed: their errors, then the first "
                       f"{RUNS_LISTED:,} cells."), counted, body)
