"""Export: a torch model in, the same model as ONNX or TorchScript out, with the energy of
exporting it.

The export uses torch's TorchScript-based exporter, ``torch.onnx.export(..., dynamo=False)``:
it runs offline with torch alone. (The newer ``torch.export``-based exporter, torch's default
since 2.9, needs the ``onnxscript`` package.) The graph's first input is named ``"input"`` and
its first output ``"output"``, both with a dynamic batch axis ``"batch"``; the model is traced
on ``sample``, so data-dependent control flow is fixed to the path the sample takes.

**What is measured**: one window around the export, which writes the file; loading the ONNX
model back (on onnxruntime's CPU provider) and counting its parameters are not measured.
:func:`export_torchscript` the same: scripting (or tracing) and saving are measured, loading
back is not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import replaced_whole
from ..errors import ConfigError, ModelError
from ..meter import EnergyMeter
from ..workloads.loaders import onnx_loader
from ..workloads.model import Model
from . import _torch
from ._common import (
    JIT_DEPRECATED,
    LEGACY_ONNX_DEPRECATED,
    ONNX_LOG_DEPRECATED,
    first_line,
    measured,
    sample_rows,
    silenced,
)
from .params import effective_parameters
from .result import OptimizationResult

if TYPE_CHECKING:
    import torch

    from ..workloads.loaders.torch_loader import TorchModel

__all__ = ["EXPORTER", "NAME", "TORCHSCRIPT", "export_onnx", "export_torchscript"]

#: The variant name of an ONNX export.
NAME = "onnx"
#: The variant name of a TorchScript export.
TORCHSCRIPT = "torchscript"
#: The exporter used, as reported in :attr:`OptimizationResult.method`.
EXPORTER = "torchscript"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_AXIS = "batch"


def export_onnx(
    model: Model,
    path: str | os.PathLike[str],
    *,
    sample: Any,
    meter: EnergyMeter | None = None,
) -> OptimizationResult:
    """Export a torch model to the ``.onnx`` file ``path`` and load it back as an ONNX model.

    ``sample`` is a :class:`~wattprint.workloads.datasets.Dataset`, ``(x, y)`` or an array of
    inputs; the export traces the model on its first two samples. ``meter`` measures the step
    (a new ``EnergyMeter()`` when None). The result's ``name`` is ``"onnx"``.
    """
    from ..workloads.loaders.torch_loader import TorchModel

    if not isinstance(model, TorchModel):
        framework = getattr(model, "framework", type(model).__name__)
        raise ConfigError(f"ONNX export takes torch models (a TorchModel), not {framework}")
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"the ONNX file must end in .onnx, not {target.name!r}")
    rows = sample_rows(sample, limit=_torch.TRACE_SAMPLES, what="ONNX export")
    inputs = _torch.batch(model, rows)
    target.parent.mkdir(parents=True, exist_ok=True)

    def work() -> None:
        _export(model, inputs, target)

    _, measurement = measured(meter, f"export:{NAME}:{target.name}", work)
    exported = onnx_loader.load(target, task=model.task, input_shape=model.input_shape)
    return OptimizationResult(
        model=exported, name=NAME, kind="export", method=EXPORTER, target_dtype=None,
        amount=None, sparsity=None, path=target, size_bytes=exported.size_bytes,
        num_parameters=exported.num_parameters,
        effective_parameters=effective_parameters(exported), measurement=measurement)


def export_torchscript(
    model: Model,
    path: str | os.PathLike[str],
    *,
    sample: Any = None,
    meter: EnergyMeter | None = None,
) -> OptimizationResult:
    """Save a torch model as TorchScript to ``path`` (``.pt`` or ``.pth``) and load it back:
    the form each torch variant of :func:`~wattprint.optimize.quantize` and
    :func:`~wattprint.optimize.prune` is saved in and measured in.

    Measure a parent in this form beside its variants, as a sweep does. Measured eager, it
    also pays torch's Python dispatch on every call, which the variants do not, and a
    variant's saving would be partly TorchScript's. The module is scripted, or traced where
    scripting fails, on ``sample`` (a :class:`~wattprint.workloads.datasets.Dataset`,
    ``(x, y)`` or an array of inputs; without it, zeros of the model's ``input_shape``). The
    result's ``method`` says which: ``"script"`` or ``"trace"``. A model that is TorchScript
    already is saved as it is. The file is written whole or not at all. ``meter`` measures the
    step (a new ``EnergyMeter()`` when None). The result's ``name`` is ``"torchscript"``.
    """
    from ..workloads.loaders.torch_loader import TorchModel

    if not isinstance(model, TorchModel):
        framework = getattr(model, "framework", type(model).__name__)
        raise ConfigError(f"TorchScript export takes torch models (a TorchModel), not "
                          f"{framework}")
    target = Path(path)
    if target.suffix.lower() not in (".pt", ".pth"):
        raise ConfigError(f"the TorchScript file must end in .pt or .pth (as load_model "
                          f"knows it), not {target.name!r}")
    if target.is_dir():
        raise ConfigError(f"{str(target)!r} is a folder; give the TorchScript file's path")
    rows = _torch.probe_rows(model, sample, "TorchScript export", _torch.TRACE_SAMPLES)
    inputs = None if rows is None else _torch.batch(model, rows)
    target.parent.mkdir(parents=True, exist_ok=True)

    def work() -> str:
        return _torch.save_torchscript(
            model.module, target, inputs, what="the model",
            hint="give sample= (inputs to trace it on) or load the model with input_shape=")

    how, measurement = measured(meter, f"export:{TORCHSCRIPT}:{target.name}", work)
    return _torch.saved_result(target, model, measurement, name=TORCHSCRIPT, kind="export",
                               method=how)


def _export(model: TorchModel, inputs: torch.Tensor, target: Path) -> None:
    import torch

    failures = (torch.onnx.OnnxExporterError, RuntimeError, TypeError, ValueError)
    with silenced(LEGACY_ONNX_DEPRECATED, ONNX_LOG_DEPRECATED, JIT_DEPRECATED), \
            replaced_whole(target) as written:
        try:
            torch.onnx.export(
                model.module, (inputs,), str(written), dynamo=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}})
        except failures as err:
            raise ModelError(f"torch could not export the model to ONNX: "
                             f"{first_line(err)}") from err
