"""The benchmark config: a YAML file (or a dict of the same shape), validated in one pass.

::

    project: digits-sweep
    models:
      - name: cnn
        source: torch:SmallCNN          # a built-in recipe, trained on the train split
        export: onnx                    # benchmark its ONNX export too
        quantization: {enabled: true, method: dynamic}
        pruning: {enabled: true, method: l1_unstructured, amount: 0.5}
      - name: saved
        path: models/classifier.onnx    # relative to this file's folder
    datasets:
      - {name: digits, split: test, limit: 300}
    monitoring: {repetitions: 3, warmup: 10, batch_size: 16}
    hardware: {device_profile: auto}
    location: {country: FR, pue: 1.2}
    output: {export_formats: [json, csv], output_dir: results, db: wattprint.db}

:func:`load_config` reads and checks it: the types and ranges (counts, rates, durations,
seeds, PUE, WUE and intensities have generous upper bounds, which the schema shows), unknown
keys (none are allowed), that a model names exactly one of ``path``, ``source`` (a recipe) or
``hf`` (a hub id), that its files exist, that its options, task, export, quantization and
pruning fit its recipe, or the loader its file suffix or folder shape chooses (a hub id:
transformers; no framework is imported for this), that each dataset is a built-in or an
existing file or folder, that quantization methods and target dtypes fit together, that the
location is in the shipped grid data, and that names are unique. Every problem found is listed
in one :class:`~wattprint.errors.ConfigError`, one line each, ``<field path>: <what is
wrong>``::

    invalid config sweep.yaml (2 problems):
      models[1].quantization.method: 'foo' is not allowed (allowed: dynamic, static, fp16, bf16)
      monitoring.frequncy_hz: unknown key (allowed: frequency_hz, repetitions, ...)

After validation, relative model paths (and dataset files) are absolute, resolved against the
YAML file's folder (the working directory for a dict); ``output`` paths are kept as written
(relative to the working directory when the benchmark runs), and a YAML file's must lie below
the working directory or the file's folder: a config from a stranger writes nowhere else.
A quantization's ``target_dtype`` is filled in from its method, and a ``device_profile`` is
spelled as its profile is.

:func:`config_hash` names a sweep: the same models, datasets, monitoring, hardware and location
give the same hash, whatever the key order or the ``output`` section.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..errors import ConfigError, DatasetError, LocationError
from ..footprint import DEFAULT_PUE, TIERS, Site
from ..sensors.hardware import PROFILES, resolve_hardware
from ..workloads.datasets import BUILTIN_DATASETS
from ..workloads.loaders.transformers_loader import HUB_OPTIONS as HF_HUB_OPTIONS
from ..workloads.loaders.transformers_loader import TASKS as HF_TASKS
from .recipes import RECIPES

__all__ = [
    "MODEL_TASKS",
    "QUANTIZATION_TARGETS",
    "BenchConfig",
    "DatasetConfig",
    "ExecutionConfig",
    "HardwareConfig",
    "LocationConfig",
    "ModelConfig",
    "MonitoringConfig",
    "OutputConfig",
    "PruningConfig",
    "QuantizationConfig",
    "config_hash",
    "config_schema",
    "load_config",
]

DatasetTask = Literal["classification", "regression", "text", "text-classification",
                      "image-classification", "text-generation", "code-generation",
                      "automatic-speech-recognition", "text2text-generation"]
#: The name of the code task sample that ships with wattprint (``task: code-generation``).
CODE_SAMPLE = "code_tasks"
#: The tasks a model can be given: those of datasets, and of Hugging Face models
#: (transformers models take only the latter).
MODEL_TASKS: tuple[str, ...] = tuple(dict.fromkeys((*typing.get_args(DatasetTask), *HF_TASKS)))
QuantizationMethod = Literal["dynamic", "static", "fp16", "bf16", "int8-weight-only"]
TargetDtype = Literal["int8", "fp16", "bf16"]
PruningMethod = Literal["l1_unstructured", "ln_structured"]
#: The parts of a built-in or local dataset; a hub dataset's splits are its own names.
LOCAL_SPLITS = ("train", "test", "all")
ExportFormat = Literal["json", "csv", "html"]
#: ``hardware.device_profile`` values that name a kind of site (ML-EcoLyzer's profiles), not a
#: device: each sets the location's tier (``mobile`` is the ``edge`` tier) and the hardware
#: label is detected, as with ``auto``.
DEVICE_TIERS: Mapping[str, str] = types.MappingProxyType({
    "datacenter": "datacenter", "desktop": "desktop", "edge": "edge", "mobile": "edge"})
#: ``model_type`` (ML-EcoLyzer's) -> the Hugging Face task it means.
MODEL_TYPES: Mapping[str, str] = types.MappingProxyType({
    "causal_lm": "text-generation", "sequence_classification": "text-classification"})
#: ``hardware.precision`` -> the quantization method of the variant it adds (None: none).
PRECISIONS: Mapping[str, str | None] = types.MappingProxyType({
    "auto": None, "float32": None, "float16": "fp16", "bfloat16": "bf16"})

#: The target dtypes each quantization method makes; the first is its default.
QUANTIZATION_TARGETS: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "dynamic": ("int8",),
    "static": ("int8",),
    "fp16": ("fp16",),
    "bf16": ("bf16",),
    "int8-weight-only": ("int8",),
})
_EXPORT_FORMATS: tuple[ExportFormat, ...] = ("json", "csv")
#: A dataset name that can only be a local file or folder, never a hub id.
_FILE_SUFFIXES = (".csv", ".jsonl", ".json", ".txt", ".parquet", ".npz", ".npy")
_LOCATION_KEYS = ("country", "zone", "cloud_region", "carbon_intensity_g_per_kwh")
#: The frameworks ``optimize.export_onnx`` and ``optimize.prune`` take.
_EXPORTS_TO_ONNX = frozenset({"torch"})
_PRUNABLE = frozenset({"torch", "transformers"})
#: Frameworks whose model's ``threads`` option the sweep takes, not the loader: torch's
#: threads, scikit-learn's BLAS and OpenMP pools and TensorFlow's intra-op threads are the
#: process's, set for the model's cells (ONNX sessions take their own).
THREADS_OF_THE_SWEEP = frozenset({"torch", "transformers", "sklearn", "keras", "tensorflow"})
#: What runs a model of each framework in :data:`THREADS_OF_THE_SWEEP` on its threads.
_THREADS_OF = {"torch": "torch's threads", "transformers": "torch's threads",
               "sklearn": "the threads of its BLAS and OpenMP pools",
               "keras": "its backend's threads", "tensorflow": "TensorFlow's intra-op threads"}
_MAX_THREADS = 1_024
_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Upper bounds: generous for any real sweep, yet low enough that a slip of the keyboard (a
# repetition count of 10**23) is a config error naming the field, not a run that exhausts the
# memory or overflows a timer. ``wattprint schema`` shows each as the field's ``maximum``.
_MAX_REPETITIONS = 1_000
_MAX_WARMUP = 100_000  # batches
_MAX_BATCH_SIZE = 100_000
_MAX_NUM_SAMPLES = 10_000_000  # per run; the batches are prepared before the measured loop
_MAX_LIMIT = 1_000_000_000
_MAX_EPOCHS = 10_000
_MAX_FREQUENCY_HZ = 10_000.0
_MAX_IDLE_BASELINE_S = 3_600.0
_MAX_SEED = 2**32 - 1  # the largest seed scikit-learn and NumPy's legacy generators take
_MAX_PUE = 10.0  # data centres report 1.1 to 3
_MAX_WUE_L_PER_KWH = 100.0  # data centres report 0 to about 10
_MAX_INTENSITY_G_PER_KWH = 5_000.0  # coal, the dirtiest grid source, is about 1,000
_MAX_TASK_CPUS = 1_024.0  # per Ray task
_MAX_TASK_GPUS = 64.0


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def _can_be_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hugging Face id (``wikitext``, ``org/name``), not as a
    path to a local file (``data/x.csv``, ``./images``)."""
    return bool(_HUB_ID.fullmatch(name)) and not name.lower().endswith(_FILE_SUFFIXES)


def _problem(message: str, field: str = "") -> PydanticCustomError:
    """A validation error in our words; ``field`` is appended to its location."""
    return PydanticCustomError("wattprint", "{message}", {"message": message, "field": field})


def _network_allowed(info: ValidationInfo) -> bool:
    """The config's top-level ``allow_network`` (read before validation: the models and
    datasets that need it are checked before the top level is)."""
    context = info.context if isinstance(info.context, Mapping) else {}
    return context.get("allow_network") is True


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


class _Section(BaseModel):
    """Every section: unknown keys are errors, values are frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QuantizationConfig(_Section):
    """Make a quantized variant of the model (of its ONNX export, when ``export: onnx``)."""

    enabled: bool = False
    method: QuantizationMethod = "dynamic"
    target_dtype: TargetDtype = Field(
        default="int8", description="default from the method: int8 for dynamic, static and "
                                    "int8-weight-only, fp16 for fp16, bf16 for bf16")

    @model_validator(mode="before")
    @classmethod
    def _default_target(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("target_dtype") is None:
            targets = QUANTIZATION_TARGETS.get(str(data.get("method", "dynamic")))
            if targets is not None:
                data = {**data, "target_dtype": targets[0]}
        return data

    @model_validator(mode="after")
    def _target_fits_method(self) -> QuantizationConfig:
        allowed = QUANTIZATION_TARGETS[self.method]
        if self.target_dtype not in allowed:
            raise _problem(f"{self.target_dtype!r} does not fit method {self.method!r} "
                           f"(allowed: {', '.join(allowed)})", "target_dtype")
        return self


class PruningConfig(_Section):
    """Make a pruned variant of the model: ``amount`` is the fraction of weights removed."""

    enabled: bool = False
    method: PruningMethod = "l1_unstructured"
    amount: float = Field(default=0.5, gt=0.0, lt=1.0)


class ModelConfig(_Section):
    """One model: a file (``path``), a built-in recipe (``source``) or a hub id (``hf``)."""

    name: str = Field(min_length=1, description="the model's name; with no path, source or "
                                                "hf, a Hugging Face hub id (gpt2, org/name)")
    path: Path | None = Field(default=None, description="a model file or folder; relative to "
                                                        "the config file's folder")
    source: str | None = Field(default=None, description="a built-in recipe: "
                                                         + ", ".join(RECIPES))
    hf: str | None = Field(default=None, min_length=1, description="a Hugging Face hub id")
    task: str | None = Field(default=None, min_length=1,
                             description="one of " + ", ".join(MODEL_TASKS)
                                         + "; default from the model")
    export: Literal["onnx"] | None = Field(
        default=None, description="also benchmark the model exported to ONNX")
    epochs: int | None = Field(default=None, ge=1, le=_MAX_EPOCHS,
                               description="training epochs of a recipe; default per recipe")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="loader options (a recipe's options for a "
                                                "source), e.g. input_shape; threads: the "
                                                "model's intra-op threads (torch, ONNX, "
                                                "TensorFlow, scikit-learn's BLAS and "
                                                "OpenMP)")
    trust: bool = Field(default=False, description="load formats that hold code (pickles, "
                        "TorchScript, SavedModels) and a model_class that is no torch.nn.Module")
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    model_type: Literal["causal_lm", "sequence_classification"] | None = Field(
        default=None, description="ML-EcoLyzer's model type: the task of a hub model "
                                  "(causal_lm: text-generation)")
    max_length: int | None = Field(default=None, ge=1, le=1_000_000,
                                   description="tokens per input of a Hugging Face model")

    @model_validator(mode="before")
    @classmethod
    def _hub_by_name(cls, data: Any) -> Any:
        """ML-EcoLyzer names hub models by ``name`` alone: a model with no ``path``,
        ``source`` or ``hf`` is the hub model its name says (``gpt2``, ``org/name``)."""
        if isinstance(data, Mapping) and isinstance(data.get("name"), str) and all(
                data.get(k) is None for k in ("path", "source", "hf")):
            return {**data, "hf": data["name"]}
        return data

    @field_validator("task")
    @classmethod
    def _own_task(cls, value: str | None) -> str | None:
        """``task: text`` (ML-EcoLyzer's) is the model's own task: a causal LM generates."""
        return None if value == "text" else value

    @field_validator("options")
    @classmethod
    def _threads_count(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A ``threads`` option is a whole number of threads (0 is onnxruntime's own choice;
        torch needs at least 1, checked once the framework is known)."""
        threads = value.get("threads")
        if threads is not None and (type(threads) is not int
                                    or not 0 <= threads <= _MAX_THREADS):
            raise _problem(f"threads must be a whole number of threads from 1 to "
                           f"{_MAX_THREADS} (0 for onnxruntime's own choice), not {threads!r}",
                           "threads")
        return value

    @field_validator("options")
    @classmethod
    def _preprocess_spec(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A ``preprocess`` option is an image spec: a bad one is refused before anything
        runs (whether it fits the model is checked when the model loads)."""
        if value.get("preprocess") is not None:
            from ..workloads.images import ImageSpec

            try:
                ImageSpec.from_option(value["preprocess"])
            except ConfigError as err:
                raise _problem(str(err), "preprocess") from err
        return value

    @field_validator("path", mode="before")
    @classmethod
    def _path_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise _problem("must not be empty")
        return value

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = _base_dir(info)
        path = Path(os.path.abspath(base / value.expanduser()))
        if not path.exists():
            where = "" if value.is_absolute() else f" (looked in {base})"
            raise _problem(f"no such model file or folder {str(value)!r}{where}")
        return path

    @field_validator("source")
    @classmethod
    def _known_recipe(cls, value: str | None) -> str | None:
        if value is not None and value not in RECIPES:
            raise _problem(f"unknown recipe {value!r} (allowed: {', '.join(RECIPES)})"
                           + _close(value, RECIPES))
        return value

    @model_validator(mode="after")
    def _one_origin(self, info: ValidationInfo) -> ModelConfig:
        if self.model_type is not None or self.max_length is not None:
            if self.hf is None and self.path is None:
                raise _problem("model_type and max_length are for Hugging Face models")
            if self.model_type is not None:
                task = MODEL_TYPES[self.model_type]
                if self.task not in (None, task):
                    raise _problem(f"model_type {self.model_type!r} is task {task!r}, not "
                                   f"{self.task!r}", "task")
                object.__setattr__(self, "task", task)
            if self.max_length is not None:
                object.__setattr__(self, "options", {**self.options,
                                                     "max_length": self.max_length})
        given = [k for k in ("path", "source", "hf") if getattr(self, k) is not None]
        if len(given) != 1:
            got = "none" if not given else ", ".join(given)
            raise _problem(f"give exactly one of path, source, hf (got {got})")
        if self.source is None:
            if self.epochs is not None:
                raise _problem("only a recipe (source) is trained; this model is loaded",
                               "epochs")
            self._loaded_fits()
            if self.hf is not None and not _network_allowed(info):
                self._in_the_cache(self.hf)
            return self
        recipe = RECIPES[self.source]
        if self.task is not None and self.task not in recipe.tasks:
            raise _problem(f"recipe {self.source!r} does not serve task {self.task!r} "
                           f"(allowed: {', '.join(sorted(recipe.tasks))})", "task")
        allowed = (*recipe.options, *(("threads",) if recipe.framework in THREADS_OF_THE_SWEEP
                                      else ()))
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise _problem(f"unknown option(s) {', '.join(map(repr, unknown))} for recipe "
                           f"{self.source!r} (allowed: {', '.join(allowed) or 'none'})",
                           "options")
        _raise_all([*self._threads_problems(recipe.framework),
                    *self._variant_problems(f"recipe {self.source!r}", recipe.framework)])
        return self

    def _threads_problems(self, framework: str) -> list[tuple[str, str]]:
        """``threads: 0`` (onnxruntime's own choice) as a ``(field, message)`` problem, for a
        model whose threads the sweep sets (torch's, TensorFlow's, or its BLAS and OpenMP
        pools'): it needs at least one."""
        if self.options.get("threads") == 0 and framework in THREADS_OF_THE_SWEEP:
            return [("options.threads", f"threads 0 is onnxruntime's own choice; "
                                        f"{_a(framework)} model runs on "
                                        f"{_THREADS_OF[framework]}, which must be at least 1")]
        return []

    def _in_the_cache(self, model_id: str) -> None:
        from ..workloads.hf_datasets import hub_cache_dir
        from ..workloads.loaders.transformers_loader import hub_model_cached

        cache_dir = self.options.get("cache_dir")
        if hub_model_cached(model_id, cache_dir) is None:
            raise _problem(
                f"{model_id!r} is a Hugging Face hub model that is not in the local cache "
                f"({cache_dir or hub_cache_dir()}); set allow_network: true to download it, "
                "or give path: (a local folder) or source: (a recipe)",
                "name" if model_id == self.name else "hf")

    def _loaded_fits(self) -> ModelConfig:
        """The options, task and variants asked of a model file, folder or hub id fit the
        loader that will open it, so that a misfit is refused before anything runs."""
        loaded = _loaded_as(self.path, self.hf)
        if loaded is None:
            return self
        problems = self._threads_problems(loaded.framework)
        unknown = sorted(set(self.options) - set(loaded.options))
        if unknown:
            problems.append(("options", f"unknown option(s) {', '.join(map(repr, unknown))} "
                                        f"for {loaded.kind} (allowed: "
                                        f"{', '.join(loaded.options) or 'none'})"))
        if self.task is not None and self.task not in loaded.tasks:
            problems.append(("task", f"unknown task {self.task!r} for {loaded.kind} (allowed: "
                                     f"{', '.join(loaded.tasks)})"
                                     + _close(self.task, loaded.tasks)))
        what = repr(self.path.name) if self.path is not None else f"hub model {self.hf!r}"
        code = None if self.trust or self.path is None else _holds_code(self.path)
        if code is not None:
            problems.append(("trust", f"{what} is {code}, which can run any code when it is "
                                      "loaded or run; set trust: true on this model only if you "
                                      "trust its source, or give the model in a format that "
                                      "holds no code (a state_dict with model_class, ONNX)"))
        _raise_all([*problems, *self._variant_problems(what, loaded.framework)])
        return self

    def framework(self) -> str | None:
        """The framework the model runs in (``torch``, ``onnx``, ``transformers``...), as
        far as can be told without loading it; None for a user-registered format."""
        if self.source is not None:
            return RECIPES[self.source].framework
        loaded = _loaded_as(self.path, self.hf)
        return None if loaded is None else loaded.framework

    def _variant_problems(self, what: str, framework: str) -> list[tuple[str, str]]:
        """``(field, message)`` for each of the export, quantization and pruning asked of the
        model ``what`` that its framework does not take."""
        problems = []
        if self.export == "onnx" and framework not in _EXPORTS_TO_ONNX:
            problems.append(("export", f"{what} is {_a(framework)} model; ONNX export takes "
                                       f"{', '.join(sorted(_EXPORTS_TO_ONNX))} models"))
        deployed = "onnx" if self.export == "onnx" else framework
        if self.quantization.enabled:
            from ..optimize.quantization import METHODS, missing_extra

            methods = METHODS.get(deployed, ())
            missing = missing_extra(self.quantization.method)
            if self.quantization.method not in methods:
                problems.append(("quantization.method",
                                 f"{self.quantization.method!r} does not quantize {deployed} "
                                 f"models (allowed: {', '.join(methods) or 'none'})"))
            elif missing is not None:
                problems.append(("quantization.method", str(missing)))
        if self.pruning.enabled and framework not in _PRUNABLE:
            problems.append(("pruning.enabled", f"{what} is {_a(framework)} model; pruning takes "
                                                f"{', '.join(sorted(_PRUNABLE))} models"))
        return problems


class _Loaded(typing.NamedTuple):
    """What a built-in loader makes of a model file, folder or hub id."""

    framework: str
    kind: str  # as the loader's own messages name it: "an ONNX model"
    options: tuple[str, ...]
    tasks: tuple[str, ...]


#: The built-in loader modules: the framework of the models each makes, and their name.
_LOADERS = {
    "torch_loader": ("torch", "a PyTorch model"),
    "onnx_loader": ("onnx", "an ONNX model"),
    "sklearn_loader": ("sklearn", "a scikit-learn model"),
    "keras_loader": ("keras", "a Keras model"),
    "tensorflow_loader": ("tensorflow", "a TensorFlow SavedModel"),
    "transformers_loader": ("transformers", "a Hugging Face model folder"),
}
_HUB_LOADER = "wattprint.workloads.loaders.transformers_loader:load_hub"


def _loaded_as(path: Path | None, hf: str | None) -> _Loaded | None:
    """How the model at ``path``, or the hub id ``hf``, will load: the loader chosen as
    :func:`~wattprint.workloads.load_model` chooses it (by suffix, folder shape, else a hub
    id). None for a format registered by the user, or one no loader opens: loading it says so.

    Importing a built-in loader module imports no framework, only its option names.
    """
    from ..workloads import registry

    target = path if path is not None else Path(str(hf))
    entry: object = None
    if target.is_dir():
        entry = next((loader for marker, loader in registry._FOLDERS
                      if (target / marker).is_file()), None)
    elif target.is_file():
        entry = registry._SUFFIXES.get(target.suffix.lower())
    elif hf is not None and not registry._looks_like_a_path(hf):
        entry = _HUB_LOADER
    if not isinstance(entry, str):
        return None
    module_name = entry.partition(":")[0]
    known = _LOADERS.get(module_name.rpartition(".")[2])
    if known is None:
        return None
    framework, kind = known
    options = tuple(importlib.import_module(module_name).LOAD_OPTIONS)
    if framework in THREADS_OF_THE_SWEEP:  # the sweep's, not the loader's
        options = (*options, "threads")
    if entry == _HUB_LOADER:
        kind, options = "a Hugging Face hub model", (*options, *HF_HUB_OPTIONS)
    tasks = HF_TASKS if framework == "transformers" else MODEL_TASKS
    return _Loaded(framework, kind, options, tasks)


def _holds_code(path: Path) -> str | None:
    """What the model at ``path`` is, when it is a kind that holds code and loads only with
    ``trust``, as far as can be told without a framework; else None (its loader still checks:
    a whole pickled torch model, a Keras ``Lambda`` layer)."""
    from ..workloads.loaders.torch_loader import is_torchscript

    suffix = path.suffix.lower()
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "a TensorFlow SavedModel folder"
    if suffix in (".pkl", ".pickle", ".joblib"):
        return "a pickle"
    if suffix in (".pt", ".pth") and is_torchscript(path):
        return "a TorchScript archive"
    return None


def _a(word: str) -> str:
    """``word`` with its indefinite article: "a torch", "an onnx"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _raise_all(problems: Sequence[tuple[str, str]]) -> None:
    """Raise every ``(field, message)`` problem of one section at once, each its own line."""
    if len(problems) == 1:
        raise _problem(problems[0][1], problems[0][0])
    if problems:
        raise ValidationError.from_exception_data("config", [
            InitErrorDetails(type=_problem(message, field), loc=(), input=None)
            for field, message in problems])


class DatasetConfig(_Section):
    """One dataset: a built-in name or a file or folder, and the part of it measured."""

    name: str = Field(min_length=1, description="a built-in (" + ", ".join(BUILTIN_DATASETS)
                                                + "), a file or folder, or a Hugging Face "
                                                  "datasets id (wikitext, org/name)")
    task: DatasetTask | None = Field(default=None, description="default from the dataset")
    limit: int | None = Field(default=None, ge=1, le=_MAX_LIMIT,
                              description="at most this many samples (stratified)")
    split: str = Field(default="test", min_length=1,
                       description="the part inference is measured on: train, test or all; "
                                   "a hub dataset's own split name")
    seed: int = Field(default=0, ge=0, le=_MAX_SEED)
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    config: str | None = Field(default=None, min_length=1,
                               description="a hub dataset's configuration (wikitext-2-raw-v1)")
    subset: str | None = Field(default=None, min_length=1,
                               description="ML-EcoLyzer's name for config")
    text_field: str | None = Field(default=None, min_length=1,
                                   description="a hub dataset's text column; default the first")
    label_field: str | None = Field(default=None, min_length=1,
                                    description="a hub dataset's label column; default label")
    label_key: str | None = Field(default=None, min_length=1,
                                  description="ML-EcoLyzer's name for label_field")
    fallback_splits: list[str] = Field(default_factory=list,
                                       description="hub splits to use when split is missing")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str, info: ValidationInfo) -> str:
        if value in BUILTIN_DATASETS or value == CODE_SAMPLE:
            return value
        base = _base_dir(info)
        path = Path(os.path.abspath(base / Path(value).expanduser()))
        if path.exists():
            return str(path)
        if _can_be_hub_id(value):
            return value  # a Hugging Face datasets id: BenchConfig checks the local cache
        raise _problem(f"unknown dataset {value!r} (built-in: {', '.join(BUILTIN_DATASETS)}; "
                       f"a path to a file or folder; or a Hugging Face datasets id)"
                       + _close(value, BUILTIN_DATASETS))

    @model_validator(mode="after")
    def _parts(self, info: ValidationInfo) -> DatasetConfig:
        if self.task == "code-generation" or self.name == CODE_SAMPLE:
            return self._code_tasks()
        for ours, theirs in (("config", "subset"), ("label_field", "label_key")):
            if getattr(self, theirs) is not None:
                if getattr(self, ours) not in (None, getattr(self, theirs)):
                    raise _problem(f"give {ours} or {theirs}, not both", theirs)
                object.__setattr__(self, ours, getattr(self, theirs))
                object.__setattr__(self, theirs, None)
        if not self.hub:
            hub_only = [k for k in ("config", "text_field", "label_field")
                        if getattr(self, k) is not None]
            if self.fallback_splits:
                hub_only.append("fallback_splits")
            if hub_only:
                raise _problem(f"{', '.join(hub_only)}: only for Hugging Face datasets; "
                               f"{self.name!r} is built in or a local file")
            if self.split not in LOCAL_SPLITS:
                raise _problem(f"{self.split!r} is not allowed (allowed: "
                               f"{', '.join(LOCAL_SPLITS)})", "split")
        elif not _network_allowed(info):
            from ..workloads.hf_datasets import hf_dataset_cached, hub_cache_dir

            if hf_dataset_cached(self.name, self.config) is None:
                close = _close(self.name, BUILTIN_DATASETS).removeprefix("; ")
                raise _problem(
                    f"{self.name!r} is no built-in dataset ({', '.join(BUILTIN_DATASETS)}"
                    f"{'; ' + close if close else ''}), no file or folder here, and no Hugging "
                    f"Face dataset in the local cache ({hub_cache_dir()}); set allow_network: "
                    "true to download it, or give a path that exists", "name")
        return self

    def _code_tasks(self) -> DatasetConfig:
        """A code task set (``task: code-generation``): the shipped sample by name, or a JSONL
        file of tasks, read now so that a bad line is a config error."""
        from ..workloads.codegen import load_code_tasks

        if self.task not in (None, "code-generation"):
            raise _problem(f"{self.name!r} is a set of code tasks: its task is "
                           f"code-generation, not {self.task!r}", "task")
        if self.name != CODE_SAMPLE and not self.name.lower().endswith(".jsonl"):
            raise _problem(f"a code task set is {CODE_SAMPLE!r} (the shipped sample) or a "
                           f".jsonl file of tasks, not {self.name!r}", "name")
        try:
            load_code_tasks(None if self.name == CODE_SAMPLE else self.name)
        except (ConfigError, DatasetError) as err:
            raise _problem(str(err), "name") from err
        object.__setattr__(self, "task", "code-generation")
        return self

    @property
    def hub(self) -> bool:
        """Whether this is a Hugging Face datasets id (neither built in nor a local path)."""
        return (self.name not in BUILTIN_DATASETS and self.name != CODE_SAMPLE
                and not os.path.isabs(self.name))


class MonitoringConfig(_Section):
    """How each cell is measured."""

    frequency_hz: float = Field(default=20.0, gt=0.0, le=_MAX_FREQUENCY_HZ,
                                description="sampling rate of power-only sensors")
    repetitions: int = Field(default=1, ge=1, le=_MAX_REPETITIONS,
                             description="inference runs per variant")
    warmup: int = Field(default=10, ge=0, le=_MAX_WARMUP,
                        description="unmeasured batches before each run")
    idle_baseline_s: float = Field(default=0.0, ge=0.0, le=_MAX_IDLE_BASELINE_S,
                                   description="seconds of idle power measured first; 0: none")
    batch_size: int = Field(default=1, ge=1, le=_MAX_BATCH_SIZE)
    num_samples: int | None = Field(default=None, ge=1, le=_MAX_NUM_SAMPLES,
                                    description="samples per run; default the whole split")
    cell_timeout_s: float = Field(default=1800.0, gt=0.0, le=7 * 24 * 3600.0,
                                  description="seconds one cell may run before it is stopped "
                                              "and stored as failed (at most 7 days)")
    enable_quantization_analysis: bool = Field(
        default=False, description="add each model's int8 (dynamic) and fp16 variants, where "
                                   "its framework takes them, with the savings analysis")
    duration_seconds: float | None = Field(
        default=None, gt=0.0, le=7 * 24 * 3600.0,
        description="ML-EcoLyzer's monitoring duration; accepted, not used: each cell is "
                    "measured for as long as it runs")
    enable_wandb: bool = Field(default=False, description="accepted, not used: wattprint "
                                                          "sends nothing over the network")
    wandb_project: str | None = Field(default=None, description="accepted, not used")


class HardwareConfig(_Section):
    """The hardware label results are filed under: ``auto`` (this machine's first GPU, else
    ``CPU``) or any device name, labelled by ``resolve_hardware`` ("NVIDIA H200" and "h200"
    are "H200"; names the table does not know are kept as given)."""

    device_profile: str = Field(default="auto", description="auto; a kind of site ("
                                + ", ".join(DEVICE_TIERS) + "), which sets the location's "
                                "tier and detects the device; or any device name; known: "
                                + ", ".join(p.name for p in PROFILES.values()))
    precision: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="float16 / bfloat16 add that variant of each model whose "
                                    "framework takes it; auto and float32: the model as saved")
    memory_optimization: bool = Field(default=False, description="accepted, not used")

    @field_validator("device_profile")
    @classmethod
    def _label(cls, value: str) -> str:
        if value.strip().lower() == "auto":
            return "auto"
        if value.strip().lower() in DEVICE_TIERS:
            return value.strip().lower()
        try:
            return resolve_hardware(value).name
        except ConfigError as err:
            raise _problem(str(err)) from err

    @property
    def detect(self) -> bool:
        """Whether the hardware label is this machine's (``auto`` or a kind of site)."""
        return self.device_profile == "auto" or self.device_profile in DEVICE_TIERS

    @property
    def tier(self) -> str | None:
        """The location tier a kind-of-site profile sets; None for auto or a device."""
        return DEVICE_TIERS.get(self.device_profile)


class LocationConfig(_Section):
    """Where the energy is drawn: the fields of a :class:`~wattprint.Site` (grid, PUE, WUE,
    tier, grid water intensity); :meth:`to_site` is the one the sweep's meter uses."""

    country: str | None = Field(default=None, min_length=1,
                                description="ISO 3166 alpha-2 or alpha-3 code")
    zone: str | None = Field(default=None, min_length=1, description="Electricity Maps zone")
    cloud_region: str | None = Field(default=None, min_length=1,
                                     description="e.g. aws:us-east-1, gcp:europe-west4")
    carbon_intensity_g_per_kwh: float | None = Field(default=None, ge=0.0,
                                                     le=_MAX_INTENSITY_G_PER_KWH)
    pue: float | None = Field(default=None, ge=1.0, le=_MAX_PUE,
                              description=f"default: the tier's, else {DEFAULT_PUE:g}")
    wue_l_per_kwh: float | None = Field(default=None, ge=0.0, le=_MAX_WUE_L_PER_KWH)
    tier: str | None = Field(default=None, description=f"one of {', '.join(TIERS)}")
    water_intensity_l_per_kwh: float | None = Field(default=None, ge=0.0,
                                                    le=_MAX_WUE_L_PER_KWH)

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return Site(tier=value).tier
        except ConfigError as err:
            raise _problem(str(err)) from err

    @model_validator(mode="after")
    def _known_place(self) -> LocationConfig:
        given = [k for k in _LOCATION_KEYS if getattr(self, k) is not None]
        if len(given) > 1:
            raise _problem(f"give at most one of {', '.join(_LOCATION_KEYS)} "
                           f"(got {', '.join(given)})")
        try:
            self.to_site().resolve()
        except (LocationError, ConfigError) as err:
            raise _problem(str(err), given[0] if given else "") from err
        return self

    def to_site(self) -> Site:
        """The :class:`~wattprint.Site` this section declares."""
        return Site(country=self.country, zone=self.zone, cloud_region=self.cloud_region,
                    carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh, pue=self.pue,
                    wue_l_per_kwh=self.wue_l_per_kwh, tier=self.tier,
                    water_intensity_l_per_kwh=self.water_intensity_l_per_kwh)


class OutputConfig(_Section):
    """Where results go; not part of the sweep's identity (:func:`config_hash`)."""

    export_formats: list[ExportFormat] = Field(default_factory=lambda: list(_EXPORT_FORMATS))
    output_dir: Path = Field(default=Path("results"),
                             description="exports and model variants; relative to the "
                                         "working directory")
    db: Path = Field(default=Path("wattprint.db"), description="the SQLite results store")
    log_level: str | None = Field(default=None, description="accepted, not used: the command "
                                                            "line's -v/-q set the output")

    @field_validator("output_dir", "db")
    @classmethod
    def _inside(cls, value: Path, info: ValidationInfo) -> Path:
        """A config file may come from anyone: it sends results only below the working
        directory or its own folder. Elsewhere is the user's call: ``--db``, ``--output-dir``
        (``Benchmark(config, db=..., output_dir=...)``)."""
        context = info.context if isinstance(info.context, Mapping) else {}
        if not context.get("from_file") or info.field_name in context.get("given", ()):
            return value  # a dict from the user's own code, or the user's own override
        target = Path.cwd().joinpath(value.expanduser()).resolve()
        roots = (Path.cwd().resolve(), _base_dir(info).resolve())
        if not any(target == root or root in target.parents for root in roots):
            flag = "--db" if info.field_name == "db" else "--output-dir"
            raise _problem(f"{str(value)!r} is outside the working directory and the config's "
                           "folder; a config file cannot send results there: pass "
                           f"{flag} on the command line instead")
        return value


class ExecutionConfig(_Section):
    """Where the cells run; not part of the sweep's identity (:func:`config_hash`): a sweep
    begun on one executor resumes on the other. ``local`` (the default) runs each model's
    cells in a worker process on this machine; ``ray`` runs them as tasks on a Ray cluster
    (the ``ray`` extra; :mod:`wattprint.sweep.ray_executor`), each node measuring with its
    own sensors and this process writing the store."""

    backend: Literal["local", "ray"] = Field(default="local",
                                             description="local, or ray (wattprint[ray])")
    address: str | None = Field(default=None, min_length=1, description=(
        "the Ray cluster to join (auto, host:port, ray://host:port); default: a Ray instance "
        "started on this machine for the sweep"))
    num_cpus: float = Field(default=1.0, gt=0.0, le=_MAX_TASK_CPUS,
                            description="CPUs each Ray task asks for")
    num_gpus: float = Field(default=0.0, ge=0.0, le=_MAX_TASK_GPUS,
                            description="GPUs each Ray task asks for: 1 for GPU cells")

    @model_validator(mode="after")
    def _address_is_ray(self) -> ExecutionConfig:
        if self.backend == "local" and self.address is not None:
            raise _problem("only with backend: ray (the local backend joins no cluster)",
                           "address")
        return self


class BenchConfig(_Section):
    """A whole benchmark: models x datasets, how to measure, where, and where results go."""

    project: str = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    datasets: list[DatasetConfig] = Field(min_length=1)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    location: LocationConfig = Field(default_factory=LocationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    allow_network: bool = Field(default=False, description="fetch hub models and datasets "
                                "missing from the local Hugging Face cache")
    enable_quantization_analysis: bool = Field(default=False,
                                               description="as monitoring's (ML-EcoLyzer)")
    enable_wandb: bool = Field(default=False, description="accepted, not used")

    @model_validator(mode="before")
    @classmethod
    def _ecolyzer_top_level(cls, data: Any) -> Any:
        """ML-EcoLyzer's top-level ``enable_quantization_analysis`` is monitoring's."""
        if isinstance(data, Mapping) and data.get("enable_quantization_analysis") is True:
            monitoring = data.get("monitoring")
            if monitoring is None or isinstance(monitoring, Mapping):
                return {**data, "enable_quantization_analysis": False,
                        "monitoring": {**(monitoring or {}),
                                       "enable_quantization_analysis": True}}
        return data

    def to_site(self) -> Site:
        """Where the sweep's energy is used: the location section, with the tier that a
        kind-of-site ``hardware.device_profile`` sets when the location names none."""
        site = self.location.to_site()
        tier = self.hardware.tier
        if tier is None or site.tier is not None:
            return site
        return site.replace(tier=tier)

    @field_validator("models", "datasets")
    @classmethod
    def _unique_names(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        problems = _duplicates(info.field_name or "", [item.name for item in value])
        if problems:
            raise _problem(problems[0][1], problems[0][0])
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return self.model_dump(mode="json")


def _duplicates(section: str, names: Sequence[Any]) -> list[tuple[str, str]]:
    """``(field suffix, message)`` for each name that repeats an earlier one."""
    first: dict[Any, int] = {}
    out = []
    for i, name in enumerate(names):
        try:
            earlier = first.setdefault(name, i)
        except TypeError:  # an unhashable name is reported as a wrong type
            continue
        if earlier != i:
            out.append((f"[{i}].name", f"duplicate name {name!r} (also {section}[{earlier}]); "
                                       "names must be unique"))
    return out


def _close(value: str, choices: Sequence[str] | Mapping[str, Any]) -> str:
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


# -- loading ------------------------------------------------------------------------------------

def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | BenchConfig, *,
                output: Mapping[str, Any] | None = None) -> BenchConfig:
    """The validated config of a YAML file, or of a dict of the same shape.

    Relative model paths and dataset files resolve against the YAML file's folder (the
    working directory for a dict). A YAML file's ``output.output_dir`` and ``output.db`` must
    lie below the working directory or the file's folder (a config may come from anyone);
    ``output`` replaces keys of the ``output`` section with the caller's own, which may lie
    anywhere (``--db``, ``--output-dir``). Any problem raises
    :class:`~wattprint.errors.ConfigError` listing each, as ``<field path>: <what is
    wrong>``; a YAML syntax error names the file and line.
    """
    given = {k: v for k, v in (output or {}).items() if v is not None}
    if isinstance(source, BenchConfig):
        if not given:
            return source
        data = source.model_dump()
        data["output"] = {**data["output"], **given}
        return BenchConfig.model_validate(data, context={"allow_network": source.allow_network})
    if isinstance(source, Mapping):
        return _validate(_with_settings(_with_output(source, given)), Path.cwd(), None, given)
    path = Path(source)
    return _validate(_with_settings(_with_output(_read_yaml(path), given)),
                     Path(os.path.abspath(path)).parent, path, given)


def _with_settings(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The config, with the settings (``WATTPRINT_*``, ``wattprint.toml``, ``[tool.wattprint]``;
    see :mod:`wattprint.settings`) where it is silent: each site setting that its
    ``location`` leaves out (the grid as one: a location naming any of country, zone,
    cloud_region or carbon_intensity_g_per_kwh takes none of them from the settings; the tier
    not where ``hardware.device_profile`` may set one), and ``monitoring.frequency_hz`` from a
    ``sample_hz`` setting. What the config says wins; what the settings add is part of the
    sweep's identity (:func:`config_hash`), as if the config had said it."""
    from ..settings import DEFAULT, LOCATION_KEYS, SITE_KEYS, load_settings

    location, monitoring, hardware = (data.get(k) for k in ("location", "monitoring",
                                                              "hardware"))
    if not all(s is None or isinstance(s, Mapping) for s in (location, monitoring, hardware)):
        return data  # validation says what is wrong with the section
    settings = load_settings()
    skip = set(LOCATION_KEYS) if any((location or {}).get(k) is not None
                                     for k in LOCATION_KEYS) else set()
    if (hardware or {}).get("device_profile") is not None:
        skip.add("tier")
    added = {key: getattr(settings, key) for key in SITE_KEYS
             if key not in skip and (location or {}).get(key) is None
             and settings.origin(key) != DEFAULT}
    result = dict(data)
    if added:
        result["location"] = {**(location or {}), **added}
    if (monitoring or {}).get("frequency_hz") is None and settings.origin("sample_hz") != DEFAULT:
        result["monitoring"] = {**(monitoring or {}), "frequency_hz": settings.sample_hz}
    return result


def _with_output(data: Mapping[str, Any], given: Mapping[str, Any]) -> Mapping[str, Any]:
    if not given:
        return data
    section = data.get("output")
    return {**data, "output": {**(section if isinstance(section, Mapping) else {}), **given}}


def _validate(data: Mapping[str, Any], base: Path, where: Path | None,
              given: Mapping[str, Any] | None = None) -> BenchConfig:
    context = {"base_dir": base, "from_file": where is not None, "given": frozenset(given or ()),
               "allow_network": data.get("allow_network") is True}
    try:
        return BenchConfig.model_validate(data, context=context)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors(include_url=False)]
    for section in ("models", "datasets"):  # also reported while other fields are wrong
        items = data.get(section)
        if isinstance(items, list):
            names = [item.get("name") for item in items if isinstance(item, Mapping)]
            if len(names) == len(items):
                lines += [f"{section}{suffix}: {message}"
                          for suffix, message in _duplicates(section, names)]
    lines = list(dict.fromkeys(lines))
    head = "invalid config" + (f" {where}" if where is not None else "")
    count = f"{len(lines)} problem" + ("s" if len(lines) != 1 else "")
    # Not chained: pydantic's own text would only repeat these lines, less clearly.
    raise ConfigError(f"{head} ({count}):\n" + "\n".join(f"  {line}" for line in lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML where a key given twice in one mapping is an error, not a silent overwrite."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            repeated = key in seen
            seen.add(key)
        except TypeError:
            continue  # an unhashable key: the constructor below reports it
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such config file") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from err
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error(path, err)) from err
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config needs project, models and "
                          "datasets")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (project, models, datasets, "
                          f"...) at the top level, not {_kind(data)}")
    return data


def _yaml_error(path: Path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or ["?"])[0]
    context = getattr(err, "context", None)
    where = (f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None
             else str(path))
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")


# -- pydantic's errors, in our words ------------------------------------------------------------

def _describe(error: Mapping[str, Any]) -> str:
    """``<field path>: <what is wrong>`` for one of pydantic's errors."""
    loc = tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    kind, value = error["type"], error.get("input")
    path = _path(loc)
    if kind == "wattprint":
        suffix = ctx.get("field") or ""
        if suffix:
            path = f"{path}{suffix}" if suffix.startswith("[") else (
                f"{path}.{suffix}" if path else suffix)
        return f"{path or 'config'}: {ctx['message']}"
    return f"{path or 'config'}: {_what(kind, value, ctx, loc, error)}"


def _what(kind: str, value: Any, ctx: Mapping[str, Any], loc: tuple[Any, ...],
          error: Mapping[str, Any]) -> str:
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        keys = list(section.model_fields) if (section := _section_at(loc[:-1])) else []
        return f"unknown key (allowed: {', '.join(keys) or 'none'})" + _close(str(loc[-1]), keys)
    if kind == "literal_error":
        allowed = _literals(_annotation_at(loc))
        return f"{_show(value)} is not allowed (allowed: {', '.join(map(str, allowed))})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        section = _section_at(loc)
        of = f" of keys ({', '.join(section.model_fields)})" if section is not None else ""
        return f"expected a mapping{of}, got {_show(value)}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}, got {_show(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    expected = {
        "int": "a whole number", "float": "a number", "bool": "true or false",
        "string": "a string", "list": "a list", "path": "a path (a string)",
        "finite_number": "a finite number",
    }
    for prefix, what in expected.items():
        if kind == prefix or kind.startswith(prefix + "_"):
            return f"expected {what}, got {_show(value)}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = str(error.get("msg", kind))
    return message[:1].lower() + message[1:]


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def _annotation_at(loc: tuple[Any, ...]) -> Any:
    """The type annotation of the field at ``loc`` (list indices skipped), or None."""
    section: type[BaseModel] | None = BenchConfig
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            continue
        if section is None:
            return None
        field = section.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        section = _section_in(annotation)
    return annotation


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section (a model class) at ``loc``."""
    return BenchConfig if not loc else _section_in(_annotation_at(loc))


def _section_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_in(arg)
        if found is not None:
            return found
    return None


def _literals(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in _literals(arg)]


# -- schema and hash ----------------------------------------------------------------------------

def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config, for editors and validators."""
    schema = BenchConfig.model_json_schema()
    schema = {"$schema": _SCHEMA_DIALECT, **schema}
    schema["title"] = "wattprint benchmark config"
    return schema


#: Keys added since the first release, by section, with their defaults: a config that leaves
#: them at the default keeps the sweep id it had.
_ADDED_KEYS: dict[str, dict[str, Any]] = {
    "models": {"model_type": None, "max_length": None},
    "datasets": {"config": None, "subset": None, "text_field": None, "label_field": None,
                 "label_key": None, "fallback_splits": []},
    "monitoring": {"enable_quantization_analysis": False},
    "hardware": {"precision": "auto"},
}


def config_hash(config: BenchConfig) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``config`` without ``output``,
    ``execution`` and ``monitoring.cell_timeout_s``.

    Equal configs hash equal whatever their key order, and whether defaults were written out;
    changing where results go, where cells run, or how long a cell may take, does not change
    it (a sweep stopped by a time limit resumes with a longer one, a local one on Ray). Keys
    added since the first release hash only when set, so a config that does not use them keeps
    its sweep id; keys that do not change what is measured (``allow_network``,
    ``enable_wandb``, ...) never hash.
    """
    data = config.model_dump(mode="json", exclude={
        "output": True, "execution": True, "allow_network": True, "enable_wandb": True,
        "enable_quantization_analysis": True, "hardware": {"memory_optimization"},
        "monitoring": {"cell_timeout_s", "duration_seconds", "enable_wandb", "wandb_project"}})
    for section, defaults in _ADDED_KEYS.items():  # hashed only when set
        for part in data[section] if isinstance(data[section], list) else [data[section]]:
            for key, default in defaults.items():
                if part.get(key) == default:
                    part.pop(key, None)
    location = data["location"]
    for key in ("tier", "water_intensity_l_per_kwh"):
        if location.get(key) is None:
            location.pop(key, None)
    if location.get("pue") is None and "tier" not in location:
        location["pue"] = DEFAULT_PUE  # what an unset PUE meant, and was written as, before
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
