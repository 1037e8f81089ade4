"""scikit-learn estimators (the ``sklearn`` extra): ``.skops`` by default, pickles if trusted.

* ``.skops`` files load by default with ``skops.io``, trusting only the types skops trusts
  by default. A file that names other types (skops 0.16 does not trust the trees of a random
  forest, for one) raises :class:`~wattprint.errors.UntrustedModelError` listing them; load it
  with ``trust=True``, or trust just those types with ``trusted_types=[...]``.
* ``.joblib``, ``.pkl`` and ``.pickle`` files run code named by the file when they are
  unpickled, so they load only with ``trust=True`` (with ``joblib.load``, which reads plain
  pickles too).

What counts as a parameter: the numbers an estimator learned. Those are the numeric arrays
among its fitted attributes (public names ending in ``_``), looked for in lists, tuples,
dicts and sub-estimators too (pipeline steps, the trees of a forest), with one parameter per
node for a decision tree, and one for a scalar ``intercept_`` or ``offset_`` (a
single-target regressor's). So a linear model counts ``coef_`` and ``intercept_``, an SVC
``support_vectors_``, ``dual_coef_`` and ``intercept_``, an MLP ``coefs_`` and
``intercepts_``, a forest the nodes of its trees, a search (``GridSearchCV``) its
``best_estimator_``. Attributes that describe the fit or the data rather than the model
(``classes_``, ``n_iter_``, ``support_``, ``labels_``, ``loss_curve_``, ``singular_``,
``cv_results_``, ...) are left out.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError, MissingExtra, UntrustedModelError
from ..model import InputSpec, Model
from ..registry import supported_formats
from ._common import model_error, model_file_size

__all__ = ["LOAD_OPTIONS", "SklearnModel", "count_parameters", "from_estimator", "load"]

_OPTIONS = ("trusted_types",)
#: The options :func:`load` takes (a config checks them before anything runs).
LOAD_OPTIONS = _OPTIONS
_TRAIN_OPTIONS = ("seed",)
_PICKLES = (".joblib", ".pkl", ".pickle")
_CLASSIFICATION_TASKS = frozenset({"classification", "text-classification",
                                   "image-classification"})
#: Fitted attributes that describe the fit, not the model: not parameters.
_NOT_PARAMETERS = frozenset({
    "classes_", "n_classes_", "n_iter_", "n_features_in_", "feature_names_in_", "n_outputs_",
    "support_", "n_support_", "class_weight_", "labels_", "loss_curve_", "validation_scores_",
    "train_score_", "validation_score_", "oob_score_", "oob_decision_function_",
    "oob_prediction_", "oob_improvement_", "oob_scores_", "n_samples_seen_", "n_estimators_",
    "n_trees_per_iteration_", "is_categorical_", "max_features_", "shape_fit_", "fit_status_",
    "t_", "best_loss_", "n_layers_", "class_count_", "feature_count_", "n_samples_fit_",
    "n_features_", "do_early_stopping_", "singular_", "rank_", "cv_results_", "best_score_",
    "best_index_", "best_params_", "n_splits_", "refit_time_", "multimetric_", "scorer_",
})
#: Fitted scalars that are learned numbers (a single-target regressor's intercept).
_SCALAR_PARAMETERS = frozenset({"intercept_", "offset_"})
#: What unpickling a file can raise when it is corrupt or names a missing class.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError,
                    ImportError, IndexError, TypeError, OSError)
#: What skops raises on a corrupt or foreign file.
_SKOPS_ERRORS = (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError,
                 ImportError, OSError)


class SklearnModel(Model):
    """A scikit-learn estimator (or pipeline) behind the :class:`Model` interface.

    ``predict(batch)`` returns class probabilities for a classifier that has
    ``predict_proba`` (columns in the order of :attr:`classes`, so ``argmax`` gives the index
    into ``classes``), else ``predict``'s output. Rows with more than one axis are flattened.
    ``train_epoch`` is ``partial_fit`` where the estimator has it, else a full ``fit``.
    """

    framework = "sklearn"

    def __init__(self, estimator: Any, *, task: str | None = None, path: Path | None = None,
                 size_bytes: int | None = None) -> None:
        from sklearn.base import is_classifier, is_regressor

        self.estimator = estimator
        self.path = path
        self._is_classifier = bool(is_classifier(estimator)) or task in _CLASSIFICATION_TASKS
        self._is_regressor = bool(is_regressor(estimator)) or task == "regression"
        self.task = task or ("classification" if self._is_classifier
                             else "regression" if self._is_regressor else None)
        self.trainable = self._is_classifier or self._is_regressor
        self._disk_bytes = size_bytes
        self._epochs = 0
        self._refresh()

    @property
    def classes(self) -> NDArray[Any] | None:
        """The estimator's ``classes_`` (the column order of its probabilities), if any."""
        return getattr(self.estimator, "classes_", None)

    def predict(self, batch: Any) -> NDArray[Any]:
        """Probabilities for a classifier with ``predict_proba``, else ``predict``."""
        return np.asarray(self._predict(_features(batch)))

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """One ``partial_fit`` over the shuffled data, or one full ``fit``; the loss after it.

        The loss is measured on the training data: log loss for a classifier with
        ``predict_proba``, the error rate for one without, mean squared error for a regressor.
        ``batch_size`` is not used: the estimator batches as it was configured to. ``seed``
        (default 0) shuffles epoch ``k`` with the seed ``(seed, k)``.
        """
        unknown = sorted(set(options) - set(_TRAIN_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown option(s) for train_epoch: {', '.join(unknown)}; "
                              f"known: {', '.join(_TRAIN_OPTIONS)}")
        if not self.trainable:
            raise NotImplementedError(
                f"{type(self.estimator).__name__} is neither a classifier nor a regressor")
        x, y, classes = _xy(data)
        est = self.estimator
        if hasattr(est, "partial_fit"):
            order = np.random.default_rng([int(options.get("seed", 0)), self._epochs]
                                          ).permutation(len(y))
            x = [x[i] for i in order] if isinstance(x, list) else x[order]
            y = y[order]
            kwargs: dict[str, Any] = {}
            if self._is_classifier and not hasattr(est, "classes_"):
                kwargs["classes"] = classes if classes is not None else np.unique(y)
            est.partial_fit(x, y, **kwargs)
        else:
            est.fit(x, y)
        self._epochs += 1
        self._refresh()
        return self._loss(x, y)

    def _refresh(self) -> None:
        """Recount what a fit may have changed."""
        est = self.estimator
        self.num_parameters, dtype = _count(est)
        self.dtype = dtype or "float64"
        n_features = getattr(est, "n_features_in_", None)
        self.inputs = ((InputSpec("x", (None, int(n_features)), "float64"),)
                       if isinstance(n_features, int | np.integer) else ())
        if self._disk_bytes is not None:
            self.size_bytes = self._disk_bytes
        else:  # in memory: the size it would have pickled
            self.size_bytes = len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))
        self._predict: Callable[[Any], Any] = (
            est.predict_proba if self._is_classifier and hasattr(est, "predict_proba")
            else est.predict)

    def _loss(self, x: Any, y: NDArray[Any]) -> float:
        from sklearn.metrics import log_loss, mean_squared_error

        est = self.estimator
        if self._is_classifier and hasattr(est, "predict_proba"):
            return float(log_loss(y, est.predict_proba(x), labels=est.classes_))
        if self._is_classifier:
            return float(np.mean(np.asarray(est.predict(x)) != y))
        return float(mean_squared_error(y, np.asarray(est.predict(x)).reshape(np.shape(y))))


def load(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    trust: bool = False,
    **options: Any,
) -> SklearnModel:
    """Load a ``.skops`` file, or with ``trust=True`` a ``.joblib`` / ``.pkl`` / ``.pickle``.

    Option ``trusted_types``: type names (as skops lists them) to trust in a ``.skops`` file
    without trusting all of it.
    """
    path = Path(path)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) for a scikit-learn model: "
                          f"{', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    _require_sklearn()
    model_file_size(path)
    suffix = path.suffix.lower()
    if suffix == ".skops":
        estimator = _load_skops(path, trust=trust, trusted_types=options.get("trusted_types"))
    elif suffix in _PICKLES:
        if not trust:
            raise UntrustedModelError(
                f"{path}: a {suffix} file is a pickle; loading it can run arbitrary code. Load "
                "it with trust=True only if you trust its source, or save the model with skops "
                "(skops.io.dump(model, 'model.skops')), which loads safely by default. "
                f"Supported: {supported_formats()}")
        estimator = _load_pickle(path)
    else:
        raise _error(path, f"not a scikit-learn file ({suffix or 'no suffix'}); this loader "
                           "reads .skops, and .joblib, .pkl, .pickle with trust=True")
    if not callable(getattr(estimator, "predict", None)):
        raise _error(path, f"holds a {type(estimator).__name__}, not a scikit-learn estimator "
                           "with predict()")
    return SklearnModel(estimator, task=task, path=path, size_bytes=path.stat().st_size)


def from_estimator(estimator: Any, *, task: str | None = None) -> SklearnModel:
    """Wrap an in-memory estimator or pipeline, fitted or not (``train_epoch`` fits it)."""
    _require_sklearn()
    if not callable(getattr(estimator, "predict", None)):
        raise ConfigError(f"from_estimator needs an estimator with predict(), "
                          f"not {type(estimator).__name__}")
    return SklearnModel(estimator, task=task)


def count_parameters(estimator: Any) -> int:
    """The numbers ``estimator`` learned, as the module docstring defines them."""
    return _count(estimator)[0]


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as err:
        raise MissingExtra("loading scikit-learn models", "sklearn") from err


_error = model_error


def _describe(err: BaseException) -> str:
    """``"KeyError: 'schema.json'"``: the error's type, and its message where it has one."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _load_skops(path: Path, *, trust: bool, trusted_types: Any) -> Any:
    try:
        import skops.io as sio
    except ImportError as err:
        raise MissingExtra("loading .skops files", "sklearn") from err
    if trusted_types is not None and (isinstance(trusted_types, str)
                                      or not all(isinstance(t, str) for t in trusted_types)):
        raise ConfigError(f"trusted_types must be a list of type names, not {trusted_types!r}")
    try:
        untrusted: list[str] = list(sio.get_untrusted_types(file=path))
    except _SKOPS_ERRORS as err:
        raise _error(path, "not a skops file (corrupt, truncated, or another format): "
                           f"{_describe(err)}") from err
    refused = [t for t in untrusted if t not in (trusted_types or ())]
    if refused and not trust:
        raise UntrustedModelError(
            f"{path}: this skops file names types skops does not trust by default: "
            f"{', '.join(refused)}. Load it with trust=True only if you trust its source, or "
            f"trust just these with trusted_types=[...]. Supported: {supported_formats()}")
    try:
        return sio.load(path, trusted=untrusted or None)
    except _SKOPS_ERRORS as err:
        raise _error(path, f"a skops file that could not be loaded: {_describe(err)}") from err


def _load_pickle(path: Path) -> Any:
    import joblib

    try:  # trusted: the user vouched for the code this file runs
        return joblib.load(path)
    except _UNPICKLE_ERRORS as err:
        raise _error(path, f"a pickle that could not be loaded: {_describe(err)}") from err


def _features(batch: Any) -> Any:
    """A list of texts as is; other batches as arrays of flat rows."""
    if isinstance(batch, list) and batch and isinstance(batch[0], str):
        return batch
    x = np.asarray(batch)
    return x.reshape(len(x), -1) if x.ndim > 2 else x


def _xy(data: Any) -> tuple[Any, NDArray[Any], NDArray[Any] | None]:
    """``(x, y, class indices or None)`` from ``(x, y)`` or a Dataset."""
    classes = None
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
        names = getattr(data, "classes", None)
        labels = np.asarray(y) if y is not None else None
        if names and labels is not None and labels.dtype.kind in "iu":
            classes = np.arange(len(names))
    else:
        raise ConfigError("training data must be (x, y) or a Dataset with x and y, "
                          f"not {type(data).__name__}")
    if y is None:
        raise ConfigError("train_epoch needs labels or targets: the data has none")
    x, y = _features(x), np.asarray(y)
    if len(x) != len(y):
        raise ConfigError(f"{len(x)} samples but {len(y)} labels")
    if len(y) == 0:
        raise ConfigError("train_epoch needs at least one sample")
    return x, y, classes


def _is_number(value: Any) -> bool:
    """A real number held alone: a Python or NumPy int or float, not a bool."""
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.integer | np.floating)


def _count(root: Any) -> tuple[int, str | None]:
    """Learned numbers under ``root``, and the dtype of the first floating array found."""
    from sklearn.base import BaseEstimator

    seen: set[int] = set()
    first_float: list[str] = []

    def walk(obj: Any) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "fiuc":
                if obj.dtype.kind == "f" and not first_float:
                    first_float.append(obj.dtype.name)
                return int(obj.size)
            if obj.dtype.names:  # a TreePredictor's node records
                return len(obj)
            return sum(walk(o) for o in obj.flat) if obj.dtype == object else 0
        if isinstance(obj, list | tuple):
            return sum(walk(o) for o in obj)
        if isinstance(obj, Mapping):
            return sum(walk(o) for o in obj.values())
        node_count = getattr(obj, "node_count", None)
        if isinstance(node_count, int) and hasattr(obj, "children_left"):  # a tree_
            if not first_float:
                first_float.append("float64")
            return node_count
        nodes = getattr(obj, "nodes", None)
        if isinstance(nodes, np.ndarray) and nodes.dtype.names:  # a histogram-GBDT predictor
            return len(nodes)
        if isinstance(obj, BaseEstimator):
            return walk_estimator(obj)
        return 0

    def walk_estimator(est: Any) -> int:
        total = 0
        for name, value in vars(est).items():
            fitted = name.endswith("_") and not name.startswith("_")
            if name in _SCALAR_PARAMETERS and _is_number(value):
                total += 1
            elif (fitted and name not in _NOT_PARAMETERS) or name in (
                    "steps", "transformer_list", "_predictors"):
                total += walk(value)
        return total

    return walk(root), (first_float[0] if first_float else None)
