"""RAPL counters from fake powercap trees built in real directories."""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_readers import each_edge_reader  # noqa: F401 - every test, each reader
from hypothesis import given
from hypothesis import strategies as st
from powercap import DEFAULT_MAX_RANGE_UJ, LAYOUTS, Ticker, Zone, build_tree, set_energy

import wattprint.sensors.rapl as rapl_module
from wattprint.errors import (
    CounterWrapError,
    SensorError,
    SensorPermissionError,
    SensorUnavailable,
)
from wattprint.sensors import Source, detect
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.base import MissingSensor
from wattprint.sensors.rapl import (
    ASSUMED_MAX_POWER_W,
    MIN_WATCH_S,
    UNKNOWN_RANGE_WATCH_S,
    RaplSensor,
    available,
    counter_delta,
    discover,
)

NOBODY = 65534


def rapl(
    root: Path, covered: set[str] | None = None
) -> tuple[dict[str, RaplSensor], list[MissingSensor]]:
    sensors, missing = discover(DetectOptions(powercap_root=root), covered or set())
    assert all(isinstance(s, RaplSensor) for s in sensors)
    by_name = {s.name: s for s in sensors if isinstance(s, RaplSensor)}
    assert len(by_name) == len(sensors), "sensor names are unique"
    return by_name, missing


def one_socket() -> list[Zone]:
    return [
        Zone("intel-rapl:0", "package-0", energy_uj=1_000_000, max_power_uw=150_000_000),
        Zone("intel-rapl:0:0", "core", energy_uj=400_000),
        Zone("intel-rapl:0:1", "uncore", energy_uj=50_000),
        Zone("intel-rapl:0:2", "dram", energy_uj=200_000),
    ]


def two_sockets() -> list[Zone]:
    return [
        Zone("intel-rapl:0", "package-0", energy_uj=1000),
        Zone("intel-rapl:0:0", "core", energy_uj=500),
        Zone("intel-rapl:0:1", "dram", energy_uj=100),
        Zone("intel-rapl:1", "package-1", energy_uj=2000),
        Zone("intel-rapl:1:0", "core", energy_uj=600),
        Zone("intel-rapl:1:1", "dram", energy_uj=200),
    ]


# -- which zones become sensors --------------------------------------------------------------------


def test_one_socket_counts_package_and_dram_but_not_core_or_uncore(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path, one_socket())
    sensors, missing = rapl(tmp_path)
    assert missing == []
    assert {n: s.component for n, s in sensors.items()} == {
        "rapl:package-0": "cpu",
        "rapl:dram-0": "ram",
    }
    package = sensors["rapl:package-0"]
    assert package.source is Source.RAPL and package.measured
    assert str(tmp_path / "intel-rapl:0" / "energy_uj") in package.description
    assert "core and uncore" in package.description
    assert package.energy_j() == 0.0
    set_energy(dirs["intel-rapl:0"], 3_500_000)
    set_energy(dirs["intel-rapl:0:0"], 9_999_999)  # core moves too: it must not count
    assert package.energy_j() == pytest.approx(2.5)
    assert sensors["rapl:dram-0"].energy_j() == 0.0


def test_two_sockets_give_two_cpu_and_two_ram_sensors(tmp_path: Path) -> None:
    build_tree(tmp_path, two_sockets())
    sensors, missing = rapl(tmp_path)
    assert missing == []
    assert {n: s.component for n, s in sensors.items()} == {
        "rapl:package-0": "cpu",
        "rapl:package-1": "cpu",
        "rapl:dram-0": "ram",
        "rapl:dram-1": "ram",
    }
    assert "intel-rapl:1:1" in sensors["rapl:dram-1"].description


def test_detect_returns_the_rapl_sensors(tmp_path: Path) -> None:
    build_tree(tmp_path, two_sockets())
    found = detect(powercap_root=tmp_path, only=["rapl"])
    assert sorted(s.component for s in found) == ["cpu", "cpu", "ram", "ram"]
    assert all(s.to_dict()["kind"] == "counter" for s in found)


def test_psys_beside_a_package_is_not_used(tmp_path: Path) -> None:
    build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=10),
            Zone("intel-rapl:0:0", "core", energy_uj=5),
            Zone("intel-rapl:1", "psys", energy_uj=20),
        ],
    )
    sensors, missing = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"] and missing == []


def test_psys_alone_is_the_cpu(tmp_path: Path) -> None:
    build_tree(tmp_path, [Zone("intel-rapl:0", "psys", energy_uj=20)])
    sensors, _ = rapl(tmp_path)
    assert list(sensors) == ["rapl:psys"]
    assert sensors["rapl:psys"].component == "cpu"
    assert "psys" in sensors["rapl:psys"].description


def psys_and_dram() -> list[Zone]:
    """A platform zone and a DRAM zone, and no package zone."""
    return [
        Zone("intel-rapl:0", "psys", energy_uj=10_000_000),
        Zone("intel-rapl:1", "dram", energy_uj=1_000_000),
    ]


def test_psys_without_a_package_stands_alone_without_dram(tmp_path: Path) -> None:
    # psys contains the DRAM: 30 J of platform energy is 30 J, not 30 J + the 3 J of DRAM.
    dirs = build_tree(tmp_path, psys_and_dram())
    sensors, missing = rapl(tmp_path)
    assert list(sensors) == ["rapl:psys"] and missing == []
    psys = sensors["rapl:psys"]
    assert "intel-rapl:1" in psys.description and "DRAM" in psys.description
    set_energy(dirs["intel-rapl:0"], 40_000_000)
    set_energy(dirs["intel-rapl:1"], 4_000_000)
    assert sum(s.energy_j() for s in sensors.values()) == pytest.approx(30.0)


def test_dram_is_read_beside_psys_when_the_cpu_is_covered_elsewhere(tmp_path: Path) -> None:
    build_tree(tmp_path, psys_and_dram())
    sensors, _ = rapl(tmp_path, covered={"cpu"})
    assert list(sensors) == ["rapl:dram@intel-rapl:1"]
    assert sensors["rapl:dram@intel-rapl:1"].component == "ram"


def test_a_domain_exposed_by_msr_and_mmio_is_read_once_from_msr(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=1000),
            Zone("intel-rapl:0:0", "core", energy_uj=500),
            Zone("intel-rapl-mmio:0", "package-0", energy_uj=1000),
        ],
    )
    sensors, _ = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"]
    package = sensors["rapl:package-0"]
    assert package.zone_dir.resolve() == dirs["intel-rapl:0"].resolve()
    assert "intel-rapl-mmio:0" in package.description


def msr_and_mmio(tmp_path: Path) -> dict[str, Path]:
    """package-0 through MSR and MMIO, the MSR counter unreadable (for root too: EISDIR)."""
    dirs = build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=1000),
            Zone("intel-rapl:0:0", "core", energy_uj=500),
            Zone("intel-rapl-mmio:0", "package-0", energy_uj=7000),
        ],
    )
    counter = dirs["intel-rapl:0"] / "energy_uj"
    counter.unlink()
    counter.mkdir()
    return dirs


def test_mmio_is_read_when_its_msr_twin_cannot_be(tmp_path: Path) -> None:
    dirs = msr_and_mmio(tmp_path)
    sensors, missing = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"] and missing == []
    package = sensors["rapl:package-0"]
    assert package.zone_dir.resolve() == dirs["intel-rapl-mmio:0"].resolve()
    assert "intel-rapl:0" in package.description and "MMIO" in package.description
    assert package.measured and package.component == "cpu"
    set_energy(dirs["intel-rapl-mmio:0"], 7000 + 12_000_000)
    assert package.energy_j() == pytest.approx(12.0)


def test_mmio_is_read_when_its_msr_twin_is_root_only(shared_dir: Path) -> None:
    dirs = build_tree(
        shared_dir,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=1000),
            Zone("intel-rapl-mmio:0", "package-0", energy_uj=1000),
        ],
    )
    open_to_all(shared_dir)
    deny(dirs["intel-rapl:0"] / "energy_uj")
    names, missing = discover_as_user(shared_dir)
    assert names == ["rapl:package-0"] and missing == []


def test_msr_and_mmio_both_unreadable_is_missing_with_the_msr_reason(tmp_path: Path) -> None:
    dirs = msr_and_mmio(tmp_path)
    counter = dirs["intel-rapl-mmio:0"] / "energy_uj"
    counter.unlink()
    counter.mkdir()
    sensors, missing = rapl(tmp_path)
    assert sensors == {}
    assert len(missing) == 1 and "intel-rapl:0/energy_uj" in missing[0].reason


def test_mmio_alone_is_used(tmp_path: Path) -> None:
    build_tree(tmp_path, [Zone("intel-rapl-mmio:0", "package-0", energy_uj=1000)])
    sensors, _ = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"]


def test_other_rapl_control_types_are_read(tmp_path: Path) -> None:
    build_tree(tmp_path, [Zone("amd-rapl:0", "package-0"), Zone("amd-rapl:0:0", "core")])
    sensors, _ = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"]


def mirrored_dies() -> list[Zone]:
    """Package 0 as two die zones that mirror one counter, each with a mirrored DRAM zone."""
    return [
        Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
        Zone("intel-rapl:0:0", "dram", energy_uj=70),
        Zone("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0"),
        Zone("intel-rapl:1:0", "dram", mirror_of="intel-rapl:0:0"),
    ]


def test_mirrored_per_die_counters_are_read_once(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path, mirrored_dies())
    # The shared counters move while detection watches them, as hardware counters do.
    with Ticker({dirs["intel-rapl:0"]: 61_035, dirs["intel-rapl:0:0"]: 15_259}):
        sensors, _ = rapl(tmp_path)
    assert sorted(sensors) == ["rapl:dram-0", "rapl:package-0"]
    package = sensors["rapl:package-0"]
    assert package.zone_dir.resolve() == dirs["intel-rapl:0"].resolve()
    assert "mirror" in package.description and "package-0-die-1" in package.description
    begin = package.energy_j()
    set_energy(dirs["intel-rapl:1"], package.read_raw_uj() + 20_000_000)  # the one counter
    assert package.energy_j() - begin == pytest.approx(20.0)


def test_dies_that_read_equal_at_detection_but_do_not_move_are_not_merged(
    tmp_path: Path,
) -> None:
    # Two die counters that happen to read the same value (idle, or just reset) are two
    # counters until they are seen to move together: 20 J + 30 J is 50 J, not 20 J.
    dirs = build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
            Zone("intel-rapl:1", "package-0-die-1", energy_uj=5000),
        ],
    )
    sensors, missing = rapl(tmp_path)
    assert sorted(sensors) == ["rapl:package-0-die-0", "rapl:package-0-die-1"] and not missing
    assert all("mirror" not in s.description for s in sensors.values())
    set_energy(dirs["intel-rapl:0"], 5000 + 20_000_000)
    set_energy(dirs["intel-rapl:1"], 5000 + 30_000_000)
    assert sum(s.energy_j() for s in sensors.values()) == pytest.approx(50.0)


def test_dies_that_read_equal_once_but_move_apart_are_not_merged(tmp_path: Path) -> None:
    dirs = build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
            Zone("intel-rapl:1", "package-0-die-1", energy_uj=5000),
        ],
    )
    with Ticker({dirs["intel-rapl:0"]: 1000, dirs["intel-rapl:1"]: 1500}):
        sensors, _ = rapl(tmp_path)
    assert sorted(sensors) == ["rapl:package-0-die-0", "rapl:package-0-die-1"]


def test_dies_with_different_counters_are_separate(tmp_path: Path) -> None:
    build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0-die-0", energy_uj=5000),
            Zone("intel-rapl:1", "package-0-die-1", energy_uj=7000),
            Zone("intel-rapl:2", "package-1-die-0", energy_uj=9000),
        ],
    )
    sensors, _ = rapl(tmp_path)
    assert sorted(sensors) == [
        "rapl:package-0-die-0",
        "rapl:package-0-die-1",
        "rapl:package-1-die-0",
    ]
    assert {s.component for s in sensors.values()} == {"cpu"}


def test_die_zones_beside_their_package_zone_are_not_read(tmp_path: Path) -> None:
    build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=5000),
            Zone("intel-rapl:1", "package-0-die-0", energy_uj=2000),
            Zone("intel-rapl:2", "package-0-die-1", energy_uj=3000),
        ],
    )
    sensors, _ = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_each_zone_once(tmp_path: Path, layout: str) -> None:
    build_tree(tmp_path, two_sockets(), layout=layout)
    sensors, missing = rapl(tmp_path)
    assert sorted(sensors) == ["rapl:dram-0", "rapl:dram-1", "rapl:package-0", "rapl:package-1"]
    assert missing == []


def test_nested_copies_beside_top_level_zones_are_not_double_counted(tmp_path: Path) -> None:
    build_tree(tmp_path, two_sockets(), layout="flat")
    build_tree(tmp_path / "intel-rapl", two_sockets(), layout="nested")
    sensors, _ = rapl(tmp_path)
    assert sorted(sensors) == ["rapl:dram-0", "rapl:dram-1", "rapl:package-0", "rapl:package-1"]


def test_covered_components_are_skipped(tmp_path: Path) -> None:
    build_tree(tmp_path, one_socket())
    sensors, missing = rapl(tmp_path, covered={"cpu"})
    assert list(sensors) == ["rapl:dram-0"] and missing == []
    sensors, missing = rapl(tmp_path, covered={"cpu", "ram"})
    assert sensors == {} and missing == []


def test_absent_root_is_missing_with_a_reason(tmp_path: Path) -> None:
    options = DetectOptions(powercap_root=tmp_path / "absent")
    assert not available(options)
    sensors, missing = discover(options, set())
    assert sensors == []
    assert [m.backend for m in missing] == ["rapl"]
    assert "absent" in missing[0].reason and missing[0].fix
    with pytest.raises(SensorUnavailable, match="rapl"):
        detect(powercap_root=tmp_path / "absent", only=["rapl"])


def test_empty_root_or_no_rapl_zones_is_missing(tmp_path: Path) -> None:
    assert available(DetectOptions(powercap_root=tmp_path))
    sensors, missing = rapl(tmp_path)
    assert sensors == {} and "no RAPL" in missing[0].reason
    build_tree(tmp_path, [Zone("dtpm:0", "package-0"), Zone("intel-rapl:0", "weird")])
    (tmp_path / "intel-rapl").mkdir(exist_ok=True)  # a control type with no zone in it
    sensors, missing = rapl(tmp_path)
    assert sensors == {} and "no RAPL" in missing[0].reason


def test_a_zone_whose_counter_cannot_be_read_is_missing(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path, one_socket())
    counter = dirs["intel-rapl:0:2"] / "energy_uj"
    counter.unlink()
    counter.mkdir()  # reading a directory fails with EISDIR
    sensors, missing = rapl(tmp_path)
    assert list(sensors) == ["rapl:package-0"]  # cpu is fine; ram is not, and says why
    assert len(missing) == 1 and "intel-rapl:0:2/energy_uj" in missing[0].reason
    with pytest.raises(SensorError) as info:
        RaplSensor(dirs["intel-rapl:0:2"], name="x", component="ram")
    assert isinstance(info.value.__cause__, IsADirectoryError)


# -- reading and wraps -----------------------------------------------------------------------------


def single_zone(tmp_path: Path, **kwargs: Any) -> tuple[RaplSensor, Path]:
    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", **kwargs)])
    sensors, missing = rapl(tmp_path)
    assert missing == []
    return sensors["rapl:package-0"], dirs["intel-rapl:0"]


def test_energy_counts_from_when_the_sensor_was_made(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=123_456_789)
    assert sensor.energy_j() == 0.0
    set_energy(zone, 124_456_789)
    assert sensor.energy_j() == pytest.approx(1.0)
    assert sensor.energy_j() == pytest.approx(1.0)


def test_a_wrap_inside_a_window_is_undone(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=990_000, max_energy_range_uj=1_000_000)
    begin = sensor.energy_j()
    set_energy(zone, 15_000)  # 10_000 to the wrap, 15_000 after it
    assert sensor.energy_j() - begin == pytest.approx(0.025)


def test_several_wraps_seen_by_periodic_reads_add_up(tmp_path: Path) -> None:
    max_range = 1_000_000
    sensor, zone = single_zone(tmp_path, energy_uj=0, max_energy_range_uj=max_range)
    raw, total = 0, 0
    begin = sensor.energy_j()
    for step in [700_000, 600_000, 999_999, 1, 450_000, 800_000, 300_000, 999_000] * 3:
        raw, total = (raw + step) % max_range, total + step
        set_energy(zone, raw)
        sensor.energy_j()  # the watcher's read: at most one wrap since the last one
    assert total > 5 * max_range
    assert sensor.energy_j() - begin == pytest.approx(total / 1e6)


def test_a_wrap_near_the_top_of_a_full_size_range_is_still_a_wrap(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=DEFAULT_MAX_RANGE_UJ - 1000)
    set_energy(zone, 2000)  # 1000 µJ to the wrap, 2000 µJ after it
    assert sensor.energy_j() == pytest.approx(0.003)


@pytest.mark.parametrize("max_range", [DEFAULT_MAX_RANGE_UJ, 4_294_967_295])
def test_a_counter_that_steps_back_a_little_is_a_fault_not_a_wrap(
    tmp_path: Path, max_range: int
) -> None:
    # Read as a wrap, one µJ back would be the whole range (4294 J) in a millisecond.
    sensor, zone = single_zone(tmp_path, energy_uj=1_000_000_000, max_energy_range_uj=max_range)
    set_energy(zone, 1_002_000_000)
    assert sensor.energy_j() == pytest.approx(2.0)
    set_energy(zone, 1_001_999_999)
    with pytest.raises(SensorError, match="glitched or was reset") as info:
        sensor.energy_j()
    assert not isinstance(info.value, CounterWrapError)
    assert sensor.path in str(info.value) and "intel-rapl:0" in str(info.value)
    assert "1002000000 to 1001999999" in str(info.value)
    set_energy(zone, 1_004_999_999)  # a fresh baseline: 3 J more, and nothing invented
    assert sensor.energy_j() == pytest.approx(5.0)


def test_a_reset_counter_is_a_fault_not_a_wrap(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=50_000_000_000)
    set_energy(zone, 0)
    with pytest.raises(SensorError, match="glitched or was reset"):
        sensor.energy_j()
    set_energy(zone, 1_000_000)
    assert sensor.energy_j() == pytest.approx(1.0)


def test_a_wrap_faster_than_the_zone_maximum_power_is_a_fault(tmp_path: Path) -> None:
    # A 10 J range at 1 W cannot wrap in milliseconds; at the assumed 1000 W it can.
    sensor, zone = single_zone(
        tmp_path / "a", energy_uj=10_000, max_energy_range_uj=10_000_000, max_power_uw=1_000_000
    )
    set_energy(zone, 5_000)
    with pytest.raises(SensorError, match="maximum power 1 W"):
        sensor.energy_j()
    sensor, zone = single_zone(tmp_path / "b", energy_uj=10_000, max_energy_range_uj=10_000_000)
    set_energy(zone, 5_000)
    assert sensor.energy_j() == pytest.approx(9.995)


def test_above_its_range_a_counter_that_goes_back_is_a_fault(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=5_000_000, max_energy_range_uj=1_000_000)
    set_energy(zone, 10)
    with pytest.raises(SensorError, match="above its wrap range"):
        sensor.energy_j()


def test_the_largest_constraint_max_power_bounds_the_counter(tmp_path: Path) -> None:
    sensor, _ = single_zone(
        tmp_path, max_power_uw=150_000_000, short_term_max_power_uw=300_000_000
    )
    assert sensor.max_power_uw == 300_000_000
    assert sensor.watch_interval_s() == pytest.approx(DEFAULT_MAX_RANGE_UJ / 300e6 / 4)
    assert sensor.max_wrap_rate_uj_per_s == pytest.approx(rapl_module.POWER_MARGIN * 300e6)


def test_at_the_watch_pace_a_small_step_back_can_never_pass_for_a_wrap(tmp_path: Path) -> None:
    sensor, _ = single_zone(tmp_path, max_energy_range_uj=1_000_000, max_power_uw=1_000_000)
    # The most a wrap may imply between two of the watcher's reads: about half the range.
    elapsed_s = sensor.watch_interval_s() + rapl_module.READ_SLACK_S
    assert sensor.max_wrap_rate_uj_per_s * elapsed_s < 0.6 * 1_000_000


@pytest.mark.parametrize("max_range", [None, "garbage\n", "", "0\n", "directory"])
def test_an_unknown_max_range_fails_only_at_a_wrap(tmp_path: Path, max_range: str | None) -> None:
    file_range = None if max_range == "directory" else max_range
    sensor, zone = single_zone(tmp_path, energy_uj=5_000_000, max_energy_range_uj=file_range)
    if max_range == "directory":
        (zone / "max_energy_range_uj").mkdir()
        sensor.close()
        sensor = RaplSensor(zone, name="rapl:package-0", component="cpu")
    assert sensor.max_energy_range_uj is None
    assert "wrap range unknown" in rapl(tmp_path)[0]["rapl:package-0"].description
    set_energy(zone, 6_000_000)
    assert sensor.energy_j() == pytest.approx(1.0)
    set_energy(zone, 1_000)  # wrapped: by how much is unknown
    with pytest.raises(CounterWrapError, match="max_energy_range_uj") as info:
        sensor.energy_j()
    assert sensor.path in str(info.value) and sensor.path.endswith("intel-rapl:0/energy_uj")
    set_energy(zone, 501_000)  # the next read is a fresh baseline: nothing invented or lost
    assert sensor.energy_j() == pytest.approx(1.5)
    assert sensor.watch_interval_s() == UNKNOWN_RANGE_WATCH_S


def test_a_bad_reading_raises_and_the_next_read_starts_afresh(tmp_path: Path) -> None:
    sensor, zone = single_zone(tmp_path, energy_uj=1_000_000)
    set_energy(zone, 2_000_000)
    assert sensor.energy_j() == pytest.approx(1.0)
    (zone / "energy_uj").write_text("oops\n")
    with pytest.raises(SensorError, match="energy_uj") as info:
        sensor.energy_j()
    assert isinstance(info.value.__cause__, ValueError)
    set_energy(zone, 9_000_000)  # what happened during the failure is not counted
    assert sensor.energy_j() == pytest.approx(1.0)
    set_energy(zone, 9_500_000)
    assert sensor.energy_j() == pytest.approx(1.5)


def test_reads_after_close_raise(tmp_path: Path) -> None:
    sensor, _ = single_zone(tmp_path)
    sensor.close()
    sensor.close()  # closing twice is harmless
    with pytest.raises(SensorError) as info:
        sensor.energy_j()
    assert isinstance(info.value.__cause__, OSError)


def test_a_sensor_collected_in_the_middle_of_a_read_closes_its_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counters' lock is not re-entrant: a sensor the garbage collector finalises while
    this thread reads (and holds the lock) closes its descriptor without taking it."""
    sensor, _ = single_zone(tmp_path)
    fd = sensor._fd
    closed: list[int] = []
    real_close = os.close

    def close(n: int) -> None:
        closed.append(n)
        real_close(n)

    monkeypatch.setattr(os, "close", close)
    ref = [sensor]
    del sensor

    def read_and_collect() -> None:
        with rapl_module._READS:
            ref.clear()
            gc.collect()

    thread = threading.Thread(target=read_and_collect, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "finalising a sensor under the lock deadlocked"
    assert fd in closed


def test_watch_interval_is_a_quarter_of_the_fastest_wrap(tmp_path: Path) -> None:
    sensor, _ = single_zone(tmp_path / "a", max_power_uw=250_000_000)  # 250 W
    assert sensor.watch_interval_s() == pytest.approx(DEFAULT_MAX_RANGE_UJ / 250e6 / 4)
    sensor, _ = single_zone(tmp_path / "b")  # no max power: assume a generous bound
    assert sensor.watch_interval_s() == pytest.approx(
        DEFAULT_MAX_RANGE_UJ / (ASSUMED_MAX_POWER_W * 1e6) / 4
    )
    sensor, _ = single_zone(tmp_path / "c", max_energy_range_uj=1000, max_power_uw=10**9)
    assert sensor.watch_interval_s() == MIN_WATCH_S


# -- the wrap arithmetic, for any counter ----------------------------------------------------------


@given(
    max_range=st.integers(min_value=1, max_value=2**40),
    data=st.data(),
)
def test_counter_delta_over_wrapped_readings_sums_the_increments(
    max_range: int, data: st.DataObject
) -> None:
    start = data.draw(st.integers(min_value=0, max_value=max_range - 1), label="start")
    steps = data.draw(
        st.lists(st.integers(min_value=0, max_value=max_range - 1), max_size=50), label="steps"
    )
    raw, total = start, 0
    for step in steps:
        now = (raw + step) % max_range
        delta = counter_delta(raw, now, max_range)
        assert delta == step
        total += delta
        raw = now
    assert total == sum(steps)


@given(
    last=st.integers(min_value=0, max_value=2**63),
    now=st.integers(min_value=0, max_value=2**63),
    max_range=st.one_of(st.none(), st.integers(min_value=-5, max_value=2**63)),
)
def test_counter_delta_is_never_negative(last: int, now: int, max_range: int | None) -> None:
    delta = counter_delta(last, now, max_range)
    if now >= last:
        assert delta == now - last
    elif max_range is None or max_range < last:
        assert delta is None  # a wrap that cannot be undone is not a number
    else:
        assert delta is not None and delta >= 0


# -- permissions -----------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user can traverse (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="wattprint-rapl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def deny(path: Path) -> None:
    """Make a counter root-only, as kernels since 2020 do; without root, unreadable to us too."""
    path.chmod(0o400 if os.geteuid() == 0 else 0o000)


def open_to_all(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)


def unprivileged(fn: Callable[[], Any]) -> Any:
    """``fn()`` as a user who cannot read root-only files: in a child as nobody when root.

    The child is forked rather than exec'd, so it needs no interpreter or source that nobody
    can read; it returns ``fn()``'s JSON through a pipe.
    """
    if os.geteuid() != 0:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = {"result": fn()}
        except BaseException as err:  # the child's outermost boundary: report it to the parent
            payload, status = {"error": f"{type(err).__name__}: {err}"}, 1
        with os.fdopen(write_end, "w") as out:
            json.dump(payload, out)
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as inp:
        text = inp.read()
    _, status = os.waitpid(pid, 0)
    reply = json.loads(text)
    assert os.waitstatus_to_exitcode(status) == 0, reply
    return reply["result"]


def discover_as_user(root: Path) -> tuple[list[str], list[dict[str, Any]]]:
    def run() -> tuple[list[str], list[dict[str, Any]]]:
        sensors, missing = discover(DetectOptions(powercap_root=root), set())
        names = [s.name for s in sensors]
        for s in sensors:
            s.close()
        return names, [m.to_dict() for m in missing]

    names, missing = unprivileged(run)
    return list(names), list(missing)


def test_permission_denied_is_missing_with_the_fix(shared_dir: Path) -> None:
    dirs = build_tree(shared_dir, two_sockets())
    open_to_all(shared_dir)
    for zone in dirs.values():
        deny(zone / "energy_uj")
    names, missing = discover_as_user(shared_dir)
    assert names == []
    assert [m["backend"] for m in missing] == ["rapl", "rapl"]  # cpu, ram
    for m in missing:
        assert "permission denied" in m["reason"] and "energy_uj" in m["reason"]
        assert "chmod a+r" in m["fix"] and "udev" in m["fix"]
        assert f"{shared_dir}/intel-rapl:*/energy_uj" in m["fix"]


def test_one_denied_zone_drops_its_whole_component(shared_dir: Path) -> None:
    dirs = build_tree(shared_dir, two_sockets())
    open_to_all(shared_dir)
    deny(dirs["intel-rapl:1"] / "energy_uj")  # package-1 only
    names, missing = discover_as_user(shared_dir)
    assert names == ["rapl:dram-0", "rapl:dram-1"]  # cpu is not half-measured
    assert len(missing) == 1 and "intel-rapl:1/energy_uj" in missing[0]["reason"]


def test_opening_a_denied_counter_raises_a_permission_error(shared_dir: Path) -> None:
    dirs = build_tree(shared_dir, [Zone("intel-rapl:0", "package-0")])
    open_to_all(shared_dir)
    deny(dirs["intel-rapl:0"] / "energy_uj")

    def open_it() -> dict[str, Any]:
        try:
            RaplSensor(dirs["intel-rapl:0"], name="rapl:package-0", component="cpu")
        except SensorPermissionError as err:
            return {
                "is_permission_error": isinstance(err, PermissionError),
                "cause": type(err.__cause__).__name__,
                "fix": err.fix,
            }
        return {}

    got = unprivileged(open_it)
    assert got["is_permission_error"] and got["cause"] == "PermissionError"
    assert "chmod" in got["fix"]


def test_measure_says_why_the_cpu_was_estimated_when_its_counter_is_root_only(
        shared_dir: Path) -> None:
    """What a user who cannot read the root-only counters finds (discovered as that user)
    makes ``wattprint measure``'s line beside its estimates: the counters are there, and
    why they were not read. (The command itself cannot run as that user here: its
    interpreter may be unreadable to nobody; test_cli runs it on a machine without RAPL.)"""
    from wattprint.cli import _why_estimated

    dirs = build_tree(shared_dir, two_sockets())
    open_to_all(shared_dir)
    for zone in dirs.values():
        deny(zone / "energy_uj")
    _, missing = discover_as_user(shared_dir)
    estimated = {"measured": False}
    result = {"measurement": {"components": {"cpu": estimated, "ram": estimated}}}
    line = _why_estimated(result, [MissingSensor(**m) for m in missing])
    assert line == (f"cpu and ram estimated, rapl: permission denied opening "
                    f"{shared_dir}/intel-rapl:0/energy_uj (and 1 more); rapl: permission denied "
                    f"opening {shared_dir}/intel-rapl:0:1/energy_uj (and 1 more) (wattprint "
                    "sensors: how to enable it)")
