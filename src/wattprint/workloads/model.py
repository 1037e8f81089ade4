"""The uniform model interface every loader returns."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .images import ImageSpec

__all__ = ["IMAGE_FRAMEWORKS", "InputSpec", "Model", "dir_size_bytes"]

#: The frameworks whose models may take image files (``predict(folder)``); a transformers
#: model does when it is an image classifier (its first input is image-shaped).
IMAGE_FRAMEWORKS = frozenset({"torch", "onnx", "keras", "tensorflow", "transformers"})


class InputSpec(NamedTuple):
    """One input of a model: its name, shape (``None`` for a dynamic axis) and dtype."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str


class Model(abc.ABC):
    """A loaded model, whatever its framework.

    ``predict(batch)`` runs inference on a batch and returns the model's natural output as a
    NumPy array (logits or probabilities for classifiers, values for regressors); a batch is a
    NumPy array of samples (or a list of strings for text models). Image models also take image
    files: a path, a list of paths, or a folder of images, made into a batch by
    :attr:`preprocess` (see :mod:`wattprint.workloads.images`). ``train_epoch(data)`` trains
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
    #: How image files become this model's input: the ``preprocess`` option resolved against
    #: the model's input metadata; ``None`` until it is given or first needed.
    preprocess: ImageSpec | None = None
    #: What a reader of this model's runs should know about how it was loaded (a hub model's
    #: cached copy, loaded because the hub could not be reached); a sweep's inference runs of
    #: it carry these in their ``measurement_notes``.
    notes: tuple[str, ...] = ()

    @abc.abstractmethod
    def predict(self, batch: Any) -> Any:
        """Run the model on one batch; return a NumPy array."""

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """Train one epoch on ``data`` (``(x, y)`` or a :class:`Dataset`); return the mean loss."""
        raise NotImplementedError(f"{self.framework} models cannot be trained by wattprint")

    def set_preprocess(self, value: Any) -> None:
        """Take the ``preprocess`` option (an :class:`~wattprint.workloads.images.ImageSpec`
        or a mapping of its fields) and resolve it against the model's input now, so that a
        spec that contradicts the model fails when the model loads. ``None`` does nothing."""
        if value is None:
            return
        from .images import ImageSpec

        self.preprocess = self._resolve_images(ImageSpec.from_option(value))

    def read_images(self, source: Any) -> NDArray[Any]:
        """The batch this model takes for the image files ``source`` names: a path, a list of
        paths, or a folder of images (one sample per image, in sorted order)."""
        from .images import read_images

        if self.preprocess is None:
            self.preprocess = self._resolve_images(None)
        return read_images(source, self.preprocess)

    def image_input(self) -> ImageSpec | None:
        """The resolved spec by which images become this model's input (kept as
        :attr:`preprocess`), or ``None`` when its input is no image: flat features, text, or
        a framework that reads no image files. A model that takes images but whose layout
        cannot be told (a PyTorch module without ``input_shape``) raises the
        :class:`~wattprint.errors.ConfigError` that names the fix."""
        if self.preprocess is not None:
            return self.preprocess
        if self.framework not in IMAGE_FRAMEWORKS or self._takes_text():
            return None
        sample = self.image_sample_shape()
        if sample is not None and len(sample) != 3:
            return None
        self.preprocess = self._resolve_images(None)
        return self.preprocess

    def image_sample_shape(self) -> tuple[int | None, ...] | None:
        """The shape of one sample of the first input (``None`` axes: any size), which image
        files are made to fit; ``None`` when the model does not say."""
        first = self.inputs[0] if self.inputs else None
        if first is None or first.shape is None or len(first.shape) < 2:
            return None
        return tuple(first.shape[1:])

    def _takes_text(self) -> bool:
        """Whether the first input is strings (then a list of strings is text, not files)."""
        return bool(self.inputs) and self.inputs[0].dtype in ("str", "string", "object")

    def _resolve_images(self, given: ImageSpec | None) -> ImageSpec:
        from .images import resolve

        where = str(self.path) if self.path is not None else f"this {self.framework} model"
        dtype = self.inputs[0].dtype if self.inputs else None
        return resolve(given, self.image_sample_shape(), dtype, where=where)

    def describe(self) -> dict[str, Any]:
        """JSON-ready metadata (``notes`` only where there are some)."""
        described: dict[str, Any] = {
            "framework": self.framework,
            "task": self.task,
            "path": None if self.path is None else str(self.path),
            "num_parameters": self.num_parameters,
            "size_bytes": self.size_bytes,
            "dtype": self.dtype,
            "inputs": [spec._asdict() for spec in self.inputs],
            "trainable": self.trainable,
            "preprocess": None if self.preprocess is None else self.preprocess.as_dict(),
        }
        if self.notes:
            described["notes"] = list(self.notes)
        return described

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
