"""RunRecord: one typed record per run, made once from the Measurement, stored, read back and
rated as it is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nvml_standin import StandinGPU, make_nvml

import wattprint
from wattprint import ConfigError, EnergyMeter, FakeSensor, RunRecord, Site, Store
from wattprint._energy_score import energy_score_view
from wattprint.record import FIELDS, RunComponent, provenance
from wattprint.score import calculate_scores
from wattprint.workloads.harness import measure_inference


def test_from_measurement_carries_the_window_its_footprint_and_its_site() -> None:
    site = Site(country="SE", tier="datacenter", water_intensity_l_per_kwh=0.5)
    with (EnergyMeter([FakeSensor(power_w=30.0, component="cpu")], site=site) as meter,
          meter.window("w") as w):
        time.sleep(0.05)
    m = w.measurement
    assert m is not None
    record = RunRecord.from_measurement(m, model_name="mlp", phase="inference")
    fp = m.footprint
    assert record.status == "ok" and record.ok
    assert (record.started_at, record.ended_at) == (m.start.timestamp(), m.end.timestamp())
    assert (record.duration_s, record.energy_j) == (m.duration_s, m.energy_j)
    assert (record.energy_kwh, record.co2_g, record.water_l) == (fp.kwh, fp.co2_g, fp.water_l)
    assert (record.intensity_g_per_kwh, record.intensity_source) == (
        fp.intensity_g_per_kwh, fp.intensity_source)
    assert (record.location, record.tier, record.pue, record.wue_l_per_kwh) == (
        fp.location, "datacenter", fp.pue, fp.wue_l_per_kwh)
    assert record.water_intensity_l_per_kwh == 0.5
    assert record.components == {"cpu": RunComponent(m.energy_j, "fake", False, "machine")}
    assert record.provenance == "fake"
    assert (record.partial, record.errors, record.measurement_notes) == (False, (), m.notes)


def test_a_record_checks_its_fields_and_names_the_bad_one() -> None:
    for change, words in [
        ({"status": "done"}, ["status", "ok, failed"]),
        ({"phase": "eval"}, ["phase", "inference"]),
        ({"energy_j": "12 J"}, ["energy_j", "number"]),
        ({"repetition": 1.5}, ["repetition", "int"]),
        ({"partial": 1}, ["partial", "bool"]),
        ({"errors": "one"}, ["errors", "list of str"]),
        ({"components": {"cpu": {"energy_j": 1.0}}}, ["components['cpu']", "source"]),
        ({"components": {"cpu": {"energy_j": 1.0, "source": "rapl", "measured": True,
                                 "watts": 3}}}, ["components['cpu']", "watts"]),
    ]:
        with pytest.raises(ConfigError) as info:
            RunRecord(**{"status": "ok", **change})
        for word in words:
            assert word in str(info.value), (change, str(info.value))


def test_from_dict_refuses_unknown_keys_and_round_trips_to_dict() -> None:
    with pytest.raises(ConfigError, match="co2_kg") as info:
        RunRecord.from_dict({"status": "ok", "co2_kg": 0.001})
    assert "co2_g" in str(info.value)  # the message lists the real field names
    with pytest.raises(ConfigError, match="needs status"):
        RunRecord.from_dict({"cell_key": "c"})
    record = RunRecord(status="ok", cell_key="c", energy_j=np.float32(2.5), num_samples=np.int64(3),
                       components={"gpu:0": {"energy_j": 2.5, "source": "nvml",
                                             "measured": True}},
                       errors=["gpu:0: lost"], metrics={"accuracy": 0.5})
    assert type(record.energy_j) is float and type(record.num_samples) is int
    assert record.errors == ("gpu:0: lost",)
    data = record.to_dict()
    assert set(data) == {"id", *FIELDS}
    assert data["components"]["gpu:0"] == {"energy_j": 2.5, "source": "nvml", "measured": True,
                                           "scope": "machine"}
    assert RunRecord.from_dict(data) == record


def test_provenance_of_components() -> None:
    counter = RunComponent(1.0, "rapl", True)
    assert provenance({"cpu": counter}) == "measured"
    assert provenance({"gpu:0": RunComponent(1.0, "nvml", True)}, samples=40) == "sampled"
    assert provenance({"cpu": counter, "ram": RunComponent(1.0, "estimate", False)}) == "mixed"
    assert provenance({}) == "none"


def test_the_harness_record_is_stored_read_back_and_rated_unchanged(tmp_path: Path) -> None:
    """measure_inference -> Store -> calculate_scores: the same record all the way."""
    from sklearn.linear_model import LogisticRegression

    train = wattprint.load_dataset("iris", split="train", seed=0)
    test = wattprint.load_dataset("iris", split="test", seed=0)
    model = LogisticRegression(max_iter=500).fit(train.x, train.y)
    made = []
    with EnergyMeter([FakeSensor(power_w=20.0)], carbon_intensity_g_per_kwh=100.0) as meter:
        for name in ("logreg", "logreg-again"):
            record = measure_inference(model.predict, test, name, "classification", "CPU",
                                       num_samples=60, batch_size=8, warmup=0, meter=meter,
                                       progress=False)
            made.append(record.replace(sweep_id="s", cell_key=f"{name}/0", variant="fp32"))
    with Store(tmp_path / "w.db") as store:
        store.begin_sweep("s", project="p", config={})
        for record in made:
            store.write_run(record)
        back = store.runs()
    assert back == made  # every field as made: nothing reshaped on the way
    assert all(isinstance(r, RunRecord) and r.id is not None for r in back)
    assert back[0].metrics is not None and back[0].metrics["accuracy"] > 0.8
    assert back[0].co2_g == pytest.approx(back[0].energy_kwh * 100.0)  # grams, one spelling
    scores = calculate_scores("classification", "CPU", db=tmp_path / "w.db")
    assert sorted(s.model for s in scores) == ["logreg", "logreg-again"]
    view = energy_score_view(back[0])  # ML Energy Score's shape, made at the edge
    assert view["co2_kg"] == pytest.approx(back[0].co2_g / 1000.0)
    assert view["duration_seconds"] == back[0].duration_s
    assert view["accuracy"] == back[0].metrics["accuracy"]


def test_a_power_only_gpu_is_sampled_in_every_phase_of_a_sweep(tmp_path: Path) -> None:
    """A GPU without an energy counter is sampled: the training, optimization and inference
    runs of a sweep all say ``sampled`` (inference runs said ``measured`` when the runner
    rebuilt their record from the harness's dict and lost the sample count)."""
    module = make_nvml([StandinGPU(name="NVIDIA L4", supports_energy=False, power_mw=60_000)])
    config: dict[str, Any] = {
        "project": "sampled",
        "models": [{"name": "mlp", "source": "sklearn:LogisticRegression"}],
        "datasets": [{"name": "iris"}],
        "monitoring": {"repetitions": 1, "warmup": 0, "batch_size": 16},
        "output": {"export_formats": [], "output_dir": str(tmp_path / "out"),
                   "db": str(tmp_path / "w.db")},
    }
    meter = EnergyMeter(["nvml"], nvml=module, carbon_intensity_g_per_kwh=300.0)
    try:
        wattprint.Benchmark(config).run(meter=meter, progress=False)
    finally:
        meter.close()
    with Store(tmp_path / "w.db", read_only=True) as store:
        runs = store.runs(status="ok")
    phases = {r.phase for r in runs}
    assert "inference" in phases and len(phases) >= 2, phases
    assert {r.provenance for r in runs} == {"sampled"}, [(r.phase, r.provenance) for r in runs]
    assert {r.hardware for r in runs} == {"L4"}
