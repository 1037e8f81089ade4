"""Coming from Energy-Meter: its training-loop calls and its ``summary()`` work as its README
documents them (``meter.device`` is ``"gpu"`` or ``"cpu"``, ``meter.gpu_name``, ``with
meter.epoch():`` / ``with meter.batch():``, ``last_batch()``, ``summary()``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from nvml_standin import StandinGPU, make_nvml

from wattprint import EnergyMeter, FakeSensor
from wattprint.sensors.hardware import detect_hardware

#: The keys of Energy-Meter's documented ``summary()`` and of its batch and epoch summaries.
SUMMARY_KEYS = {"batch_summary", "carbon_intensity_g_per_kwh", "device", "epoch_summary",
                "gpu_name", "num_batches", "num_epochs"}
PART_KEYS = {"count", "mean_carbon_g", "mean_duration_s", "mean_energy_j", "total_carbon_g",
             "total_duration_s", "total_energy_j"}
#: What wattprint adds to each part: how many of its windows are partial.
OUR_PART_KEYS = {"partial_count"}


@pytest.fixture
def meters() -> Iterator[list[EnergyMeter]]:
    made: list[EnergyMeter] = []
    yield made
    for meter in made:
        meter.close()


def test_energy_meter_batch_and_epoch_loop_as_documented(meters: list[EnergyMeter]) -> None:
    # Energy-Meter's README: the constructor's keywords, then device and gpu name.
    meter = EnergyMeter([FakeSensor(power_w=80.0), FakeSensor(power_w=20.0, component="ram")],
                        sample_interval=0.05, cpu_tdp_w=65.0, gpu_tdp_w=200.0,
                        carbon_intensity_g_per_kwh=450.0)
    meters.append(meter)
    assert f"Device Detected: {meter.device.upper()}" == "Device Detected: CPU"
    assert meter.device == "cpu" and meter.gpu_name is None
    assert meter.components == ("cpu", "ram")

    batches: list[dict[str, Any]] = []
    epochs: list[dict[str, Any]] = []
    for epoch in range(2):
        with meter.epoch():
            for batch_idx in range(3):
                with meter.batch():
                    time.sleep(0.01)
                last_metrics = meter.last_batch()
                assert last_metrics is not None
                line = (f"Epoch {epoch} Batch {batch_idx}: {last_metrics['energy_j']:.2f} J, "
                        f"{last_metrics['carbon_g']:.4f} gCO2")
                assert line.endswith(" gCO2")
                batches.append(last_metrics)
        last_epoch = meter.last_epoch()
        assert last_epoch is not None
        epochs.append(last_epoch)

    # Each batch: its own window, with the power that the sensors report (100 W in all).
    assert len({b["name"] for b in batches}) == 6
    for b in batches:
        assert b["avg_power_w"] == pytest.approx(100.0, rel=1e-6)
        assert b["energy_j"] == pytest.approx(b["avg_power_w"] * b["duration_s"])
        assert b["carbon_g"] == pytest.approx(b["energy_j"] / 3.6e6 * 450.0)

    s = meter.summary()
    assert set(s) >= SUMMARY_KEYS
    assert s["device"] == "cpu" and s["gpu_name"] is None
    assert s["carbon_intensity_g_per_kwh"] == 450.0 == meter.footprint_model.intensity_g_per_kwh
    assert s["num_batches"] == 6 and s["num_epochs"] == 2
    bs, es = s["batch_summary"], s["epoch_summary"]
    assert set(bs) == set(es) == PART_KEYS | OUR_PART_KEYS
    assert bs["count"] == 6 and es["count"] == 2
    assert bs["partial_count"] == es["partial_count"] == 0
    assert bs["total_energy_j"] == pytest.approx(sum(b["energy_j"] for b in batches))
    assert bs["total_duration_s"] == pytest.approx(sum(b["duration_s"] for b in batches))
    assert bs["total_carbon_g"] == pytest.approx(sum(b["carbon_g"] for b in batches))
    assert bs["mean_energy_j"] == pytest.approx(bs["total_energy_j"] / 6)
    assert es["total_energy_j"] == pytest.approx(sum(e["energy_j"] for e in epochs))
    assert es["total_carbon_g"] == pytest.approx(sum(e["carbon_g"] for e in epochs))
    assert es["total_energy_j"] > bs["total_energy_j"]  # epochs contain their batches
    # The parts, as Energy-Meter's batch_summary() and epoch_summary() give them.
    assert meter.batch_summary() == bs and meter.epoch_summary() == es


def test_energy_meter_summary_counts_the_windows_a_sensor_failed_in(
        meters: list[EnergyMeter]) -> None:
    """A GPU sensor that fails from the second batch on: that batch and those after it miss
    its energy, and the summary says how many, beside totals that are not the whole."""
    started = time.perf_counter()
    gpu = FakeSensor(power_w=200.0, component="gpu:0", name="gpu:0", fail_after_s=10.0,
                     clock=lambda: time.perf_counter() - started)
    meter = EnergyMeter([FakeSensor(power_w=80.0), gpu])
    meters.append(meter)
    partial = []
    with meter.epoch():
        for batch in range(4):
            if batch == 1:
                started -= 10.0  # the GPU's clock jumps past its failure
            with meter.batch():
                time.sleep(0.01)
            last = meter.last_batch()
            assert last is not None
            partial.append(last["partial"])
    assert partial == [False, True, True, True]
    s = meter.summary()
    assert s["batch_summary"]["partial_count"] == 3 and s["batch_summary"]["count"] == 4
    assert s["epoch_summary"]["partial_count"] == 1 and s["epoch_summary"]["count"] == 1


def test_energy_meter_names_the_gpu_it_reads(meters: list[EnergyMeter]) -> None:
    module = make_nvml([StandinGPU(name="NVIDIA A100-SXM4-80GB", power_mw=250_000)])
    meter = EnergyMeter(["nvml"], nvml=module, carbon_intensity_g_per_kwh=300.0)
    meters.append(meter)
    assert meter.device == "gpu"
    assert meter.gpu_name == "A100"  # the hardware label runs are filed and rated under
    assert meter.components == ("gpu:0",)
    with meter.epoch(), meter.batch():
        time.sleep(0.01)
    s = meter.summary()
    assert (s["device"], s["gpu_name"]) == ("gpu", "A100")
    assert s["carbon_intensity_g_per_kwh"] == 300.0
    last_batch = meter.last_batch()
    assert last_batch is not None and last_batch["measured"] is True
    assert s["batch_summary"]["total_energy_j"] == pytest.approx(last_batch["energy_j"])


def test_energy_meter_device_is_gpu_when_any_component_is_a_gpu(
    meters: list[EnergyMeter],
) -> None:
    cpu, gpu = FakeSensor(power_w=50.0), FakeSensor(power_w=200.0, component="gpu:0")
    meter = EnergyMeter([cpu, gpu])
    meters.append(meter)
    assert meter.device == "gpu"
    assert meter.components == ("cpu", "gpu:0")
    assert meter.gpu_name == detect_hardware([gpu]) and meter.gpu_name is not None
    assert meter.summary()["device"] == "gpu"
    cpu_only = EnergyMeter([FakeSensor(power_w=50.0)])
    meters.append(cpu_only)
    assert (cpu_only.device, cpu_only.gpu_name, cpu_only.components) == ("cpu", None, ("cpu",))


def test_energy_meter_summary_carries_the_meters_carbon_intensity(
    meters: list[EnergyMeter],
) -> None:
    meter = EnergyMeter([FakeSensor(power_w=100.0)], country="FR", pue=1.5)
    meters.append(meter)
    with meter.batch():
        time.sleep(0.01)
    s = meter.summary()
    intensity = meter.footprint_model.intensity_g_per_kwh
    assert s["carbon_intensity_g_per_kwh"] == intensity
    other = EnergyMeter([FakeSensor(power_w=1.0)], carbon_intensity_g_per_kwh=intensity + 1)
    meters.append(other)
    assert other.summary()["carbon_intensity_g_per_kwh"] == intensity + 1
    # The carbon figures include the site's PUE; the summary says which.
    assert s["pue"] == 1.5
    bs = s["batch_summary"]
    assert bs["total_carbon_g"] == pytest.approx(bs["total_energy_j"] / 3.6e6 * 1.5 * intensity)
