"""PyTorch helpers of the optimization steps: checks, samples, TorchScript saving, counts.

torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, ModelError
from ..workloads.loaders import torch_loader
from ..workloads.loaders.torch_loader import TorchModel
from ._common import (
    JIT_DEPRECATED,
    QTENSOR_DEPRECATED,
    first_line,
    sample_rows,
    shaped,
    silenced,
)

if TYPE_CHECKING:
    import torch

#: How many samples a trace (the fall back when a module cannot be scripted) runs on.
TRACE_SAMPLES = 2


def eager_module(model: TorchModel, what: str) -> torch.nn.Module:
    """The model's module, which must be eager: TorchScript cannot be rewritten layer by layer."""
    import torch

    if isinstance(model.module, torch.jit.ScriptModule):
        raise ConfigError(
            f"{what} needs an eager torch.nn.Module, and this model is TorchScript"
            f"{'' if model.path is None else f' ({model.path})'}: load its code instead, as a "
            "state_dict with model_class='package.module:ClassName', or wrap the module with "
            "wattprint.workloads.loaders.torch_loader.from_module")
    return model.module


def clone(module: torch.nn.Module) -> torch.nn.Module:
    """A copy to change, leaving the model given as it was.

    TorchScript is copied through a save and load: ``copy.deepcopy`` of a ScriptModule gives
    parameters that are not autograd leaves.
    """
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        return copy.deepcopy(module)
    buffer = io.BytesIO()
    with silenced(JIT_DEPRECATED):
        torch.jit.save(module, buffer)
        buffer.seek(0)
        copied: torch.nn.Module = torch.jit.load(buffer)  # type: ignore[no-untyped-call]
    return copied


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def batch(model: TorchModel, rows: NDArray[Any], dtype: torch.dtype | None = None,
          device: torch.device | str | None = None) -> torch.Tensor:
    """``rows`` as the model takes them: reshaped to its ``input_shape``, in its input dtype."""
    import torch

    arr = shaped(np.asarray(rows), model.input_shape)
    return torch.as_tensor(arr, dtype=model.input_dtype if dtype is None else dtype,
                           device=model.device if device is None else device)


def probe_rows(model: TorchModel, samples: Any, what: str, limit: int) -> NDArray[Any] | None:
    """Rows to run the model on: from ``samples`` when given, else zeros of the model's
    ``input_shape``; None when neither is known."""
    if samples is not None:
        return sample_rows(samples, limit=limit, what=what)
    if model.input_shape is None:
        return None
    return np.zeros((limit, *model.input_shape), dtype=np.float32)


def save_torchscript(module: torch.nn.Module, path: Path, sample: torch.Tensor | None) -> None:
    """Script the module (trace it on ``sample`` where scripting fails) and save it to ``path``."""
    import torch

    # ValueError: an annotation TorchScript cannot resolve (``from __future__ import
    # annotations`` on a class's buffers); tracing does without annotations.
    script_errors = (torch.jit.frontend.FrontendError, RuntimeError, OSError, TypeError,
                     ValueError)
    with silenced(JIT_DEPRECATED, QTENSOR_DEPRECATED):
        try:
            scripted: Any = torch.jit.script(module)
        except script_errors as err:
            if sample is None:
                raise ModelError(
                    f"the variant cannot be saved as TorchScript: torch.jit.script failed "
                    f"({first_line(err)}), and tracing needs a sample: give samples "
                    "(calibration=) or load the model with input_shape=") from err
            try:
                scripted = torch.jit.trace(module, sample)  # type: ignore[no-untyped-call]
            except (RuntimeError, TypeError, ValueError) as trace_err:
                raise ModelError(f"the variant cannot be saved as TorchScript: neither "
                                 f"scripted ({first_line(err)}) nor traced "
                                 f"({first_line(trace_err)})") from trace_err
        torch.jit.save(scripted, str(path))


def reload(path: Path, like: TorchModel, *, device: str, input_dtype: str) -> TorchModel:
    """The saved variant, loaded back as wattprint loads it, with ``like``'s task and shape.

    Trusted: the TorchScript at ``path`` is what :func:`save_torchscript` just wrote from the
    module already in memory, not a file from elsewhere.
    """
    with silenced(JIT_DEPRECATED, QTENSOR_DEPRECATED):
        variant = torch_loader.load(path, trust=True, task=like.task, device=device,
                                    input_shape=like.input_shape, input_dtype=input_dtype)
    total = count_parameters(variant.module)[0]
    # TorchModel counts module.parameters(), which leaves out the packed weights of
    # quantized layers (an int8 Linear holds no Parameter); count them here.
    variant.num_parameters = total
    return variant


def count_parameters(module: torch.nn.Module) -> tuple[int, int]:
    """``(all, non-zero)`` elements of the module's parameters and packed quantized weights."""
    import torch

    total = nonzero = 0
    for tensor in _weights(module):
        total += tensor.numel()
        nonzero += int(torch.count_nonzero(tensor).item())
    return total, nonzero


def _weights(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    import torch

    with torch.no_grad():
        for param in module.parameters():
            yield param.detach()
        for sub in module.modules():
            packed = getattr(sub, "_packed_params", None)
            if isinstance(packed, torch.ScriptObject):
                yield from _unpacked(packed)


def _unpacked(packed: Any) -> Iterator[torch.Tensor]:
    """The tensors in a quantized layer's packed parameters (weight, bias), as floats."""
    import torch

    if not packed._has_method("unpack"):
        return
    for tensor in packed.unpack():
        if isinstance(tensor, torch.Tensor):
            yield tensor.dequantize() if tensor.is_quantized else tensor
