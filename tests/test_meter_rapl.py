"""The meter over real powercap trees: wraps during long windows, fallback when denied."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edge_readers import each_edge_reader  # noqa: F401 - every test, each reader
from powercap import Ticker, Zone, build_tree, set_energy

from wattprint import EnergyMeter


class CounterWriter(threading.Thread):
    """Advances a zone's energy_uj like hardware does, wrapping at the range.

    Writes in place with a fixed width (no truncation), so a concurrent read never sees an
    empty file.
    """

    def __init__(self, zone_dir: Path, start_uj: int, step_uj: int, range_uj: int) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(zone_dir / "energy_uj", os.O_WRONLY)
        self.value, self.step, self.range = start_uj, step_uj, range_uj
        self.total_uj = 0
        self.running = threading.Event()
        self.running.set()
        self.paused = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while self.running.is_set():
            with self.lock:
                self.value = (self.value + self.step) % self.range
                self.total_uj += self.step
                os.pwrite(self.fd, f"{self.value:020d}\n".encode(), 0)
            time.sleep(0.002)

    def stop(self) -> None:
        self.running.clear()
        self.join()
        os.close(self.fd)


def test_every_wrap_of_a_long_window_is_seen_by_the_watcher(tmp_path: Path) -> None:
    # A 1 J counter range with a 5 W maximum: the counter can wrap every 0.2 s, so the meter
    # must read it at least every 0.05 s during a window. The writer runs at about 5 W.
    range_uj = 1_000_000
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0", energy_uj=900_000, max_energy_range_uj=range_uj,
              max_power_uw=5_000_000)],
    )
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    (sensor,) = meter.sensors
    assert sensor.watch_interval_s() == pytest.approx(0.05)  # type: ignore[attr-defined]
    writer = CounterWriter(dirs["intel-rapl:0"], 900_000, 10_000, range_uj)
    writer.start()
    try:
        time.sleep(0.05)
        with writer.lock:
            meter.begin("long")
            before = writer.total_uj
        time.sleep(1.2)  # several wrap periods: edges alone would miss most wraps
        with writer.lock:
            m = meter.end("long")
            after = writer.total_uj
    finally:
        writer.stop()
        meter.close()
    wraps = (after - before) / range_uj
    assert wraps > 2, "the writer should have wrapped the counter several times"
    assert not m.partial, m.errors
    assert m.components["cpu"].measured
    assert m.energy_j == pytest.approx((after - before) / 1e6, abs=1e-9)


def test_without_the_watcher_the_same_window_would_be_wrong(tmp_path: Path) -> None:
    # The control experiment: the same arithmetic from the two edges alone loses whole wraps.
    from wattprint.sensors.rapl import counter_delta

    range_uj = 1_000_000
    start, total = 900_000, 3_450_000  # 3.45 J: three wraps and a bit
    end = (start + total) % range_uj
    assert counter_delta(start, end, range_uj) != total


def test_unreadable_counters_fall_back_to_visible_estimates(tmp_path: Path) -> None:
    # A zone whose energy_uj cannot be read (a directory here, which fails for root too).
    build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1)])
    target = tmp_path / "intel-rapl" / "intel-rapl:0" / "energy_uj"
    if not target.exists():
        target = next(tmp_path.rglob("energy_uj"))
    target.unlink()
    target.mkdir()
    meter = EnergyMeter(powercap_root=str(tmp_path))
    cpu = [s for s in meter.sensors if s.component == "cpu"]
    assert cpu and all(s.source == "estimate" and not s.measured for s in cpu)
    assert any(m.backend == "rapl" for m in meter.missing)
    with meter.window() as w:
        pass
    assert w.measurement is not None
    assert w.measurement.components["cpu"].source == "estimate"
    assert not w.measurement.measured
    meter.close()


# -- glitches and resets, double counting, MMIO: what a window reports -----------------------------


@pytest.mark.parametrize(("back_to", "what"), [(4_999_999_999, "1 µJ back"), (0, "a reset")])
def test_a_counter_going_back_marks_the_window_partial_and_names_the_zone(
    tmp_path: Path, back_to: int, what: str
) -> None:
    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=5_000_000_000)])
    zone = dirs["intel-rapl:0"]
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        meter.begin("glitch")
        set_energy(zone, back_to)  # not a wrap: 262 kJ in a millisecond is impossible
        m = meter.end("glitch")
        assert m.partial, what
        assert "cpu" not in m.components and m.energy_j == 0.0
        (error,) = m.errors
        assert error.startswith("rapl:package-0: ") and "glitched or was reset" in error
        assert "intel-rapl:0/energy_uj" in error
        with meter.window("after") as w:  # the next window starts from a fresh baseline
            set_energy(zone, back_to + 2_000_000)
        assert w.measurement is not None and not w.measurement.partial
        assert w.measurement.energy_j == pytest.approx(2.0)
    finally:
        meter.close()


def test_a_step_back_between_the_edges_is_caught_by_the_watcher(tmp_path: Path) -> None:
    # A 1 J range at 1 W: the watcher reads every 0.25 s. The counter steps back by 1 µJ just
    # after the window opens and moves on by 0.1 J before it ends; the end edge alone would
    # see a plain forward step. The watcher's read in between is what catches the fault.
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0", energy_uj=500_000, max_energy_range_uj=1_000_000,
              max_power_uw=1_000_000)],
    )
    zone = dirs["intel-rapl:0"]
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        (sensor,) = meter.sensors
        assert sensor.watch_interval_s() == pytest.approx(0.25)  # type: ignore[attr-defined]
        meter.begin("w")
        set_energy(zone, 499_999)
        time.sleep(0.7)  # two of the watcher's reads
        set_energy(zone, 599_999)
        m = meter.end("w")
    finally:
        meter.close()
    assert m.partial
    assert any("rapl:package-0" in e and "glitched or was reset" in e for e in m.errors)


def test_psys_and_dram_without_a_package_count_the_platform_once(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "psys", energy_uj=10_000_000),
         Zone("intel-rapl:1", "dram", energy_uj=1_000_000)],
    )
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        with meter.window() as w:
            set_energy(dirs["intel-rapl:0"], 40_000_000)  # 30 J of platform, DRAM included
            set_energy(dirs["intel-rapl:1"], 4_000_000)  # 3 J of it was DRAM
    finally:
        meter.close()
    m = w.measurement
    assert m is not None and not m.partial
    assert list(m.components) == ["cpu"]
    assert m.energy_j == pytest.approx(30.0)


def test_die_counters_equal_at_detection_are_each_counted(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
         Zone("intel-rapl:1", "package-0-die-1", energy_uj=5000)],
    )
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        with meter.window() as w:
            set_energy(dirs["intel-rapl:0"], 5000 + 20_000_000)
            set_energy(dirs["intel-rapl:1"], 5000 + 30_000_000)
    finally:
        meter.close()
    m = w.measurement
    assert m is not None and not m.partial
    assert m.energy_j == pytest.approx(50.0)


def test_mirrored_die_counters_are_counted_once(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
         Zone("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0")],
    )
    with Ticker({dirs["intel-rapl:0"]: 61_035}) as ticker:  # moving while detected
        meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        assert [s.name for s in meter.sensors] == ["rapl:package-0"]
        with meter.window() as w:
            set_energy(dirs["intel-rapl:1"], ticker.values[0] + 20_000_000)
    finally:
        meter.close()
    m = w.measurement
    assert m is not None and not m.partial
    assert m.energy_j == pytest.approx(20.0)


def test_an_unreadable_msr_zone_is_read_through_its_mmio_twin(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [Zone("intel-rapl:0", "package-0", energy_uj=1000),
         Zone("intel-rapl-mmio:0", "package-0", energy_uj=7000)],
    )
    counter = dirs["intel-rapl:0"] / "energy_uj"
    counter.unlink()
    counter.mkdir()  # unreadable, for root too
    meter = EnergyMeter(powercap_root=str(tmp_path))  # "auto": estimation is there to fall to
    try:
        with meter.window() as w:
            set_energy(dirs["intel-rapl-mmio:0"], 7000 + 12_000_000)
    finally:
        meter.close()
    m = w.measurement
    assert m is not None
    cpu = m.components["cpu"]
    assert cpu.source == "rapl" and cpu.measured
    assert cpu.energy_j == pytest.approx(12.0)


def test_psys_stands_for_the_ram_too_when_the_rest_is_estimated(tmp_path: Path) -> None:
    """With the default sensors, psys (which holds the DRAM) leaves no RAM estimate beside it."""
    build_tree(tmp_path, [Zone("intel-rapl:0", "psys", energy_uj=10_000_000),
                          Zone("intel-rapl:1", "dram", energy_uj=1_000_000)])
    meter = EnergyMeter(powercap_root=str(tmp_path), nvml=False)
    try:
        names = [s.name for s in meter.sensors]
        assert "rapl:psys" in names
        assert not [s for s in meter.sensors if s.component == "ram"], names
        with meter.window() as w:
            pass
        assert "ram" not in w.measurement.components
    finally:
        meter.close()


def test_process_mode_reads_the_machine_cpu_times_once_per_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two packages, each wrapped in its process share: one reading of the machine's CPU times
    # per window edge, shared by both (the kernel is asked at most once per
    # estimate.FRESH_S: test_estimate.py), never one per package.
    from wattprint.sensors import estimate

    build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1_000),
                          Zone("intel-rapl:1", "package-1", energy_uj=2_000)])
    meter = EnergyMeter(["rapl"], mode="process", powercap_root=tmp_path)
    assert [s.scope for s in meter.sensors] == ["process", "process"]
    reads: list[float] = []
    real = estimate._read_busy_cpu_s

    def counting(path: str | os.PathLike[str]) -> float:
        reads.append(real(path))
        return reads[-1]

    monkeypatch.setattr(estimate, "_read_busy_cpu_s", counting)
    for _ in range(3):
        meter.begin("w")
        meter.end("w")
    assert len(reads) == 6  # 3 windows x 2 edges, not x 2 packages
    assert reads == sorted(reads)
    # outside a window edge, every call reads
    estimate.machine_busy_cpu_s()
    estimate.machine_busy_cpu_s()
    assert len(reads) == 8
    meter.close()


def test_process_mode_reads_an_edge_s_counters_in_one_call_and_each_fault_stays_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packages' shares and the DRAM counters beside them are read together, one call
    per edge; a DRAM counter that fails fails the RAM alone, a package the CPU alone, and
    each counts again from a fresh baseline."""
    from wattprint.sensors.rapl import RaplSensor

    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000),
                                 Zone("intel-rapl:0:1", "dram", energy_uj=100_000),
                                 Zone("intel-rapl:1", "package-1", energy_uj=2_000_000),
                                 Zone("intel-rapl:1:1", "dram", energy_uj=200_000)])
    meter = EnergyMeter(["rapl"], mode="process", powercap_root=tmp_path)
    calls: list[int] = []
    real = RaplSensor.read_edge.__func__  # type: ignore[attr-defined]

    def counting(cls: type[RaplSensor], sensors: Any, *args: Any) -> Any:
        calls.append(len(sensors))
        return real(cls, sensors, *args)

    monkeypatch.setattr(RaplSensor, "read_edge", classmethod(counting))
    try:
        assert sorted(s.scope for s in meter.sensors) == ["machine"] * 2 + ["process"] * 2
        with meter.window("both") as w:
            set_energy(dirs["intel-rapl:0"], 1_500_000)
            set_energy(dirs["intel-rapl:0:1"], 130_000)
            set_energy(dirs["intel-rapl:1:1"], 250_000)
        assert calls == [4, 4]  # one read of the edge's four counters at each edge
        m = w.measurement
        assert m is not None and not m.partial
        assert m.components["ram"].energy_j == pytest.approx(0.08)
        assert 0.0 <= m.components["cpu"].energy_j <= 0.5

        meter.begin("dram")
        (dirs["intel-rapl:1:1"] / "energy_uj").write_text("not a number\n")
        set_energy(dirs["intel-rapl:0:1"], 150_000)
        m = meter.end("dram")
        assert m.partial and set(m.components) == {"cpu"}, m.errors
        (error,) = m.errors
        assert error.startswith("rapl:dram-1: ") and "not an energy counter value" in error
        set_energy(dirs["intel-rapl:1:1"], 300_000)
        with meter.window("between"):  # the first good read is the new baseline
            pass
        with meter.window("after") as w:
            set_energy(dirs["intel-rapl:1:1"], 340_000)
        after = w.measurement
        assert after is not None and not after.partial
        assert after.components["ram"].energy_j == pytest.approx(0.04)

        meter.begin("package")
        (dirs["intel-rapl:1"] / "energy_uj").write_text("garbage\n")
        set_energy(dirs["intel-rapl:0:1"], 160_000)
        m = meter.end("package")
        assert m.partial and set(m.components) == {"ram"}, m.errors
        assert m.components["ram"].energy_j == pytest.approx(0.01)
        (error,) = m.errors
        assert error.startswith("rapl:package-1") and "not an energy counter value" in error
        set_energy(dirs["intel-rapl:1"], 2_100_000)
        with meter.window("between"):
            pass
        with meter.window("again") as w:
            pass
        assert w.measurement is not None and not w.measurement.partial
    finally:
        meter.close()


def test_a_kept_proc_stat_descriptor_reads_current_times() -> None:
    from wattprint.sensors import estimate

    if not os.path.exists(estimate.PROC_STAT):
        pytest.skip("no /proc/stat here")
    first = estimate.machine_busy_cpu_s()
    deadline = time.perf_counter() + 60
    while estimate.machine_busy_cpu_s() == first:  # CPU time advances in clock ticks
        assert time.perf_counter() < deadline, "machine CPU time never advanced"
        sum(range(100_000))
    assert estimate.machine_busy_cpu_s() > first


def test_one_bad_counter_of_an_edge_leaves_the_others_measured(tmp_path: Path) -> None:
    """An edge reads every RAPL counter together (one lock, one call): a counter that reads
    garbage fails its own component only, named in the errors; the others are measured in
    the same window, and the bad one counts again from a fresh baseline once it reads."""
    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000),
                                 Zone("intel-rapl:0:1", "dram", energy_uj=100_000),
                                 Zone("intel-rapl:1", "package-1", energy_uj=2_000_000)])
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    try:
        meter.begin("w")
        set_energy(dirs["intel-rapl:0"], 1_500_000)
        set_energy(dirs["intel-rapl:1"], 2_700_000)
        (dirs["intel-rapl:0:1"] / "energy_uj").write_text("not a number\n")
        m = meter.end("w")
        assert m.partial and set(m.components) == {"cpu"}
        assert m.components["cpu"].energy_j == pytest.approx(0.5 + 0.7)
        (error,) = m.errors
        assert error.startswith("rapl:dram-0: ") and "not an energy counter value" in error
        set_energy(dirs["intel-rapl:0:1"], 400_000)
        with meter.window("between") as w:  # the first good read is the new baseline
            pass
        with meter.window("after") as w:
            set_energy(dirs["intel-rapl:0:1"], 650_000)
            set_energy(dirs["intel-rapl:1"], 2_800_000)
        after = w.measurement
        assert after is not None and not after.partial
        assert after.components["ram"].energy_j == pytest.approx(0.25)
        assert after.components["cpu"].energy_j == pytest.approx(0.1)
    finally:
        meter.close()

