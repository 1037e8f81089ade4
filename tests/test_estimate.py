"""CPU and RAM estimates, and the process share of CPU energy."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from importlib.resources import files
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattprint import EnergyMeter, Measurement
from wattprint.errors import ConfigError, SensorError
from wattprint.sensors import CounterSensor, FakeSensor, Source, detect, estimate
from wattprint.sensors._registry import DetectOptions
from wattprint.sensors.estimate import (
    DEFAULT_TDP_W_PER_THREAD,
    IDLE_FRACTION,
    WATTS_PER_GIB,
    CpuEstimate,
    RamEstimate,
    TdpChoice,
    TdpRow,
    choose_tdp,
    cpu_estimate,
    load_tdp_table,
    machine_busy_cpu_s,
    match_tdp_row,
    read_cpuinfo,
)
from wattprint.sensors.process import ProcessShare, process_cpu_s, wrap_for_process

GIB = 1024**3


# -- helpers -------------------------------------------------------------------------------------


def x86_cpuinfo(tmp_path: Path, model: str, *, sockets: int = 1, threads: int = 2) -> Path:
    """A /proc/cpuinfo with ``threads`` logical CPUs per socket."""
    blocks = []
    for s in range(sockets):
        for t in range(threads):
            blocks.append(
                f"processor\t: {s * threads + t}\nvendor_id\t: GenuineIntel\n"
                f"model name\t: {model}\nphysical id\t: {s}\nsiblings\t: {threads}\n"
                f"core id\t\t: {t}\nflags\t\t: fpu vme de pse\n"
            )
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks) + "\n")
    return path


def arm_cpuinfo(tmp_path: Path, implementer: str, part: str, n: int = 4) -> Path:
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm\n"
        f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x3\n"
        f"CPU part\t: {part}\nCPU revision\t: 1\n"
        for i in range(n)
    ]
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks))
    return path


def script(values: Iterable[float]) -> Callable[[], float]:
    """A function that returns the given values one call after another."""
    it = iter(values)
    return lambda: next(it)


class FakeCounter(CounterSensor):
    def __init__(self, energies: Iterable[float], component: str = "cpu") -> None:
        self._next = script(energies)
        self.name = f"fakecounter:{component}"
        self.component = component
        self.source = Source.RAPL
        self.measured = True
        self.description = "a scripted counter"
        self.closed = False

    def energy_j(self) -> float:
        return self._next()

    def watch_interval_s(self) -> float | None:
        return 7.5

    def close(self) -> None:
        self.closed = True


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


# -- TDP choice ----------------------------------------------------------------------------------


def test_user_tdp_wins_over_the_table(tmp_path: Path) -> None:
    path = x86_cpuinfo(tmp_path, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", threads=40)
    choice = choose_tdp(42.0, cpuinfo_path=path, n_cpus=40)
    assert (choice.tdp_w, choice.origin) == (42.0, "user")
    assert "cpu_tdp_w" in choice.detail


def test_user_tdp_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        choose_tdp(0.0, cpuinfo_path=tmp_path / "cpuinfo")


@pytest.mark.parametrize(
    ("model", "threads", "tdp_w"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 40, 150),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 28, 120),
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", 16, 115),
        ("AMD EPYC 7763 64-Core Processor", 128, 280),
        ("AMD EPYC 9654 96-Core Processor", 192, 360),
        ("12th Gen Intel(R) Core(TM) i5-12400F", 12, 65),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", 12, 95),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 12, 65),
        ("AMD Ryzen 9 5950X 16-Core Processor", 32, 105),
        ("AMD Ryzen Threadripper 3990X 64-Core Processor", 128, 280),
    ],
)
def test_table_match_on_cpuinfo(tmp_path: Path, model: str, threads: int, tdp_w: float) -> None:
    path = x86_cpuinfo(tmp_path, model, threads=threads)
    choice = choose_tdp(cpuinfo_path=path, n_cpus=threads)
    assert (choice.tdp_w, choice.origin) == (tdp_w, "table")
    assert model in choice.detail


def test_meters_made_one_after_another_read_the_tdp_table_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_energy without a meter makes one per call: the table is read for the first."""
    reads: list[str] = []
    shipped = estimate.read_text

    def counted(name: str) -> str:
        reads.append(name)
        return shipped(name)

    monkeypatch.setattr(estimate, "read_text", counted)
    estimate._match_shipped.cache_clear()
    path = x86_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", threads=2)
    choices = [choose_tdp(cpuinfo_path=path, n_cpus=2) for _ in range(3)]
    assert reads == ["cpu_tdp.csv"]
    assert len(set(choices)) == 1 and choices[0].tdp_w == pytest.approx(280 * 2 / 128)
    (tmp_path / "other").mkdir()
    other = x86_cpuinfo(tmp_path / "other", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
                        threads=40)
    assert choose_tdp(cpuinfo_path=other, n_cpus=40).tdp_w == 150  # another name: looked up
    assert reads == ["cpu_tdp.csv"] * 2


def test_this_machines_cpuinfo_is_read_once_and_a_given_file_every_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Meters made one after another (measure_energy without a meter) parse this machine's
    /proc/cpuinfo once; a file given by path is read at each call, as it is now."""
    reads: list[str] = []
    real = estimate._read_cpuinfo

    def counted(path: str | os.PathLike[str]) -> estimate.CpuInfo:
        reads.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(estimate, "_read_cpuinfo", counted)
    estimate._this_machine.cache_clear()
    first = [read_cpuinfo() for _ in range(3)]
    choose_tdp(n_cpus=2)
    assert reads == [estimate.PROC_CPUINFO] and first.count(first[0]) == 3
    path = x86_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", threads=2)
    assert read_cpuinfo(path).model_name == "AMD EPYC 7763 64-Core Processor"
    path.write_text(path.read_text().replace("AMD EPYC 7763", "AMD EPYC 9654"))
    assert read_cpuinfo(path).model_name == "AMD EPYC 9654 64-Core Processor"
    assert reads == [estimate.PROC_CPUINFO] + [os.fspath(path)] * 2


def test_arm_linux_names_the_core_from_implementer_and_part(tmp_path: Path) -> None:
    path = arm_cpuinfo(tmp_path, "0x41", "0xd0c", n=80)
    assert read_cpuinfo(path).model_name == "ARM Neoverse-N1"
    choice = choose_tdp(cpuinfo_path=path, n_cpus=80)
    assert (choice.tdp_w, choice.origin) == (210, "table")


def test_apple_names_match_the_most_specific_row() -> None:
    table = load_tdp_table()
    m1 = match_tdp_row("Apple M1", table)
    m1_pro = match_tdp_row("Apple M1 Pro", table)
    m2_max = match_tdp_row("Apple M2 Max", table)
    assert m1 is not None and m1_pro is not None and m2_max is not None
    assert m1.tdp_w < m1_pro.tdp_w
    assert m2_max.pattern.pattern.startswith("Apple M2 Max")
    assert "unofficial" in m1.source


def test_two_sockets_double_the_tdp(tmp_path: Path) -> None:
    path = x86_cpuinfo(tmp_path, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", sockets=2, threads=40)
    assert read_cpuinfo(path).sockets == 2
    choice = choose_tdp(cpuinfo_path=path, n_cpus=80)
    assert choice.tdp_w == 300
    assert "2 x 150 W" in choice.detail


def test_a_vm_with_a_slice_of_a_big_cpu_gets_its_share(tmp_path: Path) -> None:
    path = x86_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", threads=2)
    choice = choose_tdp(cpuinfo_path=path, n_cpus=2)
    assert choice.tdp_w == pytest.approx(280 * 2 / 128)
    assert "scaled" in choice.detail


def test_no_match_uses_the_per_thread_default_and_says_how_to_do_better(tmp_path: Path) -> None:
    path = x86_cpuinfo(tmp_path, "QEMU Virtual CPU version 2.5+", threads=2)
    sensor = cpu_estimate(cpuinfo_path=path, n_cpus=2)
    assert sensor.tdp.origin == "default"
    assert sensor.tdp.tdp_w == 2 * DEFAULT_TDP_W_PER_THREAD
    assert "QEMU Virtual CPU" in sensor.description
    assert "cpu_tdp_w" in sensor.description


def test_no_cpuinfo_falls_back_without_failing(tmp_path: Path) -> None:
    choice = choose_tdp(cpuinfo_path=tmp_path / "absent", n_cpus=3)
    assert choice.tdp_w > 0


# -- the shipped table ---------------------------------------------------------------------------


def test_every_table_row_parses() -> None:
    text = (files("wattprint.data") / "cpu_tdp.csv").read_text(encoding="utf-8")
    records = list(csv.DictReader(text.splitlines()))
    assert len(records) >= 40
    for rec in records:
        assert set(rec) == {"pattern", "tdp_w", "threads", "source", "key"}, rec
        assert float(rec["tdp_w"]) > 0, rec
        assert rec["threads"] == "" or int(rec["threads"]) > 0, rec
        re.compile(rec["pattern"], re.IGNORECASE)
        assert rec["source"], rec
    assert len(load_tdp_table()) == len(records)


@pytest.mark.parametrize(
    ("model", "tdp_w", "threads"),
    [
        # /proc/cpuinfo model names as the kernel prints them, one or more per family
        ("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", 125, 32),  # Scalable gen 1
        ("Intel(R) Xeon(R) Platinum 8260 CPU @ 2.40GHz", 165, 48),  # gen 2
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", 205, 48),  # gen 2 refresh
        ("Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz", 135, 32),  # gen 3
        ("Intel(R) Xeon(R) Platinum 8490H", 350, 120),  # gen 4
        ("INTEL(R) XEON(R) GOLD 6548Y+", 250, 64),  # gen 5
        ("Intel(R) Xeon(R) 6980P", 500, 256),  # Xeon 6
        ("Intel(R) Xeon(R) E-2288G CPU @ 3.70GHz", 95, 16),
        ("Intel(R) Xeon(R) CPU E5-2690 0 @ 2.90GHz", 135, 16),
        ("Intel(R) Xeon(R) W-2295 CPU @ 3.00GHz", 165, 36),
        ("Intel(R) Core(TM) i3-10100 CPU @ 3.60GHz", 65, 8),
        ("13th Gen Intel(R) Core(TM) i5-13400F", 65, 16),
        ("Intel(R) Core(TM) i9-10900K CPU @ 3.70GHz", 125, 20),
        ("14th Gen Intel(R) Core(TM) i7-14700KF", 125, 28),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", 28, 8),
        ("12th Gen Intel(R) Core(TM) i5-1235U", 15, 12),
        ("Intel(R) Core(TM) i7-10750H CPU @ 2.60GHz", 45, 12),
        ("Intel(R) Core(TM) Ultra 7 155H", 28, 22),
        ("Intel(R) Core(TM) Ultra 9 285K", 125, 24),
        ("AMD EPYC 7601 32-Core Processor", 180, 64),  # Naples
        ("AMD EPYC 7H12 64-Core Processor", 280, 128),  # Rome
        ("AMD EPYC 7543P 32-Core Processor", 225, 64),  # Milan
        ("AMD EPYC 9474F 48-Core Processor", 360, 96),  # Genoa
        ("AMD EPYC 9754 128-Core Processor", 360, 256),  # Bergamo
        ("AMD EPYC 9965 192-Core Processor", 500, 384),  # Turin
        ("AMD Ryzen 9 3900XT 12-Core Processor", 105, 24),
        ("AMD Ryzen 7 9800X3D 8-Core Processor", 120, 16),
        ("AMD Ryzen 7 PRO 5850U with Radeon Graphics", 15, 16),
        ("AMD Ryzen 9 7940HS w/ Radeon 780M Graphics", 35, 16),
        ("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", 28, 24),
        ("AMD Ryzen Threadripper PRO 7995WX 96-Cores", 350, 192),
        ("AMD Ryzen Threadripper 1950X 16-Core Processor", 180, 32),
    ],
)
def test_the_table_covers_common_cpus_by_their_cpuinfo_names(
    model: str, tdp_w: float, threads: int
) -> None:
    row = match_tdp_row(model, load_tdp_table())
    assert row is not None, model
    assert (row.tdp_w, row.threads) == (tdp_w, threads)
    assert row.source.startswith(("Intel ARK:", "AMD:"))


@pytest.mark.parametrize(
    "model",
    [
        "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",  # not the 6248R row
        "Intel(R) Core(TM) i7-8700T CPU @ 2.40GHz",  # not the 8700 row
        "AMD Ryzen 9 7950X3D 16-Core Processor",  # not the 7950X row
        "AMD EPYC 8534PN 64-Core Processor",  # the PN parts have a lower TDP
    ],
)
def test_a_suffix_is_never_taken_for_a_neighbour(model: str) -> None:
    row = match_tdp_row(model, load_tdp_table())
    suffix = re.search(r"(6248|8700|7950X|8534P)(\w*)", model)
    assert suffix is not None
    if row is not None:
        m = row.pattern.search(model)
        assert m is not None and m.group(0).endswith(suffix.group(0)), row.pattern.pattern


def test_the_table_has_hundreds_of_distinct_rows() -> None:
    table = load_tdp_table()
    assert len(table) >= 300
    patterns = [row.pattern.pattern for row in table]
    assert len(set(patterns)) == len(patterns)


def test_bad_table_rows_are_refused() -> None:
    with pytest.raises(ConfigError):
        load_tdp_table("pattern,tdp_w,threads,source\n(unclosed,10,,x\n")
    with pytest.raises(ConfigError):
        load_tdp_table("pattern,tdp_w,threads,source\nfoo,-1,,x\n")
    with pytest.raises(ConfigError, match="line 1: no column 'tdp_w'"):
        load_tdp_table("pattern,watts,threads,source\nfoo,10,,x\n")


def test_a_users_table_may_leave_threads_and_source_off_and_its_key_is_worked_out() -> None:
    rows = load_tdp_table("pattern,tdp_w,threads,source,key\n\nXeon 9999\\b,90\n"
                          "Xeon 8888\\b,80,,x,wrong key\n")
    assert [(r.regex, r.tdp_w, r.threads, r.source, r.key) for r in rows] == [
        (r"Xeon 9999\b", 90.0, None, "", "xeon 9999"),
        (r"Xeon 8888\b", 80.0, None, "x", "xeon 8888")]
    assert match_tdp_row("Intel Xeon 8888", rows) is rows[1]


def test_each_shipped_key_is_the_required_text_of_its_regex() -> None:
    from wattprint.sensors.estimate import _required_text

    wrong = [(row.regex, row.key, _required_text(row.regex)) for row in load_tdp_table()
             if row.key != _required_text(row.regex)]
    assert not wrong, f"cpu_tdp.csv rows whose key is not (regex, key, the right key): {wrong}"


# -- CPU energy ----------------------------------------------------------------------------------


def test_cpu_energy_follows_the_formula() -> None:
    tdp = TdpChoice(100.0, "user", "TDP 100 W given as cpu_tdp_w")
    sensor = CpuEstimate(
        tdp, n_cpus=4, busy_cpu_s=script([1000.0, 1020.0, 1020.0]), clock=script([5.0, 15.0, 20.0])
    )
    # 10 s with 20 busy CPU seconds on 4 CPUs: utilisation 0.5
    first = sensor.energy_j()
    assert first == pytest.approx(100 * (IDLE_FRACTION * 10 + (1 - IDLE_FRACTION) * 20 / 4))
    # 5 s idle: the idle share of TDP only
    assert sensor.energy_j() == pytest.approx(first + 100 * IDLE_FRACTION * 5)
    assert sensor.measured is False
    assert sensor.source == "estimate"
    assert (sensor.name, sensor.component, sensor.scope) == ("estimate:cpu", "cpu", "machine")
    assert sensor.watch_interval_s() is None


def test_cpu_energy_is_monotonic_even_if_busy_time_shrinks() -> None:
    sensor = CpuEstimate(
        TdpChoice(10.0, "user", ""),
        n_cpus=2,
        busy_cpu_s=script([50.0, 60.0, 40.0, 45.0]),
        clock=script([0.0, 10.0, 20.0, 30.0]),
    )
    readings = [sensor.energy_j() for _ in range(3)]
    assert readings == sorted(readings)


def test_cpu_read_failure_restarts_from_a_fresh_baseline() -> None:
    values = iter([0.0, 10.0, None, 100.0, 110.0])

    def busy() -> float:
        v = next(values)
        if v is None:
            raise SensorError("gone")
        return v

    sensor = CpuEstimate(
        TdpChoice(10.0, "user", ""), n_cpus=1, busy_cpu_s=busy, clock=script(range(0, 50, 10))
    )
    e1 = sensor.energy_j()
    with pytest.raises(SensorError):
        sensor.energy_j()
    assert sensor.energy_j() == e1  # the new baseline; nothing invented across the failure
    expected = e1 + 10 * (IDLE_FRACTION * 10 + (1 - IDLE_FRACTION) * 10)
    assert sensor.energy_j() == pytest.approx(expected)


def test_busy_cpu_seconds_come_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 100 5 50 1000 20 3 2 7 0 0\nintr 1\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert machine_busy_cpu_s(stat) == pytest.approx((100 + 5 + 50 + 3 + 2) / hz)
    with pytest.raises(SensorError):
        machine_busy_cpu_s(tmp_path / "absent")
    stat.write_text("garbage\n")
    with pytest.raises(SensorError):
        machine_busy_cpu_s(stat)


@pytest.mark.parametrize(
    ("text", "busy_ticks"),
    [
        ("cpu  100 5 50 1000 20 3 2 7 0 0\n", 160),  # alone in the file
        ("cpu 100 5 50 1000 20 3 2\nintr 1\n", 160),  # no steal or guest
        ("cpu 100 5 50 1000\ncpu0 100 5 50 1000\nintr 1 2 3\n", 155),  # before irq times
        ("cpu 100 5 50 1000 20 3\ncpu0 100 5 50 1000 20 3\n", 158),  # irq, no softirq
    ],
)
def test_busy_cpu_seconds_from_short_first_lines(
    tmp_path: Path, text: str, busy_ticks: int
) -> None:
    """The first line's times are summed however many the kernel writes; those of the next
    line (``cpu0``) are never taken for them."""
    stat = tmp_path / "stat"
    stat.write_text(text)
    assert machine_busy_cpu_s(stat) == pytest.approx(busy_ticks / os.sysconf("SC_CLK_TCK"))


@pytest.mark.parametrize("text", ["cpu 100 5 x 1000 20 3 2\n", "cpu0 1 2 3 4 5 6 7\n",
                                  "cpu 1 2\n", ""])
def test_a_proc_stat_without_cpu_times_is_an_error(tmp_path: Path, text: str) -> None:
    stat = tmp_path / "stat"
    stat.write_text(text)
    with pytest.raises(SensorError, match="stat"):
        machine_busy_cpu_s(stat)


@pytest.mark.parametrize(
    ("text", "busy_ticks"),
    [
        ("cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", 160),
        ("cpu 100 5 50 1000 20 3 2\nintr 1\n", 160),
        ("cpu 100 5 50 1000\ncpu0 100 5 50 1000 20 3 2\nintr 1 2 3\n", 155),
        ("cpu 100 5 50 1000 20 3\ncpu0 100 5 50 1000 20 3 2\n", 158),
        ("cpu 100 5 x 1000 20 3 2\n", None),
        ("cpu0 1 2 3 4 5 6 7\n", None),
        ("cpu 1 2\n", None),
        ("", None),
    ],
)
def test_the_kept_proc_stat_reads_as_any_file(
    monkeypatch: pytest.MonkeyPatch, text: str, busy_ticks: int | None
) -> None:
    """Reads of the real ``/proc/stat`` after the first take a shorter path: it gives what
    the path for any file gives, and the same errors."""
    machine_busy_cpu_s()  # the descriptor is open from here on
    assert estimate._proc_stat_fd >= 0
    monkeypatch.setattr(estimate, "FRESH_S", 0.0)  # every call reads
    monkeypatch.setattr(estimate, "_pread", lambda fd, size, offset: text.encode()[:size])
    if busy_ticks is None:
        with pytest.raises(SensorError, match="/proc/stat"):
            machine_busy_cpu_s()
    else:
        assert machine_busy_cpu_s() == pytest.approx(busy_ticks / os.sysconf("SC_CLK_TCK"))


def test_the_real_proc_stat_is_read_at_most_once_per_fresh_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel formats all of /proc/stat at each read (as long as a RAPL window): a reading
    younger than ``FRESH_S`` is given again, an older one never."""
    if not os.path.exists(estimate.PROC_STAT):
        pytest.skip("no /proc/stat here")
    machine_busy_cpu_s()  # the descriptor is open from here on
    real = estimate._pread
    served: list[int] = []

    def counting(fd: int, size: int, offset: int) -> bytes:
        head = real(fd, size, offset)
        if fd == estimate._proc_stat_fd:
            served.append(int(head.split()[1]))  # user ticks, as the kernel wrote them
        return head

    now = [time.perf_counter() + 1000.0]  # later than any real reading
    monkeypatch.setattr(estimate, "_last_busy", estimate._last_busy)  # put back after
    monkeypatch.setattr(estimate, "_pread", counting)
    monkeypatch.setattr(estimate, "_clock", lambda: now[0])
    assert estimate.FRESH_S == 1e-3
    first = machine_busy_cpu_s()
    assert len(served) == 1
    now[0] += 0.0009
    assert machine_busy_cpu_s() == first and len(served) == 1  # given again
    assert machine_busy_cpu_s(estimate.PROC_STAT) == first and len(served) == 1
    now[0] += 0.0002  # 1.1 ms after the last fresh read
    second = machine_busy_cpu_s()
    assert len(served) == 2 and second >= first
    now[0] += 0.0005
    assert machine_busy_cpu_s() == second and len(served) == 2
    now[0] -= 10.0  # a clock behind the last read (never, on one machine) reads afresh
    machine_busy_cpu_s()
    assert len(served) == 3
    now[0] += 10.0
    monkeypatch.setattr(estimate, "FRESH_S", 0.0)
    machine_busy_cpu_s()
    machine_busy_cpu_s()
    assert len(served) == 5
    # named by another path, the file is read at every call, however recent the last read
    monkeypatch.setattr(estimate, "FRESH_S", 60.0)
    machine_busy_cpu_s(os.path.join("/proc", ".", "stat"))
    assert len(served) == 6


def test_a_forked_child_reads_its_own_resident_memory() -> None:
    """/proc/self/statm is kept open; a child made by fork must not read its parent's."""
    if not hasattr(os, "fork") or not os.path.exists(estimate.PROC_SELF_STATM):
        pytest.skip("no fork or no /proc/self/statm here")
    script = (
        "import os, psutil\n"
        "from wattprint.sensors import estimate\n"
        "parent = estimate.process_rss_bytes()\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    big = b'x' * (256 * 2**20)\n"
        "    ours, theirs = estimate.process_rss_bytes(), psutil.Process().memory_info().rss\n"
        "    os.write(w, f'{ours} {theirs}'.encode())\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "child, child_psutil = map(int, os.read(r, 100).split())\n"
        "print(parent, child, child_psutil, estimate.process_rss_bytes())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    parent, child, child_psutil, parent_after = map(int, done.stdout.split())
    assert child == pytest.approx(child_psutil, rel=0.1)
    assert child > parent + 200 * 2**20
    assert parent_after < child - 200 * 2**20  # the parent still reads its own


def test_a_busy_loop_costs_more_than_sleeping() -> None:
    """Real busy time (this process's own, which other load on a shared machine cannot
    change) through the real estimate: spinning costs more than sleeping, which costs idle."""
    sensor = CpuEstimate(TdpChoice(10.0, "user", ""), n_cpus=1, busy_cpu_s=process_cpu_s)
    e0 = sensor.energy_j()
    spin(0.3)
    e1 = sensor.energy_j()
    time.sleep(0.3)
    e2 = sensor.energy_j()
    assert e1 - e0 > e2 - e1 > 0


# -- estimates bounded by physics ----------------------------------------------------------------


TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # the step of /proc/stat and os.times()


def test_the_resolution_is_the_clock_tick() -> None:
    assert estimate.utilisation_resolution_s() == TICK_S
    assert CpuEstimate(TdpChoice(1.0, "user", "")).resolution_s == TICK_S


def test_a_tick_in_a_short_interval_does_not_push_power_above_the_tdp() -> None:
    """/proc/stat counts in clock ticks: a 1 ms interval can see a whole 10 ms tick of busy
    time. Power over that interval stays at most the TDP, and the excess reaches later
    intervals instead of vanishing."""
    tdp_w, n = 10.0, 2
    clock = [i * 0.001 for i in range(12)]
    busy = [0.0] + [TICK_S] * 11  # one tick of busy time, all of it seen in the first 1 ms
    sensor = CpuEstimate(
        TdpChoice(tdp_w, "user", ""), n_cpus=n, busy_cpu_s=script(busy), clock=script(clock)
    )
    readings = [sensor.energy_j() for _ in range(11)]
    for e0, e1 in zip([0.0, *readings], readings, strict=False):
        assert (e1 - e0) / 0.001 <= tdp_w * (1 + 1e-9)
    assert readings[0] == pytest.approx(tdp_w * 0.001)  # full load, not 4.2 x the TDP
    wall_s, busy_s = 0.011, min(TICK_S, n * 0.011)
    assert readings[-1] == pytest.approx(
        tdp_w * (IDLE_FRACTION * wall_s + (1 - IDLE_FRACTION) * busy_s / n)
    )


@given(
    st.lists(
        st.tuples(st.floats(0, 2.0), st.floats(0, 5.0)),  # (wall s, busy CPU s) per interval
        min_size=1,
        max_size=30,
    )
)
def test_cpu_power_is_never_above_the_tdp(steps: list[tuple[float, float]]) -> None:
    clock, busy = [0.0], [0.0]
    for dt, db in steps:
        clock.append(clock[-1] + dt)
        busy.append(busy[-1] + db)
    sensor = CpuEstimate(
        TdpChoice(10.0, "user", ""), n_cpus=2, busy_cpu_s=script(busy), clock=script(clock)
    )
    last = 0.0
    for dt, _ in steps:
        e = sensor.energy_j()
        assert e - last <= 10.0 * dt * (1 + 1e-9) + 1e-12
        last = e


def short_busy_windows(meter: EnergyMeter, n: int = 300) -> list[Measurement]:
    """``n`` windows of 0.5 ms of busy loop each: shorter than a tick, so ticks land in some."""
    out = []
    for _ in range(n):
        with meter.window() as w:
            spin(0.0005)
        assert w.measurement is not None
        out.append(w.measurement)
    return out


def test_real_short_windows_never_estimate_power_above_the_tdp() -> None:
    meter = EnergyMeter([CpuEstimate(TdpChoice(10.0, "user", "test"))])
    for m in short_busy_windows(meter):
        assert m.components["cpu"].energy_j <= 10.0 * m.duration_s * (1 + 1e-9)


def test_process_share_of_a_tick_in_a_short_interval_stays_below_the_tdp() -> None:
    """The process and the machine both see a whole tick in 1 ms: the process's share is all of
    the machine's estimate, which is at most the TDP."""
    inner = CpuEstimate(
        TdpChoice(10.0, "user", ""), n_cpus=2,
        busy_cpu_s=script([0.0, 0.0, TICK_S, TICK_S]), clock=script([0.0, 0.0, 0.001]),
    )
    share = ProcessShare(
        inner, process_cpu_s=script([0.0, TICK_S]), machine_busy_cpu_s=script([0.0, TICK_S])
    )
    assert share.energy_j() == 0.0
    attributed = share.energy_j()
    assert attributed == pytest.approx(10.0 * 0.001)
    assert attributed <= inner.energy_j_at(0.001)


def test_real_short_windows_in_process_mode_never_exceed_the_tdp() -> None:
    inner = CpuEstimate(TdpChoice(10.0, "user", "test"))
    meter = EnergyMeter([ProcessShare(inner)])
    for m in short_busy_windows(meter):
        assert m.components["cpu"].scope == "process"
        assert m.components["cpu"].energy_j <= 10.0 * m.duration_s * (1 + 1e-9)


def test_a_window_shorter_than_a_tick_says_so_in_its_notes() -> None:
    meter = EnergyMeter([CpuEstimate(TdpChoice(10.0, "user", "test"))])
    with meter.window() as short:
        pass
    with meter.window() as long:
        time.sleep(TICK_S * 2)
    assert short.measurement is not None and long.measurement is not None
    assert short.measurement.duration_s < TICK_S
    notes = short.measurement.notes
    assert len(notes) == 1
    assert f"shorter than the {TICK_S * 1e3:.3g} ms steps" in notes[0]
    assert "never above the TDP" in notes[0]
    assert long.measurement.notes == ()


def test_process_share_notes_add_to_the_inner_notes() -> None:
    share = ProcessShare(CpuEstimate(TdpChoice(10.0, "user", "test")))
    notes = share.notes(TICK_S / 10)
    assert len(notes) == 2
    assert "CPU utilisation is coarse" in notes[0]
    assert "this process's share of the CPU energy is coarse" in notes[1]
    assert share.notes(TICK_S) == ()
    assert ProcessShare(FakeCounter([0.0])).notes(TICK_S * 10) == ()


def test_measure_true_never_reports_cpu_power_above_the_given_tdp() -> None:
    """`wattprint measure -- true` lasts a few ms; it showed 32.7 W on a 10 W TDP."""
    command = [sys.executable, "-m", "wattprint", "measure", "--json", "--cpu-tdp", "10", "--",
               "true"]
    runs = []
    for _ in range(20):  # a tick lands in a few ms window one time in five or so
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        report = json.loads(done.stdout)
        cpu_sensors = [s for s in report["sensors"] if s["component"] == "cpu"]
        if any(s["source"] != "estimate" for s in cpu_sensors):
            pytest.skip("this machine measures its CPU; the estimate is not used")
        runs.append(report["measurement"])
    powers_w = [m["components"]["cpu"]["energy_j"] / m["duration_s"] for m in runs]
    assert max(powers_w) <= 10.0 * (1 + 1e-9), powers_w
    for m in runs:
        short = any("steps in which CPU time is counted" in note for note in m["notes"])
        assert short == (m["duration_s"] < TICK_S)


# -- RAM -----------------------------------------------------------------------------------------


def test_ram_machine_power_is_watts_per_gib_times_installed() -> None:
    sensor = RamEstimate()
    total = psutil.virtual_memory().total
    assert sensor.machine_power_w == pytest.approx(WATTS_PER_GIB * total / GIB)
    assert WATTS_PER_GIB == 0.375
    assert "installed" in sensor.description
    assert (sensor.name, sensor.component, sensor.measured) == ("estimate:ram", "ram", False)
    assert sensor.source == "estimate"


def test_ram_machine_energy_over_an_interval() -> None:
    sensor = RamEstimate(total_bytes=16 * GIB, clock=script([100.0, 110.0, 112.5]))
    assert sensor.energy_j() == pytest.approx(0.375 * 16 * 10)
    assert sensor.energy_j() == pytest.approx(0.375 * 16 * 12.5)


def test_ram_process_mode_integrates_resident_memory() -> None:
    sensor = RamEstimate(
        mode="process",
        rss_bytes=iter([1 * GIB, 1 * GIB, 3 * GIB]).__next__,
        clock=script([0.0, 10.0, 20.0]),
    )
    assert "resident" in sensor.description
    assert sensor.energy_j() == pytest.approx(0.375 * 1 * 10)
    # trapezoid between reads: (1 + 3) / 2 GiB for 10 s
    assert sensor.energy_j() == pytest.approx(0.375 * 10 + 0.375 * 2 * 10)


def test_ram_process_mode_reads_this_process() -> None:
    assert estimate.process_rss_bytes() == pytest.approx(
        psutil.Process().memory_info().rss, rel=0.2
    )
    sensor = estimate.ram_estimate("process")
    time.sleep(0.01)
    assert sensor.energy_j() > 0


# -- process share -------------------------------------------------------------------------------


def test_process_share_attributes_inner_delta_by_cpu_share() -> None:
    inner = FakeCounter([0.0, 100.0, 200.0, 300.0, 300.0])
    share = ProcessShare(
        inner,
        process_cpu_s=script([0.0, 1.0, 11.0, 11.0, 11.5]),
        machine_busy_cpu_s=script([0.0, 4.0, 9.0, 9.0, 9.5]),
    )
    assert share.energy_j() == 0.0  # baseline
    assert share.energy_j() == pytest.approx(25.0)  # 1 of 4 busy seconds
    assert share.energy_j() == pytest.approx(125.0)  # 10 of 5: clamped to 1
    assert share.energy_j() == pytest.approx(125.0)  # machine not busy: nothing attributed
    assert share.energy_j() == pytest.approx(125.0)  # inner did not move
    assert share.name == "fakecounter:cpu@process"
    assert (share.component, share.source, share.measured) == ("cpu", Source.RAPL, True)
    assert share.scope == "process"
    assert "share of a scripted counter" in share.description
    assert share.watch_interval_s() == 7.5
    share.close()
    assert inner.closed


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e3), st.floats(-1, 10), st.floats(-1, 10)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_process_share_is_monotonic_and_never_exceeds_the_inner(
    steps: list[tuple[float, float, float]],
) -> None:
    energies, procs, busies = [0.0], [0.0], [0.0]
    for de, dp, db in steps:
        energies.append(energies[-1] + de)
        procs.append(procs[-1] + dp)
        busies.append(busies[-1] + db)
    share = ProcessShare(
        FakeCounter(energies), process_cpu_s=script(procs), machine_busy_cpu_s=script(busies)
    )
    readings = [share.energy_j() for _ in energies]
    assert readings == sorted(readings)
    assert readings[-1] <= energies[-1] + 1e-9


def test_process_share_of_a_real_busy_loop_and_of_sleep() -> None:
    inner = cpu_estimate()
    share = ProcessShare(inner)
    inner0, share0 = inner.energy_j(), share.energy_j()
    spin(0.3)
    inner1, share1 = inner.energy_j(), share.energy_j()
    time.sleep(0.3)
    share2 = share.energy_j()
    busy_attributed = share1 - share0
    # The machine's other load (a shared CI machine) decides how large the share is: only its
    # direction is asserted, never its size.
    assert busy_attributed > 0 and inner1 - inner0 > 0
    assert share2 - share1 < busy_attributed
    assert process_cpu_s() > 0


def test_wrap_for_process_wraps_only_cpu_counters() -> None:
    cpu, ram, power = FakeCounter([0.0]), FakeCounter([0.0], component="ram"), FakeSensor(5.0)
    wrapped = wrap_for_process([cpu, ram, power])
    assert isinstance(wrapped[0], ProcessShare) and wrapped[0].inner is cpu
    assert wrapped[1] is ram
    assert wrapped[2] is power


# -- discovery -----------------------------------------------------------------------------------


def test_discover_fills_what_is_not_covered() -> None:
    options = DetectOptions(cpu_tdp_w=42.0)
    assert estimate.available(options)
    sensors, missing = estimate.discover(options, set())
    assert {s.component for s in sensors} == {"cpu", "ram"} and not missing
    cpu = next(s for s in sensors if s.component == "cpu")
    assert isinstance(cpu, CpuEstimate) and cpu.tdp.tdp_w == 42.0
    sensors, _ = estimate.discover(options, {"cpu"})
    assert [s.component for s in sensors] == ["ram"]
    assert estimate.discover(options, {"cpu", "ram"}) == ([], [])


def test_discover_in_process_mode_uses_resident_memory() -> None:
    sensors, _ = estimate.discover(DetectOptions(mode="process"), {"cpu"})
    assert "resident" in sensors[0].description


def test_detect_without_counters_returns_the_estimates(tmp_path: Path) -> None:
    found = detect(powercap_root=tmp_path / "absent")
    names = {s.name for s in found}
    assert {"estimate:cpu", "estimate:ram"} <= names
    assert all(not s.measured for s in found if s.source == "estimate")


def test_detect_in_process_mode_wraps_the_cpu_estimate(tmp_path: Path) -> None:
    found = detect(powercap_root=tmp_path / "absent", mode="process")
    cpu = [s for s in found if s.component == "cpu"]
    assert [s.name for s in cpu] == ["estimate:cpu@process"]
    assert all(isinstance(s, ProcessShare) and s.scope == "process" for s in cpu)


def test_an_estimate_spans_exactly_the_meters_interval() -> None:
    """The meter takes the time, then reads: an estimate integrates up to that time, not to
    its own clock, so a thread that waits between the two (another thread holding the
    interpreter) does not stretch or shrink the energy against the window's duration."""
    from wattprint import EnergyMeter

    ram = RamEstimate(total_bytes=4 * GIB, watts_per_gib=0.5)  # 2 W, constant
    cpu = CpuEstimate(TdpChoice(40.0, "user", "test"), n_cpus=4,
                      busy_cpu_s=lambda: 0.0)  # idle: IDLE_FRACTION x 40 W
    meter = EnergyMeter([ram, cpu])
    for _ in range(20):
        with meter.window() as w:
            time.sleep(0.002)
        m = w.measurement
        assert m is not None
        assert m.components["ram"].energy_j == pytest.approx(2.0 * m.duration_s, rel=1e-9)
        assert m.components["cpu"].energy_j == pytest.approx(
            40.0 * IDLE_FRACTION * m.duration_s, rel=1e-9)


# -- the table is compiled only where a name needs it ---------------------------------------------


def _names_for(row: TdpRow) -> list[str]:
    """CPU names a row's regex matches, made from the regex itself."""
    text = re.sub(r"\\b", "", row.regex)
    text = re.sub(r"\(\?:[^)]*\)\??|\[[^]]*\]|.\?", "", text).replace("\\", "")
    return [f"Intel(R) Xeon(R) {text} CPU @ 2.10GHz", f"AMD {text.upper()} 64-Core Processor",
            text.lower()]


def test_matching_a_name_compiles_only_rows_that_can_match_it() -> None:
    from wattprint._data import read_text
    from wattprint.sensors.estimate import _parse_table

    lazy = _parse_table(read_text("cpu_tdp.csv"), compile_now=False)
    assert not any(row._compiled for row in lazy)
    row = match_tdp_row("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", lazy)
    assert row is not None and row.tdp_w == 150
    compiled = sum(r._compiled is not None for r in lazy)
    assert 1 <= compiled <= 10, compiled


def test_skipping_rows_by_their_required_text_changes_no_match() -> None:
    # every name made from every row finds the same row as a scan that tries all regexes
    table = load_tdp_table()
    names = [name for row in table for name in _names_for(row)]
    names += ["Apple M2 Max", "AMD EPYC", "Intel(R) Core(TM) i9-9900KF CPU @ 3.60GHz"]

    patterns = [(row, re.compile(row.regex, re.IGNORECASE)) for row in table]  # once: the
    # table has more rows than re's cache holds

    def scan(name: str) -> TdpRow | None:
        best, best_len = None, -1
        for row, pattern in patterns:
            m = pattern.search(name)
            if m is not None and len(m.group(0)) > best_len:
                best, best_len = row, len(m.group(0))
        return best

    from wattprint.sensors.estimate import _match_shipped

    matched = 0
    for name in names:
        found = match_tdp_row(name, table)
        assert found is scan(name), name
        matched += found is not None
        # the path a meter takes, which parses only the lines whose key is in the name
        parsed = _match_shipped(name)
        assert (parsed and (parsed.regex, parsed.tdp_w, parsed.threads, parsed.source)) == (
            found and (found.regex, found.tdp_w, found.threads, found.source)), name
    assert matched >= len(table)  # the names do reach the rows


@pytest.mark.parametrize(("regex", "required"), [
    (r"Platinum 8180\b", "platinum 8180"),
    (r"i9-9900KF?\b", "i9-9900k"),
    (r"Xeon\(R\) 6980P\b", " 6980p"),
    (r"Apple M1( Pro)?", "apple m1"),
    (r"[Aa]bc", "bc"),
    (r"a{2}bcd", "bcd"),
    (r"EPYC (9654|9554)", ""),  # an alternative anywhere: no required text
    (r"9654|9554", ""),
])
def test_the_required_text_of_a_regex_is_in_every_match(regex: str, required: str) -> None:
    from wattprint.sensors.estimate import _required_text

    assert _required_text(regex) == required


class FailingCounter(FakeCounter):
    """A scripted counter whose script may hold an error to raise at that read."""

    def energy_j(self) -> float:
        value: float | Exception = self._next()
        if isinstance(value, Exception):
            raise value
        return value


def _counting_clocks() -> tuple[list[int], Callable[[], float], Callable[[], float]]:
    calls = [0, 0]
    proc = iter([0.0, 1.0, 1.5, 3.0, 3.5])
    busy = iter([0.0, 2.0, 4.0, 5.0, 6.0])

    def process_cpu_s() -> float:
        calls[0] += 1
        return next(proc)

    def machine_busy_cpu_s() -> float:
        calls[1] += 1
        return next(busy)

    return calls, process_cpu_s, machine_busy_cpu_s


def test_shares_read_together_equal_shares_read_one_by_one() -> None:
    """Process shares read at an edge in one call (each clock read once for all of them)
    attribute what the same shares read one at a time attribute."""
    energies = ([0.0, 10.0, 30.0, 40.0, 60.0], [5.0, 9.0, 13.0, 14.0, 20.0])
    calls, proc, busy = _counting_clocks()
    together = [ProcessShare(FakeCounter(e), process_cpu_s=proc, machine_busy_cpu_s=busy)
                for e in energies]
    results = []
    for _ in range(5):
        out: list[float | None] = [None, None]
        assert ProcessShare.read_edge(together, 0.0, out, (0, 1)) == []
        results.append(out)
    assert calls == [5, 5]  # once per edge, not once per share
    for k, e in enumerate(energies):
        _, proc, busy = _counting_clocks()
        alone = ProcessShare(FakeCounter(e), process_cpu_s=proc, machine_busy_cpu_s=busy)
        assert [alone.energy_j_at(0.0) for _ in range(5)] == [r[k] for r in results]
    # shares per interval: 1/2, 0.5/2, 1.5/1, 0.5/1
    assert results[-1] == [pytest.approx(10 * 0.5 + 20 * 0.25 + 10 * 1.0 + 20 * 0.5),
                           pytest.approx(4 * 0.5 + 4 * 0.25 + 1 * 1.0 + 6 * 0.5)]


def test_a_failing_counter_fails_its_own_share_only() -> None:
    _, proc, busy = _counting_clocks()
    failing = FailingCounter([0.0, 10.0, SensorError("gone"), 40.0, 60.0])  # type: ignore[list-item]
    shares = [ProcessShare(failing, process_cpu_s=proc, machine_busy_cpu_s=busy),
              ProcessShare(FakeCounter([5.0, 9.0, 13.0, 14.0, 20.0]),
                           process_cpu_s=proc, machine_busy_cpu_s=busy)]
    seen = []
    for _ in range(5):  # into places 3 and 8 of the edge's values, as a meter asks
        out: list[float | None] = [None] * 9
        faults = ProcessShare.read_edge(shares, 0.0, out, (3, 8))
        seen.append(([out[3], out[8]], [(i, str(err)) for i, err in faults]))
    assert seen[2] == ([None, pytest.approx(4 * 0.5 + 4 * 0.25)], [(3, "gone")])
    assert seen[3][0][0] == seen[1][0][0]  # a fresh baseline: nothing across the failure
    assert seen[4][0][0] == pytest.approx(seen[1][0][0] + 20 * 0.5)


def test_a_failing_counter_among_counters_of_its_class_fails_its_own_share_only() -> None:
    """The same as above where every share wraps a counter of one class (the edge's one
    read_edge call for all of them)."""
    _, proc, busy = _counting_clocks()
    shares = [ProcessShare(FailingCounter([0.0, 10.0, SensorError("gone"), 40.0, 60.0]),  # type: ignore[list-item]
                           process_cpu_s=proc, machine_busy_cpu_s=busy),
              ProcessShare(FailingCounter([5.0, 9.0, 13.0, 14.0, 20.0]),
                           process_cpu_s=proc, machine_busy_cpu_s=busy)]
    seen = []
    for _ in range(5):
        out: list[float | None] = [None] * 9
        faults = ProcessShare.read_edge(shares, 0.0, out, (3, 8))
        seen.append(([out[3], out[8]], [(i, str(err)) for i, err in faults]))
    assert seen[2] == ([None, pytest.approx(4 * 0.5 + 4 * 0.25)], [(3, "gone")])
    assert seen[3][0][0] == seen[1][0][0]
    assert seen[4][0][0] == pytest.approx(seen[1][0][0] + 20 * 0.5)
    assert seen[4][0][1] == pytest.approx(4 * 0.5 + 4 * 0.25 + 1 * 1.0 + 6 * 0.5)


def test_a_failing_clock_fails_every_share_of_the_edge_and_they_start_afresh() -> None:
    _, proc, _ = _counting_clocks()
    readings = iter([0.0, 2.0, SensorError("no /proc/stat"), 5.0, 6.0])

    def flaky_busy() -> float:
        value: float | Exception = next(readings)
        if isinstance(value, Exception):
            raise value
        return value

    shares = [ProcessShare(FakeCounter(e), process_cpu_s=proc, machine_busy_cpu_s=flaky_busy)
              for e in ([0.0, 10.0, 30.0, 40.0, 60.0], [5.0, 9.0, 13.0, 14.0, 20.0])]
    seen = []
    for _ in range(5):
        out: list[float | None] = [None, None]
        faults = ProcessShare.read_edge(shares, 0.0, out, (0, 1))
        seen.append((out, [(i, str(err)) for i, err in faults]))
    assert seen[2] == ([None, None], [(0, "no /proc/stat"), (1, "no /proc/stat")])
    assert seen[3][0] == seen[1][0]  # a fresh baseline after the failed edge
    # the interval after the baseline: proc 3.0 -> 3.5 of busy 5.0 -> 6.0
    assert seen[4][0] == [pytest.approx(10 * 0.5 + 20 * 0.5), pytest.approx(4 * 0.5 + 6 * 0.5)]


def test_shares_with_clocks_of_their_own_read_each_clock_once_per_edge() -> None:
    """Shares whose clocks differ (injected, or counters of two classes) take the general
    path: each class read together, each distinct clock once per edge."""
    calls_a, proc_a, busy_a = _counting_clocks()
    calls_b, proc_b, busy_b = _counting_clocks()
    shares = [ProcessShare(FakeCounter([0.0, 10.0, 30.0]), process_cpu_s=proc_a,
                           machine_busy_cpu_s=busy_a),
              ProcessShare(FailingCounter([0.0, 10.0, 30.0]), process_cpu_s=proc_a,
                           machine_busy_cpu_s=busy_a),
              ProcessShare(FakeCounter([0.0, 10.0, 30.0]), process_cpu_s=proc_b,
                           machine_busy_cpu_s=busy_b)]
    for _ in range(3):
        out: list[float | None] = [None] * 3
        assert ProcessShare.read_edge(shares, 0.0, out, (0, 1, 2)) == []
    assert calls_a == [3, 3] and calls_b == [3, 3]
    assert out == [pytest.approx(10 * 0.5 + 20 * 0.25)] * 3


def test_a_share_that_leads_two_groups_reads_the_group_it_is_given() -> None:
    """A share remembers how to read the group it leads (the meter passes the same list at
    every edge); given another group, it reads that one, with that group's clocks."""
    calls_a, proc_a, busy_a = _counting_clocks()
    calls_b, proc_b, busy_b = _counting_clocks()
    lead = ProcessShare(FakeCounter([0.0, 10.0, 30.0, 40.0]), process_cpu_s=proc_a,
                        machine_busy_cpu_s=busy_a)
    alike = [lead, ProcessShare(FakeCounter([0.0, 1.0]), process_cpu_s=proc_a,
                                machine_busy_cpu_s=busy_a)]
    other = ProcessShare(FakeCounter([0.0, 4.0, 8.0]), process_cpu_s=proc_b,
                         machine_busy_cpu_s=busy_b)
    mixed = [lead, other]
    out: list[float | None] = [None] * 2
    assert ProcessShare.read_edge(alike, 0.0, out, (0, 1)) == []
    assert calls_a == [1, 1] and calls_b == [0, 0]
    for _ in range(2):
        out = [None] * 2
        assert ProcessShare.read_edge(mixed, 0.0, out, (0, 1)) == []
    assert calls_b == [2, 2]  # the mixed group's own clocks, read at each of its edges
    # the other share's energy by its own clocks: proc 0 -> 1 of busy 0 -> 2
    assert out[1] == pytest.approx(4.0 * 0.5)
    out = [None] * 2
    assert ProcessShare.read_edge(alike, 0.0, out, (0, 1)) == []
    assert calls_a == [4, 4]  # 1 + 2 (the mixed group's) + 1
