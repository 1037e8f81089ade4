"""The sections of the HTML report, each a function of one sweep's stored runs
(:class:`~wattprint.record.RunRecord`, read as they were stored).

Each returns one ``<section>``; text from the store is escaped by :mod:`._markup`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import score as scoring
from .._summary import summarize
from ..errors import ConfigError
from ..record import RunRecord
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
from ._markup import Markup, Num, badge, esc, figure, flag, note, stars, table

__all__ = [
    "Scores",
    "energy_chart",
    "failed",
    "header",
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


def totals(runs: Sequence[Run]) -> str:
    """Energy, CO2 and water summed over the successful runs, and where the energy came from."""
    summary = summarize(runs)
    kwh, grams, litres = summary.total_energy_kwh, summary.total_co2_g, summary.total_water_l
    ok, bad = summary.runs_ok, summary.runs_failed

    def card(key: str, value: float, big: str, what: str) -> str:
        return (f'<div class="card" data-total="{key}" data-value="{value!r}">'
                f'<div class="big">{esc(big)}</div><div class="what">{esc(what)}</div></div>')

    failed_note = (f'<a href="#failed">{esc(bad)} failed</a>' if bad else "0 failed")
    partial = sum(1 for r in runs if r.ok and r.partial)
    if partial:
        failed_note += (f', <a href="#runs">{esc(partial)} partial</a> (a sensor failed '
                        "mid-run: not rated)")
    kinds = Counter(r.provenance or "unknown" for r in runs if r.ok)
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


def _site_of(run: Run, location: Mapping[str, Any]) -> tuple[tuple[object, ...], bool]:
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


def site(sweep: Mapping[str, Any], runs: Sequence[Run]) -> str:
    """Where the energy was used: the location asked for, the location, grid intensity, PUE,
    WUE, grid water intensity and tier each run's figures assume, and the host."""
    location = (sweep.get("config") or {}).get("location") or {}
    asked = [(key, value) for key, value in location.items() if value is not None]
    asked_html = "<dl class=\"kv\">" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in asked) + "</dl>" if asked else ""
    sites = [_site_of(r, location) for r in runs if r.ok]
    assumed = Counter(assumes for assumes, _ in sites)
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
    from_config = any(borrowed for _, borrowed in sites)
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
                 Num(_accuracy(s.accuracy)),
                 Num(number(s.ess)), Num(number(s.num_parameters, ",")),
                 Num(number(s.size_bytes, ",")), Num(str(s.repetitions)), badge(s.provenance))
                for s in group]
        if group:
            parts.append(table(["stars", "model", "dataset", "energy / 1000 q",
                                "min – max", "95 % interval", "CO2e / 1000 q", "accuracy",
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


def pareto(scores: Scores) -> str:
    """Energy against accuracy per task and hardware, with the Pareto front."""
    parts = [_p("A model is on the Pareto front (ringed, joined by the dashed line) when no "
                "other model of its group uses less energy per 1000 queries and is at least "
                "as accurate.")]
    labels = _model_labels(scores)
    for (task, hardware), group in scores.items():
        def point(s: scoring.Score) -> charts.Point:
            assert s.accuracy is not None
            return charts.Point(
                x=s.kwh_per_1000_queries, y=s.accuracy,
                label=labels[(s.task, s.hardware, s.model, s.dataset)],
                color=_band_color(s.stars),
                title=(f"{s.model} on {s.dataset}: {energy_text(s.kwh_per_1000_queries)} per "
                       f"1000 queries, accuracy {_accuracy(s.accuracy)}, {s.stars} stars"))

        points = [point(s) for s in group if s.accuracy is not None and
                  s.kwh_per_1000_queries > 0]
        if not points:
            parts.append(note(f"{task} on {hardware}: no accuracy recorded, no trade-off to "
                              "draw", kind="pareto"))
            continue
        front = [point(s) for s in scoring.pareto_front(group) if s.kwh_per_1000_queries > 0]
        svg = charts.scatter_chart(points, front, x_label="energy per 1000 queries",
                                   y_label="accuracy", x_fmt=energy_text, y_fmt=_accuracy)
        on_front = ", ".join(p.label for p in front)
        parts.append(figure("pareto", svg, f"{task} on {hardware}: accuracy against energy "
                            f"per 1000 queries. On the front: {on_front}.",
                            group=f"{task}/{hardware}"))
    if not scores:
        parts.append(note("no successful inference runs: nothing to compare", kind="pareto"))
    return _section("pareto", "Energy and accuracy", *parts)


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} pt"


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


def savings(runs: Sequence[Run], scores: Scores | None = None) -> str:
    """What each optimized variant changes against its parent: a table, the spread of each
    variant and its parent (from ``scores``, :func:`rate` of ``runs`` when not given), and
    a chart."""
    try:
        rows = scoring.savings(runs)
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
                Num(percent(r.ess_change_pct)), Num(_points(r.accuracy_change_points)),
                Num(percent(r.size_change_pct)), Num(energy_text(r.step_energy_kwh)),
                Num(co2_text(r.step_co2_g)), Num(break_even(r.break_even_queries))]
        cells.append(row)
    headers = ["variant", "parent", *(["task/hardware"] if several_groups else []),
               "energy / 1000 q", "energy", "significance", "CO2e", "ESS", "accuracy", "size",
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
           "repetitions)."),
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


def runs_table(runs: Sequence[Run], scores: Scores) -> str:
    """Every run of the sweep, in the order they were written. The dataset and task/hardware
    columns are left out when the sweep has only one."""
    lookup = _star_lookup(scores)
    datasets = {r.dataset for r in runs}
    groups = {(str(r.task).casefold(), str(r.hardware).casefold()) for r in runs}
    headers = ["model", "dataset", "task/hardware", "phase", "rep", "status", "time (s)",
               "energy (J)", "CO2e", "water", "energy / 1000 q", "accuracy", "stars",
               "provenance"]
    drop = {i for i, keep in ((1, len(datasets) > 1), (2, len(groups) > 1)) if not keep}
    rows = []
    for r in runs:
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
        row = (
            _label(r), r.dataset, f"{r.task}/{r.hardware}", r.phase,
            Num(number(r.repetition, "d")),
            status,
            Num(number(r.duration_s)), Num(number(r.energy_j)),
            Num(co2_text(r.co2_g)), Num(water_text(r.water_l)),
            Num(energy_text(r.kwh_per_1000_queries)),
            Num(_accuracy(r.metric("accuracy"))),
            stars(count) if count is not None
            else flag("not rated", why) if why is not None else "",
            badge(r.provenance) if r.ok else "",
        )
        rows.append([cell for i, cell in enumerate(row) if i not in drop])
    body = table([h for i, h in enumerate(headers) if i not in drop], rows, cls="runs") \
        if rows else note("this sweep has no runs", kind="runs")
    return _section("runs", "Runs",
                    _p("One row per stored cell. Stars are those of the run's model in its "
                       "task and hardware group; a partial run (a sensor failed inside its "
                       "window: hover for what) is not rated."), body)


def provenance(runs: Sequence[Run]) -> str:
    """Where every energy figure came from: per run and per component, with a legend."""
    legend = "<dl class=\"legend\">" + "".join(
        f"<dt>{badge(word)}</dt><dd>{esc(text)}</dd>" for word, text in PROVENANCE_WORDS.items()
    ) + "</dl>"
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
        "provenance", "Provenance",
        _p("Every energy figure says where it came from. A run's kWh, CO2e, water, energy "
           "per 1000 queries and stars carry the provenance of its energy; a model's carries "
           "that of its repetitions."),
        legend,
        f"<details{' open' if len(rows) <= 60 else ''}><summary><h3>Components of each run "
        f"({len(rows)})</h3></summary>{body}</details>",
    )


def failed(runs: Sequence[Run]) -> str:
    """The cells that failed, with their errors."""
    rows = [(r.cell_key, _label(r), r.dataset, r.phase,
             Markup(f"<pre>{esc(r.error or 'no error recorded')}</pre>"))
            for r in runs if not r.ok]
    body = table(["cell", "model", "dataset", "phase", "error"], rows, cls="failed") if rows \
        else note("no failed cells", kind="failed")
    return _section("failed", "Failed cells", body)
