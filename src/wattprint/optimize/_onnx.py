"""ONNX helpers of the optimization steps: the source file, feeds, calibration, errors.

onnx and onnxruntime are imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ..workloads.loaders import onnx_loader
from ..workloads.loaders.onnx_loader import OnnxModel
from ._common import shaped

#: Calibration samples go to onnxruntime in batches of this many (where the batch axis is free).
CALIBRATION_BATCH = 32


def source(model: OnnxModel, what: str) -> Path:
    """The ONNX file the model was loaded from: the optimizers read the graph from it."""
    if model.path is None or not model.path.is_file():
        raise ConfigError(f"{what} reads the model's ONNX file, and this model has none (it was "
                          "made in memory): save it to a .onnx file and load that")
    return model.path


def feeds(model: OnnxModel, rows: NDArray[Any]) -> list[dict[str, NDArray[Any]]]:
    """``rows`` as onnxruntime feeds of the model's single input, in batches."""
    if len(model.inputs) != 1:
        raise ConfigError(f"calibrating needs a model with one input; this one has "
                          f"{len(model.inputs)}: {', '.join(i.name for i in model.inputs)}")
    spec = model.inputs[0]
    arr = shaped(np.asarray(rows), model.input_shape)
    try:
        arr = arr.astype(np.dtype(spec.dtype), copy=False)
    except TypeError as err:
        raise ConfigError(f"cannot calibrate input {spec.name!r} of type {spec.dtype}") from err
    first = spec.shape[0] if spec.shape else None
    fixed = first if isinstance(first, int) and first > 0 else None
    if fixed is not None:
        # The model takes batches of exactly ``fixed``: whole batches only, the rest dropped.
        if len(arr) < fixed:
            raise ConfigError(f"input {spec.name!r} takes batches of exactly {fixed}; "
                              f"give at least {fixed} samples, not {len(arr)}")
        return [{spec.name: arr[i:i + fixed]}
                for i in range(0, len(arr) - len(arr) % fixed, fixed)]
    if len(arr) == 0:
        raise ConfigError(f"calibrating input {spec.name!r} needs at least one sample")
    # A free batch axis takes any batch: the last one may be short.
    return [{spec.name: arr[i:i + CALIBRATION_BATCH]}
            for i in range(0, len(arr), CALIBRATION_BATCH)]


class CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` protocol (``get_next`` returns a feed, then
    None) over prepared feeds; onnxruntime's abstract class recognises it by that method."""

    def __init__(self, batches: list[dict[str, NDArray[Any]]]) -> None:
        self._batches = batches
        self._next: Iterator[dict[str, NDArray[Any]]] = iter(batches)

    def get_next(self) -> dict[str, NDArray[Any]] | None:
        return next(self._next, None)

    def __len__(self) -> int:
        return len(self._batches)


def reload(path: Path, like: OnnxModel) -> OnnxModel:
    """The saved variant, loaded back with ``like``'s task, input shape and providers."""
    return onnx_loader.load(path, task=like.task, input_shape=like.input_shape,
                            providers=list(like.providers))


@functools.cache
def errors() -> tuple[type[Exception], ...]:
    """What onnx and onnxruntime's quantization tools raise on a graph they cannot handle."""
    import onnx
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = tuple(v for v in vars(state).values()
                if isinstance(v, type) and issubclass(v, Exception))
    return (*own, onnx.checker.ValidationError, RuntimeError, ValueError, TypeError, KeyError,
            OSError)

