"""The package logger. A library logs and does not print; the application configures output."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

_PACKAGE = "wattprint"

#: ``extra=`` of a warning whose news every result it concerns carries already: an estimate's
#: provenance and reason, a sensor's failure (the run is partial, with its error), a run not
#: rated (the star table lists it). The ``wattprint`` command, which shows those results, does
#: not show the record too; an application's own handlers get it as any other.
IN_RESULTS = {"in_results": True}


def _logger(name: str) -> logging.Logger:
    """The standard library's logger of that name; the package logger gets its NullHandler
    (a library's records reach only the handlers the application sets up)."""
    import logging

    package = logging.getLogger(_PACKAGE)
    if not any(isinstance(h, logging.NullHandler) for h in package.handlers):
        package.addHandler(logging.NullHandler())
    return logging.getLogger(name)


class Logger:
    """A module's logger, without importing :mod:`logging` until a record could be shown.

    An application that shows records (a handler, a level, pytest's ``caplog``) has imported
    :mod:`logging`; until it has, nothing could show a record (the package logger's
    NullHandler keeps them from Python's last-resort handler), so a record is dropped without
    the cost of that import. Once :mod:`logging` is loaded, each call goes to the real logger
    of the same name, the caller's file and line kept.
    """

    __slots__ = ("_real", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    @property
    def real(self) -> logging.Logger:
        """The standard library's logger (imports :mod:`logging`)."""
        if self._real is None:
            self._real = _logger(self.name)
        return self._real

    def _emit(self, level: int, msg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if "logging" not in sys.modules:
            return
        kwargs.setdefault("stacklevel", 3)  # the caller of debug/info/..., not this module
        self.real.log(level, msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._emit(10, msg, args, kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._emit(20, msg, args, kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._emit(30, msg, args, kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._emit(40, msg, args, kwargs)


def get_logger(name: str) -> Logger:
    """The logger of a wattprint module (a child of the package logger)."""
    return Logger(name)


#: Loggers that warn while torchao is imported (by transformers' quantizers, and by the int8
#: weight-only method), all of it noise: torchao's own (its C extensions built for other GPUs
#: that fail to load, no triton) and torch's pytree module (its deprecation of torchao
#: registering an enum).
TORCHAO_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_loggers(*names: str) -> _QuietLoggers:
    """Drop these loggers' records below ERROR inside the block (a vendor's noise at import):
    ``with quiet_loggers("torchao"): ...``."""
    return _QuietLoggers(names)


class _QuietLoggers:
    """The context manager :func:`quiet_loggers` returns: a class, not a generator, so that
    this module, which a first measurement loads, does not load :mod:`contextlib`."""

    __slots__ = ("_levels", "_loggers", "_names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names

    def __enter__(self) -> None:
        self._loggers = [_logger(name) for name in self._names]
        self._levels = [logger.level for logger in self._loggers]
        for logger_ in self._loggers:
            logger_.setLevel(40)  # logging.ERROR

    def __exit__(self, *exc: object) -> None:
        for logger_, level in zip(self._loggers, self._levels, strict=True):
            logger_.setLevel(level)
