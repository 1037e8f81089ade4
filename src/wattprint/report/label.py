"""Energy labels: one card per model, like an appliance's energy label.

The card names the model, its task, hardware and dataset, shows its band A-E (5 stars to 1) on
a coloured scale and as stars, its energy and CO2e per 1000 queries, its quality figure (its
accuracy in percent, or the word error rate, perplexity, ... its runs have:
:class:`~wattprint.record.Quality`), where the energy figure came from (measured, estimated,
fake) and the date of its runs.

The card is laid out once, as a list of shapes in :data:`LABEL_WIDTH` x :data:`LABEL_HEIGHT`
units, and drawn by one of two small renderers: SVG text, or a PNG drawn with Pillow
(:data:`PNG_SCALE` pixels a unit; the ``images`` extra). Stars are polygons in both, so no
font needs a star glyph; the SVG also says them as glyphs in its title.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from .._files import write_bytes, write_text
from .._version import __version__
from ..errors import ConfigError, MissingExtra
from ..record import RunRecord
from ..score import DEFAULT_DB, Score, available_groups, calculate_scores, star_glyphs
from ._format import BANDS, co2_text, energy_text

__all__ = ["LABEL_HEIGHT", "LABEL_WIDTH", "PNG_SCALE", "write_label"]

#: The card's size in SVG units (pixels of the SVG).
LABEL_WIDTH = 400
LABEL_HEIGHT = 600
#: PNG pixels per SVG unit: a PNG label is ``LABEL_WIDTH * PNG_SCALE`` pixels wide.
PNG_SCALE = 2
_SUPERSAMPLE = 2  # the PNG is drawn this much larger, then scaled down: smooth edges

_FONT_FAMILY = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"
_GOLD, _EMPTY = "#f0b400", "#dcdcdc"
_INK, _MUTED, _HEAD = "#1d1d1d", "#666666", "#1a7f4b"

#: provenance -> (headline, explanation, text colour, background)
_PROVENANCE = {
    "measured": ("MEASURED", "read from hardware energy counters", "#13653a", "#dff3e4"),
    "sampled": ("MEASURED (sampled power)", "hardware power readings, integrated over time",
                "#1a4f8a", "#e2eefb"),
    "estimate": ("ESTIMATED", "from a model of the hardware, not a measurement", "#8a5a00",
                 "#fdf0d8"),
    "mixed": ("PARTLY ESTIMATED", "measured and estimated parts; see the report", "#8a3412",
              "#fbe5dc"),
    "fake": ("FAKE SENSOR", "test or demo figures, not a measurement", "#56358f", "#ece6f6"),
}
_UNKNOWN = ("PROVENANCE UNKNOWN", "the runs do not say where the energy came from", "#555555",
            "#eeeeee")


# --------------------------------------------------------------------------------------------
# The card's figures.


@dataclass(frozen=True)
class _Card:
    score: Score
    date: str


def _sweep_runs(db: str | os.PathLike[str], sweep_id: str | None) -> list[RunRecord]:
    from ..store import Store

    path = Path(os.fspath(db))
    if not path.is_file():
        raise ConfigError(f"no results store at {str(path)!r}; run a benchmark first "
                          "(wattprint run CONFIG.yaml, or wattprint demo) or pass the store's path")
    with Store(path, read_only=True) as store:
        if sweep_id is not None:
            ids = [str(s["id"]) for s in store.sweeps()]
            if sweep_id not in ids:
                raise ConfigError(f"no sweep {sweep_id!r} in the results store {str(path)!r}; "
                                  f"the sweeps there: {', '.join(ids) or 'none'}")
        return store.runs(sweep_id=sweep_id)


def _matches(score: Score, model: str) -> bool:
    return model in (score.model, f"{score.model_name}:{score.variant}")


def _choose(model: str, runs: Sequence[RunRecord], task: str | None,
            hardware: str | None, dataset: str | None) -> Score:
    rated = [calculate_scores(t, h, records=runs) for t, h in available_groups(runs)]
    every = [s for group in rated for s in group]
    named = [s for s in every if _matches(s, model)]
    unrated = [u for group in rated for u in group.unrated
               if model in (u.model, f"{u.model_name}:{u.variant}")]
    if not named and unrated:
        raise ConfigError(f"model {model!r} is not rated, so it has no label: "
                          + "; ".join(f"{u.dataset}, {u.task} on {u.hardware}: {u.reason}"
                                      for u in unrated))
    if not named:
        models = sorted({s.model for s in every})
        raise ConfigError(f"no rated model {model!r} in these runs; the models there are: "
                          f"{', '.join(models) or 'none (no successful inference runs)'}")
    chosen = [s for s in named
              if (task is None or s.task.casefold() == task.casefold())
              and (hardware is None or s.hardware.casefold() == hardware.casefold())
              and (dataset is None or s.dataset == dataset)]
    places = sorted({f"task {s.task!r} on hardware {s.hardware!r}, dataset {s.dataset!r}"
                     for s in named})
    if not chosen:
        raise ConfigError(f"model {model!r} has no runs of task {task or 'any'!r} on hardware "
                          f"{hardware or 'any'!r}, dataset {dataset or 'any'!r}; it has: "
                          + "; ".join(places))
    groups = sorted({(s.task, s.hardware) for s in chosen})
    if len(groups) > 1:
        listed = ", ".join(f"{t}/{h}" for t, h in groups)
        raise ConfigError(f"model {model!r} is rated in several task/hardware groups: {listed}; "
                          "pass task and hardware to choose one")
    if len(chosen) > 1:
        listed = ", ".join(sorted(s.dataset for s in chosen))
        raise ConfigError(f"model {model!r} has runs on several datasets: {listed}; pass "
                          "dataset to choose one")
    return chosen[0]


def _date(score: Score, runs: Sequence[RunRecord]) -> str:
    times = [r.ended_at or r.started_at or 0.0 for r in runs
             if r.ok and r.phase == "inference"
             and r.model_name == score.model_name and r.variant == score.variant
             and r.dataset == score.dataset
             and str(r.task).casefold() == score.task.casefold()
             and str(r.hardware).casefold() == score.hardware.casefold()]
    latest = max(times, default=0.0)
    if latest <= 0:
        return "date unknown"
    return datetime.fromtimestamp(latest, tz=timezone.utc).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------------------------
# Shapes.


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    radius: float = 0.0


@dataclass(frozen=True)
class _Poly:
    points: tuple[tuple[float, float], ...]
    fill: str
    stroke: str | None = None


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # the baseline
    text: str
    size: float
    fill: str = _INK
    bold: bool = False
    anchor: str = "start"  # start | middle | end
    max_width: float | None = None


_Shape = _Rect | _Poly | _Text


def _star(cx: float, cy: float, r: float) -> tuple[tuple[float, float], ...]:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.4
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return tuple(points)


def _stars(x: float, cy: float, r: float, step: float, filled: int, total: int, on: str,
           off: str, stroke: str | None = None) -> list[_Shape]:
    return [_Poly(_star(x + k * step, cy, r), on if k < filled else off, stroke)
            for k in range(total)]


def _layout(card: _Card) -> list[_Shape]:
    s = card.score
    width = LABEL_WIDTH
    shapes: list[_Shape] = [
        _Rect(0, 0, width, LABEL_HEIGHT, "#ffffff"),
        _Rect(0, 0, width, 64, _HEAD),
        _Text(20, 32, "ENERGY LABEL", 22, "#ffffff", bold=True),
        _Text(20, 52, "machine-learning inference · wattprint", 11, "#e3f3ea"),
        _Text(20, 98, s.model, 24, bold=True, max_width=width - 40),
        _Text(20, 121, f"{s.task} · {s.hardware} · {s.dataset}", 13, _MUTED,
              max_width=width - 40),
    ]
    top, row, gap = 138.0, 30.0, 5.0
    for i, count in enumerate(range(5, 0, -1)):
        letter, color = BANDS[count]
        y = top + i * (row + gap)
        right = 20 + 150 + i * 24
        ink = _INK if letter in ("B", "C") else "#ffffff"
        shapes.append(_Poly(((20, y), (right, y), (right + 14, y + row / 2), (right, y + row),
                             (20, y + row)), color))
        shapes.append(_Text(32, y + 22, letter, 19, ink, bold=True))
        shapes += _stars(62, y + row / 2, 6.5, 15, count, count, ink, ink)
        if count == s.stars:
            shapes.append(_Poly(((300, y + row / 2), (316, y - 3), (380, y - 3),
                                 (380, y + row + 3), (316, y + row + 3)), _INK))
            shapes.append(_Text(348, y + 23, letter, 24, "#ffffff", bold=True, anchor="middle"))
    y = top + 5 * (row + gap) + 26
    shapes += _stars(36, y, 13, 31, s.stars, 5, _GOLD, _EMPTY, "#b48a00")
    shapes.append(_Text(196, y - 1, f"{s.stars} of 5 stars", 16, bold=True))
    shapes.append(_Text(196, y + 16, f"among {s.group_size} model"
                        f"{'s' if s.group_size != 1 else ''} ({s.method})", 11, _MUTED,
                        max_width=width - 216))
    y += 34
    shapes.append(_Rect(20, y, width - 40, 1.5, "#cccccc"))
    shapes.append(_Text(20, y + 22, "ENERGY PER 1000 QUERIES", 11, _MUTED, bold=True))
    shapes.append(_Text(20, y + 60, energy_text(s.kwh_per_1000_queries), 34, bold=True))
    y += 76
    shapes.append(_Rect(20, y, width - 40, 1.5, "#cccccc"))
    quality = s.quality
    if quality is None or quality.metric == "accuracy":  # in percent, as ever
        heading = "ACCURACY"
        value = "not measured" if s.accuracy is None else f"{100.0 * s.accuracy:.3g} %"
    else:  # a word error rate, a perplexity, ...: its own name and figure
        heading, value = quality.description.upper(), quality.value_text
    shapes += [
        _Text(20, y + 22, "CO2e PER 1000 QUERIES", 11, _MUTED, bold=True),
        _Text(20, y + 48, co2_text(s.co2_g_per_1000_queries), 20, bold=True),
        _Text(220, y + 22, heading, 11, _MUTED, bold=True, max_width=width - 240),
        _Text(220, y + 48, value, 20, bold=True, max_width=width - 240),
    ]
    y += 62
    head, why, ink, background = _PROVENANCE.get(str(s.provenance), _UNKNOWN)
    shapes += [
        _Rect(20, y, width - 40, 46, background, radius=6),
        _Text(32, y + 20, f"Energy: {head}", 14, ink, bold=True, max_width=width - 64),
        _Text(32, y + 37, why, 11, ink, max_width=width - 64),
    ]
    shapes += [
        _Text(20, LABEL_HEIGHT - 14, f"runs of {card.date}", 11, _MUTED),
        _Text(width - 20, LABEL_HEIGHT - 14, f"wattprint {__version__}", 11, _MUTED,
              anchor="end"),
    ]
    return shapes


# --------------------------------------------------------------------------------------------
# SVG.


def _xml(text: str) -> str:
    """``text`` escaped for XML, without the control characters XML 1.0 forbids."""
    kept = "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
    return escape(kept, quote=True)


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg_shape(shape: _Shape) -> str:
    if isinstance(shape, _Rect):
        rounded = f' rx="{_n(shape.radius)}"' if shape.radius else ""
        return (f'<rect x="{_n(shape.x)}" y="{_n(shape.y)}" width="{_n(shape.w)}" '
                f'height="{_n(shape.h)}"{rounded} fill="{shape.fill}"/>')
    if isinstance(shape, _Poly):
        points = " ".join(f"{_n(x)},{_n(y)}" for x, y in shape.points)
        stroke = f' stroke="{shape.stroke}" stroke-width="1"' if shape.stroke else ""
        return f'<polygon points="{points}" fill="{shape.fill}"{stroke}/>'
    weight = ' font-weight="bold"' if shape.bold else ""
    fit = ""
    guess = len(shape.text) * shape.size * (0.64 if shape.bold else 0.58)
    if shape.max_width is not None and guess > shape.max_width:
        fit = f' textLength="{_n(shape.max_width)}" lengthAdjust="spacingAndGlyphs"'
    return (f'<text x="{_n(shape.x)}" y="{_n(shape.y)}" font-size="{_n(shape.size)}" '
            f'fill="{shape.fill}" text-anchor="{shape.anchor}"{weight}{fit}>'
            f"{_xml(shape.text)}</text>")


def _summary(card: _Card) -> str:
    s = card.score
    return (f"Energy label of {s.model} ({s.task}, {s.hardware}, {s.dataset}): "
            f"{star_glyphs(s.stars)} {s.stars} of 5 stars, band {BANDS[s.stars][0]}; "
            f"{energy_text(s.kwh_per_1000_queries)} and "
            f"{co2_text(s.co2_g_per_1000_queries)} CO2e per 1000 queries; energy "
            f"{s.provenance or 'of unknown provenance'}")


def _to_svg(shapes: Sequence[_Shape], card: _Card) -> str:
    body = "\n".join(_svg_shape(shape) for shape in shapes)
    summary = _xml(_summary(card))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH}" '
            f'height="{LABEL_HEIGHT}" viewBox="0 0 {LABEL_WIDTH} {LABEL_HEIGHT}" role="img" '
            f'aria-label="{summary}" font-family="{_FONT_FAMILY}">\n'
            f"<title>{summary}</title>\n{body}\n</svg>\n")


# --------------------------------------------------------------------------------------------
# PNG.


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as err:
        raise MissingExtra("PNG labels", "images") from err
    return Image, ImageDraw, ImageFont


@lru_cache(maxsize=64)
def _font(size: int, bold: bool) -> tuple[Any, bool]:
    """A font of ``size`` pixels, and whether it is truly bold: DejaVu Sans if the system has
    it, else Pillow's own scalable font."""
    _, _, image_font = _pillow()
    try:
        return image_font.truetype("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf",
                                   size), bold
    except OSError:
        pass
    try:
        return image_font.load_default(size=size), False
    except TypeError:  # Pillow before 10.1: one bitmap size
        return image_font.load_default(), False


_STAND_INS = {"µ": "u", "·": "-", "…": "...", "₂": "2"}


def _drawable(font: Any, text: str) -> str:
    """``text`` with each character ``font`` has no glyph for replaced by an ASCII stand-in
    (a missing glyph draws as the same box as a private-use character)."""
    if text.isascii() or not hasattr(font, "getmask"):
        return text
    missing = font.getmask("\U000f0000")
    box = (missing.size, bytes(missing))
    out = []
    for ch in text:
        if not ch.isascii():
            mask = font.getmask(ch)
            if (mask.size, bytes(mask)) == box:
                ch = _STAND_INS.get(ch, "?")
        out.append(ch)
    return "".join(out)


def _png_text(draw: Any, shape: _Text, scale: float) -> None:
    size = max(6, round(shape.size * scale))
    font, truly_bold = _font(size, shape.bold)
    text = _drawable(font, shape.text)
    if shape.max_width is not None:
        limit = shape.max_width * scale
        while size > 6 and draw.textlength(text, font=font) > limit:
            size -= 1
            font, truly_bold = _font(size, shape.bold)
        while len(text) > 1 and draw.textlength(text, font=font) > limit:
            text = text[:-2] + "…"
    stroke = max(1, round(size / 28)) if shape.bold and not truly_bold else 0
    width = draw.textlength(text, font=font)
    shift = {"start": 0.0, "middle": 0.5, "end": 1.0}[shape.anchor] * width
    ascent = font.getmetrics()[0] if hasattr(font, "getmetrics") else size * 0.8
    draw.text((shape.x * scale - shift, shape.y * scale - ascent), text, font=font,
              fill=shape.fill, stroke_width=stroke, stroke_fill=shape.fill)


def _to_png(shapes: Sequence[_Shape]) -> Any:
    image_module, draw_module, _ = _pillow()
    scale = PNG_SCALE * _SUPERSAMPLE
    image = image_module.new("RGB", (LABEL_WIDTH * scale, LABEL_HEIGHT * scale), "#ffffff")
    draw = draw_module.Draw(image)
    for shape in shapes:
        if isinstance(shape, _Rect):
            box = (shape.x * scale, shape.y * scale, (shape.x + shape.w) * scale - 1,
                   (shape.y + shape.h) * scale - 1)
            if shape.radius:
                draw.rounded_rectangle(box, radius=shape.radius * scale, fill=shape.fill)
            else:
                draw.rectangle(box, fill=shape.fill)
        elif isinstance(shape, _Poly):
            points = [(x * scale, y * scale) for x, y in shape.points]
            draw.polygon(points, fill=shape.fill, outline=shape.stroke,
                         width=scale if shape.stroke else 0)
        else:
            _png_text(draw, shape, scale)
    size = (LABEL_WIDTH * PNG_SCALE, LABEL_HEIGHT * PNG_SCALE)
    return image.resize(size, image_module.Resampling.LANCZOS)


# --------------------------------------------------------------------------------------------


def write_label(model: str, *, task: str | None = None, hardware: str | None = None,
                db: str | os.PathLike[str] = DEFAULT_DB, out: str | os.PathLike[str] = "label.svg",
                sweep_id: str | None = None, dataset: str | None = None) -> Path:
    """Write the energy label of ``model`` (named as :attr:`wattprint.score.Score.model`:
    ``cnn``, ``cnn:int8-dynamic``) to ``out``, ``.svg`` or ``.png``; return its path.

    The model is rated among the models of its task and hardware in the store at ``db`` (the
    runs of ``sweep_id`` only, if given; else of every sweep). A model rated in several task
    and hardware groups needs ``task`` and ``hardware``; one with runs on several datasets,
    ``dataset``. An unknown model, an ambiguous one, an unknown sweep or another suffix raise
    :class:`~wattprint.errors.ConfigError` saying what there is; a PNG without Pillow raises
    :class:`~wattprint.errors.MissingExtra` (the ``images`` extra). The store is only read;
    ``out`` is replaced whole or not at all (a failed write raises
    :class:`~wattprint.errors.OutputError` and leaves the file there as it was).
    """
    target = Path(os.fspath(out))
    suffix = target.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise ConfigError(f"a label is written as .svg or .png, not {target.name!r}")
    if suffix == ".png":
        _pillow()  # before any work: say that the extra is missing first
    runs = _sweep_runs(db, sweep_id)
    score = _choose(model, runs, task, hardware, dataset)
    card = _Card(score, _date(score, runs))
    shapes = _layout(card)
    if suffix == ".svg":
        return write_text(target, _to_svg(shapes, card), encoding="utf-8")
    png = io.BytesIO()
    _to_png(shapes).save(png, format="PNG", optimize=True)
    return write_bytes(target, png.getvalue())
