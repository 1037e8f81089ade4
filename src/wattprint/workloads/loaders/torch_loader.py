"""PyTorch models (the ``torch`` extra): state_dicts, and trusted TorchScript and pickles.

A ``.pt`` / ``.pth`` file is read by what it holds, safest first:

* a **state_dict** (``torch.save(model.state_dict())``) loads by default, with
  ``torch.load(weights_only=True)``, into ``model_class(**model_kwargs)``: the class is named by
  import path, ``model_class="package.module:ClassName"``, and the weights must fit it exactly
  (``load_state_dict(strict=True)``). A checkpoint dict that holds the state_dict under a key
  names it with ``state_dict_key="model"``. ``.safetensors`` weights load the same way (the
  ``safetensors`` package, from the ``hf`` extra). Without ``trust=True`` the class must be a
  subclass of ``torch.nn.Module``: a config that could name any callable could run any code
  (``"os:system"``), so anything else is an :class:`~wattprint.errors.UntrustedModelError`,
  raised before it is called;
* a **TorchScript** archive (``torch.jit.save`` of a scripted or traced module) is code: its
  ``__setstate__`` runs when it is loaded and its ``forward`` on every prediction, and both can
  read and write any file (``torch.from_file``). It loads, with ``torch.jit.load``, only with
  ``trust=True``;
* a **whole pickled model** (``torch.save(model)``) runs code named by the file when it is
  unpickled, so it loads only with ``trust=True``; without it
  :class:`~wattprint.errors.UntrustedModelError` says which classes the file would import.

Options of :func:`load` and :func:`from_module`:

``device``
    ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``, ... A CUDA device torch cannot see is a
    :class:`~wattprint.errors.ConfigError`, not a silent fall back to the CPU.
``input_shape``
    The shape of one sample, to reshape flat rows: ``(1, 8, 8)`` for a CNN on ``digits``.
``input_dtype``
    The dtype inputs are given to the model in (``"int64"`` for token ids); default the
    dtype of its weights.
``preprocess``
    How image files given to ``predict`` become a batch: a mapping of
    :class:`~wattprint.workloads.images.ImageSpec` fields (``size``, ``layout``, ``channels``,
    ``scale``, ``mean``, ``std``). A PyTorch module has no input metadata, so image files need
    ``input_shape=(C, H, W)`` (read as NCHW) or a ``preprocess`` with ``layout``.
"""

from __future__ import annotations

import importlib
import itertools
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError, MissingExtra, ModelError, UntrustedModelError
from ..images import is_image_source
from ..model import InputSpec, Model
from ..registry import supported_formats
from ._common import ANSI as _ANSI
from ._common import check_options, model_error, model_file_size

if TYPE_CHECKING:
    import torch

__all__ = ["LOAD_OPTIONS", "LOSSES", "TorchModel", "from_module", "is_torchscript", "load"]

#: The losses :meth:`TorchModel.train_epoch` knows.
LOSSES = ("cross_entropy", "mse")

_MODULE_OPTIONS = ("device", "input_dtype", "input_shape", "preprocess")
_LOAD_OPTIONS = ("device", "input_dtype", "input_shape", "model_class", "model_kwargs",
                 "state_dict_key", "preprocess")
#: The options :func:`load` takes (a config checks them before anything runs).
LOAD_OPTIONS = _LOAD_OPTIONS
_TRAIN_OPTIONS = ("loss", "lr", "seed")
_CLASSIFICATION_TASKS = frozenset({"classification", "text-classification",
                                   "image-classification"})
#: How torch names a class the weights-only unpickler refused (legacy, non-zip files).
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
#: The first bytes of a zip archive (TorchScript and torch.save files since torch 1.6).
_ZIP_MAGIC = b"PK\x03\x04"
#: What torch.load raises on a file it cannot read.
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError)
#: What unpickling a whole model can raise besides: the classes it names are missing.
_UNPICKLE_ERRORS = (*_LOAD_ERRORS, AttributeError, ImportError, IndexError, KeyError, TypeError)


class TorchModel(Model):
    """A ``torch.nn.Module`` (TorchScript or eager) behind the :class:`Model` interface.

    ``predict`` runs under ``torch.inference_mode`` and returns the first output as a NumPy
    array; ``train_epoch`` trains one shuffled pass with Adam. The module is kept in eval mode
    except while it trains.
    """

    framework = "torch"

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        task: str | None = None,
        path: Path | None = None,
        size_bytes: int | None = None,
        device: str = "cpu",
        input_shape: tuple[int, ...] | None = None,
        input_dtype: str | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.module = module.to(self.device)
        self.module.eval()
        self.task = task
        self.path = path
        params = list(self.module.parameters())
        self.num_parameters = sum(p.numel() for p in params)
        self.trainable = any(p.requires_grad for p in params)
        weights = next((p.dtype for p in params if p.is_floating_point()),
                       torch.get_default_dtype())
        self.weight_dtype = weights
        self.dtype = _dtype_name(weights)
        self.input_dtype = weights if input_dtype is None else _torch_dtype(input_dtype)
        self.input_shape = input_shape
        self.inputs = (() if input_shape is None else
                       (InputSpec("input", (None, *input_shape), _dtype_name(self.input_dtype)),))
        self.size_bytes = _memory_bytes(self.module) if size_bytes is None else size_bytes
        self._optimizer: torch.optim.Optimizer | None = None
        self._epochs = 0

    def predict(self, batch: Any) -> NDArray[Any]:
        """The model's first output for ``batch`` (logits for a classifier), on the CPU;
        ``batch`` may be image files (a path, paths, or a folder; see ``preprocess``)."""
        import torch

        if is_image_source(batch):
            batch = self.read_images(batch)
        x = self._tensor(batch, self.input_dtype)
        with torch.inference_mode():
            out = self.module(x)
        return _to_numpy(_first_tensor(out))

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """Train one pass over ``data`` and return the mean loss per sample.

        ``data`` is ``(x, y)`` or a :class:`~wattprint.workloads.datasets.Dataset`. Options:
        ``lr`` (default ``1e-3``; Adam, whose state carries over from epoch to epoch),
        ``loss`` (``"cross_entropy"`` with int64 class labels, or ``"mse"``; default from the
        task: classification or regression), ``seed`` (default 0: epoch ``k`` shuffles with
        the seed ``(seed, k)``, so a run repeats exactly).
        """
        import torch

        _check_options(options, _TRAIN_OPTIONS, "train_epoch")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        x_np, y_np, data_task = _xy(data)
        loss_name = options.get("loss") or _default_loss(self.task or data_task, y_np)
        if loss_name not in LOSSES:
            raise ConfigError(f"unknown loss {loss_name!r}; one of: {', '.join(LOSSES)}")
        n = len(x_np)
        if n == 0:
            raise ConfigError("train_epoch needs at least one sample")
        x = self._tensor(x_np, self.input_dtype)
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if loss_name == "cross_entropy":
            y = torch.as_tensor(np.asarray(y_np), dtype=torch.int64, device=self.device)
            loss_fn = torch.nn.functional.cross_entropy
        else:
            y = torch.as_tensor(np.asarray(y_np), dtype=self.weight_dtype, device=self.device)
            loss_fn = torch.nn.functional.mse_loss
        optimizer = self._adam(float(options.get("lr", 1e-3)))
        seed = int(options.get("seed", 0))
        order = torch.as_tensor(np.random.default_rng([seed, self._epochs]).permutation(n),
                                device=self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.module.train()
        try:
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = x[idx], y[idx]
                optimizer.zero_grad(set_to_none=True)
                out = _first_tensor(self.module(xb))
                if loss_name == "mse" and out.shape != yb.shape and out.numel() == yb.numel():
                    yb = yb.reshape(out.shape)
                loss = loss_fn(out, yb)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += loss.detach().double() * len(idx)
        finally:
            self.module.eval()
        self._epochs += 1
        return float(total.item()) / n

    def _tensor(self, batch: Any, dtype: torch.dtype) -> torch.Tensor:
        import torch

        arr = np.asarray(batch)
        if self.input_shape is not None:
            try:
                arr = arr.reshape((arr.shape[0], *self.input_shape))
            except (ValueError, IndexError) as err:
                raise ConfigError(f"input_shape {self.input_shape} does not fit samples of "
                                  f"shape {arr.shape[1:]}") from err
        return torch.as_tensor(arr, dtype=dtype, device=self.device)

    def _adam(self, lr: float) -> torch.optim.Optimizer:
        import torch

        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self.module.parameters(), lr=lr)
        else:
            for group in self._optimizer.param_groups:
                group["lr"] = lr
        return self._optimizer


def load(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    trust: bool = False,
    **options: Any,
) -> TorchModel:
    """Load a state_dict (with ``model_class``) or, trusted, TorchScript or a pickle.

    Options: ``device``, ``input_shape``, ``input_dtype`` (see the module docstring),
    ``model_class`` (``"package.module:ClassName"`` or the class; a ``torch.nn.Module``
    subclass unless trusted), ``model_kwargs`` (its constructor's arguments),
    ``state_dict_key`` (where a checkpoint dict keeps the weights), ``preprocess`` (how image
    files become a batch; see :mod:`wattprint.workloads.images`).
    """
    path = Path(path)
    _check_options(options, _LOAD_OPTIONS, "a PyTorch model", where=path)
    _require_torch()
    import torch

    device = _device(options.get("device", "cpu"))
    input_shape, input_dtype = _shape(options.get("input_shape")), options.get("input_dtype")
    size = _file_size(path)
    module: torch.nn.Module
    if path.suffix.lower() == ".safetensors":
        module = _from_state_dict(path, _read_safetensors(path, device), options, trust=trust)
    else:
        _check_zip(path)
        if is_torchscript(path):
            if not trust:
                raise _untrusted_torchscript(path)
            module = _jit_load(path, device)
        else:
            loaded = _torch_load(path, device, trust=trust)
            if isinstance(loaded, torch.nn.Module):
                module = loaded
            else:
                state = _state_dict(path, loaded, options.get("state_dict_key"))
                module = _from_state_dict(path, state, options, trust=trust)
    model = TorchModel(module, task=task, path=path, size_bytes=size, device=device,
                       input_shape=input_shape, input_dtype=input_dtype)
    model.set_preprocess(options.get("preprocess"))
    return model


def from_module(module: torch.nn.Module, *, task: str | None = None,
                **options: Any) -> TorchModel:
    """Wrap an in-memory module (eager or TorchScript); options ``device``, ``input_shape``,
    ``input_dtype``, ``preprocess``. The module is moved to the device and put in eval mode."""
    _check_options(options, _MODULE_OPTIONS, "from_module")
    _require_torch()
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"from_module needs a torch.nn.Module, not {type(module).__name__}")
    model = TorchModel(module, task=task, device=_device(options.get("device", "cpu")),
                       input_shape=_shape(options.get("input_shape")),
                       input_dtype=options.get("input_dtype"))
    model.set_preprocess(options.get("preprocess"))
    return model


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise MissingExtra("loading PyTorch models", "torch") from err


_error = model_error


def _reason(err: BaseException, *, lines: int = 1) -> str:
    """The first ``lines`` of a vendor error, without terminal colours, in 300 characters."""
    text = [line.strip() for line in _ANSI.sub("", str(err)).strip().splitlines()]
    line = " ".join(text[:lines]) or type(err).__name__
    return line if len(line) <= 300 else line[:294].rstrip() + " [...]"


_check_options = check_options
_file_size = model_file_size


def _device(device: Any) -> str:
    import torch

    name = str(device)
    try:
        parsed = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown torch device {name!r}: {err}") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA device "
                          f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})")
    return name


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(d) for d in value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"input_shape must be a sequence of sizes, not {value!r}") from err
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError(f"input_shape must be positive sizes, like (1, 8, 8), not {value!r}")
    return shape


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"unknown torch dtype {name!r}, like 'float32' or 'int64'")
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _memory_bytes(module: torch.nn.Module) -> int:
    tensors = itertools.chain(module.parameters(), module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _check_zip(path: Path) -> None:
    """A file that starts as a zip but has no readable directory (cut short, or damaged) is a
    ModelError here: torch's own readers fail on it with a bare ``OSError``."""
    if zipfile.is_zipfile(path):
        return
    with path.open("rb") as f:
        starts_as_zip = f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if starts_as_zip:
        raise _error(path, "a zip archive (as TorchScript and torch.save write) with no "
                           "readable directory: the file is truncated or corrupt")


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with ``constants.pkl`` (a torch.save zip has none)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in names)


def _untrusted_torchscript(path: Path) -> UntrustedModelError:
    return UntrustedModelError(
        f"{path}: a TorchScript archive holds code: its __setstate__ runs when it is loaded "
        "and its forward when it predicts, and that code can read and write any file "
        "(torch.from_file). Load it with trust=True only if you trust its source (in a sweep "
        "YAML: trust: true on the model), or use a format that holds no code: a state_dict "
        "(torch.save(model.state_dict(), path)) loaded with "
        "model_class='package.module:ClassName', .safetensors weights (with model_class), or "
        f"an ONNX export. Supported: {supported_formats()}")


def _jit_load(path: Path, device: str) -> torch.nn.Module:
    import torch

    try:
        with warnings.catch_warnings():  # advice to callers of jit.load, not to our users
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated",
                                    category=DeprecationWarning)
            module: torch.nn.Module = torch.jit.load(  # type: ignore[no-untyped-call]
                str(path), map_location=device)
    except (RuntimeError, ValueError, OSError) as err:
        reason = f"a TorchScript archive that could not be read: {_reason(err)}"
        raise _error(path, reason) from err
    return module


def _torch_load(path: Path, device: str, *, trust: bool) -> Any:
    """``torch.load`` with ``weights_only=True``; a pickled object only when trusted."""
    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except _LOAD_ERRORS as err:
        if not trust:
            unsafe = _unsafe_globals(path, err)
            if not unsafe:
                inner = err.__context__ if "Weights only load failed" in str(err) else None
                reason = ("neither a TorchScript archive nor a file torch.save wrote (corrupt, "
                          f"truncated, or another format): {_reason(inner or err)}")
                raise _error(path, reason) from err
            raise UntrustedModelError(
                f"{path}: a whole pickled PyTorch model (torch.save(model)); unpickling it "
                f"imports {', '.join(unsafe)} and can run arbitrary code. Load it with "
                "trust=True only if you trust its source, or save it safely: as a state_dict "
                "(torch.save(model.state_dict(), path)) or .safetensors weights, loaded with "
                "model_class='package.module:ClassName', or as an ONNX export. "
                f"Supported: {supported_formats()}"
            ) from err
    try:  # trusted: the user vouched for the code this file runs
        return torch.load(path, map_location=device, weights_only=False)
    except _UNPICKLE_ERRORS as err:
        raise _error(path, f"a pickled file that could not be loaded: {_reason(err)}") from err


def _unsafe_globals(path: Path, err: BaseException) -> list[str]:
    """The classes and functions a torch.save file would import beyond plain tensors."""
    import torch

    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch>=2.6
    if find is not None and zipfile.is_zipfile(path):
        try:
            return list(find(path))
        except _LOAD_ERRORS:
            return []
    found = _UNSAFE_GLOBAL.search(str(err))
    return [found.group(1)] if found else []


def _state_dict(path: Path, loaded: Any, key: Any) -> Mapping[str, torch.Tensor]:
    """The name -> tensor mapping in what torch.load returned, or a ModelError saying why not."""
    what = loaded
    if key is not None:
        if not isinstance(loaded, Mapping) or key not in loaded:
            keys = list(loaded) if isinstance(loaded, Mapping) else []
            raise _error(path, f"no state_dict_key {key!r} in it (its keys: {keys[:20]})")
        what = loaded[key]
    if _is_state_dict(what):
        return what  # type: ignore[no-any-return]
    if isinstance(what, Mapping):
        keys = list(what)[:20]
        holders = [k for k, v in what.items() if isinstance(k, str) and _is_state_dict(v)]
        hint = ("" if key is not None or not holders
                else f"; the weights look to be under state_dict_key={holders[0]!r}")
        raise _error(path, f"a dict that is not a state_dict of tensors (keys: {keys}){hint}")
    raise _error(path, f"holds a {type(what).__name__}, not a module or a state_dict")


def _is_state_dict(obj: Any) -> bool:
    import torch

    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _read_safetensors(path: Path, device: str) -> Mapping[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as err:
        raise MissingExtra("loading .safetensors weights", "hf") from err
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _error(path, f"not a readable safetensors file: {_reason(err)}") from err


def _from_state_dict(path: Path, state: Mapping[str, torch.Tensor],
                     options: Mapping[str, Any], *, trust: bool) -> torch.nn.Module:
    """``model_class(**model_kwargs)`` with ``state`` loaded into it, strictly."""
    import torch

    spec = options.get("model_class")
    if spec is None:
        raise _error(path, "a state_dict holds weights but not the model's code: pass "
                           "model_class='package.module:ClassName' (and model_kwargs={...} "
                           "if its constructor needs arguments)")
    cls = _import_class(path, spec, trust=trust)
    kwargs = options.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"model_kwargs must be a mapping of arguments, not {kwargs!r}")
    name = getattr(cls, "__qualname__", repr(cls))
    try:
        module = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise _error(path, f"model_class {name}(**{dict(kwargs)!r}) failed: {err}") from err
    if not isinstance(module, torch.nn.Module):
        raise _error(path, f"model_class {name} made a {type(module).__name__}, "
                           "not a torch.nn.Module")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = f"the state_dict does not fit {name}: {_reason(err, lines=3)}"
        raise _error(path, reason) from err
    return module


def _import_class(path: Path, spec: Any, *, trust: bool) -> Any:
    """The class named ``"package.module:ClassName"`` (or ``"package.module.ClassName"``):
    a ``torch.nn.Module`` subclass unless trusted, checked before anything calls it."""
    if isinstance(spec, type):
        return _module_class(path, spec, spec, trust=trust)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"model_class must be 'package.module:ClassName', not {spec!r}")
    module_name, sep, qualname = spec.partition(":")
    if not sep:
        module_name, _, qualname = spec.rpartition(".")
    if not module_name or not qualname:
        raise ConfigError(f"model_class must be 'package.module:ClassName', not {spec!r}")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        raise _error(path, f"model_class {spec!r} could not be imported: {err}") from err
    if not callable(found):
        raise _error(path, f"model_class {spec!r} is a {type(found).__name__}, not a class")
    return _module_class(path, spec, found, trust=trust)


def _module_class(path: Path, spec: Any, found: Any, *, trust: bool) -> Any:
    """``found`` if it is a ``torch.nn.Module`` subclass or trusted; else UntrustedModelError."""
    import torch

    if trust or (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        return found
    kind = "class" if isinstance(found, type) else type(found).__name__
    raise UntrustedModelError(
        f"{path}: model_class {spec!r} is a {kind}, not a torch.nn.Module subclass. Without "
        "trust=True wattprint calls only torch.nn.Module classes: a model_class that may name "
        "any callable runs any code (model_class 'os:system' would run a shell command). Name "
        "the model's class, or pass trust=True (in a sweep YAML: trust: true on the model) "
        "only if you trust where the setting came from")


def _first_tensor(out: Any) -> torch.Tensor:
    """The first tensor of a module's output: itself, the first item, or the first value."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) and out:
        return _first_tensor(next(iter(out.values())))
    if isinstance(out, tuple | list) and out:
        return _first_tensor(out[0])
    raise ModelError(f"the model returned a {type(out).__name__}, not a tensor")


def _to_numpy(tensor: torch.Tensor) -> NDArray[Any]:
    import torch

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16
        t = t.float()
    return t.numpy()


def _xy(data: Any) -> tuple[Any, Any, str | None]:
    """``(x, y, task)`` from ``(x, y)`` or an object with ``x`` and ``y`` (a Dataset)."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y, task = data[0], data[1], None
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y, task = data.x, data.y, getattr(data, "task", None)
    else:
        raise ConfigError("training data must be (x, y) or a Dataset with x and y, "
                          f"not {type(data).__name__}")
    if y is None:
        raise ConfigError("train_epoch needs labels or targets: the data has none")
    if len(x) != len(y):
        raise ConfigError(f"{len(x)} samples but {len(y)} labels")
    return x, y, task


def _default_loss(task: str | None, y: Any) -> str:
    if task in _CLASSIFICATION_TASKS:
        return "cross_entropy"
    if task == "regression":
        return "mse"
    kind = np.asarray(y).dtype.kind
    if task is None and kind in "iub":
        return "cross_entropy"
    if task is None and kind == "f":
        return "mse"
    raise ConfigError(f"no default loss for task {task!r}: pass loss= one of {', '.join(LOSSES)}")
