"""How many of a model's parameters are not zero."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError, ModelError
from ..workloads.model import Model

if TYPE_CHECKING:
    from ..workloads.loaders.onnx_loader import OnnxModel

__all__ = ["effective_parameters"]


def effective_parameters(model: Model) -> int:
    """The number of non-zero parameters of ``model``.

    torch and Hugging Face transformers: non-zero elements of the module's parameters and of
    the packed weights of its quantized layers (compared after dequantizing). ONNX: non-zero
    stored values of the graph's initializers (weights, biases, and the scales and zero points
    of a quantized graph), read from the model's file, external data included. Other
    frameworks are a :class:`~wattprint.errors.ConfigError`.
    """
    from ..workloads.loaders.onnx_loader import OnnxModel
    from ..workloads.loaders.torch_loader import TorchModel
    from ..workloads.loaders.transformers_loader import TransformersModel

    if isinstance(model, TorchModel):
        from ._torch import count_parameters

        return count_parameters(model.module)[1]
    if isinstance(model, OnnxModel):
        return _onnx_nonzero(model)
    if isinstance(model, TransformersModel):
        from ._torch import count_parameters

        return count_parameters(model.module)[1]
    framework = getattr(model, "framework", type(model).__name__)
    raise ConfigError(f"effective_parameters counts torch and onnx models (and Hugging Face "
                      f"transformers ones), not {framework}")


def _onnx_nonzero(model: OnnxModel) -> int:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from ._onnx import errors, source

    path = source(model, "effective_parameters")
    try:
        proto = onnx.load(str(path))
        arrays = [numpy_helper.to_array(t) for t in proto.graph.initializer]
        arrays += [numpy_helper.to_array(s.values) for s in proto.graph.sparse_initializer]
    except errors() as err:
        raise ModelError(f"{path}: cannot read its initializers: {err}") from err
    return sum(int(np.count_nonzero(a)) for a in arrays)
