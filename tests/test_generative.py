"""Generative cells: text and code generation with energy per token and per prompt, time to
first token, prefill and decode energy, perplexity and the code set's exact match and pass rate.

The model is the tiny GPT-2 of ``test_workflows`` (a 20-word vocabulary, built from a config
and written into a local Hugging Face cache; nothing is downloaded). Expected figures are
computed here independently, with transformers and torch directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from offline import no_network  # noqa: F401  (autouse: no test here reaches a network)

import wattprint
from wattprint import EnergyMeter, FakeSensor

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("pyarrow")

from test_workflows import _hub_cache_with_gpt2_and_wikitext  # noqa: E402

PROMPTS = ["the cat sat on", "a dog ran", "the mat is not", "good cat", "a bad day"]
POWER_W = 10.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hub = tmp_path_factory.mktemp("gen") / "hub"
    _hub_cache_with_gpt2_and_wikitext(hub)
    return hub


@pytest.fixture(scope="module")
def gpt2(hub: Path) -> Any:
    return wattprint.load_model("gpt2", cache_dir=str(hub), max_new_tokens=5)


def _meter() -> EnergyMeter:
    return EnergyMeter([FakeSensor(power_w=POWER_W)])


def test_generation_run_reports_energy_per_token_and_prompt_and_first_token(gpt2: Any) -> None:
    from wattprint.workloads.harness import measure_inference

    with _meter() as meter:
        record = measure_inference(gpt2.predict, PROMPTS, "tiny-gpt2", "text-generation",
                                   num_samples=len(PROMPTS), batch_size=2, warmup=0,
                                   meter=meter, progress=False)
    metrics = record.metrics
    assert metrics is not None
    batches = [PROMPTS[0:2], PROMPTS[2:4], PROMPTS[4:5]]
    tokens = sum(gpt2.predict(b).tokens for b in batches)  # greedy: the same tokens again
    assert metrics["tokens_generated"] == tokens
    assert metrics["tokens_per_second"] == pytest.approx(tokens / record.duration_s)
    assert metrics["joules_per_token"] == pytest.approx(record.energy_j / tokens)
    assert metrics["joules_per_prompt"] == pytest.approx(record.energy_j / len(PROMPTS))
    # The profiled pass: every batch here (fewer than PROFILE_CALLS), in windows of its own.
    assert metrics["profiled_prompts"] == len(PROMPTS)
    assert metrics["profiled_tokens"] == tokens
    assert 0 < metrics["time_to_first_token_s"] <= metrics["prefill_s"]
    assert metrics["time_to_first_token_s"] == pytest.approx(metrics["prefill_s"] / 3)
    assert metrics["prefill_energy_j"] == pytest.approx(POWER_W * metrics["prefill_s"], rel=1e-3)
    assert metrics["decode_energy_j"] == pytest.approx(POWER_W * metrics["decode_s"], rel=1e-3)
    assert metrics["prefill_decode_provenance"] == "fake"
    # Those windows are not the measured loop's: its energy is the loop's alone.
    assert record.energy_j == pytest.approx(POWER_W * record.duration_s, rel=1e-3)


class _Recorder(EnergyMeter):
    """A meter that notes each window edge among the model's forward calls."""

    def __init__(self, events: list[str]) -> None:
        super().__init__([FakeSensor(power_w=POWER_W)])
        self.events = events

    def begin(self, name: str | None = None) -> str:
        self.events.append(f"begin {name}")
        return super().begin(name)

    def end(self, name: str | None = None) -> Any:
        self.events.append(f"end {name}")
        return super().end(name)


def test_prefill_ends_at_the_first_token_and_decode_holds_the_rest(gpt2: Any) -> None:
    events: list[str] = []
    hook = gpt2.module.register_forward_hook(lambda *a: events.append("forward"))
    try:
        with _Recorder(events) as meter:
            gpt2.generation_profile([["the cat sat on", "good"]], meter)
    finally:
        hook.remove()
    # One forward pass over the prompts, then the boundary, then one pass per further token.
    assert events[0].endswith(":prefill") and events[0].startswith("begin")
    assert events[1] == "forward"
    assert events[2].startswith("end") and events[2].endswith(":prefill")
    assert events[3].startswith("begin") and events[3].endswith(":decode")
    assert events[-1].startswith("end") and events[-1].endswith(":decode")
    longest = gpt2.predict(["the cat sat on", "good"]).shape[1]  # new tokens, longest row
    assert events[4:-1] == ["forward"] * (longest - 1)


def test_perplexity_is_exp_of_the_mean_token_nll(gpt2: Any, hub: Path) -> None:
    from wattprint.workloads.harness import measure_inference

    with _meter() as meter:
        record = measure_inference(gpt2.predict, PROMPTS, "tiny-gpt2", "text-generation",
                                   num_samples=3, batch_size=2, warmup=0, meter=meter,
                                   progress=False)
    assert record.metrics is not None
    got = record.metrics["perplexity"]
    assert math.isfinite(got) and got > 1.0
    # Independently: the saved model and tokenizer, each text alone, every token after its
    # first predicted from the ones before; the NLLs summed over all texts' tokens.
    folder = next((hub / "models--gpt2" / "snapshots").iterdir())
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    nll, count = 0.0, 0
    for text in PROMPTS:  # the whole dataset, not only the 3 prompts measured
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        n = ids.shape[1] - 1
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        nll += float(loss) * n
        count += n
    assert got == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert gpt2.perplexity(["good"]) is None  # one token predicts nothing


def test_code_set_exact_match_and_pass_rate(tmp_path: Path) -> None:
    from wattprint.errors import DatasetError
    from wattprint.workloads import codegen

    sample = codegen.load_code_tasks()
    assert len(sample) == 6 and all(t.reference for t in sample)
    ids = [t.task_id for t in sample]
    # Known completions: three references as they are, one correct but not the reference,
    # one wrong, one that never ends.
    answers = {t.prompt: t.reference for t in sample}
    answers[sample[3].prompt] = "    return ' '.join(text.split()[::-1])\n"  # correct, other
    answers[sample[4].prompt] = "    return len(text)\n"  # wrong
    answers[sample[5].prompt] = "    while True:\n        pass\n"  # never returns
    calls: list[Any] = []

    def fake_model(batch: list[str]) -> list[str]:
        calls.append(batch)
        return [answers[p] for p in batch]

    with _meter() as meter:
        record = codegen.measure_code_generation(fake_model, sample, model_name="fake",
                                                 run_code=True, meter=meter, timeout_s=1.0)
    assert len(calls) == 6 and record.task == "code-generation"
    assert record.metrics is not None
    assert record.metrics["exact_match"] == pytest.approx(3 / 6)
    assert record.metrics["pass_rate"] == pytest.approx(4 / 6)
    assert record.metrics["tests_passed"] == 4
    scores = codegen.score_completions(sample, [answers[t.prompt] for t in sample],
                                       run_code=True, timeout_s=1.0)
    failed = dict(scores.failed)
    assert set(failed) == {ids[4], ids[5]}
    assert "AssertionError" in failed[ids[4]] and "timeout" in failed[ids[5]]
    # Without the opt-in nothing runs: no pass rate.
    quiet = codegen.score_completions(sample, [answers[t.prompt] for t in sample])
    assert quiet.pass_rate is None and "pass_rate" not in quiet.metrics()

    # A user's set: a task without a reference counts for the pass rate only; the program
    # runs in a temporary folder, not here.
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps(t) for t in [
        {"task_id": "sq", "prompt": "def sq(x):\n", "tests": "assert sq(3) == 9\n",
         "reference": "    return x * x\n"},
        {"task_id": "here", "prompt": "import os\n",
         "tests": "open('left-behind.txt', 'w').write('x')\nassert not os.path.exists("
                  f"{str(tmp_path / 'mine.jsonl')!r}) or True\n"},
    ]) + "\n")
    tasks = codegen.load_code_tasks(mine)
    assert [t.task_id for t in tasks] == ["sq", "here"] and tasks[1].reference is None
    scores = codegen.score_completions(tasks, ["    return x ** 2\n", ""], run_code=True)
    assert (scores.exact_match, scores.pass_rate) == (0.0, 1.0)
    assert not (tmp_path / "left-behind.txt").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "prompt": "", "tests": ""}\n{"task_id": "b", '
                   '"prompt": "", "test": ""}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: unknown field\(s\) test"):
        codegen.load_code_tasks(bad)


def test_sweep_of_a_tiny_gpt2_with_int8_and_fp16_reports_generative_metrics(
        hub: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:3]) + "\n")
    config = {
        "project": "generative",
        "models": [{"name": "gpt2", "hf": "gpt2", "task": "text-generation",
                    "options": {"cache_dir": str(hub), "max_new_tokens": 4},
                    "quantization": {"enabled": True, "method": "dynamic"}}],
        "datasets": [{"name": str(prompts), "split": "all"}],
        "monitoring": {"warmup": 0, "enable_quantization_analysis": True},
        "output": {"export_formats": [], "db": str(tmp_path / "w.db"),
                   "output_dir": str(tmp_path / "out")},
    }
    with _meter() as meter:
        wattprint.Benchmark(config).run(meter=meter, progress=False)
    with wattprint.Store(tmp_path / "w.db", read_only=True) as store:
        runs = [r for r in store.runs() if r.phase == "inference"]
    by_variant = {r.variant: r for r in runs}
    assert {"fp32", "int8-dynamic", "fp16"} <= set(by_variant), [
        (r.variant, r.status, r.error) for r in runs]
    for variant in ("fp32", "int8-dynamic", "fp16"):
        run = by_variant[variant]
        if variant == "fp16" and not run.ok:  # a CPU that cannot run fp16 fails its cell
            assert run.error
            continue
        assert run.ok, (variant, run.error)
        m = run.metrics
        assert m is not None
        assert run.num_samples == 3 and m["tokens_generated"] > 0
        for key in ("tokens_per_second", "joules_per_token", "joules_per_prompt",
                    "time_to_first_token_s", "prefill_energy_j", "decode_energy_j"):
            assert m[key] > 0, (variant, key)
        assert m["joules_per_prompt"] == pytest.approx(run.energy_j / 3)
        assert math.isfinite(m["perplexity"]) and m["perplexity"] > 1.0
