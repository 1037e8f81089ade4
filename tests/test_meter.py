"""The energy meter: windows, sampling, failures, idle baseline, training helpers."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wattprint
from wattprint import ConfigError, EnergyMeter, FakeSensor, SensorError, WindowError
from wattprint.meter import _Integrator
from wattprint.sensors import CounterSensor, Source


class Counter(CounterSensor):
    """A counter the test drives by hand; counts its reads."""

    def __init__(
        self, name: str = "test:counter", component: str = "cpu", watch: float | None = None
    ) -> None:
        self.name = name
        self.component = component
        self.source = Source.FAKE
        self.measured = True
        self.description = "test counter"
        self.value = 0.0
        self.reads = 0
        self.fail: SensorError | None = None
        self._watch = watch

    def energy_j(self) -> float:
        self.reads += 1
        if self.fail is not None:
            err, self.fail = self.fail, None
            raise err
        return self.value

    def watch_interval_s(self) -> float | None:
        return self._watch


def meter_with(*sensors: object, **kwargs: object) -> EnergyMeter:
    return EnergyMeter(list(sensors), **kwargs)  # type: ignore[arg-type]


def test_constant_power_energy_is_power_times_duration() -> None:
    meter = meter_with(FakeSensor(power_w=25.0))
    with meter.window("block") as w:
        time.sleep(0.05)
    m = w.measurement
    assert m is not None
    assert m.duration_s >= 0.05
    assert m.energy_j == pytest.approx(25.0 * m.duration_s, rel=1e-9)
    assert m.components["cpu"].source == "fake"
    assert m.components["cpu"].measured is False
    assert m.measured is False
    assert m.samples >= 1
    assert not m.partial
    meter.close()


def test_begin_end_and_counter_deltas_per_component() -> None:
    cpu0, cpu1, ram = Counter("c0"), Counter("c1"), Counter("r0", component="ram")
    meter = meter_with(cpu0, cpu1, ram)
    cpu0.value, cpu1.value, ram.value = 100.0, 200.0, 5.0
    meter.begin("a")
    cpu0.value, cpu1.value, ram.value = 110.0, 203.0, 6.5
    m = meter.end("a")
    assert m.components["cpu"].energy_j == pytest.approx(13.0)
    assert m.components["cpu"].sensors == ("c0", "c1")
    assert m.components["ram"].energy_j == pytest.approx(1.5)
    assert m.energy_j == pytest.approx(14.5)
    assert m.samples == 0  # counters only: nothing sampled
    assert meter._shared.thread is None  # and no thread was started


def test_windows_nest_and_overlap() -> None:
    c = Counter()
    meter = meter_with(c)
    meter.begin("outer")
    c.value = 1.0
    meter.begin("inner")
    c.value = 3.0
    meter.begin("overlap")
    c.value = 6.0
    inner = meter.end("inner")
    c.value = 10.0
    outer = meter.end("outer")
    c.value = 15.0
    overlap = meter.end("overlap")
    assert (outer.energy_j, inner.energy_j, overlap.energy_j) == (10.0, 5.0, 12.0)


def test_window_misuse_is_an_error() -> None:
    meter = meter_with(Counter())
    with pytest.raises(WindowError, match="no open window named 'x'"):
        meter.end("x")
    meter.begin("x")
    with pytest.raises(WindowError, match="already open"):
        meter.begin("x")
    meter.begin("y")
    with pytest.raises(WindowError, match="name the one to end"):
        meter.end()


def test_decorator_evaluate_and_history() -> None:
    meter = meter_with(FakeSensor(power_w=10.0))

    @meter.measure
    def work(x: int) -> int:
        time.sleep(0.01)
        return x * 2

    assert work(21) == 42
    m = work.last_measurement  # type: ignore[attr-defined]
    assert m.energy_j == pytest.approx(10.0 * m.duration_s)
    assert m.name.startswith("test_decorator_evaluate_and_history.<locals>.work")
    seconds, joules, result = meter.evaluate(sorted, [3, 1, 2])
    assert result == [1, 2, 3]
    assert joules == pytest.approx(10.0 * seconds)
    assert meter.last_measurement is not None
    assert len(meter.history) == 2


def test_evaluate_warns_when_its_joules_miss_a_failed_sensor() -> None:
    """greenAI's and Energy-Meter's ``evaluate`` returns bare numbers: where a sensor failed in
    the window, a warning says the joules miss it, and the result is still returned."""
    import warnings

    from wattprint.errors import PartialMeasurementWarning

    meter = meter_with(FakeSensor(power_w=10.0),
                       FakeSensor(power_w=50.0, component="gpu:0", name="gpu:0",
                                  fail_after_s=0.0))
    with pytest.warns(PartialMeasurementWarning, match=r"the joules miss what failed: gpu:0") \
            as caught:
        seconds, joules, result = meter.evaluate(sorted, [3, 1, 2])
    assert result == [1, 2, 3]
    assert caught[0].filename == __file__  # pointed at the caller's line
    m = meter.last_measurement
    assert m is not None and m.partial and joules == m.energy_j
    assert joules == pytest.approx(10.0 * seconds)  # the CPU's alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole window warns nothing
        meter_with(FakeSensor(power_w=10.0)).evaluate(sorted, [2, 1])


def test_module_level_measure_as_decorator_and_context_manager() -> None:
    meter = meter_with(FakeSensor(power_w=4.0))

    @wattprint.measure
    def plain() -> str:
        return "ok"

    with wattprint.measure("block", meter=meter) as w:
        time.sleep(0.01)
    assert w.measurement is not None
    assert w.measurement.name == "block"
    assert w.measurement.energy_j == pytest.approx(4.0 * w.measurement.duration_s)

    @wattprint.measure("named", meter=meter)
    def named() -> int:
        return 7

    assert named() == 7
    assert named.last_measurement.name == "named#1"  # type: ignore[attr-defined]
    # The default meter is made on first call (auto-detected sensors), not at decoration.
    assert plain() == "ok"
    assert plain.last_measurement.energy_j >= 0  # type: ignore[attr-defined]


def test_varying_power_is_integrated() -> None:
    # 10 W rising by 100 W each second: trapezoids are exact for a linear function, whatever
    # the sample times, so the window's energy must equal the exact integral.
    sensor = FakeSensor(power_fn=lambda t: 10.0 + 100.0 * t)
    meter = meter_with(sensor, sample_hz=200.0)
    meter.begin("w")
    a = meter._shared.windows["w"].t0 - sensor._t0
    time.sleep(0.2)
    m = meter.end("w")
    b = a + m.duration_s
    exact = 10.0 * (b - a) + 50.0 * (b * b - a * a)
    assert m.energy_j == pytest.approx(exact, rel=1e-3)
    assert m.samples > 5
    meter.close()


def test_a_fake_sensor_replays_its_trace_between_points_and_holds_it_outside() -> None:
    now = [0.0]
    sensor = FakeSensor(trace=[(2.0, 30.0), (0.0, 10.0), (4.0, 30.0)], clock=lambda: now[0])
    readings = {}
    for t in (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 9.0):
        now[0] = t
        readings[t] = sensor.power_w()
    assert readings == {-1.0: 10.0, 0.0: 10.0, 0.5: 15.0, 1.0: 20.0, 2.0: 30.0, 3.0: 30.0,
                        4.0: 30.0, 9.0: 30.0}
    with pytest.raises(ConfigError, match="at least one"):
        FakeSensor(trace=[])


def test_sensor_failing_mid_window_marks_partial_and_keeps_the_rest() -> None:
    good = Counter("good", component="ram")
    bad = FakeSensor(power_w=50.0, component="gpu:0", name="flaky", fail_after_s=0.05)
    meter = meter_with(good, bad, sample_hz=100.0)
    meter.begin("w")
    good.value = 2.0
    time.sleep(0.1)  # the sampler hits the failure inside the window
    m = meter.end("w")  # never raises into the user's code
    assert m.partial
    assert any("flaky" in e and "simulated failure" in e for e in m.errors)
    assert "gpu:0" not in m.components  # never a guessed figure
    assert m.components["ram"].energy_j == 2.0
    assert m.energy_j == 2.0
    json.dumps(m.to_dict())


def test_counter_error_at_one_read_affects_windows_open_across_it() -> None:
    c = Counter()
    meter = meter_with(c)
    meter.begin("before")
    c.fail = SensorError("wrapped with unknown range")
    meter.begin("during")  # the read at this edge fails
    c.value = 4.0
    during = meter.end("during")
    before = meter.end("before")
    after_begin = meter.begin("after")
    c.value = 9.0
    after = meter.end(after_begin)
    assert before.partial and during.partial
    assert "wrapped with unknown range" in before.errors[0]
    assert before.components == {} and before.energy_j == 0.0
    assert not after.partial and after.energy_j == 5.0


def test_counter_going_backwards_is_reported_not_negative() -> None:
    c = Counter()
    meter = meter_with(c)
    c.value = 10.0
    meter.begin("w")
    c.value = 5.0
    m = meter.end("w")
    assert m.partial and "backwards" in m.errors[0]
    assert m.energy_j == 0.0 and "cpu" not in m.components


def test_sampler_runs_only_while_a_window_is_open() -> None:
    meter = meter_with(FakeSensor(power_w=1.0), sample_hz=200.0)
    with meter.window():
        time.sleep(0.1)
    shared = meter._shared
    assert shared.thread is not None and shared.thread.is_alive()
    ticks = shared.ticks
    time.sleep(0.15)
    assert shared.ticks == ticks  # parked: no sampling outside windows
    with meter.window():
        time.sleep(0.05)
    assert shared.ticks > ticks
    meter.close()
    assert not shared.thread.is_alive()


def test_fixed_sample_interval() -> None:
    meter = meter_with(FakeSensor(power_w=1.0), sample_interval=0.05)
    with meter.window() as w:
        time.sleep(0.5)
    assert w.measurement is not None
    assert 5 <= w.measurement.samples <= 13
    meter.close()


def test_wrapping_counters_are_watched_during_long_windows() -> None:
    c = Counter(watch=0.02)
    meter = meter_with(c)
    with meter.window():
        reads = c.reads
        time.sleep(0.2)
    assert c.reads - reads >= 5  # the watcher read it between the edges
    reads = c.reads
    time.sleep(0.1)
    assert c.reads == reads  # and not once the window closed
    meter.close()


def test_calibrate_idle_reports_dynamic_energy() -> None:
    level = {"w": 20.0}
    meter = meter_with(FakeSensor(power_fn=lambda t: level["w"]))
    idle = meter.calibrate_idle(0.05)
    assert idle == {"cpu": pytest.approx(20.0)}
    level["w"] = 30.0
    with meter.window() as w:
        time.sleep(0.05)
    m = w.measurement
    assert m is not None and m.idle_j is not None and m.dynamic_j is not None
    assert m.idle_j == pytest.approx(20.0 * m.duration_s, rel=1e-6)
    assert m.dynamic_j == pytest.approx(10.0 * m.duration_s, rel=1e-3)
    assert m.components["cpu"].dynamic_j == pytest.approx(m.dynamic_j)
    with pytest.raises(ConfigError):
        meter.calibrate_idle(0)
    meter.close()


def test_training_helpers() -> None:
    meter = meter_with(FakeSensor(power_w=100.0))
    assert meter.last_batch() is None
    for _ in range(2):
        with meter.epoch():
            for _ in range(3):
                with meter.batch():
                    time.sleep(0.002)
        epoch = meter.last_epoch()  # the epoch that just ended
    batch = meter.last_batch()
    assert batch is not None and epoch is not None
    assert set(batch) >= {"duration_s", "energy_j", "carbon_g"}
    assert batch["energy_j"] == pytest.approx(100.0 * batch["duration_s"])
    s = meter.summary()
    assert s["num_batches"] == 6 and s["num_epochs"] == 2
    assert s["device"] == "cpu" and s["gpu_name"] is None
    assert epoch["name"].startswith("epoch-2#")
    bs, es = s["batch_summary"], s["epoch_summary"]
    for part in (bs, es):
        assert set(part) == {
            "count", "mean_duration_s", "mean_energy_j", "mean_carbon_g",
            "total_duration_s", "total_energy_j", "total_carbon_g", "partial_count",
        }
        assert part["partial_count"] == 0
        assert part["mean_energy_j"] == pytest.approx(part["total_energy_j"] / part["count"])
    # Epochs contain their batches.
    assert es["total_energy_j"] > bs["total_energy_j"]
    assert es["total_carbon_g"] == pytest.approx(
        wattprint.footprint(es["total_energy_j"]).co2_g
    )


def test_meter_unit_is_joules_as_greenai_get_unit_says() -> None:
    meter = meter_with(FakeSensor(power_w=10.0))
    assert meter.unit == "J" and meter.get_unit() == "J"
    with meter.window() as w:
        time.sleep(0.002)
    assert w.measurement is not None
    assert w.measurement.energy_j == pytest.approx(10.0 * w.measurement.duration_s)  # joules
    meter.close()


def test_meter_repr_names_each_component_and_its_source() -> None:
    meter = meter_with(FakeSensor(power_w=10.0), FakeSensor(power_w=5.0, component="gpu:0"))
    assert repr(meter) == "<EnergyMeter cpu (fake, estimated), gpu:0 (fake, estimated)>"
    assert meter.components == ("cpu", "gpu:0") and meter.device == "gpu"
    meter.close()


def test_footprint_is_attached_with_the_meters_location() -> None:
    meter = meter_with(Counter(), carbon_intensity_g_per_kwh=400.0, pue=1.5)
    meter._shared.sensors[0].value = 0.0  # type: ignore[attr-defined]
    meter.begin("w")
    meter._shared.sensors[0].value = 3.6e6  # type: ignore[attr-defined]
    m = meter.end("w")
    assert m.footprint.kwh == pytest.approx(1.0)
    assert m.footprint.co2_g == pytest.approx(600.0)
    data = m.to_dict()
    json.dumps(data)
    assert data["footprint"]["co2_g"] == pytest.approx(600.0)
    assert data["components"]["cpu"]["source"] == "fake"


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="sensors must be"):
        EnergyMeter("bogus")
    with pytest.raises(ConfigError, match="sample_hz"):
        EnergyMeter([FakeSensor(power_w=1)], sample_hz=0)
    with pytest.raises(ConfigError, match="given twice"):
        s = FakeSensor(power_w=1)
        EnergyMeter([s, s])
    with pytest.raises(ConfigError, match="unknown sensor backend"):
        EnergyMeter(["gpu-magic"])
    with pytest.raises(ConfigError, match="mode must be one of machine, process"):
        EnergyMeter([FakeSensor(power_w=1)], mode="container")
    with pytest.raises(ConfigError, match="'cpu' mix sources"):
        mixed = Counter()
        mixed.source = Source.RAPL
        EnergyMeter([FakeSensor(power_w=1), mixed])
    with pytest.raises(ConfigError, match="not a sensor"):
        EnergyMeter([3.5])  # type: ignore[list-item]


def test_named_backend_that_is_missing_is_an_error(tmp_path: object) -> None:
    with pytest.raises(wattprint.SensorUnavailable, match="rapl"):
        EnergyMeter(["rapl"], powercap_root=str(tmp_path) + "/absent")


def test_auto_detection_falls_back_to_visible_estimates(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="wattprint"):
        meter = EnergyMeter(powercap_root=str(tmp_path) + "/absent")
    assert "estimating cpu, ram: no readable hardware counter (rapl:" in caplog.text
    assert {s.component for s in meter.sensors} >= {"cpu", "ram"}
    with meter.window() as w:
        sum(i * i for i in range(20000))
    m = w.measurement
    assert m is not None and m.energy_j > 0
    assert all(c.source == "estimate" and not c.measured for c in m.components.values())
    assert any(x.backend == "rapl" for x in meter.missing)
    meter.close()


def test_windows_from_several_threads() -> None:
    meter = meter_with(FakeSensor(power_w=5.0), sample_hz=100.0)
    results: list[float] = []

    def run(i: int) -> None:
        for j in range(20):
            with meter.window(f"t{i}-{j}") as w:
                time.sleep(0.001)
            assert w.measurement is not None
            results.append(w.measurement.energy_j / w.measurement.duration_s)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    assert all(math.isclose(r, 5.0, rel_tol=1e-6) for r in results)
    meter.close()


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=1e-6, max_value=10.0), st.floats(min_value=0.0, max_value=1e4)
        ),
        min_size=1,
        max_size=50,
    )
)
def test_trapezoid_integration_is_exact_for_piecewise_linear_power(
    steps: list[tuple[float, float]],
) -> None:
    integ = _Integrator()
    t, expected = 0.0, 0.0
    integ.add(0.0, 0.0)
    last_w = 0.0
    for dt, w in steps:
        t += dt
        expected += (last_w + w) / 2 * dt
        integ.add(t, w)
        last_w = w
    assert integ.total_j == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert integ.total_j >= 0


def test_trace_gives_power_over_time_without_touching_history() -> None:
    # 30 W for the first 0.5 s of the sensor's life, 10 W after: the timeline shows the step.
    meter = EnergyMeter([FakeSensor(power_fn=lambda t: 30.0 if t < 0.5 else 10.0,
                                    component="cpu"),
                         FakeSensor(power_w=5.0, component="ram")])
    with meter.window("outer") as w, meter.trace(hz=20) as points:
        time.sleep(1.0)
    meter.close()
    assert len(meter.history) == 1  # only "outer": the slices are not kept
    cpu = [(t, p) for t, c, p in points if c == "cpu"]
    ram = [p for _, c, p in points if c == "ram"]
    assert 12 <= len(cpu) <= 22 and len(ram) == len(cpu)
    assert [t for t, _ in cpu] == sorted(t for t, _ in cpu)
    assert all(p == pytest.approx(5.0) for p in ram)
    assert max(p for _, p in cpu) == pytest.approx(30.0)
    assert cpu[-1][1] == pytest.approx(10.0)
    # The slices tile the block: their energy adds up to what a window over it measured.
    energy, last = 0.0, 0.0
    for t, p in cpu:
        energy, last = energy + p * (t - last), t
    assert w.measurement is not None
    assert energy == pytest.approx(w.measurement.components["cpu"].energy_j, rel=0.05)


def test_trace_needs_a_positive_rate() -> None:
    with pytest.raises(ConfigError, match="hz > 0"), \
            EnergyMeter([FakeSensor(power_w=1.0)]).trace(hz=0):
        pass


def test_a_forked_child_measures_with_a_meter_made_before_the_fork() -> None:
    """A sweep's worker is forked from a process whose meter already sampled: the child's
    meter gets a sampler thread of its own, and a lock nobody holds."""
    import os
    import select

    meter = EnergyMeter(sensors=[FakeSensor(power_w=20.0)], sample_hz=50)
    with meter.window("before"):
        time.sleep(0.05)  # the sampler thread runs, and parks
    read_end, write_end = os.pipe()
    # Hold the meter's lock while forking, as the parent's sampler may at any moment.
    with meter._shared.cond:
        pid = os.fork()
    if pid == 0:  # the child: measure, report, exit without running pytest's teardown
        code = 1
        try:
            with meter.window("child") as w:
                time.sleep(0.2)
            os.write(write_end, json.dumps([w.measurement.energy_j,
                                            w.measurement.samples]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 60)
    data = os.read(read_end, 1000) if ready else b""
    os.close(read_end)
    if not ready:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    assert ready, "the child's meter hung"
    assert os.waitstatus_to_exitcode(status) == 0
    energy_j, samples = json.loads(data)
    assert energy_j == pytest.approx(20.0 * 0.2, rel=0.5) and samples > 2
    meter.close()


def test_sensor_notes_reach_the_measurement() -> None:
    class Slow(FakeSensor):
        def notes(self, duration_s: float) -> tuple[str, ...]:
            return ("window shorter than 0.1 s",) if duration_s < 0.1 else ()

    meter = EnergyMeter(sensors=[Slow(power_w=5.0), Slow(power_w=1.0, component="ram")])
    try:
        with meter.window("short") as w:
            pass
        assert w.measurement.notes == ("window shorter than 0.1 s",)  # said once
        assert w.measurement.to_dict()["notes"] == ["window shorter than 0.1 s"]
        with meter.window("long") as w:
            time.sleep(0.15)
        assert w.measurement.notes == ()
    finally:
        meter.close()


def test_the_meters_fast_records_equal_the_dataclass_constructors() -> None:
    # Measurement._of and ComponentEnergy._of skip the frozen field-by-field __setattr__;
    # they must take every field, and make the record the constructor makes.
    import inspect
    import pickle

    from wattprint._frozen import FrozenInstanceError
    from wattprint.measurement import ComponentEnergy, Measurement
    from wattprint.sensors.base import Source

    for cls in (Measurement, ComponentEnergy):
        names = list(cls._fields)
        assert list(inspect.signature(cls._of).parameters) == names, cls
        assert list(inspect.signature(cls.__init__).parameters)[1:] == names, cls
    part = ComponentEnergy._of(2.0, Source.FAKE, False, "machine", ("fake",), None)
    assert part == ComponentEnergy(2.0, Source.FAKE, False, "machine", ("fake",), None)
    assert part != ComponentEnergy(2.0, Source.FAKE, False, "machine", ("fake",), 1.0)
    assert hash(part) == hash(ComponentEnergy(2.0, Source.FAKE, False, sensors=("fake",)))
    before = datetime.now(timezone.utc)
    with EnergyMeter([FakeSensor(power_w=10.0)]) as meter, meter.window("w") as w:
        pass
    after = datetime.now(timezone.utc)
    m = w.measurement
    assert m is not None
    # the meter keeps the edges' wall clock as time.time() and makes the datetimes when read
    assert m.start.tzinfo is timezone.utc and m.end.tzinfo is timezone.utc
    assert before - timedelta(milliseconds=1) <= m.start <= m.end <= after + timedelta(
        milliseconds=1)
    assert m.start is m.start  # made once
    # the components too: made into records on first access, once
    assert m.components is m.components
    assert [type(c) for c in m.components.values()] == [ComponentEnergy]
    assert m.components["cpu"].source == Source.FAKE and m.energy_j == sum(
        c.energy_j for c in m.components.values())
    assert pickle.loads(pickle.dumps(m)).start == m.start
    again = Measurement(**{name: getattr(m, name) for name in Measurement._fields})
    assert m == again and m.to_dict() == again.to_dict()
    assert pickle.loads(pickle.dumps(m)) == m
    assert m.replace(energy_j=5.0).energy_j == 5.0 and m.energy_j != 5.0
    assert repr(m).startswith("Measurement(name='w', ") and "site=" not in repr(m)
    with pytest.raises(FrozenInstanceError):
        m.start = after  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del m.end
    for record in (m, part):
        with pytest.raises(FrozenInstanceError):
            record.energy_j = 1.0  # type: ignore[misc]
        with pytest.raises(AttributeError):
            del record.energy_j  # type: ignore[misc]
