"""Optimization steps: a model in, a variant out, and the energy of making it measured.

* :func:`quantize`: int8 dynamic, fp16, bf16 (torch); int8 dynamic, int8 static, fp16 (ONNX);
* :func:`prune`: L1 unstructured and L2 structured pruning of torch Linear/Conv weights;
* :func:`export_onnx`: a torch model to ONNX;
* :func:`effective_parameters`: the non-zero parameters of a torch or ONNX model.

Each step saves the variant to disk, loads it back, and returns an
:class:`OptimizationResult` with its size on disk, parameter counts and the
:class:`~wattprint.Measurement` of the step. Frameworks are imported only when a step runs.
"""

from __future__ import annotations

from .._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .export import export_onnx
    from .params import effective_parameters
    from .pruning import prune
    from .quantization import quantize
    from .result import OptimizationResult

_LAZY = {
    "OptimizationResult": ".result",
    "effective_parameters": ".params",
    "export_onnx": ".export",
    "prune": ".pruning",
    "quantize": ".quantization",
}

__all__ = ["OptimizationResult", "effective_parameters", "export_onnx", "prune", "quantize"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
