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
typing's, for the same reason.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["NamedTuple", "overload"]

#: Names a NamedTuple class body may not define (they are the tuple's own), as in typing.
_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                         "_field_defaults", "_make", "_replace", "_asdict", "_source"})
#: Names of the class body that are not copied onto the tuple class, as in typing.
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    """Makes ``class P(NamedTuple): x: int; y: int = 0`` what :class:`typing.NamedTuple`
    makes of it: a :func:`collections.namedtuple` with the annotated fields in order, their
    defaults, and the body's methods, properties and docstring."""

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
        made = collections.namedtuple(name, fields, defaults=defaults,  # type: ignore[misc]
                                      module=namespace.get("__module__"))
        made.__annotations__ = dict(namespace.get("__annotations__", {}))
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in made._fields:
                setattr(made, key, value)
        return made


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base of a named tuple written as a class (see :class:`typing.NamedTuple`)."""


def overload(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`typing.overload` at run time: the signature is for the type checker, and the
    implementation that follows it replaces it."""
    return func
