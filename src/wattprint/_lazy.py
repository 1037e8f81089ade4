"""Lazy exports for the package's ``__init__`` modules: a name loads its module on first use,
so that importing a package stays cheap (no torch, pandas or onnxruntime until asked for)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing: importing typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, MutableMapping
    from types import ModuleType
    from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str], namespace: MutableMapping[str, Any],
    names: Iterable[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``.

    ``table`` maps each lazy name to the module (relative to ``package``) that defines it;
    ``namespace`` is the package's ``globals()``, where a loaded name is kept so that later
    lookups skip ``__getattr__``; ``names`` is ``__all__``.
    """
    listed = set(names)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | listed)

    return __getattr__, __dir__


def import_module(name: str, package: str) -> ModuleType:
    """:func:`importlib.import_module`: the module ``name``, relative to ``package`` where it
    starts with dots (``".meter"``, ``"..sensors.hardware"``), imported if it is not yet.
    :mod:`importlib` itself is not loaded for it (it loads :mod:`warnings`, which a first
    measurement need not)."""
    level = len(name) - len(name.lstrip("."))
    if level:
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        name = f"{base}.{name[level:]}" if name[level:] else base
    module = sys.modules.get(name)
    if module is None:
        __import__(name)
        module = sys.modules[name]
    return module


def installed(name: str) -> bool:
    """Whether the top-level module ``name`` is loaded or could be imported, without importing
    it: :func:`importlib.util.find_spec`'s answer, asked of the import system's finders
    directly (``importlib.util`` loads :mod:`contextlib`, which a first measurement need not).
    The package asks this wherever it needs to know whether an optional module is there."""
    if name in sys.modules:
        return sys.modules[name] is not None  # None: made unimportable on purpose
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and find_spec(name, None) is not None:
            return True
    return False
