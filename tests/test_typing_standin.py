"""wattprint._typing's NamedTuple makes what typing.NamedTuple makes of the same class body."""

from __future__ import annotations

import pickle
import typing

import pytest

from wattprint import _typing


def _point(base: typing.Any) -> typing.Any:
    class Point(base):  # type: ignore[misc,valid-type]
        """A point, with a default."""

        x: int
        y: int = 3
        #: a comment line, as the records have
        label: str = "p"

        @property
        def norm1(self) -> int:
            return abs(self.x) + abs(self.y)

        def moved(self, dx: int) -> Point:
            return self._replace(x=self.x + dx)

        @classmethod
        def origin(cls) -> Point:
            return cls(0, 0)

        @staticmethod
        def unit() -> int:
            return 1

    return Point


def test_the_standin_makes_what_typing_makes() -> None:
    ours, theirs = _point(_typing.NamedTuple), _point(typing.NamedTuple)
    assert ours._fields == theirs._fields == ("x", "y", "label")
    assert ours._field_defaults == theirs._field_defaults == {"y": 3, "label": "p"}
    assert ours.__doc__ == theirs.__doc__ == "A point, with a default."
    assert typing.get_type_hints(ours) == typing.get_type_hints(theirs) == {
        "x": int, "y": int, "label": str}
    assert (ours.__qualname__, ours.__module__) == (theirs.__qualname__, theirs.__module__)
    assert ours.__mro__[1:] == theirs.__mro__[1:] == (tuple, object)
    a, b = ours(1, label="q"), theirs(1, label="q")
    assert a == b == (1, 3, "q") and repr(a) == repr(b)
    assert a.norm1 == b.norm1 == 4
    assert a.moved(2) == b.moved(2) == (3, 3, "q")
    assert ours.origin() == theirs.origin() == (0, 0, "p")
    assert ours.unit() == theirs.unit() == 1
    assert a._asdict() == b._asdict()
    with pytest.raises(TypeError):
        ours()  # x has no default, as with typing's
    with pytest.raises(AttributeError):
        a.x = 2  # type: ignore[misc]


def test_a_record_made_by_the_standin_pickles_by_its_name() -> None:
    from wattprint.sensors.base import MissingSensor

    assert type(MissingSensor) is type  # a plain named tuple class, not a metaclass's
    missing = MissingSensor("nvml", "no driver", "install it")
    assert pickle.loads(pickle.dumps(missing)) == missing


def test_the_standin_refuses_what_typing_refuses() -> None:
    for base in (_typing.NamedTuple, typing.NamedTuple):
        with pytest.raises(TypeError):
            class Bad(base):  # type: ignore[misc,valid-type]
                a: int = 0
                b: int
        with pytest.raises(AttributeError):
            class Worse(base):  # type: ignore[misc,valid-type]
                a: int

                def _asdict(self) -> dict[str, int]:
                    return {}

    with pytest.raises(TypeError):
        class Mixed(_typing.NamedTuple, int):  # type: ignore[misc]
            a: int
