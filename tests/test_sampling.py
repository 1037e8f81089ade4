"""Sampling of power-only sensors: the rate is kept however long the window, and faults of any
kind (exceptions, readings that are not finite) mark windows partial without stopping the
sampler."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable

import pytest

from wattprint import EnergyMeter, FakeSensor, SensorError
from wattprint.sensors import CounterSensor, PowerSensor, Source


class Flaky(PowerSensor):
    """Constant power; raises ``error`` once, from the sampler thread, when armed."""

    def __init__(self, power_w: float = 10.0) -> None:
        self.name = "flaky"
        self.component = "cpu"
        self.source = Source.FAKE
        self.measured = False
        self.value = power_w
        self.error: BaseException | None = None
        self.raised = threading.Event()

    def power_w(self) -> float:
        if self.error is not None and threading.current_thread().name == "wattprint-sampler":
            err, self.error = self.error, None
            self.raised.set()
            raise err
        return self.value


class Counter(CounterSensor):
    def __init__(self) -> None:
        self.name = "test:counter"
        self.component = "ram"
        self.source = Source.FAKE
        self.measured = True
        self.value = 0.0

    def energy_j(self) -> float:
        return self.value


def wait_for(event: threading.Event) -> None:
    assert event.wait(120), "the sampler never read the sensor"


def test_the_rate_is_kept_in_a_long_window() -> None:
    # Samples in the third second of a window, at 100 Hz: about 100. An adaptive sampler that
    # slows as the window ages (to a tenth of the rate after 20 intervals) took about 10.
    meter = EnergyMeter([FakeSensor(power_w=5.0)], sample_hz=100.0)
    try:
        with meter.window() as w:
            time.sleep(2.0)
            t, ticks = time.perf_counter(), meter._shared.ticks
            time.sleep(1.0)
            rate = (meter._shared.ticks - ticks) / (time.perf_counter() - t)
        assert rate >= 40, f"{rate:.1f} samples/s in the third second at sample_hz=100"
        assert w.measurement is not None and not w.measurement.partial
        assert w.measurement.energy_j == pytest.approx(5.0 * w.measurement.duration_s)
    finally:
        meter.close()


def test_the_sampler_parks_on_the_condition_the_edges_notify(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The condition is made lazily (a meter of counters never needs one), but before the
    sampler's thread starts: a thread that made its own would wait on another condition than
    the one a window's edge notifies, and miss its wake-ups."""
    meter = EnergyMeter(sensors=[FakeSensor(power_w=10.0)], sample_hz=200)
    assert meter._shared._cond is None
    at_start: list[object] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        at_start.append(meter._shared._cond)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    try:
        with meter.window("a"):
            time.sleep(0.05)
        assert at_start and at_start[0] is not None and at_start[0] is meter._shared.cond
        wakes = counting_wakes(meter)
        until(lambda: not meter._shared.sampling)  # parked until a window opens
        with meter.window("b") as w:
            time.sleep(0.05)
        assert wakes and w.measurement.samples > 1
    finally:
        meter.close()


def test_one_sample_per_interval_with_a_fixed_interval() -> None:
    meter = EnergyMeter([FakeSensor(power_w=1.0)], sample_interval=0.05)
    try:
        with meter.window() as w:
            time.sleep(1.0)
        assert w.measurement is not None
        # 20 intervals; a loaded machine may lose some, never gain more than one.
        assert 8 <= w.measurement.samples <= 22
    finally:
        meter.close()


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), ZeroDivisionError("division by zero"), KeyError("gpu")]
)
def test_any_exception_in_the_sampler_marks_the_window_partial_and_the_thread_survives(
    error: BaseException,
) -> None:
    sensor = Flaky()
    meter = EnergyMeter([sensor, Counter()], sample_hz=200.0)
    try:
        meter.begin("hit")
        sensor.error = error
        wait_for(sensor.raised)
        hit = meter.end("hit")
        assert hit.partial
        assert hit.errors == (f"flaky: {type(error).__name__}: {error}",)
        assert "cpu" not in hit.components  # never a guessed figure
        assert "ram" in hit.components
        thread = meter._shared.thread
        assert thread is not None and thread.is_alive()
        # Later windows are sampled, and whole.
        with meter.window("after") as w:
            ticks = meter._shared.ticks
            time.sleep(0.1)
            assert meter._shared.ticks > ticks
        after = w.measurement
        assert after is not None and not after.partial and after.errors == ()
        assert after.energy_j == pytest.approx(10.0 * after.duration_s)
    finally:
        meter.close()


def test_an_exception_at_a_window_edge_does_not_reach_the_users_code() -> None:
    class Broken(FakeSensor):
        def power_w(self) -> float:
            raise OSError("device gone")

    meter = EnergyMeter([Broken(power_w=1.0, name="broken"), Counter()])
    try:
        with meter.window("w") as w:
            pass
        m = w.measurement
        assert m is not None and m.partial
        assert m.errors == ("broken: OSError: device gone",)
        assert set(m.components) == {"ram"}
    finally:
        meter.close()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_power_reading_that_is_not_finite_is_a_fault(bad: float) -> None:
    meter = EnergyMeter([FakeSensor(power_fn=lambda t: bad, name="cpu"), Counter()])
    try:
        with meter.window("w") as w:
            pass
        m = w.measurement
        assert m is not None and m.partial
        assert m.errors[0] == f"cpu: power reading is not finite ({bad})"
        assert "cpu" not in m.components and math.isfinite(m.energy_j)
    finally:
        meter.close()


def test_a_nan_in_the_sampler_spoils_only_the_windows_open_across_it() -> None:
    level = {"w": 20.0}
    seen = threading.Event()

    def power(t: float) -> float:
        if math.isnan(level["w"]) and threading.current_thread().name == "wattprint-sampler":
            seen.set()
        return level["w"]

    meter = EnergyMeter([FakeSensor(power_fn=power, name="cpu")], sample_hz=200.0)
    try:
        meter.begin("hit")
        level["w"] = math.nan
        wait_for(seen)
        level["w"] = 20.0
        hit = meter.end("hit")
        assert hit.partial and hit.errors == ("cpu: power reading is not finite (nan)",)
        assert hit.energy_j == 0.0 and hit.components == {}
        with meter.window("after") as w:
            time.sleep(0.05)
        after = w.measurement
        assert after is not None and not after.partial
        assert after.energy_j == pytest.approx(20.0 * after.duration_s)  # no NaN carried over
    finally:
        meter.close()


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_counter_reading_that_is_not_finite_is_a_fault(bad: float) -> None:
    counter = Counter()
    meter = EnergyMeter([counter])
    meter.begin("w")
    counter.value = bad
    m = meter.end("w")
    assert m.partial and m.errors == (f"test:counter: energy reading is not finite ({bad})",)
    assert m.components == {} and m.energy_j == 0.0


def test_a_sampler_thread_that_stops_anyway_marks_windows_partial_and_is_replaced() -> None:
    meter = EnergyMeter([FakeSensor(power_w=3.0, name="cpu")], sample_hz=200.0)
    shared = meter._shared
    stopped = threading.Event()

    def broken_sample(t: float) -> None:
        stopped.set()
        raise SystemError("a bug in the loop")

    try:
        shared.sample = broken_sample  # type: ignore[method-assign]
        meter.begin("hit")
        wait_for(stopped)
        for _ in range(1000):  # the thread records the stop, then ends
            if shared.thread is None:
                break
            time.sleep(0.01)
        hit = meter.end("hit")
        assert hit.partial
        assert "cpu: RuntimeError: sampler thread stopped (SystemError: a bug" in hit.errors[0]
        del shared.sample  # type: ignore[method-assign]
        with meter.window("after") as w:
            time.sleep(0.05)
        assert w.measurement is not None and not w.measurement.partial
        assert shared.thread is not None and shared.thread.is_alive()
    finally:
        meter.close()


def test_the_sampler_has_its_own_module_and_the_meter_still_exports_the_integrator() -> None:
    from wattprint._sampler import _Integrator
    from wattprint.meter import _Integrator as FromMeter

    assert FromMeter is _Integrator


def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (a sampler thread on a busy machine may be slow)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, "the sampler never got there"
        time.sleep(0.005)


def counting_wakes(meter: EnergyMeter) -> list[int]:
    """Count the meter's wake-ups of its sampler (``notify`` on its condition)."""
    cond = meter._shared.cond
    real, wakes = cond.notify, []

    def notify(n: int = 1) -> None:
        wakes.append(n)
        real(n)

    cond.notify = notify
    return wakes


def test_windows_opened_before_the_next_sample_do_not_wake_the_sampler() -> None:
    # A wake-up hands the GIL to the sampler and back, in the middle of the measured code: the
    # windows of a loop (one per batch) are opened on the sampler's schedule instead.
    meter = EnergyMeter([FakeSensor(power_w=4.0)], sample_interval=3600.0)
    shared = meter._shared
    try:
        wakes = counting_wakes(meter)
        meter.begin("first")  # starts the thread, which takes its schedule from this window
        until(lambda: shared.sampling)
        meter.end("first")
        for k in range(20):  # its next sample is half an hour away: nothing to wake
            with meter.window(f"batch-{k}") as w:
                pass
            assert w.measurement is not None and not w.measurement.partial
        assert wakes == [] and shared.sampling
    finally:
        meter.close()


def test_a_window_on_a_kept_schedule_is_sampled_and_the_sampler_parks_after() -> None:
    meter = EnergyMeter([FakeSensor(power_w=4.0)], sample_interval=0.05)
    shared = meter._shared
    try:
        wakes = counting_wakes(meter)
        with meter.window("first"):
            until(lambda: shared.sampling)
        with meter.window("next") as w:  # sampled every interval, woken or not
            time.sleep(0.5)
        assert w.measurement is not None and w.measurement.samples >= 3
        assert w.measurement.energy_j == pytest.approx(4.0 * w.measurement.duration_s)
        until(lambda: not shared.sampling)  # a sample came due with no window: parked
        before = len(wakes)
        with meter.window("after parking") as w:
            time.sleep(0.3)
        assert len(wakes) == before + 1  # the parked sampler was woken, and sampled
        assert w.measurement is not None and w.measurement.samples >= 2
    finally:
        meter.close()


def square_wave_energy_j(a: float, b: float, hz: float, low_w: float, high_w: float) -> float:
    """Exact energy of a square wave (high for the first half of each period) from a to b."""
    edges = [k / (2 * hz) for k in range(math.ceil(a * 2 * hz), math.floor(b * 2 * hz) + 1)]
    points = sorted({a, b, *(x for x in edges if a < x < b)})
    return sum(
        (high_w if ((x + y) / 2 * hz) % 1.0 < 0.5 else low_w) * (y - x)
        for x, y in itertools.pairwise(points)
    )


def test_periodic_power_on_a_period_of_whole_intervals_is_not_aliased() -> None:
    # A 20 Hz square wave 10/100 W sampled at 100 Hz: its period is 5 intervals, which a fixed
    # grid samples 3:2 or 2:3, 16 % off in every window. The moving sample place averages that
    # out (a few % in 1.5 s; about 2 % in a 30 s window at 2 Hz / 10 Hz, benchmarks/).
    sensor = FakeSensor(power_fn=lambda t: 100.0 if (t * 20.0) % 1.0 < 0.5 else 10.0)
    meter = EnergyMeter([sensor], sample_hz=100.0)
    try:
        meter.begin("w")
        a = meter._shared.windows["w"].t0 - sensor._t0
        time.sleep(1.5)
        m = meter.end("w")
        exact = square_wave_energy_j(a, a + m.duration_s, 20.0, 10.0, 100.0)
        assert m.energy_j == pytest.approx(exact, rel=0.10)
    finally:
        meter.close()


def test_sensor_error_messages_keep_their_form() -> None:
    sensor = Flaky()
    meter = EnergyMeter([sensor], sample_hz=200.0)
    try:
        meter.begin("w")
        sensor.error = SensorError("read failed")
        wait_for(sensor.raised)
        m = meter.end("w")
        assert m.errors == ("flaky: read failed",)
    finally:
        meter.close()


def test_a_fault_names_its_sensor_once() -> None:
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0, name="fake:gpu", fail_after_s=0.0)])
    try:
        with meter.window("w") as w:
            pass
    finally:
        meter.close()
    assert w.measurement.partial
    (error,) = w.measurement.errors
    assert error.startswith("fake:gpu: ") and error.count("fake:gpu") == 1, error
