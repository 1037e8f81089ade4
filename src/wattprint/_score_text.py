"""Scores as text: star glyphs, energies and intervals with short units, and the star tables
that :func:`wattprint.score.print_scores` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from .record import Quality
    from .score import Score, Unrated

__all__ = ["MAX_STARS", "NOT_SIGNIFICANT_MARK", "NOT_SIGNIFICANT_NOTE", "ci95_text",
           "energy_text", "interval_text", "print_scores", "quality_text", "star_glyphs"]

#: The most stars a model gets.
MAX_STARS = 5


def star_glyphs(stars: int) -> str:
    """``stars`` out of five as glyphs: ``star_glyphs(4) == "★★★★☆"``."""
    if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= MAX_STARS:
        raise ConfigError(f"stars must be an int from 0 to {MAX_STARS}, not {stars!r}")
    return "★" * stars + "☆" * (MAX_STARS - stars)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def quality_text(quality: Quality | None) -> str:
    """A quality figure as the tables show it: ``"acc 0.930"``, ``"WER 0.250"``, ``"ppl 41.2"``
    (:class:`~wattprint.record.Quality`); ``"-"`` for none."""
    return "-" if quality is None else str(quality)


def energy_text(kwh: float | None) -> str:
    """An energy with a unit that keeps it short: ``"1.43 mWh"``, ``"125 µWh"``."""
    if kwh is None:
        return "-"
    if kwh < 0:  # the low end of an interval may be
        return f"-{energy_text(-kwh)}"
    for scale, unit in ((1.0, "kWh"), (1e-3, "Wh"), (1e-6, "mWh")):
        if kwh >= scale:
            return f"{kwh / scale:.3g} {unit}"
    return f"{kwh / 1e-9:.3g} µWh"


#: The mark beside the stars of a model whose ranking against a neighbour is not significant.
NOT_SIGNIFICANT_MARK = "≈"
#: What :data:`NOT_SIGNIFICANT_MARK` means, under a table that shows it.
NOT_SIGNIFICANT_NOTE = ("≈: ranking within overlapping intervals is not significant (the 95 % "
                        "intervals of the mean of neighbouring models overlap)")


def interval_text(low: float | None, high: float | None) -> str:
    """An energy interval: ``"1.2 – 1.5 mWh"`` (each end with its unit when they differ),
    ``"-"`` when either end is missing."""
    if low is None or high is None:
        return "-"
    left, right = energy_text(low), energy_text(high)
    left_number, _, left_unit = left.partition(" ")
    if left_unit == right.partition(" ")[2]:
        left = left_number
    return f"{left} – {right}"


def ci95_text(score: Score) -> str:
    """A score's 95 % interval of the mean as text; ``"n=1: no interval"`` for one
    repetition."""
    if score.kwh_per_1000_queries_ci95_low is None:
        return f"n={score.repetitions}: no interval"
    return interval_text(score.kwh_per_1000_queries_ci95_low,
                         score.kwh_per_1000_queries_ci95_high)


def print_scores(scores: Sequence[Score], *, unrated: Sequence[Unrated] | None = None,
                 console: Console | None = None) -> None:
    """Print ``scores`` as rich tables, one per task and hardware, to ``console`` (stdout).

    Energy is per 1000 queries, CO2 in milligrams per 1000 queries; ``percentile`` is the
    model's place in its group as ML Energy Score prints it (0 = the most efficient, 100 = the
    least); ``quality`` is the model's quality figure (``acc 0.930``, ``WER 0.250``, ``ppl
    41.2``: :func:`quality_text`); the rest is in :meth:`Score.to_dict`. The models whose
    runs were not rated (``unrated``; by default the :attr:`ScoreList.unrated` of
    ``scores``) are rows marked "not rated", with the reason under the table: "mlp: not
    rated: partial, gpu:0: not readable (1 run)". Each model shows its repetitions' range
    (min – max) and the 95 % interval of its mean; ``≈`` beside the stars marks a model whose
    interval overlaps a neighbour's, with a note under the table (see the module docstring,
    "Spread").
    """
    from rich.markup import escape as markup_escape
    from rich.table import Table

    from ._console import console as stdout_console
    from ._console import printable
    from .score import Score

    def escape(text: str) -> str:  # names come from stores that strangers may write
        return markup_escape(printable(text))

    out = console if console is not None else stdout_console()
    left_out: Sequence[Unrated] = (getattr(scores, "unrated", ()) if unrated is None
                                   else unrated)
    if not scores and not left_out:
        out.print("no scores")
        return
    groups: dict[tuple[str, str], tuple[list[Score], list[Unrated]]] = {}
    items: list[Score | Unrated] = [*scores, *left_out]
    for item in items:
        key = (item.task.casefold(), item.hardware.casefold())
        rated, not_rated = groups.setdefault(key, ([], []))
        if isinstance(item, Score):
            rated.append(item)
        else:
            not_rated.append(item)
    for rows, not_rated in groups.values():
        first: Score | Unrated = rows[0] if rows else not_rated[0]
        several = len({s.dataset for s in rows} | {u.dataset for u in not_rated}) > 1
        method = rows[0].method if rows else "none rated"
        reasons = [f"{u.model}{f' on {u.dataset}' if several else ''}: not rated: {u.reason} "
                   f"({u.runs} run{'s' if u.runs != 1 else ''})" for u in not_rated]
        if any(not s.ranking_significant for s in rows):
            reasons.append(NOT_SIGNIFICANT_NOTE)
        table = Table(title=escape(f"{first.task} on {first.hardware} ({method})"),
                      title_justify="left", caption=escape("\n".join(reasons)) or None,
                      caption_justify="left")
        table.add_column("model", min_width=8)
        if several:
            table.add_column("dataset")
        table.add_column("stars", no_wrap=True)
        for name in ("percentile", "energy/1k q", "min – max", "95 % CI", "CO2 mg/1k q",
                     "quality", "ESS"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("source")
        for s in rows:
            co2 = None if s.co2_g_per_1000_queries is None else s.co2_g_per_1000_queries * 1e3
            cells = [escape(s.model)]
            if several:
                cells.append(escape(s.dataset))
            mark = "" if s.ranking_significant else f" {NOT_SIGNIFICANT_MARK}"
            cells += [f"[yellow]{star_glyphs(s.stars)}[/]{mark}", f"{s.percentile:.0f}",
                      energy_text(s.kwh_per_1000_queries),
                      interval_text(s.kwh_per_1000_queries_min, s.kwh_per_1000_queries_max),
                      ci95_text(s), _fmt(co2, ".3g"), quality_text(s.quality), _fmt(s.ess, ".3g"),
                      escape(s.provenance or "-")]
            table.add_row(*cells)
        for u in not_rated:
            cells = [escape(u.model)]
            if several:
                cells.append(escape(u.dataset))
            cells += ["[red]not rated[/]", "-", "-", "-", "-", "-", "-", "-", "-"]
            table.add_row(*cells)
        out.print(table)
