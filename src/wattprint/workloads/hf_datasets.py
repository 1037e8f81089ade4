"""Hugging Face ``datasets`` ids (``"wikitext"``, ``"stanfordnlp/imdb"``) as wattprint datasets,
read from the local cache without the network unless the user allows it (the ``datasets`` extra).

Two caches can hold a dataset, and :func:`hf_dataset_cached` finds either without importing
``datasets`` or pyarrow:

* the hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``):
  the repository's files as downloaded, ``datasets--{org}--{name}/refs/main`` naming a commit and
  ``datasets--{org}--{name}/snapshots/{commit}/`` holding ``README.md`` (whose YAML ``configs:``
  maps each config name to its data files) and the data files, e.g.
  ``wikitext-2-raw-v1/test-00000-of-00001.parquet``;
* the ``datasets`` library's own cache (``$HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``, else
  ``~/.cache/huggingface/datasets``): the Arrow files it prepared when it last loaded the dataset,
  ``{org}___{name}/{config}/{version}/{hash}/``.

``datasets`` 5 offline reads only the second: given a hub id with ``HF_HUB_OFFLINE`` set it does
not look at the hub cache at all. So :func:`load_hf_dataset` loads from the prepared cache where
it has the dataset, else streams the snapshot's data files from the hub cache as a local folder
(nothing is written), else, with ``allow_network=True`` only, downloads with the library.

Offline loading switches the library's offline flags on for the call (the environment variables
and the flags ``datasets`` and ``huggingface_hub`` read at import) and restores them after; the
switch is process-wide, so do not load hub datasets from two threads at once.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ConfigError, DatasetError, MissingExtra
from .datasets import TASKS, Dataset, as_dataset

__all__ = ["datasets_cache_dir", "hf_dataset_cached", "hub_cache_dir", "load_hf_dataset"]

#: Text columns taken first when ``text_field`` is not given, in this order.
PREFERRED_TEXT_FIELDS = ("text", "sentence", "content")
_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_UPPER_UPPER = re.compile(r"([A-Z]+)([A-Z][a-z])")
_LOWER_UPPER = re.compile(r"([a-z\d])([A-Z])")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _hf_home() -> Path:
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg, "huggingface").expanduser()


def hub_cache_dir() -> Path:
    """Where the Hugging Face hub cache is: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (as ``huggingface_hub`` finds it, read now, not at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if value := os.environ.get(var):
            return Path(value).expanduser()
    return _hf_home() / "hub"


def datasets_cache_dir() -> Path:
    """Where the ``datasets`` library keeps the datasets it prepared: ``$HF_DATASETS_CACHE``,
    else ``$HF_HOME/datasets``, else ``~/.cache/huggingface/datasets``."""
    if value := os.environ.get("HF_DATASETS_CACHE"):
        return Path(value).expanduser()
    return _hf_home() / "datasets"


def hf_dataset_cached(name: str, config: str | None = None, *,
                      cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder in the local cache that holds the dataset ``name`` (and ``config``, when
    given), or None; cheap: it reads a few small files and imports no framework.

    The hub cache's snapshot folder (``.../datasets--{org}--{name}/snapshots/{commit}``) is
    returned where the repository is there, else the prepared dataset's folder in the
    ``datasets`` cache (``.../{org}___{name}``). ``cache_dir`` is one folder to look in instead of
    both default caches; it may be laid out as either.
    """
    hub_root, prepared_root = _roots(cache_dir)
    snapshot = _hub_snapshot(hub_root, name)
    if snapshot is not None and _snapshot_has(snapshot, config):
        return snapshot
    return _prepared(prepared_root, name, config)


def load_hf_dataset(
    name: str,
    *,
    config: str | None = None,
    split: str = "test",
    text_field: str | None = None,
    label_field: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    task: str | None = None,
    allow_network: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load the text dataset ``name`` (a hub id), config ``config``, split ``split``.

    Read from the local cache (see the module docstring) with no network access; a dataset not
    there is downloaded only with ``allow_network=True``. ``text_field`` defaults to the first
    string column (``text``, ``sentence`` or ``content`` first); ``label_field`` to ``label``
    where there is one (pass ``""`` for none). Empty and blank texts are dropped (wikitext has
    many) with their labels; ``limit`` then keeps the first ``limit`` texts, so a limit reads
    only as far as it needs and always gives the same texts. ``seed`` is accepted for the
    signature :func:`~wattprint.workloads.load_dataset` has and is unused: to sample at random,
    call :meth:`Dataset.sample` on the result.

    The result is named ``name`` (``name/config`` with a config); its task is ``task``, else
    ``"text-classification"`` with labels and ``"text"`` without. Class names come from the
    label column's ``ClassLabel`` names where it has them.
    """
    del seed  # documented as unused: the first texts are taken, in order
    if not isinstance(name, str) or not _DATASET_ID.fullmatch(name):
        raise ConfigError(f"{name!r} is not a Hugging Face dataset id ('name' or 'org/name')")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"limit must be a positive integer, not {limit!r}")
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; one of: {', '.join(TASKS)}")
    label = f"{name}/{config}" if config else name
    lib = _import_datasets()
    hub_root, prepared_root = _roots(cache_dir)
    prepared = _prepared(prepared_root, name, config) is not None
    snapshot = None if prepared else _hub_snapshot(hub_root, name)
    if snapshot is not None and not _snapshot_has(snapshot, config):
        snapshot = None
    if not (prepared or snapshot is not None or allow_network):
        where = f"{hub_root}" if hub_root == prepared_root else f"{hub_root} or {prepared_root}"
        raise DatasetError(
            f"Hugging Face dataset {label!r} is not in the local cache ({where}); to download "
            "it, set allow_network: true (wattprint makes no network call unless asked)")
    local = prepared or snapshot is not None
    try:
        with _offline(lib) if local else nullcontext():  # a stream is read inside, offline too
            if prepared:
                data = lib.load_dataset(name, config, split=split, cache_dir=str(prepared_root))
            elif snapshot is not None:
                data = _load_snapshot(lib, snapshot, config, split, label, prepared_root)
            else:
                data = _download(lib, name, config, split, prepared_root, label)
            return _to_dataset(label, iter(data), data.features, text_field, label_field,
                               limit, task)
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, lib.exceptions.DatasetsError) as err:
        raise DatasetError(f"Hugging Face dataset {label!r}, split {split!r}: "
                           f"{_reason(err)}") from err


def _download(lib: Any, name: str, config: str | None, split: str, root: Path,
              label: str) -> Any:
    """The dataset's split, downloaded by the ``datasets`` library into ``root``. Any failure
    of the download is a :class:`~wattprint.errors.DatasetError` with the reason."""
    try:
        return lib.load_dataset(name, config, split=split, cache_dir=str(root))
    except Exception as err:  # the boundary: the hub client raises its own errors, OSErrors
        # and its HTTP library's (a refused connection is httpx's ConnectError), no base shared
        raise DatasetError(f"Hugging Face dataset {label!r}, split {split!r}: download "
                           f"failed: {_reason(err)}") from err


# -- the caches ----------------------------------------------------------------------------------

def _roots(cache_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """(hub cache, prepared-datasets cache); one folder for both when ``cache_dir`` is given."""
    if cache_dir is not None:
        root = Path(cache_dir).expanduser()
        return root, root
    return hub_cache_dir(), datasets_cache_dir()


def _hub_snapshot(root: Path, name: str) -> Path | None:
    """The snapshot of ``refs/main`` (else the newest snapshot) of the dataset repository."""
    repo = root / ("datasets--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    try:
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
    except OSError:
        commit = ""
    if commit and (repo / "snapshots" / commit).is_dir():
        return repo / "snapshots" / commit
    snapshots = repo / "snapshots"
    found = [p for p in snapshots.iterdir() if p.is_dir()] if snapshots.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _card_configs(snapshot: Path) -> dict[str, dict[str, Any]]:
    """The ``configs:`` of the dataset card's YAML header, by config name; {} when none."""
    readme = snapshot / "README.md"
    try:
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    except OSError:
        return {}
    parts = text.split("---", 2) if text.startswith("---") else []
    try:
        header = yaml.safe_load(parts[1]) if len(parts) == 3 else None
    except yaml.YAMLError:
        return {}
    configs = header.get("configs") if isinstance(header, dict) else None
    if not isinstance(configs, list):
        return {}
    return {str(c.get("config_name", "default")): c for c in configs if isinstance(c, dict)}


def _snapshot_has(snapshot: Path, config: str | None) -> bool:
    """Whether the snapshot holds data files of ``config`` (any, when None): files matching
    the card's ``data_files`` of that config, or a top folder named after it."""
    if config is None:
        return True
    entry = _card_configs(snapshot).get(config)
    if entry is None:
        return (snapshot / config).is_dir()
    patterns = _patterns(entry.get("data_files"))
    if not patterns:  # the card names no files: the library looks in data_dir or everywhere
        return (snapshot / str(entry.get("data_dir", ""))).is_dir()
    return any(next(snapshot.glob(pattern), None) is not None for pattern in patterns)


def _patterns(data_files: Any) -> list[str]:
    """The path patterns of a card's ``data_files``: a string, a list, or split entries."""
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return _patterns(data_files.get("path"))
    if isinstance(data_files, list):
        return [p for item in data_files for p in _patterns(item)]
    return []


def _prepared(root: Path, name: str, config: str | None) -> Path | None:
    """The dataset's folder in the ``datasets`` cache, when ``config`` (or any) is prepared."""
    *org, last = name.split("/")
    folder = root / "___".join([*org, _snake(last)])
    pattern = f"{config or '*'}/*/*/dataset_info.json"
    return folder if folder.is_dir() and next(folder.glob(pattern), None) else None


def _snake(name: str) -> str:
    """``datasets``' folder name for a dataset name (its ``camelcase_to_snakecase``)."""
    return _LOWER_UPPER.sub(r"\1_\2", _UPPER_UPPER.sub(r"\1_\2", name)).lower()


# -- loading -------------------------------------------------------------------------------------

def _import_datasets() -> Any:
    try:  # by name: the library ships no type information
        return importlib.import_module("datasets")
    except ImportError as err:
        raise MissingExtra("loading Hugging Face datasets", "datasets") from err


@contextmanager
def _offline(lib: Any) -> Iterator[None]:
    """The hub and ``datasets`` offline for the block: the environment, and the flags both
    libraries read from it at import; all restored after."""
    import huggingface_hub.constants as hub_constants

    saved_env = {var: os.environ.get(var) for var in _OFFLINE_VARS}
    flags = [(lib.config, "HF_HUB_OFFLINE"), (lib.config, "HF_DATASETS_OFFLINE"),
             (hub_constants, "HF_HUB_OFFLINE")]
    saved_flags = [getattr(module, attr) for module, attr in flags]
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    for module, attr in flags:
        setattr(module, attr, True)
    try:
        yield
    finally:
        for (module, attr), value in zip(flags, saved_flags, strict=True):
            setattr(module, attr, value)
        for var, old in saved_env.items():
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old


def _load_snapshot(lib: Any, snapshot: Path, config: str | None, split: str,
                   label: str, cache_dir: Path) -> Any:
    """Stream the split from the snapshot's own files (a local folder; nothing is written).

    The card's ``data_files`` of the config are passed on, because ``datasets`` picks the file
    format from the card's first config, whose files a partial download may lack. The library
    keeps only its lock files in ``cache_dir``.
    """
    configs = _card_configs(snapshot)
    chosen = configs.get(config) if config else _default_config(configs, label)
    if chosen is not None and chosen.get("data_files") is not None:
        return lib.load_dataset(str(snapshot), chosen.get("config_name", "default"),
                                data_files=chosen["data_files"], split=split, streaming=True,
                                cache_dir=str(cache_dir))
    data_dir = config if config and (snapshot / config).is_dir() else None
    return lib.load_dataset(str(snapshot), data_dir=data_dir, split=split, streaming=True,
                            cache_dir=str(cache_dir))


def _default_config(configs: dict[str, dict[str, Any]], label: str) -> dict[str, Any] | None:
    if len(configs) == 1:
        return next(iter(configs.values()))
    defaults = [c for c in configs.values() if c.get("default")]
    if defaults:
        return defaults[0]
    if configs:
        raise DatasetError(f"Hugging Face dataset {label!r} has several configs; name one "
                           f"with config: "
                           f"{', '.join(sorted(configs))}")
    return None


def _to_dataset(name: str, rows: Iterator[dict[str, Any]], features: Any,
                text_field: str | None, label_field: str | None, limit: int | None,
                task: str | None) -> Dataset:
    columns = dict(features) if features else {}
    text_field = text_field or _text_column(name, columns)
    if text_field not in columns:
        raise DatasetError(f"Hugging Face dataset {name!r} has no column {text_field!r}; "
                           f"its columns: {', '.join(columns) or 'none'}")
    if label_field is None:
        label_field = "label" if "label" in columns else ""
    elif label_field and label_field not in columns:
        raise DatasetError(f"Hugging Face dataset {name!r} has no label column "
                           f"{label_field!r}; its columns: {', '.join(columns)}")
    texts: list[str] = []
    labels: list[Any] = []
    for row in rows:
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            continue
        texts.append(text)
        if label_field:
            labels.append(row.get(label_field))
        if limit is not None and len(texts) >= limit:
            break
    if not texts:
        raise DatasetError(f"Hugging Face dataset {name!r} has no non-empty text in column "
                           f"{text_field!r}")
    if not label_field:
        return as_dataset(texts, name=name, task=task or "text")
    names = getattr(columns[label_field], "names", None)
    if names is not None and (task or "text-classification") == "text-classification":
        return Dataset(name, "text-classification", texts, np.asarray(labels, dtype=np.int64),
                       tuple(str(n) for n in names))
    return as_dataset((texts, labels), name=name, task=task or "text-classification")


def _text_column(name: str, columns: dict[str, Any]) -> str:
    strings = [col for col, feature in columns.items()
               if getattr(feature, "dtype", None) in ("string", "large_string")]
    for preferred in PREFERRED_TEXT_FIELDS:
        if preferred in strings:
            return preferred
    if not strings:
        raise DatasetError(f"Hugging Face dataset {name!r} has no text column; its columns: "
                           f"{', '.join(columns) or 'none'}; name one with text_field")
    return strings[0]


def _reason(err: BaseException) -> str:
    line = next((text.strip() for text in str(err).splitlines() if text.strip()),
                type(err).__name__)
    return line if len(line) <= 300 else line[:294].rstrip() + " [...]"
