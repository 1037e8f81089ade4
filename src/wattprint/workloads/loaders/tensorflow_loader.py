"""TensorFlow SavedModel folders (the ``tensorflow`` extra), run through a serving signature.

A folder holding ``saved_model.pb`` (written by ``tf.saved_model.save``, or by ``model.export``
of a Keras 3 model) is read with ``tf.saved_model.load``. A SavedModel is code, though not
Python: its graphs run TensorFlow ops when it is loaded (the initializers of its resources)
and when it predicts (its signatures), and those ops can read and write any file
(``tf.io.read_file``, ``tf.io.write_file``). So it loads only with ``trust=True``; without it
:class:`~wattprint.errors.UntrustedModelError`. A Keras model loads safely from its ``.keras``
file instead (Keras's safe mode), or from an ONNX export.

Inference calls one signature of the folder: ``serving_default`` unless the option
``signature`` names another. The signature's inputs are the model's :attr:`Model.inputs`; a
batch is an array for a signature of one input, or a dict of arrays by input name, cast to the
dtype the signature declares. ``predict`` returns the signature's first output, by name, as
NumPy, or the output named by the option ``output``.

Parameters are the elements of the model's variables, trainable and not: the variables the
exported object lists (a Keras export lists its model's) or, for a ``tf.Module``, every
variable reachable from it. The state of Keras's random seed generators (of ``Dropout``
layers) is no parameter and is left out, as Keras's ``count_params`` leaves it out.

``predict`` also takes image files (a path, paths, or a folder) for a signature of one image
input, read as its shape says (``(None, H, W, 3)``: NHWC); the option ``preprocess`` completes
or checks that spec (see :mod:`wattprint.workloads.images`).

A SavedModel keeps no training step wattprint can drive: ``train_epoch`` raises
``NotImplementedError``; train the Keras model the folder was exported from instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError, MissingExtra, ModelError, UntrustedModelError
from ..images import is_image_source
from ..model import InputSpec, Model, dir_size_bytes
from ..registry import supported_formats
from ._common import ANSI as _ANSI
from ._common import check_options, model_error

__all__ = ["DEFAULT_SIGNATURE", "LOAD_OPTIONS", "SavedModel", "load"]

#: The signature ``predict`` calls unless the option ``signature`` names another.
DEFAULT_SIGNATURE = "serving_default"

_OPTIONS = ("output", "preprocess", "signature")
#: The options :func:`load` takes (a config checks them before anything runs).
LOAD_OPTIONS = _OPTIONS
#: In the name of the state of a Keras random seed generator: RNG state, not a parameter.
_SEED_STATE = "seed_generator_state"
#: Lines of a TensorFlow error that say nothing about the cause.
_BOILERPLATE = ("Graph execution error", "Detected at node", "<stack traces unavailable>")


def _import_tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError as err:
        raise MissingExtra("TensorFlow SavedModel folders", "tensorflow") from err
    return tf


def _error(path: Path, reason: str) -> ModelError:
    return model_error(path, reason, as_what="a TensorFlow SavedModel")


def _reason(err: BaseException) -> str:
    """The first telling line of a TensorFlow error, without colours, in 300 characters."""
    lines = [line.strip() for line in _ANSI.sub("", str(err)).strip().splitlines()]
    line = next((text for text in lines if text and not text.startswith(_BOILERPLATE)),
                type(err).__name__)
    return line if len(line) <= 300 else line[:294].rstrip() + " [...]"


def load(path: Path, *, task: str | None = None, trust: bool = False,
         **options: Any) -> SavedModel:
    """Load the SavedModel folder ``path`` and pick its serving signature.

    Options: ``signature`` (default ``"serving_default"``), ``output`` (the output
    ``predict`` returns; default the first by name). ``trust=True`` is required: the
    folder's graphs run when it is loaded and when it predicts (see the module docstring).
    """
    path = Path(path)
    check_options(options, _OPTIONS, "a TensorFlow SavedModel", where=path)
    tf = _import_tf()
    graph = path / "saved_model.pb"
    if not graph.is_file():
        raise _error(path, "no saved_model.pb in the folder")
    if graph.stat().st_size == 0:
        raise _error(path, "saved_model.pb is empty")
    if not trust:
        raise UntrustedModelError(
            f"{path}: a TensorFlow SavedModel holds code: its graphs run TensorFlow ops when it "
            "is loaded (resource initializers) and when it predicts (its signatures), and those "
            "ops can read and write any file (tf.io.read_file, tf.io.write_file). Load it with "
            "trust=True only if you trust its source (in a sweep YAML: trust: true on the "
            "model), or use a format that holds no code: the Keras model's .keras file (loaded "
            f"in Keras's safe mode), or an ONNX export. Supported: {supported_formats()}")
    try:  # trusted: the user vouched for the ops this folder runs
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, LookupError, TypeError, AttributeError,
            tf.errors.OpError) as err:
        raise _error(path, _reason(err)) from err
    name = str(options.get("signature", DEFAULT_SIGNATURE))
    signatures = dict(getattr(loaded, "signatures", None) or {})
    if name not in signatures:
        have = (f"its signatures are: {', '.join(sorted(signatures))}" if signatures else
                "it has no signatures (export one: model.export(path) for Keras, or "
                "tf.saved_model.save(obj, path, signatures=obj.__call__))")
        raise _error(path, f"no signature {name!r}; {have}")
    model = SavedModel(loaded, signatures[name], path=path, task=task, signature=name,
                       output=options.get("output"))
    model.set_preprocess(options.get("preprocess"))
    return model


class SavedModel(Model):
    """A loaded SavedModel. ``loaded`` is what ``tf.saved_model.load`` returned and
    ``function`` the signature that :meth:`predict` calls."""

    framework = "tensorflow"

    def __init__(self, loaded: Any, function: Any, *, path: Path, task: str | None = None,
                 signature: str = DEFAULT_SIGNATURE, output: str | None = None) -> None:
        self.loaded = loaded
        self.function = function
        self.signature = signature
        self.path = path
        self.task = task
        self.size_bytes = dir_size_bytes(path)
        variables = _parameters(loaded)
        self.num_parameters = sum(_elements(v) for v in variables)
        self.dtype = _weights_dtype(variables)
        specs: dict[str, Any] = dict(function.structured_input_signature[1])
        self.inputs = tuple(
            InputSpec(name, None if spec.shape.rank is None else tuple(spec.shape.as_list()),
                      spec.dtype.name)
            for name, spec in specs.items()
        )
        #: Input name -> the NumPy dtype a batch is cast to (``None``: strings, given as is).
        self._casts: dict[str, Any] = {
            name: None if spec.dtype.name == "string" else spec.dtype.as_numpy_dtype
            for name, spec in specs.items()
        }
        self._shapes = {spec.name: spec.shape for spec in self.inputs}
        outputs = sorted(function.structured_outputs)
        if output is not None and output not in outputs:
            raise ConfigError(f"{path}: signature {signature!r} has no output {output!r}; "
                              f"its outputs are: {', '.join(outputs)}")
        self.output: str = output if output is not None else outputs[0]
        self.outputs = tuple(outputs)
        self.trainable = False
        tf = _import_tf()
        self._constant = tf.constant
        self._call_errors = (TypeError, ValueError, tf.errors.InvalidArgumentError)

    def predict(self, batch: Any) -> NDArray[Any]:
        """The signature's output (``self.output``) on ``batch``, as NumPy; ``batch`` may be
        image files (a path, paths, or a folder; see ``preprocess``)."""
        if is_image_source(batch) and not self._takes_text():
            batch = self.read_images(batch)
        feeds = self._feeds(batch)
        try:
            result = self.function(**{name: self._constant(v) for name, v in feeds.items()})
        except self._call_errors as err:
            raise ConfigError(f"the batch does not fit signature {self.signature!r} "
                              f"(inputs: {self._described()}): {_reason(err)}") from err
        out: NDArray[Any] = result[self.output].numpy()
        return out

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """Not possible: a SavedModel holds inference graphs but no training step."""
        raise NotImplementedError(
            f"{self.path}: a TensorFlow SavedModel keeps no training step that wattprint can "
            "run; train the Keras model it was exported from (a .keras file) instead")

    def _feeds(self, batch: Any) -> dict[str, Any]:
        """The signature's keyword arguments for ``batch``, cast to the declared dtypes."""
        if isinstance(batch, Mapping):
            if set(batch) != set(self._casts):
                raise ConfigError(f"signature {self.signature!r} takes inputs "
                                  f"{self._described()}, not {', '.join(map(str, batch))}")
            items = list(batch.items())
        elif len(self._casts) == 1:
            items = [(next(iter(self._casts)), batch)]
        else:
            raise ConfigError(f"signature {self.signature!r} takes several inputs: give a dict "
                              f"of arrays by name ({self._described()})")
        feeds: dict[str, Any] = {}
        for name, value in items:
            dtype = self._casts[name]
            if dtype is None:
                feeds[name] = value
                continue
            array = np.asarray(value, dtype=dtype)
            shape = self._shapes[name]
            if shape is not None and (len(shape) != array.ndim or any(
                    d is not None and d != n for d, n in zip(shape, array.shape, strict=True))):
                raise ConfigError(f"input {name!r} of signature {self.signature!r} has shape "
                                  f"{shape} (None: any size), not {array.shape}")
            feeds[name] = array
        return feeds

    def _described(self) -> str:
        return ", ".join(f"{spec.name} {spec.shape} {spec.dtype}" for spec in self.inputs)


def _parameters(loaded: Any) -> list[Any]:
    """The model's variables, each once, without Keras's seed generator state."""
    tf = _import_tf()
    listed = [*getattr(loaded, "trainable_variables", ()),
              *getattr(loaded, "non_trainable_variables", ())]
    if not listed:  # a tf.Module keeps no variable lists: walk its object graph
        listed = [obj for obj in tf.train.TrackableView(loaded).descendants()
                  if isinstance(obj, tf.Variable)]
    seen: set[int] = set()
    variables = []
    for v in listed:
        if id(v) in seen or _SEED_STATE in v.name:
            continue
        seen.add(id(v))
        variables.append(v)
    return variables


def _elements(variable: Any) -> int:
    return int(variable.shape.num_elements() or 0)


def _weights_dtype(variables: list[Any]) -> str:
    """The dtype that holds most of the parameters; ``"float32"`` when there are none."""
    sizes: Counter[str] = Counter()
    for v in variables:
        sizes[v.dtype.name] += _elements(v)
    return sizes.most_common(1)[0][0] if sizes else "float32"
