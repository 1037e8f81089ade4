"""wattprint: what machine-learning work really costs in energy, carbon and water."""

from __future__ import annotations

import logging

from ._version import __version__
from .sensors import FakeSensor

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["FakeSensor", "__version__"]
