"""Which loader opens which model: by file suffix, or by the shape of a folder.

Built-in loaders are named by import path and imported only when a file of theirs is loaded,
so no framework is imported before it is needed. Users add their own with
:func:`register_format`: a loader function, or a class constructed with the file's path as
greenAI's ``DLModelFactory.register_format(".ext", MyModelClass)`` takes it.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, ModelError, UntrustedModelError, WattprintError
from .model import Model, dir_size_bytes

__all__ = ["Loader", "load_model", "register_format", "supported_formats"]


class Loader(Protocol):
    def __call__(
        self, path: Path, *, task: str | None, trust: bool, **options: Any
    ) -> Model: ...


#: Suffix -> loader, or ``"module:function"`` of a built-in loader (imported on first use).
_SUFFIXES: dict[str, Loader | str] = {
    ".pt": "wattprint.workloads.loaders.torch_loader:load",
    ".pth": "wattprint.workloads.loaders.torch_loader:load",
    ".onnx": "wattprint.workloads.loaders.onnx_loader:load",
    ".skops": "wattprint.workloads.loaders.sklearn_loader:load",
    ".joblib": "wattprint.workloads.loaders.sklearn_loader:load",
    ".pkl": "wattprint.workloads.loaders.sklearn_loader:load",
    ".pickle": "wattprint.workloads.loaders.sklearn_loader:load",
    ".keras": "wattprint.workloads.loaders.keras_loader:load",
    ".h5": "wattprint.workloads.loaders.keras_loader:load",
    ".safetensors": "wattprint.workloads.loaders.torch_loader:load",
}

#: The built-in table, to tell what :func:`register_format` added or replaced.
_BUILT_IN = dict(_SUFFIXES)

#: Folder shapes, tried in order: a file that marks the shape, and the loader.
_FOLDERS: list[tuple[str, Loader | str]] = [
    ("saved_model.pb", "wattprint.workloads.loaders.tensorflow_loader:load"),
    ("config.json", "wattprint.workloads.loaders.transformers_loader:load"),
]


def register_format(suffix: str, loader: Loader | type[Any] | str) -> None:
    """Open files ending in ``suffix`` (``".mymodel"``) with ``loader``, one of:

    - a function ``loader(path, *, task, trust, **options)`` that returns a :class:`Model`;
    - a class, as greenAI's model factory takes it: the file loads as
      ``MyModelClass(path, **options)``, the options given to :func:`load_model` passed as
      keywords, and ``task`` and ``trust`` too where the constructor has parameters of those
      names (a class that opens formats holding code should take ``trust``). An instance of a
      :class:`Model` subclass is the model; an object of any other class is wrapped in a
      :class:`Model` whose ``model`` attribute is the object, which predicts with its
      ``predict(batch)`` (or greenAI's ``run(batch)``), counts its parameters with its
      ``num_parameters`` (or greenAI's ``get_number_of_parameters()``; 0 when it has
      neither) and trains with its ``train_epoch(data, batch_size=..., **options)`` if it has
      one. Its ``framework`` and ``dtype`` are the object's own, where it has them;
    - ``"package.module:Name"``: a class or loader function named by import path, as a config
      or a command line names one, imported when the first such file is loaded. Named in
      text, it is code from wherever that text came from: unless it is a :class:`Model`
      subclass, it is used only when :func:`load_model` is given ``trust=True`` (else
      :class:`~wattprint.errors.UntrustedModelError`), as with a ``model_class`` that is no
      ``torch.nn.Module``. A class or function passed itself is the caller's own code, and
      needs no trust.

    A suffix registered again replaces the earlier loader, the built-in ones included.
    """
    if not isinstance(suffix, str) or not suffix.startswith(".") or len(suffix) < 2:
        raise ConfigError(f"a format suffix starts with a dot, like '.onnx', not {suffix!r}")
    entry: Loader
    if isinstance(loader, str) and _is_import_path(loader):
        entry = _NamedLoader(loader)
    elif isinstance(loader, type):
        entry = _ClassLoader(loader)
    elif callable(loader):
        entry = loader
    else:
        raise ConfigError(f"the loader for {suffix!r} must be callable (a function or a "
                          f"class) or named 'package.module:Name', not {loader!r}")
    _SUFFIXES[suffix.lower()] = entry


def registered_formats() -> dict[str, Loader | str]:
    """The suffixes :func:`register_format` added or replaced in this process, with their
    loaders: what a process that did not inherit this one's memory (a Ray worker) is given
    to :func:`adopt_formats`."""
    return {suffix: entry for suffix, entry in _SUFFIXES.items()
            if _BUILT_IN.get(suffix) is not entry}


def adopt_formats(formats: dict[str, Loader | str]) -> None:
    """Register ``formats`` (:func:`registered_formats` of another process) in this one."""
    _SUFFIXES.update(formats)


def _is_import_path(text: str) -> bool:
    """Whether ``text`` reads ``package.module:Name``."""
    module, sep, name = text.partition(":")
    return bool(sep) and all(part.isidentifier() for part in (*module.split("."),
                                                              *name.split(".")))


class _ClassLoader:
    """Loads a file as ``cls(path, **options)``: greenAI's way (see :func:`register_format`)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, path: Path, *, task: str | None, trust: bool, **options: Any) -> Model:
        cls = self.cls
        name = cls.__qualname__
        kwargs = dict(options)
        try:
            signature: inspect.Signature | None = inspect.signature(cls)
        except (TypeError, ValueError):  # no signature to read: the options go as they are
            signature = None
        if signature is not None:
            named = [p.name for p in signature.parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            for key, value in (("task", task), ("trust", trust)):
                if key in named and key not in kwargs:
                    kwargs[key] = value
            try:
                signature.bind(path, **kwargs)
            except TypeError as err:
                raise ConfigError(f"{path}: {name}(path, **{options!r}) does not fit its "
                                  f"constructor: {err} (it takes: {', '.join(named)})") from err
        try:
            made = cls(path, **kwargs)
        except WattprintError:
            raise
        except (OSError, ValueError, LookupError, TypeError, RuntimeError) as err:
            raise ModelError(f"{path}: {name} could not load it: {type(err).__name__}: "
                             f"{err}") from err
        if isinstance(made, Model):
            if made.path is None:
                made.path = path
            if made.task is None:
                made.task = task
            return made
        return _ObjectModel(made, path=path, task=task)

    def __repr__(self) -> str:
        return f"<class loader {self.cls.__module__}.{self.cls.__qualname__}>"


class _NamedLoader:
    """A class or loader function named ``"package.module:Name"``, imported on first use; only
    a :class:`Model` subclass is used without ``trust``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def __call__(self, path: Path, *, task: str | None, trust: bool, **options: Any) -> Model:
        module_name, _, qualname = self.spec.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as err:
            raise ModelError(f"{path}: the loader {self.spec!r} could not be imported: "
                             f"{err}") from err
        is_model_class = isinstance(found, type) and issubclass(found, Model)
        if not (trust or is_model_class):
            kind = "class" if isinstance(found, type) else type(found).__name__
            raise UntrustedModelError(
                f"{path}: the loader {self.spec!r} is a {kind}, not a subclass of "
                "wattprint.Model. Named by text (a config, a command line), a loader may name "
                "any callable and so run any code ('os:system' would run a shell command); "
                "without trust=True only wattprint.Model subclasses are used. Register the "
                "class itself in your Python code, or pass trust=True (in a sweep YAML: "
                "trust: true on the model) only if you trust where the name came from")
        if isinstance(found, type):
            return _ClassLoader(found)(path, task=task, trust=trust, **options)
        if not callable(found):
            raise ModelError(f"{path}: the loader {self.spec!r} is a {type(found).__name__}, "
                             "not a class or function")
        made: Model = found(path, task=task, trust=trust, **options)
        return made

    def __repr__(self) -> str:
        return f"<loader {self.spec!r}>"


class _ObjectModel(Model):
    """An object of a registered class that is no :class:`Model`, seen as one: ``model`` is the
    object (see :func:`register_format`)."""

    def __init__(self, obj: Any, *, path: Path, task: str | None) -> None:
        run = getattr(obj, "predict", None)
        if not callable(run):
            run = getattr(obj, "run", None)
        if not callable(run):
            raise ModelError(f"{path}: {type(obj).__qualname__} has no predict(batch) or "
                             "run(batch) method; a registered class needs one, or subclass "
                             "wattprint.Model")
        self.model = obj
        self._run = run
        self.path = path
        self.task = task if task is not None else getattr(obj, "task", None)
        self.framework = str(getattr(obj, "framework", None) or type(obj).__qualname__)
        self.num_parameters = _parameter_count(obj, path)
        self.size_bytes = dir_size_bytes(path)
        self.dtype = str(getattr(obj, "dtype", None) or Model.dtype)
        self.trainable = callable(getattr(obj, "train_epoch", None))

    def predict(self, batch: Any) -> Any:
        """The object's ``predict(batch)`` (or ``run(batch)``)."""
        return self._run(batch)

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """The object's ``train_epoch(data, batch_size=..., **options)``, as a float."""
        if not self.trainable:
            return super().train_epoch(data, batch_size=batch_size, **options)
        return float(self.model.train_epoch(data, batch_size=batch_size, **options))


def _parameter_count(obj: Any, path: Path) -> int:
    """``obj.num_parameters`` (an int, or a method), else greenAI's
    ``obj.get_number_of_parameters()``; 0 when the object tells neither."""
    count: Any = getattr(obj, "num_parameters", None)
    if callable(count):
        count = count()
    if count is None:
        getter = getattr(obj, "get_number_of_parameters", None)
        count = getter() if callable(getter) else 0
    if isinstance(count, bool) or not isinstance(count, numbers.Real) or not (
            0 <= float(count) < float("inf")) or float(count) != int(float(count)):
        raise ModelError(f"{path}: {type(obj).__qualname__} says it has {count!r} parameters; "
                         "a count is a whole number")
    return int(float(count))


def supported_formats() -> str:
    """One line naming the formats :func:`load_model` opens."""
    folders = ", ".join(f"a folder with {marker}" for marker, _ in _FOLDERS)
    return f"{', '.join(sorted(_SUFFIXES))}, {folders}"


def _resolve(loader: Loader | str) -> Loader:
    if not isinstance(loader, str):
        return loader
    module, _, name = loader.partition(":")
    found: Loader = getattr(importlib.import_module(module), name)
    return found


def _looks_like_a_path(text: str) -> bool:
    """A name that can only mean a local file: a known suffix, or an explicit location."""
    p = Path(text)
    return (p.suffix.lower() in _SUFFIXES or p.is_absolute() or text.startswith((".", "~"))
            or text.count("/") > 1 or "\\" in text)


def load_model(
    path_or_id: str | os.PathLike[str],
    *,
    task: str | None = None,
    trust: bool = False,
    **options: Any,
) -> Model:
    """Load a saved model, choosing the loader by suffix or folder shape.

    Safe formats, which hold data and no code (ONNX, skops, Keras in safe mode, safetensors
    and ``weights_only`` state dicts into a ``torch.nn.Module`` ``model_class``), load by
    default. Anything that runs code when it is loaded or called loads only with
    ``trust=True``: pickle, joblib, full ``torch.save`` models, TorchScript, TensorFlow
    SavedModel folders, Keras ``Lambda`` layers, Hugging Face ``auto_map`` code, and a
    ``model_class`` that is no ``torch.nn.Module``. A corrupt, unsupported or untrusted file
    raises :class:`~wattprint.errors.ModelError` (:class:`~wattprint.errors.UntrustedModelError`
    when it needs trust) naming the file, the reason and the formats supported.
    """
    path = Path(path_or_id)
    loader: Loader | str | None = None
    if path.is_dir():
        for marker, folder_loader in _FOLDERS:
            if (path / marker).is_file():
                loader = folder_loader
                break
        if loader is None:
            raise ModelError(
                f"{path}: a folder of no known model shape. Supported: {supported_formats()}"
            )
    elif path.is_file():
        loader = _SUFFIXES.get(path.suffix.lower())
        if loader is None:
            raise ModelError(
                f"{path}: unsupported format {path.suffix or '(no suffix)'!r}. "
                f"Supported: {supported_formats()}"
            )
    elif _looks_like_a_path(str(path_or_id)):
        raise ModelError(f"{path}: no such file or folder. Supported: {supported_formats()}")
    else:
        hub: Callable[..., Model] = _resolve(
            "wattprint.workloads.loaders.transformers_loader:load_hub"
        )
        return hub(str(path_or_id), task=task, trust=trust, **options)
    return _resolve(loader)(path, task=task, trust=trust, **options)
