"""One `Site`: where the energy was used, declared once for the meter, footprint, config and CLI."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wattprint
import wattprint.meter
from wattprint import ConfigError, EnergyMeter, FakeSensor, Site
from wattprint._frozen import FrozenInstanceError
from wattprint.footprint import DEFAULT_PUE, DEFAULT_WUE_L_PER_KWH, TIERS, resolve_intensity
from wattprint.sweep.config import load_config

WATTPRINT = [sys.executable, "-m", "wattprint"]
LOOSE: dict[str, Any] = {"country": "FR", "pue": 1.3, "tier": "datacenter",
                         "water_intensity_l_per_kwh": 1.5}


def test_site_is_a_frozen_value_checked_once() -> None:
    site = Site(**LOOSE)
    assert site == Site(country="FR", pue=1.3, tier="DataCenter", water_intensity_l_per_kwh=1.5)
    with pytest.raises(FrozenInstanceError):
        site.pue = 2.0  # type: ignore[misc]
    assert hash(site) == hash(Site(**LOOSE)) and pickle.loads(pickle.dumps(site)) == site
    assert site.replace(tier="edge") == Site(**{**LOOSE, "tier": "edge"})
    with pytest.raises(ConfigError):
        site.replace(pue=0.5)  # checked as a new site is
    model = site.resolve()
    assert (model.pue, model.wue_l_per_kwh, model.water_intensity_l_per_kwh, model.tier) == (
        1.3, TIERS["datacenter"].wue_l_per_kwh, 1.5, "datacenter")
    assert model.site == site


@pytest.mark.parametrize(("args", "word"), [
    ({"country": "FR", "zone": "DE"}, "at most one"),
    ({"cloud_region": "aws:us-east-1", "carbon_intensity_g_per_kwh": 10}, "at most one"),
    ({"pue": 0.9}, "pue"),
    ({"wue_l_per_kwh": -1}, "wue_l_per_kwh"),
    ({"water_intensity_l_per_kwh": float("nan")}, "water_intensity_l_per_kwh"),
    ({"carbon_intensity_g_per_kwh": -5}, "carbon_intensity_g_per_kwh"),
    ({"tier": "basement"}, "tier"),
])
def test_bad_sites_are_config_errors(args: dict[str, Any], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        Site(**args)


def test_meter_with_a_site_equals_the_loose_arguments() -> None:
    site = Site(**LOOSE)
    by_site = EnergyMeter(sensors=[FakeSensor(power_w=10.0)], site=site)
    loose = EnergyMeter(sensors=[FakeSensor(power_w=10.0)], **LOOSE)
    assert by_site.site == loose.site == site
    assert by_site.footprint_model == loose.footprint_model
    with by_site.window("w"):
        pass
    m = by_site.last_measurement
    assert m is not None and m.site.site == site
    assert wattprint.footprint(1e6, site=site) == wattprint.footprint(1e6, **LOOSE)


@pytest.mark.parametrize("extra", [{"country": "FR"}, {"pue": 1.2}, {"tier": "edge"},
                                   {"water_intensity_l_per_kwh": 1.0}])
def test_site_and_loose_arguments_conflict(extra: dict[str, Any]) -> None:
    site = Site(country="DE")
    with pytest.raises(ConfigError, match="not both"):
        EnergyMeter(sensors=[FakeSensor(power_w=10.0)], site=site, **extra)
    with pytest.raises(ConfigError, match="not both"):
        wattprint.footprint(1.0, site=site, **extra)


def test_one_default_pue_for_meter_footprint_config_and_cli(tmp_path: Path) -> None:
    meter = EnergyMeter(sensors=[FakeSensor(power_w=10.0)])
    config = load_config({"project": "p", "datasets": [{"name": "iris"}],
                          "models": [{"name": "m", "source": "sklearn:LogisticRegression",
                                      "task": "classification"}]})
    r = subprocess.run([*WATTPRINT, "measure", "--json", "--", sys.executable, "-c", "pass"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)["measurement"]["footprint"]
    pues = {meter.footprint_model.pue, wattprint.footprint(1.0).pue,
            config.location.to_site().resolve().pue, cli["pue"]}
    wues = {meter.footprint_model.wue_l_per_kwh, wattprint.footprint(1.0).wue_l_per_kwh,
            config.location.to_site().resolve().wue_l_per_kwh, cli["wue_l_per_kwh"]}
    assert pues == {DEFAULT_PUE}
    assert wues == {DEFAULT_WUE_L_PER_KWH}


def test_cli_measure_builds_the_whole_site() -> None:
    r = subprocess.run([*WATTPRINT, "measure", "--json", "--country", "FR", "--tier",
                        "datacenter", "--water-intensity", "1.5", "--",
                        sys.executable, "-c", "pass"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    fp = json.loads(r.stdout)["measurement"]["footprint"]
    tier = TIERS["datacenter"]
    assert (fp["pue"], fp["wue_l_per_kwh"], fp["water_intensity_l_per_kwh"], fp["tier"]) == (
        tier.pue, tier.wue_l_per_kwh, 1.5, "datacenter")


def test_sweep_location_is_a_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[EnergyMeter] = []
    real = wattprint.meter.EnergyMeter

    def fake_sensors(*args: Any, **kwargs: Any) -> EnergyMeter:
        made.append(real([FakeSensor(power_w=20.0)], *args[1:], **kwargs))
        return made[-1]

    monkeypatch.setattr(wattprint.meter, "EnergyMeter", fake_sensors)
    config = {
        "project": "site-sweep",
        "models": [{"name": "logreg", "source": "sklearn:LogisticRegression",
                    "task": "classification"}],
        "datasets": [{"name": "digits", "split": "test", "limit": 50}],
        "monitoring": {"repetitions": 1, "warmup": 0, "batch_size": 16},
        "location": dict(LOOSE),
        "output": {"export_formats": ["json"], "output_dir": str(tmp_path / "results"),
                   "db": str(tmp_path / "wattprint.db")},
    }
    assert load_config(config).location.to_site() == Site(**LOOSE)
    report = wattprint.Benchmark(config).run(progress=False)
    assert len(made) == 1 and made[0].site == Site(**LOOSE)
    intensity = resolve_intensity(country="FR")[0]
    wue = TIERS["datacenter"].wue_l_per_kwh
    with sqlite3.connect(tmp_path / "wattprint.db") as db:
        rows = db.execute("SELECT energy_kwh, co2_g, water_l, pue, wue_l_per_kwh FROM runs "
                          "WHERE sweep_id = ?", (report["sweep_id"],)).fetchall()
    assert rows
    for kwh, co2, water, pue, stored_wue in rows:
        assert kwh > 0
        assert (pue, stored_wue) == (1.3, wue)
        assert co2 == pytest.approx(kwh * 1.3 * intensity, rel=1e-12)
        assert water == pytest.approx(kwh * wue + kwh * 1.3 * 1.5, rel=1e-12)
