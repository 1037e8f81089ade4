"""Which loader opens which model: by file suffix, or by the shape of a folder.

Built-in loaders are named by import path and imported only when a file of theirs is loaded,
so no framework is imported before it is needed. Users add their own with
:func:`register_format`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, ModelError
from .model import Model

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

#: Folder shapes, tried in order: a file that marks the shape, and the loader.
_FOLDERS: list[tuple[str, Loader | str]] = [
    ("saved_model.pb", "wattprint.workloads.loaders.tensorflow_loader:load"),
    ("config.json", "wattprint.workloads.loaders.transformers_loader:load"),
]


def register_format(suffix: str, loader: Loader) -> None:
    """Open files ending in ``suffix`` (``".mymodel"``) with ``loader``.

    ``loader(path, *, task, trust, **options)`` returns a :class:`Model`. A suffix registered
    again replaces the earlier loader, the built-in ones included.
    """
    if not suffix.startswith(".") or len(suffix) < 2:
        raise ConfigError(f"a format suffix starts with a dot, like '.onnx', not {suffix!r}")
    if not callable(loader):
        raise ConfigError(f"the loader for {suffix!r} must be callable, not {loader!r}")
    _SUFFIXES[suffix.lower()] = loader


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
