"""The package logger. A library logs and does not print; the application configures output."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger("wattprint")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of a wattprint module (a child of the package logger)."""
    return logging.getLogger(name)


#: Loggers that warn while torchao is imported (by transformers' quantizers, and by the int8
#: weight-only method), all of it noise: torchao's own (its C extensions built for other GPUs
#: that fail to load, no triton) and torch's pytree module (its deprecation of torchao
#: registering an enum).
TORCHAO_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Drop these loggers' records below ERROR inside the block (a vendor's noise at import)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger_ in loggers:
        logger_.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger_, level in zip(loggers, levels, strict=True):
            logger_.setLevel(level)
