"""The ONNX loader, against models torch exports in ``tmp_path`` and onnxruntime runs on the CPU.

The exports use torch's TorchScript-based exporter (``dynamo=False``): the ``torch.export``-based
default needs the ``onnxscript`` package, which the extras do not install.

``num_parameters`` counts the elements of the graph's initializers. For a plain network these
are the module's parameters, one for one. The exporter can change that, and the tests pin down
what is true: in eval mode it folds a batch norm that follows a convolution into the
convolution's weight and bias, so the file holds fewer numbers than the module; a batch norm it
keeps brings its running mean and variance (buffers, not parameters in torch) as initializers;
and a quantized model holds a scale and a zero point beside each quantized weight.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from tiny_models import TinyCNN, TinyNet, TinyNormNet  # noqa: E402

from wattprint import load_model  # noqa: E402
from wattprint.errors import ConfigError, ModelError  # noqa: E402
from wattprint.workloads.datasets import load_dataset  # noqa: E402
from wattprint.workloads.loaders.onnx_loader import OnnxModel, from_bytes  # noqa: E402
from wattprint.workloads.loaders.torch_loader import from_module  # noqa: E402
from wattprint.workloads.registry import supported_formats  # noqa: E402

#: How close onnxruntime's float32 outputs are to torch's.
RTOL, ATOL = 1e-4, 1e-5


def _export(module: Any, sample: Any, target: str | io.BytesIO) -> None:
    """Export with one dynamic batch axis, input ``x`` and output ``logits``."""
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (sample,), target, dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}})


def _torch_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _outputs(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = module(torch.as_tensor(x)).numpy()
    return out


def _initializer_elements(path: Path) -> int:
    proto = onnx.load(str(path))
    return sum(onnx.numpy_helper.to_array(init).size for init in proto.graph.initializer)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    digits = load_dataset("digits")
    assert isinstance(digits.x, np.ndarray)
    return digits.x[:64]


@pytest.fixture(scope="module")
def net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, net: TinyNet) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    _export(net, torch.zeros(1, 64), str(path))
    return path


# -- a plain network -----------------------------------------------------------------------------

def test_exported_model_loads_and_counts_the_torch_parameters(onnx_file: Path,
                                                              net: TinyNet) -> None:
    model = load_model(onnx_file)
    assert isinstance(model, OnnxModel)
    assert model.framework == "onnx"
    assert model.num_parameters == _initializer_elements(onnx_file)
    assert model.num_parameters == _torch_count(net) == 1210
    assert model.dtype == "float32"
    assert model.path == onnx_file
    assert model.size_bytes == onnx_file.stat().st_size
    assert model.providers == ("CPUExecutionProvider",)
    assert [tuple(spec) for spec in model.inputs] == [("x", (None, 64), "float32")]
    assert not model.trainable
    with pytest.raises(NotImplementedError):
        model.train_epoch((np.zeros((1, 64)), np.zeros(1)))


def test_onnx_outputs_match_torch(onnx_file: Path, net: TinyNet, x: np.ndarray) -> None:
    model = load_model(onnx_file)
    out = model.predict(x)
    assert out.shape == (len(x), 10)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _outputs(net, x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out, from_module(net).predict(x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(model.predict(x[:1]), out[:1], rtol=RTOL, atol=ATOL)


def test_predict_casts_and_takes_inputs_by_name(onnx_file: Path, net: TinyNet,
                                                x: np.ndarray) -> None:
    model = load_model(onnx_file, threads=1)
    expected = _outputs(net, x)
    np.testing.assert_allclose(model.predict(x.astype(np.float64)), expected,
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(model.predict({"x": x}), expected, rtol=RTOL, atol=ATOL)
    with pytest.raises(ConfigError, match=r"no input\(s\) images.*its inputs: x"):
        model.predict({"images": x})
    with pytest.raises(ModelError, match=r"onnxruntime could not run it"):
        model.predict(x[:, :10])


def test_explicit_cpu_provider(onnx_file: Path) -> None:
    model = load_model(onnx_file, providers=["CPUExecutionProvider"])
    assert model.providers == ("CPUExecutionProvider",)
    with pytest.raises(ModelError, match=r"execution provider\(s\) NoSuchExecutionProvider"):
        load_model(onnx_file, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ConfigError, match=r"either providers or device"):
        load_model(onnx_file, providers=["CPUExecutionProvider"], device="cpu")


def test_cuda_without_the_cuda_provider_is_a_model_error(onnx_file: Path) -> None:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ModelError, match=r"device 'cuda' needs onnxruntime's CUDAExecution"):
        load_model(onnx_file, device="cuda")


def test_from_bytes_loads_an_export_held_in_memory(net: TinyNet, x: np.ndarray) -> None:
    buffer = io.BytesIO()
    _export(net, torch.zeros(1, 64), buffer)
    model = from_bytes(buffer.getvalue())
    assert model.path is None
    assert model.num_parameters == _torch_count(net)
    assert model.size_bytes == len(buffer.getvalue())
    np.testing.assert_allclose(model.predict(x), _outputs(net, x), rtol=RTOL, atol=ATOL)
    with pytest.raises(ModelError, match=r"in-memory ONNX model: no bytes"):
        from_bytes(b"")
    with pytest.raises(ModelError, match=r"in-memory ONNX model: not a valid ONNX model"):
        from_bytes(np.random.default_rng(1).bytes(512))


# -- what the exporter does to the count ---------------------------------------------------------

def test_batch_norm_after_a_convolution_is_folded_away(tmp_path: Path, x: np.ndarray) -> None:
    torch.manual_seed(0)
    cnn = TinyCNN().eval()
    with torch.no_grad():  # statistics other than the defaults, as after training
        cnn.bn.running_mean.uniform_(-0.5, 0.5)
        cnn.bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "cnn.onnx"
    _export(cnn, torch.zeros(1, 1, 8, 8), str(path))
    model = load_model(path, input_shape=(1, 8, 8))
    bn_parameters = _torch_count(cnn.bn)
    assert bn_parameters == 2 * cnn.channels
    # The batch norm's scale and shift are folded into the convolution, whose shapes stay;
    # the reshape's target shape is a Constant node, not an initializer.
    assert model.num_parameters == _initializer_elements(path)
    assert model.num_parameters == _torch_count(cnn) - bn_parameters
    assert model.inputs[0].shape == (None, 1, 8, 8)
    images = x.reshape(-1, 1, 8, 8)
    np.testing.assert_allclose(model.predict(x), _outputs(cnn, images), rtol=RTOL, atol=ATOL)


def test_a_kept_batch_norm_brings_its_running_statistics(tmp_path: Path,
                                                         x: np.ndarray) -> None:
    torch.manual_seed(0)
    module = TinyNormNet().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "norm.onnx"
    _export(module, torch.zeros(1, 64), str(path))
    model = load_model(path)
    statistics = module.bn.running_mean.numel() + module.bn.running_var.numel()
    assert model.num_parameters == _initializer_elements(path)
    assert model.num_parameters == _torch_count(module) + statistics
    np.testing.assert_allclose(model.predict(x), _outputs(module, x), rtol=RTOL, atol=ATOL)


def test_a_quantized_model_is_int8_with_its_scales_counted(tmp_path: Path, onnx_file: Path,
                                                           net: TinyNet, x: np.ndarray) -> None:
    quantization = pytest.importorskip("onnxruntime.quantization")
    path = tmp_path / "net-int8.onnx"
    quantization.quantize_dynamic(str(onnx_file), str(path),
                                  weight_type=quantization.QuantType.QInt8)
    model = load_model(path)
    assert model.dtype == "int8"
    weights = [net.fc1.weight, net.fc2.weight]
    assert model.num_parameters == _initializer_elements(path)
    assert model.num_parameters == _torch_count(net) + 2 * len(weights)  # scale, zero point
    expected = _outputs(net, x)
    assert float(np.mean(model.predict(x).argmax(1) == expected.argmax(1))) > 0.9


# -- one clear error -----------------------------------------------------------------------------

def _random(path: Path, good: bytes) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(path: Path, good: bytes) -> None:
    path.touch()


def _truncated(path: Path, good: bytes) -> None:
    path.write_bytes(good[: len(good) // 2])


def _text(path: Path, good: bytes) -> None:
    path.write_text("this is not a model\n")


def _no_graph(path: Path, good: bytes) -> None:
    path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())


@pytest.mark.parametrize(("damage", "reason"), [
    (_random, "not an ONNX model (corrupt, truncated, or another format)"),
    (_empty, "the file is empty"),
    (_truncated, "not an ONNX model (corrupt, truncated, or another format)"),
    (_text, "not an ONNX model (corrupt, truncated, or another format)"),
    (_no_graph, "an invalid ONNX model"),
])
def test_corrupt_file_is_one_model_error(tmp_path: Path, onnx_file: Path,
                                         damage: Callable[[Path, bytes], None], reason: str,
                                         recwarn: pytest.WarningsRecorder) -> None:
    path = tmp_path / "bad.onnx"
    damage(path, onnx_file.read_bytes())
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = str(info.value)
    assert type(info.value) is ModelError
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert message.endswith(f"Supported: {supported_formats()}")
    assert ".." not in message
    assert info.value.__cause__ is not None or reason == "the file is empty"
    assert not recwarn.list


def test_a_model_onnxruntime_cannot_run_is_a_model_error(tmp_path: Path) -> None:
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="no.such.domain")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("no.such.domain", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=r"custom\.onnx: onnxruntime could not load it"):
        load_model(path)


def test_unknown_option_is_a_config_error(onnx_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(onnx_file, model_class="x:Y")
    message = str(info.value)
    assert str(onnx_file) in message
    assert "unknown option(s) for an ONNX model: model_class" in message
    assert "known: device, input_shape, providers, threads" in message

