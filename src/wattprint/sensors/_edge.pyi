"""wattprint's native edge reader (``_edge.c``); built at install where a C compiler is found."""

from collections.abc import Sequence

API: int

def read_counters(sensors: Sequence[object], /) -> tuple[int, ...] | None: ...
