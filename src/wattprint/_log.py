"""The package logger. A library logs and does not print; the application configures output."""

from __future__ import annotations

import logging

logger = logging.getLogger("wattprint")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of a wattprint module (a child of the package logger)."""
    return logging.getLogger(name)
