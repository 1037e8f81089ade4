"""A bad config is refused before anything runs: bounds, loader options, tasks, variants that
do not fit the model's format, and output places that cannot be written.

Model files are stand-ins written under ``tmp_path``: the checks go by suffix and folder
shape, as the loaders are chosen, and open no file. Sweeps that do run use a real recipe, a
real store and a :class:`FakeSensor`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import wattprint
from wattprint import FakeSensor
from wattprint.errors import ConfigError
from wattprint.meter import EnergyMeter
from wattprint.sweep.config import config_schema

WATTPRINT = [sys.executable, "-m", "wattprint"]
HUGE = 10**23


def _config(tmp_path: Path, *models: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {
        "project": "prechecks",
        "models": list(models) or [{"name": "logreg", "source": "sklearn:LogisticRegression"}],
        "datasets": [{"name": "iris"}],
        "monitoring": {"warmup": 0},
        "output": {"export_formats": ["json"], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
        **sections,
    }


def _problems(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [line.strip() for line in str(err.value).splitlines()[1:]]


def _meter() -> EnergyMeter:
    return EnergyMeter(sensors=[FakeSensor(power_w=5.0)])


def _cli(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([*WATTPRINT, "run", str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def _refused_by_the_cli(proc: subprocess.CompletedProcess[str], field: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert field in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("error:") == 1, proc.stderr


# -- upper bounds -------------------------------------------------------------------------------

BOUNDED = [
    ("monitoring", "repetitions"),
    ("monitoring", "warmup"),
    ("monitoring", "batch_size"),
    ("monitoring", "num_samples"),
    ("monitoring", "frequency_hz"),
    ("monitoring", "idle_baseline_s"),
    ("datasets", "limit"),
    ("datasets", "seed"),
    ("models", "epochs"),
    ("location", "pue"),
    ("location", "wue_l_per_kwh"),
    ("location", "carbon_intensity_g_per_kwh"),
]


def _maximum(section: str, field: str) -> Any:
    schema = config_schema()
    names = {"monitoring": "MonitoringConfig", "datasets": "DatasetConfig",
             "models": "ModelConfig", "location": "LocationConfig"}
    node = schema["$defs"][names[section]]["properties"][field]
    bounds = [option["maximum"] for option in node.get("anyOf", [node]) if "maximum" in option]
    assert len(bounds) == 1, node
    return bounds[0]


@pytest.mark.parametrize(("section", "field"), BOUNDED, ids=[f"{s}.{f}" for s, f in BOUNDED])
def test_a_huge_value_is_refused_naming_the_field_and_its_limit(
        tmp_path: Path, section: str, field: str) -> None:
    config = _config(tmp_path)
    if section in ("models", "datasets"):
        config[section][0][field] = HUGE
        where = f"{section}[0].{field}"
    else:
        config[section] = {**config.get(section, {}), field: HUGE}
        where = f"{section}.{field}"
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(config)
    (problem,) = _problems(err)
    assert problem.startswith(f"{where}: must be <= {_maximum(section, field)}, got "), problem
    assert not (tmp_path / "w.db").exists()


@pytest.mark.parametrize(("section", "field"), BOUNDED, ids=[f"{s}.{f}" for s, f in BOUNDED])
def test_the_limit_itself_is_allowed(tmp_path: Path, section: str, field: str) -> None:
    config = _config(tmp_path)
    limit = _maximum(section, field)
    if section in ("models", "datasets"):
        config[section][0][field] = limit
    else:
        config[section] = {**config.get(section, {}), field: limit}
    wattprint.Benchmark(config)


def test_the_schema_shows_every_bound() -> None:
    for section, field in BOUNDED:
        limit = _maximum(section, field)
        assert isinstance(limit, int | float) and 1 <= limit < HUGE


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c["location"].update(pue=HUGE), "location.pue"),
    (lambda c: c["datasets"][0].update(seed=HUGE), "datasets[0].seed"),
], ids=["pue", "seed"])
def test_the_cli_refuses_a_huge_value_before_anything_runs(tmp_path: Path, change: Any,
                                                           field: str) -> None:
    config = _config(tmp_path, location={})
    change(config)
    proc = _cli(tmp_path, config)
    _refused_by_the_cli(proc, field)
    assert "must be <=" in proc.stderr
    assert not (tmp_path / "w.db").exists() and not (tmp_path / "out").exists()


# -- loader options, tasks and variants of model files and hub ids ------------------------------

HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def hub_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub model these tests name, in a local Hugging Face cache of their own (a config
    refuses a hub model that is not in the cache, unless allow_network)."""
    cache = tmp_path_factory.mktemp("hf-hub")
    repo = cache / "models--someone--some-model"
    (repo / "snapshots" / HUB_REVISION).mkdir(parents=True)
    (repo / "snapshots" / HUB_REVISION / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HUB_REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache

def _model_at(tmp_path: Path, kind: str) -> dict[str, Any]:
    """A stand-in of a model of ``kind``, as a config's model entry (trusted: these tests are
    about what the loader takes, not about which formats need trust)."""
    if kind == "hub":
        return {"name": "m", "hf": "someone/some-model", "trust": True}
    if kind == "savedmodel":
        path = tmp_path / "saved"
        path.mkdir(exist_ok=True)
        (path / "saved_model.pb").write_bytes(b"stand-in")
    elif kind == "hf-folder":
        path = tmp_path / "bert"
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text("{}")
    else:
        path = tmp_path / f"model{kind}"
        path.write_bytes(b"stand-in")
    return {"name": "m", "path": str(path), "trust": True}


UNKNOWN_OPTIONS = [
    (".onnx", {"threads": 2, "colour": "red"}, "'colour' for an ONNX model"),
    (".pt", {"input_shape": [4], "providers": ["CPUExecutionProvider"]},
     "'providers' for a PyTorch model"),
    (".safetensors", {"model_class": "m:M", "signature": "x"}, "'signature' for a PyTorch model"),
    (".skops", {"device": "cpu"}, "'device' for a scikit-learn model"),
    (".keras", {"input_shape": [4]},
     "'input_shape' for a Keras model (allowed: preprocess, threads)"),
    ("savedmodel", {"max_length": 8}, "'max_length' for a TensorFlow SavedModel"),
    ("hf-folder", {"revision": "main"}, "'revision' for a Hugging Face model folder"),
    ("hub", {"signature": "serving_default"}, "'signature' for a Hugging Face hub model"),
]


@pytest.mark.parametrize(("kind", "options", "expected"), UNKNOWN_OPTIONS,
                         ids=[case[0] for case in UNKNOWN_OPTIONS])
def test_an_option_the_loader_does_not_know_is_refused(tmp_path: Path, kind: str,
                                                       options: dict[str, Any],
                                                       expected: str) -> None:
    model = {**_model_at(tmp_path, kind), "options": options}
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path, model))
    (problem,) = _problems(err)
    assert problem.startswith("models[0].options: unknown option(s) ") and expected in problem


@pytest.mark.parametrize(("kind", "options"), [
    (".onnx", {"threads": 2, "providers": ["CPUExecutionProvider"], "input_shape": [4]}),
    (".pt", {"device": "cpu", "input_shape": [4], "input_dtype": "float32"}),
    (".skops", {"trusted_types": ["x.Y"]}),
    ("savedmodel", {"signature": "serving_default"}),
    ("hf-folder", {"max_length": 8, "max_new_tokens": 4}),
    ("hub", {"revision": "main", "cache_dir": "<the hub cache>", "device": "cpu"}),
])
def test_the_options_each_loader_takes_are_accepted(tmp_path: Path, kind: str,
                                                    options: dict[str, Any],
                                                    hub_cache: Path) -> None:
    if "cache_dir" in options:
        options = {**options, "cache_dir": str(hub_cache)}
    wattprint.Benchmark(_config(tmp_path, {**_model_at(tmp_path, kind), "options": options}))


@pytest.mark.parametrize(("kind", "task", "expected"), [
    (".onnx", "clasification", "unknown task 'clasification' for an ONNX model (allowed: "
                               "classification, regression,"),
    (".skops", "ranking", "unknown task 'ranking' for a scikit-learn model"),
    ("hub", "regression", "unknown task 'regression' for a Hugging Face hub model (allowed: "
                          "text-classification, text-generation, automatic-speech-recognition, "
                          "text2text-generation, image-classification)"),
    ("hf-folder", "code-generation", "for a Hugging Face model folder"),
])
def test_a_task_that_does_not_exist_for_the_model_is_refused(tmp_path: Path, kind: str,
                                                             task: str, expected: str) -> None:
    model = {**_model_at(tmp_path, kind), "task": task}
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path, model))
    (problem,) = _problems(err)
    assert problem.startswith("models[0].task: ") and expected in problem, problem


def test_a_misspelt_task_gets_a_suggestion(tmp_path: Path) -> None:
    model = {**_model_at(tmp_path, ".pt"), "task": "regresion"}
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path, model))
    assert _problems(err)[0].endswith("did you mean 'regression'?")


@pytest.mark.parametrize(("kind", "task"), [
    (".onnx", "classification"), (".pt", "regression"), (".keras", "image-classification"),
    ("hub", "text-generation"), ("hf-folder", "text-classification"),
])
def test_the_tasks_a_model_can_do_are_accepted(tmp_path: Path, kind: str, task: str) -> None:
    wattprint.Benchmark(_config(tmp_path, {**_model_at(tmp_path, kind), "task": task}))


VARIANTS = [
    (".onnx", {"export": "onnx"}, "models[0].export: 'model.onnx' is an onnx model; ONNX export "
                                  "takes torch models"),
    (".onnx", {"pruning": {"enabled": True}}, "models[0].pruning.enabled: 'model.onnx' is an "
                                              "onnx model; pruning takes torch, transformers "
                                              "models"),
    (".onnx", {"quantization": {"enabled": True, "method": "bf16"}},
     "models[0].quantization.method: 'bf16' does not quantize onnx models (allowed: dynamic, "
     "static, fp16)"),
    (".skops", {"quantization": {"enabled": True}},
     "models[0].quantization.method: 'dynamic' does not quantize sklearn models (allowed: "
     "none)"),
    (".joblib", {"export": "onnx"}, "models[0].export: 'model.joblib' is a "
                                                   "sklearn model"),
    (".keras", {"pruning": {"enabled": True}}, "models[0].pruning.enabled: 'model.keras' is a "
                                               "keras model"),
    (".h5", {"quantization": {"enabled": True, "method": "fp16"}},
     "models[0].quantization.method: 'fp16' does not quantize keras models"),
    ("savedmodel", {"export": "onnx"}, "models[0].export: 'saved' is a tensorflow model"),
    ("hf-folder", {"quantization": {"enabled": True, "method": "static"}},
     "models[0].quantization.method: 'static' does not quantize transformers models"),
    ("hub", {"export": "onnx"}, "models[0].export: hub model 'someone/some-model' is a "
                                "transformers model; ONNX export takes torch models"),
    (".pt", {"quantization": {"enabled": True, "method": "static"}},
     "models[0].quantization.method: 'static' does not quantize torch models"),
]


@pytest.mark.parametrize(("kind", "asked", "expected"), VARIANTS,
                         ids=[f"{case[0]}-{next(iter(case[1]))}" for case in VARIANTS])
def test_a_variant_the_model_format_cannot_make_is_refused(tmp_path: Path, kind: str,
                                                           asked: dict[str, Any],
                                                           expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path, {**_model_at(tmp_path, kind), **asked}))
    (problem,) = _problems(err)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize(("kind", "asked"), [
    (".pt", {"export": "onnx", "quantization": {"enabled": True, "method": "static"},
             "pruning": {"enabled": True}}),
    (".pth", {"quantization": {"enabled": True, "method": "bf16"}}),
    (".safetensors", {"pruning": {"enabled": True, "method": "ln_structured"}}),
    (".onnx", {"quantization": {"enabled": True, "method": "static"}}),
    ("hf-folder", {"quantization": {"enabled": True, "method": "dynamic"},
                   "pruning": {"enabled": True}}),
    ("hub", {"quantization": {"enabled": True, "method": "fp16"}}),
])
def test_the_variants_a_format_can_make_are_accepted(tmp_path: Path, kind: str,
                                                     asked: dict[str, Any]) -> None:
    wattprint.Benchmark(_config(tmp_path, {**_model_at(tmp_path, kind), **asked}))


def test_every_problem_of_a_model_is_listed_at_once(tmp_path: Path) -> None:
    model = {**_model_at(tmp_path, ".onnx"), "options": {"colour": "red"}, "task": "ranking",
             "export": "onnx", "pruning": {"enabled": True}}
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path, model, monitoring={"repetitions": HUGE}))
    fields = [line.split(":")[0] for line in _problems(err)]
    assert sorted(fields) == ["models[0].export", "models[0].options", "models[0].pruning.enabled",
                              "models[0].task", "monitoring.repetitions"]


def test_a_format_registered_by_the_user_takes_the_options_of_its_loader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.workloads import registry

    monkeypatch.setitem(registry._SUFFIXES, ".onnx", registry._SUFFIXES[".onnx"])  # restored

    def loader(path: Path, *, task: str | None, trust: bool, **options: Any) -> Any:
        raise wattprint.ModelError("a stand-in loader: never called by the config")

    wattprint.register_format(".onnx", loader)
    model = {**_model_at(tmp_path, ".onnx"), "options": {"scale": 2}, "task": "ranking"}
    wattprint.Benchmark(_config(tmp_path, model))  # its loader, not the config, judges these


def test_the_checks_import_no_framework(tmp_path: Path) -> None:
    models = [{**_model_at(tmp_path, kind), "name": kind}
              for kind in (".onnx", ".pt", ".skops", ".keras", "savedmodel", "hf-folder", "hub")]
    config = _config(tmp_path, *models)
    code = (
        "import json, sys\n"
        "from wattprint.sweep.config import load_config\n"
        f"load_config(json.loads({json.dumps(json.dumps(config))}))\n"
        "heavy = ('torch', 'tensorflow', 'keras', 'onnxruntime', 'onnx', 'sklearn', 'skops',\n"
        "         'transformers', 'pandas')\n"
        "print(json.dumps([name for name in heavy if name in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_cli_refuses_a_misfit_model_before_anything_runs(tmp_path: Path) -> None:
    model = {**_model_at(tmp_path, ".onnx"), "options": {"colour": "red"}}
    proc = _cli(tmp_path, _config(tmp_path, model))
    _refused_by_the_cli(proc, "models[0].options: unknown option(s) 'colour' for an ONNX model")
    assert not (tmp_path / "w.db").exists()


# -- where results go ---------------------------------------------------------------------------

def _outputs(tmp_path: Path, **output: Any) -> dict[str, Any]:
    config = _config(tmp_path)
    config["output"].update({key: str(value) for key, value in output.items()})
    return config


def _refused(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(config).run(meter=_meter(), progress=False)
    return _problems(err)


def test_an_output_dir_that_is_a_file_is_refused_before_the_first_cell(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("a file")
    problems = _refused(_outputs(tmp_path, output_dir=tmp_path / "results"))
    assert len(problems) == 1
    assert problems[0].startswith("output.output_dir: ") and "is a file" in problems[0]
    assert not (tmp_path / "w.db").exists()


def test_an_output_dir_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file")
    problems = _refused(_outputs(tmp_path, output_dir=tmp_path / "plain" / "a" / "results"))
    assert len(problems) == 1 and problems[0].startswith("output.output_dir: cannot create")
    assert not (tmp_path / "w.db").exists()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: one made read-only, or for root (whom file modes
    do not stop) a read-only mount such as ``/proc/sys`` where there is one."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        yield locked
        locked.chmod(0o755)
        return
    for candidate in (Path("/proc/sys"), Path("/sys")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK | os.X_OK):
            yield candidate
            return
    pytest.skip("root writes in any folder here: no read-only mount to try")


@pytest.mark.parametrize("inside", [False, True], ids=["the folder", "a folder to make in it"])
def test_an_output_dir_that_is_not_writable_is_refused(tmp_path: Path, read_only: Path,
                                                       inside: bool) -> None:
    where = read_only / "wattprint-results" if inside else read_only
    problems = _refused(_outputs(tmp_path, output_dir=where))
    assert len(problems) == 1 and "not writable" in problems[0], problems
    assert problems[0].startswith("output.output_dir: ")
    assert not (tmp_path / "w.db").exists()


def test_a_store_in_a_folder_that_is_not_writable_is_refused(tmp_path: Path,
                                                             read_only: Path) -> None:
    problems = _refused(_outputs(tmp_path, db=read_only / "w.db"))
    assert len(problems) == 1 and problems[0].startswith("output.db: cannot write"), problems
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p / "missing" / "w.db", "the folder"),
    (lambda p: (p / "store").mkdir() or p / "store", "is a folder"),
    (lambda p: (p / "file").write_text("x") and p / "file" / "w.db", "is a file"),
    (lambda p: (p / "notes.db").write_text("some notes\n" * 100) and p / "notes.db",
     "not a wattprint"),
], ids=["folder missing", "a folder", "under a file", "not a store"])
def test_a_store_that_cannot_be_opened_is_refused_naming_output_db(
        tmp_path: Path, make: Any, expected: str) -> None:
    db = make(tmp_path)
    problems = _refused(_outputs(tmp_path, db=db))
    assert len(problems) == 1 and problems[0].startswith("output.db: "), problems
    assert expected in problems[0] and str(db) in problems[0]
    assert not (tmp_path / "out").exists()


def test_another_programs_sqlite_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    problems = _refused(_outputs(tmp_path, db=db))
    assert len(problems) == 1 and problems[0].startswith("output.db: ")
    assert "not a wattprint" in problems[0]
    with sqlite3.connect(db) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["notes"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only file")
def test_a_store_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    wattprint.Store(db).close()
    db.chmod(0o444)
    try:
        problems = _refused(_outputs(tmp_path, db=db))
    finally:
        db.chmod(0o644)
    assert len(problems) == 1 and problems[0].startswith("output.db: ")


def test_both_output_problems_are_listed_and_nothing_is_made(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("a file")
    problems = _refused(_outputs(tmp_path, output_dir=tmp_path / "results",
                                 db=tmp_path / "missing" / "w.db"))
    assert [p.split(":")[0] for p in problems] == ["output.output_dir", "output.db"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_a_db_given_to_the_benchmark_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        wattprint.Benchmark(_config(tmp_path), db=tmp_path / "missing" / "w.db").run(
            meter=_meter(), progress=False)
    (problem,) = _problems(err)
    assert problem.startswith("db: ")


def test_good_outputs_are_made_and_used(tmp_path: Path) -> None:
    config = _outputs(tmp_path, output_dir=tmp_path / "deep" / "er" / "out")
    report = wattprint.Benchmark(config).run(meter=_meter(), progress=False)
    assert report["final_report"]["analysis_summary"]["runs_ok"] >= 1
    assert [Path(p).parent for p in report["exports"]] == [tmp_path / "deep" / "er" / "out"]


@pytest.mark.parametrize(("output", "field"), [
    ({"output_dir": "results"}, "output.output_dir"),
    ({"db": "missing/w.db"}, "output.db"),
])
def test_the_cli_refuses_bad_outputs_with_exit_2(tmp_path: Path, output: dict[str, str],
                                                 field: str) -> None:
    (tmp_path / "results").write_text("a file")
    config = _config(tmp_path)
    config["output"].update(output)
    proc = _cli(tmp_path, config)
    _refused_by_the_cli(proc, field)
    assert not (tmp_path / "w.db").exists()


# -- a sweep where every cell failed ------------------------------------------------------------

def test_the_cli_exits_1_when_every_cell_failed(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    config = _config(tmp_path, {"name": "bad", "path": str(broken)})
    proc = _cli(tmp_path, config)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "every cell failed" in last, proc.stderr
    with sqlite3.connect(tmp_path / "w.db") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM runs")]
    conn.close()
    assert statuses and set(statuses) == {"failed"}


def test_the_cli_exits_0_when_some_cells_worked(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    config = _config(tmp_path, {"name": "bad", "path": str(broken)},
                     {"name": "ok", "source": "sklearn:LogisticRegression"})
    proc = _cli(tmp_path, config)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "every cell failed" not in proc.stderr
