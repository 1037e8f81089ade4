"""The uniform model interface every loader returns."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["InputSpec", "Model", "dir_size_bytes"]


class InputSpec(NamedTuple):
    """One input of a model: its name, shape (``None`` for a dynamic axis) and dtype."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str


class Model(abc.ABC):
    """A loaded model, whatever its framework.

    ``predict(batch)`` runs inference on a batch and returns the model's natural output as a
    NumPy array (logits or probabilities for classifiers, values for regressors); a batch is a
    NumPy array of samples (or a list of strings for text models). ``train_epoch(data)`` trains
    one pass over ``(x, y)`` where the framework allows it and returns the mean loss.
    """

    #: ``"torch"``, ``"onnx"``, ``"sklearn"``, ``"keras"``, ``"tensorflow"``, ``"transformers"``.
    framework: str
    #: What the model does, when known: ``"classification"``, ``"regression"``,
    #: ``"text-generation"``, ``"text-classification"``, ...
    task: str | None = None
    #: Where it was loaded from (``None`` for a model made in memory).
    path: Path | None = None
    #: Parameters as the framework counts them (trainable and not).
    num_parameters: int = 0
    #: Size on disk of the file or folder it came from; in memory when it has no file.
    size_bytes: int = 0
    #: The precision of the weights: ``"float32"``, ``"float16"``, ``"int8"``, ...
    dtype: str = "float32"
    inputs: tuple[InputSpec, ...] = ()
    #: True when :meth:`train_epoch` works for this model.
    trainable: bool = False

    @abc.abstractmethod
    def predict(self, batch: Any) -> Any:
        """Run the model on one batch; return a NumPy array."""

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """Train one epoch on ``data`` (``(x, y)`` or a :class:`Dataset`); return the mean loss."""
        raise NotImplementedError(f"{self.framework} models cannot be trained by wattprint")

    def describe(self) -> dict[str, Any]:
        """JSON-ready metadata."""
        return {
            "framework": self.framework,
            "task": self.task,
            "path": None if self.path is None else str(self.path),
            "num_parameters": self.num_parameters,
            "size_bytes": self.size_bytes,
            "dtype": self.dtype,
            "inputs": [spec._asdict() for spec in self.inputs],
            "trainable": self.trainable,
        }

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return (f"<{type(self).__name__} {self.framework} {self.task or ''} "
                f"{self.num_parameters} params{where}>")


def dir_size_bytes(path: str | os.PathLike[str]) -> int:
    """Size on disk of a file, or of every file under a folder."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
