"""Export: a torch model in, the same model as ONNX out, with the energy of exporting it.

The export uses torch's TorchScript-based exporter, ``torch.onnx.export(..., dynamo=False)``:
it runs offline with torch alone. (The newer ``torch.export``-based exporter, torch's default
since 2.9, needs the ``onnxscript`` package.) The graph's first input is named ``"input"`` and
its first output ``"output"``, both with a dynamic batch axis ``"batch"``; the model is traced
on ``sample``, so data-dependent control flow is fixed to the path the sample takes.

**What is measured**: one window around the export, which writes the file; loading the ONNX
model back (on onnxruntime's CPU provider) and counting its parameters are not measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

__all__ = ["EXPORTER", "NAME", "export_onnx"]

#: The variant name of an export.
NAME = "onnx"
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


def _export(model: TorchModel, inputs: torch.Tensor, target: Path) -> None:
    import torch

    failures = (torch.onnx.OnnxExporterError, RuntimeError, TypeError, ValueError)
    with silenced(LEGACY_ONNX_DEPRECATED, ONNX_LOG_DEPRECATED, JIT_DEPRECATED):
        try:
            torch.onnx.export(
                model.module, (inputs,), str(target), dynamo=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}})
        except failures as err:
            raise ModelError(f"torch could not export the model to ONNX: "
                             f"{first_line(err)}") from err
