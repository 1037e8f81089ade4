"""One sweep as one self-contained HTML file: it opens offline, from anywhere.

Everything is inline: the stylesheet, and the charts as SVG drawn by :mod:`.charts`. The page
loads nothing (no scripts, fonts or images from elsewhere) and runs no script. Hovering a bar
or point shows its figures.

Sections: totals; location and the carbon intensity, PUE and WUE assumed; star ratings per task
and hardware; energy per 1000 queries; energy against accuracy with the Pareto front;
optimization savings, with the spread of each variant's and its parent's repetitions
(min – max, 95 % interval); the power timeline of the inference run with the most samples;
every run, partial ones flagged with the sensor's error and notes (a window too short for a
sensor, labels that could not score the outputs) beside the status, shown on hover; the
provenance of every figure, per run and per component; the failed cells and their errors.

:func:`write_report` rates from the store's sums and finds the timeline run in one query. A
sweep of more than ``RUNS_LISTED`` (1,000) runs is read from a few columns, not decoded run by
run: its runs table lists the first of the runs that failed, are partial or are not rated (the
store counts them all, and its failed cells per error), then one row per model and phase, and
names the export that has every run; its components are summed. The ratings and the savings
share one read of the store's sums.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import write_text
from .._version import __version__
from ..errors import ConfigError
from ..record import RunRecord
from ..score import DEFAULT_DB, StoredSums, rate_stored_sweep, stored_sums
from . import _sections as sections
from ._format import date_text
from ._markup import esc

if TYPE_CHECKING:
    from .._savings import Saving

__all__ = ["render_report", "write_report"]

_CSS = """
:root { color-scheme: light; --ink: #222; --muted: #666; --line: #ddd; --bg: #fafafa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header .project { color: #1a7f4b; }
.meta, .note, figcaption, .mix { color: var(--muted); }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line);
      padding: 6px 0; margin: 10px 0 6px; z-index: 1; }
nav a { margin-right: 14px; color: #1a5f9e; text-decoration: none; font-size: 13px; }
h2 { margin: 28px 0 8px; font-size: 20px; border-bottom: 2px solid #1a7f4b;
     padding-bottom: 3px; }
h3 { margin: 16px 0 6px; font-size: 15px; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
        gap: 0 32px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { flex: 1 1 200px; background: var(--bg); border: 1px solid var(--line);
        border-radius: 8px; padding: 12px 14px; }
.card .big { font-size: 24px; font-weight: 650; }
.card .what { color: var(--muted); font-size: 13px; }
.table-wrap { overflow-x: auto; margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #f0f2f0; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--bg); }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td pre { margin: 0; white-space: pre-wrap; max-width: 640px; font-size: 12px; }
.stars { color: #d49b00; letter-spacing: 1px; white-space: nowrap; font-size: 15px; }
.prov { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
        border: 1px solid transparent; white-space: nowrap; }
.prov-measured { background: #dff3e4; color: #13653a; border-color: #9fd6b0; }
.prov-sampled { background: #e2eefb; color: #1a4f8a; border-color: #a9c8ee; }
.prov-estimate { background: #fdf0d8; color: #8a5a00; border-color: #f0cf8a; }
.prov-mixed { background: #fbe5dc; color: #8a3412; border-color: #f0b39a; }
.prov-fake { background: #ece6f6; color: #56358f; border-color: #c6b3e6; }
.prov-none, .prov-other { background: #eee; color: #555; border-color: #ccc; }
.status-failed { color: #b3261e; font-weight: 600; }
.flag { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
        white-space: nowrap; background: #fbe0de; color: #b3261e; border: 1px solid #eeaaa5; }
.hint { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
        white-space: nowrap; background: #eee; color: #444; border: 1px solid #ccc; }
tr.unrated td { background: #fdf3f2; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 4px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd, dl.legend dd { margin: 0; }
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 6px 12px; }
summary { cursor: pointer; }
summary h3 { display: inline-block; }
figure.chart { margin: 10px 0 18px; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figure.chart .bar:hover rect, figure.chart .point:hover circle { opacity: 0.75; }
figcaption { font-size: 13px; max-width: 760px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
@media print { nav { position: static; } }
"""

_NAV = (("totals", "Totals"), ("site", "Location"), ("ratings", "Stars"),
        ("energy", "Energy"), ("pareto", "Energy vs accuracy"), ("savings", "Savings"),
        ("timeline", "Power"), ("runs", "Runs"), ("provenance", "Provenance"),
        ("failed", "Failed"))


def render_report(sweep: Mapping[str, Any], runs: Sequence[RunRecord],
                  timeline_run: RunRecord | None = None,
                  samples: Sequence[tuple[float, str, float]] = (), *,
                  ratings: tuple[sections.Scores, Sequence[str]] | None = None,
                  digest: sections.Digest | None = None) -> str:
    """The HTML page of one sweep: ``sweep`` and its ``runs`` (each a
    :class:`~wattprint.record.RunRecord`) as :class:`~wattprint.store.Store` returns them, and
    the run whose power ``samples`` the timeline shows (None: no timeline).

    ``ratings`` are the star ratings and the groups that could not be rated, when already
    made (:func:`wattprint.score.rate_stored_sweep`); by default they are made from ``runs``.
    With a ``digest`` (:class:`~wattprint.report._sections.Digest`, a sweep of more than
    :data:`~wattprint.report._sections.RUNS_LISTED` runs), ``runs`` need only be the runs that
    failed, are partial or are not rated (:meth:`~wattprint.store.Store.notable_runs`, the
    first ``RUNS_LISTED`` failed or partial ones at least): the totals, the runs per model,
    the components, the savings and the failures come from the digest."""
    scores, problems = sections.rate(runs) if ratings is None else ratings
    overview = sections.overview_of(runs) if digest is None else digest.overview
    nav = "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in _NAV)
    body = "".join([
        sections.header(sweep),
        f"<nav>{nav}</nav>",
        sections.totals(overview),
        sections.site(sweep, overview),
        sections.ratings(scores, problems),
        sections.energy_chart(scores),
        sections.pareto(scores),
        sections.savings(runs if digest is None else digest.savings_runs, scores,
                         None if digest is None else digest.savings),
        sections.timeline(timeline_run, samples),
        sections.runs_table(runs, scores, digest),
        sections.provenance(runs, digest),
        sections.failed(runs, digest),
        f"<footer>Made by wattprint {esc(__version__)} on "
        f"{esc(date_text(time.time()))}. Self-contained: this page loads nothing.</footer>",
    ])
    title = f"wattprint report: {sweep.get('project')} ({sweep.get('id')})"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def write_report(db: str | os.PathLike[str] = DEFAULT_DB, *, sweep_id: str | None = None,
                 out: str | os.PathLike[str] = "report.html") -> Path:
    """Write the HTML report of one sweep of the store at ``db`` to ``out``; return its path.

    ``sweep_id`` None reports the latest sweep (the one most recently written to). A missing
    store, a store without sweeps or an unknown ``sweep_id`` raise
    :class:`~wattprint.errors.ConfigError` saying which sweeps there are. The store is only
    read. ``out`` is replaced whole or not at all: a failed write raises
    :class:`~wattprint.errors.OutputError` and leaves the file there as it was.
    """
    from ..store import Store

    path = Path(os.fspath(db))
    if not path.is_file():
        raise ConfigError(f"no results store at {str(path)!r}; run a benchmark first "
                          "(wattprint run CONFIG.yaml, or wattprint demo) or pass the store's path")
    with Store(path, read_only=True) as store:
        sweeps = store.sweeps()
        if not sweeps:
            raise ConfigError(f"the results store {str(path)!r} holds no sweeps; run a "
                              "benchmark first (wattprint run CONFIG.yaml, or wattprint demo)")
        wanted = sweep_id if sweep_id is not None else store.latest_sweep_id()
        sweep = next((s for s in sweeps if s["id"] == wanted), None)
        if sweep is None:
            there = ", ".join(str(s["id"]) for s in sweeps)
            raise ConfigError(f"no sweep {wanted!r} in the results store {str(path)!r}; "
                              f"the sweeps there: {there}")
        sweep_id = str(sweep["id"])
        sums = stored_sums(store, sweep_id)  # read once: the ratings and the savings need them
        digest: sections.Digest | None = None
        if int(sweep.get("num_runs") or 0) > sections.RUNS_LISTED:
            listed = sections.RUNS_LISTED
            runs = store.notable_runs(sweep_id, limit=listed)
            digest = sections.Digest(
                sweep_id=sweep_id, overview=store.sweep_overview(sweep_id),
                models=store.model_runs(sweep_id), components=store.component_runs(sweep_id),
                savings_runs=(), savings=_stored_savings(path, sweep_id, sums), db=os.fspath(db),
                failed_runs=store.failed_runs(sweep_id, limit=listed),
                failure_counts=store.failure_counts(sweep_id))
        else:
            runs = store.runs(sweep_id=sweep_id)
        stored, problems = rate_stored_sweep(store, sweep_id, sums=sums)
        scores: sections.Scores = dict(stored)
        # the inference run with the most samples; the latest on ties
        found = store.timeline_run_id(sweep_id)
        timeline_run = None if found is None else store.runs_by_id([found])[0]
        samples = [] if found is None else store.samples(found)
    page = render_report(sweep, runs, timeline_run, samples, ratings=(scores, problems),
                         digest=digest)
    return write_text(out, page, encoding="utf-8")


def _stored_savings(path: Path, sweep_id: str, sums: StoredSums) -> list[Saving] | ConfigError:
    """The savings of a large sweep from the store's sums, or the error that stops them."""
    from .._savings import stored_savings

    try:
        return stored_savings(path, sweep_id=sweep_id, sums=sums)
    except ConfigError as err:
        return err
