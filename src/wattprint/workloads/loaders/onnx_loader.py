"""ONNX models (the ``onnx`` extra), checked with ``onnx`` and run with onnxruntime.

An ONNX file is a graph and its weights, with no code of its own, so it loads by default. It
is parsed and checked with ``onnx.checker`` first, so a corrupt or invalid file fails with a
:class:`~wattprint.errors.ModelError` that says what is wrong, before onnxruntime sees it.
Weights kept in external data files must lie inside the model's folder (no absolute path, no
``..``, no link out of it): a file that names any other file, which onnxruntime would read
into the model, is a ModelError. A model given as bytes (:func:`from_bytes`) has no folder,
so it may name no external data at all.

``num_parameters`` is the number of elements of all the graph's initializers (its weights);
``dtype`` is the type that holds most of those elements (``"int8"`` for a quantized model, even
though its scales are ``float32``). Not trainable.

Options of :func:`load` and :func:`from_bytes`:

``providers``
    onnxruntime execution providers, in order, as onnxruntime takes them.
``device``
    ``"cpu"`` (default), or ``"cuda"`` / ``"gpu"`` / ``"cuda:1"``, which needs the CUDA
    provider (``onnxruntime-gpu``); without it this is a ModelError, not a CPU fall back.
    Give ``device`` or ``providers``, not both.
``input_shape``
    The shape of one sample, to reshape flat rows: ``(1, 8, 8)``.
``threads``
    onnxruntime's intra-op thread count. Default (:func:`wattprint._cgroup.default_threads`):
    those ``OMP_NUM_THREADS`` asks for where it is set, as torch takes them (onnxruntime
    itself does not read it), else the physical cores this process is allotted
    (:func:`wattprint._cgroup.allotted_cores`: its affinity mask within its control groups'
    CPU limit), where onnxruntime would take every physical core of the machine, also in a
    container limited to fewer; ``0``: onnxruntime's choice.
``preprocess``
    How image files given to ``predict`` become a batch (see
    :mod:`wattprint.workloads.images`): by default read from the first input's shape,
    ``(N, 3, H, W)`` NCHW or ``(N, H, W, 3)`` NHWC (or from ``input_shape``); a mapping of
    ``size``, ``layout``, ``channels``, ``scale``, ``mean``, ``std`` completes it, and one that
    contradicts the model's shape is a ConfigError.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError, MissingExtra, ModelError
from ..images import is_image_source
from ..model import InputSpec, Model
from ._common import check_options, model_error, model_file_size

if TYPE_CHECKING:
    import onnx
    import onnxruntime

__all__ = ["LOAD_OPTIONS", "OnnxModel", "from_bytes", "load"]

_OPTIONS = ("device", "input_shape", "providers", "threads", "preprocess")
#: The options :func:`load` takes (a config checks them before anything runs).
LOAD_OPTIONS = _OPTIONS
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
#: onnxruntime's input types, as NumPy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(int16)": "int16", "tensor(uint16)": "uint16", "tensor(int32)": "int32",
    "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool", "tensor(string)": "str",
}


class OnnxModel(Model):
    """An onnxruntime ``InferenceSession`` behind the :class:`Model` interface.

    ``predict(batch)`` casts the batch to the first input's type (reshaping each sample to
    ``input_shape`` when given) and returns the first output. A model with several inputs
    takes a mapping of input name to array, or a tuple with one array per input.
    """

    framework = "onnx"
    trainable = False

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        proto: onnx.ModelProto,
        *,
        task: str | None = None,
        path: Path | None = None,
        size_bytes: int = 0,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.session = session
        self.task = task
        self.path = path
        self.size_bytes = size_bytes
        self.input_shape = input_shape
        #: The execution providers the session runs on, in order.
        self.providers: tuple[str, ...] = tuple(session.get_providers())
        self.inputs = tuple(
            InputSpec(i.name, _dims(i.shape), _ORT_TYPES.get(i.type, i.type))
            for i in session.get_inputs()
        )
        self._names = [spec.name for spec in self.inputs]
        self._dtypes = [_numpy_dtype(spec.dtype) for spec in self.inputs]
        self._outputs = [session.get_outputs()[0].name]
        self.num_parameters, dtype = _initializer_stats(proto)
        self.dtype = dtype or (self.inputs[0].dtype if self.inputs else "float32")

    def predict(self, batch: Any) -> NDArray[Any]:
        """The first output for ``batch``, as a NumPy array; ``batch`` may be image files
        (a path, paths, or a folder; see ``preprocess``)."""
        if is_image_source(batch) and not self._takes_text():
            batch = self.read_images(batch)
        if isinstance(batch, Mapping):
            unknown = sorted(map(str, set(batch) - set(self._names)))
            if unknown:
                raise ConfigError(f"no input(s) {', '.join(unknown)} in this ONNX model; "
                                  f"its inputs: {', '.join(self._names)}")
            feed = {name: self._cast(self._names.index(name), value)
                    for name, value in batch.items()}
        elif len(self._names) > 1 and isinstance(batch, tuple | list):
            feed = {name: self._cast(i, value) for i, (name, value)
                    in enumerate(zip(self._names, batch, strict=True))}
        else:
            feed = {self._names[0]: self._cast(0, batch)}
        try:
            out: NDArray[Any] = self.session.run(self._outputs, feed)[0]
        except _ort_errors() as err:
            where = self.path or "in-memory ONNX model"
            raise ModelError(f"{where}: onnxruntime could not run it on inputs "
                             f"{ {k: v.shape for k, v in feed.items()} }: {err}") from err
        return out

    def image_sample_shape(self) -> tuple[int | None, ...] | None:
        """``input_shape`` when given (samples are reshaped to it), else the first input's."""
        if self.input_shape is not None:
            return self.input_shape
        return super().image_sample_shape()

    def _cast(self, index: int, value: Any) -> NDArray[Any]:
        arr = np.asarray(value)
        if index == 0 and self.input_shape is not None:
            try:
                arr = arr.reshape((arr.shape[0], *self.input_shape))
            except (ValueError, IndexError) as err:
                raise ConfigError(f"input_shape {self.input_shape} does not fit samples of "
                                  f"shape {arr.shape[1:]}") from err
        dtype = self._dtypes[index]
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        return arr


def load(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    trust: bool = False,
    **options: Any,
) -> OnnxModel:
    """Check and load an ``.onnx`` file (``trust`` is not needed: ONNX holds no code)."""
    path = Path(path)
    check_options(options, _OPTIONS, "an ONNX model", where=path)
    _require_onnx()
    import onnx

    model_file_size(path)
    unreadable: tuple[type[Exception], ...] = (*_protobuf_errors(), OSError, ValueError)
    try:  # the graph and the initializers' shapes; external weights stay on disk
        proto = onnx.load(str(path), load_external_data=False)
    except unreadable as err:
        raise _error(path, "not an ONNX model (corrupt, truncated, or another format): "
                           f"{_first_line(err)}") from err
    _check_external_data(path, proto)
    try:
        onnx.checker.check_model(str(path))  # by path: also models over 2 GB
    except (onnx.checker.ValidationError, OSError, ValueError) as err:
        raise _error(path, f"an invalid ONNX model: {_first_line(err)}") from err
    session = _session(str(path), path, options)
    model = OnnxModel(session, proto, task=task, path=path,
                      size_bytes=_disk_bytes(path, proto),
                      input_shape=_shape(options.get("input_shape")))
    model.set_preprocess(options.get("preprocess"))
    return model


def from_bytes(data: bytes, *, task: str | None = None, **options: Any) -> OnnxModel:
    """Check and load a serialized ONNX model held in memory (``model.SerializeToString()``,
    or what ``torch.onnx.export`` wrote to a ``BytesIO``)."""
    where = "in-memory ONNX model"
    check_options(options, _OPTIONS, "an ONNX model", where=where)
    _require_onnx()
    import onnx

    if not data:
        raise _error(where, "no bytes")
    invalid: tuple[type[Exception], ...] = (*_protobuf_errors(), onnx.checker.ValidationError,
                                            ValueError)
    try:
        proto = onnx.load_from_string(bytes(data))
        onnx.checker.check_model(proto)
    except invalid as err:
        raise _error(where, f"not a valid ONNX model: {_first_line(err)}") from err
    external = _external_data(proto)
    if external:
        raise _error(where, f"it names external data files ({_listed(external)}), which "
                            "onnxruntime would read from the working directory: save the model "
                            "to a .onnx file with its data files beside it, and load that file")
    session = _session(bytes(data), where, options)
    model = OnnxModel(session, proto, task=task, size_bytes=len(data),
                      input_shape=_shape(options.get("input_shape")))
    model.set_preprocess(options.get("preprocess"))
    return model


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise MissingExtra("loading ONNX models", "onnx") from err


_error = model_error


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _protobuf_errors() -> tuple[type[Exception], ...]:
    """What protobuf raises on bytes that are no ONNX model (onnx depends on protobuf)."""
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    return (DecodeError,)


@functools.cache
def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception classes (they derive from Exception, not RuntimeError),
    with the built-in ones its Python layer raises."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = tuple(v for v in vars(state).values()
                if isinstance(v, type) and issubclass(v, Exception))
    return (*own, RuntimeError, ValueError, TypeError, OSError)


def _session(source: str | bytes, where: Path | str,
             options: Mapping[str, Any]) -> onnxruntime.InferenceSession:
    import onnxruntime

    providers = _providers(options, onnxruntime.get_available_providers(), where)
    session_options = onnxruntime.SessionOptions()
    threads = options.get("threads")
    if threads is None:
        from ..._cgroup import default_threads

        threads = default_threads()
    elif not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ConfigError(f"threads must be a whole number >= 0, not {threads!r}")
    session_options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(source, sess_options=session_options,
                                            providers=providers)
    except _ort_errors() as err:
        raise _error(where, f"onnxruntime could not load it: {_first_line(err)}") from err


def _providers(options: Mapping[str, Any], available: list[str],
               where: Path | str) -> list[Any]:
    """The providers to ask for: the user's, or the ones ``device`` means."""
    providers, device = options.get("providers"), options.get("device")
    if providers is not None and device is not None:
        raise ConfigError("give an ONNX model either providers or device, not both")
    if providers is not None:
        if isinstance(providers, str) or not providers:
            raise ConfigError(f"providers must be a non-empty list, like ['{_CPU}'], "
                              f"not {providers!r}")
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        missing = [name for name in names if name not in available]
        if missing:
            raise _error(where, f"execution provider(s) {', '.join(map(str, missing))} are "
                                f"not in this onnxruntime (it has: {', '.join(available)})")
        return list(providers)
    name = "cpu" if device is None else str(device).lower()
    if name == "cpu":
        return [_CPU]
    kind, _, index = name.partition(":")
    if kind not in ("cuda", "gpu") or (index and not index.isdigit()):
        raise ConfigError(f"unknown device {device!r} for an ONNX model; "
                          "one of 'cpu', 'cuda', 'gpu', 'cuda:N'")
    if _CUDA not in available:
        raise _error(where, f"device {device!r} needs onnxruntime's {_CUDA}, which this "
                            f"onnxruntime lacks (it has: {', '.join(available)}); install "
                            "onnxruntime-gpu, or leave device out to run on the CPU")
    return [(_CUDA, {"device_id": int(index or 0)}), _CPU]


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


def _dims(shape: Any) -> tuple[int | None, ...] | None:
    """onnxruntime's shape with ``None`` for each symbolic or unknown axis."""
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _numpy_dtype(name: str) -> np.dtype[Any] | None:
    """The NumPy dtype to cast an input to; None where NumPy has none (bfloat16, strings)."""
    if name == "str":
        return None
    try:
        return np.dtype(name)
    except TypeError:
        return None


def _initializer_stats(proto: onnx.ModelProto) -> tuple[int, str | None]:
    """Elements of all initializers, and the type holding most of them."""
    elements: Counter[int] = Counter()
    for init in proto.graph.initializer:
        elements[init.data_type] += math.prod(init.dims)
    for sparse in proto.graph.sparse_initializer:
        elements[sparse.values.data_type] += math.prod(sparse.values.dims)
    if not elements:
        return 0, None
    return sum(elements.values()), _onnx_type_name(elements.most_common(1)[0][0])


def _onnx_type_name(code: int) -> str:
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code)).name)
    except (KeyError, TypeError, ValueError):
        return str(onnx.TensorProto.DataType.Name(code)).lower()


def _external_data(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """``(tensor name, location)`` of every tensor whose data is kept in another file: the
    initializers, sparse initializers and tensor attributes of every graph, subgraph and
    function."""
    import onnx

    found: list[tuple[str, str]] = []

    def tensor(t: onnx.TensorProto) -> None:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            where = next((e.value for e in t.external_data if e.key == "location"), "")
            found.append((t.name, where))

    def sparse(s: onnx.SparseTensorProto) -> None:
        tensor(s.values)
        tensor(s.indices)

    def nodes(items: Any) -> None:
        for node in items:
            for attr in node.attribute:
                tensor(attr.t)
                sparse(attr.sparse_tensor)
                for t in attr.tensors:
                    tensor(t)
                for s in attr.sparse_tensors:
                    sparse(s)
                graph(attr.g)
                for g in attr.graphs:
                    graph(g)

    def graph(g: onnx.GraphProto) -> None:
        for t in g.initializer:
            tensor(t)
        for s in g.sparse_initializer:
            sparse(s)
        nodes(g.node)

    graph(proto.graph)
    for function in proto.functions:
        nodes(function.node)
    return found


def _listed(external: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{name or '?'}: {where!r}" for name, where in external[:3])
    return shown + (f", and {len(external) - 3} more" if len(external) > 3 else "")


def _check_external_data(path: Path, proto: onnx.ModelProto) -> None:
    """A ModelError when a tensor's external data file is not inside the model's folder."""
    folder = path.parent.resolve()
    outside = []
    for name, where in _external_data(proto):
        target = (folder / where).resolve()
        if not where or Path(where).is_absolute() or not target.is_relative_to(folder):
            outside.append((name, where))
    if outside:
        raise _error(path, f"it names external data outside its folder ({_listed(outside)}); "
                           "an ONNX model's data files must lie in its own folder")


def _disk_bytes(path: Path, proto: onnx.ModelProto) -> int:
    """The file's size plus any external weight files it names."""
    import onnx

    files = {path}
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            files.update(path.parent / entry.value for entry in init.external_data
                         if entry.key == "location")
    return sum(f.stat().st_size for f in files if f.is_file())
