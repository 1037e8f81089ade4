"""What a first measurement's modules use instead of functools and enum behaves as those do:
wattprint._cache's cache, lru_cache and cached_property, and the Source enumeration."""

from __future__ import annotations

import copy
import enum
import functools
import json
import pickle
from typing import Any

import pytest

from wattprint import _cache
from wattprint.sensors.base import Source


def _counted(decorate: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def square(x: int) -> int:
        """The square of x."""
        calls.append(x)
        return x * x

    return decorate(square), calls


@pytest.mark.parametrize(("ours", "theirs"), [
    (_cache.cache, functools.cache),
    (_cache.lru_cache(maxsize=2), functools.lru_cache(maxsize=2)),
])
def test_the_caches_answer_count_and_clear_as_functools(ours: Any, theirs: Any) -> None:
    for decorate in (ours, theirs):
        square, calls = _counted(decorate)
        assert (square.__name__, square.__doc__) == ("square", "The square of x.")
        assert square.__wrapped__(3) == 9 and calls == [3]  # the function itself, not cached
        calls.clear()
        assert [square(x) for x in (2, 3, 2, 4, 2)] == [4, 9, 4, 16, 4]
        info = square.cache_info()
        if decorate in (_cache.cache, functools.cache):
            assert calls == [2, 3, 4] and tuple(info) == (2, 3, None, 3)
        else:  # two kept: 2 was used last, so 3 went out when 4 came in
            assert calls == [2, 3, 4] and tuple(info) == (2, 3, 2, 2)
        assert info.hits == 2 and info.currsize == info[3]
        square.cache_clear()
        assert square.cache_info().currsize == 0
        square(2)
        assert calls[-1] == 2  # computed again after the clear


@pytest.mark.parametrize("make", [_cache.cached_property, functools.cached_property])
def test_cached_property_computes_once_per_instance_as_functools(make: Any) -> None:
    calls: list[object] = []

    class Box:
        def __init__(self, n: int) -> None:
            self.n = n

        def double(self) -> int:
            """Twice n."""
            calls.append(self)
            return 2 * self.n

        doubled = make(double)

    a, b = Box(1), Box(5)
    assert (a.doubled, a.doubled, b.doubled) == (2, 2, 10)
    assert calls == [a, b]  # once each
    assert a.__dict__["doubled"] == 2
    assert Box.__dict__["doubled"].__doc__ == "Twice n."
    assert isinstance(Box.doubled, make)  # on the class: the descriptor itself
    del a.doubled
    assert a.doubled == 2 and calls == [a, b, a]  # deleted: computed again


def test_source_is_an_enumeration_of_strings_as_the_enum_was() -> None:
    """Source was ``class Source(str, enum.Enum)``: what users could do with it still holds."""
    class Before(str, enum.Enum):
        RAPL = "rapl"
        NVML = "nvml"
        AMDSMI = "amdsmi"
        POWERMETRICS = "powermetrics"
        HWMON = "hwmon"
        ESTIMATE = "estimate"
        FAKE = "fake"

        def __str__(self) -> str:
            return self.value

    assert [(m.name, m.value) for m in Source] == [(m.name, m.value) for m in Before]
    assert len(Source) == len(Before) and list(Source.__members__) == list(Before.__members__)
    for old in Before:
        new = Source[old.name]
        assert new is Source(old.value) is Source(new) is getattr(Source, old.name)
        assert isinstance(new, Source) and isinstance(new, str) and type(new.value) is str
        assert new == old.value and hash(new) == hash(old.value) and new == old
        assert repr(new) == repr(old).replace("Before", "Source")
        assert (str(new), f"{new}", f"{new:>14}") == (str(old), f"{old}", f"{old:>14}")
        assert pickle.loads(pickle.dumps(new)) is new
        assert copy.copy(new) is new and copy.deepcopy(new) is new
        assert json.dumps({new: [new]}) == json.dumps({old.value: [old.value]})
        assert new in Source and new.value in Source
    assert sorted([Source.NVML, Source.AMDSMI]) == [Source.AMDSMI, Source.NVML]
    assert "nope" not in Source and 3 not in Source
    for wrong in ("nope", 3, None):
        with pytest.raises(ValueError, match="is not a valid Source"):
            Source(wrong)
    with pytest.raises(KeyError):
        Source["rapl"]  # by name, as the enum's
    for made in (Source, Before):
        with pytest.raises(AttributeError, match="cannot reassign member"):
            made.RAPL = "x"  # type: ignore[misc]
    assert Source.RAPL == "rapl"
