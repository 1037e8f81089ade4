"""Quantizing and pruning Hugging Face transformers models (run with PyTorch).

The variant is made from a copy of the model's ``PreTrainedModel``; the model given is not
changed. It keeps the model's tokenizer (the same object), feature extractor (speech), image
processor settings and ``preprocess`` (images), task, ``max_new_tokens`` and ``max_length``,
and is returned in memory: that is what a sweep measures. It is also saved into the folder
``out_dir/<name>`` (replacing a folder or file of that name), whose size on disk is the
variant's ``size_bytes``:

* a cast (fp16, bf16) or pruned variant: ``save_pretrained`` (safetensors) and the
  tokenizer (and feature extractor, or ``preprocessor_config.json``), a folder
  :func:`wattprint.load_model` loads as it loads any model folder; a cast is probed by one
  forward pass on token ids (an encoder-decoder gets decoder ids too) or on one image;
* an int8 dynamic variant: its config, the tokenizer, and ``int8_dynamic_state_dict.pt``,
  the quantized ``state_dict`` (``torch.save``). transformers cannot save or load a
  dynamically quantized model, so :func:`wattprint.load_model` does not load this folder (it
  finds no weights file); the file records what the variant holds;
* an int8 weight-only variant (torchao): the same, its ``state_dict`` (torchao int8 tensors)
  in ``int8_weight_only_state_dict.pt``; :func:`wattprint.load_model` does not load it either.

GPT-2's ``transformers.pytorch_utils.Conv1D`` layers are Linear layers whose weight is stored
transposed: dynamic and int8 weight-only quantization first turn each into an ``nn.Linear``
(same weights) so that they are quantized too, and pruning prunes them like Linear layers
(``ln_structured`` along their output features, dim 1 of the stored weight). A Linear layer
whose weight is shared with a layer that is not Linear (a language-model head tied to the
input embeddings, as GPT-2's ``lm_head``, and T5's and BART's, tied to the ``shared``
embeddings that encoder and decoder both use) is not pruned: pruning it would zero the
embeddings as well. (int8 weight-only quantization does quantize such a head: its weight
becomes the head's own int8 copy, and the embeddings stay float.)

torch and transformers are imported inside the functions, so importing this module costs
nothing.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelError
from ..measurement import Measurement
from ..meter import EnergyMeter
from ..workloads.model import Model
from . import _torch
from ._common import AO_DEPRECATED, QTENSOR_DEPRECATED, first_line, measured, silenced, variant_path
from .result import OptimizationResult

if TYPE_CHECKING:
    import torch

    from ..workloads.loaders.transformers_loader import TransformersModel

#: The file an int8 dynamic variant's quantized ``state_dict`` is saved in.
INT8_STATE_DICT = "int8_dynamic_state_dict.pt"
#: The file an int8 weight-only (torchao) variant's quantized ``state_dict`` is saved in.
INT8_WEIGHT_ONLY_STATE_DICT = "int8_weight_only_state_dict.pt"
#: Tokens in the forward pass that probes a cast.
_PROBE_TOKENS = 8


def as_transformers(model: Model) -> TransformersModel:
    from ..workloads.loaders.transformers_loader import TransformersModel

    if not isinstance(model, TransformersModel):
        raise ConfigError(f"a transformers model must be a TransformersModel (from "
                          f"wattprint.load_model), not {type(model).__name__}")
    return model


# -- quantization --------------------------------------------------------------------------------

def quantize(model: TransformersModel, method: str, target: str,
             out_dir: str | os.PathLike[str], meter: EnergyMeter | None,
             variant: str) -> OptimizationResult:
    """int8 dynamic or (torchao) weight-only quantization of the Linear layers, or a cast to
    fp16 / bf16."""
    folder = _variant_folder(model, out_dir, variant)
    if method == "dynamic":  # torch's quantized kernels run on the CPU
        made, measurement = _dynamic(model, folder, meter, variant)
        device = "cpu"
    elif method == "int8-weight-only":
        made, measurement = _weight_only(model, folder, meter, variant)
        device = str(model.device)
    else:
        made, measurement = _cast(model, method, folder, meter, variant)
        device = str(model.device)
    result = _variant(model, made, folder, device)
    return _result(result, folder, variant, "quantization", method, target, None, None, measurement)


def _dynamic(model: TransformersModel, folder: Path, meter: EnergyMeter | None,
             variant: str) -> tuple[Any, Measurement]:
    import torch

    if not _quantizable(model.module):
        raise ConfigError("dynamic quantization rewrites Linear layers, and this model has none")
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise ConfigError("this torch build has no quantized CPU engine (fbgemm, x86, qnnpack): "
                          "dynamic int8 quantization is not available")

    def work() -> Any:
        cpu_copy = copy.deepcopy(model.module).to("cpu").eval()
        _conv1d_to_linear(cpu_copy)
        with silenced(AO_DEPRECATED, QTENSOR_DEPRECATED):
            quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                cpu_copy, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

        _save_folder(folder, lambda into: _save_state_dict(quantized, model, into,
                                                           INT8_STATE_DICT))
        return quantized

    return measured(meter, f"quantization:{variant}", work)


def _weight_only(model: TransformersModel, folder: Path, meter: EnergyMeter | None,
                 variant: str) -> tuple[Any, Measurement]:
    if not _quantizable(model.module):
        raise ConfigError("int8 weight-only quantization rewrites Linear layers, and this model "
                          "has none")
    int8_weight_only = _torch.int8_weight_only()

    def work() -> Any:
        quantized = copy.deepcopy(model.module).eval()
        _conv1d_to_linear(quantized)
        int8_weight_only(quantized)
        _save_folder(folder, lambda into: _save_state_dict(quantized, model, into,
                                                           INT8_WEIGHT_ONLY_STATE_DICT))
        return quantized

    return measured(meter, f"quantization:{variant}", work)


def _save_state_dict(quantized: Any, model: TransformersModel, into: Path, name: str) -> None:
    """A quantized variant transformers cannot save: its config (and generation config),
    the model's processors, and its ``state_dict`` in the file ``name``."""
    import torch

    quantized.config.save_pretrained(into)
    generation = getattr(quantized, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(into)
    _save_processors(model, into)
    with silenced(QTENSOR_DEPRECATED):
        torch.save(quantized.state_dict(), into / name)


def _cast(model: TransformersModel, method: str, folder: Path, meter: EnergyMeter | None,
          variant: str) -> tuple[Any, Measurement]:
    import torch

    dtype = torch.float16 if method == "fp16" else torch.bfloat16
    probe = _probe_inputs(model, dtype)

    def work() -> Any:
        cast = copy.deepcopy(model.module).to(dtype).eval()
        try:
            with torch.inference_mode():
                cast(**probe)
        except RuntimeError as err:
            raise ConfigError(f"{method} is not supported for this model on {model.device}: "
                              f"{first_line(err)}; keep float32 here, or use a device that "
                              f"runs {method}") from err
        _save_folder(folder, lambda into: _save_pretrained(cast, model, into))
        return cast

    return measured(meter, f"quantization:{variant}", work)


def _probe_inputs(model: TransformersModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Token ids for one forward pass (a decoder input too, for an encoder-decoder model), or
    one image of zeros in ``dtype`` for an image model."""
    import torch

    first = model.inputs[0] if model.inputs else None
    if first is not None and first.name == "pixel_values" and first.shape is not None:
        size = model.preprocess.size if model.preprocess is not None else None
        channels, height, width = first.shape[1:4]
        if height is None or width is None:
            if size is None:
                raise ConfigError("the cast is probed with one image, and neither this model's "
                                  "config nor its preprocess names the image size")
            height, width = size
        return {"pixel_values": torch.zeros((1, channels or 3, height, width), dtype=dtype,
                                            device=model.device)}
    config = model.module.config
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if vocab <= 0:
        raise ConfigError("the cast is probed with token ids, and this model's config names no "
                          "vocab_size")
    length = min(_PROBE_TOKENS, model.max_length or _PROBE_TOKENS)
    ids = (torch.arange(length, dtype=torch.int64, device=model.device) % vocab).unsqueeze(0)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = ids
    return inputs


def _quantizable(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers dynamic quantization rewrites: exactly ``nn.Linear`` (as torch matches
    them: subclasses are left float) and transformers' ``Conv1D``."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return [m for m in module.modules() if type(m) is torch.nn.Linear or isinstance(m, Conv1D)]


def _conv1d_to_linear(module: torch.nn.Module) -> None:
    """Replace every ``Conv1D`` in ``module`` by the ``nn.Linear`` it computes."""
    import torch
    from transformers.pytorch_utils import Conv1D

    for parent in list(module.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, Conv1D):
                continue
            nx, nf = child.weight.shape
            linear = torch.nn.Linear(nx, nf, bias=child.bias is not None,
                                     device=child.weight.device, dtype=child.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                if child.bias is not None:
                    linear.bias.copy_(child.bias)
            setattr(parent, child_name, linear)


# -- pruning -------------------------------------------------------------------------------------

def prune(model: TransformersModel, method: str, amount: float, *, ln_norm: int,
          out_dir: str | os.PathLike[str], meter: EnergyMeter | None,
          variant: str) -> OptimizationResult:
    """Prune ``amount`` of the weight of every Linear (and ``Conv1D``) layer, layer by layer."""
    if not _prunable(model.module):
        raise ConfigError("pruning works on Linear layer weights, and this model has none "
                          "(or only ones tied to its embeddings)")
    folder = _variant_folder(model, out_dir, variant)

    def work() -> tuple[Any, float]:
        pruned = copy.deepcopy(model.module).eval()
        sparsity = _prune(pruned, method, amount, ln_norm)
        _save_folder(folder, lambda into: _save_pretrained(pruned, model, into))
        return pruned, sparsity

    (made, sparsity), measurement = measured(meter, f"pruning:{variant}", work)
    result = _variant(model, made, folder, str(model.device))
    return _result(result, folder, variant, "pruning", method, None, amount, sparsity, measurement)


def _prunable(module: torch.nn.Module) -> list[tuple[torch.nn.Module, int]]:
    """``(layer, output dim)`` of each Linear / ``Conv1D`` layer whose weight is its own (a
    weight shared by several such layers: its first)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, Conv1D)
    seen = {id(p) for m in module.modules() if not isinstance(m, kinds)
            for p in m.parameters(recurse=False)}
    layers: list[tuple[torch.nn.Module, int]] = []
    for m in module.modules():
        weight = getattr(m, "weight", None)
        if (isinstance(m, kinds) and isinstance(weight, torch.nn.Parameter)
                and id(weight) not in seen):
            seen.add(id(weight))
            layers.append((m, 1 if isinstance(m, Conv1D) else 0))
    return layers


def _prune(module: torch.nn.Module, method: str, amount: float, ln_norm: int) -> float:
    """Prune every layer of :func:`_prunable` in place, permanently; the fraction of zeros."""
    import torch
    from torch.nn.utils import prune

    zeros = total = 0
    for layer, dim in _prunable(module):
        if method == "l1_unstructured":
            prune.l1_unstructured(layer, "weight", amount=amount)  # type: ignore[no-untyped-call]
        else:
            prune.ln_structured(  # type: ignore[no-untyped-call]
                layer, "weight", amount=amount, n=ln_norm, dim=dim)
        prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
        weight = layer.get_parameter("weight").detach()
        zeros += weight.numel() - int(torch.count_nonzero(weight).item())
        total += weight.numel()
    return zeros / total


# -- the variant ---------------------------------------------------------------------------------

def _variant_folder(model: TransformersModel, out_dir: str | os.PathLike[str],
                    variant: str) -> Path:
    folder = variant_path(out_dir, variant, "")
    if model.path is not None:
        source = model.path.resolve()
        if folder.resolve() == source or folder.resolve() in source.parents:
            raise ConfigError(f"the variant {folder} would replace the model it is made from "
                              f"({model.path}): give another name or out_dir")
    return folder


def _save_folder(folder: Path, save: Callable[[Path], None]) -> None:
    """Write the variant into a new folder beside ``folder``, then put it in its place, so
    that no file of an earlier variant of that name is left in it."""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        try:
            save(staging)
        except (OSError, RuntimeError, ValueError, TypeError) as err:
            raise ModelError(f"the variant cannot be saved to {folder}: "
                             f"{first_line(err)}") from err
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists() or folder.is_symlink():
            folder.unlink()
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _save_pretrained(module: Any, model: TransformersModel, into: Path) -> None:
    module.save_pretrained(into)
    _save_processors(model, into)


def _save_processors(model: TransformersModel, into: Path) -> None:
    """The model's tokenizer and, for a speech model, its feature extractor, beside it; for
    an image model, its image processor's settings (``preprocessor_config.json``)."""
    import json

    for processor in (model.tokenizer, getattr(model, "feature_extractor", None)):
        if processor is not None:
            processor.save_pretrained(into)
    image_processor = getattr(model, "image_processor", None)
    if image_processor is not None:
        (into / "preprocessor_config.json").write_text(
            json.dumps(image_processor, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _variant(model: TransformersModel, module: Any, folder: Path,
             device: str) -> TransformersModel:
    """The in-memory variant as a TransformersModel like ``model``, its size that of
    ``folder``, its parameters counted with the packed weights of quantized layers."""
    from ..workloads.loaders.transformers_loader import TransformersModel

    made = TransformersModel(
        module, model.tokenizer, task=model.task, path=folder, name=model.name, device=device,
        max_new_tokens=model.max_new_tokens, max_length=model.max_length,
        feature_extractor=getattr(model, "feature_extractor", None),
        image_processor=getattr(model, "image_processor", None))
    made.preprocess = model.preprocess  # the images it takes are the model's
    made.num_parameters = _torch.count_parameters(module)[0]
    made.dtype = _most_elements_dtype(module)
    return made


def _most_elements_dtype(module: torch.nn.Module) -> str:
    """The dtype that holds most of the stored weights, the int8 weights of quantized
    layers included (their packed weights are no ``Parameter``)."""
    import torch

    sizes = _torch.parameter_dtypes(module)
    for sub in module.modules():
        packed = getattr(sub, "_packed_params", None)
        if isinstance(packed, torch.ScriptObject):
            for tensor in _packed_tensors(packed):
                name = "int8" if tensor.dtype == torch.qint8 else _torch.dtype_name(tensor.dtype)
                sizes[name] += tensor.numel()
    return sizes.most_common(1)[0][0] if sizes else "float32"


def _packed_tensors(packed: Any) -> list[torch.Tensor]:
    """The tensors (weight, bias) in a quantized layer's packed parameters, as stored."""
    import torch

    if not packed._has_method("unpack"):
        return []
    return [t for t in packed.unpack() if isinstance(t, torch.Tensor)]


def _result(made: TransformersModel, folder: Path, variant: str, kind: str, method: str,
            target: str | None, amount: float | None, sparsity: float | None,
            measurement: Measurement) -> OptimizationResult:
    return OptimizationResult(
        model=made, name=variant, kind=kind, method=method, target_dtype=target, amount=amount,
        sparsity=sparsity, path=folder, size_bytes=made.size_bytes,
        num_parameters=made.num_parameters,
        effective_parameters=_torch.count_parameters(made.module)[1], measurement=measurement)
