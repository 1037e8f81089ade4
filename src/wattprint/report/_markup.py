"""Small HTML builders: every piece of text that reaches the page is escaped here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from ..score import star_glyphs
from ._format import PROVENANCE_WORDS

__all__ = ["Markup", "Num", "badge", "esc", "figure", "flag", "hint", "note", "stars", "table"]


class Markup(str):
    """Text that is already HTML: :func:`table` puts it in a cell as it is."""

    __slots__ = ()


class Num(str):
    """A number cell: right-aligned, put in the cell escaped."""

    __slots__ = ()



def esc(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return escape(str(value), quote=True)


def _cell(value: object) -> str:
    if isinstance(value, Markup):
        return f"<td>{value}</td>"
    if isinstance(value, Num):
        return f'<td class="n">{esc(value)}</td>'
    return f"<td>{esc('-' if value is None else value)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, cls: str = "") -> str:
    """A table in a scrolling wrapper; each cell is escaped unless it is :class:`Markup`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    klass = f' class="{esc(cls)}"' if cls else ""
    return (f'<div class="table-wrap"><table{klass}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def badge(word: object) -> Markup:
    """A provenance word as a coloured badge whose hover text explains it."""
    text = "unknown" if word is None else str(word)
    known = text in PROVENANCE_WORDS
    klass = f"prov prov-{text}" if known else "prov prov-other"
    title = PROVENANCE_WORDS.get(text, "provenance not recorded")
    return Markup(f'<span class="{klass}" title="{esc(title)}">{esc(text)}</span>')


def stars(count: int) -> Markup:
    """``count`` stars of five as glyphs, with their number for screen readers and hover."""
    return Markup(f'<span class="stars s{count}" title="{count} of 5 stars" '
                  f'aria-label="{count} of 5 stars">{star_glyphs(count)}</span>')


def flag(word: str, why: str) -> Markup:
    """A red badge that marks a run or model ("partial", "not rated"); hovering shows why."""
    return Markup(f'<span class="flag flag-{esc(word.replace(" ", "-"))}" title="{esc(why)}">'
                  f"{esc(word)}</span>")


def hint(word: str, why: str) -> Markup:
    """A grey badge for what a reader should know about a run ("note"); hovering shows it."""
    return Markup(f'<span class="hint" title="{esc(why)}">{esc(word)}</span>')


def note(text: str, *, kind: str = "") -> Markup:
    """A short paragraph that says why something is missing."""
    extra = f' data-empty="{esc(kind)}"' if kind else ""
    return Markup(f'<p class="note"{extra}>{esc(text)}</p>')


def figure(name: str, svg: str, caption: str, *, group: str | None = None) -> Markup:
    """A chart: ``<figure class="chart" data-chart=NAME>`` around its ``<svg>``."""
    extra = f' data-group="{esc(group)}"' if group is not None else ""
    return Markup(f'<figure class="chart" data-chart="{esc(name)}"{extra}>{svg}'
                  f"<figcaption>{esc(caption)}</figcaption></figure>")
