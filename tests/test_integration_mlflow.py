"""MLflow: a measurement logged to a run reads back as it was measured, with its provenance.

Every test logs to a local file store in ``tmp_path`` (MLflow 3 refuses the file store unless
``MLFLOW_ALLOW_FILE_STORE`` is set; the SQLite store needs SQLAlchemy, which mlflow-skinny
lacks), from the test's own working directory, and leaves no run active and no tracking URI set.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from powercap import Zone, build_tree, set_energy  # noqa: E402
from readme_blocks import readme_block  # noqa: E402

from wattprint import EnergyMeter, Measurement  # noqa: E402
from wattprint.errors import ConfigError, MissingExtra  # noqa: E402
from wattprint.integrations.mlflow import log_measurement, track  # noqa: E402
from wattprint.sensors import FakeSensor  # noqa: E402


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A file store in tmp_path as the tracking URI, from tmp_path as the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # restored after the test
    root = tmp_path / "mlruns"
    mlflow.set_tracking_uri("file:" + str(root))
    try:
        yield root
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


def fake_meter(*sensors: FakeSensor, country: str = "DE") -> EnergyMeter:
    return EnergyMeter(list(sensors) or [FakeSensor(power_w=40.0)], country=country)


def measure(meter: EnergyMeter, seconds: float = 0.05) -> Measurement:
    with meter.window() as w:
        time.sleep(seconds)
    assert w.measurement is not None
    return w.measurement


def only_run() -> Any:
    (run,) = MlflowClient().search_runs(["0"])
    return run


def test_figures_read_back_as_measured_with_fake_provenance() -> None:
    m = measure(fake_meter())
    assert m.energy_j > 0
    with mlflow.start_run() as run:
        assert log_measurement(m) == run.info.run_id
        assert mlflow.active_run().info.run_id == run.info.run_id  # left active
    data = mlflow.get_run(run.info.run_id).data
    fp = m.footprint
    expected = {"energy_j": m.energy_j, "energy_kwh": fp.kwh, "co2_g": fp.co2_g,
                "water_l": fp.water_l, "duration_s": m.duration_s, "power_w": m.power_w,
                "cpu.energy_j": m.components["cpu"].energy_j, "partial": 0.0}
    assert data.metrics == {f"wattprint.{k}": pytest.approx(v, rel=1e-12)
                            for k, v in expected.items()}
    assert data.metrics["wattprint.co2_g"] == pytest.approx(
        m.energy_j / 3.6e6 * fp.intensity_g_per_kwh, rel=1e-9)
    assert data.params["wattprint.location"] == "DE"
    assert data.params["wattprint.intensity_source"] == fp.intensity_source
    assert float(data.params["wattprint.intensity_g_per_kwh"]) == fp.intensity_g_per_kwh
    assert float(data.params["wattprint.pue"]) == fp.pue
    tags = data.tags
    assert tags["wattprint.cpu.source"] == "fake"
    assert tags["wattprint.cpu.measured"] == "false"
    assert tags["wattprint.cpu.sensors"] == m.components["cpu"].sensors[0]
    assert tags["wattprint.measured"] == "false"
    assert tags["wattprint.partial"] == "false"
    assert "wattprint.errors" not in tags


def test_a_hardware_counter_is_tagged_measured_until_an_estimate_joins(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path / "powercap",
                      [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000)])
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path / "powercap"), country="DE")
    meter.begin("step")
    set_energy(dirs["intel-rapl:0"], 3_500_000)
    m = meter.end("step")
    assert m.measured and m.energy_j == pytest.approx(2.5)

    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    assert log_measurement(m, run_id=run_id) == run_id
    assert mlflow.active_run() is None  # run_id given: no fluent run started
    data = client.get_run(run_id).data
    assert data.metrics["wattprint.energy_j"] == pytest.approx(2.5)
    assert data.tags["wattprint.cpu.source"] == "rapl"
    assert data.tags["wattprint.cpu.measured"] == "true"
    assert data.tags["wattprint.measured"] == "true"

    # An estimate logged to the same run: the run no longer reads as measured, not even
    # after another measured step.
    log_measurement(measure(fake_meter()), run_id=run_id, step=1)
    meter.begin("again")
    set_energy(dirs["intel-rapl:0"], 4_000_000)
    log_measurement(meter.end("again"), run_id=run_id, step=2)
    tags = client.get_run(run_id).data.tags
    assert tags["wattprint.measured"] == "false"
    assert tags["wattprint.cpu.measured"] == "false"
    assert tags["wattprint.cpu.source"] == "fake, rapl"


def test_a_partial_measurement_stays_visibly_partial() -> None:
    meter = fake_meter(FakeSensor(power_w=20.0), FakeSensor(power_w=5.0, component="gpu:0"),
                       FakeSensor(power_w=3.0, component="ram", fail_after_s=0.0))
    m = measure(meter)
    assert m.partial and m.errors and "ram" not in m.components
    client = MlflowClient()
    with mlflow.start_run() as run:
        log_measurement(m, step=0)
        data = client.get_run(run.info.run_id).data
        assert data.tags["wattprint.partial"] == "true"
        assert data.tags["wattprint.errors"] == "\n".join(f"step 0: {e}" for e in m.errors)
        assert data.metrics["wattprint.partial"] == 1.0
        assert data.metrics["wattprint.gpu_0.energy_j"] == pytest.approx(
            m.components["gpu:0"].energy_j, rel=1e-12)
        assert data.tags["wattprint.gpu_0.source"] == "fake"
        assert not any(k.startswith("wattprint.ram.") for k in [*data.metrics, *data.tags])

        # A complete step after it: its own metric says complete, the run stays partial.
        complete = measure(fake_meter())
        log_measurement(complete, step=1)
    data = client.get_run(run.info.run_id).data
    assert data.tags["wattprint.partial"] == "true"
    assert m.errors[0] in data.tags["wattprint.errors"]
    history = client.get_metric_history(run.info.run_id, "wattprint.partial")
    assert sorted((h.step, h.value) for h in history) == [(0, 1.0), (1, 0.0)]


def test_many_errors_are_cut_to_what_mlflow_accepts() -> None:
    good = measure(fake_meter())
    errors = tuple(f"sensor {i}: " + "x" * 100 for i in range(200))
    m = Measurement(good.name, good.start, good.end, good.duration_s, good.energy_j,
                    good.components, good.site, partial=True, errors=errors)
    with mlflow.start_run() as run:
        log_measurement(m)
    text = mlflow.get_run(run.info.run_id).data.tags["wattprint.errors"]
    assert len(text) <= 8000
    lines = text.splitlines()
    assert lines[:-1] == list(errors[:len(lines) - 1])
    assert lines[-1] == f"... and {200 - (len(lines) - 1)} more"


def test_step_metrics_keep_every_epoch() -> None:
    meter = EnergyMeter([FakeSensor(power_fn=lambda t: 10.0 + t)], country="DE")
    energies = []
    with mlflow.start_run() as run:
        for epoch in range(3):
            with meter.epoch() as w:
                time.sleep(0.02)
            assert w.measurement is not None
            energies.append(w.measurement.energy_j)
            log_measurement(w.measurement, step=epoch)
    history = MlflowClient().get_metric_history(run.info.run_id, "wattprint.energy_j")
    assert sorted((h.step, h.value) for h in history) == [
        (step, pytest.approx(e, rel=1e-12)) for step, e in enumerate(energies)]


def test_another_site_in_the_same_run_needs_another_prefix() -> None:
    de, fr = measure(fake_meter()), measure(fake_meter(country="FR"))
    with mlflow.start_run() as run:
        log_measurement(de)
        log_measurement(de, step=1)  # the same site again: fine
        with pytest.raises(ConfigError, match=r"wattprint\.location 'DE', not 'FR'"):
            log_measurement(fr)
        log_measurement(fr, prefix="wattprint.fr.")
    params = mlflow.get_run(run.info.run_id).data.params
    assert (params["wattprint.location"], params["wattprint.fr.location"]) == ("DE", "FR")


def test_log_measurement_without_a_run_starts_one_like_mlflow_log_metric() -> None:
    run_id = log_measurement(measure(fake_meter()))
    active = mlflow.active_run()
    assert active is not None and active.info.run_id == run_id


def test_track_starts_a_run_for_the_block_and_ends_it() -> None:
    meter = fake_meter()
    with track(meter) as w:
        mlflow.log_param("lr", 0.1)  # what the block logs goes to the same run
        time.sleep(0.02)
    assert mlflow.active_run() is None
    assert w.measurement is not None
    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.1"
    assert run.data.metrics["wattprint.energy_j"] == pytest.approx(
        w.measurement.energy_j, rel=1e-12)


def test_track_logs_into_the_active_run_and_leaves_it_active() -> None:
    with mlflow.start_run() as run:
        with track(fake_meter(), step=3, name="epoch-3") as w:
            time.sleep(0.02)
        assert mlflow.active_run().info.run_id == run.info.run_id
    assert w.measurement is not None and w.measurement.name == "epoch-3"
    (point,) = MlflowClient().get_metric_history(run.info.run_id, "wattprint.energy_j")
    assert (point.step, point.value) == (3, pytest.approx(w.measurement.energy_j, rel=1e-12))


def test_a_block_that_raises_is_logged_and_its_run_failed() -> None:
    meter = fake_meter()
    with pytest.raises(RuntimeError, match="diverged"), track(meter):
        time.sleep(0.02)
        raise RuntimeError("diverged")
    assert mlflow.active_run() is None
    run = only_run()
    assert run.info.status == "FAILED"
    assert meter.last_measurement is not None
    assert run.data.metrics["wattprint.energy_j"] == pytest.approx(
        meter.last_measurement.energy_j, rel=1e-12)


def test_a_failure_to_log_does_not_hide_the_block_s_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    log_measurement(measure(fake_meter(country="FR")), run_id=run_id)
    with pytest.raises(ConfigError, match="another prefix"), track(fake_meter(), run_id=run_id):
        pass  # a DE measurement cannot join a run at FR under the same prefix
    with pytest.raises(RuntimeError, match="diverged"), track(fake_meter(), run_id=run_id):
        raise RuntimeError("diverged")
    assert "logging its energy to MLflow run" in caplog.text
    assert mlflow.active_run() is None


def test_track_decorates_a_function_one_run_per_call() -> None:
    meter = fake_meter()

    @track(meter)
    def double(x: int) -> int:
        time.sleep(0.01)
        return 2 * x

    assert (double(1), double(2)) == (2, 4)
    runs = MlflowClient().search_runs(["0"])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    logged = sorted(r.data.metrics["wattprint.energy_j"] for r in runs)
    assert logged == pytest.approx(sorted(m.energy_j for m in list(meter.history)[-2:]),
                                   rel=1e-12)


class ClosingSensor(FakeSensor):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_track_makes_a_meter_from_sensors_and_location_or_takes_one() -> None:
    sensor = ClosingSensor(power_w=15.0)
    with track(sensors=[sensor], country="FR") as w:
        time.sleep(0.02)
    assert w.measurement is not None
    assert sensor.closed  # the meter made for the block is closed after it
    run = only_run()
    assert run.data.params["wattprint.location"] == "FR"
    assert run.data.tags["wattprint.cpu.source"] == "fake"
    with pytest.raises(ConfigError, match="country"), track(fake_meter(), country="DE"):
        pass
    assert mlflow.active_run() is None


def test_without_mlflow_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    m = measure(fake_meter())
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"wattprint\[mlflow\]"):
        log_measurement(m)


def test_importing_wattprint_or_the_integration_does_not_import_mlflow() -> None:
    code = ("import sys, wattprint, wattprint.integrations.mlflow; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_example() -> None:
    calls = []
    namespace: dict[str, Any] = {"train": lambda: calls.append(1), "epochs": 2}
    exec(readme_block("mlflow"), namespace)
    assert len(calls) == 3
    assert mlflow.active_run() is None
    client = MlflowClient()
    runs = client.search_runs(["0"])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    (epochs_run,) = [r for r in runs if r.info.run_name == "epochs"]
    (block_run,) = [r for r in runs if r.info.run_name != "epochs"]
    block = namespace["w"].measurement
    assert block_run.data.metrics["wattprint.energy_j"] == pytest.approx(block.energy_j,
                                                                         rel=1e-12)
    assert block_run.data.params["wattprint.location"] == "DE"
    meter = namespace["meter"]
    measured = "true" if all(s.measured for s in meter.sensors) else "false"
    assert epochs_run.data.tags["wattprint.measured"] == measured
    history = client.get_metric_history(epochs_run.info.run_id, "wattprint.energy_j")
    assert sorted((h.step, h.value) for h in history) == [
        (0, pytest.approx(meter.history[-2].energy_j, rel=1e-12)),
        (1, pytest.approx(meter.history[-1].energy_j, rel=1e-12)),
    ]
