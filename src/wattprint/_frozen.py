"""Immutable records written by hand: the records a first measurement makes.

:mod:`dataclasses` costs a first measurement about 10 ms (it imports :mod:`inspect`, with
:mod:`ast`, :mod:`dis` and :mod:`tokenize`, and generates each class's methods with ``exec``),
a fifth of what ``import wattprint`` + ``EnergyMeter()`` + one window may take. The records on
that path (:class:`~wattprint.Measurement`, :class:`~wattprint.measurement.ComponentEnergy`,
:class:`~wattprint.Site`, :class:`~wattprint.footprint.Footprint`,
:class:`~wattprint.sensors.Detected`) derive from :class:`Frozen` instead: the same
behaviour as a frozen dataclass (keyword construction, ``repr``, equality and hashing by
fields, no assignment, pickling), each writing its own ``__init__``. ``replace`` gives a copy
with some fields changed, as :func:`dataclasses.replace` does.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    F = TypeVar("F", bound="Frozen")

__all__ = ["Frozen", "FrozenInstanceError"]

_set = object.__setattr__


class FrozenInstanceError(AttributeError):
    """Assigning to or deleting a field of a record, which never changes once made."""


class Frozen:
    """Base of an immutable record whose fields are named, in order, by ``_fields``.

    A subclass sets its fields in ``__init__`` with :func:`object.__setattr__` (or in its
    ``__dict__``); fields in ``_hidden`` are left out of ``repr``, as ``field(repr=False)``.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _hidden: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: "
                                  f"a {type(self).__name__} never changes once made")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: "
                                  f"a {type(self).__name__} never changes once made")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields
                          if name not in self._hidden)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._values()))

    def replace(self: F, **changes: Any) -> F:
        """A copy with ``changes`` (field names to new values), checked as a new record is."""
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {unknown[0]!r}")
        return type(self)(**{**dict(zip(self._fields, self._values(), strict=True)),
                             **changes})


def _rebuild(cls: type[F], values: tuple[Any, ...]) -> F:
    """A record from its fields' values, as pickled (not checked again: it was when made)."""
    made = object.__new__(cls)
    for name, value in zip(cls._fields, values, strict=True):
        _set(made, name, value)
    return made
