"""Reports of stored runs: one self-contained HTML page per sweep, and energy labels.

::

    from wattprint.report import write_label, write_report

    write_report("wattprint.db", out="report.html")          # the latest sweep
    write_label("cnn:int8-dynamic", db="wattprint.db", out="cnn-int8.svg")

The page opens offline (inline CSS, charts as inline SVG, nothing fetched). A label is an SVG
card, or a PNG one with the ``images`` extra (Pillow). Importing this package is cheap: the
modules behind the names load on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

TYPE_CHECKING = False  # not from typing: keep the import of this package cheap
if TYPE_CHECKING:
    from .html import write_report
    from .label import write_label

__all__ = ["write_label", "write_report"]

_LAZY = {"write_report": ".html", "write_label": ".label"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
