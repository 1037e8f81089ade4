"""Quantization: a model in, a lower-precision variant out, with the energy of making it.

Methods, per framework:

=========  =====================================================================================
torch      ``"dynamic"``: int8 dynamic quantization of every ``Linear`` layer
           (``torch.ao.quantization.quantize_dynamic``; weights stored as int8, activations
           quantized on the fly; other layers, convolutions included, stay float). torch's
           quantized kernels run on the CPU, so the variant is on the CPU. Needs an eager module.
           ``"fp16"`` / ``"bf16"``: every floating-point weight cast to float16 / bfloat16.
           One forward pass on a sample (from ``calibration``, else zeros of the model's
           ``input_shape``) checks that this device runs the model in that precision; where it
           does not, :class:`~wattprint.errors.ConfigError` says so.
           ``"int8-weight-only"``: torchao's int8 weight-only quantization
           (``quantize_(copy, Int8WeightOnlyConfig())``) of every ``Linear`` layer: each weight
           becomes a torchao int8 tensor (per output channel scales), activations stay float;
           on the model's device. Needs the ``torchao`` extra
           (:class:`~wattprint.errors.MissingExtra` without it) and an eager module.
onnx       ``"dynamic"``: int8 weights, activations quantized at run time
           (``onnxruntime.quantization.quantize_dynamic``).
           ``"static"``: int8 weights and activations in QDQ form, their ranges calibrated
           (min-max) on up to 256 samples of ``calibration``
           (``onnxruntime.quantization.quantize_static``).
           Both first run onnxruntime's ``quant_pre_process`` (ONNX shape inference and graph
           optimization; the symbolic shape inference for transformer ops is skipped).
           ``"fp16"``: float weights and ops converted to float16, inputs and outputs kept
           float32 (onnxruntime's ``transformers.float16`` converter), then checked by running
           it on a sample where one is given or the input shape is known.
=========  =====================================================================================

transformers (a :class:`~wattprint.workloads.loaders.transformers_loader.TransformersModel`:
causal LM, sequence classification, encoder-decoder or bare model): ``"dynamic"`` as torch's,
on every ``nn.Linear`` and every GPT-2 ``Conv1D`` (first turned into the ``nn.Linear`` it
computes), the variant on the CPU; ``"fp16"`` / ``"bf16"``: the weights cast, on the model's
device, checked by one forward pass on a few token ids (a ConfigError where the device cannot
run it); ``"int8-weight-only"`` as torch's, on every ``nn.Linear`` and every GPT-2 ``Conv1D``
(turned into ``nn.Linear`` first, as for ``"dynamic"``), on the model's device.
``calibration`` is not used.

The variant is saved to ``out_dir/<name>.pt`` (TorchScript: ``torch.jit.script``, or
``torch.jit.trace`` on a sample where scripting fails) or ``out_dir/<name>.onnx``, replacing
a file of that name, and loaded back as :func:`wattprint.load_model` would load it (the
TorchScript trusted, being wattprint's own output; to load it again yourself, pass
``trust=True``). A transformers variant is saved into the folder ``out_dir/<name>`` and is
returned as made, in memory (see :mod:`wattprint.optimize._transformers` for what the folder
holds). TorchScript cannot hold torchao's tensors: a torch int8 weight-only variant is saved
as its quantized ``state_dict`` (``torch.save``) to ``out_dir/<name>.pt``, a record of what it
holds that :func:`wattprint.load_model` does not load back, and is returned as made, in
memory.

**What is measured**: one window around producing the variant file, that is the conversion
(and its calibration or precision probe) and writing the file. Loading the variant back and
counting its parameters afterwards are not measured.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import replaced_whole
from ..errors import ConfigError, MissingExtra, ModelError
from ..measurement import Measurement
from ..meter import EnergyMeter
from ..workloads.model import Model
from . import _onnx, _torch, _transformers
from ._common import (
    AO_DEPRECATED,
    QTENSOR_DEPRECATED,
    check_name,
    first_line,
    measured,
    sample_rows,
    silenced,
    unknown_method,
    variant_path,
    wrong_framework,
)
from .params import effective_parameters
from .result import OptimizationResult

if TYPE_CHECKING:
    import onnx
    import torch
    from numpy.typing import NDArray

    from ..workloads.loaders.onnx_loader import OnnxModel
    from ..workloads.loaders.torch_loader import TorchModel

__all__ = ["EXTRAS", "METHODS", "TARGET_DTYPES", "missing_extra", "quantize"]

#: The quantization methods of each framework.
METHODS: dict[str, tuple[str, ...]] = {
    "torch": ("dynamic", "fp16", "bf16", "int8-weight-only"),
    "onnx": ("dynamic", "static", "fp16"),
    "transformers": ("dynamic", "fp16", "bf16", "int8-weight-only"),
}
#: The target dtypes each method makes (the first is the default).
TARGET_DTYPES: dict[str, tuple[str, ...]] = {
    "dynamic": ("int8",),
    "static": ("int8",),
    "fp16": ("fp16",),
    "bf16": ("bf16",),
    "int8-weight-only": ("int8",),
}
#: ``method -> (what, module, extra)`` for a method that needs a package beyond its framework's.
EXTRAS: dict[str, tuple[str, str, str]] = {
    "int8-weight-only": ("torchao int8 weight-only quantization", "torchao", "torchao"),
}
#: Other spellings of the target dtypes.
_DTYPE_ALIASES = {"qint8": "int8", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}
_DEFAULT_NAMES = {"dynamic": "int8-dynamic", "static": "int8-static", "fp16": "fp16",
                  "bf16": "bf16", "int8-weight-only": "int8-weight-only"}
#: Samples of ``calibration`` a precision probe runs on.
_PROBE_SAMPLES = 2


def missing_extra(method: str) -> MissingExtra | None:
    """The error for ``method`` where the package it needs (:data:`EXTRAS`) is not installed,
    found without importing it; None where it is, or the method needs none."""
    from .._lazy import installed

    if method not in EXTRAS:
        return None
    what, module, extra = EXTRAS[method]
    return None if installed(module) else MissingExtra(what, extra)


def quantize(
    model: Model,
    method: str,
    *,
    target_dtype: str | None = None,
    calibration: Any = None,
    out_dir: str | os.PathLike[str],
    meter: EnergyMeter | None = None,
    name: str | None = None,
) -> OptimizationResult:
    """Quantize ``model`` with ``method``, save the variant into ``out_dir`` and measure it.

    ``target_dtype`` is what the method makes: ``"int8"`` (dynamic, static, int8-weight-only),
    ``"fp16"`` or ``"bf16"`` (also spelled ``"float16"``, ``"bfloat16"``); default from the
    method.
    ``calibration`` is a :class:`~wattprint.workloads.datasets.Dataset`, ``(x, y)`` or an
    array of inputs: the samples a static quantization is calibrated on, and a precision cast
    is probed with. ``meter`` measures the step (a new ``EnergyMeter()`` when None).
    ``name`` names the variant and its file (default ``"int8-dynamic"``, ``"int8-static"``,
    ``"fp16"``, ``"bf16"`` or ``"int8-weight-only"``). A method that does not apply to the
    model's framework is a :class:`~wattprint.errors.ConfigError` naming the methods that do;
    one whose package is not installed (torchao) a :class:`~wattprint.errors.MissingExtra`.
    """
    framework = getattr(model, "framework", type(model).__name__)
    if framework not in METHODS:
        raise wrong_framework(model, "quantization", METHODS)
    methods = METHODS[framework]
    if method not in methods:
        raise unknown_method(method, framework, methods, "quantization", METHODS)
    targets = TARGET_DTYPES[method]
    target = targets[0] if target_dtype is None else _DTYPE_ALIASES.get(target_dtype, target_dtype)
    if target not in targets:
        raise ConfigError(f"quantization method {method!r} makes {', '.join(targets)} "
                          f"weights, not {target_dtype!r}")
    variant = check_name(_DEFAULT_NAMES[method] if name is None else name)
    if framework == "torch":
        return _quantize_torch(_as_torch(model), method, target, calibration, out_dir, meter,
                               variant)
    if framework == "transformers":
        return _transformers.quantize(_transformers.as_transformers(model), method, target,
                                      out_dir, meter, variant)
    return _quantize_onnx(_as_onnx(model), method, target, calibration, out_dir, meter, variant)


# -- torch ---------------------------------------------------------------------------------------

def _as_torch(model: Model) -> TorchModel:
    from ..workloads.loaders.torch_loader import TorchModel

    if not isinstance(model, TorchModel):
        raise ConfigError(f"a torch model must be a TorchModel (from wattprint.load_model or "
                          f"torch_loader.from_module), not {type(model).__name__}")
    return model


def _quantize_torch(model: TorchModel, method: str, target: str, calibration: Any,
                    out_dir: str | os.PathLike[str], meter: EnergyMeter | None,
                    variant: str) -> OptimizationResult:
    if method == "int8-weight-only":
        return _torch_weight_only(model, target, out_dir, meter, variant)
    if method == "dynamic":
        path, device, input_dtype, measurement = _torch_dynamic(
            model, calibration, out_dir, meter, variant)
    else:
        path, device, input_dtype, measurement = _torch_cast(
            model, method, calibration, out_dir, meter, variant)
    return _torch.saved_result(path, model, measurement, name=variant, kind="quantization",
                               method=method, target_dtype=target, device=device,
                               input_dtype=input_dtype)


def _torch_dynamic(
    model: TorchModel, calibration: Any, out_dir: str | os.PathLike[str],
    meter: EnergyMeter | None, variant: str,
) -> tuple[Path, str, str, Measurement]:
    """Quantize a CPU copy, save it; ``(path, device, input dtype, measurement)``."""
    import torch

    module = _torch.eager_module(model, "dynamic quantization")
    if not any(isinstance(m, torch.nn.Linear) for m in module.modules()):
        raise ConfigError("dynamic quantization rewrites Linear layers, and this model has none")
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise ConfigError("this torch build has no quantized CPU engine (fbgemm, x86, qnnpack): "
                          "dynamic int8 quantization is not available")
    rows = _torch.probe_rows(model, calibration, "dynamic quantization", _torch.TRACE_SAMPLES)
    sample = None if rows is None else _torch.batch(model, rows, device="cpu")
    path = variant_path(out_dir, variant, ".pt")

    def work() -> None:
        cpu_copy = _torch.clone(module).to("cpu").eval()
        with silenced(AO_DEPRECATED, QTENSOR_DEPRECATED):
            quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                cpu_copy, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        _torch.save_torchscript(quantized, path, sample)

    _, measurement = measured(meter, f"quantization:{variant}", work)
    return path, "cpu", _torch.dtype_name(model.input_dtype), measurement


def _torch_weight_only(model: TorchModel, target: str, out_dir: str | os.PathLike[str],
                       meter: EnergyMeter | None, variant: str) -> OptimizationResult:
    """torchao int8 weight-only quantization of a copy on the model's device; its
    ``state_dict`` saved, the variant returned in memory."""
    import torch

    from ..workloads.loaders.torch_loader import TorchModel

    module = _torch.eager_module(model, "int8 weight-only quantization")
    if not any(isinstance(m, torch.nn.Linear) for m in module.modules()):
        raise ConfigError("int8 weight-only quantization rewrites Linear layers, and this model "
                          "has none")
    int8_weight_only = _torch.int8_weight_only()
    path = variant_path(out_dir, variant, ".pt")

    def work() -> torch.nn.Module:
        quantized = _torch.clone(module).eval()
        int8_weight_only(quantized)
        with replaced_whole(path) as written:
            torch.save(quantized.state_dict(), written)
        return quantized

    quantized, measurement = measured(meter, f"quantization:{variant}", work)
    made = TorchModel(quantized, task=model.task, path=path, size_bytes=path.stat().st_size,
                      device=str(model.device), input_shape=model.input_shape,
                      input_dtype=_torch.dtype_name(model.input_dtype))
    made.preprocess = model.preprocess
    num, nonzero = _torch.count_parameters(quantized)
    made.num_parameters = num
    made.dtype = _torch.parameter_dtypes(quantized).most_common(1)[0][0]
    return OptimizationResult(
        model=made, name=variant, kind="quantization", method="int8-weight-only",
        target_dtype=target, amount=None, sparsity=None, path=path, size_bytes=made.size_bytes,
        num_parameters=num, effective_parameters=nonzero, measurement=measurement)


def _torch_cast(
    model: TorchModel, method: str, calibration: Any, out_dir: str | os.PathLike[str],
    meter: EnergyMeter | None, variant: str,
) -> tuple[Path, str, str, Measurement]:
    """Cast a copy, probe it, save it; ``(path, device, input dtype, measurement)``."""
    import torch

    dtype = torch.float16 if method == "fp16" else torch.bfloat16
    rows = _torch.probe_rows(model, calibration, f"the {method} probe", _PROBE_SAMPLES)
    if rows is None:
        raise ConfigError(f"{method} needs a sample to check that {model.device} runs the "
                          f"model in {_torch.dtype_name(dtype)}: pass calibration= (a few "
                          "samples), or load the model with input_shape=")
    input_dtype = dtype if model.input_dtype.is_floating_point else model.input_dtype
    sample = _torch.batch(model, rows, dtype=input_dtype)
    path = variant_path(out_dir, variant, ".pt")

    def work() -> None:
        cast = _torch.clone(model.module).to(dtype).eval()
        _probe_torch(cast, model, sample, rows, method)
        _torch.save_torchscript(cast, path, sample)

    _, measurement = measured(meter, f"quantization:{variant}", work)
    return path, str(model.device), _torch.dtype_name(input_dtype), measurement


def _probe_torch(cast: torch.nn.Module, model: TorchModel, sample: torch.Tensor,
                 rows: NDArray[Any], method: str) -> None:
    """One forward pass in the new precision; a ConfigError where the device cannot run it."""
    import torch

    try:
        with torch.inference_mode():
            cast(sample)
    except RuntimeError as err:
        try:  # do the samples fit the model at all?
            model.predict(rows)
        except (RuntimeError, ModelError, ConfigError) as fit_err:
            raise ConfigError(f"the samples given to probe {method} do not fit the model: "
                              f"{first_line(fit_err)}") from fit_err
        raise ConfigError(f"{method} is not supported for this model on {model.device}: "
                          f"{first_line(err)}; keep float32 here, or use a device that "
                          f"runs {method}") from err


# -- ONNX ----------------------------------------------------------------------------------------

def _as_onnx(model: Model) -> OnnxModel:
    from ..workloads.loaders.onnx_loader import OnnxModel

    if not isinstance(model, OnnxModel):
        raise ConfigError(f"an ONNX model must be an OnnxModel (from wattprint.load_model), "
                          f"not {type(model).__name__}")
    return model


def _quantize_onnx(model: OnnxModel, method: str, target: str, calibration: Any,
                   out_dir: str | os.PathLike[str], meter: EnergyMeter | None,
                   variant: str) -> OptimizationResult:
    source = _onnx.source(model, f"ONNX {method} quantization")
    path = variant_path(out_dir, variant, ".onnx")
    if path.resolve() == source.resolve():
        raise ConfigError(f"the variant {path} would replace the model it is made from: "
                          "give another name or out_dir")
    probe: NDArray[Any] | None = None
    reader: _onnx.CalibrationReader | None = None
    convert: Any = None
    if method == "fp16":
        convert = _fp16_converter()
        if calibration is not None:
            probe = sample_rows(calibration, limit=_PROBE_SAMPLES, what="the fp16 probe")
    elif method == "static":
        rows = sample_rows(calibration, what="static quantization")
        reader = _onnx.CalibrationReader(_onnx.feeds(model, rows))

    def work() -> None:
        if method == "fp16":
            _onnx_fp16(convert, source, path)
        else:
            _onnx_int8(method, source, path, reader)

    _, measurement = measured(meter, f"quantization:{variant}", work)
    saved = _checked_fp16(path, model, probe) if method == "fp16" else _onnx.reload(path, model)
    return OptimizationResult(
        model=saved, name=variant, kind="quantization", method=method, target_dtype=target,
        amount=None, sparsity=None, path=path, size_bytes=saved.size_bytes,
        num_parameters=saved.num_parameters, effective_parameters=effective_parameters(saved),
        measurement=measurement)


def _onnx_int8(method: str, source: Path, path: Path,
               reader: _onnx.CalibrationReader | None) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            with replaced_whole(path) as written:
                if method == "dynamic":
                    quantize_dynamic(str(prepared), str(written), weight_type=QuantType.QInt8)
                else:
                    quantize_static(str(prepared), str(written), reader,
                                    quant_format=QuantFormat.QDQ,
                                    activation_type=QuantType.QInt8,
                                    weight_type=QuantType.QInt8)
        except _onnx.errors() as err:
            raise ModelError(f"{source}: onnxruntime could not {method}-quantize it: "
                             f"{first_line(err)}") from err


def _fp16_converter() -> Any:
    """onnxruntime's float16 converter (``onnxruntime.transformers``), as a function of a
    ModelProto that returns the converted, topologically sorted ModelProto.

    Importing ``onnxruntime.transformers`` appends its folder to ``sys.path``, and its modules
    import one another by their bare names from there, some only when called (``fusion_utils``
    when the int8 quantizer first needs ``onnx_utils``): the folder stays, last on the path, or
    a later int8 quantization in this process fails with "No module named 'fusion_utils'"."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel as OrtOnnxModel
    except ImportError as err:
        raise ConfigError("ONNX fp16 needs onnxruntime's float16 converter "
                          "(onnxruntime.transformers.float16), which this onnxruntime lacks: "
                          f"{err}") from err

    def convert(proto: onnx.ModelProto) -> onnx.ModelProto:
        converted: onnx.ModelProto = convert_float_to_float16(proto, keep_io_types=True)
        # The converter appends the casts of kept float32 inputs at the end of the graph.
        OrtOnnxModel.graph_topological_sort(converted.graph, True)
        return converted

    return convert


def _onnx_fp16(convert: Any, source: Path, path: Path) -> None:
    import onnx

    try:
        with replaced_whole(path) as written:
            onnx.save(convert(onnx.load(str(source))), str(written))
    except _onnx.errors() as err:
        raise ModelError(f"{source}: could not convert it to float16: "
                         f"{first_line(err)}") from err


def _checked_fp16(path: Path, like: OnnxModel, rows: NDArray[Any] | None) -> OnnxModel:
    """Load the fp16 variant and run it once; a ConfigError where its providers cannot."""
    try:
        saved = _onnx.reload(path, like)
        if rows is not None:
            saved.predict(rows)
    except ModelError as err:
        with contextlib.suppress(OSError):
            path.unlink()
        raise ConfigError(f"fp16 is not supported for this ONNX model on "
                          f"{', '.join(like.providers)}: {first_line(err)}") from err
    return saved
