"""The rich consoles of the CLI and of the printing helpers."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: The width used when output goes to a file or a pipe and ``COLUMNS`` is not set. Rich would
#: use 80 columns there and cut model names short in the tables; nothing wraps a file.
PIPE_WIDTH = 160


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
