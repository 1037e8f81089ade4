"""Run-time stand-ins for :func:`functools.cache`, :func:`functools.lru_cache` and
:class:`functools.cached_property`, for the modules a first measurement loads.

:mod:`functools` loads :mod:`collections` (and :mod:`enum` loads :mod:`functools`): without
the three, a first measurement runs 15.4 million instructions fewer, 45.5 million instead of
60.9 over a bare interpreter (callgrind), and they served three names here. The caches
here are functools' own C cache (``_functools._lru_cache_wrapper``, what
:func:`functools.lru_cache` wraps), with ``cache_info`` and ``cache_clear``; the type checker
sees functools' names, as :mod:`wattprint._typing` does for typing's::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from functools import cache, cached_property, lru_cache
    else:
        from ._cache import cache, cached_property, lru_cache
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NamedTuple
else:
    from ._typing import NamedTuple

__all__ = ["cache", "cached_property", "lru_cache"]


class CacheInfo(NamedTuple):
    """What ``cache_info()`` returns (functools' ``CacheInfo``)."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


def _cached(user_function: Callable[..., Any], maxsize: int | None) -> Any:
    """``user_function`` behind a cache of ``maxsize`` entries (None: unbounded), named as it
    is (what :func:`functools.update_wrapper` copies)."""
    try:
        from _functools import _lru_cache_wrapper  # type: ignore[import-not-found]
    except ImportError:  # not CPython: functools itself, then
        import functools

        return functools.lru_cache(maxsize)(user_function)
    wrapper = _lru_cache_wrapper(user_function, maxsize, False, CacheInfo)
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(wrapper, name, getattr(user_function, name))
    wrapper.__dict__.update(user_function.__dict__)
    wrapper.__wrapped__ = user_function
    return wrapper


def cache(user_function: Callable[..., Any]) -> Any:
    """:func:`functools.cache`: every call's result kept, by its arguments."""
    return _cached(user_function, None)


def lru_cache(maxsize: int = 128) -> Callable[[Callable[..., Any]], Any]:
    """:func:`functools.lru_cache` with a size: the last ``maxsize`` calls' results kept."""
    def decorating(user_function: Callable[..., Any]) -> Any:
        return _cached(user_function, maxsize)

    return decorating


class cached_property:
    """:class:`functools.cached_property`: the method's value, computed on first access and
    kept in the instance's ``__dict__`` (where later lookups find it before this descriptor).
    No lock, as functools' has none since Python 3.12."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if self.attrname is None:
            raise TypeError("cannot use cached_property without calling __set_name__ on it")
        value = instance.__dict__[self.attrname] = self.func(instance)
        return value
