"""Hardware labels: any device name is accepted; the table adds what is known of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nvml_standin import StandinGPU, make_nvml

import wattprint
from wattprint import ConfigError, EnergyMeter, FakeSensor
from wattprint.score import calculate_scores
from wattprint.sensors.hardware import PROFILES, detect_hardware, resolve_hardware
from wattprint.sweep.config import load_config


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_energy keeps its results in the working folder by default (wattprint.db,
    results/): each test here works in a folder of its own."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


@pytest.mark.parametrize(
    ("name", "label", "tdp_w"),
    [
        ("NVIDIA H200", "H200", 700.0),
        ("NVIDIA H20", "H20", 400.0),
        ("NVIDIA B200", "B200", 1000.0),
        ("NVIDIA GB200", "GB200", 1200.0),
        ("NVIDIA GH200 480GB", "GH200", 1000.0),
        ("NVIDIA L40S", "L40S", 350.0),
        ("NVIDIA L40", "L40", 300.0),
        ("NVIDIA L4", "L4", 72.0),
        ("NVIDIA A10", "A10", 150.0),
        ("NVIDIA A10G", "A10G", 300.0),
        ("NVIDIA A30", "A30", 165.0),
        ("NVIDIA A40", "A40", 300.0),
        ("NVIDIA A100-SXM4-80GB", "A100", 400.0),
        ("NVIDIA RTX A6000", "A6000", 300.0),
        ("NVIDIA GeForce RTX 4090", "RTX 4090", 450.0),
        ("NVIDIA GeForce RTX 3090", "RTX 3090", 350.0),
        ("NVIDIA GeForce RTX 3090 Ti", "RTX 3090 Ti", 450.0),
        ("NVIDIA H100 80GB HBM3", "H100", 700.0),
        ("Tesla T4", "T4", 70.0),
        ("  nvidia   h200 ", "H200", 700.0),
        ("h100", "H100", 700.0),
    ],
)
def test_table_names_get_their_label_and_board_power(name: str, label: str,
                                                     tdp_w: float) -> None:
    hw = resolve_hardware(name)
    assert (hw.name, hw.kind, hw.tdp_w, hw.known) == (label, "gpu", tdp_w, True)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("TPUv9", "TPUv9"),
        ("NVIDIA B300 SXM6", "B300 SXM6"),  # the leading NVIDIA goes, the rest is kept
        ("Quadro RTX 6000", "Quadro RTX 6000"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "GeForce RTX 4090 Laptop GPU"),
        ("Intel(R) Xeon(R)  Platinum 8480+", "Intel(R) Xeon(R) Platinum 8480+"),
    ],
)
def test_unknown_names_are_kept_never_refused(name: str, label: str) -> None:
    from wattprint.sensors.hardware import Hardware

    hw = resolve_hardware(name)
    assert hw == Hardware(label)
    assert not hw.known and hw.kind is None and hw.tdp_w is None
    assert resolve_hardware(name, kind="gpu").kind == "gpu"


def test_only_an_empty_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        resolve_hardware("   ")


def test_whole_words_only() -> None:
    assert resolve_hardware("NVIDIA L40S").name == "L40S"  # not L4, not L40
    assert resolve_hardware("NVIDIA GB200").name == "GB200"  # not B200
    assert resolve_hardware("NVIDIA H200").name == "H200"  # not H20
    assert resolve_hardware("NVIDIA A100").name == "A100"  # not A10


def test_skipping_phrases_whose_words_a_name_lacks_changes_no_match() -> None:
    """A phrase is compiled only where an ASCII name holds each of its words: every name
    made from the table (as NVML and cpuinfo print them, in other cases and spacing, as a
    laptop part) finds what searching it with every phrase finds."""
    import re

    from wattprint.sensors import hardware

    assert all(m.isascii() for p in PROFILES.values() for m in p.matches)  # the rule's ground
    names = [f(m) for p in PROFILES.values() for m in p.matches for f in (
        lambda m: f"NVIDIA {m}", lambda m: m.lower(), lambda m: m.upper().replace(" ", "  "),
        lambda m: f"{m} Laptop GPU", lambda m: f"{m}X", lambda m: f"Apple {m} chip")]
    names += ["AMD EPYC 7763 64-Core Processor", "NVIDIA H100 80GB HBM3", "Jetson-AGX",
              "Ünknown H100", "NVIDIA K80"]  # non-ASCII: every phrase is tried

    def every_phrase(text: str, kinds: tuple[str, ...]) -> Any:
        for profile in PROFILES.values():
            if profile.kind in kinds and any(
                    re.search(hardware._pattern(m).pattern, text, re.IGNORECASE)
                    for m in profile.matches):
                return profile
        return None

    found = 0
    for name in names:
        for kinds in (("gpu", "soc"), ("soc",)):
            hit = hardware._known(name, kinds)
            assert hit is every_phrase(name, kinds), (name, kinds)
            found += hit is not None
    assert found >= len(names) // 2  # the names do reach the table


def test_every_table_label_resolves_to_itself() -> None:
    for key, profile in PROFILES.items():
        assert resolve_hardware(profile.name) is profile
        assert key == profile.name.casefold()


def test_detect_hardware_labels_an_unknown_gpu(closing_meter: Any) -> None:
    meter = closing_meter([StandinGPU(name="NVIDIA B300 SXM6")])
    assert detect_hardware(meter.sensors) == "B300 SXM6"
    meter = closing_meter([StandinGPU(name="NVIDIA H200")])
    assert detect_hardware(meter.sensors) == "H200"


@pytest.fixture
def closing_meter() -> Any:
    made: list[EnergyMeter] = []

    def make(gpus: list[StandinGPU]) -> EnergyMeter:
        meter = EnergyMeter(["nvml"], nvml=make_nvml(gpus), carbon_intensity_g_per_kwh=300.0)
        made.append(meter)
        return meter

    yield make
    for meter in made:
        meter.close()


@pytest.mark.parametrize(("given", "label"), [("NVIDIA H200", "H200"), ("nvidia l40s", "L40S"),
                                              ("TPUv9", "TPUv9")])
def test_measure_energy_accepts_any_hardware_name(given: str, label: str) -> None:
    with EnergyMeter([FakeSensor(power_w=10.0)]) as meter:
        result = wattprint.measure_energy(len, [[1], [2]], "m", "t", hardware=given,
                                          num_samples=2, warmup=0, meter=meter)
    assert result["hardware"] == label


@pytest.mark.parametrize(("given", "label"), [("NVIDIA H200", "H200"), ("l40s", "L40S"),
                                              ("TPUv9", "TPUv9"), ("AUTO", "auto")])
def test_sweep_config_accepts_any_hardware_name(given: str, label: str) -> None:
    data = {"project": "p", "models": [{"name": "m", "source": "sklearn:SVC"}],
            "datasets": [{"name": "iris"}], "hardware": {"device_profile": given}}
    assert load_config(data).hardware.device_profile == label


def test_an_h200_sweep_is_filed_and_rated_under_h200(tmp_path: Path) -> None:
    """NVML says "NVIDIA H200" -> the sweep's inference cells succeed, filed under "H200",
    and the star ratings of H200 rate them."""
    module = make_nvml([StandinGPU(name="NVIDIA H200", power_mw=250_000)])
    config = {
        "project": "h200",
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression", "task": "classification"},
            {"name": "svc", "source": "sklearn:SVC",
             "task": "classification"},
        ],
        "datasets": [{"name": "digits", "split": "test", "limit": 60}],
        "monitoring": {"repetitions": 2, "warmup": 0, "batch_size": 16},
        "hardware": {"device_profile": "auto"},
        "output": {"export_formats": [], "output_dir": str(tmp_path / "out"),
                   "db": str(tmp_path / "w.db")},
    }
    meter = EnergyMeter(["nvml"], nvml=module, carbon_intensity_g_per_kwh=300.0)
    try:
        report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    finally:
        meter.close()
    inference = [r for r in report["runs"] if r["phase"] == "inference"]
    assert len(inference) == 4
    assert [r["error"] for r in inference] == [None] * 4
    assert {r["status"] for r in inference} == {"ok"}
    assert {r["hardware"] for r in report["runs"]} == {"H200"}
    assert {r["provenance"] for r in inference} == {"measured"}
    for label in ("H200", "h200", "NVIDIA H200"):  # as stored, or as the device names itself
        scores = calculate_scores("classification", label, db=tmp_path / "w.db")
        assert sorted(s.model for s in scores) == ["logreg", "svc"]
        assert {s.hardware for s in scores} == {"H200"}
        assert all(1 <= s.stars <= 5 for s in scores)
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "wattprint", "score", "--json", "--hardware",
                           "NVIDIA H200", "--db", str(tmp_path / "w.db")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(e["model"] for e in json.loads(proc.stdout)) == ["logreg", "svc"]


def _new_platform_meter(kind: str, tmp_path: Path) -> EnergyMeter:
    if kind == "amdsmi":
        from amdsmi_standin import StandinAmdGPU, make_amdsmi

        return EnergyMeter(["amdsmi"], amdsmi=make_amdsmi([StandinAmdGPU()]), sync_cuda=False,
                           carbon_intensity_g_per_kwh=300.0)
    from hwmon_tree import orin_nano

    return EnergyMeter(["hwmon"], hwmon_root=str(orin_nano(tmp_path / "sys")),
                       carbon_intensity_g_per_kwh=300.0, sync_cuda=False)


@pytest.mark.parametrize(("kind", "label", "provenance"),
                         [("amdsmi", "MI300X", "measured"),  # the energy accumulator
                          ("hwmon", "Jetson Orin Nano", "sampled")])  # power rails
def test_new_platforms_are_filed_rated_and_reported_under_their_label(
    kind: str, label: str, provenance: str, tmp_path: Path
) -> None:
    """AMD SMI's "AMD Instinct MI300X" and a Jetson's device tree name reach the stored runs,
    the star table of that hardware and the HTML report, as any other device name."""
    from wattprint.report import write_report

    config = {
        "project": kind,
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression", "task": "classification"},
            {"name": "svc", "source": "sklearn:SVC", "task": "classification"},
        ],
        "datasets": [{"name": "digits", "split": "test", "limit": 40}],
        "monitoring": {"repetitions": 2, "warmup": 0, "batch_size": 16},
        "hardware": {"device_profile": "auto"},
        "output": {"export_formats": [], "output_dir": str(tmp_path / "out"),
                   "db": str(tmp_path / "w.db")},
    }
    meter = _new_platform_meter(kind, tmp_path)
    try:
        report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    finally:
        meter.close()
    inference = [r for r in report["runs"] if r["phase"] == "inference"]
    assert [r["error"] for r in inference] == [None] * 4
    assert {r["hardware"] for r in report["runs"]} == {label}
    assert {r["provenance"] for r in inference} == {provenance}
    scores = calculate_scores("classification", label, db=tmp_path / "w.db")
    assert sorted(s.model for s in scores) == ["logreg", "svc"]
    assert {s.hardware for s in scores} == {label}
    html = write_report(tmp_path / "w.db", sweep_id=report["sweep_id"],
                        out=tmp_path / "r.html").read_text(encoding="utf-8")
    assert label in html
