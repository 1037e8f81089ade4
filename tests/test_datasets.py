"""Datasets: the built-ins, files and folders, and deterministic sampling and splitting.

Files are written for real in ``tmp_path``; expected sizes of the built-ins come from
scikit-learn's own loaders, never typed in.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wattprint.errors import ConfigError, DatasetError
from wattprint.workloads.datasets import (
    BUILTIN_DATASETS,
    Dataset,
    as_dataset,
    load_dataset,
)

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _labels(ds: Dataset) -> np.ndarray:
    assert ds.y is not None
    return ds.y


def _assert_stratified(part: Dataset, whole: Dataset) -> None:
    """Each class holds its share of ``part`` within one sample of exact."""
    whole_counts = Counter(_labels(whole).tolist())
    part_counts = Counter(_labels(part).tolist())
    for label, count in whole_counts.items():
        exact = len(part) * count / len(whole)
        assert abs(part_counts[label] - exact) <= 1, (label, part_counts[label], exact)


# -- built-ins -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_builtin_classification_matches_sklearn(name: str) -> None:
    expected = getattr(sklearn_datasets, f"load_{name}")()
    ds = load_dataset(name)
    assert ds.name == name
    assert ds.task == "classification"
    assert len(ds) == len(expected.target)
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == expected.data.shape
    assert ds.x.dtype == np.float32
    assert ds.classes == tuple(str(c) for c in expected.target_names)
    np.testing.assert_array_equal(_labels(ds), expected.target)
    assert ds.has_labels


def test_digits_are_scaled_to_unit_range_with_an_image_shape() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds.x, np.ndarray)
    assert ds.image_shape == (8, 8)
    assert ds.x.shape[1] == 64
    assert float(ds.x.min()) == 0.0
    assert float(ds.x.max()) == 1.0
    np.testing.assert_allclose(ds.x * 16, sklearn_datasets.load_digits().data)
    assert ds.x.reshape(-1, *ds.image_shape).shape == (len(ds), 8, 8)


def test_diabetes_is_regression() -> None:
    expected = sklearn_datasets.load_diabetes()
    ds = load_dataset("diabetes")
    assert ds.task == "regression"
    assert len(ds) == len(expected.target)
    assert ds.classes is None
    assert _labels(ds).dtype == np.float32
    np.testing.assert_allclose(_labels(ds), expected.target, rtol=1e-6)


def test_builtin_names_are_listed() -> None:
    assert set(BUILTIN_DATASETS) == {"digits", "iris", "wine", "breast_cancer", "diabetes"}


def test_importing_datasets_does_not_import_sklearn() -> None:
    import subprocess
    import sys

    code = ("import sys, wattprint.workloads.datasets; "
            "assert 'sklearn' not in sys.modules and 'PIL' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- sample --------------------------------------------------------------------------------------

def test_sample_is_deterministic_and_respects_the_limit() -> None:
    ds = load_dataset("digits")
    a = ds.sample(100, seed=1)
    b = ds.sample(100, seed=1)
    c = ds.sample(100, seed=2)
    assert len(a) == 100
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(_labels(a), _labels(b))
    assert not np.array_equal(a.x, c.x)


def test_sample_is_stratified_with_every_class_present() -> None:
    ds = load_dataset("wine")  # unequal classes: 59, 71, 48
    for limit in (3, 10, 17, 50, 101):
        part = ds.sample(limit, seed=3)
        assert len(part) == limit
        _assert_stratified(part, ds)
        assert set(_labels(part).tolist()) == {0, 1, 2}


def test_sample_keeps_the_dataset_order() -> None:
    ds = as_dataset((np.arange(40).reshape(40, 1), np.arange(40) % 4))
    part = ds.sample(12, seed=5)
    assert isinstance(part.x, np.ndarray)
    values = part.x[:, 0]
    assert np.all(np.diff(values) > 0)
    np.testing.assert_array_equal(_labels(part), values % 4)


def test_sample_without_stratify_and_for_regression() -> None:
    ds = load_dataset("diabetes")
    part = ds.sample(30, seed=0)
    assert len(part) == 30
    assert part.task == "regression"
    assert len(load_dataset("iris").sample(7, stratify=False)) == 7


def test_sample_at_or_over_the_length_returns_the_dataset_unchanged() -> None:
    ds = load_dataset("iris")
    assert ds.sample(len(ds)) is ds
    assert ds.sample(10_000) is ds


@pytest.mark.parametrize("limit", [0, -3])
def test_sample_rejects_a_limit_below_one(limit: int) -> None:
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("iris").sample(limit)


# -- split ---------------------------------------------------------------------------------------

def _row_keys(ds: Dataset) -> set[bytes]:
    assert isinstance(ds.x, np.ndarray)
    return {row.tobytes() for row in ds.x}


def test_split_is_disjoint_covers_everything_and_is_deterministic() -> None:
    ds = as_dataset((np.arange(100, dtype=np.float32).reshape(100, 1), np.arange(100) % 3))
    train, test = ds.split(0.2, seed=4)
    assert len(test) == 20
    assert len(train) == 80
    assert _row_keys(train).isdisjoint(_row_keys(test))
    assert _row_keys(train) | _row_keys(test) == _row_keys(ds)
    again_train, again_test = ds.split(0.2, seed=4)
    np.testing.assert_array_equal(train.x, again_train.x)
    np.testing.assert_array_equal(test.x, again_test.x)
    other_train, _ = ds.split(0.2, seed=5)
    assert not np.array_equal(train.x, other_train.x)


def test_split_is_stratified() -> None:
    ds = load_dataset("breast_cancer")
    train, test = ds.split(0.3, seed=0)
    assert len(train) + len(test) == len(ds)
    _assert_stratified(test, ds)
    _assert_stratified(train, ds)


def test_split_keeps_a_small_class_on_both_sides() -> None:
    y = np.array([0] * 30 + [1] * 2)
    train, test = as_dataset((np.zeros((32, 2)), y)).split(0.1)
    assert 1 in _labels(train).tolist()
    assert 1 in _labels(test).tolist()


def test_split_of_text() -> None:
    texts = [f"text {i}" for i in range(10)]
    train, test = as_dataset(texts).split(0.3)
    assert isinstance(train.x, list)
    assert isinstance(test.x, list)
    assert sorted(train.x + test.x) == sorted(texts)
    assert len(test) == 3


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_a_test_size_outside_zero_one(test_size: float) -> None:
    with pytest.raises(ConfigError, match="test_size"):
        load_dataset("iris").split(test_size)


def test_load_with_split_and_limit() -> None:
    whole = load_dataset("digits")
    train = load_dataset("digits", split="train", test_size=0.2, seed=1)
    test = load_dataset("digits", split="test", test_size=0.2, seed=1)
    assert len(train) + len(test) == len(whole)
    expected_train, expected_test = whole.split(0.2, seed=1)
    np.testing.assert_array_equal(test.x, expected_test.x)
    np.testing.assert_array_equal(train.x, expected_train.x)
    limited = load_dataset("digits", split="test", test_size=0.2, seed=1, limit=50)
    assert len(limited) == 50
    _assert_stratified(limited, test)
    assert _row_keys(limited) <= _row_keys(test)


# -- batches -------------------------------------------------------------------------------------

def test_batches_cover_all_samples_in_order_with_a_short_last_batch() -> None:
    ds = as_dataset((np.arange(10).reshape(10, 1), np.arange(10) % 2))
    batches = list(ds.batches(4))
    assert [len(xb) for xb, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in batches]), ds.x)
    ys = [yb for _, yb in batches]
    assert all(yb is not None for yb in ys)
    np.testing.assert_array_equal(np.concatenate([yb for yb in ys if yb is not None]), ds.y)


def test_batches_of_unlabeled_text_are_list_slices() -> None:
    ds = as_dataset(["a", "b", "c"])
    assert list(ds.batches(2)) == [(["a", "b"], None), (["c"], None)]


def test_batches_reject_a_size_below_one() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        list(as_dataset(["a"]).batches(0))


# -- image folders -------------------------------------------------------------------------------

def _write_image(path: Path, size: tuple[int, int], color: tuple[int, int, int],
                 mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    pytest.importorskip("PIL")
    root = tmp_path / "shapes"
    for i in range(3):
        _write_image(root / "cat" / f"c{i}.png", (6, 4), (200, 10 * i, 0))
    for i in range(2):
        _write_image(root / "dog" / f"d{i}.png", (6, 4), (0, 10 * i, 200))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_loads_with_labels_and_shape(image_folder: Path) -> None:
    ds = load_dataset(image_folder)
    assert ds.task == "image-classification"
    assert ds.classes == ("cat", "dog")
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (5, 4, 6, 3)  # (n, H, W, C): Pillow sizes are (width, height)
    assert ds.x.dtype == np.uint8
    assert ds.image_shape == (4, 6, 3)
    assert _labels(ds).tolist() == [0, 0, 0, 1, 1]
    assert ds.x[0, 0, 0].tolist() == [200, 0, 0]
    assert ds.x[4, 0, 0].tolist() == [0, 10, 200]


def test_image_folder_resizes(image_folder: Path) -> None:
    _write_image(image_folder / "dog" / "big.png", (20, 10), (0, 0, 200))
    ds = load_dataset(image_folder, image_size=(8, 5))
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (6, 8, 5, 3)


def test_image_folder_of_mismatched_sizes_names_the_odd_file(image_folder: Path) -> None:
    _write_image(image_folder / "dog" / "odd.png", (9, 9), (0, 0, 200))
    with pytest.raises(DatasetError, match=r"odd\.png.*image_size"):
        load_dataset(image_folder)


def test_grayscale_image_folder_has_one_channel(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    for label in ("a", "b"):
        _write_image(tmp_path / "g" / label / "x.png", (3, 3), (7, 7, 7), mode="L")
    ds = load_dataset(tmp_path / "g")
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (2, 3, 3, 1)


def test_images_without_class_folders_are_unlabeled(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    for i in range(3):
        _write_image(tmp_path / "flat" / f"{i}.jpg", (5, 5), (1, 2, 3))
    ds = load_dataset(tmp_path / "flat")
    assert ds.task == "image-classification"
    assert not ds.has_labels
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (3, 5, 5, 3)


def test_empty_image_folder_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path / "empty")


def test_unreadable_image_is_an_error(image_folder: Path) -> None:
    (image_folder / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        load_dataset(image_folder)


# -- text and JSONL ------------------------------------------------------------------------------

def test_text_file_is_one_unlabeled_sample_per_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("first line\nsecond line\n\nthird line\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.name == "prompts"
    assert ds.task == "text"
    assert ds.x == ["first line", "second line", "third line"]
    assert not ds.has_labels
    assert ds.classes is None


def test_empty_text_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"empty\.txt"):
        load_dataset(path)


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_labeled_jsonl_maps_string_labels_to_sorted_classes(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "reviews.jsonl", [
        {"text": "great", "label": "pos"},
        {"text": "awful", "label": "neg"},
        {"text": "fine", "label": "pos"},
    ])
    ds = load_dataset(path)
    assert ds.task == "text-classification"
    assert ds.x == ["great", "awful", "fine"]
    assert ds.classes == ("neg", "pos")
    assert _labels(ds).tolist() == [1, 0, 1]


def test_jsonl_with_other_field_names_and_integer_labels(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "r.jsonl", [
        {"sentence": "a", "y": 2}, {"sentence": "b", "y": 0},
    ])
    ds = load_dataset(path, text_field="sentence", label_field="y")
    assert ds.x == ["a", "b"]
    assert _labels(ds).tolist() == [2, 0]
    assert ds.classes == ("0", "1", "2")


def test_unlabeled_jsonl_is_text(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "q.jsonl", [{"text": "hello"}, {"text": "world"}])
    ds = load_dataset(path)
    assert ds.task == "text"
    assert ds.x == ["hello", "world"]
    assert ds.y is None


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "ok too"}\n{not json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3: not JSON"):
        load_dataset(path)


def test_jsonl_missing_text_field_is_an_error(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "m.jsonl", [{"text": "a"}, {"body": "b"}])
    with pytest.raises(DatasetError, match=r"m\.jsonl:2: no text field 'text'"):
        load_dataset(path)


def test_jsonl_with_labels_on_some_lines_only_is_an_error(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "s.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    with pytest.raises(DatasetError, match="label"):
        load_dataset(path)


# -- CSV -----------------------------------------------------------------------------------------

def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_string_target_is_classification(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "flowers.csv",
                      "width,height,species\n1.0,2.0,rose\n3,4,lily\n5,6.5,rose\n")
    ds = load_dataset(path)
    assert ds.task == "classification"
    assert ds.classes == ("lily", "rose")
    assert _labels(ds).tolist() == [1, 0, 1]
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x, [[1, 2], [3, 4], [5, 6.5]])


def test_csv_with_few_whole_number_targets_is_classification(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "c.csv", "label,a,b\n3,0.1,0.2\n1,0.3,0.4\n3,0.5,0.6\n")
    ds = load_dataset(path)  # the column named "label" is the target, wherever it is
    assert ds.task == "classification"
    assert ds.classes == ("1", "3")
    assert _labels(ds).tolist() == [1, 0, 1]
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (3, 2)


def test_csv_with_fractional_or_many_targets_is_regression(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(30))
    ds = load_dataset(_write_csv(tmp_path / "r.csv", "x,price\n" + rows))
    assert ds.task == "regression"
    assert _labels(ds).dtype == np.float32
    many = "".join(f"{i},{i}\n" for i in range(25))
    assert load_dataset(_write_csv(tmp_path / "m.csv", "x,n\n" + many)).task == "regression"


def test_csv_task_decides_numeric_targets(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "t.csv", "a,y\n1,0\n2,1\n3,0\n")
    assert load_dataset(path).task == "classification"
    ds = load_dataset(path, task="regression")
    assert ds.task == "regression"
    assert _labels(ds).tolist() == [0.0, 1.0, 0.0]


def test_csv_explicit_target_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "e.csv", "kind,a,b\n0,1.5,2\n1,2.5,3\n")
    ds = load_dataset(path, target="a", task="regression")
    assert _labels(ds).tolist() == [1.5, 2.5]
    np.testing.assert_array_equal(ds.x, [[0, 2], [1, 3]])
    with pytest.raises(ConfigError, match="no target column 'missing'"):
        load_dataset(path, target="missing")


def test_csv_bad_cell_names_column_and_row(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "bad.csv", "a,b,y\n1,2,0\n3,oops,1\n")
    with pytest.raises(DatasetError, match=r"row 2 .*column 'b'.*'oops'"):
        load_dataset(path)


def test_csv_without_rows_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(_write_csv(tmp_path / "h.csv", "a,y\n"))
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(_write_csv(tmp_path / "z.csv", ""))


# -- as_dataset ----------------------------------------------------------------------------------

def test_as_dataset_from_x_and_y() -> None:
    ds = as_dataset(([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], [0, 1, 1]), name="toy")
    assert ds.name == "toy"
    assert ds.task == "classification"
    assert ds.classes == ("0", "1")
    assert isinstance(ds.x, np.ndarray)
    assert ds.x.shape == (3, 2)
    assert _labels(ds).tolist() == [0, 1, 1]


def test_as_dataset_with_string_and_float_labels() -> None:
    ds = as_dataset((["good", "bad"], ["pos", "neg"]))
    assert ds.task == "text-classification"
    assert ds.classes == ("neg", "pos")
    assert _labels(ds).tolist() == [1, 0]
    reg = as_dataset((np.zeros((2, 3)), np.array([0.5, 1.5])))
    assert reg.task == "regression"
    assert reg.classes is None


def test_as_dataset_from_a_list_of_strings() -> None:
    ds = as_dataset(["one", "two"])
    assert ds.task == "text"
    assert ds.x == ["one", "two"]
    assert not ds.has_labels


def test_as_dataset_with_no_labels_in_the_tuple() -> None:
    ds = as_dataset((np.ones((4, 2)), None))
    assert ds.task == "classification"
    assert not ds.has_labels
    assert len(ds) == 4


def test_as_dataset_returns_a_dataset_as_is() -> None:
    ds = load_dataset("iris")
    assert as_dataset(ds) is ds


def test_as_dataset_rejects_empty_and_mismatched_data() -> None:
    with pytest.raises(DatasetError, match="empty"):
        as_dataset([])
    with pytest.raises(DatasetError, match="3 samples but 2 labels"):
        as_dataset((np.zeros((3, 1)), [0, 1]))


def test_subset_keeps_name_task_and_classes() -> None:
    ds = load_dataset("iris")
    part = ds.subset([149, 0])
    assert (part.name, part.task, part.classes) == (ds.name, ds.task, ds.classes)
    assert _labels(part).tolist() == [2, 0]


# -- errors --------------------------------------------------------------------------------------

def test_unknown_dataset_names_it_and_lists_what_is_supported() -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet-xxl")
    message = str(err.value)
    assert "imagenet-xxl" in message
    for name in BUILTIN_DATASETS:
        assert name in message
    for kind in (".txt", ".jsonl", ".csv", "folder"):
        assert kind in message


def test_unsupported_file_kind_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match=r"\.parquet"):
        load_dataset(path)


@pytest.mark.parametrize(("options", "word"), [
    ({"limit": 0}, "limit"),
    ({"limit": -1}, "limit"),
    ({"test_size": 0.0}, "test_size"),
    ({"test_size": 1.0}, "test_size"),
    ({"split": "validation"}, "split"),
    ({"task": "translation"}, "task"),
    ({"image_size": (0, 4)}, "image_size"),
])
def test_bad_arguments_are_config_errors(options: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        load_dataset("iris", **options)  # type: ignore[arg-type]


def test_a_task_that_does_not_fit_the_labels_is_an_error() -> None:
    with pytest.raises(ConfigError, match="regression"):
        load_dataset("iris", task="regression")
    assert load_dataset("digits", task="image-classification").task == "image-classification"
