"""The meter over real powercap trees: wraps during long windows, fallback when denied."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from powercap import Zone, build_tree

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
