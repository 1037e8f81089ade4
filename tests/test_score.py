"""Star ratings, ESS, savings and Pareto fronts over hand-built run records with known figures."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from wattprint.errors import ConfigError
from wattprint.record import RunRecord
from wattprint.score import (
    METHODS,
    Saving,
    Score,
    available_groups,
    calculate_scores,
    ess,
    ess_of,
    pareto_front,
    print_scores,
    read_records,
    savings,
    star_glyphs,
    star_ratings,
    why_not_rated,
)
from wattprint.store import Store


def run(model: str, kwh_per_1000: float | None, *, variant: str = "fp32",
        parent: str | None = None, dataset: str = "iris", repetition: int = 0,
        accuracy: float | None = None, task: str = "classification", hardware: str = "cpu",
        phase: str = "inference", status: str = "ok", num_samples: int = 1000,
        co2_g: float | None = None, **more: Any) -> dict[str, Any]:
    """One run record in its JSON form (the scores take it as they take a RunRecord);
    ``kwh_per_1000`` is its energy per 1000 queries."""
    record: dict[str, Any] = {
        "sweep_id": "s1",
        "cell_key": f"{model}/{variant}/{dataset}/{phase}/{repetition}",
        "model_name": model, "variant": variant, "parent": parent, "dataset": dataset,
        "repetition": repetition, "phase": phase, "task": task, "hardware": hardware,
        "status": status, "num_samples": num_samples,
        "kwh_per_1000_queries": kwh_per_1000,
        "energy_kwh": None if kwh_per_1000 is None else kwh_per_1000 * num_samples / 1000,
        "co2_g": co2_g, "provenance": "measured",
        "metrics": {} if accuracy is None else {"accuracy": accuracy},
    }
    record.update(more)
    return record


def stars_by_model(scores: list[Score]) -> dict[str, int]:
    return {s.model: s.stars for s in scores}


# -- quintile --------------------------------------------------------------------------------


def test_quintile_ten_models_two_per_star_level() -> None:
    records = [run(f"m{i}", float(i)) for i in range(1, 11)]
    scores = star_ratings(records)
    assert [s.model for s in scores] == [f"m{i}" for i in range(1, 11)]
    assert [s.stars for s in scores] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # ML Energy Score's percentiles: 0 for the most efficient, 100 for the least
    assert [round(s.percentile) for s in scores] == [0, 11, 22, 33, 44, 56, 67, 78, 89, 100]
    assert {s.group_size for s in scores} == {10}
    assert {s.method for s in scores} == {"quintile"}


def test_quintile_order_of_records_does_not_matter() -> None:
    records = [run(f"m{i}", float(i)) for i in (7, 2, 9, 1, 5)]
    assert stars_by_model(star_ratings(records)) == {"m1": 5, "m2": 4, "m5": 3, "m7": 2,
                                                     "m9": 1}


def test_quintile_five_models_one_per_star_level() -> None:
    scores = star_ratings([run(f"m{i}", 0.1 * i) for i in range(1, 6)])
    assert [s.stars for s in scores] == [5, 4, 3, 2, 1]


def test_quintile_three_models_follow_the_percentile_rule() -> None:
    # ranks 0, 1, 2 of 3: 5 - floor(5r/3) = 5, 4, 2
    scores = star_ratings([run("a", 1.0), run("b", 2.0), run("c", 3.0)])
    assert [s.stars for s in scores] == [5, 4, 2]
    assert [s.percentile for s in scores] == [0, 50, 100]


def test_two_models_get_five_and_three_stars() -> None:
    assert [s.stars for s in star_ratings([run("a", 1.0), run("b", 2.0)])] == [5, 3]


@pytest.mark.parametrize("method", METHODS)
def test_a_single_model_gets_five_stars(method: str) -> None:
    (score,) = star_ratings([run("only", 3.0)], method=method)
    assert score.stars == 5
    assert score.percentile == 0
    assert score.group_size == 1


def test_ties_share_the_stars_of_their_best_rank() -> None:
    scores = star_ratings([run("a", 1.0), run("b", 1.0), run("c", 2.0), run("d", 3.0),
                           run("e", 3.0)])
    # ranks 0, 0, 2, 3, 3
    assert stars_by_model(scores) == {"a": 5, "b": 5, "c": 3, "d": 2, "e": 2}
    assert {s.model: s.percentile for s in scores} == {"a": 0, "b": 0, "c": 50, "d": 75,
                                                       "e": 75}


def test_a_large_tie_at_the_bottom_keeps_its_best_rank() -> None:
    scores = star_ratings([run("best", 1.0)] + [run(f"t{i}", 2.0) for i in range(4)])
    assert stars_by_model(scores) == {"best": 5, "t0": 4, "t1": 4, "t2": 4, "t3": 4}


def test_equal_means_in_any_order_are_a_tie() -> None:
    # 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in plain float sums
    values = [0.1, 0.2, 0.3]
    a = [run("a", v, repetition=i) for i, v in enumerate(values)]
    b = [run("b", v, repetition=i) for i, v in enumerate(reversed(values))]
    scores = star_ratings([*a, *b, run("c", 5.0)])
    assert stars_by_model(scores)["a"] == stars_by_model(scores)["b"] == 5


# -- range -----------------------------------------------------------------------------------


def test_range_bands_with_values_on_the_edges() -> None:
    # min 10, max 20: bands of width 2; an edge value belongs to the upper (fewer-stars) band
    energies = {"lo": 10.0, "in5": 11.999, "edge12": 12.0, "mid": 14.5, "edge16": 16.0,
                "in2": 17.9, "edge18": 18.0, "hi": 20.0}
    scores = star_ratings([run(name, e) for name, e in energies.items()], method="range")
    assert stars_by_model(scores) == {"lo": 5, "in5": 5, "edge12": 4, "mid": 3, "edge16": 2,
                                      "in2": 2, "edge18": 1, "hi": 1}
    assert {s.method for s in scores} == {"range"}


def test_range_edge_written_in_decimal_lands_on_the_edge() -> None:
    # (0.3 - 0.1) / (0.6 - 0.1) * 5 is 1.9999999999999996 in floats; 0.3 is the 3-star edge
    scores = star_ratings([run("a", 0.1), run("b", 0.3), run("c", 0.6)], method="range")
    assert stars_by_model(scores) == {"a": 5, "b": 3, "c": 1}


def test_range_differs_from_quintile_on_skewed_figures() -> None:
    records = [run("a", 1.0), run("b", 1.1), run("c", 1.2), run("d", 1.3), run("e", 10.0)]
    assert [s.stars for s in star_ratings(records, method="range")] == [5, 5, 5, 5, 1]
    assert [s.stars for s in star_ratings(records)] == [5, 4, 3, 2, 1]


def test_range_of_zero_width_gives_everyone_five_stars() -> None:
    scores = star_ratings([run(f"m{i}", 2.5) for i in range(4)], method="range")
    assert [s.stars for s in scores] == [5, 5, 5, 5]


def test_unknown_method_lists_the_methods() -> None:
    with pytest.raises(ConfigError, match=r"'median'.*quintile, range"):
        star_ratings([run("a", 1.0)], method="median")
    with pytest.raises(ConfigError, match="quintile, range"):
        calculate_scores("classification", "cpu", method="median", records=[run("a", 1.0)])


# -- what is rated -----------------------------------------------------------------------------


def test_failed_training_and_optimization_rows_are_not_rated() -> None:
    records = [
        run("a", 1.0), run("b", 2.0), run("c", 3.0),
        run("d", 0.001, status="failed", error="boom"),
        run("e", 0.001, phase="training"),
        run("a", 0.001, variant="int8-dynamic", parent="fp32", phase="optimization"),
        run("f", None, status="failed", task="other", hardware="gpu"),
    ]
    scores = star_ratings(records)
    assert stars_by_model(scores) == {"a": 5, "b": 4, "c": 2}


def test_repetitions_are_averaged() -> None:
    records = [
        run("a", 1.0, repetition=0, accuracy=0.8, co2_g=2.0, num_samples=100),
        run("a", 3.0, repetition=1, accuracy=0.9, co2_g=4.0, num_samples=200),
        run("b", 2.5),
    ]
    a = next(s for s in star_ratings(records) if s.model == "a")
    assert a.kwh_per_1000_queries == pytest.approx(2.0)
    assert a.co2_g_per_1000_queries == pytest.approx((20.0 + 20.0) / 2)
    assert a.accuracy == pytest.approx(0.85)
    assert a.repetitions == 2
    assert a.stars == 5


def test_energy_per_1000_queries_from_kwh_and_samples_when_not_stored() -> None:
    record = run("a", None, energy_kwh=0.004, num_samples=2000)
    (score,) = star_ratings([record])
    assert score.kwh_per_1000_queries == pytest.approx(0.002)


def test_a_model_without_any_energy_figure_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    scores = star_ratings([run("a", 1.0), run("blank", None, energy_kwh=None)])
    assert [s.model for s in scores] == ["a"]
    assert "blank" in caplog.text


def test_labels_name_the_variant_unless_it_is_the_base() -> None:
    records = [run("mlp", 2.0), run("mlp", 1.0, variant="int8-dynamic", parent="fp32")]
    scores = star_ratings(records)
    assert [(s.model, s.model_name, s.variant, s.parent) for s in scores] == [
        ("mlp:int8-dynamic", "mlp", "int8-dynamic", "fp32"), ("mlp", "mlp", "fp32", None)]


def test_mixed_task_or_hardware_is_refused_with_the_groups() -> None:
    records = [run("a", 1.0), run("b", 2.0, hardware="gpu"), run("c", 1.0, task="regression")]
    with pytest.raises(ConfigError, match=r"classification/cpu, classification/gpu, "
                                          r"regression/cpu"):
        star_ratings(records)


def test_names_differing_in_case_are_one_group() -> None:
    records = [run("a", 1.0, hardware="CPU"), run("b", 2.0, hardware="cpu")]
    assert available_groups(records) == [("classification", "CPU")]
    assert [s.stars for s in star_ratings(records)] == [5, 3]


def test_available_groups_lists_only_groups_with_successful_inference() -> None:
    records = [run("a", 1.0, hardware="gpu"), run("b", 1.0, task="regression"),
               run("c", 1.0, task="nlp", status="failed"), run("d", 1.0, task="x",
                                                                phase="training")]
    assert available_groups(records) == [("classification", "gpu"), ("regression", "cpu")]


def test_an_inference_run_without_model_fields_is_an_error() -> None:
    with pytest.raises(ConfigError, match="dataset"):
        star_ratings([{**run("a", 1.0), "dataset": None}])


def test_no_inference_runs_give_no_scores() -> None:
    assert star_ratings([run("a", 1.0, phase="training")]) == []


# -- ESS -------------------------------------------------------------------------------------


def test_ess_is_parameters_in_millions_per_gram() -> None:
    assert ess(2_000_000, 0.5) == pytest.approx(4.0)
    assert ess(500_000, 2.0) == pytest.approx(0.25)


@pytest.mark.parametrize("co2", [0.0, -1.0, float("nan"), float("inf")])
def test_ess_refuses_co2_that_is_not_positive(co2: float) -> None:
    with pytest.raises(ConfigError, match="co2_g_per_1000_queries"):
        ess(1_000_000, co2)


def test_ess_refuses_negative_parameters() -> None:
    with pytest.raises(ConfigError, match="num_parameters"):
        ess(-1, 1.0)


def test_ess_of_a_pruned_run_counts_its_effective_parameters() -> None:
    dense = run("m", 1.0, co2_g=0.5, num_samples=1000, num_parameters=4_000_000,
                effective_parameters=4_000_000)
    pruned = run("m", 0.8, variant="pruned-l1_unstructured-0.5", parent="fp32", co2_g=0.5,
                 num_samples=1000, num_parameters=4_000_000, effective_parameters=2_000_000)
    assert ess_of(dense) == pytest.approx(8.0)  # 4 M / 0.5 g per 1000 queries
    assert ess_of(pruned) == pytest.approx(4.0)  # 2 M effective / 0.5 g
    scores = {s.variant: s for s in star_ratings([dense, pruned])}
    assert scores["pruned-l1_unstructured-0.5"].pruned
    assert scores["pruned-l1_unstructured-0.5"].ess == pytest.approx(4.0)
    assert ess_of(scores["pruned-l1_unstructured-0.5"]) == pytest.approx(4.0)
    assert scores["fp32"].ess == pytest.approx(8.0)


def test_ess_of_is_none_when_it_cannot_be_known() -> None:
    assert ess_of(run("m", 1.0, co2_g=0.0, num_parameters=1_000_000)) is None
    assert ess_of(run("m", 1.0, co2_g=None, num_parameters=1_000_000)) is None
    assert ess_of(run("m", 1.0, co2_g=1.0, num_parameters=None)) is None
    # a pruned variant without its effective count: the full count would overstate it
    assert ess_of(run("m", 1.0, variant="pruned-x-0.5", parent="fp32", co2_g=1.0,
                      num_parameters=1_000_000)) is None
    (score,) = star_ratings([run("m", 1.0, co2_g=0.0, num_parameters=1_000_000)])
    assert score.ess is None


# -- savings ---------------------------------------------------------------------------------


def family() -> list[dict[str, Any]]:
    """fp32 -> int8-dynamic (saves a quarter) and fp32 -> fp16 (costs more)."""
    return [
        run("mlp", 2.0, repetition=0, accuracy=0.95, co2_g=1.0, num_parameters=1_000_000,
            size_bytes=400),
        run("mlp", 2.0, repetition=1, accuracy=0.95, co2_g=1.0, num_parameters=1_000_000,
            size_bytes=400),
        run("mlp", 1.5, variant="int8-dynamic", parent="fp32", accuracy=0.93, co2_g=0.75,
            num_parameters=1_000_000, size_bytes=100),
        run("mlp", 0.0, variant="int8-dynamic", parent="fp32", phase="optimization",
            energy_kwh=10.0, co2_g=4.0),
        run("mlp", 2.5, variant="fp16", parent="fp32", accuracy=0.95, co2_g=1.25,
            num_parameters=1_000_000, size_bytes=200),
        run("mlp", 0.0, variant="fp16", parent="fp32", phase="optimization", energy_kwh=1.0),
        run("mlp", 0.1, variant="onnx", parent="fp32", status="failed", error="boom"),
    ]


def test_savings_against_the_parent() -> None:
    rows = {r.variant: r for r in savings(family())}
    assert set(rows) == {"int8-dynamic", "fp16"}
    int8 = rows["int8-dynamic"]
    assert int8.model == "mlp:int8-dynamic"
    assert int8.parent == "fp32"
    assert int8.parent_kwh_per_1000_queries == pytest.approx(2.0)
    assert int8.energy_change_pct == pytest.approx(-25.0)
    assert int8.co2_change_pct == pytest.approx(-25.0)
    # ESS: 1 M / 1 g -> 1 M / 0.75 g
    assert int8.ess_change_pct == pytest.approx(100 * (1 / 0.75 - 1))
    assert int8.accuracy_change_points == pytest.approx(-2.0)
    assert int8.size_change_pct == pytest.approx(-75.0)
    assert int8.step_energy_kwh == pytest.approx(10.0)
    assert int8.step_co2_g == pytest.approx(4.0)
    # 10 kWh / (0.5 kWh per 1000 queries) = 20,000 queries
    assert int8.break_even_queries == pytest.approx(20_000)


def test_a_variant_that_saves_nothing_never_breaks_even() -> None:
    fp16 = next(r for r in savings(family()) if r.variant == "fp16")
    assert fp16.energy_change_pct == pytest.approx(25.0)
    assert fp16.accuracy_change_points == pytest.approx(0.0)
    assert fp16.step_energy_kwh == pytest.approx(1.0)
    assert fp16.break_even_queries is None


def test_savings_without_parent_runs_or_step_are_none() -> None:
    rows = savings([run("m", 1.0, variant="int8-static", parent="onnx"),
                    run("m", 2.0, variant="fp32")])
    (row,) = rows
    assert row.parent == "onnx"
    assert row.energy_change_pct is None
    assert row.break_even_queries is None
    assert row.step_energy_kwh is None


def test_savings_compare_within_one_hardware() -> None:
    records = [run("m", 2.0, hardware="cpu"), run("m", 1.0, variant="int8-dynamic",
                                                  parent="fp32", hardware="cpu"),
               run("m", 100.0, hardware="gpu"), run("m", 50.0, variant="int8-dynamic",
                                                    parent="fp32", hardware="gpu")]
    by_hw = {r.hardware: r for r in savings(records)}
    assert by_hw["cpu"].energy_change_pct == pytest.approx(-50.0)
    assert by_hw["gpu"].parent_kwh_per_1000_queries == pytest.approx(100.0)


def test_a_saving_is_a_frozen_record_with_a_json_form() -> None:
    int8 = next(r for r in savings(family()) if r.variant == "int8-dynamic")
    assert isinstance(int8, Saving) and dataclasses.is_dataclass(int8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        int8.energy_change_pct = 0.0  # type: ignore[misc]
    data = json.loads(json.dumps(int8.to_dict()))
    assert list(data) == [f.name for f in dataclasses.fields(Saving)]
    assert data["model"] == "mlp:int8-dynamic" and data["parent"] == "fp32"
    assert data["energy_change_pct"] == pytest.approx(-25.0)
    assert data["break_even_queries"] == pytest.approx(20_000)


# -- Pareto front ----------------------------------------------------------------------------


def pareto_records() -> list[dict[str, Any]]:
    points = {"A": (1.0, 0.80), "B": (2.0, 0.90), "C": (3.0, 0.85), "D": (2.0, 0.90),
              "E": (4.0, 0.95), "F": (4.0, 0.90), "G": (0.5, None), "H": (1.0, 0.70),
              "I": (5.0, 0.95)}
    return [run(name, e, accuracy=acc) for name, (e, acc) in points.items()]


def test_pareto_front_of_records() -> None:
    # C is beaten by B; F by E (same energy); H by A (same energy); I by E (same accuracy);
    # B and D are identical: neither dominates, both stay; G has no accuracy
    front = pareto_front(pareto_records())
    assert [s.model for s in front] == ["A", "B", "D", "E"]


def test_pareto_front_of_scores_is_the_same() -> None:
    scores = star_ratings(pareto_records(), method="range")
    front = pareto_front(scores)
    assert [s.model for s in front] == ["A", "B", "D", "E"]
    assert all(s.method == "range" for s in front)


def test_pareto_front_refuses_several_groups() -> None:
    scores = star_ratings([run("a", 1.0, accuracy=0.9)]) + star_ratings(
        [run("b", 1.0, accuracy=0.9, hardware="gpu")])
    with pytest.raises(ConfigError, match="one task and hardware"):
        pareto_front(scores)
    with pytest.raises(ConfigError, match="one task and hardware"):
        pareto_front([run("a", 1.0, accuracy=0.9), run("b", 1.0, accuracy=0.9,
                                                         hardware="gpu")])


def test_pareto_front_without_accuracy_is_empty() -> None:
    assert pareto_front([run("a", 1.0), run("b", 2.0)]) == []


# -- the store -------------------------------------------------------------------------------


def write_store(path: Path) -> None:
    with Store(path) as store:
        store.begin_sweep("s1", project="demo", config={})
        for i, e in enumerate((1.0, 2.0, 3.0, 4.0, 5.0)):
            store.write_run(run(f"m{i}", e, accuracy=0.9, co2_g=0.5))
        store.write_run(run("x", 0.01, status="failed", error="boom"))
        store.write_run(run("g", 7.0, hardware="gpu"))
        store.begin_sweep("s2", project="demo", config={})
        store.write_run(run("m0", 9.0, sweep_id="s2"))


def test_calculate_scores_from_a_store(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    write_store(db)
    scores = calculate_scores("Classification", "CPU", db=db, sweep_id="s1")
    assert [(s.model, s.stars) for s in scores] == [("m0", 5), ("m1", 4), ("m2", 3), ("m3", 2),
                                                    ("m4", 1)]
    assert scores[0].co2_g_per_1000_queries == pytest.approx(0.5)
    assert scores[0].provenance == "measured"
    (gpu,) = calculate_scores("classification", "gpu", db=str(db))
    assert gpu.model == "g"
    # without a sweep id, every sweep counts: m0 averages 1.0 (s1) and 9.0 (s2)
    all_sweeps = {s.model: s for s in calculate_scores("classification", "cpu", db=db)}
    assert all_sweeps["m0"].kwh_per_1000_queries == pytest.approx(5.0)
    assert all_sweeps["m0"].repetitions == 2
    assert len(read_records(db, sweep_id="s2")) == 1


def test_calculate_scores_names_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(ConfigError, match=r"nothing\.db.*run a benchmark first"):
        calculate_scores("classification", "cpu", db=missing)
    assert not missing.exists()


def test_calculate_scores_lists_the_groups_that_exist(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    write_store(db)
    with pytest.raises(ConfigError, match=r"'regression'.*classification/cpu, "
                                          r"classification/gpu"):
        calculate_scores("regression", "cpu", db=db)


def test_calculate_scores_from_records() -> None:
    records = [run("a", 1.0), run("b", 2.0), run("c", 3.0, hardware="gpu"),
               run("d", 0.5, sweep_id="s2")]
    scores = calculate_scores("classification", "cpu", records=records, method="range",
                              sweep_id="s1")
    assert [(s.model, s.stars) for s in scores] == [("a", 5), ("b", 1)]
    with pytest.raises(ConfigError, match="classification/cpu, classification/gpu"):
        calculate_scores("vision", "cpu", records=records)


def test_a_record_with_an_unknown_key_is_refused_naming_it() -> None:
    records = [run("a", 1.0), run("b", 2.0, co2_kg=0.001)]  # co2_kg: another tool's spelling
    with pytest.raises(ConfigError, match=r"unknown run record key\(s\): co2_kg"):
        calculate_scores("classification", "cpu", records=records)
    with pytest.raises(ConfigError, match="co2_kg"):
        star_ratings(records)
    with pytest.raises(ConfigError, match="co2_kg"):
        savings(records)


def test_runs_read_back_from_a_store_are_rated_as_the_records_they_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "results.db"
    written = [RunRecord.from_dict(run(f"m{i}", e, accuracy=0.9, co2_g=0.5,
                                       num_parameters=1_000_000))
               for i, e in enumerate((1.0, 2.0, 3.0))]
    written.append(RunRecord.from_dict(run("p", 0.5, partial=True, errors=["gpu:0: lost"])))
    with Store(db) as store:
        store.begin_sweep("s1", project="demo", config={})
        for record in written:
            store.write_run(record)
        runs = store.runs()
    assert all(type(r) is RunRecord for r in runs) and runs == written
    assert read_records(db) == written
    # rated as they are: no record is made again from a dict on the way
    made_again = []
    real_from_dict = RunRecord.from_dict.__func__  # type: ignore[attr-defined]

    def from_dict(cls: type[RunRecord], data: Any) -> RunRecord:
        made_again.append(data)
        return real_from_dict(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(RunRecord, "from_dict", classmethod(from_dict))
    scores = star_ratings(runs)
    assert [(s.model, s.stars) for s in scores] == [("m0", 5), ("m1", 4), ("m2", 2)]
    assert [(u.model, u.reason) for u in scores.unrated] == [("p", "partial, gpu:0: lost")]
    assert why_not_rated(runs[-1]) == "partial, gpu:0: lost"
    assert ess_of(runs[0]) == pytest.approx(2.0)  # 1 M parameters / 0.5 g per 1000 queries
    assert made_again == []
    # an export's JSON form of the same runs gives the same scores
    monkeypatch.undo()
    assert star_ratings([r.to_dict() for r in runs]) == scores


# -- output ----------------------------------------------------------------------------------


def test_star_glyphs() -> None:
    assert star_glyphs(4) == "★★★★☆"
    assert star_glyphs(1) == "★☆☆☆☆"
    with pytest.raises(ConfigError):
        star_glyphs(6)


def test_print_scores_shows_the_star_glyphs() -> None:
    buffer = io.StringIO()
    scores = star_ratings([run(f"model{i}", float(i), accuracy=0.9) for i in range(1, 6)])
    print_scores(scores, console=Console(file=buffer, width=120))
    text = buffer.getvalue()
    for glyphs in ("★★★★★", "★★★★☆", "★★★☆☆", "★★☆☆☆", "★☆☆☆☆"):
        assert glyphs in text
    assert "model5" in text
    assert "classification on cpu" in text


def test_print_scores_shows_the_percentile_as_ml_energy_score_does() -> None:
    """0 for the most efficient of five, then 25, 50, 75 and 100, on each model's row."""
    buffer = io.StringIO()
    scores = star_ratings([run(f"model{i}", float(i)) for i in range(1, 6)])
    print_scores(scores, console=Console(file=buffer, width=160))
    lines = buffer.getvalue().splitlines()
    header = next(line for line in lines if "stars" in line)
    column = header.index("percentile")
    for i, percentile in zip(range(1, 6), (0, 25, 50, 75, 100), strict=True):
        row = next(line for line in lines if f"model{i} " in line)
        cell = row[column:column + len("percentile")]
        assert str(percentile) in cell, (row, cell)


def test_print_scores_of_nothing_says_so() -> None:
    buffer = io.StringIO()
    print_scores([], console=Console(file=buffer, width=120))
    assert "no scores" in buffer.getvalue()


def test_to_dict_is_json_ready() -> None:
    (score,) = star_ratings([run("a", 1.0, accuracy=0.9, co2_g=0.25, num_parameters=1000)])
    data = json.loads(json.dumps(score.to_dict()))
    assert data["model"] == "a"
    assert data["stars"] == 5
    assert data["stars_text"] == "★★★★★"
    assert data["ess"] == pytest.approx(0.001 / 0.25)


def test_score_imports_no_upper_layer() -> None:
    code = ("import sys, wattprint.score; "
            "bad = [m for m in sys.modules if m.startswith(('wattprint.sweep', 'wattprint.cli', "
            "'wattprint.report', 'wattprint.store', 'rich', 'torch', 'pandas'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_auto_hardware_is_this_machines_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    import wattprint.score as score_module

    records = [run("a", 1.0, hardware="CPU"), run("b", 2.0, hardware="H100")]
    monkeypatch.setattr(score_module, "this_machines_hardware", lambda: "H100")
    assert [s.model for s in calculate_scores("classification", "auto", records=records)] == ["b"]
    monkeypatch.undo()
    # on this machine (no NVIDIA GPU in the tests' sensors): the profile the runner stores
    from wattprint.sensors import detect
    from wattprint.sensors.hardware import detect_hardware

    here = detect_hardware(detect().sensors)
    assert score_module.this_machines_hardware() == here
