"""The rich consoles of the CLI and of the printing helpers."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: The width used when output goes to a file or a pipe and ``COLUMNS`` is not set. Rich would
#: use 80 columns there and cut model names short in the tables; nothing wraps a file.
PIPE_WIDTH = 160


#: What a terminal must not be sent raw from a name or message: C0 and C1 control characters
#: (ESC starts colour, cursor and title sequences; NUL, BEL, backspace and carriage return
#: hide or overwrite text), DEL, and the Unicode marks that reorder or hide text (bidi
#: embeddings, overrides and isolates, the line and paragraph separators, zero-width chars).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def printable(text: object, *, newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: control characters and bidi marks are shown as
    escapes (``\\x1b``, ``\\u202e``), as ``repr`` shows them; ``newlines=True`` keeps line
    breaks (for messages of several lines). Names from configs and stores pass through this
    before they reach a terminal."""
    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        if newlines and ch == "\n":
            return ch
        code = ord(ch)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, str(text))


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width on a terminal; ``COLUMNS``, else
    :data:`PIPE_WIDTH`, when the output is redirected."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not _isatty(stream) and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False
