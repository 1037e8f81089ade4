"""A run's quality figure beside its energy: which metric stands for it (accuracy, word error
rate, pass rate, exact match, perplexity, regression errors, in that order), and that the star
ratings, the star table, the sweep summary, the HTML report (read in a real headless browser)
and the energy label show it: ``WER 0.250`` for a speech model, ``ppl 41.2`` for a language
model, not an empty accuracy column.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from test_report import Chromium, _visible_text, browser, make_store, run_row  # noqa: F401

from wattprint._summary import summarize
from wattprint.record import QUALITY_METRICS, Quality, RunRecord, mean_quality, quality
from wattprint.report import write_label, write_report
from wattprint.score import (
    calculate_scores,
    pareto_front,
    print_scores,
    savings,
    star_ratings,
)
from wattprint.store import Store

SPEECH = "automatic-speech-recognition"


def _record(metrics: dict[str, Any] | None, **fields: Any) -> RunRecord:
    return RunRecord.from_dict({**run_row("m"), "metrics": metrics, **fields})


@pytest.mark.parametrize(("metrics", "expected", "text"), [
    ({"accuracy": 0.93, "f1_macro": 0.9, "perplexity": 12.0}, ("accuracy", 0.93, True),
     "acc 0.930"),
    ({"wer": 0.25, "word_errors": 3, "reference_words": 12}, ("wer", 0.25, False), "WER 0.250"),
    ({"exact_match": 0.2, "pass_rate": 0.6, "perplexity": 3.0}, ("pass_rate", 0.6, True),
     "pass 0.600"),
    ({"exact_match": 0.2, "perplexity": 3.0, "code_tasks": 5}, ("exact_match", 0.2, True),
     "exact 0.200"),
    ({"perplexity": 41.234, "tokens_generated": 40}, ("perplexity", 41.234, False),
     "ppl 41.2"),
    ({"mae": 2.0, "rmse": 3.5}, ("rmse", 3.5, False), "RMSE 3.5"),
    ({"r2": 0.8, "rmse": 3.5}, ("r2", 0.8, True), "R² 0.800"),
    # not numbers, or not finite: skipped for the next metric in the order
    ({"accuracy": True, "wer": math.nan, "perplexity": 7.0}, ("perplexity", 7.0, False),
     "ppl 7"),
])
def test_a_run_s_quality_is_the_first_metric_of_the_fixed_order(
        metrics: dict[str, Any], expected: tuple[str, float, bool], text: str) -> None:
    q = quality(_record(metrics))
    assert q == Quality(*expected)
    assert str(q) == text
    assert json.loads(json.dumps(q.to_dict())) == dict(
        zip(("metric", "value", "higher_is_better"), expected, strict=True))


def test_no_quality_without_a_known_metric_and_the_mean_of_repetitions() -> None:
    assert quality(_record(None)) is None
    assert quality(_record({"tokens_generated": 4, "f1_macro": 0.5})) is None
    assert [q.metric for q in QUALITY_METRICS][:5] == [
        "accuracy", "wer", "pass_rate", "exact_match", "perplexity"]
    runs = [_record({"wer": 0.2}), _record({"wer": 0.3}), _record({"perplexity": 9.0})]
    assert mean_quality(runs) == Quality("wer", pytest.approx(0.25), False)  # type: ignore[arg-type]
    assert mean_quality([]) is None


# --------------------------------------------------------------------------------------------
# A store with a speech model (two repetitions: WER 0.2 and 0.3) and a language model.


def _rows() -> list[dict[str, Any]]:
    speech = [{**run_row("whisper", dataset="clips", repetition=i, kwh_per_1000=2e-3),
               "task": SPEECH, "metrics": {"wer": wer, "word_errors": 3, "reference_words": 12}}
              for i, wer in enumerate((0.2, 0.3))]
    language = {**run_row("gpt2", dataset="prompts", kwh_per_1000=5e-3),
                "task": "text-generation",
                "metrics": {"perplexity": 41.234, "tokens_generated": 40}}
    classifier = run_row("mlp", accuracy=0.93)  # classification, as before
    return [*speech, language, classifier]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_store(tmp_path / "w.db", _rows())


def test_scores_carry_the_quality_of_speech_and_language_models(db: Path) -> None:
    (whisper,) = calculate_scores(SPEECH, "CPU", db=db)
    (gpt2,) = calculate_scores("text-generation", "CPU", db=db)
    (mlp,) = calculate_scores("classification", "CPU", db=db)
    assert whisper.quality == Quality("wer", pytest.approx(0.25), False)  # type: ignore[arg-type]
    assert gpt2.quality == Quality("perplexity", 41.234, False)
    assert mlp.quality == Quality("accuracy", 0.93, True)
    # the accuracy field stays what it was: there is none for the speech and language models
    assert (whisper.accuracy, gpt2.accuracy, mlp.accuracy) == (None, None, 0.93)
    data = json.loads(json.dumps(whisper.to_dict()))
    assert data["quality"] == {"metric": "wer", "value": pytest.approx(0.25),
                               "higher_is_better": False}


def test_the_star_table_has_a_quality_column(db: Path) -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=240, color_system=None)
    for task in (SPEECH, "text-generation", "classification"):
        print_scores(calculate_scores(task, "CPU", db=db), console=console)
    text = out.getvalue()
    assert text.count("quality") == 3 and "accuracy" not in text
    assert "WER 0.250" in text and "ppl 41.2" in text and "acc 0.930" in text


def test_the_sweep_summary_has_each_model_s_quality(db: Path) -> None:
    with Store(db, read_only=True) as store:
        summary = summarize(store.runs())
    by_model = {m.model: m for m in summary.models}
    assert by_model["whisper"].quality == Quality(
        "wer", pytest.approx(0.25), False)  # type: ignore[arg-type]
    assert by_model["gpt2"].quality == Quality("perplexity", 41.234, False)
    view = json.loads(json.dumps(summary.to_analysis_summary()))
    assert {m["model"]: m["quality"]["metric"] for m in view["models"]} == {
        "whisper": "wer", "gpt2": "perplexity", "mlp": "accuracy"}


def test_the_report_shows_the_word_error_rate_and_perplexity(db: Path, tmp_path: Path) -> None:
    text = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    ratings = text[text.index('id="ratings"'):text.index('id="energy"')]
    runs = text[text.index('id="runs"'):]
    assert ratings.count("<th>quality</th>") == 3
    assert "WER 0.250" in ratings and "ppl 41.2" in ratings and "acc 0.930" in ratings
    assert "word error rate (lower is better)" in ratings
    # each run shows its own figure
    assert "WER 0.200" in runs and "WER 0.300" in runs and "ppl 41.2" in runs


def test_the_label_names_the_word_error_rate(db: Path, tmp_path: Path) -> None:
    visible = _visible_text(write_label("whisper", db=db, out=tmp_path / "w.svg"))
    assert "WORD ERROR RATE" in visible and "0.250" in visible
    assert "ACCURACY" in _visible_text(write_label("mlp", db=db, out=tmp_path / "m.svg"))


def test_the_quality_column_in_a_real_browser(browser: Chromium, db: Path,  # noqa: F811
                                              tmp_path: Path) -> None:
    path = write_report(db, out=tmp_path / "r.html")
    browser.open(path)
    assert browser.problems() == []
    rows = browser.evaluate(
        "[...document.querySelectorAll('#ratings table')].map(t => {"
        " const head = [...t.querySelectorAll('th')].map(th => th.innerText.trim());"
        " return [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries("
        "   [...tr.querySelectorAll('td')].map((td, i) => [head[i], td.innerText.trim()])));"
        "}).flat()")
    assert {r["model"]: r["quality"] for r in rows} == {
        "whisper": "WER 0.250", "gpt2": "ppl 41.2", "mlp": "acc 0.930"}


# --------------------------------------------------------------------------------------------
# The Pareto front and the savings, by each metric's direction, never across metrics.


def _speech_row(model: str, kwh_per_1000: float, metrics: dict[str, Any],
                **more: Any) -> dict[str, Any]:
    return {**run_row(model, kwh_per_1000=kwh_per_1000, **more), "task": SPEECH,
            "metrics": metrics}


def _wer_and_accuracy_rows() -> list[dict[str, Any]]:
    # WER models: c is beaten by b (more energy, higher WER), d by a (same energy, higher WER)
    wer = {"a": (1e-3, 0.30), "b": (2e-3, 0.20), "c": (3e-3, 0.25), "d": (1e-3, 0.35),
           "e": (4e-3, 0.10)}
    rows = [_speech_row(name, kwh, {"wer": value}) for name, (kwh, value) in wer.items()]
    # accuracy models of the same group: x's 0.05 set against the WERs as a WER would beat
    # them all; as an accuracy it beats none, nor do they beat it
    return [*rows, _speech_row("x", 0.5e-3, {"accuracy": 0.05}),
            _speech_row("y", 5e-3, {"accuracy": 0.90}),
            _speech_row("z", 6e-3, {"accuracy": 0.85})]


def test_a_pareto_front_of_word_error_rates_prefers_the_lower() -> None:
    records = [RunRecord.from_dict(r) for r in _wer_and_accuracy_rows()]
    speech_only = [r for r in records if r.metric("wer") is not None]
    front = pareto_front(speech_only)
    assert [s.model for s in front] == ["a", "b", "e"]
    assert all(s.quality is not None and s.quality.metric == "wer" for s in front)


def test_a_pareto_front_never_compares_word_error_rates_with_accuracies() -> None:
    records = [RunRecord.from_dict(r) for r in _wer_and_accuracy_rows()]
    scores = star_ratings(records)
    # one front per metric, in the order of QUALITY_METRICS: accuracy first, then WER
    assert [s.model for s in pareto_front(scores)] == ["x", "y", "a", "b", "e"]
    assert [s.model for s in pareto_front(records)] == ["x", "y", "a", "b", "e"]


def _pareto_section(text: str) -> str:
    return text[text.index('id="pareto"'):text.index('id="savings"')]


def test_the_report_draws_a_speech_group_against_its_word_error_rate(
        db: Path, tmp_path: Path) -> None:
    text = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    section = _pareto_section(text)
    assert "no accuracy recorded" not in section and "no quality" not in section
    groups = re.findall(r'data-chart="pareto" data-group="([^"]*)"', section)
    assert sorted(groups) == sorted([f"{SPEECH}/CPU", "text-generation/CPU",
                                     "classification/CPU"])
    assert "word error rate (lower is better)" in section  # the y axis
    assert "perplexity (lower is better)" in section
    assert "accuracy (higher is better)" in section
    assert f"{SPEECH} on CPU: word error rate against energy per 1000 queries" in section
    assert "not compared" not in section  # each group has one metric


def test_the_report_splits_a_group_that_mixes_metrics(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", _wer_and_accuracy_rows())
    section = _pareto_section(write_report(db, out=tmp_path / "r.html").read_text())
    groups = re.findall(r'data-chart="pareto" data-group="([^"]*)"', section)
    assert groups == [f"{SPEECH}/CPU/accuracy", f"{SPEECH}/CPU/wer"]
    assert "different quality metrics" in section and "not compared" in section
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", section)
    assert captions[0].endswith("On the front: x, y.")
    assert captions[1].endswith("On the front: a, b, e.")


def test_savings_of_a_speech_variant_are_in_word_error_rate(tmp_path: Path) -> None:
    rows = [_speech_row("whisper", 2e-3, {"wer": 0.25}),
            _speech_row("whisper", 1e-3, {"wer": 0.30}, variant="int8", parent="fp32")]
    (saving,) = savings(RunRecord.from_dict(r) for r in rows)
    assert saving.quality_metric == "wer"
    assert saving.quality_change == pytest.approx(0.05)
    assert saving.accuracy_change_points is None
    db = make_store(tmp_path / "w.db", rows)
    text = write_report(db, out=tmp_path / "r.html").read_text()
    section = text[text.index('id="savings"'):text.index('id="timeline"')]
    assert "<th>quality</th>" in section
    assert "WER +0.050" in re.findall(r"<td[^>]*>(.*?)</td>", section)


# --------------------------------------------------------------------------------------------
# `wattprint run`'s summary table, and the package root.


def _render(summary: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from rich.console import Console

    from wattprint import cli
    from wattprint.study import BenchmarkResult

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=200, color_system=None))
    cli._render_summary(BenchmarkResult(sweep_id="s1", project="p", db="w.db", config={},
                                        runs=(), exports=(), summary=summary))
    return buffer.getvalue()


def test_the_run_summary_shows_each_model_s_quality(db: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db, read_only=True) as store:
        summary = summarize(store.runs())
    text = _render(summary, monkeypatch)
    assert "quality" in text and "accuracy" not in text
    assert "WER 0.250" in text and "ppl 41.2" in text and "acc 0.930" in text
    # a row without a quality figure but with an RMSE still shows it
    first = dataclasses.replace(summary.models[0], quality=None, rmse=3.5)
    text = _render(dataclasses.replace(summary, models=(first,)), monkeypatch)
    assert "RMSE 3.5" in text


def test_the_package_root_exports_the_quality_figure() -> None:
    import wattprint
    import wattprint.record

    assert wattprint.Quality is wattprint.record.Quality
    assert wattprint.quality is wattprint.record.quality
    assert {"Quality", "quality"} <= set(wattprint.__all__)
