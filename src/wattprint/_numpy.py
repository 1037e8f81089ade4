"""NumPy, which the core does without: models, datasets, sweeps and optimizations need it."""

from __future__ import annotations

from ._lazy import installed
from .errors import MissingExtra


def require_numpy(what: str) -> None:
    """Raise :class:`~wattprint.errors.MissingExtra` naming ``what`` when NumPy is not
    installed (it comes with every framework's extra, or alone with ``wattprint[numpy]``)."""
    if not installed("numpy"):
        raise MissingExtra(what, "numpy")
