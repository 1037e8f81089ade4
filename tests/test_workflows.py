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
