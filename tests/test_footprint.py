"""Footprint: joules to kWh, CO2 and water, from the shipped grid data.

Expected intensities are read from the shipped CSV files here, never typed in, so the tests
check the lookup and the arithmetic rather than one year's figures.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import re
import subprocess
import sys
from collections import Counter
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattprint.errors import ConfigError, LocationError
from wattprint.footprint import (
    TIERS,
    CloudRegion,
    Footprint,
    FootprintModel,
    footprint,
    list_cloud_regions,
    list_countries,
    list_regions,
    list_zones,
    resolve_intensity,
)

# The package exports the function `footprint` under the module's own name, so
# The module behind wattprint.footprint().
fp = importlib.import_module("wattprint.footprint")


def read_rows(name: str) -> list[dict[str, str]]:
    text = files("wattprint.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def em_row(zone: str) -> dict[str, str]:
    (row,) = [r for r in read_rows("grid-intensity-electricitymaps-2024.csv") if r["zone"] == zone]
    return row


def ember_row(code: str) -> dict[str, str]:
    (row,) = [r for r in read_rows("grid-intensity-ember.csv") if r["code"] == code]
    return row


def em_intensity(zone: str) -> float:
    return float(em_row(zone)["gco2eq_per_kwh"])


# -- formulas ---------------------------------------------------------------------------------


def test_formulas_by_hand() -> None:
    intensity = em_intensity("DE")
    f = footprint(7.2e6, zone="DE", pue=1.5, wue_l_per_kwh=0.5, water_intensity_l_per_kwh=2.0)
    assert f.energy_j == 7.2e6
    assert f.kwh == pytest.approx(2.0)
    assert f.intensity_g_per_kwh == intensity
    assert f.co2_g == pytest.approx(2.0 * 1.5 * intensity)
    assert f.water_onsite_l == pytest.approx(2.0 * 0.5)
    assert f.water_offsite_l == pytest.approx(2.0 * 1.5 * 2.0)
    assert f.water_l == pytest.approx(1.0 + 6.0)
    assert (f.pue, f.wue_l_per_kwh, f.water_intensity_l_per_kwh) == (1.5, 0.5, 2.0)
    assert f.water_intensity_source == "given by the user"


def test_on_site_water_is_not_pue_scaled_but_off_site_water_and_co2_are() -> None:
    common: dict[str, Any] = {"carbon_intensity_g_per_kwh": 300.0, "wue_l_per_kwh": 1.0}
    low = footprint(3.6e6, pue=1.0, **common)
    high = footprint(3.6e6, pue=2.0, **common)
    assert high.water_onsite_l == low.water_onsite_l == pytest.approx(1.0)
    assert high.water_offsite_l == pytest.approx(2 * low.water_offsite_l)
    assert high.co2_g == pytest.approx(2 * low.co2_g) == pytest.approx(600.0)


def test_model_of_is_what_footprint_returns() -> None:
    args: dict[str, Any] = {"cloud_region": "gcp:europe-west4", "tier": "datacenter"}
    assert FootprintModel.create(**args).of(1234.5) == footprint(1234.5, **args)


def test_to_dict_is_json_ready_and_complete() -> None:
    f = footprint(1000.0, country="FR", tier="edge")
    data = f.to_dict()
    assert set(data) == set(Footprint._fields)
    assert json.loads(json.dumps(data)) == data


# -- locations --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["DE", "DEU", "de", "deu", " De "])
def test_country_alpha2_alpha3_any_case_uses_electricity_maps(code: str) -> None:
    row = em_row("DE")
    value, source, location = resolve_intensity(country=code)
    assert value == float(row["gco2eq_per_kwh"])
    assert source == f"Electricity Maps {row['year']}, zone DE"
    assert location == "DE"


def test_country_without_a_zone_falls_back_to_ember() -> None:
    zones = {r["zone"] for r in read_rows("grid-intensity-electricitymaps-2024.csv")}
    codes = {r["alpha3"]: r["alpha2"] for r in read_rows("country_codes.csv")}
    fallbacks = [
        r
        for r in read_rows("grid-intensity-ember.csv")
        if r["code"] in codes and codes[r["code"]] not in zones
    ]
    assert fallbacks, "the data has no country that only Ember covers"
    for row in fallbacks:
        for given_code in (codes[row["code"]], row["code"].lower()):
            value, source, location = resolve_intensity(country=given_code)
            assert value == float(row["gco2_per_kwh"])
            assert source == f"Ember {row['year']}, country {row['code']}"
            assert location == row["code"]


def test_country_accepts_embers_regional_rows() -> None:
    row = ember_row("EU")
    assert resolve_intensity(country="eu") == (
        float(row["gco2_per_kwh"]),
        f"Ember {row['year']}, EU",
        "EU",
    )


def test_zone_matches_any_case_and_returns_the_canonical_id() -> None:
    value, source, location = resolve_intensity(zone="us-cal-ciso")
    assert value == em_intensity("US-CAL-CISO")
    assert source == "Electricity Maps 2024, zone US-CAL-CISO"
    assert location == "US-CAL-CISO"


@pytest.mark.parametrize(
    ("given_region", "key", "zone"),
    [
        ("aws:us-east-1", "aws:us-east-1", "US-MIDA-PJM"),
        ("us-east-1", "aws:us-east-1", "US-MIDA-PJM"),
        ("AWS:eu-central-1", "aws:eu-central-1", "DE"),
        ("us-west-2", "aws:us-west-2", "US-NW-BPAT"),
        ("gcp:europe-west4", "gcp:europe-west4", "NL"),
        ("us-central1", "gcp:us-central1", "US-MIDW-MISO"),
        ("asia-northeast1", "gcp:asia-northeast1", "JP-TK"),
        ("azure:westeurope", "azure:westeurope", "NL"),
        ("northeurope", "azure:northeurope", "IE"),
        ("Azure:West Europe", "azure:westeurope", "NL"),
    ],
)
def test_cloud_region_with_and_without_provider(given_region: str, key: str, zone: str) -> None:
    value, source, location = resolve_intensity(cloud_region=given_region)
    assert value == em_intensity(zone)
    assert source == f"Electricity Maps 2024, zone {zone}"
    assert location == f"{key} -> {zone}"


def test_a_bare_region_two_providers_share_is_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    table = (
        CloudRegion("aws", "shared-1", "DE", "somewhere"),
        CloudRegion("gcp", "shared-1", "FR", "elsewhere"),
    )
    monkeypatch.setattr(fp, "list_cloud_regions", lambda: table)
    with pytest.raises(ConfigError, match="more than one provider") as info:
        resolve_intensity(cloud_region="shared-1")
    assert "aws:shared-1" in str(info.value) and "gcp:shared-1" in str(info.value)
    assert resolve_intensity(cloud_region="gcp:shared-1")[2] == "gcp:shared-1 -> FR"


@pytest.mark.parametrize(
    ("kwargs", "suggestion", "lister"),
    [
        ({"country": "Germny"}, "DE (Germany)", "wattprint locations countries"),
        ({"country": "DEX"}, "DE (Germany)", "wattprint locations countries"),
        ({"zone": "US-CAL-CISOO"}, "US-CAL-CISO", "wattprint locations zones"),
        ({"cloud_region": "aws:eu-west-9"}, "aws:eu-west-1", "wattprint locations cloud"),
        ({"cloud_region": "us-central1-a"}, "gcp:us-central1", "wattprint locations cloud"),
    ],
)
def test_unknown_place_raises_location_error_with_suggestions(
    kwargs: dict[str, Any], suggestion: str, lister: str
) -> None:
    with pytest.raises(LocationError) as info:
        resolve_intensity(**kwargs)
    message = str(info.value)
    assert repr(next(iter(kwargs.values()))) in message
    assert "Did you mean" in message and suggestion in message
    assert lister in message
    assert isinstance(info.value, ValueError)


def test_known_country_without_data_and_unknown_provider() -> None:
    with pytest.raises(LocationError, match="no grid data"):
        resolve_intensity(country="AQ")  # Antarctica: a real code, no grid figure
    with pytest.raises(LocationError, match="aws, gcp or azure"):
        resolve_intensity(cloud_region="ibm:us-south")


def test_more_than_one_location_is_a_config_error_naming_them() -> None:
    with pytest.raises(ConfigError, match="at most one") as info:
        footprint(1.0, country="DE", cloud_region="aws:us-east-1")
    assert "country='DE'" in str(info.value) and "cloud_region='aws:us-east-1'" in str(info.value)
    with pytest.raises(ConfigError, match="zone"):
        resolve_intensity(zone="FR", carbon_intensity_g_per_kwh=10.0)


def test_a_number_is_used_as_is() -> None:
    assert resolve_intensity(carbon_intensity_g_per_kwh=123.5) == (
        123.5,
        "given by the user",
        "user-given",
    )
    assert footprint(3.6e6, carbon_intensity_g_per_kwh=0).co2_g == 0.0


def test_no_location_is_the_world_average_and_says_so() -> None:
    row = ember_row("World")
    f = footprint(3.6e6)
    assert f.intensity_g_per_kwh == float(row["gco2_per_kwh"])
    assert f.intensity_source == f"world average (no location given): Ember {row['year']}, World"
    assert f.co2_g == pytest.approx(float(row["gco2_per_kwh"]))


# -- site: tiers and validation ---------------------------------------------------------------


def test_defaults_without_tier() -> None:
    f = footprint(3.6e6, carbon_intensity_g_per_kwh=100.0)
    assert (f.pue, f.wue_l_per_kwh, f.tier) == (1.0, 0.0, None)
    assert f.water_onsite_l == 0.0
    assert f.water_intensity_l_per_kwh == fp.DEFAULT_WATER_INTENSITY_L_PER_KWH
    assert f.water_intensity_source.startswith(fp.DEFAULT_WATER_INTENSITY_SOURCE)
    assert "Li et al. 2023" in f.water_intensity_source


@pytest.mark.parametrize(
    "where", [{"country": "US"}, {"country": "USA"}, {"zone": "US-CAL-CISO"},
              {"cloud_region": "aws:us-east-1"}],
)
def test_the_default_water_intensity_is_named_the_us_average_in_the_us(
    where: dict[str, str],
) -> None:
    f = footprint(3.6e6, **where)  # type: ignore[arg-type]
    assert f.water_intensity_l_per_kwh == 3.14
    assert f.water_intensity_source == fp.DEFAULT_WATER_INTENSITY_SOURCE
    assert f.water_intensity_source.startswith("U.S. average")


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"country": "DE"}, "used for DE"),
        ({"zone": "SE-SE3"}, "used for SE-SE3"),
        ({"cloud_region": "gcp:europe-west4"}, "used for gcp:europe-west4 -> NL"),
        ({}, "used with no location given"),
        ({"carbon_intensity_g_per_kwh": 100.0}, "given only by its carbon intensity"),
    ],
)
def test_elsewhere_the_water_source_says_it_is_the_us_figure_used_there(
    where: dict[str, object], named: str,
) -> None:
    """No per-country water data ships: outside the U.S. the figure is still the U.S. one,
    and the footprint says so instead of passing it off as the local grid's."""
    f = footprint(3.6e6, **where)  # type: ignore[arg-type]
    assert f.water_intensity_l_per_kwh == 3.14
    assert f.water_offsite_l == pytest.approx(3.14)
    src = f.water_intensity_source
    assert src.startswith("U.S. average grid water consumption 3.14 L/kWh (Li et al. 2023")
    assert named in src
    assert "no water figure per country" in src and "water_intensity_l_per_kwh" in src
    assert f.to_dict()["water_intensity_source"] == src


def test_a_given_water_intensity_is_named_as_such() -> None:
    f = footprint(3.6e6, country="DE", water_intensity_l_per_kwh=1.0)
    assert f.water_intensity_source == "given by the user"


def test_tier_defaults_and_explicit_overrides() -> None:
    dc = TIERS["datacenter"]
    assert (dc.pue, dc.wue_l_per_kwh) == (1.56, 1.8)
    assert "Uptime Institute" in dc.source
    for name in ("desktop", "edge"):
        assert (TIERS[name].pue, TIERS[name].wue_l_per_kwh) == (1.0, 0.0)

    f = footprint(3.6e6, carbon_intensity_g_per_kwh=100.0, tier="Datacenter")
    assert (f.pue, f.wue_l_per_kwh, f.tier) == (1.56, 1.8, "datacenter")
    assert f.co2_g == pytest.approx(156.0)
    assert f.water_onsite_l == pytest.approx(1.8)

    f = footprint(3.6e6, carbon_intensity_g_per_kwh=100.0, tier="datacenter", pue=1.1)
    assert (f.pue, f.wue_l_per_kwh) == (1.1, 1.8)
    f = footprint(3.6e6, carbon_intensity_g_per_kwh=100.0, tier="datacenter", wue_l_per_kwh=0)
    assert (f.pue, f.wue_l_per_kwh, f.water_onsite_l) == (1.56, 0.0, 0.0)
    f = footprint(1.0, tier="edge", water_intensity_l_per_kwh=0.0)
    assert f.water_l == 0.0

    with pytest.raises(ConfigError, match="datacenter, desktop, edge"):
        footprint(1.0, tier="cloud")


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"pue": 0.99}, "pue must be a finite number >= 1"),
        ({"pue": math.nan}, "pue must be a finite number >= 1"),
        ({"wue_l_per_kwh": -0.1}, "wue_l_per_kwh must be a finite number >= 0"),
        ({"water_intensity_l_per_kwh": -1.0}, "water_intensity_l_per_kwh must be"),
        ({"carbon_intensity_g_per_kwh": -1.0}, "carbon_intensity_g_per_kwh must be"),
        ({"carbon_intensity_g_per_kwh": math.inf}, "carbon_intensity_g_per_kwh must be"),
    ],
)
def test_bad_values_are_config_errors_with_the_range(kwargs: dict[str, Any], allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed):
        footprint(1.0, **kwargs)


def test_negative_energy_is_refused() -> None:
    with pytest.raises(ConfigError, match="energy_j"):
        footprint(-1.0)


# -- shipped data -----------------------------------------------------------------------------


def test_every_cloud_region_maps_to_an_existing_zone() -> None:
    zones = {r["zone"] for r in read_rows("grid-intensity-electricitymaps-2024.csv")}
    rows = read_rows("cloud_regions.csv")
    assert [r for r in rows if r["zone"] not in zones] == []
    assert all(r["location"] for r in rows)
    assert len({(r["provider"], r["region"]) for r in rows}) == len(rows)
    per_provider = Counter(r["provider"] for r in rows)
    assert per_provider["aws"] >= 25
    assert per_provider["gcp"] >= 30
    assert per_provider["azure"] >= 35
    assert set(per_provider) == {"aws", "gcp", "azure"}


def test_every_code_in_the_grid_files_is_in_the_country_table() -> None:
    codes = read_rows("country_codes.csv")
    alpha2 = {r["alpha2"] for r in codes}
    alpha3 = {r["alpha3"] for r in codes}
    assert len(alpha2) == len(alpha3) == len(codes)
    for row in read_rows("grid-intensity-ember.csv"):
        # ISO alpha-3 codes are three letters; anything else is a region row (World, EU, G20).
        if re.fullmatch("[A-Z]{3}", row["code"]):
            assert row["code"] in alpha3, row
    for row in read_rows("grid-intensity-electricitymaps-2024.csv"):
        assert row["zone"].split("-")[0] in alpha2, row


def test_listings() -> None:
    zones = list_zones()
    assert len(zones) == len(read_rows("grid-intensity-electricitymaps-2024.csv"))
    assert [z.zone for z in zones] == sorted(z.zone for z in zones)
    countries = {c.alpha2: c for c in list_countries()}
    assert countries["DE"].alpha3 == "DEU"
    assert countries["DE"].intensity_g_per_kwh == em_intensity("DE")
    assert countries["RU"].source.startswith("Ember")
    assert "World" in {r.code for r in list_regions()}
    regions = list_cloud_regions()
    assert all(isinstance(r, CloudRegion) for r in regions)
    assert CloudRegion("aws", "us-east-1", "US-MIDA-PJM", "Northern Virginia, USA") in regions


def test_the_licence_notice_is_packaged() -> None:
    notice = files("wattprint.data").joinpath("NOTICE.md").read_text(encoding="utf-8")
    for needle in (
        "Electricity Maps",
        "ODbL",
        "Ember",
        "CC BY-SA 4.0",
        "co2.js",
        "Green Web Foundation",
    ):
        assert needle in notice


def test_importing_reads_no_data() -> None:
    code = (
        "import importlib\n"
        "f = importlib.import_module('wattprint.footprint')\n"
        "assert f._read_csv.cache_info().currsize == 0, f._read_csv.cache_info()\n"
        "f.resolve_intensity(country='DE')\n"
        "assert f._read_csv.cache_info().currsize > 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- properties -------------------------------------------------------------------------------


def reals(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


@given(
    energy_j=reals(0, 1e12),
    factor=reals(0, 1e3),
    intensity=reals(0, 2000),
    pue=reals(1, 3),
    wue=reals(0, 10),
    water=reals(0, 10),
)
def test_co2_and_water_scale_linearly_and_are_never_negative(
    energy_j: float, factor: float, intensity: float, pue: float, wue: float, water: float
) -> None:
    model = FootprintModel.create(
        carbon_intensity_g_per_kwh=intensity,
        pue=pue,
        wue_l_per_kwh=wue,
        water_intensity_l_per_kwh=water,
    )
    one, scaled = model.of(energy_j), model.of(energy_j * factor)
    for f in (one, scaled):
        assert f.co2_g >= 0 and f.water_l >= 0
        assert f.water_onsite_l >= 0 and f.water_offsite_l >= 0
    assert scaled.co2_g == pytest.approx(one.co2_g * factor, rel=1e-9, abs=1e-12)
    assert scaled.water_l == pytest.approx(one.water_l * factor, rel=1e-9, abs=1e-12)
    assert one.water_l == pytest.approx(one.water_onsite_l + one.water_offsite_l)
