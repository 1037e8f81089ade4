"""Built-in recipes: untrained models that train on a dataset's train split, deterministically.

Classifiers train on digits and must reach 0.9 accuracy on its test split; regressors train on
diabetes and must explain a good part of its variance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattprint.errors import ConfigError
from wattprint.sweep.recipes import RECIPES, Recipe, make_recipe
from wattprint.workloads.datasets import TASKS, Dataset, load_dataset
from wattprint.workloads.metrics import classification_metrics, regression_metrics

pytest.importorskip("sklearn")

CLASSIFIERS = [name for name, info in RECIPES.items() if "classification" in info.tasks]
REGRESSORS = [name for name, info in RECIPES.items() if "regression" in info.tasks]


def _needs(source: str) -> None:
    pytest.importorskip(RECIPES[source].framework)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return load_dataset("digits").split(0.25, seed=0)


@pytest.fixture(scope="module")
def diabetes() -> tuple[Dataset, Dataset]:
    return load_dataset("diabetes").split(0.25, seed=0)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small networks train fastest on one thread, and do not fight other processes for cores."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(recipe: Recipe, train: Dataset, epochs: int | None = None) -> None:
    for _ in range(recipe.epochs if epochs is None else epochs):
        loss = recipe.model.train_epoch(train, **recipe.train_options)
        assert np.isfinite(loss)


def test_the_recipes() -> None:
    assert set(RECIPES) >= {
        "sklearn:LogisticRegression", "sklearn:SVC", "sklearn:RandomForestClassifier",
        "sklearn:Ridge", "sklearn:RandomForestRegressor", "torch:SmallCNN", "torch:MLP"}
    for name, info in RECIPES.items():
        assert info.name == name and name.startswith(info.framework + ":")
        assert info.tasks and info.tasks <= set(TASKS) and info.epochs >= 1
        assert ("classification" in info.tasks) != ("regression" in info.tasks) or name == (
            "torch:MLP")
    assert RECIPES["sklearn:Ridge"].tasks == {"regression"}


@pytest.mark.parametrize("source", CLASSIFIERS)
def test_classifiers_reach_90_percent_on_digits(source: str,
                                                digits: tuple[Dataset, Dataset]) -> None:
    _needs(source)
    train, test = digits
    recipe = make_recipe(source, train, seed=0)
    assert recipe.source == source and recipe.model.task == "classification"
    assert recipe.model.trainable
    _train(recipe, train)
    accuracy = classification_metrics(test.y, recipe.model.predict(test.x))["accuracy"]
    assert accuracy >= 0.9, (source, accuracy)
    assert recipe.model.num_parameters > 0


@pytest.mark.parametrize("source", REGRESSORS)
def test_regressors_learn_diabetes(source: str, diabetes: tuple[Dataset, Dataset]) -> None:
    _needs(source)
    train, test = diabetes
    recipe = make_recipe(source, train, seed=0)
    assert recipe.model.task == "regression"
    _train(recipe, train)
    predictions = np.asarray(recipe.model.predict(test.x))
    assert predictions.shape == (len(test),)
    rmse = regression_metrics(test.y, predictions)["rmse"]
    assert test.y is not None
    r2 = 1.0 - rmse**2 / float(np.var(test.y))
    assert r2 >= 0.3, (source, r2)


def test_scikit_learn_recipes_fit_once_per_epoch(digits: tuple[Dataset, Dataset]) -> None:
    from sklearn.exceptions import NotFittedError

    train, test = digits
    recipe = make_recipe("sklearn:SVC", train)
    assert (recipe.epochs, recipe.train_options) == (1, {})
    with pytest.raises(NotFittedError):  # untrained until train_epoch
        recipe.model.predict(test.x[:2])
    _train(recipe, train)
    labels = recipe.model.predict(test.x[:5])
    assert labels.shape == (5,) and set(labels.tolist()) <= set(range(10))


def test_untrained_torch_recipes_are_untrained(digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:SmallCNN")
    train, test = digits
    for source in ("torch:SmallCNN", "torch:MLP"):
        recipe = make_recipe(source, train)
        assert recipe.epochs >= 3 and recipe.train_options["batch_size"] > 0
        assert recipe.train_options["lr"] > 0 and recipe.train_options["seed"] == 0
        scores = recipe.model.predict(test.x)
        assert scores.shape == (len(test), 10)
        assert classification_metrics(test.y, scores)["accuracy"] < 0.5


def test_small_cnn_reshapes_digits_to_images(digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:SmallCNN")
    recipe = make_recipe("torch:SmallCNN", digits[0])
    assert recipe.model.inputs[0].shape == (None, 1, 8, 8)
    assert recipe.model.framework == "torch"


def test_small_cnn_reads_square_rows_and_channels_last_images() -> None:
    _needs("torch:SmallCNN")
    rng = np.random.default_rng(0)
    y = np.arange(12) % 3
    flat = Dataset("flat", "classification", rng.random((12, 36), dtype=np.float32), y,
                   ("a", "b", "c"))
    recipe = make_recipe("torch:SmallCNN", flat)
    assert recipe.model.inputs[0].shape == (None, 1, 6, 6)
    assert recipe.model.predict(flat.x).shape == (12, 3)
    images = Dataset("photos", "image-classification",
                     rng.integers(0, 256, (12, 8, 12, 3), dtype=np.uint8), y, ("a", "b", "c"),
                     image_shape=(8, 12, 3))
    recipe = make_recipe("torch:SmallCNN", images)
    _train(recipe, images, epochs=1)
    assert recipe.model.predict(images.x).shape == (12, 3)


@pytest.mark.parametrize(("dataset", "message"), [
    ("wine", r"needs square images .* samples of shape \(13,\)"),
    ("iris", r"needs images of at least 4x4, not 2x2"),
])
def test_small_cnn_refuses_tabular_data(dataset: str, message: str) -> None:
    _needs("torch:SmallCNN")
    with pytest.raises(ConfigError, match=message):
        make_recipe("torch:SmallCNN", load_dataset(dataset))


@pytest.mark.parametrize(("source", "dataset"), [
    ("sklearn:Ridge", "digits"), ("sklearn:RandomForestRegressor", "iris"),
    ("sklearn:LogisticRegression", "diabetes"), ("torch:SmallCNN", "diabetes"),
])
def test_a_recipe_for_the_wrong_task(source: str, dataset: str) -> None:
    with pytest.raises(ConfigError, match=rf"recipe '{source}' serves .* but dataset "
                                          rf"'{dataset}' is (classification|regression)"):
        make_recipe(source, load_dataset(dataset))


def test_unknown_recipes_options_and_data() -> None:
    iris = load_dataset("iris")
    with pytest.raises(ConfigError, match=r"unknown recipe 'sklearn:KNN' \(allowed: sklearn:"):
        make_recipe("sklearn:KNN", iris)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) for recipe 'sklearn:SVC': "
                                          r"depth \(allowed: none\)"):
        make_recipe("sklearn:SVC", iris, options={"depth": 3})
    text = Dataset("reviews", "text-classification", ["good", "bad"], np.array([0, 1]),
                   ("neg", "pos"))
    with pytest.raises(ConfigError, match="serves"):
        make_recipe("sklearn:LogisticRegression", text)
    unlabeled = Dataset("raw", "classification", iris.x)
    with pytest.raises(ConfigError, match="needs a labeled training set"):
        make_recipe("sklearn:LogisticRegression", unlabeled)


def test_torch_options(digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:MLP")
    recipe = make_recipe("torch:MLP", digits[0], seed=3,
                         options={"lr": 0.01, "batch_size": 64, "device": "cpu"})
    assert recipe.train_options == {"lr": 0.01, "batch_size": 64, "seed": 3}
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        make_recipe("torch:MLP", digits[0], options={"lr": -1})


def _weights(recipe: Recipe) -> np.ndarray:
    module: Any = recipe.model.module  # type: ignore[attr-defined]
    return np.concatenate([p.detach().numpy().ravel() for p in module.parameters()])


def test_recipes_are_deterministic(digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:SmallCNN")
    import torch

    train, test = digits
    state = torch.random.get_rng_state()
    first, again, other = (make_recipe("torch:SmallCNN", train, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
    assert np.array_equal(_weights(first), _weights(again))
    assert not np.array_equal(_weights(first), _weights(other))
    for recipe in (first, again):
        _train(recipe, train, epochs=2)
    assert np.array_equal(first.model.predict(test.x), again.model.predict(test.x))
    forests = [make_recipe("sklearn:RandomForestClassifier", train, seed=s) for s in (0, 0, 1)]
    for recipe in forests:
        _train(recipe, train)
    a, b, c = (recipe.model.predict(test.x) for recipe in forests)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_torch_networks_load_back_by_class_name(tmp_path: Path,
                                                 digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:SmallCNN")
    import torch

    from wattprint.workloads.registry import load_model

    train, test = digits
    recipe = make_recipe("torch:SmallCNN", train)
    _train(recipe, train, epochs=1)
    path = tmp_path / "cnn.pt"
    torch.save(recipe.model.module.state_dict(), path)  # type: ignore[attr-defined]
    loaded = load_model(path, model_class="wattprint.sweep.recipes:SmallCNN",
                        model_kwargs={"channels": 1, "height": 8, "width": 8, "num_classes": 10},
                        input_shape=[1, 8, 8])
    assert np.allclose(loaded.predict(test.x), recipe.model.predict(test.x), atol=1e-5)


def test_measure_training_takes_the_train_options(digits: tuple[Dataset, Dataset]) -> None:
    _needs("torch:MLP")
    from wattprint.meter import EnergyMeter
    from wattprint.sensors import FakeSensor
    from wattprint.workloads.harness import measure_training

    train, _ = digits
    recipe = make_recipe("torch:MLP", train)
    meter = EnergyMeter(sensors=[FakeSensor(power_w=10.0)])
    try:
        result = measure_training(recipe.model, train, 2, meter=meter, **recipe.train_options)
    finally:
        meter.close()
    assert result["num_epochs"] == 2
    assert result["epochs"][1]["loss"] < result["epochs"][0]["loss"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_mlp_recipe_runs_in_a_sweep_with_its_variants(tmp_path: Path, task: str) -> None:
    """The sweep saves a trained recipe as TorchScript and makes its variants from it: the
    MLP must script (its variants have no sample to be traced with)."""
    _needs("torch:MLP")
    from wattprint import Benchmark
    from wattprint.meter import EnergyMeter
    from wattprint.sensors import FakeSensor

    dataset = "digits" if task == "classification" else "diabetes"
    meter = EnergyMeter(sensors=[FakeSensor(power_w=10.0)])
    try:
        report = Benchmark({
            "project": "mlp",
            "models": [{"name": "mlp", "source": "torch:MLP", "epochs": 2, "export": "onnx",
                        "pruning": {"enabled": True, "amount": 0.3}}],
            "datasets": [{"name": dataset, "limit": 60}],
            "monitoring": {"repetitions": 1, "warmup": 0},
            "output": {"export_formats": [], "output_dir": str(tmp_path / "out"),
                       "db": str(tmp_path / "w.db")},
        }).run(meter=meter, progress=False)
    finally:
        meter.close()
    runs = report["runs"]
    assert [r["error"] for r in runs if r["status"] != "ok"] == []
    assert {r["variant"] for r in runs} == {"fp32", "onnx", "pruned-l1_unstructured-0.3"}
    (trained,) = [r for r in runs if r["phase"] == "training"]
    assert trained["size_bytes"] > 0
