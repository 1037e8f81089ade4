"""What the built-in loaders share: their error for a model that cannot be loaded, the check of
a model file, the check of loader options, and cleaning a vendor's error text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigError, ModelError
from ..registry import supported_formats

#: Terminal colour codes, which some frameworks put in their error messages.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def model_error(where: Path | str, reason: str, *, as_what: str | None = None,
                formats: bool = True) -> ModelError:
    """``"WHERE: [cannot be loaded as AS_WHAT: ]REASON. Supported: ..."``; without the
    formats supported (``formats=False``) where they are not what went wrong (a download)."""
    lead = f"{where}: " if as_what is None else f"{where}: cannot be loaded as {as_what}: "
    tail = f" Supported: {supported_formats()}" if formats else ""
    return ModelError(f"{lead}{reason.rstrip('. ')}.{tail}")


def model_file_size(path: Path) -> int:
    """The size of the model file; a ModelError when there is none, or it is empty."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise model_error(path, f"cannot read the file: {err.strerror or err}") from err
    if not path.is_file():
        raise model_error(path, "not a file")
    if size == 0:
        raise model_error(path, "the file is empty")
    return size


def check_options(options: Mapping[str, Any], known: tuple[str, ...], what: str,
                  *, where: Path | str | None = None) -> None:
    """A ConfigError naming the ``options`` a loader for ``what`` does not know, and the
    ``known`` ones."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        prefix = "" if where is None else f"{where}: "
        raise ConfigError(f"{prefix}unknown option(s) for {what}: {', '.join(unknown)}; "
                          f"known: {', '.join(known)}")
