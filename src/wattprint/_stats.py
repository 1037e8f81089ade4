"""The statistics of a model's repetitions: their range and the Student t 95 % interval of
their mean, and whether two models' intervals overlap. Pure functions; no SciPy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .errors import ConfigError

__all__ = ["Spread", "overlap", "spread", "t_quantile_975"]


@dataclass(frozen=True)
class Spread:
    """The spread of a model's repetitions' energy per 1000 queries."""

    low: float
    high: float
    ci95_low: float | None
    ci95_high: float | None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95 % interval of the mean, None for one repetition."""
        if self.ci95_low is None or self.ci95_high is None:
            return None
        return self.ci95_low, self.ci95_high


@lru_cache(maxsize=256)
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` (>= 1) degrees of freedom: the factor of
    a two-sided 95 % interval (``t_quantile_975(2) == 4.30265...``).

    Solved by bisection on the exact distribution function for integer ``df`` (Abramowitz
    and Stegun 26.7.3-4), to the last bits of a float; no SciPy.
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ConfigError(f"degrees of freedom must be an int >= 1, not {df!r}")
    low, high = 0.0, 2.0
    while _t_central_mass(high, df) < 0.95:
        low, high = high, 2.0 * high
    while True:
        middle = (low + high) / 2
        if middle in (low, high):
            return high
        if _t_central_mass(middle, df) < 0.95:
            low = middle
        else:
            high = middle


def _t_central_mass(t: float, df: int) -> float:
    """``P(|T| < t)`` for Student's t with integer ``df`` degrees of freedom."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2.0 * theta / math.pi
        term = total = math.cos(theta)
        for j in range(1, (df - 1) // 2):
            term *= (2 * j) / (2 * j + 1) * c2
            total += term
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    term = total = 1.0
    for j in range(1, (df - 2) // 2 + 1):
        term *= (2 * j - 1) / (2 * j) * c2
        total += term
    return math.sin(theta) * total


def spread(values: Sequence[float], *, lowest: float | None = None) -> Spread:
    """Min, max and the Student t 95 % interval of the mean of ``values`` (n >= 2).

    ``lowest`` is the least value the quantity can take (0 for an energy): the interval does
    not reach below it (two repetitions far apart give a wide interval, and an energy of
    -60 µWh would be no figure at all)."""
    n = len(values)
    if n < 2:
        return Spread(min(values), max(values), None, None)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    low = mean - half if lowest is None else max(lowest, mean - half)
    return Spread(min(values), max(values), low, mean + half)


def overlap(a: Spread, a_mean: float, b: Spread, b_mean: float) -> bool:
    """Whether the intervals of two models overlap; a model with one repetition counts as its
    single figure, and two such models are never said to overlap."""
    if a.interval is None and b.interval is None:
        return False
    a_low, a_high = a.interval or (a_mean, a_mean)
    b_low, b_high = b.interval or (b_mean, b_mean)
    return a_low <= b_high and b_low <= a_high
