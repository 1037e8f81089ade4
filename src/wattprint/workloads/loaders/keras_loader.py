"""Keras 3 models: ``.keras`` archives and legacy ``.h5`` files.

Loading runs in Keras's safe mode, which refuses to deserialize the Python code of a ``Lambda``
layer (arbitrary code, run on load); such a file loads only with ``trust=True``.

Inference uses ``model.predict_on_batch``: the compiled predict function without the data
pipeline that ``model.predict`` builds on every call (on a small model, about 0.6 ms a batch
instead of 70 ms), with the same results. Training runs ``model.fit`` for one epoch; a model
saved without a training configuration is first compiled with Adam and a loss chosen from the
task. A compiled ``.h5`` model is compiled again from its own training configuration when it
is loaded, with a fresh optimizer: the one Keras 3 rebuilds from an ``.h5`` file cannot train.

``predict`` also takes image files (a path, paths, or a folder), read as the model's input
shape says (``(None, H, W, 3)``: NHWC); the one option, ``preprocess``, completes or checks
that spec (see :mod:`wattprint.workloads.images`).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, MissingExtra, ModelError, UntrustedModelError
from ..datasets import CLASSIFICATION_TASKS, as_dataset
from ..images import is_image_source
from ..model import InputSpec, Model, dir_size_bytes

__all__ = ["LOAD_OPTIONS", "KerasModel", "load"]

#: The options :func:`load` takes (a config checks them before anything runs).
LOAD_OPTIONS: tuple[str, ...] = ("preprocess",)

#: What Keras and h5py raise on a file they cannot read.
_LOAD_ERRORS = (ValueError, OSError, KeyError, TypeError, AttributeError, zipfile.BadZipFile)


def _import_keras() -> Any:
    try:
        import keras
    except ImportError as err:
        raise MissingExtra("Keras models (.keras, .h5)", "keras") from err
    return keras


def _corrupt(path: Path, reason: str) -> ModelError:
    from ..registry import supported_formats

    return ModelError(f"{path}: cannot be loaded as a Keras model: {reason}. "
                      f"Supported: {supported_formats()}")


def _is_unsafe(err: ValueError) -> bool:
    """Whether Keras refused the file because safe mode blocks code in it."""
    text = str(err)
    return "safe_mode" in text or "unsafe_deserialization" in text


def _check_options(options: dict[str, Any], allowed: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"unknown option(s) for a Keras model: {', '.join(unknown)} "
                          f"(accepted: {accepted})")


def load(path: Path, *, task: str | None = None, trust: bool = False,
         **options: Any) -> KerasModel:
    """Load a ``.keras`` or ``.h5`` model; code in ``Lambda`` layers only with ``trust=True``."""
    _check_options(options, LOAD_OPTIONS)
    keras = _import_keras()
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise _corrupt(path, "not a zip archive, which every .keras file is")
    try:
        model = keras.saving.load_model(str(path), safe_mode=not trust)
    except ValueError as err:
        if not trust and _is_unsafe(err):
            raise UntrustedModelError(
                f"{path}: holds Python code (a Lambda layer) that runs when it is loaded, which "
                f"Keras's safe mode refuses; load it only if you trust its source, with "
                f"trust=True"
            ) from err
        raise _corrupt(path, str(err)) from err
    except _LOAD_ERRORS as err:
        raise _corrupt(path, f"{type(err).__name__}: {err}") from err
    if not isinstance(model, keras.Model):
        raise _corrupt(path, f"it holds a {type(model).__name__}, not a model")
    if path.suffix.lower() == ".h5" and getattr(model, "compiled", False):
        _fresh_optimizer(model, path)
    loaded = KerasModel(model, path=path, task=task)
    loaded.set_preprocess(options.get("preprocess"))
    return loaded


def _fresh_optimizer(model: Any, path: Path) -> None:
    """Compile a model loaded from a legacy ``.h5`` file again, from its own training config.

    Keras 3 builds the optimizer of an ``.h5`` file over the model's own variables only, not
    its layers' (none, for a ``Sequential``), so the first ``fit`` fails with "Unknown variable
    ... This optimizer can only be called for the variables it was originally built with"; the
    saved optimizer state was not restored into it either. Compiled again from the same
    config (optimizer, loss, metrics), the model trains with a fresh optimizer.
    """
    try:
        model.compile_from_config(model.get_compile_config())
    except (ValueError, TypeError, KeyError) as err:
        raise _corrupt(path, f"its training configuration cannot be rebuilt: {err}") from err


class KerasModel(Model):
    """A Keras 3 model. ``model`` is the ``keras.Model`` itself."""

    framework = "keras"

    def __init__(self, model: Any, *, path: Path | None = None, task: str | None = None) -> None:
        self.model = model
        self.path = path
        self.task = task
        self.num_parameters = int(model.count_params())
        self.size_bytes = (dir_size_bytes(path) if path is not None
                           else sum(int(np.asarray(w).nbytes) for w in model.get_weights()))
        self.dtype = _weights_dtype(model)
        self.inputs = _input_specs(model)
        self.trainable = True

    def predict(self, batch: Any) -> Any:
        """The model's output on ``batch`` as NumPy (a list or dict for several outputs);
        ``batch`` may be image files (a path, paths, or a folder; see ``preprocess``)."""
        if is_image_source(batch) and not self._takes_text():
            batch = self.read_images(batch)
        return self.model.predict_on_batch(batch)

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """One epoch of ``model.fit`` over ``data`` (``(x, y)`` or a Dataset), shuffled.

        Returns the epoch's mean loss. An uncompiled model is compiled first with Adam and, for
        classification, sparse categorical cross-entropy (binary for one sigmoid output; from
        logits unless the last activation is softmax or sigmoid) or, for regression, mean
        squared error. The task is the model's, else the data's.
        """
        _check_options(options)
        dataset = as_dataset(data)
        if dataset.y is None:
            raise ConfigError(f"training needs labels; dataset {dataset.name!r} has none")
        if not getattr(self.model, "compiled", False):
            self._compile(self.task if _loss_task(self.task) else dataset.task)
        history = self.model.fit(np.asarray(dataset.x), dataset.y, epochs=1,
                                 batch_size=batch_size, verbose=0, shuffle=True)
        return float(history.history["loss"][-1])

    def _compile(self, task: str | None) -> None:
        kind = _loss_task(task)
        if kind is None:
            raise ConfigError(f"cannot choose a training loss for task {task!r}: pass "
                              f"task='classification' or 'regression', or compile the model")
        keras = _import_keras()
        loss: Any = "mse"
        if kind == "classification":
            activation = _last_activation(self.model)
            outputs = getattr(self.model, "outputs", None) or []
            units = outputs[0].shape[-1] if outputs else None
            if units == 1:
                loss = keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
            else:
                loss = keras.losses.SparseCategoricalCrossentropy(
                    from_logits=activation != "softmax")
        self.model.compile(optimizer="adam", loss=loss)


def _loss_task(task: str | None) -> str | None:
    if task in CLASSIFICATION_TASKS:
        return "classification"
    return "regression" if task == "regression" else None


def _last_activation(model: Any) -> str:
    """The name of the last layer's activation (``"softmax"``, ``"linear"``, ...)."""
    layers = getattr(model, "layers", None) or []
    if not layers:
        return ""
    last = layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    return str(getattr(getattr(last, "activation", None), "__name__", ""))


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _weights_dtype(model: Any) -> str:
    """The dtype that holds most of the parameters; the model's own when it has no weights."""
    sizes: Counter[str] = Counter()
    for weight in model.weights:
        sizes[_dtype_name(weight.dtype)] += int(np.prod(weight.shape))
    if sizes:
        return sizes.most_common(1)[0][0]
    return _dtype_name(getattr(model, "dtype", "float32"))


def _input_specs(model: Any) -> tuple[InputSpec, ...]:
    try:
        inputs = model.inputs or []
    except (AttributeError, ValueError):  # a subclassed model that was never called
        return ()
    return tuple(
        InputSpec(str(getattr(t, "name", f"input_{i}")),
                  None if t.shape is None else tuple(t.shape),
                  _dtype_name(t.dtype))
        for i, t in enumerate(inputs)
    )
