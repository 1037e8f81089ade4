"""Compact HTML tables for notebooks: the ``_repr_html_`` of a
:class:`~wattprint.Measurement`, of a :class:`~wattprint.score.ScoreList` and of a sweep's
:class:`~wattprint._summary.SweepSummary` (and :class:`~wattprint.study.BenchmarkResult`).

Each figure carries a provenance badge: ``measured`` (a hardware counter), ``sampled power``
(a measured power register read and integrated), ``estimate``, ``fake``, ``mixed``; a partial
measurement or run is marked in red with its errors. Every piece of text is HTML-escaped (model
names and error messages may come from anyone who can write a store or name a sensor); the
styles are inline, with no CSS or script from anywhere else. Importing this module costs little:
the classes import it when a notebook asks for their HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ._score_text import (
    NOT_SIGNIFICANT_MARK,
    NOT_SIGNIFICANT_NOTE,
    ci95_text,
    energy_text,
    quality_text,
    star_glyphs,
)

if TYPE_CHECKING:
    from ._summary import ModelSummary, SweepSummary
    from .measurement import ComponentEnergy, Measurement
    from .score import Score, Unrated
    from .study import BenchmarkResult

__all__ = ["PROVENANCE_LABELS", "benchmark_html", "measurement_html", "provenance_badge",
           "scores_html", "si", "summary_html"]

#: The text of each provenance badge (the keys are :data:`wattprint.record.PROVENANCES`).
PROVENANCE_LABELS = {
    "measured": "measured",
    "sampled": "sampled power",
    "estimate": "estimate",
    "fake": "fake",
    "mixed": "mixed",
    "none": "no figure",
}
_TITLES = {
    "measured": "measured: a hardware energy counter",
    "sampled": "measured: a hardware power register, sampled and integrated",
    "estimate": "not measured: estimated from a model (TDP x utilization, memory size)",
    "fake": "not measured: a FakeSensor or replayed trace",
    "mixed": "some components measured, some not: see each component",
    "none": "no component has a figure",
}
_COLOURS = {
    "measured": "#1a7f37",
    "sampled": "#0969da",
    "estimate": "#9a6700",
    "fake": "#9a6700",
    "mixed": "#8250df",
    "none": "#6e7781",
}
_RED = "#cf222e"
_GREY = "#6e7781"
_BOX = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;line-height:1.4"
_TABLE = "border-collapse:collapse;margin:4px 0"
_CELL = "padding:2px 8px;border-bottom:1px solid #d0d7de;text-align:{align}"
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
             (1e-9, "n"))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def si(value: float | None, unit: str) -> str:
    """A quantity with an SI prefix and three significant digits: ``si(0.0123, "g") ==
    "12.3 mg"``, ``si(4500.0, "J") == "4.5 kJ"``; ``"-"`` for None, the value as it is when
    it is not finite."""
    if value is None:
        return "-"
    if not math.isfinite(value) or value == 0:
        return f"{value:g} {unit}"
    size = abs(float(f"{value:.3g}"))  # 999.96 is 1.00e3: choose the prefix after rounding
    scale, prefix = next((p for p in _PREFIXES if size >= p[0]), _PREFIXES[-1])
    return f"{value / scale:.3g} {prefix}{unit}"


def _badge(label: str, colour: str, title: str, kind: str) -> str:
    return (f'<span data-provenance="{_e(kind)}" title="{_e(title)}" style="display:inline-block;'
            f"padding:0 6px;border-radius:8px;font-size:11px;font-weight:600;color:#fff;"
            f'background:{colour}">{_e(label)}</span>')


def provenance_badge(kind: str | None) -> str:
    """The badge of one provenance (``measured``, ``sampled``, ``estimate``, ``fake``,
    ``mixed``, ``none``); None (not recorded) is ``none``, an unknown word shown as it is."""
    kind = kind or "none"
    return _badge(PROVENANCE_LABELS.get(kind, kind), _COLOURS.get(kind, _GREY),
                  _TITLES.get(kind, kind), kind)


def _partial_badge() -> str:
    return _badge("partial", _RED, "a sensor failed: a component's energy is missing, so the "
                  "total is too low", "partial")


def _component_kind(c: ComponentEnergy, samples: int) -> str:
    source = c.source.value
    if source in ("estimate", "fake"):
        return source
    if not c.measured:
        return "estimate"
    # RAPL is always an energy counter; an NVML or AMD SMI figure is a counter unless power was
    # sampled; powermetrics and hwmon rails are always sampled power.
    if source in ("powermetrics", "hwmon"):
        return "sampled"
    return "sampled" if source in ("nvml", "amdsmi") and samples else "measured"


def _overall(kinds: Iterable[str]) -> str:
    found = set(kinds)
    if not found:
        return "none"
    return found.pop() if len(found) == 1 else "mixed"


def _row(cells: Sequence[str], *, header: bool = False, style: str = "") -> str:
    tag = "th" if header else "td"
    out = []
    for i, cell in enumerate(cells):
        css = _CELL.format(align="left" if i == 0 or header else "right") + style
        out.append(f'<{tag} style="{css}">{cell}</{tag}>')
    return "<tr>" + "".join(out) + "</tr>"


def _table(header: Sequence[str], rows: Iterable[str]) -> str:
    head = _row([_e(h) for h in header], header=True)
    return f'<table style="{_TABLE}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _problems(title: str, lines: Sequence[str]) -> str:
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return (f'<div style="color:{_RED}">{_e(title)}'
            f'<ul style="margin:2px 0;padding-left:20px">{items}</ul></div>')


def _notes(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f'<ul style="margin:2px 0;padding-left:20px;color:{_GREY}">{items}</ul>'


def measurement_html(m: Measurement) -> str:
    """One measurement: each component's energy with its provenance, the total, duration and
    mean power, the footprint with the grid intensity used, errors in red, notes in grey."""
    kinds = {name: _component_kind(c, m.samples) for name, c in m.components.items()}
    title = f"<b>{_e(m.name)}</b> {provenance_badge(_overall(kinds.values()))}"
    if m.partial:
        title += " " + _partial_badge()
    rows = []
    for name, c in m.components.items():
        sensors = ", ".join(c.sensors)
        if c.scope != "machine":
            sensors += f" ({c.scope})"
        rows.append(_row([_e(name), _e(si(c.energy_j, "J")), provenance_badge(kinds[name]),
                          _e(sensors)]))
    rows.append(_row(["<b>total</b>", f"<b>{_e(si(m.energy_j, 'J'))}</b>", "",
                      _e(f"{si(m.duration_s, 's')}, mean {si(m.power_w, 'W')}")],
                     style=";font-weight:600"))
    if m.dynamic_j is not None:
        rows.append(_row(["above idle", _e(si(m.dynamic_j, "J")), "",
                          _e(f"idle {si(m.idle_j, 'J')}")]))
    fp = m.footprint
    footprint = (f"<div>CO2e <b>{_e(si(fp.co2_g, 'g'))}</b> · water "
                 f"<b>{_e(si(fp.water_l, 'L'))}</b> · {_e(energy_text(fp.kwh))} · "
                 f"{_e(fp.location)}, {fp.intensity_g_per_kwh:.4g} gCO2e/kWh "
                 f"({_e(fp.intensity_source)}), PUE {fp.pue:g}</div>")
    errors = ""
    if m.partial or m.errors:
        errors = _problems("partial: a sensor failed inside the window; its component is left "
                           "out, so the total is too low", m.errors or ("(no error recorded)",))
    return (f'<div class="wattprint" style="{_BOX}"><div>{title}</div>'
            + _table(["component", "energy", "provenance", "sensors"], rows)
            + footprint + errors + _notes(m.notes) + "</div>")


def _group_key(item: Score | Unrated) -> tuple[str, str]:
    return item.task.casefold(), item.hardware.casefold()


def scores_html(scores: Sequence[Score], unrated: Sequence[Unrated] = ()) -> str:
    """Star tables as :func:`~wattprint.score.print_scores` prints them, one per task and
    hardware: the models not rated are rows in red, with why under the table."""
    from .score import Score

    if not scores and not unrated:
        return f'<div class="wattprint" style="{_BOX}">no scores</div>'
    groups: dict[tuple[str, str], tuple[list[Score], list[Unrated]]] = {}
    items: list[Score | Unrated] = [*scores, *unrated]
    for item in items:
        rated, not_rated = groups.setdefault(_group_key(item), ([], []))
        if isinstance(item, Score):
            rated.append(item)
        else:
            not_rated.append(item)
    parts = []
    for rated, not_rated in groups.values():
        first: Score | Unrated = rated[0] if rated else not_rated[0]
        several = len({s.dataset for s in rated} | {u.dataset for u in not_rated}) > 1
        method = rated[0].method if rated else "none rated"
        header = ["model", *(["dataset"] if several else []), "stars", "percentile",
                  "energy/1k q", "95 % CI", "CO2e/1k q", "quality", "ESS", "provenance"]
        rows = []
        for s in rated:
            mark = "" if s.ranking_significant else f" {NOT_SIGNIFICANT_MARK}"
            rows.append(_row([
                _e(s.model), *([_e(s.dataset)] if several else []),
                f'<span style="color:#bf8700">{_e(star_glyphs(s.stars))}</span>{_e(mark)}',
                f"{s.percentile:.0f}", _e(energy_text(s.kwh_per_1000_queries)),
                _e(ci95_text(s)), _e(si(s.co2_g_per_1000_queries, "g")),
                _e(quality_text(s.quality)), "-" if s.ess is None else f"{s.ess:.3g}",
                provenance_badge(s.provenance)]))
        for u in not_rated:
            rows.append(_row([
                _e(u.model), *([_e(u.dataset)] if several else []),
                f'<span style="color:{_RED};font-weight:600">not rated</span>',
                *["-"] * 7]))
        reasons = [f"{u.model}{f' on {u.dataset}' if several else ''}: not rated: {u.reason} "
                   f"({u.runs} run{'s' if u.runs != 1 else ''})" for u in not_rated]
        caption = (f"<div><b>{_e(first.task)}</b> on <b>{_e(first.hardware)}</b> "
                   f"({_e(method)})</div>")
        parts.append(caption + _table(header, rows)
                     + (_problems("left out of the ranking", reasons) if reasons else "")
                     + (_notes([NOT_SIGNIFICANT_NOTE])
                        if any(not s.ranking_significant for s in rated) else ""))
    return f'<div class="wattprint" style="{_BOX}">' + "".join(parts) + "</div>"


def _summary_row(m: ModelSummary) -> str:
    problems = []
    if m.partial_runs:
        problems.append(f"{m.partial_runs} partial run{'s' if m.partial_runs != 1 else ''}"
                        + (f": {'; '.join(m.partial_errors)}" if m.partial_errors else ""))
    problems.extend(f"failed: {e}" for e in m.errors)
    status = (f'<span style="color:{_RED}">{"<br>".join(_e(p) for p in problems)}</span>'
              if problems else "ok")
    badge = provenance_badge(m.provenance) if m.repetitions else "-"
    if m.partial_runs:
        badge += " " + _partial_badge()
    return _row([_e(m.label), _e(m.dataset or "-"), str(m.repetitions),
                 _e(energy_text(m.kwh_per_1000_queries)), _e(si(m.energy_j, "J")),
                 _e(si(m.co2_g, "g")), _e(quality_text(m.quality)), badge, status])


def summary_html(summary: SweepSummary) -> str:
    """A sweep's totals and one row per model variant and dataset: the mean of its
    repetitions with their provenance, partial runs and failed cells in red."""
    failed = (f'<span style="color:{_RED};font-weight:600">{summary.runs_failed} failed</span>'
              if summary.runs_failed else "0 failed")
    totals = (f"<div>runs: {summary.runs_ok} ok, {failed} · energy "
              f"<b>{_e(energy_text(summary.total_energy_kwh))}</b> · CO2e "
              f"<b>{_e(si(summary.total_co2_g, 'g'))}</b> · water "
              f"<b>{_e(si(summary.total_water_l, 'L'))}</b></div>")
    table = ""
    if summary.models:
        table = _table(["model", "dataset", "reps", "energy/1k q", "energy", "CO2e",
                        "quality", "provenance", "status"],
                       (_summary_row(m) for m in summary.models))
    return f'<div class="wattprint" style="{_BOX}">{totals}{table}</div>'


def benchmark_html(result: BenchmarkResult) -> str:
    """A benchmark run: its sweep, project and store, the summary, and the files written."""
    head = (f"<div><b>sweep {_e(result.sweep_id)}</b> · project {_e(result.project)} · "
            f"store {_e(result.db)}</div>")
    exports = _notes([f"wrote {path}" for path in result.exports])
    body = summary_html(result.summary)
    return f'<div class="wattprint" style="{_BOX}">{head}{body}{exports}</div>'
