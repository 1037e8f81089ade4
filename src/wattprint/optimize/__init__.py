"""Optimization steps: a model in, a variant out, and the energy of making it measured.

* :func:`quantize`: int8 dynamic, fp16, bf16 (torch and Hugging Face transformers models, GPT-2's
  Conv1D layers included); int8 dynamic, int8 static, fp16 (ONNX);
* :func:`prune`: L1 unstructured and L2 structured pruning of the Linear/Conv weights of torch
  and transformers models;
* :func:`export_onnx`: a torch model to ONNX;
* :func:`export_torchscript`: a torch model to TorchScript, the form its torch variants are
  measured in (measure the parent in it too);
* :func:`effective_parameters`: the non-zero parameters of a torch, ONNX or transformers model.

Each step saves the variant to disk and returns an :class:`OptimizationResult` with its size on
disk, parameter counts and the :class:`~wattprint.Measurement` of the step; torch and ONNX
variants are loaded back from what was saved, transformers variants are kept as made (an int8
transformers variant's folder records it, and does not load back). Frameworks are imported only
when a step runs.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .._numpy import require_numpy

require_numpy("optimizing models")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .export import export_onnx, export_torchscript
    from .params import effective_parameters
    from .pruning import prune
    from .quantization import quantize
    from .result import OptimizationResult

_LAZY = {
    "OptimizationResult": ".result",
    "effective_parameters": ".params",
    "export_onnx": ".export",
    "export_torchscript": ".export",
    "prune": ".pruning",
    "quantize": ".quantization",
}

__all__ = ["OptimizationResult", "effective_parameters", "export_onnx", "export_torchscript",
           "prune", "quantize"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
