"""Charts as inline SVG text, drawn by hand: no plotting library, nothing fetched.

Each function returns one ``<svg>`` element (without ``xmlns``: it is meant to sit inside an
HTML page, whose parser gives it the SVG namespace). Every string shown is escaped here, so
callers pass plain text. Hovering a mark shows its full figures (an SVG ``<title>``).

- :func:`bar_chart`: horizontal bars, one value each, on a linear or log axis, each with an
  optional error bar (``low`` to ``high``: the spread of the repetitions behind the value);
- :func:`diverging_bar_chart`: groups of bars around zero (changes in %, one colour a series);
- :func:`scatter_chart`: points, with a front drawn through some of them;
- :func:`line_chart`: one line per series over a shared x axis.

A log axis is chosen when every value is > 0 and they span more than two decades
(:func:`spans_decades`); its label then says "log scale".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "PALETTE",
    "Bar",
    "Point",
    "Scale",
    "bar_chart",
    "diverging_bar_chart",
    "line_chart",
    "scatter_chart",
    "spans_decades",
]

#: Series colours (Tableau 10), in order.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")

_INK = "#333333"
_GRID = "#e3e3e3"
_FONT = 12
_CHAR_W = 0.6 * _FONT  # a label's width per character, near enough for layout
_WIDTH = 880

Format = Callable[[float], str]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _f(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def spans_decades(values: Sequence[float], decades: float = 2.0) -> bool:
    """Whether ``values`` are all > 0 and their max / min exceeds ``10 ** decades``."""
    present = [v for v in values if math.isfinite(v)]
    if not present or min(present) <= 0:
        return False
    return max(present) / min(present) > math.pow(10.0, decades)


def _nice_step(span: float, ticks: int) -> float:
    raw = span / max(1, ticks)
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


@dataclass(frozen=True)
class Scale:
    """Maps values in ``[lo, hi]`` to pixels in ``[start, end]``, linearly or by log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False
    step: float = 0.0

    @classmethod
    def fit(cls, values: Sequence[float], start: float, end: float, *, log: bool = False,
            zero: bool = False, ticks: int = 5) -> Scale:
        """A scale covering ``values`` with round ends (powers of ten on a log scale);
        ``zero`` keeps 0 inside a linear one."""
        vals = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
        if log:
            lo = 10.0 ** math.floor(math.log10(min(vals)))
            hi = 10.0 ** math.ceil(math.log10(max(vals)))
            if hi <= lo:
                hi = lo * 10.0
            return cls(lo, hi, start, end, log=True)
        lo, hi = min(vals), max(vals)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        if hi == lo:
            pad = abs(hi) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        step = _nice_step(hi - lo, ticks)
        return cls(math.floor(lo / step) * step, math.ceil(hi / step) * step, start, end,
                   step=step)

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.lo)
            frac = math.log10(value / self.lo) / math.log10(self.hi / self.lo)
        else:
            frac = (value - self.lo) / (self.hi - self.lo)
        return self.start + frac * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.lo)), round(math.log10(self.hi))
            every = max(1, math.ceil((last - first) / 8))
            return [10.0 ** k for k in range(first, last + 1, every)]
        count = round((self.hi - self.lo) / self.step)
        return [self.lo + i * self.step for i in range(count + 1)]


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" aria-label="{_e(label)}" '
            f'font-size="{_FONT}" fill="{_INK}">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = _FONT,
          extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"'
            + (f' font-size="{size}"' if size != _FONT else "") + extra + f">{_e(text)}</text>")


def _x_axis(scale: Scale, top: float, bottom: float, fmt: Format, label: str) -> list[str]:
    """Vertical grid lines with tick labels under ``bottom``, and the axis label."""
    out = []
    for tick in scale.ticks():
        x = scale(tick)
        out.append(f'<line x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" y2="{_f(bottom)}" '
                   f'stroke="{_GRID}"/>')
        out.append(_text(x, bottom + 16, fmt(tick), anchor="middle", size=11))
    middle = (scale.start + scale.end) / 2
    out.append(_text(middle, bottom + 36, label, anchor="middle", extra=' font-weight="600"'))
    return out


def _y_axis(scale: Scale, left: float, right: float, fmt: Format, label: str) -> list[str]:
    out = []
    for tick in scale.ticks():
        y = scale(tick)
        out.append(f'<line x1="{_f(left)}" y1="{_f(y)}" x2="{_f(right)}" y2="{_f(y)}" '
                   f'stroke="{_GRID}"/>')
        out.append(_text(left - 6, y + 4, fmt(tick), anchor="end", size=11))
    middle = (scale.start + scale.end) / 2
    out.append(f'<text transform="translate(14 {_f(middle)}) rotate(-90)" text-anchor="middle" '
               f'font-weight="600">{_e(label)}</text>')
    return out


def _axis_label(label: str, log: bool) -> str:
    return f"{label} (log scale)" if log else label


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar: its ``label``, ``value``, fill ``color``, the ``text`` shown at its end and the
    ``title`` shown on hover. ``low`` and ``high``, when both are given and differ, are drawn
    as an error bar across the bar's end (``<g class="error-bar">``, its ``line.range`` from
    ``low`` to ``high``, a cap at each end)."""

    label: str
    value: float
    color: str = PALETTE[0]
    text: str = ""
    title: str = ""
    low: float | None = None
    high: float | None = None

    @property
    def spread(self) -> tuple[float, float] | None:
        """``(low, high)`` when there is an error bar to draw, else None."""
        if self.low is None or self.high is None or not self.high > self.low:
            return None
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return None
        return self.low, self.high


def _error_bar(scale: Scale, low: float, high: float, y: float, half: float) -> str:
    """An error bar from ``low`` to ``high`` at height ``y``, its caps ``2 * half`` tall."""
    x0, x1 = scale(low), scale(high)
    caps = "".join(f'<line x1="{_f(x)}" y1="{_f(y - half)}" x2="{_f(x)}" y2="{_f(y + half)}"/>'
                   for x in (x0, x1))
    return (f'<g class="error-bar" data-low="{low!r}" data-high="{high!r}" stroke="{_INK}" '
            f'stroke-width="1.5"><line class="range" x1="{_f(x0)}" y1="{_f(y)}" '
            f'x2="{_f(x1)}" y2="{_f(y)}"/>{caps}</g>')


def bar_chart(bars: Sequence[Bar], *, axis_label: str, fmt: Format, log: bool | None = None,
              width: float = _WIDTH) -> str:
    """Horizontal bars, top to bottom in the order given, each with its error bar if it has
    one (:attr:`Bar.spread`). ``log`` None: log scale when the values span more than two
    decades. Values must be >= 0 (> 0 on a log scale); the axis covers the error bars too."""
    values = [b.value for b in bars]
    log = spans_decades(values) if log is None else log
    spreads = [b.spread for b in bars]
    ends = [end for spread in spreads if spread is not None for end in spread
            if not log or end > 0]
    chars = min(32, max((len(b.label) for b in bars), default=4))
    left = 12 + chars * _CHAR_W
    right = width - 80
    row, top = 26.0, 10.0
    bottom = top + row * len(bars)
    scale = Scale.fit([*values, *ends, 0.0] if not log else [*values, *ends], left, right,
                      log=log, zero=not log)
    body = _x_axis(scale, top, bottom, fmt, _axis_label(axis_label, log))
    for i, (bar, spread) in enumerate(zip(bars, spreads, strict=True)):
        y = top + i * row
        x1 = scale(bar.value)
        x0 = scale(scale.lo) if log else scale(0.0)
        title = bar.title or f"{bar.label}: {bar.text or fmt(bar.value)}"
        whisker = "" if spread is None else _error_bar(scale, *spread, y + row / 2, row / 4)
        body.append(f'<g class="bar"><title>{_e(title)}</title>'
                    f'<rect x="{_f(x0)}" y="{_f(y + 4)}" width="{_f(max(1.0, x1 - x0))}" '
                    f'height="{_f(row - 8)}" fill="{_e(bar.color)}"/>{whisker}</g>')
        body.append(_text(left - 6, y + row / 2 + 4, _clip(bar.label, chars), anchor="end"))
        end = max(x1, x0 + 1, scale(spread[1]) if spread is not None else x0)
        body.append(_text(end + 4, y + row / 2 + 4, bar.text or fmt(bar.value), size=11))
    body.append(f'<line x1="{_f(left)}" y1="{_f(top)}" x2="{_f(left)}" y2="{_f(bottom)}" '
                f'stroke="{_INK}"/>')
    return _svg(width, bottom + 46, body, axis_label)


def diverging_bar_chart(groups: Sequence[tuple[str, Sequence[float | None]]],
                        series: Sequence[str], *, axis_label: str, fmt: Format,
                        width: float = _WIDTH) -> str:
    """For each ``(label, values)`` group, one thin bar per series (``values[i]`` belongs to
    ``series[i]``) from zero, left when negative; None values are marked "n/a"."""
    present = [v for _, vals in groups for v in vals if v is not None]
    chars = min(32, max((len(label) for label, _ in groups), default=4))
    left = 12 + chars * _CHAR_W
    right = width - 70
    thin, gap = 14.0, 12.0
    row = thin * len(series) + gap
    top = 30.0
    bottom = top + row * len(groups)
    # a gutter between the names and the plot, for the value written left of the longest
    # negative bar
    gutter = 4 + max((len(fmt(v)) * 0.58 * 10 for v in present if v < 0), default=0.0)
    scale = Scale.fit([*present, 0.0], left + gutter, right, zero=True)
    body = _x_axis(scale, top, bottom, fmt, axis_label)
    for k, name in enumerate(series):  # legend
        x = left + k * 150
        body.append(f'<rect x="{_f(x)}" y="6" width="12" height="12" '
                    f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        body.append(_text(x + 16, 16, name, size=11))
    zero = scale(0.0)
    for i, (label, values) in enumerate(groups):
        y = top + i * row + gap / 2
        body.append(_text(left - 6, y + row / 2 - 2, _clip(label, chars), anchor="end"))
        for k, value in enumerate(values):
            yk = y + k * thin
            if value is None:
                body.append(_text(zero + 4, yk + thin - 3, f"{series[k]}: n/a", size=10,
                                  extra=' fill="#888888"'))
                continue
            x = scale(value)
            x0, w = min(x, zero), max(1.0, abs(x - zero))
            body.append(f'<g class="bar"><title>{_e(f"{label}: {series[k]} {fmt(value)}")}'
                        f'</title><rect x="{_f(x0)}" y="{_f(yk + 1)}" width="{_f(w)}" '
                        f'height="{_f(thin - 2)}" fill="{PALETTE[k % len(PALETTE)]}"/></g>')
            tx = x - 4 if value < 0 else x + 4
            body.append(_text(tx, yk + thin - 3, fmt(value), size=10,
                              anchor="end" if value < 0 else "start"))
    body.append(f'<line x1="{_f(zero)}" y1="{_f(top)}" x2="{_f(zero)}" y2="{_f(bottom)}" '
                f'stroke="{_INK}"/>')
    return _svg(width, bottom + 46, body, axis_label)


@dataclass(frozen=True)
class Point:
    """One point of a scatter: ``x``, ``y``, its ``label``, fill ``color`` and hover ``title``."""

    x: float
    y: float
    label: str
    color: str = PALETTE[0]
    title: str = ""


_Box = tuple[float, float, float, float]


def _overlaps(a: _Box, b: _Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(x: float, y: float, text: str, taken: list[_Box],
           area: _Box) -> tuple[float, float, str] | None:
    """A free spot for ``text`` beside the point at ``x, y`` (right, above, below, left), or
    None; the spot found is added to ``taken``."""
    w, h = len(text) * 0.58 * 11 + 2, 12.0
    for dx, dy in ((10, 4), (10, -9), (10, 17), (-10, 4), (-10, -9), (-10, 17), (0, -12),
                   (0, 22)):
        anchor = "start" if dx > 0 else "end" if dx < 0 else "middle"
        tx, ty = x + dx, y + dy
        x0 = tx if dx > 0 else tx - w if dx < 0 else tx - w / 2
        box = (x0, ty - h + 2, x0 + w, ty + 2)
        inside = area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and \
            box[3] <= area[3]
        if inside and not any(_overlaps(box, other) for other in taken):
            taken.append(box)
            return tx, ty, anchor
    return None


def scatter_chart(points: Sequence[Point], front: Sequence[Point], *, x_label: str,
                  y_label: str, x_fmt: Format, y_fmt: Format, log: bool | None = None,
                  width: float = _WIDTH, height: float = 380) -> str:
    """``points`` labelled by name; ``front`` (a subset, in x order) ringed and joined by a
    dashed line. ``log`` None: a log x axis when x spans more than two decades.

    A name that has no free spot beside its point is replaced by a number, which a key under
    the chart names."""
    xs = [p.x for p in points]
    log = spans_decades(xs) if log is None else log
    left, right, top, bottom = 70.0, width - 150, 16.0, height - 50
    xscale = Scale.fit(xs, left, right, log=log)
    yscale = Scale.fit([p.y for p in points], bottom, top)
    body = _x_axis(xscale, top, bottom, x_fmt, _axis_label(x_label, log))
    body += _y_axis(yscale, left, right, y_fmt, y_label)
    if len(front) > 1:
        path = " ".join(f"{_f(xscale(p.x))},{_f(yscale(p.y))}" for p in front)
        body.append(f'<polyline class="front" points="{path}" fill="none" stroke="{_INK}" '
                    'stroke-width="1.5" stroke-dasharray="5 4"/>')
    for p in front:
        body.append(f'<circle cx="{_f(xscale(p.x))}" cy="{_f(yscale(p.y))}" r="10" '
                    f'fill="none" stroke="{_INK}" stroke-width="1.5"/>')
    centres = [(xscale(p.x), yscale(p.y)) for p in points]
    taken: list[_Box] = [(x - 7, y - 7, x + 7, y + 7) for x, y in centres]
    area = (left + 1, top + 1, width - 4, bottom - 1)
    key: list[str] = []
    labels = []
    for p, (x, y) in sorted(zip(points, centres, strict=True), key=lambda pc: pc[1]):
        name = _clip(p.label, 24)
        spot = _place(x, y, name, taken, area)
        if spot is None:
            name = str(len(key) + 1)
            spot = _place(x, y, name, taken, area) or (x + 9, y - 6, "start")
            key.append(f"{name} {p.label}")
        labels.append(_text(spot[0], spot[1], name, anchor=spot[2], size=11))
    for p, (x, y) in zip(points, centres, strict=True):
        title = p.title or f"{p.label}: {x_fmt(p.x)}, {y_fmt(p.y)}"
        body.append(f'<g class="point"><title>{_e(title)}</title><circle cx="{_f(x)}" '
                    f'cy="{_f(y)}" r="6" fill="{_e(p.color)}" stroke="{_INK}" '
                    'stroke-width="0.5"/></g>')
    body += labels
    body.append(f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(right - left)}" '
                f'height="{_f(bottom - top)}" fill="none" stroke="{_INK}"/>')
    lines: list[str] = []
    for entry in key:  # the key, as many entries a line as fit
        if lines and len(lines[-1]) + len(entry) + 5 < (width - left) / (0.58 * 11):
            lines[-1] += f"   {entry}"
        else:
            lines.append(entry)
    for i, line in enumerate(lines):
        body.append(_text(left, height + 4 + i * 16, line, size=11))
    return _svg(width, height + 16 * len(lines) + (8 if lines else 0), body,
                f"{y_label} against {x_label}")


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, x_label: str,
               y_label: str, x_fmt: Format, y_fmt: Format, width: float = _WIDTH,
               height: float = 320, max_points: int = 1500) -> str:
    """One line per series (``name -> [(x, y), ...]`` in x order), a legend above; a series of
    more than ``max_points`` points is thinned evenly. The y axis starts at zero."""
    left, right, top, bottom = 70.0, width - 20, 34.0, height - 50
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    xscale = Scale.fit([*xs, 0.0], left, right, zero=True)
    yscale = Scale.fit([*ys, 0.0], bottom, top, zero=True)
    body = _x_axis(xscale, top, bottom, x_fmt, x_label)
    body += _y_axis(yscale, left, right, y_fmt, y_label)
    for k, (name, pts) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        stride = max(1, math.ceil(len(pts) / max_points))
        kept = list(pts[::stride])
        if kept and kept[-1] != pts[-1]:
            kept.append(pts[-1])
        coords = " ".join(f"{_f(xscale(x))},{_f(yscale(y))}" for x, y in kept)
        body.append(f'<g class="series"><title>{_e(name)}</title>')
        if len(kept) > 1:
            body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                        'stroke-width="2" stroke-linejoin="round"/>')
        body.extend(f'<circle cx="{_f(xscale(x))}" cy="{_f(yscale(y))}" r="2.5" '
                    f'fill="{color}"/>' for x, y in kept if len(kept) <= 60)
        body.append("</g>")
        lx = left + k * 160
        body.append(f'<rect x="{_f(lx)}" y="8" width="12" height="12" fill="{color}"/>')
        body.append(_text(lx + 16, 18, _clip(name, 20), size=11))
    body.append(f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(right - left)}" '
                f'height="{_f(bottom - top)}" fill="none" stroke="{_INK}"/>')
    return _svg(width, height, body, f"{y_label} over {x_label}")
