"""The benchmark config: YAML and dicts in, one validated object out, every problem named.

Config files and model files are written for real under ``tmp_path``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wattprint.sweep
from wattprint.errors import ConfigError
from wattprint.footprint import DEFAULT_PUE
from wattprint.sensors.hardware import PROFILES
from wattprint.sweep.config import (
    BenchConfig,
    config_hash,
    config_schema,
    load_config,
)
from wattprint.workloads.datasets import BUILTIN_DATASETS, TASKS


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "classifier.onnx"
    path.parent.mkdir()
    path.write_bytes(b"stand-in: the config only checks that the file exists")
    return path


def _config(model_file: Path) -> dict[str, Any]:
    return {
        "project": "digits-sweep",
        "models": [
            {"name": "cnn", "source": "torch:SmallCNN", "task": "classification",
             "export": "onnx", "epochs": 3,
             "quantization": {"enabled": True, "method": "dynamic"},
             "pruning": {"enabled": True, "method": "l1_unstructured", "amount": 0.5}},
            {"name": "saved", "path": str(model_file), "options": {"input_shape": [1, 8, 8]}},
        ],
        "datasets": [{"name": "digits", "limit": 200, "split": "test"}],
        "monitoring": {"repetitions": 2, "warmup": 2, "batch_size": 16},
        "hardware": {"device_profile": "auto"},
        "location": {"country": "FR", "pue": 1.2},
        "output": {"export_formats": ["json"], "output_dir": "out", "db": "w.db"},
    }


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _problems(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    """The problem lines of a ConfigError, without the heading."""
    return [line.strip() for line in str(err.value).splitlines()[1:]]


# -- valid configs ------------------------------------------------------------------------------

def test_yaml_file_loads_with_defaults(tmp_path: Path, model_file: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = _config(model_file)
    data["models"][1]["path"] = "models/classifier.onnx"  # relative to the YAML's folder
    data["models"][0]["quantization"] = {"enabled": True, "method": "fp16"}
    data["hardware"]["device_profile"] = "t4"
    path = _write_yaml(tmp_path / "sweep.yaml", data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)

    assert isinstance(config, BenchConfig)
    assert config.project == "digits-sweep"
    cnn, saved = config.models
    assert saved.path == model_file and saved.path.is_absolute()
    assert saved.options == {"input_shape": [1, 8, 8]} and saved.trust is False
    assert (cnn.source, cnn.export, cnn.epochs) == ("torch:SmallCNN", "onnx", 3)
    assert (cnn.quantization.method, cnn.quantization.target_dtype) == ("fp16", "fp16")
    assert saved.quantization.enabled is False and saved.pruning.enabled is False
    (dataset,) = config.datasets
    assert (dataset.name, dataset.task, dataset.limit, dataset.split, dataset.seed,
            dataset.test_size) == ("digits", None, 200, "test", 0, 0.25)
    assert config.monitoring.frequency_hz == 20.0
    assert config.monitoring.idle_baseline_s == 0.0 and config.monitoring.num_samples is None
    assert config.hardware.device_profile == "T4"  # spelled as the profile is
    assert (config.location.country, config.location.pue) == ("FR", 1.2)
    assert config.location.wue_l_per_kwh is None
    assert config.output.export_formats == ["json"] and config.output.db == Path("w.db")


def test_defaults_of_the_optional_sections(model_file: Path) -> None:
    config = load_config({"project": "p", "models": [{"name": "m", "path": str(model_file)}],
                          "datasets": [{"name": "iris"}]})
    assert config.monitoring.model_dump() == {
        "frequency_hz": 20.0, "repetitions": 1, "warmup": 10, "idle_baseline_s": 0.0,
        "batch_size": 1, "num_samples": None, "cell_timeout_s": 1800.0,
        "enable_quantization_analysis": False, "duration_seconds": None, "enable_wandb": False,
        "wandb_project": None}
    assert config.hardware.device_profile == "auto"
    assert config.location.model_dump() == {
        "country": None, "zone": None, "cloud_region": None, "carbon_intensity_g_per_kwh": None,
        "pue": None, "wue_l_per_kwh": None, "tier": None, "water_intensity_l_per_kwh": None}
    assert config.location.to_site().resolve().pue == DEFAULT_PUE
    assert config.output.export_formats == ["json", "csv"]
    assert (config.output.output_dir, config.output.db) == (Path("results"), Path("wattprint.db"))
    assert config.models[0].quantization.target_dtype == "int8"


def test_dict_paths_resolve_against_the_working_directory(
        tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.csv").write_text("a,b,target\n1,2,0\n3,4,1\n")
    monkeypatch.chdir(tmp_path)
    config = load_config({"project": "p",
                          "models": [{"name": "m", "path": "models/classifier.onnx"}],
                          "datasets": [{"name": "data.csv"}, {"name": "wine"}]})
    assert config.models[0].path == model_file
    assert config.datasets[0].name == str(tmp_path / "data.csv")
    assert config.datasets[1].name == "wine"


def test_dataset_files_resolve_against_the_yaml_folder(tmp_path: Path, model_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sweeps"
    (folder / "images" / "cat").mkdir(parents=True)
    data = _config(model_file)
    data["datasets"] = [{"name": "images", "task": "image-classification"}]
    path = _write_yaml(folder / "sweep.yaml", data)
    monkeypatch.chdir(tmp_path)
    assert load_config(path).datasets[0].name == str(folder / "images")


@pytest.mark.parametrize("location", [
    {"country": "DEU"}, {"zone": "US-CAL-CISO"}, {"cloud_region": "aws:us-east-1"},
    {"carbon_intensity_g_per_kwh": 0.0, "wue_l_per_kwh": 1.8}, {},
])
def test_each_kind_of_location(model_file: Path, location: dict[str, Any]) -> None:
    data = _config(model_file)
    data["location"] = location
    config = load_config(data)
    assert config.location.model_dump(exclude_defaults=True) == location


def test_a_validated_config_passes_through(model_file: Path) -> None:
    config = load_config(_config(model_file))
    assert load_config(config) is config


def test_to_dict_is_json_ready_and_loads_back(model_file: Path) -> None:
    config = load_config(_config(model_file))
    data = json.loads(json.dumps(config.to_dict()))
    assert data["models"][1]["path"] == str(model_file)
    assert data["output"]["db"] == "w.db"
    again = load_config(data)
    assert again == config and config_hash(again) == config_hash(config)


# -- invalid configs: one ConfigError, each problem at its field ------------------------------

Change = Callable[[dict[str, Any]], Any]

INVALID: list[tuple[str, Change, str]] = [
    ("unknown top-level key", lambda c: c.update(colour="red"),
     "colour: unknown key (allowed: project, models, datasets, monitoring, hardware, "
     "location, output, execution, allow_network, enable_quantization_analysis, "
     "enable_wandb)"),
    ("unknown key in a model", lambda c: c["models"][0].update(colour="red"),
     "models[0].colour: unknown key (allowed: name, path, source, hf, task, export, epochs,"),
    ("unknown key nested two deep", lambda c: c["models"][0]["quantization"].update(bits=4),
     "models[0].quantization.bits: unknown key (allowed: enabled, method, target_dtype)"),
    ("misspelt monitoring key", lambda c: c["monitoring"].update(frequncy_hz=5),
     "monitoring.frequncy_hz: unknown key (allowed: frequency_hz, repetitions, warmup, "
     "idle_baseline_s, batch_size, num_samples, cell_timeout_s, "
     "enable_quantization_analysis, duration_seconds, enable_wandb, wandb_project); did you "
     "mean 'frequency_hz'?"),
    ("wrong type", lambda c: c["monitoring"].update(repetitions="many"),
     "monitoring.repetitions: expected a whole number, got 'many'"),
    ("wrong type of a section", lambda c: c.update(monitoring=[1, 2]),
     "monitoring: expected a mapping of keys (frequency_hz, repetitions,"),
    ("out of range", lambda c: c["monitoring"].update(frequency_hz=0),
     "monitoring.frequency_hz: must be > 0.0, got 0"),
    ("missing required key", lambda c: c.pop("project"), "project: required, but missing"),
    ("no models", lambda c: c.update(models=[]), "models: must not be empty"),
    ("missing model file", lambda c: c["models"].append({"name": "m", "path": "missing.onnx"}),
     "models[2].path: no such model file or folder 'missing.onnx'"),
    ("unknown recipe", lambda c: c["models"][0].update(source="torch:BigCNN"),
     "models[0].source: unknown recipe 'torch:BigCNN' (allowed: sklearn:LogisticRegression,"),
    ("no origin: a hub id not in the cache", lambda c: c["models"].append({"name": "m"}),
     "models[2].name: 'm' is a Hugging Face hub model that is not in the local cache ("),
    ("two origins", lambda c: c["models"][0].update(hf="org/model"),
     "models[0]: give exactly one of path, source, hf (got source, hf)"),
    ("epochs of a loaded model", lambda c: c["models"][1].update(epochs=3),
     "models[1].epochs: only a recipe (source) is trained"),
    ("recipe for the wrong task", lambda c: c["models"][0].update(task="regression"),
     "models[0].task: recipe 'torch:SmallCNN' does not serve task 'regression' "
     "(allowed: classification, image-classification)"),
    ("option a recipe does not take", lambda c: c["models"][0].update(options={"depth": 3}),
     "models[0].options: unknown option(s) 'depth' for recipe 'torch:SmallCNN' "
     "(allowed: batch_size, device, lr, threads)"),
    ("threads that are not a count", lambda c: c["models"][0].update(options={"threads": "two"}),
     "models[0].options.threads: threads must be a whole number of threads from 1 to 1024 (0 "
     "for onnxruntime's own choice), not 'two'"),
    ("threads of yes", lambda c: c["models"][0].update(options={"threads": True}),
     "models[0].options.threads: threads must be a whole number of threads from 1 to 1024"),
    ("threads of a fraction", lambda c: c["models"][1]["options"].update(threads=1.5),
     "models[1].options.threads: threads must be a whole number of threads from 1 to 1024"),
    ("threads below none", lambda c: c["models"][1]["options"].update(threads=-1),
     "models[1].options.threads: threads must be a whole number"),
    ("no threads for torch", lambda c: c["models"][0].update(options={"threads": 0}),
     "models[0].options.threads: threads 0 is onnxruntime's own choice; a torch model runs on "
     "torch's threads, which must be at least 1"),
    ("no threads for a scikit-learn recipe", lambda c: c["models"][0].update(
        source="sklearn:SVC", export=None, quantization={}, pruning={}, options={"threads": 0}),
     "models[0].options.threads: threads 0 is onnxruntime's own choice; a sklearn model runs "
     "on the threads of its BLAS and OpenMP pools, which must be at least 1"),
    ("an option of a scikit-learn recipe", lambda c: c["models"][0].update(
        source="sklearn:SVC", export=None, quantization={}, pruning={}, options={"lr": 0.1}),
     "models[0].options: unknown option(s) 'lr' for recipe 'sklearn:SVC' "
     "(allowed: threads)"),
    ("export of a scikit-learn recipe", lambda c: c["models"][0].update(
        source="sklearn:SVC", quantization={}, pruning={}),
     "models[0].export: recipe 'sklearn:SVC' is a sklearn model; ONNX export takes torch "
     "models"),
    ("quantization of a scikit-learn recipe", lambda c: c["models"][0].update(
        source="sklearn:SVC", export=None, pruning={}),
     "models[0].quantization.method: 'dynamic' does not quantize sklearn models "
     "(allowed: none)"),
    ("pruning of a scikit-learn recipe", lambda c: c["models"][0].update(
        source="sklearn:SVC", export=None, quantization={}),
     "models[0].pruning.enabled: recipe 'sklearn:SVC' is a sklearn model; pruning takes "
     "torch, transformers models"),
    ("a method the ONNX export cannot take", lambda c: c["models"][0]["quantization"].update(
        method="bf16"),
     "models[0].quantization.method: 'bf16' does not quantize onnx models (allowed: dynamic, "
     "static, fp16)"),
    ("unknown export", lambda c: c["models"][0].update(export="tflite"),
     "models[0].export: 'tflite' is not allowed (allowed: onnx)"),
    ("bad quantization method", lambda c: c["models"][1].update(
        quantization={"enabled": True, "method": "foo"}),
     "models[1].quantization.method: 'foo' is not allowed (allowed: dynamic, static, fp16, "
     "bf16, int8-weight-only)"),
    ("method and target dtype disagree", lambda c: c["models"][0]["quantization"].update(
        target_dtype="bf16"),
     "models[0].quantization.target_dtype: 'bf16' does not fit method 'dynamic' "
     "(allowed: int8)"),
    ("bad pruning method", lambda c: c["models"][0]["pruning"].update(method="random"),
     "models[0].pruning.method: 'random' is not allowed (allowed: l1_unstructured, "
     "ln_structured)"),
    ("pruning everything", lambda c: c["models"][0]["pruning"].update(amount=1.0),
     "models[0].pruning.amount: must be < 1.0, got 1.0"),
    ("duplicate model names", lambda c: c["models"][1].update(name="cnn"),
     "models[1].name: duplicate name 'cnn' (also models[0]); names must be unique"),
    ("unknown dataset", lambda c: c["datasets"].insert(0, {"name": "digitz"}),
     "datasets[0].name: 'digitz' is no built-in dataset (digits, iris, wine, breast_cancer, "
     "diabetes; did you mean 'digits'?), no file or folder here, and no Hugging Face dataset "
     "in the local cache ("),
    ("a file that is not there", lambda c: c["datasets"].insert(0, {"name": "data/x.csv"}),
     "datasets[0].name: unknown dataset 'data/x.csv' (built-in: digits, iris, wine, "),
    ("duplicate dataset names", lambda c: c["datasets"].append({"name": "digits"}),
     "datasets[1].name: duplicate name 'digits' (also datasets[0]); names must be unique"),
    ("bad split", lambda c: c["datasets"][0].update(split="validation"),
     "datasets[0].split: 'validation' is not allowed (allowed: train, test, all)"),
    ("bad dataset task", lambda c: c["datasets"][0].update(task="ranking"),
     "datasets[0].task: 'ranking' is not allowed (allowed: classification, regression,"),
    ("test size of one", lambda c: c["datasets"][0].update(test_size=1),
     "datasets[0].test_size: must be < 1.0, got 1"),
    ("two location keys", lambda c: c["location"].update(zone="DE"),
     "location: give at most one of country, zone, cloud_region, carbon_intensity_g_per_kwh "
     "(got country, zone)"),
    ("unknown country", lambda c: c["location"].update(country="XQZ"),
     "location.country: unknown country 'XQZ'"),
    ("unknown zone", lambda c: c.update(location={"zone": "MARS-1"}),
     "location.zone: unknown Electricity Maps zone 'MARS-1'"),
    ("unknown cloud region", lambda c: c.update(location={"cloud_region": "aws:mars-1"}),
     "location.cloud_region: unknown cloud region 'aws:mars-1'"),
    ("pue below one", lambda c: c["location"].update(pue=0.9),
     "location.pue: must be >= 1.0, got 0.9"),
    ("empty hardware name", lambda c: c["hardware"].update(device_profile="  "),
     "hardware.device_profile: the hardware name is empty"),
    ("unknown export format", lambda c: c["output"].update(export_formats=["json", "xml"]),
     "output.export_formats[1]: 'xml' is not allowed (allowed: json, csv, html)"),
]


@pytest.mark.parametrize(("change", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_config_names_the_field(model_file: Path, change: Change, expected: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(model_file.parent)  # where relative paths are looked for
    data = _config(model_file)
    load_config(copy.deepcopy(data))  # valid before the change
    change(data)
    with pytest.raises(ConfigError) as err:
        load_config(data)
    problems = _problems(err)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]
    text = str(err.value)
    assert "validation error" not in text and "pydantic" not in text.lower()
    assert "Input should" not in text and err.value.__cause__ is None


def test_every_problem_is_listed_in_one_error(model_file: Path) -> None:
    data = _config(model_file)
    data["models"][0]["quantization"]["method"] = "foo"
    data["models"][1]["name"] = "cnn"
    data["datasets"][0]["name"] = "digitz"
    data["monitoring"]["frequncy_hz"] = 3
    data["location"]["country"] = "XQZ"
    with pytest.raises(ConfigError) as err:
        load_config(data)
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid config (5 problems):"
    fields = sorted(line.strip().split(":")[0] for line in lines[1:])
    assert fields == ["datasets[0].name", "location.country", "models[0].quantization.method",
                      "models[1].name", "monitoring.frequncy_hz"]


def test_a_yaml_config_error_names_the_file(tmp_path: Path, model_file: Path) -> None:
    data = _config(model_file)
    data["models"][0]["quantization"]["method"] = "foo"
    path = _write_yaml(tmp_path / "sweep.yaml", data)
    with pytest.raises(ConfigError, match=r"^invalid config .*sweep\.yaml \(1 problem\):"):
        load_config(path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("project: p\nmodels:\n  - name: a\n   source: sklearn:SVC\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}, line 4, column 4: invalid YAML:")


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("project: p\nmodels: []\nproject: q\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: invalid YAML: duplicate key "
                                          r"'project'"):
        load_config(path)


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no such config file"),
    ("", "the file is empty"),
    ("- a\n- b\n", "expected a mapping of keys (project, models, datasets, ...) at the top "
                   "level, not a list"),
])
def test_unreadable_config_files(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "sweep.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {expected}")


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_config(tmp_path)


# -- schema and hash ----------------------------------------------------------------------------

def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(schema, option)
    return node


def test_schema_describes_the_config() -> None:
    schema = config_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"project", "models", "datasets", "monitoring",
                                         "hardware", "location", "output", "execution",
                                         "allow_network", "enable_quantization_analysis",
                                         "enable_wandb"}
    assert set(schema["required"]) == {"project", "models", "datasets"}
    for ref in _refs(schema):  # every reference resolves
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]
    for definition in schema["$defs"].values():
        assert definition["type"] == "object" and definition["additionalProperties"] is False
    models = schema["properties"]["models"]
    assert models["type"] == "array" and models["minItems"] == 1
    model = _resolve(schema, models["items"])
    assert model["required"] == ["name"]
    quantization = _resolve(schema, model["properties"]["quantization"])
    assert quantization["properties"]["method"]["enum"] == ["dynamic", "static", "fp16", "bf16",
                                                            "int8-weight-only"]
    dataset = _resolve(schema, schema["properties"]["datasets"]["items"])
    assert _resolve(schema, dataset["properties"]["task"])["enum"] == list(TASKS)
    monitoring = _resolve(schema, schema["properties"]["monitoring"])
    assert monitoring["properties"]["frequency_hz"]["default"] == 20.0
    assert monitoring["properties"]["frequency_hz"]["exclusiveMinimum"] == 0.0


def _reversed_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _reversed_keys(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [_reversed_keys(v) for v in node]
    return node


def test_hash_ignores_key_order_defaults_and_output(model_file: Path) -> None:
    data = _config(model_file)
    reference = config_hash(load_config(data))
    assert len(reference) == 16 and int(reference, 16) >= 0
    assert config_hash(load_config(_reversed_keys(data))) == reference
    explicit = copy.deepcopy(data)
    explicit["monitoring"].update(frequency_hz=20.0, idle_baseline_s=0.0, num_samples=None)
    explicit["datasets"][0].update(seed=0, test_size=0.25)
    assert config_hash(load_config(explicit)) == reference
    moved = copy.deepcopy(data)
    moved["output"] = {"db": "elsewhere.db", "output_dir": "other", "export_formats": []}
    assert config_hash(load_config(moved)) == reference


def test_hash_follows_what_is_measured(model_file: Path) -> None:
    data = _config(model_file)
    reference = config_hash(load_config(data))
    changes: list[Change] = [
        lambda c: c["monitoring"].update(repetitions=3),
        lambda c: c["datasets"][0].update(limit=100),
        lambda c: c["models"][0]["quantization"].update(enabled=False),
        lambda c: c["location"].update(country="DE"),
        lambda c: c["models"].reverse(),
    ]
    hashes = set()
    for change in changes:
        changed = copy.deepcopy(data)
        change(changed)
        hashes.add(config_hash(load_config(changed)))
    assert reference not in hashes and len(hashes) == len(changes)


def test_yaml_and_dict_give_the_same_config(tmp_path: Path, model_file: Path) -> None:
    data = _config(model_file)
    from_yaml = load_config(_write_yaml(tmp_path / "sweep.yaml", data))
    assert from_yaml == load_config(data)
    assert config_hash(from_yaml) == config_hash(load_config(data))


# -- the package --------------------------------------------------------------------------------

def test_literals_follow_the_workloads() -> None:
    data: dict[str, Any] = {"project": "p", "models": [{"name": "m", "source": "sklearn:SVC"}],
            "datasets": [{"name": name} for name in BUILTIN_DATASETS]}
    assert [d.name for d in load_config(data).datasets] == list(BUILTIN_DATASETS)
    for profile in PROFILES.values():
        data["hardware"] = {"device_profile": profile.name.lower()}
        assert load_config(data).hardware.device_profile == profile.name


def test_bench_exports_resolve() -> None:
    for name in wattprint.sweep.__all__:
        assert getattr(wattprint.sweep, name) is not None
    with pytest.raises(AttributeError, match="nonsense"):
        getattr(wattprint.sweep, "nonsense")  # noqa: B009


def test_importing_bench_and_recipes_is_light() -> None:
    code = (
        "import sys, wattprint.sweep\n"
        "first = [m for m in ('pydantic', 'yaml') if m in sys.modules]\n"
        "import wattprint.sweep.recipes\n"
        "heavy = ['torch', 'sklearn', 'pydantic', 'yaml']\n"
        "print(' '.join(first + [m for m in heavy if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_a_torch_file_s_threads_must_be_at_least_one(tmp_path: Path, model_file: Path) -> None:
    """A model loaded from a torch file runs on torch's threads: ``threads: 0`` (onnxruntime's
    own choice) is refused beside its other problems, and 2 loads; an ONNX file takes 0."""
    torch = pytest.importorskip("torch")
    torch.save({"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, tmp_path / "lin.pt")
    data = _config(model_file)
    data["models"][1]["options"]["threads"] = 0  # the ONNX file's: onnxruntime's choice
    data["models"].append({"name": "lin", "path": str(tmp_path / "lin.pt"),
                           "options": {"model_class": "torch.nn:Linear", "threads": 0, "depth": 3,
                                       "model_kwargs": {"in_features": 4, "out_features": 2}}})
    with pytest.raises(ConfigError) as err:
        load_config(data)
    threads, depth = _problems(err)
    assert threads == ("models[2].options.threads: threads 0 is onnxruntime's own choice; a torch "
                       "model runs on torch's threads, which must be at least 1")
    assert depth.startswith("models[2].options: unknown option(s) 'depth' for a PyTorch model "
                            "(allowed: "), depth
    assert depth.endswith(", threads)"), depth
    del data["models"][2]["options"]["depth"]
    data["models"][2]["options"]["threads"] = 2
    assert load_config(data).models[2].options["threads"] == 2


@pytest.mark.parametrize(("kind", "runs_on"), [
    ("keras", "a keras model runs on its backend's threads"),
    ("tensorflow", "a tensorflow model runs on TensorFlow's intra-op threads")])
def test_a_keras_or_tensorflow_model_s_threads_are_a_count_of_at_least_one(
        tmp_path: Path, kind: str, runs_on: str) -> None:
    """A Keras file or a TensorFlow SavedModel runs on TensorFlow's threads (or its Keras
    backend's), which the sweep sets: ``threads: 2`` loads, ``threads: 0`` is refused. The
    files are only named here: nothing is loaded before the sweep runs (a SavedModel holds
    code: trusted here)."""
    path = tmp_path / "m.keras"
    path.write_bytes(b"")
    if kind == "tensorflow":
        path = tmp_path / "saved"
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"")
    data = {"project": "p", "models": [{"name": "m", "path": str(path), "trust": True,
                                        "task": "classification", "options": {"threads": 2}}],
            "datasets": [{"name": "digits", "task": "classification"}]}
    assert load_config(data).models[0].options["threads"] == 2
    data["models"][0]["options"]["threads"] = 0
    with pytest.raises(ConfigError) as err:
        load_config(data)
    assert _problems(err) == [f"models[0].options.threads: threads 0 is onnxruntime's own "
                              f"choice; {runs_on}, which must be at least 1"]
