"""Built-in models ("recipes") that a benchmark trains on a dataset's train split.

A model in a benchmark config names a recipe with ``source: "sklearn:LogisticRegression"``
instead of a file. :func:`make_recipe` builds it, untrained, for one dataset, and says how to
train it::

    recipe = make_recipe("torch:SmallCNN", train, seed=0)
    for _ in range(recipe.epochs):
        recipe.model.train_epoch(train, **recipe.train_options)

(or ``measure_training(recipe.model, train, recipe.epochs, **recipe.train_options)``, which
measures each epoch). :class:`Recipe` holds the wattprint :class:`~wattprint.workloads.model.Model`,
the default number of epochs and the options ``train_epoch`` needs.

=============================== ================================================ =============
recipe                          what it is                                       epochs
=============================== ================================================ =============
sklearn:LogisticRegression      standard scaling, then logistic regression       1 (one fit)
sklearn:SVC                     standard scaling, then an RBF SVC                1
sklearn:RandomForestClassifier  100 trees                                        1
sklearn:Ridge                   standard scaling, then ridge regression          1
sklearn:RandomForestRegressor   100 trees                                        1
torch:SmallCNN                  two 3x3 conv blocks (16, 32 channels, max pool)  12 (Adam,
                                and two linear layers, on ``(C, H, W)`` images   lr 5e-3)
torch:MLP                       fixed input standardization, one hidden layer    20 (Adam,
                                of 64 ReLU units                                 lr 3e-3)
=============================== ================================================ =============

The classifiers' predictions are class probabilities (``predict_proba``), except the SVC's:
scikit-learn 1.9 deprecates ``SVC(probability=True)``, and calibrating an SVC with
``CalibratedClassifierCV`` costs some forty times its fit (and hides its support vectors from
the parameter count), so ``sklearn:SVC`` predicts class indices, which the accuracy reads as
they are.

scikit-learn's ``train_epoch`` is a full ``fit`` (these estimators have no ``partial_fit``), so
one epoch trains them; more epochs refit the same data. The torch recipes train with
:meth:`TorchModel.train_epoch <wattprint.workloads.loaders.torch_loader.TorchModel.train_epoch>`:
Adam, cross entropy for classes and mean squared error for regression, shuffled by ``seed``.

Inputs of ``torch:SmallCNN``: flat rows of a square image (``digits``: 64 features become
``(1, 8, 8)``; a dataset's ``image_shape`` ``(H, W)`` is used when it has one), or images of
``(H, W, C)`` from an image folder (uint8, scaled to [0, 1] inside the network). Images must be
at least 4 x 4. ``torch:MLP`` takes any numeric samples, flattened; its input standardization
(and for regression, the scale of its output) is set from the training data when it is built:
that is the only thing it learns before training.

Everything is deterministic given ``seed``: the estimators' ``random_state``, the torch weights
(drawn under a forked, seeded generator, so the global one is left alone) and the shuffling of
each epoch. Frameworks are imported only when a recipe is made. The torch networks are
importable by name (``wattprint.sweep.recipes:SmallCNN``, ``:MLP``) once torch is installed, so a
saved state_dict loads with ``model_class=``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    from ..workloads.datasets import Dataset
    from ..workloads.model import Model

__all__ = ["RECIPES", "Recipe", "RecipeInfo", "make_recipe"]

_CLASSES = frozenset({"classification", "image-classification"})
_REGRESSION = frozenset({"regression"})

#: Options a torch recipe takes (the ``options`` of a model in a benchmark config).
TORCH_OPTIONS = ("batch_size", "device", "lr")


class RecipeInfo(NamedTuple):
    """What a recipe is, before it is made."""

    name: str
    framework: str  # "sklearn" or "torch"
    tasks: frozenset[str]
    epochs: int
    #: Keys of ``options`` that :func:`make_recipe` accepts for it.
    options: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Recipe:
    """A recipe made for one dataset: an untrained model and how to train it.

    ``model`` is untrained; ``epochs`` is the default number of ``train_epoch`` calls (a
    config's ``epochs`` overrides it); ``train_options`` are the keyword arguments of each
    ``model.train_epoch(train, **train_options)`` call (``lr``, ``batch_size``, ``seed`` for
    torch; none for scikit-learn).
    """

    source: str
    model: Model
    epochs: int
    train_options: dict[str, Any] = field(default_factory=dict)


def _info(name: str, tasks: frozenset[str], epochs: int, description: str) -> RecipeInfo:
    framework = name.partition(":")[0]
    options = TORCH_OPTIONS if framework == "torch" else ()
    return RecipeInfo(name, framework, tasks, epochs, options, description)


#: The built-in recipes by name, in the order they are documented.
RECIPES: Mapping[str, RecipeInfo] = MappingProxyType({
    r.name: r
    for r in (
        _info("sklearn:LogisticRegression", _CLASSES, 1,
              "standard scaling, then logistic regression"),
        _info("sklearn:SVC", _CLASSES, 1,
              "standard scaling, then an RBF support vector classifier"),
        _info("sklearn:RandomForestClassifier", _CLASSES, 1, "a random forest of 100 trees"),
        _info("sklearn:Ridge", _REGRESSION, 1, "standard scaling, then ridge regression"),
        _info("sklearn:RandomForestRegressor", _REGRESSION, 1,
              "a random forest of 100 regression trees"),
        _info("torch:SmallCNN", _CLASSES, 12,
              "two convolution blocks and two linear layers, for images"),
        _info("torch:MLP", _CLASSES | _REGRESSION, 20,
              "standardized inputs, one hidden layer of 64 ReLU units"),
    )
})

#: Adam's default learning rate for each torch recipe, and their batch size. SmallCNN at 5e-3
#: reaches >= 0.9 accuracy on the digits test split from its third epoch on (seeds 0-4).
_TORCH_LR = {"torch:SmallCNN": 5e-3, "torch:MLP": 3e-3}
_TORCH_BATCH_SIZE = 32


def make_recipe(source: str, train: Dataset, *, seed: int = 0,
                options: Mapping[str, Any] | None = None) -> Recipe:
    """The recipe ``source`` built for ``train`` (the dataset's train split), untrained.

    ``options`` (torch recipes only): ``device`` (default ``"cpu"``), ``lr`` (Adam's learning
    rate), ``batch_size``. A recipe unknown, used for a task it does not serve, given options
    it does not take, or given data it cannot read raises :class:`~wattprint.errors.ConfigError`.
    """
    info = RECIPES.get(source)
    if info is None:
        raise ConfigError(f"unknown recipe {source!r} (allowed: {', '.join(RECIPES)})")
    if train.task not in info.tasks:
        raise ConfigError(f"recipe {source!r} serves {' and '.join(sorted(info.tasks))}, "
                          f"but dataset {train.name!r} is {train.task}")
    if train.y is None or len(train) == 0:
        raise ConfigError(f"recipe {source!r} needs a labeled training set; "
                          f"dataset {train.name!r} has no labels or no samples")
    if not isinstance(train.x, np.ndarray) or train.x.dtype.kind not in "biuf":
        raise ConfigError(f"recipe {source!r} needs numeric samples; dataset {train.name!r} "
                          "holds text")
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(info.options))
    if unknown:
        raise ConfigError(f"unknown option(s) for recipe {source!r}: {', '.join(unknown)} "
                          f"(allowed: {', '.join(info.options) or 'none'})")
    model, train_options = _BUILDERS[source](train, seed, opts)
    return Recipe(source, model, info.epochs, train_options)


# -- scikit-learn -------------------------------------------------------------------------------

def _sklearn(make: Callable[[int], Any]) -> Callable[[Dataset, int, dict[str, Any]],
                                                     tuple[Model, dict[str, Any]]]:
    def build(train: Dataset, seed: int, options: dict[str, Any]) -> tuple[Model, dict[str, Any]]:
        try:
            from ..workloads.loaders.sklearn_loader import from_estimator

            estimator = make(seed)
        except ImportError as err:
            raise MissingExtra("scikit-learn recipes", "sklearn") from err
        return from_estimator(estimator, task=train.task), {}

    return build


def _logistic_regression(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def _svc(seed: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(random_state=seed))


def _random_forest_classifier(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=seed)


def _ridge(seed: int) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0, random_state=seed))


def _random_forest_regressor(seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=100, random_state=seed)


# -- torch --------------------------------------------------------------------------------------

def _num_classes(train: Dataset) -> int:
    assert train.y is not None
    seen = int(np.max(train.y)) + 1
    return max(seen, len(train.classes or ()))


def _torch_options(source: str, options: dict[str, Any],
                   seed: int) -> tuple[str, dict[str, Any]]:
    """``(device, train_options)`` from a torch recipe's options."""
    lr = options.get("lr", _TORCH_LR[source])
    batch_size = options.get("batch_size", _TORCH_BATCH_SIZE)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise ConfigError(f"lr must be a positive number, not {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    device = str(options.get("device", "cpu"))
    return device, {"lr": float(lr), "batch_size": batch_size, "seed": seed}


def _cnn_input(train: Dataset) -> tuple[tuple[int, ...], int, int, int, bool]:
    """``(input_shape, channels, height, width, channels_last)`` of the samples of ``train``."""
    x = train.x
    assert isinstance(x, np.ndarray)
    sample = tuple(int(d) for d in x.shape[1:])
    shape = train.image_shape
    if len(sample) == 3:  # (H, W, C) images from a folder
        height, width, channels = sample
        dims, channels_last = (channels, height, width), True
    elif len(sample) == 1 and shape is not None and len(shape) == 2 \
            and shape[0] * shape[1] == sample[0]:
        height, width = shape
        dims, channels_last = (1, height, width), False
    elif len(sample) == 1 and math.isqrt(sample[0]) ** 2 == sample[0]:
        height = width = math.isqrt(sample[0])
        dims, channels_last = (1, height, width), False
    else:
        raise ConfigError(f"torch:SmallCNN needs square images or images of (H, W, C): "
                          f"dataset {train.name!r} has samples of shape {sample}; "
                          "use torch:MLP for tabular data")
    if height < 4 or width < 4:
        raise ConfigError(f"torch:SmallCNN needs images of at least 4x4, not {height}x{width} "
                          f"(dataset {train.name!r}); use torch:MLP")
    input_shape = sample if channels_last else dims
    return input_shape, dims[0], height, width, channels_last


def _build_small_cnn(train: Dataset, seed: int,
                     options: dict[str, Any]) -> tuple[Model, dict[str, Any]]:
    input_shape, channels, height, width, channels_last = _cnn_input(train)
    scale = 1.0 / 255.0 if np.asarray(train.x).dtype == np.uint8 else 1.0
    device, train_options = _torch_options("torch:SmallCNN", options, seed)
    nets = _torch_classes()
    with _seeded(seed):
        module = nets["SmallCNN"](channels, height, width, _num_classes(train),
                                  channels_last=channels_last, scale=scale)
    return _wrap(module, train.task, device=device, input_shape=input_shape), train_options


def _build_mlp(train: Dataset, seed: int,
               options: dict[str, Any]) -> tuple[Model, dict[str, Any]]:
    x = np.asarray(train.x, dtype=np.float64).reshape(len(train), -1)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    regression = train.task == "regression"
    device, train_options = _torch_options("torch:MLP", options, seed)
    nets = _torch_classes()
    with _seeded(seed):
        if regression:
            assert train.y is not None
            y = np.asarray(train.y, dtype=np.float64)
            module = nets["MLP"](x.shape[1], 1, mean=mean, std=std,
                                 target_mean=float(y.mean()), target_std=float(y.std() or 1.0))
        else:
            module = nets["MLP"](x.shape[1], _num_classes(train), mean=mean, std=std)
    return _wrap(module, train.task, device=device, input_shape=None), train_options


def _wrap(module: Any, task: str, *, device: str,
          input_shape: tuple[int, ...] | None) -> Model:
    from ..workloads.loaders.torch_loader import from_module

    return from_module(module, task=task, device=device, input_shape=input_shape)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw from torch's generator seeded with ``seed``; the global state is restored after."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@functools.cache
def _torch_classes() -> dict[str, type[Any]]:
    """The torch networks, defined on first use so that importing this module needs no torch."""
    try:
        import torch
        from torch import nn
    except ImportError as err:
        raise MissingExtra("torch recipes", "torch") from err

    class SmallCNN(nn.Module):
        """Conv(3x3) -> ReLU -> MaxPool(2), twice (16 then 32 channels); Linear(64) -> ReLU ->
        Linear(num_classes). Input ``(N, C, H, W)``, or ``(N, H, W, C)`` with
        ``channels_last``; multiplied by ``scale`` first (``1/255`` for uint8 images)."""

        def __init__(self, channels: int = 1, height: int = 8, width: int = 8,
                     num_classes: int = 10, *, channels_last: bool = False,
                     scale: float = 1.0) -> None:
            super().__init__()
            self.channels_last = channels_last
            self.scale = scale
            self.features = nn.Sequential(
                nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), 64), nn.ReLU(),
                nn.Linear(64, num_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)
            if self.scale != 1.0:
                x = x * self.scale
            out: torch.Tensor = self.head(self.features(x))
            return out

    class MLP(nn.Module):
        """Standardize (fixed ``mean``, ``std``) -> Linear(hidden) -> ReLU -> Linear(outputs).

        With one output (regression) the output is ``value * target_std + target_mean``, one
        value per sample."""

        if TYPE_CHECKING:  # for mypy only: TorchScript cannot resolve these string annotations
            mean: torch.Tensor
            std: torch.Tensor
            target_mean: torch.Tensor
            target_std: torch.Tensor

        def __init__(self, in_features: int = 1, outputs: int = 2, *, hidden: int = 64,
                     mean: Any = None, std: Any = None, target_mean: float = 0.0,
                     target_std: float = 1.0) -> None:
            super().__init__()
            self.register_buffer("mean", _tensor(mean, in_features, 0.0))
            self.register_buffer("std", _tensor(std, in_features, 1.0))
            self.register_buffer("target_mean", torch.tensor(float(target_mean)))
            self.register_buffer("target_std", torch.tensor(float(target_std)))
            self.regression = outputs == 1
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, outputs))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = (x.flatten(1) - self.mean) / self.std
            out: torch.Tensor = self.net(x)
            if self.regression:
                out = out[:, 0] * self.target_std + self.target_mean
            return out

    def _tensor(values: Any, size: int, fill: float) -> torch.Tensor:
        if values is None:
            return torch.full((size,), fill)
        return torch.as_tensor(np.asarray(values, dtype=np.float32)).reshape(size)

    classes: dict[str, type[Any]] = {"SmallCNN": SmallCNN, "MLP": MLP}
    for name, cls in classes.items():  # importable (and picklable) by name
        cls.__qualname__ = name
        cls.__module__ = __name__
    return classes


def __getattr__(name: str) -> Any:
    if name in ("SmallCNN", "MLP"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_BUILDERS: dict[str, Callable[[Dataset, int, dict[str, Any]], tuple[Model, dict[str, Any]]]] = {
    "sklearn:LogisticRegression": _sklearn(_logistic_regression),
    "sklearn:SVC": _sklearn(_svc),
    "sklearn:RandomForestClassifier": _sklearn(_random_forest_classifier),
    "sklearn:Ridge": _sklearn(_ridge),
    "sklearn:RandomForestRegressor": _sklearn(_random_forest_regressor),
    "torch:SmallCNN": _build_small_cnn,
    "torch:MLP": _build_mlp,
}
