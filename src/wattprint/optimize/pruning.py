"""Pruning: a torch or transformers model in, a sparser variant out, with the energy of making it.

Methods (``torch.nn.utils.prune``), applied to the ``weight`` of every ``Linear``,
``Conv1d``, ``Conv2d`` and ``Conv3d`` layer **layer by layer** (each layer loses ``amount``
of its own weights; not a global threshold across layers):

``"l1_unstructured"``
    the ``amount`` fraction of each weight tensor with the smallest absolute values is zeroed.
``"ln_structured"``
    the ``amount`` fraction of each weight's rows along dim 0 (a Linear's output features, a
    convolution's output channels) with the smallest L2 norm (n=2) is zeroed, whole rows at a
    time. Biases are left as they are.

The pruning is made permanent with ``prune.remove``: the variant has plain ``weight``
parameters, no ``weight_orig``/``weight_mask`` and no forward pre-hooks. Zeros are stored
densely, so the file is as large as the original's: pruning lowers
``effective_parameters``, not ``size_bytes``. ``sparsity`` is the fraction of zeros in the
pruned weight tensors.

The variant is saved as TorchScript to ``out_dir/<name>.pt`` and loaded back (trusted, being
wattprint's own output; to load it again yourself, pass ``trust=True``). **What is
measured**: one window around copying the module, pruning it, making it permanent and
writing the file; loading it back and counting are not measured.

A Hugging Face transformers model is pruned the same way, on the weights of its Linear layers
and of GPT-2's ``Conv1D`` layers (``ln_structured`` along their output features); a Linear
weight tied to the input embeddings (GPT-2's ``lm_head``) is left as it is, since pruning it
would zero the embeddings too. The variant is returned in memory, on the model's device, and
saved with ``save_pretrained`` into the folder ``out_dir/<name>``; the window measures the
copy, the pruning and the saving.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..meter import EnergyMeter
from ..workloads.model import Model
from . import _torch, _transformers
from ._common import check_name, measured, unknown_method, variant_path, wrong_framework
from .result import OptimizationResult

if TYPE_CHECKING:
    import torch

__all__ = ["FRAMEWORKS", "METHODS", "prune"]

#: The pruning methods (of every framework in :data:`FRAMEWORKS`).
METHODS = ("l1_unstructured", "ln_structured")
#: The frameworks of the models pruning takes.
FRAMEWORKS = ("torch", "transformers")
#: The norm and the dimension of ``"ln_structured"``.
LN_NORM = 2
LN_DIM = 0


def prune(
    model: Model,
    method: str,
    amount: float,
    *,
    out_dir: str | os.PathLike[str],
    meter: EnergyMeter | None = None,
    name: str | None = None,
) -> OptimizationResult:
    """Prune ``amount`` (a fraction in (0, 1)) of every Linear/Conv weight of a torch model,
    or of every Linear weight of a transformers model.

    ``method`` is ``"l1_unstructured"`` or ``"ln_structured"`` (see the module docstring).
    The variant is saved into ``out_dir`` as ``<name>.pt`` (a transformers model: into the
    folder ``<name>``; default name ``"pruned-<method>-<amount>"``). ``meter`` measures the
    step (a new ``EnergyMeter()`` when None). The model given is not changed.
    """
    from ..workloads.loaders.torch_loader import TorchModel

    framework = getattr(model, "framework", None)
    if framework not in FRAMEWORKS or (framework == "torch"
                                       and not isinstance(model, TorchModel)):
        raise wrong_framework(model, "pruning", dict.fromkeys(FRAMEWORKS, METHODS))
    if method not in METHODS:
        raise unknown_method(method, str(framework), METHODS, "pruning")
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not 0 < amount < 1:
        raise ConfigError(f"amount must be a fraction between 0 and 1 (exclusive), "
                          f"not {amount!r}")
    amount = float(amount)
    variant = check_name(f"pruned-{method}-{amount:g}" if name is None else name)
    if framework == "transformers":
        return _transformers.prune(_transformers.as_transformers(model), method, amount,
                                   ln_norm=LN_NORM, out_dir=out_dir, meter=meter,
                                   variant=variant)
    module = _torch.eager_module(model, "pruning")
    if not _prunable(module):
        raise ConfigError("pruning works on Linear and Conv1d/2d/3d weights, and this model "
                          "has none")
    rows = _torch.probe_rows(model, None, "pruning", _torch.TRACE_SAMPLES)
    sample = None if rows is None else _torch.batch(model, rows)
    path = variant_path(out_dir, variant, ".pt")

    def work() -> float:
        pruned = _torch.clone(module).eval()
        sparsity = _prune(pruned, method, amount)
        _torch.save_torchscript(pruned, path, sample)
        return sparsity

    sparsity, measurement = measured(meter, f"pruning:{variant}", work)
    return _torch.saved_result(path, model, measurement, name=variant, kind="pruning",
                               method=method, amount=amount, sparsity=sparsity)


def _prunable(module: torch.nn.Module) -> list[torch.nn.Module]:
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return [m for m in module.modules()
            if isinstance(m, kinds) and isinstance(getattr(m, "weight", None), torch.nn.Parameter)]


def _prune(module: torch.nn.Module, method: str, amount: float) -> float:
    """Prune every Linear/Conv weight in place, permanently; return the fraction of zeros."""
    import torch
    from torch.nn.utils import prune

    zeros = total = 0
    for layer in _prunable(module):
        if method == "l1_unstructured":
            prune.l1_unstructured(layer, "weight", amount=amount)  # type: ignore[no-untyped-call]
        else:
            prune.ln_structured(  # type: ignore[no-untyped-call]
                layer, "weight", amount=amount, n=LN_NORM, dim=LN_DIM)
        prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
        weight = layer.get_parameter("weight").detach()
        zeros += weight.numel() - int(torch.count_nonzero(weight).item())
        total += weight.numel()
    return zeros / total
