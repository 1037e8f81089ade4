"""The data files shipped in ``wattprint/data`` (licences in ``data/NOTICE.md``).

Read with a plain ``open`` next to this module: ``importlib.resources`` would add more than
ten milliseconds of imports to the first measurement, and wattprint is never run from a zip.
"""

from __future__ import annotations

import os

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def read_text(name: str) -> str:
    """The text of the shipped data file ``name``."""
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as f:
        return f.read()
