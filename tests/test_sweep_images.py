"""Image folders in sweeps: a model loaded from a file takes the folder's pixels as
``model.predict(folder)`` takes its files, and so do its variants.

The folder holds 44 12x12 RGB PNGs written with Pillow, in two class folders chosen by what the
NHWC model predicts for them. The models are real and tiny: a PyTorch CNN on NCHW 3x16x16
(the images are resized), a state_dict of it (with and without ``input_shape``), and a
channels-last CNN on NHWC 12x12x3 exported to ONNX (the images go in at their own size, so
only the scaling and normalisation tell right from wrong).
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
Image = pytest.importorskip("PIL.Image")

from tiny_models import TinyImageCNN  # noqa: E402

import wattprint  # noqa: E402
from wattprint import FakeSensor  # noqa: E402
from wattprint.errors import ConfigError  # noqa: E402
from wattprint.meter import EnergyMeter  # noqa: E402
from wattprint.workloads.datasets import load_dataset  # noqa: E402
from wattprint.workloads.images import ImageSpec, image_files, read_images  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

WATTPRINT = [sys.executable, "-m", "wattprint"]
#: The NHWC model's preprocessing, given in the sweep as the loader option ``preprocess``.
NORMALISE = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
#: Images in the folder: the train split (3/4 of them) calibrates a static quantization,
#: which takes at least 32 samples.
N = 44


def _export(net: Any, shape: tuple[int, ...], path: Path) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(*shape),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    path.write_bytes(buffer.getvalue())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweep_images")
    torch.manual_seed(0)
    nchw = TinyImageCNN().eval()
    nhwc = TinyImageCNN(channels_last=True, size=12).eval()
    torch.save(nchw.state_dict(), root / "cnn.pt")
    _export(nchw, (1, 3, 16, 16), root / "nchw.onnx")
    # 44 images of varied brightness, filed under the class the NHWC model predicts for them
    rng = np.random.default_rng(0)
    staging = root / "staging"
    staging.mkdir()
    for i in range(N):
        pixels = rng.integers(0, 256, size=(12, 12, 3)) * (0.2 + 0.8 * (i % 4) / 3)
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(staging / f"img{i:02d}.png")
    staged = image_files(staging)
    _export(nhwc, (1, 12, 12, 3), root / "nhwc.onnx")
    logits = wattprint.load_model(root / "nhwc.onnx", preprocess=NORMALISE).predict(staged)
    with torch.no_grad():  # a bias that splits the images in half
        nhwc.fc.bias[0] += float(np.median(logits[:, 1] - logits[:, 0]))
    _export(nhwc, (1, 12, 12, 3), root / "nhwc.onnx")
    model = wattprint.load_model(root / "nhwc.onnx", preprocess=NORMALISE)
    labels = model.predict(staged).argmax(axis=1)
    assert sorted(np.bincount(labels).tolist()) == [N // 2, N // 2], "the bias splits them"
    folder = root / "images"
    for f, label in zip(staged, labels, strict=True):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        f.rename(folder / f"class{label}" / f.name)
    return {"root": root, "folder": folder, "cnn": root / "cnn.pt",
            "nchw": root / "nchw.onnx", "nhwc": root / "nhwc.onnx"}


def _accuracy(model: Any, folder: Path) -> float:
    """The accuracy of ``model.predict(folder)`` against the folder's class labels."""
    labels = load_dataset(folder).y
    assert labels is not None
    return float(np.mean(model.predict(folder).argmax(axis=1) == labels))


def _config(files: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    cnn = {"path": str(files["cnn"]), "options": {"model_class": "tiny_models:TinyImageCNN"}}
    return {
        "project": "image-folder",
        "models": [
            {"name": "nchw", "path": str(files["nchw"]),
             "quantization": {"enabled": True, "method": "static"}},
            {"name": "nhwc", "path": str(files["nhwc"]),
             "options": {"preprocess": NORMALISE}},
            {"name": "torch", **cnn, "options": {**cnn["options"], "input_shape": [3, 16, 16]},
             "export": "onnx", "quantization": {"enabled": True, "method": "dynamic"}},
            {"name": "no-layout", **cnn},
            {"name": "recipe", "source": "torch:SmallCNN", "epochs": 1, "export": "onnx"},
        ],
        "datasets": [{"name": str(files["folder"]), "split": "all"}],
        "monitoring": {"repetitions": 1, "warmup": 0, "batch_size": 4},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }


@pytest.fixture(scope="module")
def sweep(files: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Any]:
    tmp_path = tmp_path_factory.mktemp("sweep")
    meter = EnergyMeter(sensors=[FakeSensor(power_w=10.0)])
    report = wattprint.Benchmark(_config(files, tmp_path)).run(meter=meter, progress=False)
    return {(r["model_name"], r["variant"], r["phase"]): r for r in report["runs"]}


def test_a_torch_model_runs_as_torchscript(files: dict[str, Path],
                                           sweep: dict[tuple[str, str, str], Any]) -> None:
    """An eager model loaded from a state_dict (and its model_class) runs as TorchScript, as a
    recipe does and as torch variants do: a variant's saving is the optimization's, not
    TorchScript's over eager torch. Its ONNX variants (the int8 one is ONNX Runtime's, the
    model being exported) say nothing of it."""
    for key in [("torch", "fp32", "inference"), ("recipe", "fp32", "inference")]:
        assert sweep[key]["status"] == "ok", sweep[key]["error"]
        assert sweep[key]["extra"]["torchscript"] is True, key
    for key in [("torch", "onnx", "inference"), ("torch", "int8-dynamic", "inference")]:
        assert sweep[key]["framework"] == "onnx" and "torchscript" not in sweep[key]["extra"]
    # The state_dict model keeps its own file's size, not the size of the sweep's script.
    assert sweep[("torch", "fp32", "inference")]["size_bytes"] == files["cnn"].stat().st_size


def test_loaded_models_take_the_folder_as_predict_takes_its_files(
        files: dict[str, Path], sweep: dict[tuple[str, str, str], Any]) -> None:
    # the NHWC model labelled the folder itself: right only with its scaling and normalisation
    # (given raw pixels, it runs and scores less: see the next test)
    assert sweep[("nhwc", "fp32", "inference")]["metrics"]["accuracy"] == 1.0
    for key in [("nchw", "fp32", "inference"), ("torch", "fp32", "inference")]:
        assert sweep[key]["status"] == "ok", sweep[key]["error"]
    nchw = wattprint.load_model(files["nchw"])
    assert sweep[("nchw", "fp32", "inference")]["metrics"]["accuracy"] == pytest.approx(
        _accuracy(nchw, files["folder"]))
    torch_model = wattprint.load_model(files["cnn"], model_class="tiny_models:TinyImageCNN",
                                       input_shape=(3, 16, 16))
    assert sweep[("torch", "fp32", "inference")]["metrics"]["accuracy"] == pytest.approx(
        _accuracy(torch_model, files["folder"]))


def test_raw_pixels_would_score_otherwise(files: dict[str, Path]) -> None:
    """What the test above rules out: the NHWC model given unscaled pixels misjudges some."""
    data = load_dataset(files["folder"])
    raw = wattprint.load_model(files["nhwc"]).predict(data.x.astype(np.float32))
    assert float(np.mean(raw.argmax(axis=1) == data.y)) < 1.0


def test_variants_take_the_same_input(files: dict[str, Path],
                                      sweep: dict[tuple[str, str, str], Any]) -> None:
    for key in [("nchw", "int8-static", "optimization"), ("nchw", "int8-static", "inference"),
                ("torch", "onnx", "optimization"), ("torch", "onnx", "inference"),
                ("torch", "int8-dynamic", "optimization"), ("torch", "int8-dynamic", "inference")]:
        assert sweep[key]["status"] == "ok", (key, sweep[key]["error"])
    # the ONNX export of the torch model computes what it computes
    assert sweep[("torch", "onnx", "inference")]["metrics"]["accuracy"] == pytest.approx(
        sweep[("torch", "fp32", "inference")]["metrics"]["accuracy"])
    assert sweep[("nchw", "int8-static", "inference")]["framework"] == "onnx"


def test_a_model_without_a_layout_fails_its_cell_naming_the_fix(
        sweep: dict[tuple[str, str, str], Any]) -> None:
    run = sweep[("no-layout", "fp32", "inference")]
    assert run["status"] == "failed"
    assert "ConfigError" in run["error"] and "cannot tell the image layout" in run["error"]
    assert "'layout': 'NCHW'" in run["error"] and "Traceback" not in run["error"]


def test_a_recipe_still_takes_the_raw_pixels(sweep: dict[tuple[str, str, str], Any]) -> None:
    for key in [("recipe", "fp32", "training"), ("recipe", "fp32", "inference"),
                ("recipe", "onnx", "optimization"), ("recipe", "onnx", "inference")]:
        assert sweep[key]["status"] == "ok", (key, sweep[key]["error"])


def test_data_that_is_no_image_or_a_model_that_takes_none_is_unchanged(
        files: dict[str, Path], tmp_path: Path) -> None:
    from tiny_models import TinyNet

    from wattprint.sweep.runner import _as_model_input

    flat_path = tmp_path / "flat.onnx"
    _export(TinyNet().eval(), (1, 64), flat_path)
    flat = wattprint.load_model(flat_path)
    folder = load_dataset(files["folder"])
    assert _as_model_input(flat, (folder, folder)) == (folder, folder)
    digits = load_dataset("digits")
    image = wattprint.load_model(files["nchw"])
    assert _as_model_input(image, (digits, digits)) == (digits, digits)
    train, evaluate = _as_model_input(image, (folder, folder))
    assert train is evaluate and evaluate.x.shape == (N, 3, 16, 16)
    np.testing.assert_array_equal(evaluate.y, folder.y)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("spec", [
    ImageSpec(size=(16, 16), layout="NCHW", channels=3, scale=1 / 255),
    ImageSpec(size=(12, 12), layout="NHWC", channels=3, scale=1 / 255, mean=(0.5,), std=(0.2,)),
    ImageSpec(size=(8, 10), layout="NHWC", channels=1, scale=1.0),
])
def test_pixels_to_batch_is_read_images(tmp_path: Path, mode: str, spec: ImageSpec) -> None:
    from wattprint.workloads.images import pixels_to_batch

    rng = np.random.default_rng(1)
    shape = (12, 12) if mode == "L" else (12, 12, 3)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(2):
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(tmp_path / label / f"{i}.png")
    data = load_dataset(tmp_path)
    assert data.x.shape[-1] == (1 if mode == "L" else 3)
    np.testing.assert_array_equal(pixels_to_batch(data.x, spec), read_images(tmp_path, spec))


def test_pixels_to_batch_needs_a_resolved_spec_and_images() -> None:
    from wattprint.workloads.images import pixels_to_batch

    pixels = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match="resolve it against the model"):
        pixels_to_batch(pixels, ImageSpec(size=(4, 4)))
    with pytest.raises(ConfigError, match=r"\(N, H, W, C\)"):
        pixels_to_batch(np.zeros((2, 64)), ImageSpec(layout="NHWC", channels=3))


@pytest.mark.parametrize(("preprocess", "message"), [
    ({"layout": "NCWH"}, "preprocess layout must be one of NCHW, NHWC, not 'NCWH'"),
    ({"size": [16, 16], "colour": "red"}, "unknown preprocess field(s): colour"),
])
def test_a_bad_preprocess_is_refused_before_anything_runs(
        files: dict[str, Path], tmp_path: Path, preprocess: dict[str, Any],
        message: str) -> None:
    import yaml

    config = _config(files, tmp_path)
    config["models"][0]["options"] = {"preprocess": preprocess}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([*WATTPRINT, "run", str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "models[0].options.preprocess" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w.db").exists()
