"""NumPy, which the core does without: models, datasets, sweeps and optimizations need it."""

from __future__ import annotations

import importlib.util

from .errors import MissingExtra


def require_numpy(what: str) -> None:
    """Raise :class:`~wattprint.errors.MissingExtra` naming ``what`` when NumPy is not
    installed (it comes with every framework's extra, or alone with ``wattprint[numpy]``)."""
    if importlib.util.find_spec("numpy") is None:
        raise MissingExtra(what, "numpy")
