"""Quantizing and pruning Hugging Face transformers models: a tiny GPT-2 (causal LM, whose
attention and MLP are ``Conv1D`` layers) and a tiny BERT classifier, built from configs and
saved with ``save_pretrained``; nothing is downloaded, and the network is refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from offline import no_network  # noqa: F401  (autouse: no test here reaches a network)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from test_loaders_hf import TEXTS, WORDS, _bert_config, _tokenizer  # noqa: E402

import wattprint  # noqa: E402
from wattprint import ConfigError, EnergyMeter, FakeSensor, Measurement  # noqa: E402
from wattprint.errors import MissingExtra  # noqa: E402
from wattprint.optimize import effective_parameters, prune, quantize  # noqa: E402
from wattprint.optimize.quantization import METHODS  # noqa: E402
from wattprint.workloads.loaders.transformers_loader import TransformersModel  # noqa: E402

POWER_W = 10.0
Conv1D = transformers.pytorch_utils.Conv1D
DynamicLinear = torch.ao.nn.quantized.dynamic.Linear




@pytest.fixture
def meter() -> Iterator[EnergyMeter]:
    m = EnergyMeter([FakeSensor(power_w=POWER_W)])
    yield m
    m.close()


def _gpt2_folder(folder: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=2, n_positions=64,
        bos_token_id=WORDS.index("[CLS]"), eos_token_id=WORDS.index("[SEP]"),
        pad_token_id=WORDS.index("[PAD]"))
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer = _tokenizer(folder, bert=False)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(folder)
    return folder


def _bert_folder(folder: Path) -> Path:
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(_bert_config()).save_pretrained(folder)
    _tokenizer(folder, bert=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"gpt2": _gpt2_folder(root / "gpt2"), "bert": _bert_folder(root / "bert")}


@pytest.fixture(scope="module", params=["gpt2", "bert"])
def hf_model(request: pytest.FixtureRequest, folders: dict[str, Path]) -> TransformersModel:
    model = wattprint.load_model(folders[request.param], max_new_tokens=4)
    assert isinstance(model, TransformersModel)
    return model


def _logits(model: TransformersModel) -> Any:
    """The model's logits for TEXTS, as float32 (a forward pass, for either task)."""
    assert model.tokenizer is not None
    encoded = model.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model.module(**encoded).logits.float().numpy()


def _linear_weights(module: Any) -> list[Any]:
    """The weights of the Linear and Conv1D layers, but a head tied to the embeddings."""
    embeddings = {id(p) for m in module.modules() if isinstance(m, torch.nn.Embedding)
                  for p in m.parameters()}
    return [m.weight.detach() for m in module.modules()
            if isinstance(m, torch.nn.Linear | Conv1D) and id(m.weight) not in embeddings]


def _assert_fake_measurement(m: Measurement) -> None:
    assert m.duration_s > 0
    assert m.energy_j >= 0
    assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-6, abs=1e-9)
    assert m.components["cpu"].source.value == "fake"
    assert not m.partial


def _assert_variant_of(result: Any, model: TransformersModel, name: str) -> None:
    variant = result.model
    assert isinstance(variant, TransformersModel) and variant.framework == "transformers"
    assert result.name == name and result.path == Path(result.path) and result.path.is_dir()
    assert result.path.name == name and variant.path == result.path
    assert variant.tokenizer is model.tokenizer
    assert (variant.task, variant.max_new_tokens) == (model.task, model.max_new_tokens)
    on_disk = sum(f.stat().st_size for f in result.path.rglob("*") if f.is_file())
    assert result.size_bytes == variant.size_bytes == on_disk > 0
    assert result.num_parameters == variant.num_parameters
    assert result.effective_parameters == effective_parameters(variant)


def _assert_predicts(variant: TransformersModel, model: TransformersModel, atol: float) -> None:
    out = variant.predict(TEXTS)
    if model.task == "text-generation":
        assert out.shape[0] == len(TEXTS) and 1 <= out.shape[1] <= model.max_new_tokens
        assert out.dtype.kind == "i" and out.min() >= 0 and out.max() < len(WORDS)
    else:
        assert out.shape == (len(TEXTS), model.module.config.num_labels)
    np.testing.assert_allclose(_logits(variant), _logits(model), atol=atol)


# -- quantization --------------------------------------------------------------------------------

def test_transformers_methods_are_listed() -> None:
    assert METHODS["transformers"] == ("dynamic", "fp16", "bf16", "int8-weight-only")


def test_dynamic_int8_quantizes_every_linear_and_conv1d_layer(
    hf_model: TransformersModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    result = quantize(hf_model, "dynamic", out_dir=tmp_path, meter=meter)
    _assert_variant_of(result, hf_model, "int8-dynamic")
    variant = result.model
    assert (result.kind, result.method, result.target_dtype) == ("quantization", "dynamic",
                                                                  "int8")
    layers = list(variant.module.modules())
    linear_before = [m for m in hf_model.module.modules()
                     if type(m) is torch.nn.Linear or isinstance(m, Conv1D)]
    quantized = [m for m in layers if isinstance(m, DynamicLinear)]
    assert len(quantized) == len(linear_before) > 0  # GPT-2's Conv1D layers too
    assert not any(type(m) is torch.nn.Linear or isinstance(m, Conv1D) for m in layers)
    assert variant.dtype == "int8" and str(variant.device) == "cpu"
    assert (result.path / "int8_dynamic_state_dict.pt").is_file()
    assert not (result.path / "model.safetensors").exists()
    assert result.size_bytes < hf_model.size_bytes
    # the int8 copies of the weights are counted (GPT-2's tied head gets its own copy)
    assert result.num_parameters >= hf_model.num_parameters
    assert 0 < result.effective_parameters <= result.num_parameters
    _assert_predicts(variant, hf_model, atol=0.05)
    # the model given is left as it was
    assert not any(isinstance(m, DynamicLinear) for m in hf_model.module.modules())
    _assert_fake_measurement(result.measurement)


@pytest.mark.parametrize("method", ["fp16", "bf16"])
def test_half_precision_casts_or_says_clearly_why_not(
    method: str, hf_model: TransformersModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    dtype = {"fp16": "float16", "bf16": "bfloat16"}[method]
    try:
        result = quantize(hf_model, method, target_dtype=dtype, out_dir=tmp_path, meter=meter)
    except ConfigError as err:
        assert f"{method} is not supported for this model on cpu" in str(err)
        return
    _assert_variant_of(result, hf_model, method)
    assert result.target_dtype == method and result.model.dtype == dtype
    assert all(p.dtype == getattr(torch, dtype) for p in result.model.module.parameters())
    assert result.num_parameters == hf_model.num_parameters
    assert result.size_bytes < hf_model.size_bytes
    _assert_predicts(result.model, hf_model, atol=0.05)
    assert hf_model.dtype == "float32"
    assert all(p.dtype == torch.float32 for p in hf_model.module.parameters())
    reloaded = wattprint.load_model(result.path, max_new_tokens=4)  # save_pretrained's folder
    assert reloaded.dtype == dtype
    _assert_fake_measurement(result.measurement)


def test_a_device_that_cannot_run_the_cast_is_a_config_error(
    folders: dict[str, Path], tmp_path: Path,
) -> None:
    model = wattprint.load_model(folders["bert"])

    def no_half_kernels(module: Any, args: Any) -> None:  # as a CPU without fp16 matmul says
        if next(module.parameters()).dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')

    model.module.register_forward_pre_hook(no_half_kernels)
    with pytest.raises(ConfigError, match=r"fp16 is not supported for this model on cpu: "
                                          r"\"addmm_impl_cpu_\" not implemented"):
        quantize(model, "fp16", out_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    assert quantize(model, "bf16", out_dir=tmp_path).model.dtype == "bfloat16"


def test_methods_that_do_not_apply_are_config_errors(
    hf_model: TransformersModel, tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"'static' does not apply to transformers models "
                                          r"\('static' applies to onnx models\); "
                                          r"transformers methods: dynamic, fp16, bf16"):
        quantize(hf_model, "static", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="makes int8 weights, not 'int4'"):
        quantize(hf_model, "dynamic", target_dtype="int4", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'random' does not apply to transformers models; "
                                          r"transformers methods: l1_unstructured"):
        prune(hf_model, "random", 0.5, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="amount must be a fraction"):
        prune(hf_model, "l1_unstructured", 1.0, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_variant_never_replaces_its_model_and_replaces_an_older_variant(
    folders: dict[str, Path], tmp_path: Path,
) -> None:
    model = wattprint.load_model(folders["bert"])
    source = model.path
    assert source is not None
    with pytest.raises(ConfigError, match="would replace the model it is made from"):
        quantize(model, "fp16", out_dir=source.parent, name=source.name)
    with pytest.raises(ConfigError, match="would replace the model it is made from"):
        prune(model, "l1_unstructured", 0.5, out_dir=source.parent, name=source.name)
    older = tmp_path / "int8-dynamic"
    older.mkdir()
    (older / "model.safetensors").write_bytes(b"an older variant's weights")
    result = quantize(model, "dynamic", out_dir=tmp_path)
    assert result.path == older and not (older / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["int8-dynamic"]  # no staging folder left


# -- pruning -------------------------------------------------------------------------------------

def test_l1_unstructured_prunes_half_of_every_linear_weight(
    hf_model: TransformersModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    result = prune(hf_model, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)
    _assert_variant_of(result, hf_model, "pruned-l1_unstructured-0.5")
    assert (result.kind, result.method, result.amount) == ("pruning", "l1_unstructured", 0.5)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    weights = _linear_weights(result.model.module)
    assert weights
    for w in weights:
        assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert result.num_parameters == hf_model.num_parameters
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert result.effective_parameters <= result.num_parameters - zeros
    assert result.effective_parameters < effective_parameters(hf_model)
    assert result.model.dtype == "float32" and result.model.predict(TEXTS).shape[0] == len(TEXTS)
    # permanent: plain weights, no masks or hooks; the model given keeps its weights
    names = [n for n, _ in result.model.module.named_parameters()]
    assert not any(n.endswith(("_orig", "_mask")) for n in names)
    assert all(float((w == 0).float().mean()) < 0.01 for w in _linear_weights(hf_model.module))
    # a head tied to the embeddings is left as it is, and so are the embeddings
    assert torch.equal(result.model.module.get_input_embeddings().weight,
                       hf_model.module.get_input_embeddings().weight)
    reloaded = wattprint.load_model(result.path, max_new_tokens=4)
    assert effective_parameters(reloaded) == result.effective_parameters
    _assert_fake_measurement(result.measurement)


def test_ln_structured_zeroes_whole_output_features(
    folders: dict[str, Path], meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = wattprint.load_model(folders["gpt2"], max_new_tokens=4)
    result = prune(model, "ln_structured", 0.5, out_dir=tmp_path, meter=meter)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    for layer in result.model.module.modules():
        if isinstance(layer, Conv1D):  # weight (in, out): an output feature is a column
            dead = (layer.weight == 0).all(dim=0)
            assert int(dead.sum()) == layer.weight.shape[1] // 2
    _assert_fake_measurement(result.measurement)


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


def test_torchao_int8_weight_only_quantizes_every_linear_and_conv1d_layer(
    hf_model: TransformersModel, meter: EnergyMeter, tmp_path: Path,
) -> None:
    pytest.importorskip("torchao")
    result = quantize(hf_model, "int8-weight-only", out_dir=tmp_path, meter=meter)
    _assert_variant_of(result, hf_model, "int8-weight-only")
    assert (result.kind, result.method, result.target_dtype) == ("quantization",
                                                                  "int8-weight-only", "int8")
    variant = result.model
    layers = [m for m in hf_model.module.modules() if isinstance(m, torch.nn.Linear | Conv1D)]
    quantized = [m for m in variant.module.modules() if isinstance(m, torch.nn.Linear | Conv1D)]
    assert len(quantized) == len(layers) > 0
    # GPT-2's Conv1D layers became Linear layers, and every weight is a torchao int8 tensor
    assert all(type(m) is torch.nn.Linear and _is_torchao_int8(m.weight) for m in quantized)
    assert variant.dtype == "int8" and variant.device == hf_model.device
    saved = result.path / "int8_weight_only_state_dict.pt"
    state = torch.load(saved, weights_only=True)
    assert sum(_is_torchao_int8(t) for t in state.values()) == len(quantized)
    assert not (result.path / "model.safetensors").exists()
    assert result.size_bytes < hf_model.size_bytes
    # the int8 weights are counted (GPT-2's tied head gets its own int8 copy)
    assert result.num_parameters >= hf_model.num_parameters
    assert 0 < result.effective_parameters <= result.num_parameters
    _assert_predicts(variant, hf_model, atol=0.05)  # GPT-2 generates
    _assert_fake_measurement(result.measurement)
    # the model given is left as it was
    assert all(type(m.weight) is torch.nn.Parameter for m in layers)
    assert all(type(m.weight) is torch.nn.Parameter for m in hf_model.module.modules()
               if isinstance(m, torch.nn.Linear | Conv1D))


def _sweep_config(folder: Path, tmp_path: Path) -> dict[str, Any]:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(TEXTS[:3]) + "\n")
    return {
        "project": "int8-weight-only",
        "models": [{"name": "gpt2", "path": str(folder), "task": "text-generation",
                    "options": {"max_new_tokens": 4},
                    "quantization": {"enabled": True, "method": "int8-weight-only"}}],
        "datasets": [{"name": str(prompts), "split": "all"}],
        "monitoring": {"warmup": 0},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }


def test_a_sweep_makes_measures_and_runs_the_int8_weight_only_variant(
    folders: dict[str, Path], tmp_path: Path,
) -> None:
    pytest.importorskip("torchao")
    with EnergyMeter([FakeSensor(power_w=POWER_W)]) as meter:
        wattprint.Benchmark(_sweep_config(folders["gpt2"], tmp_path)).run(meter=meter,
                                                                          progress=False)
    with wattprint.Store(tmp_path / "w.db", read_only=True) as store:
        runs = {(r.variant, r.phase): r for r in store.runs()}
    step = runs[("int8-weight-only", "optimization")]
    assert step.ok, step.error
    assert step.energy_j is not None and step.energy_j > 0
    assert step.optimization is not None
    assert (step.optimization["method"], step.optimization["target_dtype"]) == (
        "int8-weight-only", "int8")
    assert Path(step.optimization["path"], "int8_weight_only_state_dict.pt").is_file()
    assert step.dtype == "int8" and step.parent == "fp32"
    inference = runs[("int8-weight-only", "inference")]
    assert inference.ok, inference.error
    assert inference.num_samples == 3 and inference.energy_j is not None
    assert inference.metrics is not None and inference.metrics["tokens_generated"] > 0


def test_without_torchao_an_int8_weight_only_sweep_is_refused_before_it_runs(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    _without_torchao(monkeypatch)
    config = _sweep_config(folders["gpt2"], tmp_path)
    with pytest.raises(ConfigError, match=r"models\[0\]\.quantization\.method: torchao int8 "
                                          r"weight-only quantization needs the 'torchao' extra: "
                                          r"pip install 'wattprint\[torchao\]'"):
        wattprint.Benchmark(config)
    assert not (tmp_path / "w.db").exists() and not (tmp_path / "out").exists()
    with pytest.raises(MissingExtra, match=r"wattprint\[torchao\]"):
        quantize(wattprint.load_model(folders["gpt2"]), "int8-weight-only", out_dir=tmp_path)
    assert not (tmp_path / "int8-weight-only").exists()
