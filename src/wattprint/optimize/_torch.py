"""PyTorch helpers of the optimization steps: checks, samples, TorchScript saving, counts.

torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import copy
import importlib
import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .._files import write_bytes
from ..errors import ConfigError, MissingExtra, ModelError
from ..workloads.loaders import torch_loader
from ..workloads.loaders.torch_loader import TorchModel
from ._common import (
    JIT_DEPRECATED,
    QTENSOR_DEPRECATED,
    TORCHAO_IMPORT_LOGGERS,
    first_line,
    quiet_loggers,
    sample_rows,
    shaped,
    silenced,
)
from .result import OptimizationResult

if TYPE_CHECKING:
    import torch

    from ..measurement import Measurement

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


def int8_weight_only() -> Callable[[torch.nn.Module], None]:
    """torchao's int8 weight-only quantization, as a function that quantizes every
    ``nn.Linear`` of a module in place (its weight becomes a torchao int8 tensor, per output
    channel scales; activations stay float). :class:`~wattprint.errors.MissingExtra` where
    torchao is not installed.

    torchao is imported here, its import-time log noise dropped; inductor's settings are
    left as they are (``set_inductor_config=False``).
    """
    try:
        with quiet_loggers(*TORCHAO_IMPORT_LOGGERS):
            ao = importlib.import_module("torchao.quantization")
    except ImportError as err:
        raise MissingExtra("torchao int8 weight-only quantization", "torchao") from err
    config = ao.Int8WeightOnlyConfig(set_inductor_config=False)

    def quantize(module: torch.nn.Module) -> None:
        ao.quantize_(module, config)

    return quantize


def int8_data(tensor: torch.Tensor) -> torch.Tensor | None:
    """The int8 values a torchao int8 tensor stores (same shape as the tensor: ``qdata``, or
    an older torchao's ``tensor_impl.int_data``); None for any other tensor."""
    import torch

    data = getattr(tensor, "qdata", None)
    if data is None:
        data = getattr(getattr(tensor, "tensor_impl", None), "int_data", None)
    if isinstance(data, torch.Tensor) and data.dtype == torch.int8 and data.shape == tensor.shape:
        return data
    return None


def stored_dtype(tensor: torch.Tensor) -> str:
    """The dtype a tensor's values are stored in: ``int8`` for a torchao int8 tensor (whose
    ``dtype`` is the float dtype it computes in), else its ``dtype``."""
    return "int8" if int8_data(tensor) is not None else dtype_name(tensor.dtype)


def parameter_dtypes(module: torch.nn.Module) -> Counter[str]:
    """Elements of the module's parameters per :func:`stored_dtype`."""
    sizes: Counter[str] = Counter()
    for param in module.parameters():
        sizes[stored_dtype(param)] += param.numel()
    return sizes


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


#: What :func:`save_torchscript` says to give where scripting failed and there is no sample.
SAMPLE_HINT = "give samples (calibration=) or load the model with input_shape="


def save_torchscript(module: torch.nn.Module, path: Path, sample: torch.Tensor | None, *,
                     what: str = "the variant", hint: str = SAMPLE_HINT) -> str:
    """Script the module (trace it on ``sample`` where scripting fails) and save it to
    ``path``; return how it was made, ``"script"`` or ``"trace"``. A :class:`ModelError` where
    neither works names ``what`` could not be saved, and ``hint`` where there was no sample."""
    import torch

    # ValueError: an annotation TorchScript cannot resolve (``from __future__ import
    # annotations`` on a class's buffers); SyntaxError: a class whose source lines are not
    # where its code says (code run by exec() under a file's name); tracing needs neither.
    script_errors = (torch.jit.frontend.FrontendError, RuntimeError, OSError, TypeError,
                     ValueError, SyntaxError)
    with silenced(JIT_DEPRECATED, QTENSOR_DEPRECATED):
        how = "script"
        try:
            scripted: Any = torch.jit.script(module)
        except script_errors as err:
            if sample is None:
                raise ModelError(
                    f"{what} cannot be saved as TorchScript: torch.jit.script failed "
                    f"({first_line(err)}), and tracing needs a sample: {hint}") from err
            try:
                scripted = torch.jit.trace(module, sample)  # type: ignore[no-untyped-call]
            except (RuntimeError, TypeError, ValueError) as trace_err:
                raise ModelError(f"{what} cannot be saved as TorchScript: neither "
                                 f"scripted ({first_line(err)}) nor traced "
                                 f"({first_line(trace_err)})") from trace_err
            how = "trace"
        buffer = io.BytesIO()  # written whole or not at all, as every file wattprint writes
        torch.jit.save(scripted, buffer)
    write_bytes(path, buffer.getvalue())
    return how


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


def saved_result(path: Path, like: TorchModel, measurement: Measurement, *, name: str, kind: str,
                 method: str, target_dtype: str | None = None, amount: float | None = None,
                 sparsity: float | None = None, device: str | None = None,
                 input_dtype: str | None = None) -> OptimizationResult:
    """The step's result: the variant :func:`save_torchscript` saved at ``path``, loaded back
    (see :func:`reload`; ``like``'s device and input dtype unless given), its parameters
    counted (all, and the non-zero ones)."""
    saved = reload(path, like, device=str(like.device) if device is None else device,
                   input_dtype=dtype_name(like.input_dtype) if input_dtype is None
                   else input_dtype)
    num, nonzero = count_parameters(saved.module)
    return OptimizationResult(
        model=saved, name=name, kind=kind, method=method, target_dtype=target_dtype,
        amount=amount, sparsity=sparsity, path=path, size_bytes=saved.size_bytes,
        num_parameters=num, effective_parameters=nonzero, measurement=measurement)


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
            data = int8_data(param)  # a torchao int8 weight, counted as stored
            yield param.detach() if data is None else data
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
