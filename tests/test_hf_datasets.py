"""Hugging Face ``datasets`` ids loaded from the local cache, with the real ``datasets`` library.

Each test builds a Hugging Face home under ``tmp_path``: a hub cache laid out as a download
leaves it (``hub/datasets--{name}/refs/main`` and ``snapshots/{commit}/`` with ``README.md``
and parquet files), or a ``datasets`` cache as the library prepares it. The network is refused
and ``HF_HUB_OFFLINE`` is set: a test fails if anything tried to reach it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from offline import no_network, with_nonsense_hub  # noqa: F401  (no_network: autouse)

from wattprint.errors import DatasetError, MissingExtra
from wattprint.workloads.hf_datasets import (
    datasets_cache_dir,
    hf_dataset_cached,
    hub_cache_dir,
    load_hf_dataset,
)

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

#: A dataset revision, as the hub cache names snapshot folders.
COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: wikitext's lines: the empty ones are blank lines between paragraphs.
WIKI_LINES = ["", " = Valkyria Chronicles III = \n", "", " Senjō no Valkyria 3 \n", "  \n",
              " The game began development in 2010 \n", "", " It met with praise \n"]
#: The card of the real wikitext repository, cut to two configs; the first one's files are not
#: in the cache, as after downloading only wikitext-2-raw-v1.
WIKI_CARD = """---
language:
- en
configs:
- config_name: wikitext-103-raw-v1
  data_files:
  - split: test
    path: wikitext-103-raw-v1/test-*
- config_name: wikitext-2-raw-v1
  data_files:
  - split: test
    path: wikitext-2-raw-v1/test-*
  - split: train
    path: wikitext-2-raw-v1/train-*
---

# Dataset Card for "wikitext"
"""




@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face home, with both caches in it, as the environment names them."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    return home


def _repo(hub: Path, name: str, files: dict[str, Any], card: str | None = None) -> Path:
    """A dataset repository in the hub cache: ``refs/main`` and one snapshot holding ``files``
    (path in the repository -> pyarrow table, written as parquet) and the card."""
    repo = hub / ("datasets--" + name.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    for path, table in files.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, snapshot / path)
    if card is not None:
        (snapshot / "README.md").write_text(card, encoding="utf-8")
    return snapshot


@pytest.fixture
def wikitext(hf_home: Path) -> Path:
    return _repo(hf_home / "hub", "wikitext", {
        "wikitext-2-raw-v1/test-00000-of-00001.parquet": pa.table({"text": WIKI_LINES}),
        "wikitext-2-raw-v1/train-00000-of-00001.parquet": pa.table({"text": ["", " Train \n"]}),
    }, WIKI_CARD)


def _reviews() -> Any:
    """An imdb-like table: text and a ClassLabel, as ``datasets`` writes it to parquet."""
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.Dataset.from_dict(
        {"text": ["a fine film", "", "dull and long", "loved it"], "label": [1, 0, 0, 1]},
        features=features)
    return data.data.table


def test_wikitext_from_the_hub_cache_offline(wikitext: Path) -> None:
    assert hub_cache_dir() == wikitext.parents[2]
    assert hf_dataset_cached("wikitext") == wikitext
    assert hf_dataset_cached("wikitext", "wikitext-2-raw-v1") == wikitext
    assert hf_dataset_cached("wikitext", "wikitext-103-raw-v1") is None  # not downloaded

    data = load_hf_dataset("wikitext", config="wikitext-2-raw-v1", split="test", limit=3)

    assert data.name == "wikitext/wikitext-2-raw-v1"
    assert data.task == "text"
    assert data.y is None
    assert data.x == [line for line in WIKI_LINES if line.strip()][:3]


def test_all_texts_without_limit_and_another_split(wikitext: Path) -> None:
    test = load_hf_dataset("wikitext", config="wikitext-2-raw-v1")
    train = load_hf_dataset("wikitext", config="wikitext-2-raw-v1", split="train")

    assert test.x == [line for line in WIKI_LINES if line.strip()]
    assert train.x == [" Train \n"]


def test_offline_flags_are_restored(wikitext: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    load_hf_dataset("wikitext", config="wikitext-2-raw-v1", limit=1)

    assert datasets.config.HF_HUB_OFFLINE is False
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False
    assert "HF_DATASETS_OFFLINE" not in os.environ


def test_labelled_dataset_gives_labels_and_class_names(hf_home: Path) -> None:
    _repo(hf_home / "hub", "stanfordnlp/imdb",
          {"plain_text/test-00000-of-00001.parquet": _reviews()},
          "---\nconfigs:\n- config_name: plain_text\n  data_files:\n  - split: test\n"
          "    path: plain_text/test-*\n---\n")

    data = load_hf_dataset("stanfordnlp/imdb")

    assert data.name == "stanfordnlp/imdb"
    assert data.task == "text-classification"
    assert data.x == ["a fine film", "dull and long", "loved it"]  # the empty review dropped
    assert data.y is not None
    np.testing.assert_array_equal(data.y, [1, 0, 1])
    assert data.classes == ("neg", "pos")
    unlabeled = load_hf_dataset("stanfordnlp/imdb", config="plain_text", label_field="")
    assert unlabeled.task == "text" and unlabeled.y is None


def test_repository_without_card_is_read_by_folder(hf_home: Path) -> None:
    _repo(hf_home / "hub", "org/sst", {"data/validation-00000-of-00001.parquet": pa.table(
        {"idx": [0, 1], "sentence": ["it is good", "it is bad"], "label": [1, 0]})})

    data = load_hf_dataset("org/sst", split="validation")

    assert data.x == ["it is good", "it is bad"]  # "sentence": the text column found
    np.testing.assert_array_equal(data.y, [1, 0])
    assert data.classes == ("0", "1")


def test_prepared_datasets_cache_is_read_offline(hf_home: Path, tmp_path: Path) -> None:
    """The layout ``datasets`` leaves after loading a dataset once: ``{name}/{config}/...``."""
    source = tmp_path / "src" / "tiny_reviews"
    source.mkdir(parents=True)
    pq.write_table(_reviews(), source / "test.parquet")
    datasets.load_dataset_builder(str(source), cache_dir=str(datasets_cache_dir())
                                  ).download_and_prepare()
    assert (datasets_cache_dir() / "tiny_reviews" / "default").is_dir()

    assert hf_dataset_cached("tiny_reviews") == datasets_cache_dir() / "tiny_reviews"
    data = load_hf_dataset("tiny_reviews", limit=2)

    assert data.x == ["a fine film", "dull and long"]
    assert data.classes == ("neg", "pos")


def test_missing_split_names_the_splits_there(wikitext: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_hf_dataset("wikitext", config="wikitext-2-raw-v1", split="validation")

    message = str(info.value)
    assert "wikitext/wikitext-2-raw-v1" in message and "'validation'" in message
    assert "test" in message and "train" in message
    assert info.value.__cause__ is not None


def test_several_configs_and_none_named_is_an_error(wikitext: Path) -> None:
    with pytest.raises(DatasetError, match="wikitext-103-raw-v1, wikitext-2-raw-v1"):
        load_hf_dataset("wikitext")


def test_dataset_not_in_the_cache_is_refused(hf_home: Path) -> None:
    assert hf_dataset_cached("org/absent") is None

    with pytest.raises(DatasetError) as info:
        load_hf_dataset("org/absent", config="main")

    message = str(info.value)
    assert "'org/absent/main'" in message
    assert str(hf_home / "hub") in message and str(hf_home / "datasets") in message
    assert "allow_network: true" in message
    assert "\n" not in message


def test_a_hub_endpoint_that_answers_nonsense_is_a_dataset_error_saying_so(
        tmp_path: Path) -> None:
    """A download (allow_network) from a hub endpoint that answers what the hub's API does
    not fails with the reason as one DatasetError, not the hub client's raw error. In a child
    process, the hub client reading its endpoint from the environment."""
    code = ("from wattprint.errors import DatasetError\n"
            "from wattprint.workloads.hf_datasets import load_hf_dataset\n"
            "try:\n"
            "    load_hf_dataset('org/some-dataset', allow_network=True)\n"
            "except DatasetError as err:\n"
            "    print(err)\n")
    proc = with_nonsense_hub(code, tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Hugging Face dataset 'org/some-dataset', split 'test': "
                                  "download failed: "), proc.stdout + proc.stderr
    assert proc.stdout.count("\n") == 1


def test_config_not_downloaded_is_refused(wikitext: Path) -> None:
    with pytest.raises(DatasetError, match="allow_network"):
        load_hf_dataset("wikitext", config="wikitext-103-raw-v1")


def test_unknown_text_field_names_the_columns(wikitext: Path) -> None:
    with pytest.raises(DatasetError, match="no column 'body'; its columns: text"):
        load_hf_dataset("wikitext", config="wikitext-2-raw-v1", text_field="body")


def test_missing_library_names_the_extra(wikitext: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)

    with pytest.raises(MissingExtra, match="'datasets' extra"):
        load_hf_dataset("wikitext", config="wikitext-2-raw-v1")
