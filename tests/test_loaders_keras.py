"""Keras 3 models saved as ``.keras`` and ``.h5``: loaded, run and trained through wattprint.

Models are built and saved for real in a temporary folder; expected counts and outputs come
from Keras itself, never typed in.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint.errors import ModelError, UntrustedModelError
from wattprint.workloads.datasets import Dataset, load_dataset

keras = pytest.importorskip("keras")

#: Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

SUFFIXES = (".keras", ".h5")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", split="train", seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    """A small digits classifier (logits out), saved in both formats."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])
    folder = tmp_path_factory.mktemp("keras")
    paths = {suffix: folder / f"tiny{suffix}" for suffix in SUFFIXES}
    for path in paths.values():
        model.save(path)
    return model, paths


@pytest.fixture(scope="module")
def with_lambda(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A model whose Lambda layer is Python code, which a .keras file stores."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(8),
        keras.layers.Lambda(lambda t: t * 2.0 + 1.0),
    ])
    path = tmp_path_factory.mktemp("keras-lambda") / "lambda.keras"
    model.save(path)
    return model, path


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_loads_with_keras_count_and_outputs(
    tiny: tuple[Any, dict[str, Path]], digits: Dataset, suffix: str
) -> None:
    model, paths = tiny
    loaded = wattprint.load_model(paths[suffix])
    assert loaded.framework == "keras"
    assert loaded.path == paths[suffix]
    assert loaded.num_parameters == model.count_params()
    assert loaded.size_bytes == paths[suffix].stat().st_size
    assert loaded.dtype == "float32"
    assert loaded.trainable
    (spec,) = loaded.inputs
    assert spec.shape == (None, 64) and spec.dtype == "float32"
    x = np.asarray(digits.x[:32], dtype=np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-6, atol=1e-6)


def test_lambda_layer_needs_trust(with_lambda: tuple[Any, Path], digits: Dataset) -> None:
    model, path = with_lambda
    with pytest.raises(UntrustedModelError, match="trust=True") as err:
        wattprint.load_model(path)
    assert str(path) in str(err.value)
    loaded = wattprint.load_model(path, trust=True)
    assert loaded.num_parameters == model.count_params()
    x = np.asarray(digits.x[:8], dtype=np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-6, atol=1e-6)


def test_train_epoch_on_digits_lowers_the_loss(
    tiny: tuple[Any, dict[str, Path]], digits: Dataset
) -> None:
    _, paths = tiny
    loaded = wattprint.load_model(paths[".keras"], task="classification")
    x = np.asarray(digits.x, dtype=np.float32)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = float(cross_entropy(digits.y, loaded.predict(x)))
    keras.utils.set_random_seed(0)
    losses = [loaded.train_epoch(digits, batch_size=32) for _ in range(3)]
    after = float(cross_entropy(digits.y, loaded.predict(x)))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert after < 0.8 * before


def _not_a_zip(path: Path, good: Path) -> None:
    path.write_text("not a Keras model\n")


def _truncated(path: Path, good: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zip_of_junk(path: Path, good: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{ this is not json")
        archive.writestr("model.weights.h5", b"\x00" * 64)


@pytest.mark.parametrize(
    ("suffix", "spoil"),
    [(".keras", _not_a_zip), (".keras", _truncated), (".keras", _zip_of_junk),
     (".h5", _not_a_zip), (".h5", _truncated)],
    ids=["keras-text", "keras-truncated", "keras-junk-zip", "h5-text", "h5-truncated"],
)
def test_corrupt_file_is_a_model_error(
    tiny: tuple[Any, dict[str, Path]], tmp_path: Path, suffix: str,
    spoil: Callable[[Path, Path], None],
) -> None:
    _, paths = tiny
    path = tmp_path / f"broken{suffix}"
    spoil(path, paths[suffix])
    with pytest.raises(ModelError) as err:
        wattprint.load_model(path)
    assert not isinstance(err.value, UntrustedModelError)
    message = str(err.value)
    assert str(path) in message
    assert "Supported:" in message and ".keras" in message
