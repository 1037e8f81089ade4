"""Shared bits of the benchmark scripts."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The fake powercap tree builder lives with the tests.
sys.path.insert(0, str(ROOT / "tests"))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER FLOOR"
