"""Apple Silicon power from ``powermetrics``, replayed by ``powermetrics_replay.py``."""

from __future__ import annotations

import plistlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from powermetrics_replay import RECORDED
from powermetrics_replay import __file__ as REPLAY
from powermetrics_replay import sample as recorded_sample

from wattprint import EnergyMeter
from wattprint.errors import ConfigError, SensorError
from wattprint.sensors import PowerSensor, Sensor, Source, detect, powermetrics
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.hardware import detect_hardware


def replay(*args: str) -> list[str]:
    return [sys.executable, REPLAY, *args]


def sensors_for(command: list[str]) -> list[PowerSensor]:
    found, missing = powermetrics.discover(DetectOptions(powermetrics=command), set())
    assert missing == []
    return [s for s in found if isinstance(s, PowerSensor)]


@pytest.fixture
def closing() -> Iterator[list[Sensor]]:
    made: list[Sensor] = []
    yield made
    for s in made:
        s.close()


def by_component(sensors: list[PowerSensor]) -> dict[str, PowerSensor]:
    return {s.component: s for s in sensors}


def test_off_macos_it_says_so_without_starting_anything() -> None:
    if sys.platform == "darwin":
        pytest.skip("on macOS the default command is real")
    found, (why,) = powermetrics.discover(DetectOptions(), set())
    assert found == [] and why.reason == "not available: macOS only"
    code = ("import sys; from wattprint.sensors import detect; detect(); "
            "print(sorted(m for m in ('subprocess', 'plistlib', 'pathlib', 'logging') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_detection_starts_nothing_and_reading_starts_the_command(
    tmp_path: Path, closing: list[Sensor]
) -> None:
    starts = tmp_path / "starts"
    sensors = sensors_for(replay("--starts-file", str(starts)))
    closing.extend(sensors)
    assert [(s.name, s.component) for s in sensors] == [
        ("powermetrics:cpu", "cpu"), ("powermetrics:gpu", "gpu:0"), ("powermetrics:ane", "ane")]
    assert all(s.source is Source.POWERMETRICS and s.measured for s in sensors)
    time.sleep(0.1)
    assert not starts.exists()
    by = by_component(sensors)
    cpu_w = [row[1] / 1000 for row in RECORDED]
    assert by["cpu"].power_w() in cpu_w
    assert by["gpu:0"].power_w() in [row[2] / 1000 for row in RECORDED]
    assert by["ane"].power_w() in [row[3] / 1000 for row in RECORDED]
    assert starts.read_text() == "start\n"  # one command for the three sensors


def test_each_reading_is_the_latest_sample(closing: list[Sensor]) -> None:
    sensors = sensors_for(replay("--interval", "0.05"))
    closing.extend(sensors)
    gpu = by_component(sensors)["gpu:0"]
    seen = set()
    for _ in range(30):
        seen.add(gpu.power_w())
        time.sleep(0.02)
    assert len(seen) >= 3  # it follows the stream, not a first value


def test_a_window_integrates_the_stream(closing: list[Sensor]) -> None:
    sensors = sensors_for(replay())
    closing.extend(sensors)
    meter = EnergyMeter(list(sensors), sample_hz=50)
    with meter.window() as w:
        time.sleep(0.3)
    m = w.measurement
    assert m is not None and not m.partial, m and m.errors
    assert set(m.components) == {"cpu", "gpu:0", "ane"}
    lo, hi = min(r[1] for r in RECORDED) / 1000, max(r[1] for r in RECORDED) / 1000
    assert lo * m.duration_s <= m.components["cpu"].energy_j <= hi * m.duration_s
    meter.close()


@pytest.mark.parametrize(("args", "words"), [
    (("--samples", "2"), "ended (exit code 0)"),
    (("--samples", "2", "--exit-code", "3"), "exit code 3): powermetrics: replay ended"),
    (("--garbage",), "not a plist"),
])
def test_a_stream_that_ends_or_breaks_marks_the_window_partial(
    args: tuple[str, ...], words: str
) -> None:
    sensors = sensors_for(replay("--interval", "0.02", *args))
    meter = EnergyMeter(list(sensors), sample_hz=50)
    with meter.window() as w:
        time.sleep(0.4)
    m = w.measurement
    assert m is not None and m.partial
    assert any(words in e for e in m.errors), m.errors
    # the next window starts the command again
    meter.close()


def test_after_a_failure_the_next_reading_restarts(tmp_path: Path,
                                                   closing: list[Sensor]) -> None:
    starts = tmp_path / "starts"
    (cpu, *rest) = sensors_for(replay("--samples", "1", "--starts-file", str(starts)))
    closing.extend([cpu, *rest])
    for s in (cpu, *rest):
        s.power_w()
    time.sleep(0.3)  # the replay has ended
    with pytest.raises(SensorError, match="ended"):
        cpu.power_w()
    assert cpu.power_w() > 0  # a fresh run
    assert starts.read_text() == "start\nstart\n"
    for other in rest:  # they read the run that ended: each is told once
        with pytest.raises(SensorError, match="ended"):
            other.power_w()


def test_a_stalled_stream_raises(monkeypatch: pytest.MonkeyPatch,
                                 closing: list[Sensor]) -> None:
    monkeypatch.setattr(powermetrics, "STALE_S", 0.2)
    (cpu, *rest) = sensors_for(replay("--samples", "1", "--stall"))
    closing.extend([cpu, *rest])
    cpu.power_w()
    time.sleep(0.8)  # longer than 0.2 s and than 5 of its 100 ms samples
    with pytest.raises(SensorError, match="sent no sample"):
        cpu.power_w()


def test_a_command_that_cannot_start_raises(closing: list[Sensor]) -> None:
    sensors = sensors_for(["/nonexistent/powermetrics"])
    closing.extend(sensors)
    with pytest.raises(SensorError, match="cannot start"):
        sensors[0].power_w()


def test_idle_command_stops_and_close_stops_it(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(powermetrics, "IDLE_STOP_S", 0.1)
    starts = tmp_path / "starts"
    sensors = sensors_for(replay("--starts-file", str(starts)))
    stream = sensors[0]._stream  # type: ignore[attr-defined]
    sensors[0].power_w()
    proc = stream._proc
    assert proc is not None and proc.poll() is None
    time.sleep(0.5)  # no reading: no window open
    assert proc.poll() is not None and stream._proc is None
    assert sensors[0].power_w() > 0  # started again
    proc = stream._proc
    assert proc is not None
    for s in sensors:
        s.close()
    assert proc.poll() is not None
    assert starts.read_text() == "start\nstart\n"


def test_parse_sample_reads_power_or_energy() -> None:
    sample = plistlib.loads(recorded_sample(2).rstrip(b"\x00"))
    assert powermetrics.parse_sample(sample) == {"cpu": 2.212, "gpu": 9.645, "ane": 1.317}
    for key in ("cpu_power", "gpu_power", "ane_power"):
        del sample["processor"][key]
    watts = powermetrics.parse_sample(sample)
    assert watts["cpu"] == pytest.approx(2.212, rel=5e-3)  # whole millijoules
    assert watts["gpu"] == pytest.approx(9.645, rel=5e-3)
    del sample["processor"]["gpu_energy"]  # the gpu dictionary's own gpu_energy
    assert powermetrics.parse_sample(sample)["gpu"] == pytest.approx(9.645, rel=5e-3)


def test_notes_flag_a_window_shorter_than_a_sample(closing: list[Sensor]) -> None:
    sensors = sensors_for(replay())
    closing.extend(sensors)
    sensors[0].power_w()
    (note,) = sensors[0].notes(0.01)
    assert "100 ms" in note
    assert sensors[0].notes(1.0) == ()


def test_the_chip_is_the_hardware_label(monkeypatch: pytest.MonkeyPatch,
                                        closing: list[Sensor]) -> None:
    monkeypatch.setattr(powermetrics, "chip_name", lambda: "Apple M2 Pro")
    sensors = sensors_for(replay())
    closing.extend(sensors)
    assert sensors[1].description.startswith("Apple M2 Pro: GPU power")
    assert detect_hardware(sensors) == "M2 Pro"


def test_powermetrics_false_and_only(tmp_path: Path) -> None:
    assert powermetrics.discover(DetectOptions(powermetrics=False), set()) == ([], [])
    with pytest.raises(ConfigError, match="powermetrics=False"):
        detect(powermetrics=False, only=["powermetrics"])
    found = detect(powermetrics=replay(), only=["powermetrics"])
    assert [s.component for s in found] == ["cpu", "gpu:0", "ane"]
    for s in found:
        s.close()


def test_covered_components_are_left_out(closing: list[Sensor]) -> None:
    found, _ = powermetrics.discover(DetectOptions(powermetrics=replay()), {"cpu"})
    closing.extend(found)
    assert [s.component for s in found] == ["gpu:0", "ane"]


def test_the_chip_flows_into_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    import wattprint

    monkeypatch.setattr(powermetrics, "chip_name", lambda: "Apple M2 Pro")
    meter = EnergyMeter(["powermetrics"], powermetrics=replay())
    try:
        result = wattprint.measure_energy(lambda batch: batch, np.zeros((4, 1)), "m", "t",
                                          num_samples=4, meter=meter, progress=False)
    finally:
        meter.close()
    assert result["hardware"] == "M2 Pro"
    assert {"cpu", "gpu:0", "ane"} <= set(result["components"])
    assert result["components"]["gpu:0"]["source"] == "powermetrics"


def test_a_stream_without_nul_separators_raises(closing: list[Sensor]) -> None:
    text_mode = [sys.executable, "-c", "import sys, time; sys.stdout.write('CPU Power: 1187 mW"
                 "\\n' * 80000); sys.stdout.flush(); time.sleep(30)"]
    sensors = sensors_for(text_mode)
    closing.extend(sensors)
    with pytest.raises(SensorError, match="without a NUL"):
        sensors[0].power_w()
