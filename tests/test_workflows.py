"""The workflows users bring from other tools, with those tools' own documented calls."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

import wattprint
from wattprint import ConfigError, StoreError, calculate_scores, measure_energy, print_scores


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # measure_energy keeps wattprint.db and results/ here


@pytest.fixture(scope="module")
def digits() -> Any:
    from sklearn.linear_model import LogisticRegression

    train = wattprint.load_dataset("digits", split="train", seed=0)
    test = wattprint.load_dataset("digits", split="test", seed=0)
    return LogisticRegression(max_iter=2000).fit(train.x, train.y), test


# -- ML Energy Score: measure ten models, then calculate_scores and print_scores ---------------


def test_ml_energy_score_measure_then_score(digits: Any, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Its README, as written: ``measure_energy(inference_fn=..., dataset=..., model_name=...,
    task_name=..., hardware="CPU", num_samples=...)`` per model, each ``inference_fn`` taking
    one sample, then ``scores = calculate_scores('image-classification', 'CPU')`` and
    ``print_scores(scores)``, with nothing else set up."""
    model, test = digits
    seen: list[tuple[int, ...]] = []

    def my_inference_function(sample: Any) -> Any:  # one sample, as ML Energy Score calls it
        seen.append(np.shape(sample))
        return model.predict(sample.reshape(1, -1))[0]

    def make(extra_work: int) -> Any:
        def infer(sample: Any) -> Any:
            for _ in range(extra_work):
                model.predict_proba(sample.reshape(1, -1))
            return my_inference_function(sample)
        return infer

    names = [f"model-{i}" for i in range(5)]
    results = []
    for i, name in enumerate(names):
        results.append(measure_energy(
            inference_fn=make(i), dataset=test, model_name=name,
            task_name="image-classification", hardware="CPU", num_samples=120,
        ))
    assert set(seen) == {(64,)}  # each call got one row, not a batch of one
    for result in results:
        for key in ("model_name", "task_name", "hardware", "timestamp", "num_samples",
                    "energy_kwh", "co2_kg", "duration_seconds", "kwh_per_1000_queries"):
            assert key in result, key
        assert result["pue"] == 1.2  # CodeCarbon's PUE, as ML Energy Score has it, stated
        assert result["accuracy"] > 0.9
        assert result["db"] == "wattprint.db"
    files = sorted((tmp_path / "results").glob("*.json"))
    assert len(files) == 5
    assert {json.loads(f.read_text())["model_name"] for f in files} == set(names)
    assert len({r["sweep_id"] for r in results}) == 5  # a sweep of its own per call

    err = capsys.readouterr().err
    assert "model-0 / image-classification: 100/120 samples" in err  # a line per 100 samples
    assert "120/120 samples" in err

    scores = calculate_scores("image-classification", "CPU")
    assert sorted(s.model for s in scores) == names
    assert {s.stars for s in scores} <= {1, 2, 3, 4, 5}
    buffer = io.StringIO()
    print_scores(scores, console=Console(file=buffer, width=200))
    table = buffer.getvalue()
    assert "percentile" in table
    best, worst = scores[0], scores[-1]
    assert (best.percentile, worst.percentile) == (0, 100)
    assert all(name in table for name in names)


def test_measure_energy_keeps_tensors_and_batches_only_when_asked() -> None:
    torch = pytest.importorskip("torch")
    x = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    got: list[Any] = []

    def one(sample: Any) -> Any:
        got.append(sample)
        return sample.sum()

    result = measure_energy(one, x, "t", "regression", num_samples=20, warmup=0,
                            db=None, output_dir=None, progress=False)
    assert len(got) == 20 and all(isinstance(s, torch.Tensor) for s in got)
    assert [tuple(s.shape) for s in got] == [(2,)] * 20
    assert torch.equal(got[3], x[3])
    assert "db" not in result and "output_file" not in result
    assert not Path("wattprint.db").exists() and not Path("results").exists()

    batches: list[Any] = []
    measure_energy(lambda b: batches.append(b) or b.sum(dim=1), list(x), "t", "regression",
                   num_samples=20, batch_size=8, warmup=0, db=None, output_dir=None,
                   progress=False)
    assert [tuple(b.shape) for b in batches] == [(8, 2), (8, 2), (4, 2)]
    assert isinstance(batches[0], torch.Tensor)


def test_measure_energy_refuses_places_it_cannot_write_before_it_runs(tmp_path: Path) -> None:
    calls: list[Any] = []
    Path("a-file").write_text("not a folder")
    with pytest.raises(ConfigError) as info:
        measure_energy(calls.append, np.zeros((4, 2)), "m", "t", num_samples=4,
                       output_dir="a-file/results", db=tmp_path)
    text = str(info.value)
    assert "output_dir:" in text and "a-file" in text
    assert "db:" in text and "is a folder" in text
    assert calls == []  # nothing ran


def test_measure_energy_keeps_the_measurement_when_the_store_refuses_it(tmp_path: Path) -> None:
    Path("notes.db").write_text("my own notes, not a results store\n")
    with pytest.raises(StoreError) as info:
        measure_energy(lambda s: 1, np.zeros((4, 2)), "m", "t", num_samples=4, warmup=0,
                       db="notes.db", progress=False)
    (kept,) = Path("results").glob("*.json")
    assert str(kept) in str(info.value) and "measured but not stored" in str(info.value)
    assert json.loads(kept.read_text())["num_samples"] == 4
    assert Path("notes.db").read_text() == "my own notes, not a results store\n"


def test_measure_energy_with_a_site_or_a_meter(tmp_path: Path) -> None:
    result = measure_energy(lambda s: 1, np.zeros((4, 2)), "m", "t", num_samples=4, warmup=0,
                            db=None, output_dir=None, progress=False,
                            site=wattprint.Site(country="SE", pue=1.5))
    assert result["pue"] == 1.5 and "SE" in result["location"]
    with wattprint.EnergyMeter([wattprint.FakeSensor(power_w=10.0)]) as meter:
        result = measure_energy(lambda s: 1, np.zeros((4, 2)), "m", "t", num_samples=4,
                                warmup=0, db=None, output_dir=None, meter=meter)
        assert result["pue"] == meter.footprint_model.pue == 1.0
        with pytest.raises(ConfigError, match="either meter= or site="):
            measure_energy(lambda s: 1, np.zeros((4, 2)), "m", "t", meter=meter,
                           site=wattprint.Site(pue=1.1))


# -- ML-EcoLyzer: its documented YAML template, hub models x datasets, from the local cache -----

#: ML-EcoLyzer's "Advanced Configuration" template, as its README writes it.
ECOLYZER_TEMPLATE = """\
project: "advanced_sustainability_analysis"

models:
  - name: "gpt2"
    task: "text"
    quantization:
      enabled: true
      method: "dynamic"
      target_dtype: "int8"

datasets:
  - name: "wikitext"
    task: "text"
    limit: 1000

# Environmental monitoring
monitoring:
  duration_seconds: 600
  frequency_hz: 2.0
  enable_quantization_analysis: true
  enable_wandb: true
  wandb_project: "ml_sustainability_research"

# Hardware optimization
hardware:
  device_profile: "auto"  # auto, datacenter, desktop, mobile, edge
  precision: "auto"       # auto, float32, float16, bfloat16
  memory_optimization: true

# Output configuration
output:
  output_dir: "./sustainability_results"
  export_formats: ["json", "csv", "html"]
  log_level: "INFO"
"""
HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"
WIKITEXT_CARD = """---
configs:
- config_name: wikitext-2-raw-v1
  data_files:
  - split: test
    path: wikitext-2-raw-v1/test-*
---
"""


def _hub_cache_with_gpt2_and_wikitext(hub: Path) -> None:
    """A tiny GPT-2 as the hub's ``gpt2`` and a few wikitext lines as ``wikitext``, written
    into the local Hugging Face cache's layout (no download: nothing here reaches a hub)."""
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_loaders_hf import WORDS, _tokenizer

    model_dir = hub / "models--gpt2" / "snapshots" / HUB_REVISION
    model_dir.mkdir(parents=True)
    (hub / "models--gpt2" / "refs").mkdir()
    (hub / "models--gpt2" / "refs" / "main").write_text(HUB_REVISION)
    tokenizer = _tokenizer(model_dir, bert=False)
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=2, n_positions=64,
        bos_token_id=WORDS.index("[CLS]"), eos_token_id=WORDS.index("[SEP]"),
        pad_token_id=WORDS.index("[PAD]"))
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data_dir = hub / "datasets--wikitext" / "snapshots" / HUB_REVISION
    (data_dir / "wikitext-2-raw-v1").mkdir(parents=True)
    (hub / "datasets--wikitext" / "refs").mkdir()
    (hub / "datasets--wikitext" / "refs" / "main").write_text(HUB_REVISION)
    lines = ["", " the film was good \n", "", " a bad day \n", " it was fine \n", "  \n"]
    pq.write_table(pa.table({"text": lines}),
                   data_dir / "wikitext-2-raw-v1" / "test-00000-of-00001.parquet")
    (data_dir / "README.md").write_text(WIKITEXT_CARD)


def _wattprint(args: list[str], cwd: Path, hub: Path) -> Any:
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HOME": str(hub.parent / "hf-home"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "wattprint", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_ml_ecolyzer_template_config_as_written(tmp_path: Path) -> None:
    """The template runs as written against a tiny GPT-2 and wikitext lines in the local
    cache: the model generates on the dataset's texts, its int8 variant (asked for) and the
    quantization analysis's variants are made and measured, and the exports, the HTML report
    included, are written."""
    hub = tmp_path / "hub"
    _hub_cache_with_gpt2_and_wikitext(hub)
    (tmp_path / "sweep.yaml").write_text(ECOLYZER_TEMPLATE)
    proc = _wattprint(["run", "sweep.yaml"], tmp_path, hub)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with wattprint.Store(tmp_path / "wattprint.db", read_only=True) as store:
        runs = store.runs()
    inference = {r.variant: r for r in runs if r.phase == "inference" and r.ok}
    assert "fp32" in inference and "int8-dynamic" in inference, [
        (r.variant, r.phase, r.status, r.error) for r in runs]
    base = inference["fp32"]
    assert (base.model_name, base.dataset, base.task) == ("gpt2", "wikitext", "text")
    assert base.num_samples == 3  # the non-empty lines
    assert base.metrics is not None and base.metrics["tokens_generated"] > 0
    assert {r.hardware for r in runs} == {wattprint.sensors.hardware.detect_hardware(
        wattprint.detect())}
    quantized = [r for r in runs if r.phase == "optimization"]
    assert {r.variant for r in quantized} >= {"int8-dynamic", "fp16"}  # asked + analysis
    results = tmp_path / "sustainability_results"
    exported = sorted(p.suffix for p in results.glob("*.*"))
    assert exported == [".csv", ".html", ".json"]
    html = next(results.glob("*.html")).read_text(encoding="utf-8")
    assert "gpt2" in html and "int8-dynamic" in html


def test_a_sweep_allowed_the_network_uses_the_cache_when_the_hub_cannot_be_reached(
        tmp_path: Path) -> None:
    """One config for a machine online and one offline (``HF_HUB_OFFLINE``): with
    ``allow_network: true`` and the hub not reached, the cached model loads, as transformers
    loads it, and each inference run says so, its variants' too."""
    hub = tmp_path / "hub"
    _hub_cache_with_gpt2_and_wikitext(hub)
    (tmp_path / "sweep.yaml").write_text(
        "project: p\nallow_network: true\n"
        "models: [{name: gpt2, task: text, quantization: {enabled: true}}]\n"
        "datasets: [{name: wikitext, task: text, limit: 2}]\n"
        "monitoring: {repetitions: 1, warmup: 0}\noutput: {export_formats: []}\n")
    proc = _wattprint(["run", "sweep.yaml"], tmp_path, hub)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with wattprint.Store(tmp_path / "wattprint.db", read_only=True) as store:
        runs = store.runs()
    inference = {r.variant: r for r in runs if r.phase == "inference"}
    assert set(inference) == {"fp32", "int8-dynamic"}, [(r.variant, r.error) for r in runs]
    for run in inference.values():
        assert run.ok and run.metrics is not None and run.metrics["tokens_generated"] > 0
        (note,) = [n for n in run.measurement_notes or () if "hub" in n]
        assert note.startswith(f"gpt2: the copy in the local Hugging Face cache ({HUB_REVISION}), "
                               "the hub not reached: "), note
        assert "offline mode is enabled" in note


def test_ml_ecolyzer_template_without_the_cache_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(ECOLYZER_TEMPLATE)
    hub = tmp_path / "empty-hub"
    hub.mkdir()
    proc = _wattprint(["run", "sweep.yaml"], tmp_path, hub)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "models[0].name: 'gpt2' is a Hugging Face hub model that is not in the local " \
           f"cache ({hub})" in proc.stderr
    assert "datasets[0].name: 'wikitext' is no built-in dataset" in proc.stderr
    assert proc.stderr.count("allow_network: true") == 2
    assert not (tmp_path / "wattprint.db").exists()


def test_ml_ecolyzer_device_profiles_set_the_site_tier(tmp_path: Path) -> None:
    from wattprint.sweep.config import load_config

    base = {"project": "p", "models": [{"name": "m", "source": "sklearn:LogisticRegression"}],
            "datasets": [{"name": "iris"}]}
    for profile, tier in (("datacenter", "datacenter"), ("mobile", "edge"),
                          ("desktop", "desktop")):
        config = load_config({**base, "hardware": {"device_profile": profile}})
        assert config.hardware.detect and config.to_site().tier == tier
    config = load_config({**base, "hardware": {"device_profile": "edge"},
                          "location": {"tier": "datacenter"}})
    assert config.to_site().tier == "datacenter"  # the location's own tier wins
    config = load_config({**base, "hardware": {"device_profile": "NVIDIA H200"}})
    assert not config.hardware.detect and config.to_site().tier is None


def test_models_and_datasets_share_one_task_vocabulary(tmp_path: Path) -> None:
    """A dataset may say text-generation (the task of the model that generates on it), and
    a hub model may say text (ML-EcoLyzer's: the model's own task)."""
    from wattprint.sweep.config import load_config

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the film was\na day\n")
    hub = tmp_path / "hub"
    _hub_cache_with_gpt2_and_wikitext(hub)
    config = load_config({
        "project": "p",
        "models": [{"name": "gpt2", "task": "text", "options": {"cache_dir": str(hub)}}],
        "datasets": [{"name": str(prompts), "task": "text-generation"}]})
    assert config.models[0].task is None and config.models[0].hf == "gpt2"
    assert config.datasets[0].task == "text-generation"
    data = wattprint.load_dataset(str(prompts), task="text-generation")
    assert (data.task, data.x) == ("text-generation", ["the film was", "a day"])


# -- code task sets in a sweep -----------------------------------------------------------------


class _Answers:
    """A "model" that completes each prompt with the completion a JSON file gives for it."""

    def __init__(self, path: str) -> None:
        self.answers = json.loads(Path(path).read_text())

    def predict(self, batch: Any) -> list[str]:
        return [self.answers.get(prompt, "    pass\n") for prompt in batch]


def test_code_task_sets_in_a_sweep_score_exact_match_and_only_when_asked_pass_rate(
        tmp_path: Path) -> None:
    from wattprint.workloads.codegen import load_code_tasks

    tasks = load_code_tasks()  # the shipped sample
    wrong = tasks[0].task_id
    answers = {t.prompt: ("    return None\n" if t.task_id == wrong else t.reference)
               for t in tasks}
    (tmp_path / "m.answers").write_text(json.dumps(answers))
    wattprint.register_format(".answers", _Answers)
    config = {
        "project": "code",
        "models": [{"name": "answers", "path": str(tmp_path / "m.answers")}],
        "datasets": [{"name": "code_tasks", "task": "code-generation"}],
        "monitoring": {"warmup": 0, "batch_size": 2},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    meter = wattprint.EnergyMeter([wattprint.FakeSensor(power_w=5.0)])
    try:
        (run,) = wattprint.Benchmark(config).execute(meter=meter, progress=False).runs
        assert run.ok and run.task == "code-generation", run.error
        assert run.metrics is not None
        assert run.metrics["exact_match"] == pytest.approx((len(tasks) - 1) / len(tasks))
        assert "pass_rate" not in run.metrics  # the completions were not run
        (run,) = wattprint.Benchmark({**config, "project": "code-run"}).execute(
            meter=meter, progress=False, run_generated_code=True).runs
        assert run.metrics is not None
        assert run.metrics["pass_rate"] == pytest.approx((len(tasks) - 1) / len(tasks))
    finally:
        meter.close()
    with pytest.raises(ConfigError, match="run_generated_code: unknown key"):
        wattprint.Benchmark({**config, "run_generated_code": True})  # never from a config
    (tmp_path / "bad.jsonl").write_text('{"task_id": "a", "prompt": "def f():"}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl"):
        wattprint.Benchmark({**config, "datasets": [{"name": str(tmp_path / "bad.jsonl"),
                                                     "task": "code-generation"}]})
