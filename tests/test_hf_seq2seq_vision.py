"""Hugging Face sequence-to-sequence text models (T5) and image classifiers (ViT) loaded from
folders: prediction, token counts, optimized variants, and sweeps.

The models are tiny, built from configs (:mod:`tiny_models`) and saved with
``save_pretrained`` beside a word-piece tokenizer or a ``ViTImageProcessor``; nothing is
downloaded, and the network is refused. Expected outputs come from transformers itself.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from offline import no_network  # noqa: F401  (autouse: no test here reaches a network)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
Image = pytest.importorskip("PIL.Image")

from tiny_models import tiny_t5, tiny_vit, word_tokenizer  # noqa: E402

import wattprint  # noqa: E402
from wattprint import ConfigError, EnergyMeter, FakeSensor  # noqa: E402
from wattprint.optimize import prune, quantize  # noqa: E402
from wattprint.workloads.model import InputSpec  # noqa: E402

PROMPTS = ["the cat sat on the mat", "a dog ran fast", "good", "the mat is not bad"]
MAX_NEW = 5
POWER_W = 10.0
DynamicLinear = torch.ao.nn.quantized.dynamic.Linear


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs keep their results in the working folder by default: one folder per test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def meter() -> Iterator[EnergyMeter]:
    m = EnergyMeter([FakeSensor(power_w=POWER_W)])
    yield m
    m.close()


# -- sequence to sequence (T5) -------------------------------------------------------------------

def _reference_generate(module: Any, tokenizer: Any, prompts: list[str]) -> Any:
    """transformers' own greedy generation: the decoder's ids, its start token first."""
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return module.generate(**encoded, max_new_tokens=MAX_NEW, do_sample=False).numpy()


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A T5 folder whose end token is a token it generates early for PROMPTS[0] and never
    for PROMPTS[1], so that the first row stops while the second runs to MAX_NEW."""
    folder = tmp_path_factory.mktemp("t5") / "t5"
    folder.mkdir()
    tokenizer = word_tokenizer(folder)
    module = tiny_t5()
    out = _reference_generate(module, tokenizer, PROMPTS)
    start = module.generation_config.decoder_start_token_id
    end = next(int(t) for t in out[0, 2:] if int(t) not in out[1] and int(t) != start)
    module.generation_config.eos_token_id = module.config.eos_token_id = end
    module.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _count(new: Any, end: int) -> int:
    """New tokens, each row up to and with its end token."""
    total = 0
    for row in new.tolist():
        total += row.index(end) + 1 if end in row else len(row)
    return total


def test_a_seq2seq_folder_generates_and_counts_only_new_tokens(t5: Path) -> None:
    model = wattprint.load_model(t5, max_new_tokens=MAX_NEW)
    assert model.task == "text2text-generation" and model.generates
    assert model.inputs == (InputSpec("text", (None,), "str"),)
    module = transformers.AutoModelForSeq2SeqLM.from_pretrained(t5).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(t5)
    expected = _reference_generate(module, tokenizer, PROMPTS)
    end = module.generation_config.eos_token_id

    ids = model.predict(PROMPTS)
    np.testing.assert_array_equal(ids, expected[:, 1:])  # the decoder start token is no new token
    assert ids.tokens == model.last_generated_tokens == _count(expected[:, 1:], end)
    assert ids.tokens < ids.size  # the first row ends early; its padding is not counted
    assert list(ids[1]).count(end) == 0 and ids.shape[1] == MAX_NEW
    texts = model.decode(ids)
    row0 = list(expected[0, 1:])
    assert texts[0] == tokenizer.decode(row0[:row0.index(end)], skip_special_tokens=True)
    assert texts[1] == tokenizer.decode(list(expected[1, 1:]), skip_special_tokens=True)
    assert model.perplexity(PROMPTS) is None  # prompts are inputs, not text it continues
    same = wattprint.load_model(t5, task="text2text-generation", max_new_tokens=MAX_NEW)
    np.testing.assert_array_equal(same.predict(PROMPTS), ids)


def test_seq2seq_generation_reaches_the_harness_with_a_profile(t5: Path,
                                                               meter: EnergyMeter) -> None:
    from wattprint.workloads.harness import measure_inference

    model = wattprint.load_model(t5, max_new_tokens=MAX_NEW)
    record = measure_inference(model.predict, PROMPTS, "tiny-t5", "text2text-generation",
                               num_samples=len(PROMPTS), batch_size=2, warmup=0, meter=meter,
                               progress=False)
    metrics = record.metrics
    assert metrics is not None
    tokens = sum(model.predict(b).tokens for b in (PROMPTS[:2], PROMPTS[2:]))
    assert metrics["tokens_generated"] == tokens
    assert metrics["joules_per_token"] == pytest.approx(record.energy_j / tokens)
    assert metrics["profiled_prompts"] == len(PROMPTS)
    assert metrics["profiled_tokens"] == tokens
    for key in ("time_to_first_token_s", "prefill_energy_j", "decode_energy_j"):
        assert metrics[key] > 0, key
    assert "perplexity" not in metrics


def test_seq2seq_variants_generate_and_keep_the_tied_embeddings(
    t5: Path, meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = wattprint.load_model(t5, max_new_tokens=MAX_NEW)
    module = model.module
    assert module.lm_head.weight is module.shared.weight  # tied, as T5's head is

    int8 = quantize(model, "dynamic", out_dir=tmp_path, meter=meter)
    assert int8.model.task == "text2text-generation" and int8.model.dtype == "int8"
    assert any(isinstance(m, DynamicLinear) for m in int8.model.module.modules())
    ids = int8.model.predict(PROMPTS)
    assert ids.shape[0] == len(PROMPTS) and 0 < ids.tokens <= len(PROMPTS) * MAX_NEW

    try:
        fp16 = quantize(model, "fp16", out_dir=tmp_path, meter=meter)
    except ConfigError as err:  # a CPU without fp16 kernels says so
        assert "fp16 is not supported for this model on cpu" in str(err)
    else:
        assert fp16.model.dtype == "float16"
        assert fp16.model.predict(PROMPTS).tokens > 0

    pruned = prune(model, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)
    assert pruned.sparsity == pytest.approx(0.5, abs=0.01)
    shared = pruned.model.module.shared.weight
    torch.testing.assert_close(shared, module.shared.weight, rtol=0, atol=0)  # not pruned
    assert float((shared == 0).float().mean()) == 0.0
    q = pruned.model.module.encoder.block[0].layer[0].SelfAttention.q.weight
    assert float((q == 0).float().mean()) == pytest.approx(0.5, abs=0.05)
    assert pruned.model.predict(PROMPTS).tokens > 0
    reloaded = wattprint.load_model(pruned.path, max_new_tokens=MAX_NEW)
    assert reloaded.task == "text2text-generation"
    np.testing.assert_array_equal(reloaded.predict(PROMPTS), pruned.model.predict(PROMPTS))


@pytest.mark.parametrize("dataset_task", ["text", "text2text-generation"])
def test_a_sweep_of_a_seq2seq_model_reports_energy_per_token(
    t5: Path, tmp_path: Path, dataset_task: str,
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:3]) + "\n")
    config = {
        "project": "seq2seq",
        "models": [{"name": "t5", "path": str(t5), "task": dataset_task,
                    "options": {"max_new_tokens": 4},
                    "quantization": {"enabled": True, "method": "dynamic"},
                    "pruning": {"enabled": True, "amount": 0.5}}],
        "datasets": [{"name": str(prompts), "split": "all", "task": dataset_task}],
        "monitoring": {"warmup": 0},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    with EnergyMeter([FakeSensor(power_w=POWER_W)]) as meter:
        wattprint.Benchmark(config).run(meter=meter, progress=False)
    with wattprint.Store(tmp_path / "w.db", read_only=True) as store:
        runs = [r for r in store.runs() if r.phase == "inference"]
    by_variant = {r.variant: r for r in runs}
    assert {"fp32", "int8-dynamic", "pruned-l1_unstructured-0.5"} <= set(by_variant), [
        (r.variant, r.status, r.error) for r in runs]
    for run in by_variant.values():
        assert run.ok, (run.variant, run.error)
        m = run.metrics
        assert m is not None and run.num_samples == 3
        assert m["tokens_generated"] > 0
        assert m["joules_per_token"] == pytest.approx(run.energy_j / m["tokens_generated"])
        assert m["prefill_energy_j"] > 0 and m["decode_energy_j"] > 0


# -- image classification (ViT) ------------------------------------------------------------------

def _processor() -> Any:
    return transformers.ViTImageProcessor(size={"height": 16, "width": 16})


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vit") / "vit"
    tiny_vit().save_pretrained(folder)
    _processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 16x16 RGB PNGs (the model's size: neither side resizes them)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"{name}.png")
    return folder


def _expected_logits(folder: Path, files: list[Path]) -> Any:
    """The logits transformers gives for the images, through the processor and module."""
    module = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    pictures = [Image.open(f).convert("RGB") for f in files]
    pixels = _processor()(pictures, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return pixels.numpy(), module(pixel_values=pixels).logits.numpy()


def test_an_image_classifier_folder_takes_image_files(vit: Path, images: Path) -> None:
    model = wattprint.load_model(vit)
    assert model.task == "image-classification"
    assert model.inputs == (InputSpec("pixel_values", (None, 3, 16, 16), "float32"),)
    assert model.image_sample_shape() == (3, 16, 16)
    assert model.preprocess is not None
    assert (model.preprocess.layout, model.preprocess.size) == ("NCHW", (16, 16))
    assert model.preprocess.mean == (0.5, 0.5, 0.5) and model.preprocess.std == (0.5, 0.5, 0.5)
    files = sorted(images.glob("*.png"))
    pixels, expected = _expected_logits(vit, files)

    one = model.predict(str(files[0]))
    assert one.shape == (1, 3)
    np.testing.assert_allclose(one, expected[:1], atol=1e-4)
    np.testing.assert_allclose(model.predict(images), expected, atol=1e-4)  # a folder
    np.testing.assert_allclose(model.predict([str(f) for f in files]), expected, atol=1e-4)
    np.testing.assert_allclose(model.predict(pixels), expected, atol=1e-4)  # pixel_values
    decoded = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    np.testing.assert_allclose(model.predict(decoded), expected, atol=1e-4)  # uint8 NHWC


def test_the_preprocess_option_is_checked_and_completes_the_processor(
    vit: Path, images: Path, t5: Path,
) -> None:
    with pytest.raises(ConfigError, match="NCHW"):
        wattprint.load_model(vit, preprocess={"layout": "NHWC"})
    with pytest.raises(ConfigError, match="16x16"):
        wattprint.load_model(vit, preprocess={"size": (32, 32)})
    model = wattprint.load_model(vit, preprocess={"mean": [0.0], "std": [1.0]})
    assert model.preprocess is not None
    assert model.preprocess.mean == (0.0,) and model.preprocess.scale == pytest.approx(1 / 255)
    files = sorted(images.glob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    x = torch.as_tensor(pixels.transpose(0, 3, 1, 2) / 255.0, dtype=torch.float32)
    with torch.no_grad():
        expected = model.module(pixel_values=x).logits.numpy()
    np.testing.assert_allclose(model.predict(images), expected, atol=1e-5)
    with pytest.raises(ConfigError, match=r"pixel_values \(n, 3, H, W\)"):
        model.predict(np.zeros((2, 16, 16, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="preprocess is an option of image-classification"):
        wattprint.load_model(t5, preprocess={"layout": "NCHW"})


@pytest.mark.parametrize(("kind", "size", "resample"), [
    ("DeiT", {"height": 20, "width": 20}, 3),  # DeiT's: resize 20x20, bicubic, crop 16x16
    ("CLIP", {"shortest_edge": 20}, 2),  # the shorter edge to 20, bilinear, crop 16x16
    # processors with steps of their own: the shorter edge to 256/224 of 18 (LeViT), to
    # 18 / crop_pct 0.9 (PoolFormer); divided by image_std twice (EfficientNet); BGR (MobileViT)
    ("Levit", {"shortest_edge": 18}, 3),
    ("PoolFormer", {"shortest_edge": 18}, 3),
    ("EfficientNet", {"height": 20, "width": 20}, 3),
    ("MobileViT", {"shortest_edge": 20}, 2),
])
def test_a_processor_that_crops_the_centre_gives_its_pixel_values(
    kind: str, size: dict[str, int], resample: int, vit: Path, tmp_path: Path,
) -> None:
    folder = tmp_path / "cropping"
    shutil.copytree(vit, folder)
    cls = (getattr(transformers, f"{kind}ImageProcessorPil", None)
           or getattr(transformers, f"{kind}ImageProcessor"))
    processor = cls(size=size, crop_size={"height": 16, "width": 16}, do_center_crop=True,
                    resample=resample)
    processor.save_pretrained(folder)  # its Pillow backend: the steps wattprint follows
    assert json.loads((folder / "preprocessor_config.json").read_text())["do_center_crop"]
    files = []
    rng = np.random.default_rng(2)
    for name, (h, w) in {"tall.png": (24, 20), "wide.png": (20, 24), "big.png": (30, 26)}.items():
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(
            tmp_path / name)
        files.append(tmp_path / name)
    model = wattprint.load_model(folder)  # 20x20 would not fit the model's 16x16
    assert model.preprocess is not None and model.preprocess.crop == (16, 16)
    assert model.preprocess.output_size == (16, 16)
    pictures = [Image.open(f).convert("RGB") for f in files]
    pixels = processor(pictures, return_tensors="np")["pixel_values"]
    assert pixels.shape == (3, 3, 16, 16)
    np.testing.assert_allclose(model.read_images(files), pixels, atol=1e-5)
    module = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = module(pixel_values=torch.as_tensor(pixels)).logits.numpy()
    np.testing.assert_allclose(model.predict(files), expected, atol=1e-4)
    # a preprocess option completes the processor's spec and keeps its crop and filter
    other = wattprint.load_model(folder, preprocess={"mean": [0.0], "std": [1.0]})
    assert other.preprocess is not None
    assert (other.preprocess.crop, other.preprocess.resample) == (
        (16, 16), model.preprocess.resample)
    assert other.preprocess.channel_order == model.preprocess.channel_order


def test_a_mobilevit_processor_reverses_the_channels_unless_the_option_says_rgb(
    vit: Path, tmp_path: Path,
) -> None:
    folder = tmp_path / "bgr"
    shutil.copytree(vit, folder)
    processor = transformers.MobileViTImageProcessorPil(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor.save_pretrained(folder)
    picture = tmp_path / "one.png"
    pixels = np.random.default_rng(5).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(picture)
    model = wattprint.load_model(folder)
    assert model.preprocess is not None and model.preprocess.channel_order == "BGR"
    bgr = pixels[..., ::-1].transpose(2, 0, 1)[np.newaxis] / np.float32(255)
    np.testing.assert_allclose(model.read_images([picture]), bgr, atol=1e-6)
    rgb = wattprint.load_model(folder, preprocess={"channel_order": "rgb"})
    assert rgb.preprocess is not None and rgb.preprocess.channel_order == "RGB"
    np.testing.assert_allclose(rgb.read_images([picture]), bgr[:, ::-1], atol=1e-6)
    with pytest.raises(ConfigError, match="channel_order must be one of RGB, BGR"):
        wattprint.load_model(folder, preprocess={"channel_order": "GBR"})


def test_image_classifier_variants_keep_the_processor(
    vit: Path, images: Path, meter: EnergyMeter, tmp_path: Path,
) -> None:
    model = wattprint.load_model(vit)
    expected = model.predict(images)
    int8 = quantize(model, "dynamic", out_dir=tmp_path, meter=meter)
    assert any(isinstance(m, DynamicLinear) for m in int8.model.module.modules())
    np.testing.assert_allclose(int8.model.predict(images), expected, atol=0.1)
    assert (int8.path / "preprocessor_config.json").is_file()
    try:
        fp16 = quantize(model, "fp16", out_dir=tmp_path, meter=meter)
    except ConfigError as err:
        assert "fp16 is not supported for this model on cpu" in str(err)
    else:
        np.testing.assert_allclose(fp16.model.predict(images), expected, atol=0.05)
    pruned = prune(model, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)
    assert pruned.sparsity == pytest.approx(0.5, abs=0.01)
    assert pruned.model.predict(images).shape == (3, 3)
    reloaded = wattprint.load_model(pruned.path)
    assert reloaded.task == "image-classification"
    assert reloaded.preprocess == model.preprocess
    np.testing.assert_allclose(reloaded.predict(images), pruned.model.predict(images),
                               atol=1e-6)


def _swept(model: dict[str, Any], root: Path, tmp_path: Path) -> list[Any]:
    """The inference runs a sweep of ``model`` over the image folder ``root`` stored in
    ``tmp_path / "w.db"``."""
    config = {
        "project": "vision",
        "models": [model],
        "datasets": [{"name": str(root), "split": "all"}],
        "monitoring": {"warmup": 0},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    with EnergyMeter([FakeSensor(power_w=POWER_W)]) as meter:
        wattprint.Benchmark(config).run(meter=meter, progress=False)
    with wattprint.Store(tmp_path / "w.db", read_only=True) as store:
        return [r for r in store.runs() if r.phase == "inference"]


def test_a_sweep_of_an_image_classifier_over_an_image_folder(
    vit: Path, tmp_path: Path,
) -> None:
    root = tmp_path / "pictures"
    rng = np.random.default_rng(1)
    for label in ("cats", "dogs", "owls"):
        (root / label).mkdir(parents=True)
        for k in range(2):
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{k}.png")
    runs = _swept({"name": "vit", "path": str(vit),
                   "quantization": {"enabled": True, "method": "dynamic"}}, root, tmp_path)
    assert {r.variant for r in runs} == {"fp32", "int8-dynamic"}, [
        (r.variant, r.status, r.error) for r in runs]
    for run in runs:
        assert run.ok, (run.variant, run.error)
        assert run.num_samples == 6 and run.metrics is not None
        assert 0.0 <= run.metrics["accuracy"] <= 1.0


def test_a_processor_step_wattprint_does_not_take_refuses_images_through_every_layer(
    vit: Path, tmp_path: Path,
) -> None:
    """Perceiver's processor crops a share of each image before it resizes: the model loads
    and takes the pixel_values that processor makes, but image files, decoded pixels and a
    sweep over an image folder are refused with the reason (the cell fails, stored so, and
    the star table has nothing to rate), never made into other pixels than the model's."""
    folder = tmp_path / "perceiver"
    shutil.copytree(vit, folder)
    processor = transformers.PerceiverImageProcessorPil(
        size={"height": 16, "width": 16}, crop_size={"height": 20, "width": 20})
    processor.save_pretrained(folder)
    root = tmp_path / "pictures"
    rng = np.random.default_rng(4)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for k in range(2):
            pixels = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{k}.png")
    files = sorted(root.glob("*/*.png"))
    model = wattprint.load_model(folder)
    reason = (r"image processor \(PerceiverImageProcessor\) crops a share of each image "
              r"before resizing it, a step wattprint does not take: give the model the "
              r"pixel_values its processor makes")
    assert re.search(reason, model.describe()["preprocess"]["unfollowed"])
    with pytest.raises(ConfigError, match=reason):
        model.predict(files)
    with pytest.raises(ConfigError, match=reason):
        model.predict(np.zeros((1, 16, 16, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match=reason):  # an option does not make the step taken
        wattprint.load_model(folder, preprocess={"mean": [0.0]}).predict(files)
    pictures = [Image.open(f).convert("RGB") for f in files]
    pixels = processor(pictures, return_tensors="np")["pixel_values"]
    with torch.no_grad():
        expected = model.module(pixel_values=torch.as_tensor(pixels)).logits.numpy()
    np.testing.assert_allclose(model.predict(pixels), expected, atol=1e-5)

    runs = _swept({"name": "perceiver", "path": str(folder)}, root, tmp_path)
    assert runs and all(r.status == "failed" for r in runs), [(r.status, r.error) for r in runs]
    assert all("a step wattprint does not take" in (r.error or "") for r in runs)
    with pytest.raises(ConfigError, match="no successful inference runs of task "
                                          "'image-classification'"):
        wattprint.calculate_scores("image-classification", "CPU", db=tmp_path / "w.db")
