"""What an optimization step returns: the variant, its figures, and the energy of making it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..measurement import Measurement
from ..workloads.model import Model

__all__ = ["KINDS", "OptimizationResult"]

#: The kinds of step: ``"quantization"``, ``"pruning"``, ``"export"``.
KINDS = ("quantization", "pruning", "export")


@dataclass(frozen=True)
class OptimizationResult:
    """A model variant and what it cost to make.

    ``model`` is the variant: for torch and ONNX loaded back from ``path`` (the file it was
    saved to), for transformers models the variant as made, saved into the folder ``path``;
    either way ``size_bytes`` is its real size on disk. ``num_parameters`` counts every weight
    the variant stores (the int8 weights of a quantized layer included);
    ``effective_parameters`` counts the non-zero ones (see
    :func:`~wattprint.optimize.effective_parameters`). ``sparsity`` is the fraction of zeros
    in the weights a pruning step pruned (``None`` for other steps).
    ``measurement`` is the energy of the step, with its provenance and footprint.
    """

    model: Model
    #: The variant's name, also the stem of its file: ``"int8-dynamic"``, ``"fp16"``, ...
    name: str
    kind: str
    method: str
    target_dtype: str | None
    amount: float | None
    sparsity: float | None
    path: Path
    size_bytes: int
    num_parameters: int
    effective_parameters: int
    measurement: Measurement

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, the variant's metadata and the measurement."""
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "target_dtype": self.target_dtype,
            "amount": self.amount,
            "sparsity": self.sparsity,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "num_parameters": self.num_parameters,
            "effective_parameters": self.effective_parameters,
            "model": self.model.describe(),
            "measurement": self.measurement.to_dict(),
        }

    def __repr__(self) -> str:
        return (f"<OptimizationResult {self.name!r} {self.kind}: {self.size_bytes} bytes, "
                f"{self.effective_parameters}/{self.num_parameters} non-zero parameters, "
                f"{self.measurement.energy_j:.3g} J>")
