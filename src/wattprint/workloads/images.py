"""Image files as model input: ``model.predict("cat.png")`` and ``model.predict(folder)``.

An :class:`ImageSpec` says how an image becomes a model's input: the size ``(H, W)`` it is
resized to (or the length its shorter edge is resized to, keeping its aspect ratio), the
centre ``(H, W)`` cropped out of it after that (where the model's processor crops), the
resampling filter, the layout of the batch (``"NCHW"``, channels first, as PyTorch and ONNX
exports of it take it, or ``"NHWC"``, channels last, as Keras and TensorFlow take it), the
channel count (3: RGB, 1: grayscale ``L``, 4: RGBA), and the arithmetic
``(pixel * scale - mean) / std`` per channel.

The spec comes from the model's input metadata where it has some, completed or checked by the
``preprocess`` loader option (a mapping with the spec's fields)::

    load_model("m.onnx")                                   # (N, 3, 224, 224): NCHW, 224x224
    load_model("m.pt", model_class="pkg:Net", input_shape=(3, 32, 32))       # NCHW, 32x32
    load_model("m.pt", model_class="pkg:Net",
               preprocess={"size": (32, 32), "layout": "NCHW",
                           "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})

The layout is read from the shape of one sample: ``(C, H, W)`` with ``C`` in 1, 3 or 4 is
NCHW, ``(H, W, C)`` is NHWC. A spec that names another layout, size or channel count than the
model's input is a :class:`~wattprint.errors.ConfigError` that names both; wattprint never
transposes on a guess. A model without metadata (a PyTorch module, or an input whose shape
reads both ways) needs ``layout`` in the spec. Images are decoded with Pillow (the ``images``
extra, imported only when an image is read), converted to the spec's channels (a grayscale
image given to a 3-channel model is repeated into R, G and B, as Pillow's ``convert("RGB")``
does; RGBA loses its alpha), resized with the spec's filter (bilinear unless it says
``resample``) and centre-cropped when it says ``crop``. ``scale`` defaults to
``1/255`` (pixels in [0, 1]) for a model with float input and to 1 for integer input.

In a sweep, an image folder's decoded pixels (``load_dataset(folder).x``, uint8
``(N, H, W, C)``) reach a model loaded from a file or the hub through the same steps:
:func:`pixels_to_batch` converts, resizes and applies the model's spec once, and its
variants (ONNX export, int8, pruned) take that batch too. Recipes take the raw pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, DatasetError, MissingExtra
from .datasets import IMAGE_SUFFIXES

__all__ = ["CHANNEL_ORDERS", "IMAGE_SUFFIXES", "LAYOUTS", "RESAMPLE_FILTERS", "ImageSpec",
           "from_hf_processor", "image_files", "is_image_source", "layout_of", "named_files",
           "pixels_to_batch", "read_images", "resolve"]

#: ``"NCHW"``: channels first (PyTorch); ``"NHWC"``: channels last (Keras, TensorFlow).
LAYOUTS = ("NCHW", "NHWC")
#: Channel count -> the Pillow mode an image is converted to.
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_FIELDS = ("size", "shortest_edge", "crop", "resample", "layout", "channels", "mode", "scale",
           "mean", "std", "channel_order")
#: The orders of a 3-channel image's channels: as decoded, or reversed (Caffe's, OpenCV's).
CHANNEL_ORDERS = ("RGB", "BGR")
#: Pillow's resampling filters by name, in PIL's (and Hugging Face's ``resample``) numbering.
RESAMPLE_FILTERS = ("nearest", "lanczos", "bilinear", "bicubic", "box", "hamming")


@dataclass(frozen=True)
class ImageSpec:
    """How image files become a batch; ``None`` fields are taken from the model's input.

    ``size`` is ``(height, width)`` in pixels each image is resized to (``None``: the model's,
    else the images' own); ``shortest_edge`` instead resizes the shorter edge to that many
    pixels and the longer one in proportion (rounded down, as Hugging Face and torchvision
    do); ``crop`` is the ``(height, width)`` cut from the centre after resizing (zeros pad an
    image smaller than it), and then the size the model takes; ``resample`` names Pillow's
    filter (one of :data:`RESAMPLE_FILTERS`); ``layout`` is ``"NCHW"`` or ``"NHWC"``;
    ``channels`` 1 (grayscale), 3 (RGB) or 4 (RGBA); ``channel_order`` ``"BGR"`` reverses a
    3-channel image's channels first (as MobileViT's image processor and Keras's ``caffe``
    preprocessing do); then each pixel becomes ``(value * scale - mean[c]) / std[c]`` for
    channel ``c``, in the model's order (``mean`` and ``std`` hold one value, or one per
    channel). ``unfollowed`` (not an option: :func:`from_hf_processor` sets it) names a step of
    the model's own image processor that these fields cannot take; :meth:`apply` then raises
    a :class:`~wattprint.errors.ConfigError` saying so, rather than make other pixels than the
    model was trained on.
    """

    size: tuple[int, int] | None = None
    layout: str | None = None
    channels: int | None = None
    scale: float | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    crop: tuple[int, int] | None = None
    shortest_edge: int | None = None
    resample: str = "bilinear"
    channel_order: str = "RGB"
    unfollowed: str | None = None

    def __post_init__(self) -> None:
        for name in ("size", "crop"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not all(
                    _pixels(s) for s in value)):
                raise ConfigError(f"preprocess {name} must be (height, width) in pixels, "
                                  f"not {value!r}")
        if self.shortest_edge is not None:
            if not _pixels(self.shortest_edge):
                raise ConfigError(f"preprocess shortest_edge must be a positive number of "
                                  f"pixels, not {self.shortest_edge!r}")
            if self.size is not None:
                raise ConfigError(f"preprocess gives size {self.size} and shortest_edge "
                                  f"{self.shortest_edge}: give one of them")
        if self.resample not in RESAMPLE_FILTERS:
            raise ConfigError(f"preprocess resample must be one of "
                              f"{', '.join(RESAMPLE_FILTERS)}, not {self.resample!r}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ConfigError(f"preprocess layout must be one of {', '.join(LAYOUTS)}, "
                              f"not {self.layout!r}")
        if self.channels is not None and self.channels not in _MODES:
            raise ConfigError(f"preprocess channels must be 1 (grayscale), 3 (RGB) or 4 "
                              f"(RGBA), not {self.channels!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"preprocess channel_order must be one of "
                              f"{', '.join(CHANNEL_ORDERS)}, not {self.channel_order!r}")
        if self.channel_order != "RGB" and self.channels not in (None, 3):
            raise ConfigError(f"preprocess channel_order {self.channel_order} needs 3 "
                              f"channels, not {self.channels}")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"preprocess scale must be a positive number, not {self.scale!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not values or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"preprocess {name} must be one number or one per channel, "
                                  f"not {values!r}")
            if self.channels is not None and len(values) not in (1, self.channels):
                raise ConfigError(f"preprocess {name} has {len(values)} values for "
                                  f"{self.channels} channel(s)")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"preprocess std must not be 0: {self.std!r}")

    @classmethod
    def from_option(cls, value: Any) -> ImageSpec:
        """The spec from a ``preprocess`` option: an ImageSpec, or a mapping of its fields
        (``mode: "RGB"`` / ``"L"`` may stand for ``channels``; ``scale`` may be ``"1/255"``)."""
        if isinstance(value, ImageSpec):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"preprocess must be a mapping of {', '.join(_FIELDS)}, "
                              f"not {value!r}")
        if value.get("unfollowed") is not None:
            raise ConfigError(f"preprocess cannot give unfollowed: it is what the model's own "
                              f"image processor does that wattprint does not take "
                              f"({value['unfollowed']}); give the model its pixel_values")
        unknown = sorted(map(str, set(value) - {*_FIELDS, "unfollowed"}))
        if unknown:
            raise ConfigError(f"unknown preprocess field(s): {', '.join(unknown)}; "
                              f"known: {', '.join(_FIELDS)}")
        channels = value.get("channels")
        mode = value.get("mode")
        if mode is not None:
            by_mode = {m: c for c, m in _MODES.items()}
            if mode not in by_mode:
                raise ConfigError(f"preprocess mode must be one of {', '.join(by_mode)}, "
                                  f"not {mode!r}")
            if channels is not None and channels != by_mode[mode]:
                raise ConfigError(f"preprocess mode {mode!r} has {by_mode[mode]} channel(s), "
                                  f"not channels={channels!r}")
            channels = by_mode[mode]
        size = value.get("size")
        crop = value.get("crop")
        edge = value.get("shortest_edge")
        layout = value.get("layout")
        return cls(
            size=None if size is None else _size(size),
            crop=None if crop is None else _size(crop, "crop"),
            shortest_edge=None if edge is None else _int(edge, "shortest_edge"),
            resample=str(value.get("resample", "bilinear")).lower(),
            layout=None if layout is None else str(layout).upper(),
            channels=None if channels is None else _int(channels, "channels"),
            scale=None if value.get("scale") is None else _scale(value["scale"]),
            mean=_floats(value.get("mean", (0.0,)), "mean"),
            std=_floats(value.get("std", (1.0,)), "std"),
            channel_order=str(value.get("channel_order", "RGB")).upper(),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``unfollowed`` among them only where it is set (a model's
        ``describe()`` then says why it refuses images)."""
        fields = {"size": None if self.size is None else list(self.size),
                  "shortest_edge": self.shortest_edge,
                  "crop": None if self.crop is None else list(self.crop),
                  "resample": self.resample, "layout": self.layout,
                  "channels": self.channels, "scale": self.scale, "mean": list(self.mean),
                  "std": list(self.std), "channel_order": self.channel_order}
        if self.unfollowed is not None:
            fields["unfollowed"] = self.unfollowed
        return fields

    @property
    def output_size(self) -> tuple[int, int] | None:
        """The ``(height, width)`` of the images this spec makes, where it fixes one: the
        crop, else the size (``None``: the images' own, or set by ``shortest_edge``)."""
        return self.crop if self.crop is not None else self.size

    def apply(self, pixels: NDArray[Any]) -> NDArray[np.float32]:
        """``(N, H, W, C)`` pixels (as decoded) -> the float32 batch, in this spec's layout."""
        if self.unfollowed is not None:
            raise ConfigError(self.unfollowed)
        x: NDArray[np.float32] = np.asarray(pixels, dtype=np.float32)
        if self.channel_order == "BGR":
            if x.shape[-1] != 3:
                raise ConfigError(f"preprocess channel_order BGR needs 3 channels, not "
                                  f"{x.shape[-1]}")
            x = np.ascontiguousarray(x[..., ::-1])
        if self.scale is not None and self.scale != 1.0:
            x = np.multiply(x, np.float32(self.scale), dtype=np.float32)
        if any(self.mean):
            x = np.subtract(x, np.asarray(self.mean, dtype=np.float32), dtype=np.float32)
        if any(s != 1.0 for s in self.std):
            x = np.divide(x, np.asarray(self.std, dtype=np.float32), dtype=np.float32)
        if self.layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x


def layout_of(sample: Sequence[int | None] | None) -> str | None:
    """The layout a model's sample shape reads as: ``(C, H, W)`` NCHW, ``(H, W, C)`` NHWC,
    with ``C`` in 1, 3, 4; ``None`` when it is no image shape or reads both ways."""
    if sample is None or len(sample) != 3:
        return None
    first, last = sample[0] in _MODES, sample[-1] in _MODES
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    return None


def resolve(given: ImageSpec | None, sample: Sequence[int | None] | None,
            input_dtype: str | None, *, where: str) -> ImageSpec:
    """The full spec for a model whose one sample has shape ``sample`` (``None`` axes: any
    size; ``None``: unknown), from its metadata and the ``given`` spec.

    A given layout, size or channel count that contradicts the metadata is a ConfigError
    naming what the model wants; so is a layout neither gives. The model's ``(H, W)`` is
    checked against the spec's crop where it has one (the images are resized, then cut to
    it), else its size; a spec with neither (nor ``shortest_edge``) resizes to it.
    """
    given = given or ImageSpec()
    sample = None if sample is None else tuple(sample)
    found = layout_of(sample)
    wants = f"{where} takes samples of shape {_shape_text(sample)}"
    layout = given.layout or found
    if layout is None:
        hint = ("it has no input shape to read it from" if sample is None
                else "its input shape does not say where the channels are")
        raise ConfigError(f"{where}: cannot tell the image layout: {hint}; pass "
                          "preprocess={'layout': 'NCHW'} (channels first, as PyTorch) or "
                          "{'layout': 'NHWC'} (channels last, as Keras), with 'size': (H, W), "
                          "or input_shape=(C, H, W)")
    channels, size, out = given.channels, given.size, given.output_size
    if sample is not None and len(sample) == 3:
        if found is not None and given.layout is not None and given.layout != found:
            raise ConfigError(f"{wants}, layout {found}; preprocess says {given.layout}. "
                              f"Use layout {found} (or leave it out: it is read from the model)")
        c, h, w = (sample[0], sample[1], sample[2]) if layout == "NCHW" else (
            sample[2], sample[0], sample[1])
        if c is not None:
            if channels is not None and channels != c:
                raise ConfigError(f"{wants} ({layout}, {c} channel(s)); preprocess gives "
                                  f"{channels} channel(s)")
            if c not in _MODES:
                raise ConfigError(f"{wants} ({layout}): {c} channels is no image "
                                  "(1, 3 or 4); check the layout")
            channels = c
        if h is not None and w is not None:
            if out is not None and out != (h, w):
                what = "crop" if given.crop is not None else "size"
                raise ConfigError(f"{wants} ({layout}, {h}x{w} pixels); preprocess {what} is "
                                  f"{out[0]}x{out[1]}")
            if out is None and given.shortest_edge is None:
                size = (h, w)
    elif sample is not None and None not in sample and out is not None:
        # a flat or other input the images are reshaped to: the counts must agree
        need = math.prod(sample)  # type: ignore[arg-type]
        have = out[0] * out[1] * (channels or 3)
        if need != have:
            raise ConfigError(f"{wants}: {need} values a sample; {out[0]}x{out[1]} images "
                              f"with {channels or 3} channel(s) give {have}")
    channels = channels or 3
    for name in ("mean", "std"):
        if len(getattr(given, name)) not in (1, channels):
            raise ConfigError(f"preprocess {name} has {len(getattr(given, name))} values for "
                              f"{channels} channel(s)")
    scale = given.scale
    if scale is None:
        integer = input_dtype is not None and np.dtype(_np_name(input_dtype)).kind in "iub"
        scale = 1.0 if integer else 1.0 / 255.0
    return ImageSpec(size=size, layout=layout, channels=channels, scale=scale,
                     mean=given.mean, std=given.std, crop=given.crop,
                     shortest_edge=given.shortest_edge, resample=given.resample,
                     channel_order=given.channel_order, unfollowed=given.unfollowed)


def is_image_source(batch: Any) -> bool:
    """Whether ``batch`` names image files: a path, or a non-empty list of paths. An array
    answers in one type check: ``predict`` on arrays pays nothing more."""
    if type(batch) is np.ndarray:
        return False
    if isinstance(batch, str | os.PathLike):
        return True
    return (isinstance(batch, list | tuple) and len(batch) > 0
            and all(isinstance(b, str | os.PathLike) for b in batch))


def image_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                ) -> list[Path]:
    """The files ``source`` names: a file, a list of files, or a folder: its images, or, when
    it has none, those of its subfolders (one per class, sorted, as ``load_dataset`` orders
    them)."""
    def in_folder(path: Path) -> list[Path]:
        found = _images_in(path)
        if not found:
            for sub in sorted(p for p in path.iterdir()
                              if p.is_dir() and not p.name.startswith(".")):
                found.extend(_images_in(sub))
        if not found:
            raise DatasetError(f"{path}: no images in the folder or its subfolders "
                               f"(image kinds: {', '.join(sorted(IMAGE_SUFFIXES))})")
        return found

    return named_files(source, in_folder, "image")


def named_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                in_folder: Callable[[Path], list[Path]], kind: str) -> list[Path]:
    """The files ``source`` names (a path or a list of paths), in order: a folder gives
    ``in_folder(folder)``, a file itself; anything else is a DatasetError naming the
    ``kind`` of file wanted."""
    paths = [Path(source)] if isinstance(source, str | os.PathLike) else [Path(p)
                                                                          for p in source]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(in_folder(path))
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: no such {kind} file or folder")
    return files


def read_images(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                spec: ImageSpec) -> NDArray[np.float32]:
    """The batch for the images ``source`` names (see :func:`image_files`), one sample per
    image in order, made by a resolved ``spec`` (layout and channels known)."""
    _check_resolved(spec, "read_images")
    pil = _pillow("reading image files")
    arrays: list[NDArray[np.uint8]] = []
    files = image_files(source)
    for f in files:
        try:
            with pil.open(f) as im:
                pixels = _fit(im, spec, pil)
        except (pil.UnidentifiedImageError, OSError) as err:
            raise DatasetError(f"{f}: not an image Pillow can read ({err})") from err
        if arrays and pixels.shape != arrays[0].shape:
            raise ConfigError(f"{f}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but {files[0]} "
                              f"has {arrays[0].shape[1]}x{arrays[0].shape[0]}; give preprocess "
                              "size=(H, W) to resize them (the model's input does not fix it)")
        arrays.append(pixels)
    return spec.apply(_stacked(arrays))


def pixels_to_batch(pixels: NDArray[Any], spec: ImageSpec) -> NDArray[np.float32]:
    """The batch a resolved ``spec`` makes of decoded ``(N, H, W, C)`` pixels (an image
    folder's ``Dataset.x``), as :func:`read_images` makes it of the files: converted to the
    spec's channels, resized and centre-cropped, then :meth:`ImageSpec.apply`. Pixels that
    neither step would change go straight to ``apply``; converting, resizing or cropping
    needs uint8 pixels."""
    _check_resolved(spec, "pixels_to_batch")
    x = np.asarray(pixels)
    if x.ndim != 4 or x.shape[-1] not in _MODES:
        raise ConfigError(f"pixels must be (N, H, W, C) images with C in 1, 3 or 4, "
                          f"not of shape {x.shape}")
    height, width = int(x.shape[1]), int(x.shape[2])
    if (x.shape[-1] == spec.channels and _resized(spec, height, width) == (height, width)
            and spec.crop in (None, (height, width))):
        return spec.apply(x)
    if x.dtype != np.uint8:
        raise ConfigError(f"converting, resizing or cropping images needs uint8 pixels, "
                          f"not {x.dtype}")
    pil = _pillow("converting images")
    mode = _MODES[x.shape[-1]]
    return spec.apply(_stacked([_fit(pil.fromarray(p[..., 0] if mode == "L" else p, mode),
                                     spec, pil) for p in x]))


def _check_resolved(spec: ImageSpec, what: str) -> None:
    if spec.layout is None or spec.channels is None:
        raise ConfigError(f"{what} needs a spec with its layout and channels; "
                          "resolve it against the model first")


def _pillow(what: str) -> Any:
    """Pillow's ``Image`` module (the ``images`` extra)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise MissingExtra(what, "images") from err
    return Image


def _fit(image: Any, spec: ImageSpec, pil: Any) -> NDArray[np.uint8]:
    """One Pillow image as the spec's pixels: converted to its channels (grayscale repeated
    into RGB, alpha dropped, as ``convert`` does), resized with its filter, then the centre
    cut out as Hugging Face's ``center_crop`` cuts it (the top-left corner rounded down;
    Pillow pads with zeros where the crop is larger than the image)."""
    image = image.convert(_MODES[spec.channels or 3])
    height, width = _resized(spec, image.height, image.width)
    if image.size != (width, height):
        image = image.resize((width, height), getattr(pil.Resampling, spec.resample.upper()))
    if spec.crop is not None and image.size != (spec.crop[1], spec.crop[0]):
        top, left = (height - spec.crop[0]) // 2, (width - spec.crop[1]) // 2
        image = image.crop((left, top, left + spec.crop[1], top + spec.crop[0]))
    return np.asarray(image, dtype=np.uint8)


def _resized(spec: ImageSpec, height: int, width: int) -> tuple[int, int]:
    """The ``(height, width)`` the spec resizes a ``height`` x ``width`` image to: its size,
    or the shorter edge made ``shortest_edge`` and the longer one scaled and rounded down
    (Hugging Face's ``get_resize_output_image_size``), or the image's own."""
    if spec.size is not None:
        return spec.size
    if spec.shortest_edge is None:
        return (height, width)
    edge = spec.shortest_edge
    if width <= height:
        return (int(edge * height / width), edge)
    return (edge, int(edge * width / height))


def _stacked(arrays: list[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """One ``(N, H, W, C)`` array of images (grayscale ones get their channel axis)."""
    x = np.stack(arrays)
    return x[..., np.newaxis] if x.ndim == 3 else x


def from_hf_processor(config: Mapping[str, Any]) -> ImageSpec:
    """The spec a Hugging Face image processor (``preprocessor_config.json``) describes, step
    for step as its Pillow backend takes them: ``pixel_values`` are channels first (NCHW);
    each image is resized (``do_resize``) to ``size`` (``height``/``width``, or a
    ``shortest_edge`` with the aspect ratio kept) with the ``resample`` filter (PIL's
    numbering: 2 bilinear, 3 bicubic; bilinear where the file names none), then its centre
    cut to ``crop_size`` (``do_center_crop``: DeiT, CLIP), rescaled by ``rescale_factor`` and
    normalised by ``image_mean`` / ``image_std`` when ``do_normalize``.

    The image classifiers whose processors add steps of their own (``image_processor_type``)
    are read as those steps go:

    - ConvNeXt (``crop_pct``, a ``shortest_edge`` below 384) resizes the shorter edge to
      ``shortest_edge / crop_pct`` and crops ``shortest_edge`` square; at 384 or more it
      warps to the square.
    - PoolFormer (``crop_pct``) resizes to ``size / crop_pct``: the shorter edge where
      ``size`` is a ``shortest_edge`` or a square, else both sides.
    - LeViT resizes the shorter edge to ``256 / 224`` of ``shortest_edge``.
    - EfficientNet subtracts 1 after rescaling (``rescale_offset``) and, with ``include_top``,
      divides by ``image_std`` once more after normalising.
    - MobileViT reverses the channels to BGR (``do_flip_channel_order``) and does not
      normalise.

    Steps these fields cannot take make a spec whose ``unfollowed`` says which, so that images
    are refused rather than made into other pixels than the model's: a ``longest_edge`` or
    ``max_height``/``max_width`` bound (detection and document processors), a size rounded up
    to a ``size_divisor`` (TextNet), a crop before the resize (Perceiver), and timm's own
    transforms (``TimmWrapperImageProcessor``); such a model takes the ``pixel_values`` its
    processor made. Other processors' uses of ``crop_pct`` are not read. torchvision's
    backend of a processor (``use_fast``) resizes with antialiasing of its own, which may
    differ from Pillow's by a grey level or so.
    """
    size_field = config.get("size")
    size: tuple[int, int] | None = None
    edge: int | None = None
    crop: tuple[int, int] | None = None
    if isinstance(size_field, Mapping):
        if "height" in size_field and "width" in size_field:
            size = (int(size_field["height"]), int(size_field["width"]))
        elif "shortest_edge" in size_field:
            edge = int(size_field["shortest_edge"])
    elif isinstance(size_field, int):
        size = (size_field, size_field)
    kind = str(config.get("image_processor_type", ""))
    pct = config.get("crop_pct")
    pct = pct if isinstance(pct, int | float) and pct > 0 else None
    if edge is not None and pct is not None and kind.startswith("ConvNext"):
        if edge < 384:
            edge, crop = int(edge / pct), (edge, edge)
        else:
            size = (edge, edge)
            edge = None
    elif pct is not None and kind.startswith("PoolFormer"):
        if edge is not None:
            edge = int(edge / pct)
        elif size is not None and size[0] == size[1]:  # a square is a shorter edge for it
            edge, size = int(size[0] / pct), None
        elif size is not None:
            size = (int(size[0] / pct), int(size[1] / pct))
    elif edge is not None and kind.startswith("Levit"):
        edge = int((256 / 224) * edge)
    if config.get("do_resize") is False:
        size = None
        edge = None
    crop_field = config.get("crop_size")
    if config.get("do_center_crop") and crop_field is not None:
        if isinstance(crop_field, Mapping):
            crop = (int(crop_field["height"]), int(crop_field["width"]))
        else:
            crop = _size(crop_field, "crop")
    resample = config.get("resample")
    resample = 2 if resample is None else resample
    filters = dict(enumerate(RESAMPLE_FILTERS))
    if resample not in filters:
        raise ConfigError(f"image processor resample {resample!r} is none of Pillow's filters "
                          f"({', '.join(f'{k} {n}' for k, n in filters.items())})")
    rescale = config.get("do_rescale", True)
    scale = float(config.get("rescale_factor", 1 / 255)) if rescale else 1.0
    # MobileViT's processor has no normalising step: its image_mean and image_std go unused
    normalize = config.get("do_normalize", True) and not kind.startswith("MobileViT")
    mean = _floats(config.get("image_mean", (0.0,)), "image_mean") if normalize else (0.0,)
    std = _floats(config.get("image_std", (1.0,)), "image_std") if normalize else (1.0,)
    if kind.startswith("EfficientNet"):  # x * scale - 1, normalised, then / std once more
        if rescale and config.get("rescale_offset"):
            mean = tuple(m + 1.0 for m in mean)
        if config.get("include_top", True):
            std = _times(std, _floats(config.get("image_std", (1.0,)), "image_std"))
    flip = config.get("do_flip_channel_order")
    flip = kind.startswith("MobileViT") if flip is None else flip
    step = _unfollowed_step(config, kind, size_field)
    if step is not None:  # no size or crop that would mean another thing: the model's size
        return ImageSpec(layout="NCHW", channels=3, scale=scale, mean=mean, std=std,
                         unfollowed=f"the model's image processor ({kind or 'no type named'}) "
                         f"{step}, a step wattprint does not take: give the model the "
                         "pixel_values its processor makes, floats (n, 3, H, W), rather than "
                         "images")
    return ImageSpec(size=size, layout="NCHW", channels=3, scale=scale, mean=mean, std=std,
                     crop=crop, shortest_edge=edge, resample=filters[resample],
                     channel_order="BGR" if flip else "RGB")


def _unfollowed_step(config: Mapping[str, Any], kind: str, size: Any) -> str | None:
    """What an image processor does to an image that an :class:`ImageSpec` cannot say, or
    None."""
    resizes = config.get("do_resize", True)
    if isinstance(size, Mapping) and resizes:
        bounds = sorted(k for k in ("longest_edge", "max_height", "max_width")
                        if size.get(k) is not None)
        if bounds:
            return f"bounds the resized image by {' and '.join(bounds)}"
    if resizes and config.get("size_divisor") is not None:
        return f"rounds the size up to a multiple of size_divisor {config['size_divisor']}"
    if kind.startswith("Perceiver") and config.get("do_center_crop"):
        return "crops a share of each image before resizing it"
    if kind.startswith("TimmWrapper") or "pretrained_cfg" in config:
        return "takes timm's transforms (pretrained_cfg)"
    return None


def _times(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """``a`` times ``b``, channel by channel (one value stands for every channel)."""
    if len(a) == 1:
        a = a * len(b)
    if len(b) == 1:
        b = b * len(a)
    if len(a) != len(b):
        raise ConfigError(f"image processor image_std has {len(b)} values for {len(a)} "
                          "channel(s)")
    return tuple(x * y for x, y in zip(a, b, strict=True))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _shape_text(sample: tuple[int | None, ...] | None) -> str:
    if sample is None:
        return "(unknown)"
    return "(N, " + ", ".join("?" if d is None else str(d) for d in sample) + ")"


def _np_name(dtype: str) -> str:
    return {"str": "object", "string": "object", "bfloat16": "float32"}.get(dtype, dtype)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"preprocess {name} must be a whole number, not {value!r}")
    return int(value)


def _size(value: Any, name: str = "size") -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ConfigError(f"preprocess {name} must be (height, width) in pixels, not {value!r}")
    return (_int(value[0], name), _int(value[1], name))


def _pixels(value: Any) -> bool:
    """Whether ``value`` is a positive whole number of pixels."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _scale(value: Any) -> float:
    if isinstance(value, str):
        top, sep, bottom = value.partition("/")
        try:
            return float(top) / float(bottom) if sep else float(value)
        except (ValueError, ZeroDivisionError) as err:
            raise ConfigError(f"preprocess scale must be a number like 0.00392 or "
                              f"'1/255', not {value!r}") from err
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"preprocess scale must be a number, not {value!r}")
    return float(value)


def _floats(value: Any, name: str) -> tuple[float, ...]:
    items = [value] if isinstance(value, int | float) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ConfigError(f"preprocess {name} must be a number or a list of numbers, "
                          f"not {value!r}")
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"preprocess {name} must be numbers, not {value!r}") from err
