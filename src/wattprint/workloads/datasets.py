"""Datasets: the inputs (and labels, where known) that a model is measured on.

A :class:`Dataset` holds features ``x`` (a NumPy array of samples, or a list of strings for
text), labels or targets ``y`` (or ``None``), the class names, and the task. It slices itself
into batches, and samples and splits itself deterministically, stratified by class where the
labels are classes.

:func:`load_dataset` reads one of the built-ins, which ship inside scikit-learn (no network),
or a file or folder:

* ``digits``, ``iris``, ``wine``, ``breast_cancer``: classification, class names from
  scikit-learn's ``target_names``. ``digits`` pixels are scaled from 0-16 to float32 in
  [0, 1], one flat row of 64 per image, with ``image_shape=(8, 8)`` to reshape for a CNN.
* ``diabetes``: regression, float32 targets.
* a folder of images, one subfolder per class (decoded with Pillow, the ``images`` extra);
* a folder of audio clips, ``.wav`` / ``.flac``, with their transcripts in a
  ``transcripts.jsonl`` or none (decoded with soundfile, the ``audio`` extra): task
  ``automatic-speech-recognition``, read by :func:`~wattprint.workloads.audio.load_audio_dataset`.
  A folder that holds both images and audio is read only with ``task`` given;
* ``.txt``: one unlabeled text per line; ``.jsonl``: one JSON object per line, with a text
  field and an optional label field; ``.csv``: a header, numeric feature columns and a target.

scikit-learn and Pillow are imported only when a built-in or an image folder is loaded,
the audio module and soundfile only when an audio folder is.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, DatasetError, MissingExtra

__all__ = [
    "BUILTIN_DATASETS",
    "FILE_KINDS",
    "TASKS",
    "Dataset",
    "as_dataset",
    "load_dataset",
]

#: Features: an array of samples ``(n, ...)``, or a list of strings for text. A torch tensor
#: given by the user stays a tensor (it is indexed as an array is; see :func:`as_dataset`).
Features: TypeAlias = "NDArray[Any] | list[str]"

#: The tasks a dataset can serve.
#: ``text-generation`` is unlabeled text, as ``text`` is: the tasks of models and datasets are one
#: vocabulary, so a dataset may name the task of the model that generates on it.
TASKS = ("classification", "regression", "text", "text-classification", "image-classification",
         "text-generation", "code-generation", "automatic-speech-recognition",
         "text2text-generation")
#: Tasks whose labels are class indices.
CLASSIFICATION_TASKS = frozenset({"classification", "text-classification",
                                  "image-classification"})
#: The task of transcribed audio (a folder of clips: :mod:`wattprint.workloads.audio`).
_SPEECH_TASK = "automatic-speech-recognition"

#: scikit-learn loader of each built-in dataset.
_BUILTINS = {
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
}
#: The datasets that ship inside scikit-learn, loadable by name.
BUILTIN_DATASETS = tuple(_BUILTINS)
#: The files and folders :func:`load_dataset` reads.
FILE_KINDS = ("a folder of images with one subfolder per class",
              "a folder of .wav/.flac clips with an optional transcripts.jsonl",
              ".txt (one text per line)",
              ".jsonl (one JSON object per line)", ".csv (header, features, target)")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm"})
#: A numeric CSV target with at most this many distinct whole values is taken as classes.
MAX_INFERRED_CLASSES = 20
_TARGET_NAMES = ("target", "label", "y")


@dataclass(repr=False, eq=False)
class Dataset:
    """Samples, their labels when known, and what they are for.

    ``y`` holds int64 class indices for the classification tasks (``classes[i]`` names index
    ``i``) and float32 targets for regression; ``None`` when unlabeled. ``image_shape`` is the
    shape of one image when the samples are images: ``(8, 8)`` for the flat ``digits`` rows,
    ``(H, W, C)`` for an image folder.
    """

    name: str
    task: str
    x: Features
    y: NDArray[Any] | None = None
    classes: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; one of: {', '.join(TASKS)}")
        if self.y is not None and len(self.y) != len(self.x):
            raise DatasetError(f"dataset {self.name!r} has {len(self.x)} samples "
                               f"but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        shape = f"x{np.shape(self.x)} {self.x.dtype}" if isinstance(self.x, np.ndarray) else "text"
        classes = "" if self.classes is None else f", {len(self.classes)} classes"
        labels = "" if self.has_labels else ", unlabeled"
        return f"<Dataset {self.name!r} {self.task}: {len(self)} samples, {shape}{classes}{labels}>"

    @property
    def has_labels(self) -> bool:
        """True when ``y`` holds labels or targets."""
        return self.y is not None

    def batches(self, batch_size: int) -> Iterator[tuple[Features, NDArray[Any] | None]]:
        """Yield ``(x_batch, y_batch)`` in order; the last batch may be short."""
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            yield self.x[start:end], None if self.y is None else self.y[start:end]

    def subset(self, indices: Sequence[int] | NDArray[np.integer[Any]]) -> Dataset:
        """The samples at ``indices``, in that order, with the same name, task and classes."""
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        x: Features = ([self.x[i] for i in idx.tolist()] if isinstance(self.x, list)
                       else self.x[idx])
        y = None if self.y is None else self.y[idx]
        return replace(self, x=x, y=y)

    def sample(self, limit: int, *, seed: int = 0, stratify: bool = True) -> Dataset:
        """At most ``limit`` samples, chosen at random by ``seed``, kept in the dataset's order.

        Where the labels are classes and ``stratify`` is true, each class keeps its share (within
        one sample of exact) and every class is present when ``limit`` is at least the number of
        classes. A ``limit`` of ``len(self)`` or more returns this dataset unchanged.
        """
        _check_limit(limit)
        if limit >= len(self):
            return self
        rng = np.random.default_rng(seed)
        groups = self._groups() if stratify else None
        if groups is None:
            picked = rng.permutation(len(self))[:limit]
        else:
            counts = np.bincount(groups)
            lo = (counts > 0).astype(np.int64) if limit >= len(counts) else np.zeros_like(counts)
            picked = _pick_by_group(groups, _allocate(counts, limit, lo, counts), rng)
        return self.subset(np.sort(picked))

    def split(self, test_size: float = 0.25, *, seed: int = 0,
              stratify: bool = True) -> tuple[Dataset, Dataset]:
        """``(train, test)``: disjoint, together the whole dataset, each in the dataset's order.

        The test part has ``ceil(test_size * len)`` samples. Where the labels are classes and
        ``stratify`` is true, each class is split in the same proportion, and a class with two
        or more samples has at least one on each side when the sizes allow.
        """
        _check_test_size(test_size)
        n = len(self)
        if n < 2:
            raise DatasetError(f"dataset {self.name!r} has {n} sample(s); a split needs two")
        n_test = min(max(math.ceil(test_size * n - 1e-9), 1), n - 1)
        rng = np.random.default_rng(seed)
        groups = self._groups() if stratify else None
        if groups is None:
            test = rng.permutation(n)[:n_test]
        else:
            counts = np.bincount(groups)
            lo = (counts >= 2).astype(np.int64)
            hi = np.where(counts >= 2, counts - 1, counts)
            if lo.sum() > n_test:
                lo = np.zeros_like(counts)
            if hi.sum() < n_test:
                hi = counts
            test = _pick_by_group(groups, _allocate(counts, n_test, lo, hi), rng)
        in_test = np.zeros(n, dtype=bool)
        in_test[test] = True
        return self.subset(np.flatnonzero(~in_test)), self.subset(np.flatnonzero(in_test))

    def _groups(self) -> NDArray[np.int64] | None:
        """Each sample's class as an index into the distinct labels, or None if not classes."""
        if self.y is None or self.task not in CLASSIFICATION_TASKS:
            return None
        _, inverse = np.unique(self.y, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64)


def _allocate(counts: NDArray[np.int64], total: int, lo: NDArray[np.int64],
              hi: NDArray[np.int64]) -> NDArray[np.int64]:
    """Share ``total`` among groups in proportion to ``counts``, within ``lo..hi`` each.

    Largest remainders first; needs ``lo.sum() <= total <= hi.sum()``.
    """
    quota = total * counts / counts.sum()
    alloc: NDArray[np.int64] = np.clip(np.floor(quota).astype(np.int64), lo, hi)
    while (short := total - int(alloc.sum())) != 0:
        behind = quota - alloc
        if short > 0:
            alloc[int(np.argmax(np.where(alloc < hi, behind, -np.inf)))] += 1
        else:
            alloc[int(np.argmin(np.where(alloc > lo, behind, np.inf)))] -= 1
    return alloc


def _pick_by_group(groups: NDArray[np.int64], alloc: NDArray[np.int64],
                   rng: np.random.Generator) -> NDArray[np.intp]:
    """``alloc[k]`` random members of each group ``k``."""
    picked = [rng.permutation(np.flatnonzero(groups == k))[:take]
              for k, take in enumerate(alloc.tolist())]
    return np.concatenate(picked).astype(np.intp)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit <= 0:
        raise ConfigError(f"limit must be a positive integer, not {limit!r}")


def _check_test_size(test_size: float) -> None:
    if isinstance(test_size, bool) or not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"test_size must be a fraction between 0 and 1 (exclusive), "
                          f"not {test_size!r}")


# -- in-memory data ------------------------------------------------------------------------------

def as_dataset(data: Any, *, name: str = "data", task: str | None = None) -> Dataset:
    """Wrap in-memory data as a :class:`Dataset`.

    ``data`` is a Dataset (returned as is), a 2-tuple ``(x, y)`` (``y`` may be None), or a
    sequence or array of inputs without labels. A list of strings is text. Without ``task``:
    string labels become sorted classes and integer labels classes (named ``"0"``, ``"1"``,
    ...; class names only when no label is negative), float labels regression targets;
    unlabeled text is ``"text"`` and other unlabeled inputs ``"classification"``.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2 and not any(isinstance(d, str) for d in data):
        if data[1] is None:
            return as_dataset(data[0], name=name, task=task)
        x, labels = _features(data[0], name), np.asarray(data[1])
        if labels.ndim == 0:
            raise DatasetError(f"the labels of {name!r} must be a sequence, not {data[1]!r}")
        is_text = isinstance(x, list)
        if task is None:
            task = ("regression" if labels.dtype.kind in "fc"
                    else "text-classification" if is_text else "classification")
        if task in CLASSIFICATION_TASKS:
            y, classes = _encode_classes(labels, name)
            return Dataset(name, task, x, y, classes)
        if task == "regression":
            try:
                return Dataset(name, task, x, labels.astype(np.float32))
            except (TypeError, ValueError) as err:
                raise DatasetError(f"{name!r}: regression targets must be numbers") from err
        return Dataset(name, task, x, labels)
    x = _features(data, name)
    return Dataset(name, task or ("text" if isinstance(x, list) else "classification"), x)


def _features(data: Any, name: str) -> Features:
    """A list of strings for text, a torch tensor for tensors (a list of same-shape tensors
    is stacked into one), else a NumPy array; never empty."""
    if isinstance(data, str):
        raise DatasetError(f"{name!r}: give a list of texts, not one string")
    if isinstance(data, list | tuple) and data and all(isinstance(s, str) for s in data):
        x: Features = list(data)
    elif _is_tensor(data) or (isinstance(data, list | tuple) and data
                              and all(_is_tensor(t) for t in data)):
        x = _tensor(data, name)
    else:
        x = np.asarray(data)
        if x.ndim == 0:
            raise DatasetError(f"{name!r}: inputs must be a sequence or an array, not {data!r}")
    if len(x) == 0:
        raise DatasetError(f"dataset {name!r} is empty")
    return x


def _is_tensor(value: Any) -> bool:
    """A torch tensor (told without importing torch: a tensor exists only once it is)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _tensor(data: Any, name: str) -> Any:
    """``data`` as one tensor of samples: as it is, or a list of tensors stacked."""
    if _is_tensor(data):
        if data.ndim == 0:
            raise DatasetError(f"{name!r}: inputs must be a sequence, not a 0-d tensor")
        return data
    import torch

    try:
        return torch.stack(list(data))
    except RuntimeError as err:
        raise DatasetError(f"{name!r}: the tensors differ in shape, so they cannot be one "
                           f"dataset: {err}") from err


def _encode_classes(labels: NDArray[Any], name: str) -> tuple[NDArray[np.int64],
                                                               tuple[str, ...] | None]:
    """Integer labels kept as indices; any other labels mapped to sorted classes."""
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise DatasetError(f"{name!r}: class labels must be whole numbers or strings")
        labels = labels.astype(np.int64)
    if labels.dtype.kind in "iu":
        y = labels.astype(np.int64)
        classes = None if y.min() < 0 else tuple(str(i) for i in range(int(y.max()) + 1))
        return y, classes
    if labels.dtype.kind == "b":
        return labels.astype(np.int64), ("False", "True")
    names = sorted({str(v) for v in labels.tolist()})
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[str(v)] for v in labels.tolist()], dtype=np.int64), tuple(names)


# -- loading -------------------------------------------------------------------------------------

def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    task: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    split: str | None = None,
    test_size: float = 0.25,
    label_field: str = "label",
    text_field: str = "text",
    target: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    """Load a built-in dataset by name, or a file or folder by path.

    A plain name in :data:`BUILTIN_DATASETS` loads the built-in; to read a path that is named
    like one, give a :class:`~pathlib.Path` or a directory part (``"./digits"``).

    ``split="train"`` or ``"test"`` returns that part of ``split(test_size, seed=seed)``;
    ``limit`` then samples at most that many, stratified by class. ``task`` overrides the
    inferred task; for a CSV it decides whether the target is classes or a regression target.
    ``label_field`` and ``text_field`` name the JSONL fields, ``target`` the CSV target column,
    and ``image_size=(h, w)`` resizes every image of an image folder. A folder with a
    ``transcripts.jsonl`` or ``.wav`` / ``.flac`` files (and no images) is speech
    (``task="automatic-speech-recognition"``, which also reads a ``transcripts.jsonl`` file
    given by itself): see :mod:`wattprint.workloads.audio`.
    """
    if limit is not None:
        _check_limit(limit)
    _check_test_size(test_size)
    if split not in (None, "train", "test"):
        raise ConfigError(f"split must be None, 'train' or 'test', not {split!r}")
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; one of: {', '.join(TASKS)}")
    if image_size is not None and (
            len(image_size) != 2 or not all(isinstance(s, int) and s > 0 for s in image_size)):
        raise ConfigError(f"image_size must be (height, width) in pixels, not {image_size!r}")

    ds = _load(name_or_path, task=task, label_field=label_field, text_field=text_field,
               target=target, image_size=image_size)
    if split is not None:
        train, test = ds.split(test_size, seed=seed)
        ds = train if split == "train" else test
    return ds if limit is None else ds.sample(limit, seed=seed)


def _load(name_or_path: str | os.PathLike[str], *, task: str | None, label_field: str,
          text_field: str, target: str | None, image_size: tuple[int, int] | None) -> Dataset:
    if isinstance(name_or_path, str) and name_or_path in _BUILTINS:
        return _with_task(_load_builtin(name_or_path), task)
    path = Path(name_or_path)
    if path.is_dir():
        if _is_audio_folder(path, task):
            return _load_audio(path)
        return _with_task(_load_image_folder(path, image_size), task)
    if not path.is_file():
        raise DatasetError(f"no dataset {str(name_or_path)!r}: not a built-in and no such file "
                           f"or folder\n  built-ins: {', '.join(BUILTIN_DATASETS)}"
                           f"\n  files: {'; '.join(FILE_KINDS)}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _with_task(_load_text(path), task)
    if suffix == ".jsonl" and task == _SPEECH_TASK:
        return _load_audio(path)
    if suffix == ".jsonl":
        return _with_task(_load_jsonl(path, text_field, label_field), task)
    if suffix == ".csv":
        return _load_csv(path, target, task)
    raise DatasetError(f"cannot read {str(path)!r} as a dataset: unknown file kind "
                       f"{path.suffix or '(no suffix)'!r}\n  files: {'; '.join(FILE_KINDS)}")


def _is_audio_folder(root: Path, task: str | None) -> bool:
    """Whether the folder ``root`` is read as speech: always under the speech task; without a
    task when it holds a ``transcripts.jsonl`` or audio files and no images (both kinds is
    an error that names them and the ``task`` that chooses)."""
    from . import audio  # cheap: soundfile is imported only when a clip is read

    if task == _SPEECH_TASK:
        return True
    has_audio = (root / audio.TRANSCRIPTS_FILE).is_file() or _holds(root, audio.AUDIO_SUFFIXES)
    if not has_audio:
        return False
    class_dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    has_images = any(_holds(d, IMAGE_SUFFIXES) for d in [root, *class_dirs])
    if task is not None:
        if not has_images:
            raise ConfigError(f"{root} holds audio, whose task is {_SPEECH_TASK!r}, "
                              f"not {task!r}")
        return False
    if has_images:
        raise ConfigError(f"{root} holds both images and audio; pass task="
                          f"'image-classification' to read the images or task="
                          f"{_SPEECH_TASK!r} to read the audio")
    return True


def _holds(folder: Path, suffixes: frozenset[str]) -> bool:
    """Whether ``folder`` has a file (directly in it) with one of ``suffixes``."""
    return any(p.suffix.lower() in suffixes and p.is_file() for p in folder.iterdir())


def _load_audio(path: Path) -> Dataset:
    """The speech dataset of a folder of clips or a ``transcripts.jsonl``."""
    from .audio import load_audio_dataset

    return load_audio_dataset(path)


def _with_task(ds: Dataset, task: str | None) -> Dataset:
    """``ds`` under the task the user asked for, where its labels fit that task."""
    if task is None or task == ds.task:
        return ds
    if ds.has_labels and (task in CLASSIFICATION_TASKS) != (ds.task in CLASSIFICATION_TASKS):
        raise ConfigError(f"dataset {ds.name!r} is {ds.task}; its labels do not fit task {task!r}")
    return replace(ds, task=task)


def _load_builtin(name: str) -> Dataset:
    try:
        skd = importlib.import_module("sklearn.datasets")  # no stubs: typed as a module
    except ImportError as err:
        raise MissingExtra(f"the built-in dataset {name!r}", "sklearn") from err
    bunch = getattr(skd, _BUILTINS[name])()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "diabetes":
        return Dataset(name, "regression", x, np.asarray(bunch.target, dtype=np.float32))
    y = np.asarray(bunch.target, dtype=np.int64)
    classes = tuple(str(c) for c in bunch.target_names)
    if name == "digits":
        return Dataset(name, "classification", x / np.float32(16.0), y, classes,
                       image_shape=(8, 8))
    return Dataset(name, "classification", x, y, classes)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason})") from err


def _load_text(path: Path) -> Dataset:
    """One text per line; blank lines are skipped."""
    texts = [line for line in _read_lines(path) if line.strip()]
    if not texts:
        raise DatasetError(f"{path}: the file has no text")
    return Dataset(path.stem, "text", texts)


def _load_jsonl(path: Path, text_field: str, label_field: str) -> Dataset:
    """One JSON object per line; labels, where given, must be given on every line.

    Labels that are all whole numbers >= 0 are class indices; strings become sorted classes.
    """
    texts: list[str] = []
    labels: list[tuple[int, Any]] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}:{lineno}: not JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {line.strip()!r}")
        text = record.get(text_field)
        if not isinstance(text, str):
            raise DatasetError(f"{path}:{lineno}: no text field {text_field!r}")
        texts.append(text)
        if label_field in record:
            labels.append((lineno, record[label_field]))
    if not texts:
        raise DatasetError(f"{path}: the file has no records")
    if not labels:
        return Dataset(path.stem, "text", texts)
    if len(labels) != len(texts):
        raise DatasetError(f"{path}: {len(texts) - len(labels)} record(s) have no label field "
                           f"{label_field!r} while others have one")
    y, classes = _jsonl_classes(path, labels)
    return Dataset(path.stem, "text-classification", texts, y, classes)


def _jsonl_classes(path: Path, labels: list[tuple[int, Any]]
                   ) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    def is_index(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    as_index = is_index(labels[0][1])
    for lineno, value in labels:
        if not (is_index(value) if as_index else isinstance(value, str)):
            raise DatasetError(f"{path}:{lineno}: label {value!r} is not "
                               f"{'a whole number >= 0' if as_index else 'a string'} "
                               f"like the first label")
    values = [v for _, v in labels]
    if as_index:
        return np.array(values, dtype=np.int64), tuple(str(i) for i in range(max(values) + 1))
    classes = sorted(set(values))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64), tuple(classes)


def _load_csv(path: Path, target: str | None, task: str | None) -> Dataset:
    """A header row, numeric feature columns and one target column.

    The target is the column ``target`` names, else the first column called ``target``,
    ``label`` or ``y``, else the last one. Text targets are classes. A numeric target is
    classes when ``task`` says so, or, without ``task``, when all its values are whole numbers
    with at most :data:`MAX_INFERRED_CLASSES` distinct ones; otherwise a regression target.
    Numeric classes are indexed in sorted order of their values (as scikit-learn's
    ``classes_``) and named by them.
    """
    if task not in (None, "classification", "regression"):
        raise ConfigError(f"a CSV dataset is 'classification' or 'regression', not {task!r}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: the file is empty")
            t = _target_column(path, header, target)
            features = [i for i in range(len(header)) if i != t]
            if not features:
                raise DatasetError(f"{path}: no feature columns besides the target "
                                   f"{header[t]!r}")
            rows: list[list[float]] = []
            targets: list[str] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{path}: row {len(rows) + 1} (line {reader.line_num}) "
                                       f"has {len(row)} cells, the header {len(header)}")
                rows.append([_number(path, row[i], header[i], len(rows) + 1, reader.line_num)
                             for i in features])
                targets.append(row[t].strip())
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason})") from err
    if not rows:
        raise DatasetError(f"{path}: the file has a header but no rows")
    x = np.array(rows, dtype=np.float32)
    return _csv_target(path.stem, x, targets, task)


def _target_column(path: Path, header: list[str], target: str | None) -> int:
    names = [h.strip() for h in header]
    if target is not None:
        if target not in names:
            raise ConfigError(f"{path}: no target column {target!r}; columns: {', '.join(names)}")
        return names.index(target)
    lowered = [n.lower() for n in names]
    return next((lowered.index(n) for n in _TARGET_NAMES if n in lowered), len(names) - 1)


def _number(path: Path, cell: str, column: str, row: int, line: int) -> float:
    try:
        return float(cell)
    except ValueError as err:
        raise DatasetError(f"{path}: row {row} (line {line}), column {column.strip()!r}: "
                           f"{cell!r} is not a number") from err


def _csv_target(name: str, x: NDArray[np.float32], targets: list[str],
                task: str | None) -> Dataset:
    try:
        values = np.array([float(v) for v in targets], dtype=np.float64)
    except ValueError:
        if task == "regression":
            raise DatasetError(f"dataset {name!r}: a regression target must be numeric") from None
        names = sorted(set(targets))
        index = {c: i for i, c in enumerate(names)}
        return Dataset(name, "classification", x,
                       np.array([index[v] for v in targets], dtype=np.int64), tuple(names))
    whole = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    distinct = np.unique(values)
    if task is None:
        task = ("classification" if whole and len(distinct) <= MAX_INFERRED_CLASSES
                else "regression")
    if task == "regression":
        return Dataset(name, task, x, values.astype(np.float32))
    y = np.searchsorted(distinct, values).astype(np.int64)
    classes = tuple(str(int(v)) if v == round(v) else repr(float(v)) for v in distinct.tolist())
    return Dataset(name, task, x, y, classes)


def _load_image_folder(root: Path, image_size: tuple[int, int] | None) -> Dataset:
    """One subfolder per class (sorted by name), or images directly in ``root`` (unlabeled).

    All-grayscale folders decode to one channel, anything else to RGB: ``x`` is uint8
    ``(n, H, W, C)``.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise MissingExtra("image folders", "images") from err

    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int]] = [(f, k) for k, d in enumerate(class_dirs)
                                     for f in images_in(d)]
    labeled = bool(class_dirs)
    if not labeled:
        files = [(f, 0) for f in images_in(root)]
    if not files:
        raise DatasetError(f"{root}: no images (expected one subfolder of images per class; "
                           f"image kinds: {', '.join(sorted(IMAGE_SUFFIXES))})")

    modes: list[str] = []
    for f, _ in files:  # headers only: the mode decides the channels
        try:
            with Image.open(f) as im:
                modes.append(im.mode)
        except (UnidentifiedImageError, OSError) as err:
            raise DatasetError(f"{f}: not an image Pillow can read ({err})") from err
    mode = "L" if all(m in ("1", "L") for m in modes) else "RGB"
    arrays: list[NDArray[np.uint8]] = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                image = im.convert(mode)
        except OSError as err:
            raise DatasetError(f"{f}: the image cannot be decoded ({err})") from err
        if image_size is not None:
            image = image.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8))
        if arrays[-1].shape != arrays[0].shape:
            h, w = arrays[0].shape[:2]
            raise DatasetError(f"{f}: size {image.width}x{image.height} differs from {w}x{h} of "
                               f"{files[0][0]}; pass image_size=(h, w) to resize")
    x = np.stack(arrays)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    image_shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    if not labeled:
        return Dataset(root.name, "image-classification", x, image_shape=image_shape)
    y = np.array([k for _, k in files], dtype=np.int64)
    return Dataset(root.name, "image-classification", x, y,
                   tuple(d.name for d in class_dirs), image_shape=image_shape)
