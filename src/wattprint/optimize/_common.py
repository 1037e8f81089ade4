"""What every optimization step shares: the measured window, samples, names and warnings."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from .._log import TORCHAO_IMPORT_LOGGERS as TORCHAO_IMPORT_LOGGERS
from .._log import quiet_loggers as quiet_loggers
from ..errors import ConfigError
from ..measurement import Measurement
from ..meter import EnergyMeter
from ..workloads.model import Model

R = TypeVar("R")

#: At most this many samples calibrate a static quantization or probe a precision.
CALIBRATION_SAMPLES = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

#: ``(category, message regex)`` of vendor deprecation warnings silenced around our own calls.
WarningFilter = tuple[type[Warning], str]
JIT_DEPRECATED: WarningFilter = (DeprecationWarning, r"`torch\.jit\.\w+` is deprecated")
AO_DEPRECATED: WarningFilter = (DeprecationWarning, r"torch\.ao\.quantization is deprecated")
QTENSOR_DEPRECATED: WarningFilter = (
    UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized")
LEGACY_ONNX_DEPRECATED: WarningFilter = (
    DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export")
ONNX_LOG_DEPRECATED: WarningFilter = (
    DeprecationWarning, r"The feature will be removed\. Please remove usage of this function")


@contextlib.contextmanager
def silenced(*filters: WarningFilter) -> Iterator[None]:
    """Ignore exactly these warnings (by category and message) inside the block."""
    with warnings.catch_warnings():
        for category, message in filters:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def measured(meter: EnergyMeter | None, window: str,
             work: Callable[[], R]) -> tuple[R, Measurement]:
    """Run ``work()`` inside one window of ``meter`` (a new ``EnergyMeter()`` when None)."""
    own = meter is None
    used = EnergyMeter() if meter is None else meter
    try:
        with used.window(window) as w:
            result = work()
    finally:
        if own:
            used.close()
    if w.measurement is None:  # pragma: no cover - a closed window always has one
        raise RuntimeError(f"window {window!r} closed without a measurement")
    return result, w.measurement


def check_name(name: str) -> str:
    """A variant name is also a file stem: letters, digits and ``. _ + -``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"a variant name must be letters, digits and . _ + - (it names the "
                          f"file), not {name!r}")
    return name


def variant_path(out_dir: str | os.PathLike[str], name: str, suffix: str) -> Path:
    """``out_dir/name.suffix``, with ``out_dir`` made if missing. An existing file is replaced."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"out_dir {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{check_name(name)}{suffix}"


def wrong_framework(model: Model, what: str, methods: Mapping[str, Sequence[str]]) -> ConfigError:
    """The error for a model whose framework ``what`` does not apply to."""
    framework = getattr(model, "framework", type(model).__name__)
    applies = "; ".join(f"{fw}: {', '.join(ms)}" for fw, ms in methods.items())
    return ConfigError(f"{what} does not apply to {framework} models; it applies to {applies}")


def unknown_method(method: str, framework: str, methods: Sequence[str], what: str,
                   others: Mapping[str, Sequence[str]] | None = None) -> ConfigError:
    """The error for a method that does not apply to this framework, with those that do."""
    elsewhere = ""
    if others:
        where = [fw for fw, ms in others.items() if method in ms and fw != framework]
        if where:
            elsewhere = f" ({method!r} applies to {', '.join(where)} models)"
    return ConfigError(f"{what} method {method!r} does not apply to {framework} models{elsewhere}; "
                       f"{framework} methods: {', '.join(methods)}")


def sample_rows(data: Any, *, limit: int = CALIBRATION_SAMPLES, what: str) -> NDArray[Any]:
    """Up to ``limit`` input rows from a :class:`Dataset` (a stratified sample), ``(x, y)`` or
    an array of samples (the first ``limit``)."""
    if data is None:
        raise ConfigError(f"{what} needs samples: pass a Dataset or an array of inputs")
    if hasattr(data, "x") and callable(getattr(data, "sample", None)):
        x = data.sample(limit).x
    elif isinstance(data, tuple) and len(data) == 2:
        x = data[0]
    else:
        x = data
    try:
        rows = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{what}: samples must be an array of inputs, "
                          f"not {type(x).__name__}") from err
    if rows.ndim == 0 or len(rows) == 0:
        raise ConfigError(f"{what} needs at least one sample, not {rows.shape}")
    return rows[:limit]


def shaped(rows: NDArray[Any], input_shape: tuple[int, ...] | None) -> NDArray[Any]:
    """``rows`` with each sample reshaped to ``input_shape`` (when given)."""
    if input_shape is None:
        return rows
    try:
        return rows.reshape((rows.shape[0], *input_shape))
    except ValueError as err:
        raise ConfigError(f"input_shape {input_shape} does not fit samples of shape "
                          f"{rows.shape[1:]}") from err


def first_line(err: BaseException) -> str:
    """The first line of a vendor error, in at most 300 characters."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."
