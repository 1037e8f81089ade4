"""Image files as model input: ``model.predict("cat.png")`` and ``model.predict(folder)``.

PNGs are written with Pillow into ``tmp_path``; the models are real and tiny: a PyTorch CNN on
NCHW 3x16x16 (a state_dict, and TorchScript), its ONNX export (NCHW in its metadata), a Keras
model on NHWC 16x16x3 (``.keras``) and its TensorFlow SavedModel export. The batch each
prediction is checked against is made here, independently, with Pillow and NumPy, and run
through the framework itself.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint.errors import ConfigError
from wattprint.workloads.images import ImageSpec, from_hf_processor, layout_of

Image = pytest.importorskip("PIL.Image")

#: Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.trace_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.save` is deprecated:DeprecationWarning"),
]

SIZE = (16, 16)
MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.3)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """RGB PNGs of three sizes in ``flat/``, the same in class subfolders of ``classes/``,
    and one grayscale PNG."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    flat, classes = root / "flat", root / "classes"
    flat.mkdir()
    for name, (h, w) in {"a.png": (16, 16), "b.png": (20, 24), "c.png": (9, 30)}.items():
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(flat / name)
    for label, name in (("cat", "b.png"), ("dog", "a.png")):
        (classes / label).mkdir(parents=True)
        (classes / label / name).write_bytes((flat / name).read_bytes())
    gray = root / "gray.png"
    Image.fromarray(rng.integers(0, 256, size=(18, 14), dtype=np.uint8), "L").save(gray)
    return {"flat": flat, "classes": classes, "a": flat / "a.png", "b": flat / "b.png",
            "c": flat / "c.png", "gray": gray}


def expected(files: Sequence[Path], layout: str, *, mean: Sequence[float] = (0.0,),
             std: Sequence[float] = (1.0,)) -> np.ndarray:
    """The batch, made by hand: RGB, bilinear 16x16, / 255, normalised, in ``layout``."""
    rows = []
    for f in files:
        with Image.open(f) as im:
            image = im.convert("RGB")
        if image.size != (SIZE[1], SIZE[0]):
            image = image.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image).astype(np.float32) / np.float32(255)
        rows.append((pixels - np.float32(mean)) / np.float32(std))
    batch = np.stack(rows).astype(np.float32)
    return batch.transpose(0, 3, 1, 2) if layout == "NCHW" else batch


# -- PyTorch ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    from torch import nn

    class ImageCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
            self.fc = nn.Linear(4 * 16 * 16, 5)

        def forward(self, x: Any) -> Any:
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    torch.manual_seed(0)
    net = ImageCNN().eval()
    folder = tmp_path_factory.mktemp("torch")
    torch.save(net.state_dict(), folder / "cnn.pt")
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 16, 16)), str(folder / "cnn_script.pt"))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    (folder / "cnn.onnx").write_bytes(buffer.getvalue())

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = net(torch.from_numpy(batch)).numpy()
        return out

    return {"class": ImageCNN, "state_dict": folder / "cnn.pt",
            "script": folder / "cnn_script.pt", "onnx": folder / "cnn.onnx", "run": run}


def test_torch_state_dict_reads_a_png_and_a_folder_as_nchw(torch_files: dict[str, Any],
                                                          pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(torch_files["state_dict"], model_class=torch_files["class"],
                                 input_shape=(3, 16, 16))
    run = torch_files["run"]
    one = expected([pictures["a"]], "NCHW")
    np.testing.assert_allclose(model.predict(str(pictures["a"])), run(one), rtol=1e-5,
                               atol=1e-6)
    files = [pictures["a"], pictures["b"], pictures["c"]]
    out = model.predict(pictures["flat"])
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out, run(expected(files, "NCHW")), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict([pictures["c"], pictures["a"]]),
                               out[[2, 0]], rtol=1e-5, atol=1e-6)
    # a batch of arrays goes in as before
    np.testing.assert_allclose(model.predict(one), run(one), rtol=1e-6)
    assert model.preprocess == ImageSpec(size=SIZE, layout="NCHW", channels=3, scale=1 / 255)


def test_torchscript_with_a_preprocess_spec_normalises(torch_files: dict[str, Any],
                                                       pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(torch_files["script"], trust=True,
                                 preprocess={"size": [16, 16], "layout": "NCHW",
                                             "scale": "1/255", "mean": list(MEAN),
                                             "std": list(STD)})
    files = [pictures["a"], pictures["b"], pictures["c"]]
    want = torch_files["run"](expected(files, "NCHW", mean=MEAN, std=STD))
    np.testing.assert_allclose(model.predict(pictures["flat"]), want, rtol=1e-5, atol=1e-5)


def test_torch_without_input_metadata_needs_a_layout(torch_files: dict[str, Any],
                                                     pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(torch_files["state_dict"], model_class=torch_files["class"])
    with pytest.raises(ConfigError, match=r"cannot tell the image layout.*'layout': 'NCHW'"):
        model.predict(pictures["a"])
    with pytest.raises(ConfigError, match=r"cannot tell the image layout"):
        wattprint.load_model(torch_files["state_dict"], model_class=torch_files["class"],
                             preprocess={"size": (16, 16)})


def test_torch_spec_with_the_wrong_layout_names_the_one_wanted(
        torch_files: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"\(N, 3, 16, 16\), layout NCHW; preprocess says "
                                          r"NHWC") as info:
        wattprint.load_model(torch_files["state_dict"], model_class=torch_files["class"],
                             input_shape=(3, 16, 16), preprocess={"layout": "NHWC"})
    assert "Use layout NCHW" in str(info.value)


# -- ONNX ------------------------------------------------------------------------------------

def test_onnx_reads_its_layout_and_size_from_the_input_shape(torch_files: dict[str, Any],
                                                             pictures: dict[str, Path]) -> None:
    import onnxruntime

    model = wattprint.load_model(torch_files["onnx"])
    session = onnxruntime.InferenceSession(str(torch_files["onnx"]),
                                           providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(["y"], {"x": batch})[0]
        return out

    np.testing.assert_allclose(model.predict(pictures["b"]),
                               run(expected([pictures["b"]], "NCHW")), rtol=1e-5, atol=1e-6)
    # class subfolders, sorted as load_dataset sorts them: cat/b.png, dog/a.png
    out = model.predict(str(pictures["classes"]))
    np.testing.assert_allclose(out, run(expected([pictures["b"], pictures["a"]], "NCHW")),
                               rtol=1e-5, atol=1e-6)
    assert model.preprocess is not None and model.preprocess.layout == "NCHW"
    assert model.describe()["preprocess"]["size"] == [16, 16]


@pytest.mark.parametrize(("spec", "message"), [
    ({"layout": "NHWC"}, r"takes samples of shape \(N, 3, 16, 16\), layout NCHW; "
                         r"preprocess says NHWC"),
    ({"size": [32, 32]}, r"\(NCHW, 16x16 pixels\); preprocess size is 32x32"),
    ({"mode": "L"}, r"\(NCHW, 3 channel\(s\)\); preprocess gives 1 channel"),
])
def test_onnx_spec_that_contradicts_the_model_is_refused(torch_files: dict[str, Any],
                                                         spec: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        wattprint.load_model(torch_files["onnx"], preprocess=spec)


def test_grayscale_png_is_converted_to_rgb_for_a_three_channel_model(
        torch_files: dict[str, Any], pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(torch_files["onnx"])
    want = torch_files["run"](expected([pictures["gray"]], "NCHW"))
    with Image.open(pictures["gray"]) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    np.testing.assert_allclose(model.predict(pictures["gray"]), want, rtol=1e-5, atol=1e-6)


def test_images_of_another_size_need_a_size_when_the_model_fixes_none(
        torch_files: dict[str, Any], pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(torch_files["script"], trust=True,
                                 preprocess={"layout": "NCHW"})
    with pytest.raises(ConfigError, match=r"give preprocess size=\(H, W\) to resize them"):
        model.predict([pictures["a"], pictures["b"]])


# -- Keras and TensorFlow ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])
    folder = tmp_path_factory.mktemp("keras")
    net.save(folder / "cnn.keras")
    return {"net": net, "keras": folder / "cnn.keras", "folder": folder}


def test_keras_reads_nhwc_from_its_input_shape(keras_files: dict[str, Any],
                                               pictures: dict[str, Path]) -> None:
    model = wattprint.load_model(keras_files["keras"])
    net = keras_files["net"]
    files = [pictures["a"], pictures["b"], pictures["c"]]
    want = np.asarray(net.predict_on_batch(expected(files, "NHWC")))
    np.testing.assert_allclose(model.predict(pictures["flat"]), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(str(pictures["c"])), want[2:], rtol=1e-5,
                               atol=1e-5)
    assert model.preprocess is not None and model.preprocess.layout == "NHWC"


def test_keras_spec_with_the_wrong_layout_names_nhwc(keras_files: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"\(N, 16, 16, 3\), layout NHWC; preprocess says "
                                          r"NCHW"):
        wattprint.load_model(keras_files["keras"], preprocess={"layout": "NCHW"})


def test_tensorflow_saved_model_reads_a_folder(keras_files: dict[str, Any],
                                               pictures: dict[str, Path]) -> None:
    pytest.importorskip("tensorflow")
    folder = keras_files["folder"] / "export"
    if not folder.exists():
        keras_files["net"].export(folder, verbose=False)
    model = wattprint.load_model(folder, trust=True, preprocess={"mean": list(MEAN),
                                                                 "std": list(STD)})
    files = [pictures["a"], pictures["b"], pictures["c"]]
    want = np.asarray(keras_files["net"].predict_on_batch(
        expected(files, "NHWC", mean=MEAN, std=STD)))
    np.testing.assert_allclose(model.predict(pictures["flat"]), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match=r"layout NHWC; preprocess says NCHW"):
        wattprint.load_model(folder, trust=True, preprocess={"layout": "NCHW"})


# -- the spec itself ---------------------------------------------------------------------------

def test_a_preprocess_option_is_checked_field_by_field() -> None:
    with pytest.raises(ConfigError, match=r"unknown preprocess field\(s\): colour"):
        ImageSpec.from_option({"colour": "RGB"})
    with pytest.raises(ConfigError, match=r"layout must be one of NCHW, NHWC, not 'CHW'"):
        ImageSpec.from_option({"layout": "chw"})
    with pytest.raises(ConfigError, match=r"mean has 2 values for 3 channel"):
        ImageSpec.from_option({"channels": 3, "mean": [0.5, 0.5]})
    with pytest.raises(ConfigError, match=r"std must not be 0"):
        ImageSpec.from_option({"std": 0})
    spec = ImageSpec.from_option({"size": 8, "layout": "nhwc", "mode": "L", "scale": "1/255"})
    assert spec == ImageSpec(size=(8, 8), layout="NHWC", channels=1, scale=1 / 255)
    assert (layout_of((3, 8, 8)), layout_of((8, 8, 1)), layout_of((3, 8, 3)),
            layout_of((64,))) == ("NCHW", "NHWC", None, None)


def test_a_hugging_face_image_processor_gives_an_nchw_spec() -> None:
    spec = from_hf_processor({"do_resize": True, "size": {"height": 224, "width": 224},
                              "do_rescale": True, "rescale_factor": 0.00392156862745098,
                              "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
                              "image_std": [0.5, 0.5, 0.5]})
    assert spec == ImageSpec(size=(224, 224), layout="NCHW", channels=3,
                             scale=0.00392156862745098, mean=(0.5,) * 3, std=(0.5,) * 3)


# -- resizing and cropping as Hugging Face's image processors do ---------------------------------

def _hf_processor(kind: str, **settings: Any) -> Any:
    """A Hugging Face image processor of ``kind`` (``"DeiT"``, ``"CLIP"``, ``"ConvNext"``,
    ``"ViT"``, ...): its Pillow backend, the one wattprint's steps follow."""
    transformers = pytest.importorskip("transformers")
    cls = (getattr(transformers, f"{kind}ImageProcessorPil", None)
           or getattr(transformers, f"{kind}ImageProcessor"))
    return cls(**settings)


@pytest.mark.parametrize(("kind", "settings", "spec"), [
    ("DeiT", {"size": {"height": 20, "width": 20}, "crop_size": {"height": 16, "width": 16}},
     {"size": (20, 20), "crop": (16, 16), "resample": "bicubic"}),
    ("CLIP", {"size": {"shortest_edge": 20}, "crop_size": {"height": 16, "width": 16}},
     {"shortest_edge": 20, "crop": (16, 16), "resample": "bicubic"}),
    ("CLIP", {"size": {"shortest_edge": 12}, "crop_size": {"height": 16, "width": 14},
              "resample": 2},  # a crop larger than the image: zeros pad it
     {"shortest_edge": 12, "crop": (16, 14), "resample": "bilinear"}),
    ("ConvNext", {"size": {"shortest_edge": 16}, "crop_pct": 0.875},
     {"shortest_edge": 18, "crop": (16, 16), "resample": "bicubic"}),
    ("ViT", {"size": {"height": 16, "width": 16}, "resample": 3},
     {"size": (16, 16), "crop": None, "resample": "bicubic"}),
    # steps of their own: LeViT's shorter edge at 256/224 of shortest_edge (int(17.14))
    ("Levit", {"size": {"shortest_edge": 15}, "crop_size": {"height": 16, "width": 16}},
     {"shortest_edge": 17, "crop": (16, 16), "resample": "bicubic"}),
    # PoolFormer's size / crop_pct: a shortest edge, a square (a shorter edge), else both
    ("PoolFormer", {"size": {"shortest_edge": 16}, "crop_size": {"height": 16, "width": 16}},
     {"shortest_edge": 17, "crop": (16, 16), "resample": "bicubic"}),
    ("PoolFormer", {"size": {"height": 16, "width": 16}, "crop_pct": 0.875,
                    "crop_size": {"height": 16, "width": 16}},
     {"shortest_edge": 18, "crop": (16, 16), "resample": "bicubic"}),
    ("PoolFormer", {"size": {"height": 18, "width": 16},
                    "crop_size": {"height": 16, "width": 16}},
     {"size": (20, 17), "crop": (16, 16), "resample": "bicubic"}),
    # EfficientNet's std twice (include_top), and its rescale_offset without it
    ("EfficientNet", {"size": {"height": 16, "width": 16}, "image_std": [0.2, 0.4, 0.5]},
     {"size": (16, 16), "crop": None, "resample": "bicubic"}),
    ("EfficientNet", {"size": {"height": 16, "width": 16}, "rescale_offset": True,
                      "include_top": False},
     {"size": (16, 16), "crop": None, "resample": "bicubic"}),
    # MobileViT's BGR
    ("MobileViT", {"size": {"shortest_edge": 16}, "crop_size": {"height": 16, "width": 16}},
     {"shortest_edge": 16, "crop": (16, 16), "resample": "bicubic"}),
])
def test_a_hugging_face_processor_that_resizes_and_crops_gives_its_pixel_values(
        kind: str, settings: dict[str, Any], spec: dict[str, Any], pictures: dict[str, Path],
        tmp_path: Path) -> None:
    import json

    from wattprint.workloads.images import pixels_to_batch, read_images, resolve

    processor = _hf_processor(kind, **settings)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    got = from_hf_processor(config)
    assert (got.size, got.shortest_edge, got.crop, got.resample) == (
        spec.get("size"), spec.get("shortest_edge"), spec["crop"], spec["resample"])
    files = [pictures["a"], pictures["b"], pictures["c"], pictures["gray"]]  # 16x16 .. 9x30
    # 24x20 and 20x24: the shorter edge is the width, then the height
    rng = np.random.default_rng(3)
    for name, (h, w) in {"tall.png": (24, 20), "wide.png": (20, 24)}.items():
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(
            tmp_path / name)
        files.append(tmp_path / name)
    images = []
    for f in files:
        with Image.open(f) as im:
            images.append(im.convert("RGB"))
    want = processor(images, return_tensors="np")["pixel_values"]
    assert want.shape == (len(files), 3, 16, *want.shape[3:])
    resolved = resolve(got, (3, *want.shape[2:]), "float32", where="the model")
    assert resolved.crop == got.crop and resolved.shortest_edge == got.shortest_edge
    np.testing.assert_allclose(read_images(files, resolved), want, atol=1e-5)
    tall = np.asarray(images[-2])[np.newaxis]  # decoded pixels, as an image folder's Dataset
    np.testing.assert_allclose(pixels_to_batch(tall, resolved), want[-2:-1], atol=1e-5)


def test_a_channel_order_is_checked_and_travels_with_the_spec() -> None:
    from wattprint.workloads.images import resolve

    spec = ImageSpec.from_option({"channel_order": "bgr", "mean": [10.0, 20.0, 30.0]})
    assert spec.channel_order == "BGR"
    assert spec.as_dict()["channel_order"] == "BGR"
    assert ImageSpec.from_option(spec.as_dict()) == spec
    full = resolve(spec, (3, 1, 2), "float32", where="m")
    assert full.channel_order == "BGR"
    pixels = np.array([[[[1, 2, 3], [4, 5, 6]]]], dtype=np.uint8)  # one 1x2 RGB image
    got = full.apply(pixels)  # reversed, then the mean of each of the model's channels
    np.testing.assert_allclose(got[0, :, 0, 0], [3 / 255 - 10, 2 / 255 - 20, 1 / 255 - 30],
                               rtol=1e-6)
    assert ImageSpec.from_option({}).channel_order == "RGB"
    with pytest.raises(ConfigError, match="channel_order must be one of RGB, BGR, not 'GBR'"):
        ImageSpec.from_option({"channel_order": "gbr"})
    with pytest.raises(ConfigError, match="channel_order BGR needs 3 channels, not 1"):
        ImageSpec(channel_order="BGR", channels=1)
    with pytest.raises(ConfigError, match="channel_order BGR needs 3 channels, not 1"):
        resolve(ImageSpec(channel_order="BGR"), (1, 8, 8), "float32", where="m")
    with pytest.raises(ConfigError, match="channel_order BGR needs 3 channels, not 4"):
        ImageSpec(channel_order="BGR").apply(np.zeros((1, 2, 2, 4), dtype=np.uint8))


@pytest.mark.parametrize(("config", "step"), [
    ({"image_processor_type": "DetrImageProcessor",
      "size": {"shortest_edge": 16, "longest_edge": 20}}, "bounds the resized image by "
                                                          "longest_edge"),
    ({"size": {"max_height": 16, "max_width": 16}},
     "bounds the resized image by max_height and max_width"),
    ({"image_processor_type": "TimmWrapperImageProcessor",
      "pretrained_cfg": {"input_size": [3, 16, 16], "crop_pct": 0.9}}, "takes timm's"),
])
def test_a_processor_step_an_image_spec_cannot_say_refuses_images(
        config: dict[str, Any], step: str, pictures: dict[str, Path]) -> None:
    from wattprint.workloads.images import read_images, resolve

    spec = from_hf_processor(config)
    assert spec.unfollowed is not None and step in spec.unfollowed
    assert (spec.size, spec.crop, spec.shortest_edge) == (None, None, None)
    full = resolve(spec, (3, 16, 16), "float32", where="m")  # the model still loads
    assert full.unfollowed == spec.unfollowed and full.size == (16, 16)
    assert full.as_dict()["unfollowed"] == spec.unfollowed  # describe() says it
    assert "unfollowed" not in from_hf_processor({"size": 16}).as_dict()
    with pytest.raises(ConfigError, match="preprocess cannot give unfollowed: it is what the "
                                          "model's own image processor does"):
        ImageSpec.from_option(full.as_dict())  # a config cannot take or lift the step
    with pytest.raises(ConfigError, match=f"{step}.*a step wattprint does not take: give "
                                          r"the model the pixel_values its processor makes"):
        read_images([pictures["a"]], full)
    with pytest.raises(ConfigError, match="a step wattprint does not take"):
        full.apply(np.zeros((1, 16, 16, 3), dtype=np.uint8))


@pytest.mark.parametrize(("kind", "settings", "step"), [
    ("TextNet", {"size": {"shortest_edge": 16}}, "rounds the size up to a multiple of "
                                                 "size_divisor 32"),
    ("Perceiver", {"size": {"height": 16, "width": 16}},
     "crops a share of each image before resizing it"),
])
def test_hugging_face_processors_with_steps_of_their_own_are_refused_for_images(
        kind: str, settings: dict[str, Any], step: str, tmp_path: Path) -> None:
    import json

    _hf_processor(kind, **settings).save_pretrained(tmp_path)
    spec = from_hf_processor(json.loads((tmp_path / "preprocessor_config.json").read_text()))
    assert spec.unfollowed is not None and step in spec.unfollowed
    assert f"({kind}ImageProcessor)" in spec.unfollowed
    assert from_hf_processor(_hf_processor("ViT").to_dict()).unfollowed is None


def test_a_crop_is_checked_and_travels_with_the_spec() -> None:
    from wattprint.workloads.images import resolve

    spec = ImageSpec.from_option({"shortest_edge": 20, "crop": 16, "resample": "Bicubic"})
    assert (spec.shortest_edge, spec.crop, spec.resample) == (20, (16, 16), "bicubic")
    assert spec.output_size == (16, 16)
    assert spec.as_dict()["crop"] == [16, 16] and spec.as_dict()["shortest_edge"] == 20
    assert ImageSpec.from_option(spec.as_dict()) == spec
    full = resolve(spec, (3, 16, 16), "float32", where="the model")
    assert (full.size, full.shortest_edge, full.crop, full.resample) == (
        None, 20, (16, 16), "bicubic")
    assert resolve(ImageSpec(size=(20, 20), crop=(16, 16)), (3, 16, 16), "float32",
                   where="m").size == (20, 20)
    with pytest.raises(ConfigError, match=r"\(NCHW, 16x16 pixels\); preprocess crop is 12x12"):
        resolve(ImageSpec(size=(16, 16), crop=(12, 12)), (3, 16, 16), "float32", where="m")
    with pytest.raises(ConfigError, match=r"preprocess crop must be \(height, width\)"):
        ImageSpec(crop=(0, 16))
    with pytest.raises(ConfigError, match="give one of them"):
        ImageSpec(size=(16, 16), shortest_edge=16)
    with pytest.raises(ConfigError, match="resample must be one of nearest, lanczos, bilinear"):
        ImageSpec.from_option({"resample": "cubic"})
    with pytest.raises(ConfigError, match="resample 7 is none of Pillow's filters"):
        from_hf_processor({"resample": 7})
