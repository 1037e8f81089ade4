"""TensorFlow SavedModel folders: exported for real from Keras and from a ``tf.Module``, then
loaded through :func:`wattprint.load_model` by the folder's shape, trusted: a SavedModel is code
(tests/test_trust.py has one that writes a file when it is loaded).

Expected counts and outputs come from the exported models themselves, never typed in.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint.errors import ConfigError, MissingExtra, ModelError
from wattprint.workloads.datasets import Dataset, load_dataset

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

#: Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


class Affine(tf.Module):
    """``x @ w + b``, times a scale that is a non-trainable variable; two signatures."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(size=(3,)).astype(np.float32), name="b")
        self.scale = tf.Variable(np.float32(2.0), trainable=False, name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def __call__(self, x: Any) -> dict[str, Any]:
        logits = (tf.matmul(x, self.w) + self.b) * self.scale
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def doubled(self, x: Any) -> dict[str, Any]:
        return {"doubled": 2.0 * x}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", split="test", seed=0)


@pytest.fixture(scope="module")
def keras_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A Keras model with a batch norm (non-trainable statistics) and dropout (a seed
    generator), exported as a SavedModel."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    folder = tmp_path_factory.mktemp("savedmodel") / "keras_export"
    model.export(folder, verbose=False)
    return model, folder


@pytest.fixture(scope="module")
def module_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Affine, Path]:
    module = Affine()
    folder = tmp_path_factory.mktemp("savedmodel") / "affine"
    tf.saved_model.save(module, str(folder),
                        signatures={"serving_default": module.__call__, "doubled": module.doubled})
    return module, folder


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_keras_export_loads_with_its_count_and_outputs(
    keras_export: tuple[Any, Path], digits: Dataset
) -> None:
    model, folder = keras_export
    loaded = wattprint.load_model(folder, trust=True)
    assert loaded.framework == "tensorflow"
    assert loaded.path == folder
    assert loaded.num_parameters == model.count_params()
    assert loaded.size_bytes == _folder_bytes(folder)
    assert loaded.dtype == "float32"
    assert loaded.trainable is False
    (spec,) = loaded.inputs
    assert spec.shape == (None, 64) and spec.dtype == "float32"
    x = digits.x[:16]  # float32 rows; a float64 batch is cast to the signature's dtype
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(loaded.predict(x.astype(np.float64)), expected,
                               rtol=1e-5, atol=1e-6)


def test_tf_module_counts_every_variable(module_export: tuple[Affine, Path]) -> None:
    module, folder = module_export
    loaded = wattprint.load_model(folder, trust=True)
    assert loaded.num_parameters == sum(int(np.prod(v.shape)) for v in module.variables)
    assert loaded.num_parameters > sum(int(np.prod(v.shape)) for v in module.trainable_variables)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = module(tf.constant(x))
    # The first output by name is "logits"; another is chosen with output=.
    np.testing.assert_allclose(loaded.predict(x), expected["logits"].numpy(), rtol=1e-6)
    probabilities = wattprint.load_model(folder, trust=True, output="probabilities")
    np.testing.assert_allclose(probabilities.predict(x), expected["probabilities"].numpy(),
                               rtol=1e-6)


def test_signature_option_picks_another_signature(module_export: tuple[Affine, Path]) -> None:
    _, folder = module_export
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    doubled = wattprint.load_model(folder, trust=True, signature="doubled")
    np.testing.assert_array_equal(doubled.predict(x), 2 * x)
    with pytest.raises(ModelError, match="doubled, serving_default") as err:
        wattprint.load_model(folder, trust=True, signature="nope")
    assert str(folder) in str(err.value)


def test_a_batch_of_the_wrong_shape_is_a_config_error(module_export: tuple[Affine, Path]) -> None:
    _, folder = module_export
    loaded = wattprint.load_model(folder, trust=True)
    with pytest.raises(ConfigError, match=r"\(None, 4\)"):
        loaded.predict(np.ones((2, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match="unknown option"):
        wattprint.load_model(folder, device="cpu")


def test_saved_model_cannot_be_trained(module_export: tuple[Affine, Path]) -> None:
    _, folder = module_export
    loaded = wattprint.load_model(folder, trust=True)
    with pytest.raises(NotImplementedError, match="Keras model"):
        loaded.train_epoch((np.ones((2, 4), dtype=np.float32), np.zeros(2)))


def test_missing_tensorflow_names_the_extra(
    module_export: tuple[Affine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = module_export
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails
    with pytest.raises(MissingExtra) as err:
        wattprint.load_model(folder)
    assert err.value.extra == "tensorflow"
    assert "TensorFlow SavedModel" in str(err.value)
    assert "pip install 'wattprint[tensorflow]'" in str(err.value)


def _garbage_graph(folder: Path) -> None:
    (folder / "saved_model.pb").write_bytes(b"\x08\x96\x01 not a protocol buffer \xff\xff")


def _empty_graph(folder: Path) -> None:
    (folder / "saved_model.pb").write_bytes(b"")


def _truncated_weights(folder: Path) -> None:
    (data,) = (folder / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:8])


@pytest.mark.parametrize("spoil", [_garbage_graph, _empty_graph, _truncated_weights],
                         ids=["garbage-pb", "empty-pb", "truncated-weights"])
def test_corrupt_saved_model_is_a_model_error(
    module_export: tuple[Affine, Path], tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    _, good = module_export
    folder = tmp_path / "broken"
    shutil.copytree(good, folder)
    spoil(folder)
    with pytest.raises(ModelError) as err:
        wattprint.load_model(folder, trust=True)
    message = str(err.value)
    assert str(folder) in message
    assert "TensorFlow SavedModel" in message
    assert "Supported:" in message and "saved_model.pb" in message
