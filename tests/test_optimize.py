"""Quantization, pruning and ONNX export of small models trained on digits, each step measured
with a sensor of known power."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

import wattprint  # noqa: E402
from wattprint import ConfigError, EnergyMeter, FakeSensor  # noqa: E402
from wattprint.measurement import Measurement  # noqa: E402
from wattprint.optimize import (  # noqa: E402
    OptimizationResult,
    effective_parameters,
    export_onnx,
    export_torchscript,
    prune,
    quantize,
)
from wattprint.workloads.datasets import Dataset, load_dataset  # noqa: E402
from wattprint.workloads.loaders.onnx_loader import OnnxModel  # noqa: E402
from wattprint.workloads.loaders.torch_loader import TorchModel, from_module  # noqa: E402

nn = torch.nn
POWER_W = 10.0


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def meter() -> Iterator[EnergyMeter]:
    m = EnergyMeter(sensors=[FakeSensor(power_w=POWER_W)])
    yield m
    m.close()


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return load_dataset("digits").split(0.25, seed=0)


def _mlp() -> Any:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def _cnn() -> Any:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 10))


def _trained(module: Any, train: Dataset, **options: Any) -> TorchModel:
    torch.manual_seed(0)
    model = from_module(module, task="classification", **options)
    for _ in range(3):
        model.train_epoch(train, lr=3e-3)
    return model


@pytest.fixture(scope="module")
def mlp(digits: tuple[Dataset, Dataset]) -> TorchModel:
    torch.manual_seed(0)
    return _trained(_mlp(), digits[0])


@pytest.fixture(scope="module")
def cnn(digits: tuple[Dataset, Dataset]) -> TorchModel:
    torch.manual_seed(0)
    return _trained(_cnn(), digits[0], input_shape=(1, 8, 8))


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained(request: pytest.FixtureRequest) -> TorchModel:
    model: TorchModel = request.getfixturevalue(request.param)
    return model


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def onnx_fp32(trained: TorchModel, digits: tuple[Dataset, Dataset], out_dir: Path) -> OnnxModel:
    path = out_dir / f"fp32-{'cnn' if trained.input_shape else 'mlp'}.onnx"
    with EnergyMeter(sensors=[FakeSensor(power_w=POWER_W)]) as m:
        result = export_onnx(trained, path, sample=digits[1], meter=m)
    assert isinstance(result.model, OnnxModel)
    return result.model


def _fp32_torchscript_bytes(model: TorchModel, path: Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model.module), str(path))
    return path.stat().st_size


def _accuracy(model: wattprint.Model, data: Dataset) -> float:
    return float(np.mean(np.asarray(model.predict(data.x)).argmax(1) == data.y))


def _agreement(a: wattprint.Model, b: wattprint.Model, data: Dataset) -> float:
    pa = np.asarray(a.predict(data.x)).argmax(1)
    pb = np.asarray(b.predict(data.x)).argmax(1)
    return float(np.mean(pa == pb))


def _assert_fake_measurement(m: Measurement) -> None:
    assert m.duration_s > 0
    assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-6, abs=1e-9)
    assert set(m.components) == {"cpu"}
    assert m.components["cpu"].source.value == "fake"
    assert m.components["cpu"].measured is False
    assert not m.partial
    assert m.footprint.kwh == pytest.approx(m.energy_j / 3.6e6)


def _assert_saved(result: OptimizationResult, suffix: str) -> None:
    assert result.path.suffix == suffix and result.path.is_file()
    assert result.size_bytes == result.path.stat().st_size == result.model.size_bytes
    assert result.model.path == result.path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's
        reloaded = wattprint.load_model(result.path, trust=suffix == ".pt",  # TorchScript
                                        input_shape=getattr(result.model, "input_shape", None))
    x = np.random.default_rng(0).random((3, 64), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(reloaded.predict(x), dtype=np.float32),
                               np.asarray(result.model.predict(x), dtype=np.float32))


# -- torch quantization --------------------------------------------------------------------------

def test_dynamic_int8_is_smaller_and_agrees_with_fp32(
    trained: TorchModel, digits: tuple[Dataset, Dataset], out_dir: Path, meter: EnergyMeter,
    tmp_path: Path,
) -> None:
    test = digits[1]
    before = trained.predict(test.x)
    result = quantize(trained, "dynamic", out_dir=tmp_path, meter=meter)

    assert (result.name, result.kind, result.method) == ("int8-dynamic", "quantization",
                                                          "dynamic")
    assert result.target_dtype == "int8" and result.amount is None and result.sparsity is None
    _assert_saved(result, ".pt")
    assert result.size_bytes < _fp32_torchscript_bytes(trained, tmp_path / "fp32.pt")
    assert _agreement(result.model, trained, test) >= 0.9
    # The int8 weights are counted: as many parameters as the float model.
    assert result.num_parameters == trained.num_parameters == result.model.num_parameters
    assert 0 < result.effective_parameters <= result.num_parameters
    linear = [m for m in result.model.module.modules() if m.original_name == "Linear"]
    assert linear and all(hasattr(m, "_packed_params") for m in linear)
    _assert_fake_measurement(result.measurement)
    # The model given is not changed.
    np.testing.assert_array_equal(trained.predict(test.x), before)
    assert any(isinstance(m, nn.Linear) for m in trained.module.modules())


@pytest.mark.parametrize("method", ["fp16", "bf16"])
def test_half_precision_works_or_says_clearly_why_not(
    method: str, trained: TorchModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter,
    tmp_path: Path,
) -> None:
    test = digits[1]
    dtype = {"fp16": "float16", "bf16": "bfloat16"}[method]
    try:  # the target dtype spelled as torch spells it
        result = quantize(trained, method, target_dtype=dtype, calibration=test,
                          out_dir=tmp_path, meter=meter)
    except ConfigError as err:
        assert method in str(err) and "not supported" in str(err)
        return
    assert result.name == method and result.target_dtype == method
    assert result.model.dtype == dtype
    assert all(p.dtype == getattr(torch, dtype) for p in result.model.module.parameters())
    _assert_saved(result, ".pt")
    fp32_bytes = _fp32_torchscript_bytes(trained, tmp_path / "fp32.pt")
    assert result.size_bytes < 0.75 * fp32_bytes
    assert _agreement(result.model, trained, test) >= 0.9
    assert result.num_parameters == result.effective_parameters == trained.num_parameters
    _assert_fake_measurement(result.measurement)
    assert trained.dtype == "float32"


class _NoHalf(nn.Module):
    """A model with an op this device cannot run in float16."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: Any) -> Any:
        if x.dtype == torch.float16:
            raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")
        return self.fc(x)


def test_unsupported_precision_is_a_clear_config_error(
    digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = from_module(_NoHalf())
    with pytest.raises(ConfigError, match=r"fp16 is not supported .* on cpu.*'Half'"):
        quantize(model, "fp16", calibration=digits[1], out_dir=tmp_path, meter=meter)
    assert not (tmp_path / "fp16.pt").exists()
    # Samples that do not fit the model are named as such, not as a precision problem.
    with pytest.raises(ConfigError, match="do not fit the model"):
        quantize(from_module(_mlp()), "fp16", calibration=np.zeros((4, 5), np.float32),
                 out_dir=tmp_path, meter=meter)
    # No samples and no input shape: nothing to probe with.
    with pytest.raises(ConfigError, match="calibration="):
        quantize(from_module(_mlp()), "bf16", out_dir=tmp_path, meter=meter)


def test_torchscript_models_can_be_cast_but_not_rewritten(
    mlp: TorchModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    path = tmp_path / "mlp.pt"
    _fp32_torchscript_bytes(mlp, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = wattprint.load_model(path, trust=True)
    with pytest.raises(ConfigError, match=r"eager torch\.nn\.Module"):
        quantize(scripted, "dynamic", out_dir=tmp_path, meter=meter)
    with pytest.raises(ConfigError, match=r"eager torch\.nn\.Module"):
        prune(scripted, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)
    result = quantize(scripted, "fp16", calibration=digits[1], out_dir=tmp_path / "v",
                      meter=meter)
    assert result.model.dtype == "float16"
    assert _agreement(result.model, mlp, digits[1]) >= 0.9


# -- pruning -------------------------------------------------------------------------------------

def _pruned_weights(model: TorchModel) -> list[Any]:
    return [m.weight.detach() for m in model.module.modules()
            if m.original_name in ("Linear", "Conv2d")]


def test_l1_unstructured_prunes_half_of_every_weight_permanently(
    trained: TorchModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    before = [p.detach().clone() for p in trained.module.parameters()]
    result = prune(trained, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)

    assert (result.name, result.kind, result.method) == ("pruned-l1_unstructured-0.5",
                                                          "pruning", "l1_unstructured")
    assert result.amount == 0.5 and result.target_dtype is None
    _assert_saved(result, ".pt")
    weights = _pruned_weights(result.model)
    assert weights
    for w in weights:  # layer by layer: each weight loses half of its entries
        assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert result.sparsity == pytest.approx(zeros / sum(w.numel() for w in weights))
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert result.num_parameters == trained.num_parameters
    assert result.effective_parameters == result.num_parameters - zeros
    assert result.effective_parameters == effective_parameters(result.model)
    # Permanent: plain weights, no weight_orig / weight_mask left behind.
    names = set(result.model.module.state_dict())
    assert not any(n.endswith(("_orig", "_mask")) for n in names)
    assert all(n.rsplit(".", 1)[-1] in ("weight", "bias") for n in names)
    assert _accuracy(result.model, digits[1]) > 0.5
    _assert_fake_measurement(result.measurement)
    # The model given keeps its weights, and no pruning hooks were added to it.
    for p, q in zip(trained.module.parameters(), before, strict=True):
        assert torch.equal(p, q)
    assert not any(m._forward_pre_hooks for m in trained.module.modules())


def test_ln_structured_zeroes_whole_rows_and_channels(
    trained: TorchModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    result = prune(trained, "ln_structured", 0.5, out_dir=tmp_path, meter=meter, name="rows")
    assert result.name == "rows" and result.path.name == "rows.pt"
    for w in _pruned_weights(result.model):
        rows = w.reshape(w.shape[0], -1)
        zero_rows = int((rows == 0).all(dim=1).sum())
        assert zero_rows == round(0.5 * w.shape[0])
        # The zeros are whole rows: every other row keeps its weights.
        assert int((rows != 0).any(dim=1).sum()) == w.shape[0] - zero_rows
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert result.effective_parameters < result.num_parameters
    _assert_fake_measurement(result.measurement)


@pytest.mark.parametrize("amount", [0, 1, 0.0, 1.0, -0.1, 1.5, math.nan, True, "0.5", None])
def test_prune_amount_must_be_a_fraction(amount: Any, mlp: TorchModel, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="amount must be a fraction"):
        prune(mlp, "l1_unstructured", amount, out_dir=tmp_path, meter=None)
    assert not any(tmp_path.iterdir())


def test_prune_refuses_unknown_methods_and_other_frameworks(
    mlp: TorchModel, digits: tuple[Dataset, Dataset], tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"'random'.*torch methods: l1_unstructured, "
                                          r"ln_structured"):
        prune(mlp, "random", 0.5, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"Conv1d/2d/3d weights, and this model has none"):
        prune(from_module(nn.Sequential(nn.ReLU())), "l1_unstructured", 0.5, out_dir=tmp_path)
    from sklearn.linear_model import LogisticRegression

    from wattprint.workloads.loaders.sklearn_loader import from_estimator

    sk = from_estimator(LogisticRegression(max_iter=200).fit(digits[0].x, digits[0].y))
    with pytest.raises(ConfigError, match=r"pruning does not apply to sklearn models; it "
                                          r"applies to torch: l1_unstructured, ln_structured"):
        prune(sk, "l1_unstructured", 0.5, out_dir=tmp_path)


# -- ONNX ----------------------------------------------------------------------------------------

def test_export_onnx_matches_torch_with_a_dynamic_batch(
    trained: TorchModel, onnx_fp32: OnnxModel, digits: tuple[Dataset, Dataset],
    meter: EnergyMeter, tmp_path: Path,
) -> None:
    test = digits[1]
    result = export_onnx(trained, tmp_path / "sub" / "model.onnx", sample=test.x[:1],
                         meter=meter)
    assert (result.name, result.kind, result.method) == ("onnx", "export", "torchscript")
    _assert_saved(result, ".onnx")
    (tmp_path / "sub" / "model.onnx").chmod(0o640)  # a file of the user's, replaced: its mode stays
    export_onnx(trained, tmp_path / "sub" / "model.onnx", sample=test.x[:1], meter=meter)
    assert (tmp_path / "sub" / "model.onnx").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["model.onnx"]
    assert result.model.framework == "onnx" and result.model.inputs[0].shape is not None
    assert result.model.inputs[0].shape[0] is None  # the batch axis is dynamic
    for n in (1, 7, len(test)):
        np.testing.assert_allclose(result.model.predict(test.x[:n]), trained.predict(test.x[:n]),
                                   rtol=1e-4, atol=1e-4)
    assert result.num_parameters == trained.num_parameters
    assert result.effective_parameters == effective_parameters(trained)
    _assert_fake_measurement(result.measurement)


# -- TorchScript: the form torch variants are measured in ---------------------------------------

def test_export_torchscript_is_the_same_model_as_its_variants_run(
    trained: TorchModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    """The parent as TorchScript, loaded back as a pruned or quantized variant is: measured
    beside them, what differs is the optimization, not eager torch's dispatch."""
    test = digits[1]
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "base.pt").write_bytes(b"an older file, replaced whole")
    result = export_torchscript(trained, tmp_path / "study" / "base.pt", meter=meter)
    assert (result.name, result.kind, result.method) == ("torchscript", "export", "script")
    _assert_saved(result, ".pt")
    assert [p.name for p in (tmp_path / "study").iterdir()] == ["base.pt"]  # no temporary left
    assert isinstance(result.model.module, torch.jit.ScriptModule)
    assert not isinstance(trained.module, torch.jit.ScriptModule)  # the model given is as it was
    np.testing.assert_allclose(result.model.predict(test.x), trained.predict(test.x),
                               rtol=1e-5, atol=1e-6)
    assert result.num_parameters == trained.num_parameters
    assert result.effective_parameters == effective_parameters(trained)
    _assert_fake_measurement(result.measurement)
    pruned = prune(trained, "l1_unstructured", 0.3, out_dir=tmp_path / "study", meter=meter)
    assert type(pruned.model.module) is type(result.model.module)  # the same form


#: In a child: a torch model exported to the file argv[1] (ONNX or TorchScript, by its suffix)
#: under a file-size limit it exceeds (a full disk, as a write sees it); prints the error.
UNDER_A_FILE_LIMIT = """\
import resource, signal, sys
from pathlib import Path
import numpy as np
import torch
from wattprint.optimize import export_onnx, export_torchscript
from wattprint.workloads.loaders.torch_loader import from_module

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG; the process lives
target = Path(sys.argv[1])
net = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
model = from_module(net, task="classification")
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the file needs about 150 KB
export = export_onnx if target.suffix == ".onnx" else export_torchscript
try:
    export(model, target, sample=np.zeros((2, 64), dtype=np.float32))
except Exception as err:
    print(type(err).__name__, str(err).splitlines()[0])
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="file-size limits are POSIX")
@pytest.mark.parametrize("name", ["model.onnx", "model.pt"])
def test_a_variant_that_cannot_be_written_whole_leaves_the_file_there_as_it_was(
        name: str, tmp_path: Path) -> None:
    folder = tmp_path / "variants"
    folder.mkdir()
    (folder / name).write_bytes(b"the variant made before")
    script = tmp_path / "limit.py"
    script.write_text(UNDER_A_FILE_LIMIT)
    done = subprocess.run([sys.executable, str(script), str(folder / name)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Error" in done.stdout, done.stdout  # the export failed, and said so
    assert (folder / name).read_bytes() == b"the variant made before", done.stdout
    assert [p.name for p in folder.iterdir()] == [name]  # no temporary file left


class _VarArgs(nn.Module):
    """A module torch.jit.script refuses (a forward of ``*inputs``), which traces."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, *inputs: Any) -> Any:
        return self.linear(inputs[0])


def test_export_torchscript_traces_what_cannot_be_scripted_on_the_sample_given(
    digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    test = digits[1]
    torch.manual_seed(0)
    model = from_module(_VarArgs(), task="classification")
    with pytest.raises(wattprint.ModelError, match=r"the model cannot be saved as TorchScript: "
                       r"torch.jit.script failed .*give sample="):
        export_torchscript(model, tmp_path / "varargs.pt", meter=meter)
    assert not (tmp_path / "varargs.pt").exists()
    result = export_torchscript(model, tmp_path / "varargs.pt", sample=test, meter=meter)
    assert result.method == "trace"
    np.testing.assert_allclose(result.model.predict(test.x), model.predict(test.x),
                               rtol=1e-5, atol=1e-6)


def test_export_torchscript_refuses_other_models_and_paths(
    mlp: TorchModel, digits: tuple[Dataset, Dataset], tmp_path: Path,
) -> None:
    from sklearn.linear_model import LogisticRegression

    from wattprint.workloads.loaders.sklearn_loader import from_estimator

    train = digits[0]
    sk = from_estimator(LogisticRegression(max_iter=200).fit(train.x, train.y))
    with pytest.raises(ConfigError, match=r"TorchScript export takes torch models \(a "
                                          r"TorchModel\), not sklearn"):
        export_torchscript(sk, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match=r"must end in .pt or .pth .*not 'm.onnx'"):
        export_torchscript(mlp, tmp_path / "m.onnx")
    (tmp_path / "taken.pt").mkdir()
    with pytest.raises(ConfigError, match=r"is a folder; give the TorchScript file's path"):
        export_torchscript(mlp, tmp_path / "taken.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.pt"]


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_onnx_int8_is_smaller_and_as_accurate(
    method: str, onnx_fp32: OnnxModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter,
    tmp_path: Path,
) -> None:
    train, test = digits
    calibration = train if method == "static" else None
    result = quantize(onnx_fp32, method, calibration=calibration, out_dir=tmp_path, meter=meter)
    assert result.name == f"int8-{method}" and result.target_dtype == "int8"
    _assert_saved(result, ".onnx")
    assert result.model.dtype == "int8"
    assert result.size_bytes < 0.6 * onnx_fp32.size_bytes
    assert abs(_accuracy(result.model, test) - _accuracy(onnx_fp32, test)) <= 0.03
    assert _agreement(result.model, onnx_fp32, test) >= 0.9
    assert 0 < result.effective_parameters <= result.num_parameters
    _assert_fake_measurement(result.measurement)


def test_onnx_fp16_is_smaller_and_close(
    onnx_fp32: OnnxModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    test = digits[1]
    try:
        result = quantize(onnx_fp32, "fp16", calibration=test, out_dir=tmp_path, meter=meter)
    except ConfigError as err:
        assert "fp16" in str(err)
        return
    _assert_saved(result, ".onnx")
    assert (result.name, result.target_dtype, result.model.dtype) == ("fp16", "fp16", "float16")
    assert result.size_bytes < 0.75 * onnx_fp32.size_bytes
    np.testing.assert_allclose(result.model.predict(test.x), onnx_fp32.predict(test.x),
                               rtol=0.05, atol=0.05)
    _assert_fake_measurement(result.measurement)


#: In a fresh process: an ONNX model made fp16, then int8 (dynamic and static), as a sweep's
#: worker makes the variants of one model; prints each variant's name.
FP16_THEN_INT8 = """\
import sys
from pathlib import Path
import numpy as np
import torch
from wattprint.optimize import export_onnx, quantize
from wattprint.workloads.loaders.torch_loader import from_module

out = Path(sys.argv[1])
net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
rows = np.random.default_rng(0).random((40, 64), dtype=np.float32)
onnx_model = export_onnx(from_module(net), out / "fp32.onnx", sample=rows).model
for method in ("fp16", "dynamic", "static"):
    print(quantize(onnx_model, method, calibration=rows, out_dir=out).name)
"""


def test_onnx_int8_after_fp16_in_one_process(tmp_path: Path) -> None:
    """fp16 loads onnxruntime's transformers tools, whose folder must stay on sys.path: the
    int8 quantizers import from it by bare names when first called ("No module named
    'fusion_utils'" failed the int8 variants of a model made fp16 first)."""
    script = tmp_path / "fp16_then_int8.py"
    script.write_text(FP16_THEN_INT8)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["fp16", "int8-dynamic", "int8-static"], done.stdout


def test_onnx_static_needs_calibration_and_a_file(
    onnx_fp32: OnnxModel, tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="static quantization needs samples"):
        quantize(onnx_fp32, "static", out_dir=tmp_path)
    assert onnx_fp32.path is not None
    from wattprint.workloads.loaders.onnx_loader import from_bytes

    in_memory = from_bytes(onnx_fp32.path.read_bytes())
    with pytest.raises(ConfigError, match="made in memory"):
        quantize(in_memory, "dynamic", out_dir=tmp_path)


# -- errors, names, records ----------------------------------------------------------------------

def test_methods_that_do_not_apply_are_config_errors(
    mlp: TorchModel, onnx_fp32: OnnxModel, digits: tuple[Dataset, Dataset], tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"'static' does not apply to torch models \('static' "
                                          r"applies to onnx models\); torch methods: dynamic, "
                                          r"fp16, bf16"):
        quantize(mlp, "static", calibration=digits[1], out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'bf16' does not apply to onnx models.*dynamic, "
                                          r"static, fp16"):
        quantize(onnx_fp32, "bf16", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="makes int8 weights, not 'int4'"):
        quantize(mlp, "dynamic", target_dtype="int4", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="Linear layers, and this model has none"):
        quantize(from_module(nn.Sequential(nn.ReLU())), "dynamic", out_dir=tmp_path)
    from sklearn.linear_model import LogisticRegression

    from wattprint.workloads.loaders.sklearn_loader import from_estimator

    sk = from_estimator(LogisticRegression(max_iter=200).fit(digits[0].x, digits[0].y))
    with pytest.raises(ConfigError, match=r"quantization does not apply to sklearn models; it "
                                          r"applies to torch: dynamic, fp16, bf16, "
                                          r"int8-weight-only; onnx: dynamic, static, fp16"):
        quantize(sk, "dynamic", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="effective_parameters counts torch and onnx"):
        effective_parameters(sk)
    with pytest.raises(ConfigError, match="ONNX export takes torch models"):
        export_onnx(sk, tmp_path / "x.onnx", sample=digits[1])
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        export_onnx(mlp, tmp_path / "x.pt", sample=digits[1])
    with pytest.raises(ConfigError, match="variant name"):
        quantize(mlp, "dynamic", out_dir=tmp_path, name="../escape")
    assert not any(tmp_path.iterdir())


def test_effective_parameters_counts_non_zero_weights(tmp_path: Path) -> None:
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.5, 0]))
    model = from_module(layer)
    assert model.num_parameters == 15
    assert effective_parameters(model) == 4
    with EnergyMeter(sensors=[FakeSensor(power_w=POWER_W)]) as m:
        exported = export_onnx(model, tmp_path / "layer.onnx", sample=np.ones((2, 4)), meter=m)
    assert effective_parameters(exported.model) == exported.effective_parameters == 4


def test_result_to_dict_is_json_ready(
    mlp: TorchModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    result = prune(mlp, "l1_unstructured", 0.25, out_dir=tmp_path, meter=meter)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["name"] == "pruned-l1_unstructured-0.25" and data["kind"] == "pruning"
    assert data["amount"] == 0.25 and data["sparsity"] == pytest.approx(0.25, abs=0.01)
    assert data["path"] == str(result.path) and data["size_bytes"] == result.size_bytes
    assert data["num_parameters"] == result.num_parameters
    assert data["effective_parameters"] == result.effective_parameters
    assert data["model"]["framework"] == "torch"
    assert data["measurement"]["energy_j"] == pytest.approx(result.measurement.energy_j)
    assert data["measurement"]["components"]["cpu"]["source"] == "fake"
    assert data["measurement"]["footprint"]["co2_g"] >= 0
    assert "0.25" in repr(result)


def test_without_a_meter_a_default_one_measures(mlp: TorchModel, tmp_path: Path) -> None:
    result = prune(mlp, "l1_unstructured", 0.5, out_dir=tmp_path)
    m = result.measurement
    assert m.duration_s > 0 and m.components
    assert all(c.source.value != "fake" for c in m.components.values())


def test_importing_optimize_imports_no_framework() -> None:
    code = ("import sys, wattprint.optimize as o\n"
            "from wattprint.optimize import (OptimizationResult, effective_parameters,\n"
            "    export_onnx, prune, quantize)\n"
            "heavy = {'torch', 'onnx', 'onnxruntime', 'sklearn'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _linear_onnx(path: Path, batch: int | str) -> OnnxModel:
    """An ``x @ w + b`` ONNX model of 64 features to 4 whose batch axis is ``batch`` (a size
    fixes it; a name leaves it free)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from wattprint.workloads.loaders import onnx_loader

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(64, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], initializer=[w, b])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return onnx_loader.load(path)


def test_onnx_static_calibrates_a_free_batch_axis_on_fewer_samples_than_a_batch(
    meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = _linear_onnx(tmp_path / "free.onnx", "N")
    samples = np.random.default_rng(1).normal(size=(10, 64)).astype(np.float32)
    result = quantize(model, "static", calibration=samples, out_dir=tmp_path / "out",
                      meter=meter)
    assert result.name == "int8-static"
    _assert_saved(result, ".onnx")
    np.testing.assert_allclose(result.model.predict(samples), model.predict(samples),
                               rtol=0.1, atol=0.1)


def test_onnx_static_on_a_fixed_batch_needs_a_whole_batch(
    meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = _linear_onnx(tmp_path / "fixed.onnx", 32)
    samples = np.random.default_rng(1).normal(size=(10, 64)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"input 'x' takes batches of exactly 32; give at "
                                          r"least 32 samples, not 10"):
        quantize(model, "static", calibration=samples, out_dir=tmp_path / "out", meter=meter)


# -- torchao int8 weight-only --------------------------------------------------------------------

def _is_torchao_int8(tensor: Any) -> bool:
    """A torchao tensor whose values are stored as int8."""
    data = getattr(tensor, "qdata", None)
    return (type(tensor).__module__.startswith("torchao.") and data is not None
            and data.dtype == torch.int8 and data.shape == tensor.shape)


def _without_torchao(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchao made unimportable, as where it is not installed."""
    for name in ("torchao", "torchao.quantization"):
        monkeypatch.setitem(sys.modules, name, None)


def test_torchao_int8_weight_only_stores_every_linear_weight_as_int8(
    mlp: TorchModel, digits: tuple[Dataset, Dataset], meter: EnergyMeter, tmp_path: Path,
) -> None:
    pytest.importorskip("torchao")
    test = digits[1]
    before = mlp.predict(test.x)
    result = quantize(mlp, "int8-weight-only", out_dir=tmp_path, meter=meter)

    assert (result.name, result.kind, result.method, result.target_dtype) == (
        "int8-weight-only", "quantization", "int8-weight-only", "int8")
    assert result.amount is None and result.sparsity is None
    variant = result.model
    assert isinstance(variant, TorchModel) and variant.dtype == "int8"
    linear = [m for m in variant.module.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 3 and all(_is_torchao_int8(m.weight) for m in linear)
    # close to the float model; activations stay float
    np.testing.assert_allclose(variant.predict(test.x), before, rtol=0.05, atol=0.05)
    assert _agreement(variant, mlp, test) >= 0.95
    # the quantized state_dict is saved, and is what size_bytes counts
    assert result.path == variant.path == tmp_path / "int8-weight-only.pt"
    assert result.size_bytes == result.path.stat().st_size == variant.size_bytes
    state = torch.load(result.path, weights_only=True)
    assert sum(_is_torchao_int8(t) for t in state.values()) == 3
    torch.save(mlp.module.state_dict(), tmp_path / "fp32.pt")
    assert result.size_bytes < (tmp_path / "fp32.pt").stat().st_size
    assert result.num_parameters == mlp.num_parameters == variant.num_parameters
    assert 0 < result.effective_parameters <= result.num_parameters
    assert result.effective_parameters == effective_parameters(variant)
    _assert_fake_measurement(result.measurement)
    # The model given is not changed.
    np.testing.assert_array_equal(mlp.predict(test.x), before)
    assert all(type(m.weight) is nn.Parameter for m in mlp.module.modules()
               if isinstance(m, nn.Linear))


def test_int8_weight_only_needs_torchao_an_eager_module_and_linear_layers(
    mlp: TorchModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from wattprint.errors import MissingExtra

    with pytest.raises(ConfigError, match="makes int8 weights, not 'fp16'"):
        quantize(mlp, "int8-weight-only", target_dtype="fp16", out_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's
        scripted = from_module(torch.jit.script(_mlp()))
    with pytest.raises(ConfigError, match="int8 weight-only quantization needs an eager"):
        quantize(scripted, "int8-weight-only", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="Linear layers, and this model has none"):
        quantize(from_module(nn.Sequential(nn.ReLU())), "int8-weight-only", out_dir=tmp_path)
    _without_torchao(monkeypatch)
    with pytest.raises(MissingExtra, match=r"torchao int8 weight-only quantization needs the "
                                           r"'torchao' extra: pip install 'wattprint\[torchao\]'"):
        quantize(mlp, "int8-weight-only", out_dir=tmp_path)
    assert not any(tmp_path.iterdir())
