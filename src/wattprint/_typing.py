"""Run-time stand-ins for the two :mod:`typing` names that a first measurement's modules use
when running, not only when type-checked: ``NamedTuple`` and ``overload``.

Importing :mod:`typing` costs a first measurement about 6 ms (a tenth of the 50 ms that
``import wattprint`` + ``EnergyMeter()`` + one window may take), for names that otherwise
serve only the type checker. Those modules import typing's names under ``TYPE_CHECKING`` and
these at run time::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple, overload
    else:
        from ._typing import NamedTuple, overload

so that the type checker sees typing's own. ``TYPE_CHECKING`` is a module constant, not
typing's, for the same reason. The named tuple classes are made as
:func:`collections.namedtuple` makes them, but without compiling source for each (see
:func:`_namedtuple`).
"""

from __future__ import annotations

import sys
from types import FunctionType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    def _tuplegetter(index: int, doc: str) -> Any: ...
else:
    try:
        from _collections import _tuplegetter
    except ImportError:  # not CPython: what collections itself falls back on
        from operator import itemgetter

        def _tuplegetter(index, doc):
            return property(itemgetter(index), doc=doc)

__all__ = ["NamedTuple", "overload"]

#: Names a NamedTuple class body may not define (they are the tuple's own), as in typing.
_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                         "_field_defaults", "_make", "_replace", "_asdict", "_source"})
#: Names of the class body that are not copied onto the tuple class, as in typing.
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


_new = tuple.__new__

#: A named tuple's ``__new__`` for 1 to 16 fields: :func:`collections.namedtuple`'s, written
#: out. namedtuple compiles each class's with ``eval``: for a first measurement's 22 classes,
#: 5.9 of the 68.6 million instructions it ran over a bare interpreter (callgrind).
#: :func:`_namedtuple` gives a copy of one of these the class's field names instead. Letters,
#: not ``l``: ruff's E741.
_NEW_BY_SIZE = (
    lambda _cls, a: _new(_cls, (a,)),
    lambda _cls, a, b: _new(_cls, (a, b)),
    lambda _cls, a, b, c: _new(_cls, (a, b, c)),
    lambda _cls, a, b, c, d: _new(_cls, (a, b, c, d)),
    lambda _cls, a, b, c, d, e: _new(_cls, (a, b, c, d, e)),
    lambda _cls, a, b, c, d, e, f: _new(_cls, (a, b, c, d, e, f)),
    lambda _cls, a, b, c, d, e, f, g: _new(_cls, (a, b, c, d, e, f, g)),
    lambda _cls, a, b, c, d, e, f, g, h: _new(_cls, (a, b, c, d, e, f, g, h)),
    lambda _cls, a, b, c, d, e, f, g, h, i: _new(_cls, (a, b, c, d, e, f, g, h, i)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j: _new(_cls, (a, b, c, d, e, f, g, h, i, j)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k, m)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p)),
    lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q: _new(
        _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q)),
)


def _namedtuple(typename: str, fields: tuple[str, ...], defaults: list[Any],
                module: str | None) -> type:
    """What ``collections.namedtuple(typename, fields, defaults=defaults, module=module)``
    makes (fields named as a class body's annotations name them), without compiling
    ``__new__`` from source: see :data:`_NEW_BY_SIZE`. More than 16 fields, or none, go to
    :func:`collections.namedtuple` itself."""
    size = len(fields)
    if not 0 < size <= len(_NEW_BY_SIZE):
        import collections

        return collections.namedtuple(typename, fields, defaults=defaults, module=module)
    for field in fields:
        if field.startswith("_"):
            raise ValueError(f"Field names cannot start with an underscore: {field!r}")
    typename = sys.intern(typename)
    fields = tuple(map(sys.intern, fields))
    arg_list = ", ".join(fields) + ("," if size == 1 else "")
    repr_fmt = "(" + ", ".join(f"{name}=%r" for name in fields) + ")"
    template: Any = _NEW_BY_SIZE[size - 1]
    __new__ = FunctionType(template.__code__.replace(co_varnames=("_cls", *fields)),
                           template.__globals__, "__new__", tuple(defaults))
    __new__.__doc__ = f"Create new instance of {typename}({arg_list})"

    def _make(cls: type, iterable: Iterable[Any]) -> Any:
        result: tuple[Any, ...] = _new(cls, iterable)
        if len(result) != size:
            raise TypeError(f"Expected {size} arguments, got {len(result)}")
        return result

    _make.__doc__ = f"Make a new {typename} object from a sequence or iterable"

    def _replace(self: Any, /, **kwds: Any) -> Any:
        result = self._make(map(kwds.pop, fields, self))
        if kwds:
            raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
        return result

    _replace.__doc__ = f"Return a new {typename} object replacing specified fields with new values"

    def __repr__(self: tuple[Any, ...]) -> str:
        "Return a nicely formatted representation string"
        return self.__class__.__name__ + repr_fmt % self

    def _asdict(self: Any) -> dict[str, Any]:
        "Return a new dict which maps field names to their values."
        return dict(zip(self._fields, self, strict=True))

    def __getnewargs__(self: tuple[Any, ...]) -> tuple[Any, ...]:
        "Return self as a plain tuple.  Used by copy and pickle."
        return tuple(self)

    for method in (__new__, _make, _replace, __repr__, _asdict, __getnewargs__):
        method.__qualname__ = f"{typename}.{method.__name__}"
    namespace: dict[str, Any] = {
        "__doc__": f"{typename}({arg_list})", "__slots__": (), "_fields": fields,
        "_field_defaults": dict(zip(fields[size - len(defaults):], defaults, strict=True)),
        "__new__": __new__, "_make": classmethod(_make), "_replace": _replace,
        "__repr__": __repr__,
        "_asdict": _asdict, "__getnewargs__": __getnewargs__, "__match_args__": fields,
    }
    for index, name in enumerate(fields):
        namespace[name] = _tuplegetter(index, sys.intern(f"Alias for field number {index}"))
    made = type(typename, (tuple,), namespace)
    if module is not None:
        made.__module__ = module
    return made


class _NamedTupleMeta(type):
    """Makes ``class P(NamedTuple): x: int; y: int = 0`` what :class:`typing.NamedTuple`
    makes of it: a :func:`collections.namedtuple` with the annotated fields in order, their
    defaults, and the body's methods, properties and docstring (made by :func:`_namedtuple`)."""

    def __new__(mcls, name: str, bases: tuple[type, ...],
                namespace: dict[str, Any]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcls, name, bases, namespace)
        if bases != (NamedTuple,):
            raise TypeError("a NamedTuple class can only derive from NamedTuple")
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = []
        for field in fields:
            if field in namespace:
                defaults.append(namespace[field])
            elif defaults:
                raise TypeError(f"non-default field {field!r} cannot follow a default field")
        made = _namedtuple(name, fields, defaults, namespace.get("__module__"))
        made.__annotations__ = dict(namespace.get("__annotations__", {}))
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in fields:
                setattr(made, key, value)
        return made


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base of a named tuple written as a class (see :class:`typing.NamedTuple`)."""


def overload(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`typing.overload` at run time: the signature is for the type checker, and the
    implementation that follows it replaces it."""
    return func
