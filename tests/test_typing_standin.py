"""wattprint._typing's NamedTuple makes what typing.NamedTuple makes of the same class body."""

from __future__ import annotations

import copy
import inspect
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


def _both(size: int) -> tuple[typing.Any, typing.Any]:
    """A class of ``size`` int fields, the second half with defaults, made by our NamedTuple
    and by typing's from the same source."""
    lines = [f"    f{i}: int" + (f" = {i * 10}" if i >= size // 2 else "") for i in range(size)]
    made = []
    for base in (_typing.NamedTuple, typing.NamedTuple):
        namespace: dict[str, typing.Any] = {"Base": base, "__name__": __name__}
        exec("class P(Base):\n" + "\n".join(lines) + "\n", namespace)
        made.append(namespace["P"])
    return made[0], made[1]


@pytest.mark.parametrize("size", [1, 2, 5, 14, 16, 17])
def test_the_standin_makes_what_typing_makes_at_every_size(size: int) -> None:
    """Up to 16 fields the class's ``__new__`` is a copy of one written out, not compiled
    from source as collections.namedtuple does; past that collections makes it. Either way
    the class is typing's, attribute for attribute."""
    ours, theirs = _both(size)
    assert ours._fields == theirs._fields and ours.__match_args__ == theirs.__match_args__
    assert ours._field_defaults == theirs._field_defaults
    def parameters(cls: typing.Any) -> list[tuple[str, object, object]]:
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()]

    assert parameters(ours) == parameters(theirs)  # typing annotates them too: not compared
    for name in ("__new__", "_make", "_replace", "__repr__", "_asdict", "__getnewargs__"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a.__qualname__, a.__doc__) == (b.__qualname__, b.__doc__), name
    assert ours.__new__.__defaults__ == theirs.__new__.__defaults__
    assert [getattr(ours, f).__doc__ for f in ours._fields] == [
        getattr(theirs, f).__doc__ for f in theirs._fields]
    first = size // 2 or 1  # the fields without a default, and one with, if any
    values = list(range(100, 100 + first))
    a, b = ours(*values), theirs(*values)
    assert tuple(a) == tuple(b) and repr(a) == repr(b) and a._asdict() == b._asdict()
    assert ours(**{f"f{i}": v for i, v in enumerate(values)}) == a
    assert a._replace(f0=7) == b._replace(f0=7) and type(a._replace(f0=7)) is ours
    assert copy.copy(a) == a and a.__getnewargs__() == b.__getnewargs__()
    assert ours._make(tuple(a)) == a
    for made in (ours, theirs):
        with pytest.raises(TypeError, match="Expected"):
            made._make(tuple(a)[:-1])
        with pytest.raises(ValueError, match="unexpected field names"):
            made(*values)._replace(nope=1)
        with pytest.raises(TypeError):
            made(*range(size + 1))  # one value too many
    match a:
        case ours(f0=v):
            assert v == 100
        case _:
            pytest.fail("the class's __match_args__ did not match")


def test_the_standin_refuses_a_field_named_with_an_underscore() -> None:
    for base in (_typing.NamedTuple, typing.NamedTuple):
        with pytest.raises(ValueError, match="underscore"):
            class Hidden(base):  # type: ignore[misc,valid-type]
                _a: int
