"""The scikit-learn loader, against real skops, joblib and pickle files in ``tmp_path``; and the
format registry that picks a loader by suffix, with a loader of the user's own.

skops files load by default; pickles only with ``trust=True``. Expected counts and outputs come
from the fitted estimators' own attributes and methods, never typed in.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
sio = pytest.importorskip("skops.io")
joblib = pytest.importorskip("joblib")

from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from wattprint import load_model, register_format  # noqa: E402
from wattprint.errors import ConfigError, ModelError, UntrustedModelError  # noqa: E402
from wattprint.workloads import registry  # noqa: E402
from wattprint.workloads.datasets import Dataset, load_dataset  # noqa: E402
from wattprint.workloads.loaders.sklearn_loader import (  # noqa: E402
    SklearnModel,
    count_parameters,
    from_estimator,
)
from wattprint.workloads.model import InputSpec, Model  # noqa: E402
from wattprint.workloads.registry import supported_formats  # noqa: E402

TREE = "sklearn.tree._tree.Tree"


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def diabetes() -> Dataset:
    return load_dataset("diabetes")


@pytest.fixture(scope="module")
def few_digits(digits: Dataset) -> Dataset:
    """400 samples, every class: enough to fit a model in a fraction of a second."""
    return digits.sample(400, seed=0)


@pytest.fixture(scope="module")
def logreg(few_digits: Dataset) -> LogisticRegression:
    return LogisticRegression(max_iter=100).fit(few_digits.x, few_digits.y)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, logreg: LogisticRegression,
          digits: Dataset) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sklearn")
    paths = {suffix: d / f"logreg{suffix}" for suffix in (".skops", ".joblib", ".pkl",
                                                          ".pickle")}
    sio.dump(logreg, paths[".skops"])
    joblib.dump(logreg, paths[".joblib"])
    for suffix in (".pkl", ".pickle"):
        with paths[suffix].open("wb") as f:
            pickle.dump(logreg, f)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    paths["forest"] = d / "forest.skops"
    sio.dump(forest.fit(digits.x, digits.y), paths["forest"])
    return paths


# -- safe and unsafe formats ---------------------------------------------------------------------

def test_skops_loads_by_default(files: dict[str, Path], logreg: LogisticRegression,
                                digits: Dataset) -> None:
    model = load_model(files[".skops"])
    assert isinstance(model, SklearnModel)
    assert model.framework == "sklearn"
    assert model.task == "classification"
    assert model.num_parameters == logreg.coef_.size + logreg.intercept_.size == 650
    assert model.dtype == logreg.coef_.dtype.name
    assert model.size_bytes == files[".skops"].stat().st_size
    assert model.inputs == (InputSpec("x", (None, 64), "float64"),)
    assert model.trainable
    out = model.predict(digits.x[:50])
    np.testing.assert_allclose(out, logreg.predict_proba(digits.x[:50]))
    np.testing.assert_array_equal(out.argmax(axis=1), logreg.predict(digits.x[:50]))


@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".pickle"])
def test_pickles_are_refused_without_trust(files: dict[str, Path], suffix: str) -> None:
    with pytest.raises(UntrustedModelError) as info:
        load_model(files[suffix])
    message = str(info.value)
    assert message.startswith(f"{files[suffix]}: a {suffix} file is a pickle")
    assert "trust=True" in message and "skops" in message
    assert message.endswith(f"Supported: {supported_formats()}")


@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".pickle"])
def test_pickles_load_with_trust(files: dict[str, Path], suffix: str,
                                 logreg: LogisticRegression, digits: Dataset) -> None:
    model = load_model(files[suffix], trust=True)
    assert model.num_parameters == logreg.coef_.size + logreg.intercept_.size
    np.testing.assert_allclose(model.predict(digits.x[:50]), logreg.predict_proba(digits.x[:50]))


def test_skops_file_with_types_skops_does_not_trust(files: dict[str, Path],
                                                    digits: Dataset) -> None:
    path = files["forest"]
    assert TREE in sio.get_untrusted_types(file=path)
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ")
    assert TREE in str(info.value) and "trusted_types=" in str(info.value)
    for model in (load_model(path, trust=True), load_model(path, trusted_types=[TREE])):
        forest = model.estimator
        assert model.num_parameters == sum(t.tree_.node_count for t in forest.estimators_)
        np.testing.assert_array_equal(model.predict(digits.x), forest.predict_proba(digits.x))
    with pytest.raises(ConfigError, match=r"trusted_types must be a list"):
        load_model(path, trusted_types=TREE)


def test_trusted_pickle_of_something_that_is_no_estimator(tmp_path: Path) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"coef": [1.0, 2.0]}))
    with pytest.raises(ModelError, match=r"holds a dict, not a scikit-learn estimator"):
        load_model(path, trust=True)


# -- parameters as the docstring defines them ----------------------------------------------------

def _fit(estimator: Any, data: Dataset) -> Any:
    return estimator.fit(data.x, data.y)


@pytest.mark.parametrize(("make", "data", "expected"), [
    (lambda: LogisticRegression(max_iter=100), "digits",
     lambda e: e.coef_.size + e.intercept_.size),
    # a single-target regressor's intercept_ is a scalar: one parameter
    (Ridge, "diabetes", lambda e: e.coef_.size + 1),
    # singular_ describes the training data, not the model
    (LinearRegression, "diabetes", lambda e: e.coef_.size + 1),
    (lambda: SGDRegressor(random_state=0), "diabetes", lambda e: e.coef_.size + e.intercept_.size),
    (SVC, "digits",
     lambda e: e.support_vectors_.size + e.dual_coef_.size + e.intercept_.size),
    (lambda: MLPClassifier((8,), max_iter=20, random_state=0), "digits",
     lambda e: sum(w.size for w in e.coefs_) + sum(b.size for b in e.intercepts_)),
    (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=100)), "digits",
     lambda e: e[0].mean_.size + e[0].var_.size + e[0].scale_.size
     + e[1].coef_.size + e[1].intercept_.size),
    (lambda: GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=2), "diabetes",
     lambda e: e.best_estimator_.coef_.size + 1),
], ids=["logistic", "ridge", "linear", "sgd-regressor", "svc", "mlp", "pipeline", "search"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parameter_count(make: Callable[[], Any], data: str, expected: Callable[[Any], int],
                         few_digits: Dataset, diabetes: Dataset) -> None:
    estimator = _fit(make(), few_digits if data == "digits" else diabetes)
    assert count_parameters(estimator) == expected(estimator)
    assert from_estimator(estimator).num_parameters == expected(estimator)


# -- predict -------------------------------------------------------------------------------------

def test_regressor_predicts_values(diabetes: Dataset) -> None:
    ridge = _fit(Ridge(), diabetes)
    model = from_estimator(ridge)
    assert model.task == "regression"
    np.testing.assert_array_equal(model.predict(diabetes.x), ridge.predict(diabetes.x))


def test_classifier_without_probabilities_predicts_labels(digits: Dataset) -> None:
    svc = _fit(SVC(), digits)
    assert not hasattr(svc, "predict_proba")
    np.testing.assert_array_equal(from_estimator(svc).predict(digits.x), svc.predict(digits.x))


def test_images_are_flattened_to_rows(logreg: LogisticRegression, digits: Dataset) -> None:
    assert isinstance(digits.x, np.ndarray)
    images = digits.x[:20].reshape(-1, 8, 8)
    np.testing.assert_allclose(from_estimator(logreg).predict(images),
                               logreg.predict_proba(digits.x[:20]))


# -- train ---------------------------------------------------------------------------------------

def test_train_epoch_with_partial_fit_lowers_the_loss(digits: Dataset) -> None:
    model = from_estimator(SGDClassifier(loss="log_loss", random_state=0))
    assert model.num_parameters == 0  # nothing learned yet
    losses = [model.train_epoch(digits) for _ in range(3)]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    est = model.estimator
    assert losses[-1] == pytest.approx(log_loss(digits.y, est.predict_proba(digits.x)))
    assert model.num_parameters == est.coef_.size + est.intercept_.size
    assert model.inputs == (InputSpec("x", (None, 64), "float64"),)


def test_train_epoch_of_a_regressor_is_its_mse(diabetes: Dataset) -> None:
    model = from_estimator(SGDRegressor(random_state=0))
    losses = [model.train_epoch(diabetes) for _ in range(3)]
    assert losses[-1] < losses[0], losses
    predictions = model.estimator.predict(diabetes.x)
    assert diabetes.y is not None
    assert losses[-1] == pytest.approx(float(np.mean((predictions - diabetes.y) ** 2)))


def test_train_epoch_refits_a_loaded_model(files: dict[str, Path], digits: Dataset) -> None:
    model = load_model(files[".skops"])
    subset = digits.sample(300, seed=1)
    loss = model.train_epoch(subset)
    est = model.estimator
    assert loss == pytest.approx(log_loss(subset.y, est.predict_proba(subset.x)))
    assert model.num_parameters == est.coef_.size + est.intercept_.size
    with pytest.raises(ConfigError, match=r"unknown option\(s\) for train_epoch: lr"):
        model.train_epoch(subset, lr=0.1)


# -- one clear error -----------------------------------------------------------------------------

def _random(path: Path, good: bytes) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(path: Path, good: bytes) -> None:
    path.touch()


def _truncated(path: Path, good: bytes) -> None:
    path.write_bytes(good[: len(good) // 2])


def _foreign_zip(path: Path, good: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


@pytest.mark.parametrize(("suffix", "damage", "trust", "reason"), [
    (".skops", _random, False, "not a skops file (corrupt, truncated, or another format)"),
    (".skops", _empty, False, "the file is empty"),
    (".skops", _truncated, False, "not a skops file (corrupt, truncated, or another format)"),
    (".skops", _truncated, True, "not a skops file (corrupt, truncated, or another format)"),
    (".skops", _foreign_zip, False, "not a skops file (corrupt, truncated, or another format)"),
    (".joblib", _random, True, "a pickle that could not be loaded"),
    (".joblib", _truncated, True, "a pickle that could not be loaded"),
    (".pkl", _empty, False, "the file is empty"),
    (".pkl", _empty, True, "the file is empty"),
])
def test_corrupt_file_is_one_model_error(tmp_path: Path, files: dict[str, Path], suffix: str,
                                         damage: Callable[[Path, bytes], None], trust: bool,
                                         reason: str, recwarn: pytest.WarningsRecorder) -> None:
    path = tmp_path / f"bad{suffix}"
    damage(path, files[suffix if suffix != ".pkl" else ".pickle"].read_bytes())
    with pytest.raises(ModelError) as info:
        load_model(path, trust=trust)
    message = str(info.value)
    assert type(info.value) is ModelError
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert message.endswith(f"Supported: {supported_formats()}")
    assert ".." not in message
    assert not recwarn.list


def test_unknown_option_is_a_config_error(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(files[".skops"], device="cuda")
    message = str(info.value)
    assert str(files[".skops"]) in message
    assert "unknown option(s) for a scikit-learn model: device; known: trusted_types" in message


# -- the registry --------------------------------------------------------------------------------

def test_unsupported_suffix_names_the_file_and_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3")
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"{path}: unsupported format '.tflite'. "
                               f"Supported: {supported_formats()}")
    for suffix in (".pt", ".pth", ".onnx", ".skops", ".joblib", ".pkl"):
        assert suffix in supported_formats()


class LinearNpz(Model):
    """A user's own format: the weights of a linear model in a NumPy ``.npz`` file."""

    framework = "numpy"

    def __init__(self, path: Path, task: str | None) -> None:
        with np.load(path) as data:
            self.weights, self.bias = data["weights"], data["bias"]
        self.path, self.task = path, task
        self.num_parameters = self.weights.size + self.bias.size
        self.size_bytes = path.stat().st_size

    def predict(self, batch: Any) -> Any:
        return np.asarray(batch) @ self.weights + self.bias


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats registered in a test stay in that test."""
    monkeypatch.setattr(registry, "_SUFFIXES", dict(registry._SUFFIXES))


@pytest.mark.usefixtures("own_registry")
def test_register_format_with_a_user_loader(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def load_npz(path: Path, *, task: str | None, trust: bool, **options: Any) -> Model:
        calls.append({"path": path, "task": task, "trust": trust, **options})
        return LinearNpz(path, task)

    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
    path = tmp_path / "linear.LNPZ"
    with path.open("wb") as f:
        np.savez(f, weights=weights, bias=bias)
    register_format(".lnpz", load_npz)
    assert ".lnpz" in supported_formats()
    model = load_model(path, task="regression", scale=2)
    assert isinstance(model, LinearNpz)
    assert calls == [{"path": path, "task": "regression", "trust": False, "scale": 2}]
    assert model.num_parameters == 15
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(model.predict(x), x @ weights + bias)


@pytest.mark.usefixtures("own_registry")
def test_register_format_replaces_a_built_in(files: dict[str, Path]) -> None:
    def refuse(path: Path, *, task: str | None, trust: bool, **options: Any) -> Model:
        raise ModelError(f"{path}: refused by the user's loader")

    register_format(".skops", refuse)
    with pytest.raises(ModelError, match=r"refused by the user's loader"):
        load_model(files[".skops"])


def test_register_format_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match=r"starts with a dot"):
        register_format("onnx", lambda path, *, task, trust, **options: None)  # type: ignore
    with pytest.raises(ConfigError, match=r"must be callable"):
        register_format(".x", "not a loader")  # type: ignore[arg-type]
