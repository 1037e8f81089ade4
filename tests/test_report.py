"""The HTML report and the energy labels, from a real sweep in a real store, and the report
opened in a real headless browser (Debian's chromium, driven over the DevTools protocol)."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint import FakeSensor
from wattprint._summary import SweepSummary, summarize
from wattprint.errors import ConfigError, MissingExtra
from wattprint.meter import EnergyMeter
from wattprint.report import write_label, write_report
from wattprint.report.charts import Bar, bar_chart, spans_decades
from wattprint.report.label import LABEL_HEIGHT, LABEL_WIDTH, PNG_SCALE
from wattprint.score import calculate_scores, energy_text, star_glyphs
from wattprint.store import Store

CHARTS = {"energy", "pareto", "savings", "timeline"}
SVG = "{http://www.w3.org/2000/svg}"


# --------------------------------------------------------------------------------------------
# A real sweep, and hand-written stores for exact figures.


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two scikit-learn models, a small CNN with its int8 variant, and a model whose file is
    broken (its cells fail), on 100 digits, measured with a fake 20 W sensor."""
    tmp = tmp_path_factory.mktemp("report-sweep")
    broken = tmp / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    db = tmp / "wattprint.db"
    config = {
        "project": "report-test",
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression"},
            {"name": "forest", "source": "sklearn:RandomForestClassifier"},
            {"name": "cnn", "source": "torch:SmallCNN", "epochs": 1,
             "quantization": {"enabled": True, "method": "dynamic"}},
            {"name": "broken", "path": str(broken), "task": "classification"},
        ],
        "datasets": [{"name": "digits", "task": "classification", "limit": 100,
                      "split": "test"}],
        "monitoring": {"repetitions": 1, "warmup": 1, "batch_size": 8, "frequency_hz": 50},
        "location": {"country": "FR"},
        "output": {"export_formats": [], "output_dir": str(tmp / "results"), "db": str(db)},
    }
    meter = EnergyMeter(sensors=[FakeSensor(power_w=20.0)], country="FR")
    report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    return db, str(report["sweep_id"])


@pytest.fixture(scope="module")
def page(sweep: tuple[Path, str]) -> tuple[Path, str]:
    db, _ = sweep
    out = write_report(db, out=db.parent / "report.html")
    return out, out.read_text(encoding="utf-8")


def run_row(model: str, variant: str = "fp32", *, kwh_per_1000: float = 1e-3,
            accuracy: float | None = 0.9, phase: str = "inference", parent: str | None = None,
            hardware: str = "CPU", dataset: str = "digits", status: str = "ok",
            provenance: str = "measured", repetition: int = 0, num_samples: int = 1000,
            error: str | None = None, started_at: float = 1_750_000_000.0) -> dict[str, Any]:
    """A run record with consistent figures: 400 g CO2e/kWh, 1.5 L/kWh."""
    kwh = kwh_per_1000 * num_samples / 1000.0
    record: dict[str, Any] = {
        "cell_key": f"{model}/{variant}/{dataset}/{hardware}/{phase}/{repetition}",
        "model_name": model, "variant": variant, "parent": parent, "dataset": dataset,
        "repetition": repetition, "phase": phase, "task": "classification",
        "hardware": hardware, "status": status, "error": error,
    }
    if status == "ok":
        record.update(
            started_at=started_at, ended_at=started_at + 2.0, duration_s=2.0,
            energy_j=kwh * 3.6e6, energy_kwh=kwh, co2_g=kwh * 400.0, water_l=kwh * 1.5,
            intensity_g_per_kwh=400.0, intensity_source="given: 400 g/kWh", pue=1.2,
            wue_l_per_kwh=1.5, provenance=provenance, num_samples=num_samples,
            components={"cpu": {"energy_j": kwh * 3.6e6 * 0.75, "source": "rapl",
                                "measured": provenance == "measured"},
                        "ram": {"energy_j": kwh * 3.6e6 * 0.25, "source": "estimate",
                                "measured": False}},
            num_parameters=1_000_000, size_bytes=4_000_000,
        )
        if phase == "inference":
            record.update(kwh_per_1000_queries=kwh_per_1000,
                          metrics={} if accuracy is None else {"accuracy": accuracy})
    return record


def make_store(db: Path, rows: list[dict[str, Any]], *, sweep_id: str = "s1",
               project: str = "hand-made",
               samples: dict[str, list[tuple[float, str, float]]] | None = None) -> Path:
    with Store(db) as store:
        store.begin_sweep(sweep_id, project=project, config={"location": {"country": "DE"}},
                          host={"hostname": "bench-1"})
        for row in rows:
            store.write_run({"sweep_id": sweep_id, **row},
                            (samples or {}).get(row["cell_key"]))
        store.end_sweep(sweep_id, "finished")
    return db


class Page(HTMLParser):
    """What the tests look for in a report: its charts, links, totals and visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: list[dict[str, Any]] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.totals: dict[str, float] = {}
        self.tags: set[str] = set()
        self.ids: set[str] = set()
        self._in_figure = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href", "xlink:href", "action", "poster", "srcset"):
            if key in a:
                self.links.append((tag, key, a[key]))
        if tag == "figure" and "chart" in a.get("class", "").split():
            self.figures.append({"chart": a.get("data-chart"), "group": a.get("data-group"),
                                 "svg": 0})
        if tag == "svg" and self.figures:
            self.figures[-1]["svg"] += 1
        if "data-total" in a:
            self.totals[a["data-total"]] = float(a["data-value"])


# --------------------------------------------------------------------------------------------
# The report.


def test_the_report_has_every_section_and_chart(page: tuple[Path, str]) -> None:
    _, text = page
    parsed = Page(text)
    assert {"totals", "site", "ratings", "energy", "pareto", "savings", "timeline", "runs",
            "provenance", "failed"} <= parsed.ids
    assert {f["chart"] for f in parsed.figures} == CHARTS
    assert all(f["svg"] == 1 for f in parsed.figures), parsed.figures
    assert [f["group"] for f in parsed.figures if f["chart"] == "pareto"] == [
        "classification/CPU"]


def test_totals_are_the_sums_of_the_rows(sweep: tuple[Path, str],
                                         page: tuple[Path, str]) -> None:
    db, sweep_id = sweep
    with Store(db) as store:
        ok = store.runs(sweep_id=sweep_id, status="ok")
    totals = Page(page[1]).totals
    assert totals["energy_kwh"] == pytest.approx(math.fsum(r.energy_kwh or 0.0 for r in ok))
    assert totals["co2_g"] == pytest.approx(math.fsum(r.co2_g or 0.0 for r in ok))
    assert totals["water_l"] == pytest.approx(math.fsum(r.water_l or 0.0 for r in ok))
    assert totals["runs_ok"] == len(ok)
    assert totals["energy_kwh"] > 0


MODEL_KEYS = ["model", "variant", "dataset", "parent", "task", "hardware", "framework",
              "repetitions", "kwh_per_1000_queries", "energy_j", "co2_g", "water_l",
              "samples_per_second", "accuracy", "f1_macro", "rmse", "mae", "quality",
              "num_parameters", "effective_parameters", "size_bytes", "dtype", "provenance",
              "step_phase", "step_energy_j", "step_co2_g", "errors", "partial_runs",
              "partial_errors"]


def test_the_summary_is_typed_in_grams_and_ml_ecolyzer_s_view_is_made_from_it(
        tmp_path: Path) -> None:
    rows = [run_row("m", kwh_per_1000=2e-3, repetition=0),
            run_row("m", kwh_per_1000=4e-3, repetition=1),
            run_row("m", "int8", parent="fp32", phase="optimization", kwh_per_1000=1e-2),
            run_row("m", "int8", parent="fp32", kwh_per_1000=1e-3),
            run_row("x", status="failed", error="boom")]
    with Store(make_store(tmp_path / "w.db", rows)) as store:
        runs = store.runs()
    summary = summarize(runs)
    assert isinstance(summary, SweepSummary)
    ok = [r for r in runs if r.ok]
    assert summary.total_co2_g == pytest.approx(math.fsum(r.co2_g or 0.0 for r in ok))
    assert (summary.runs_ok, summary.runs_failed) == (4, 1)
    base, int8, failed = summary.models
    assert (base.label, base.repetitions, int8.label, failed.errors) == (
        "m", 2, "m:int8", ("boom",))
    assert base.kwh_per_1000_queries == pytest.approx(3e-3)
    assert base.co2_g == pytest.approx(3e-3 * 400.0)  # grams, the mean of the repetitions
    assert int8.step_phase == "optimization" and int8.step_co2_g == pytest.approx(4.0)
    view = summary.to_analysis_summary()  # the edge: ML-EcoLyzer's keys and units
    assert list(view) == ["total_energy_kwh", "total_co2_emissions_kg", "total_water_l",
                          "runs_ok", "runs_failed", "models"]
    assert view["total_co2_emissions_kg"] == summary.total_co2_g / 1000.0
    assert [list(m) for m in view["models"]] == [MODEL_KEYS] * 3
    assert view["models"][2]["errors"] == ["boom"] and json.dumps(view)


def test_stars_of_every_model_and_the_provenance(sweep: tuple[Path, str],
                                                  page: tuple[Path, str]) -> None:
    db, sweep_id = sweep
    _, text = page
    scores = calculate_scores("classification", "CPU", db=db, sweep_id=sweep_id)
    assert {s.model for s in scores} == {"logreg", "forest", "cnn", "cnn:int8-dynamic"}
    ratings = text[text.index('id="ratings"'):text.index('id="energy"')]
    for s in scores:
        row = re.search(rf"<tr><td><span class=\"stars s{s.stars}\"[^>]*>"
                        rf"{star_glyphs(s.stars)}</span></td><td>{re.escape(s.model)}</td>",
                        ratings)
        assert row, s.model
        assert energy_text(s.kwh_per_1000_queries) in ratings
    assert '<span class="prov prov-fake"' in ratings
    legend = text[text.index('id="provenance"'):]
    for word in ("measured", "sampled", "estimate", "mixed", "fake"):
        assert f'<span class="prov prov-{word}"' in legend


def test_failed_cells_are_listed_with_their_errors(sweep: tuple[Path, str],
                                                   page: tuple[Path, str]) -> None:
    db, sweep_id = sweep
    with Store(db) as store:
        failed = store.runs(sweep_id=sweep_id, status="failed")
    assert failed and all(r.model_name == "broken" for r in failed)
    section = page[1][page[1].index('id="failed"'):]
    for r in failed:
        assert escape(str(r.error)) in section
        assert escape(str(r.cell_key)) in section


def test_location_intensity_pue_and_wue_are_shown(sweep: tuple[Path, str],
                                                  page: tuple[Path, str]) -> None:
    db, sweep_id = sweep
    with Store(db) as store:
        run = store.runs(sweep_id=sweep_id, status="ok")[0]
    section = page[1][page[1].index('id="site"'):page[1].index('id="ratings"')]
    assert "<dt>country</dt><dd>FR</dd>" in section
    assert escape(str(run.intensity_source)) in section
    assert f"{run.intensity_g_per_kwh:.4g}" in section
    assert "PUE" in section and "WUE" in section
    assert f"<td>{escape(str(run.location))}</td>" in section  # the run's own site
    assert "(config)" not in section


def test_the_site_of_each_run_and_the_config_for_runs_without_one(tmp_path: Path) -> None:
    rows = [{**run_row("a"), "location": "FR", "tier": "datacenter",
             "water_intensity_l_per_kwh": 0.5},
            run_row("b", kwh_per_1000=2e-3)]  # as stored before runs kept their site
    db = make_store(tmp_path / "w.db", rows)  # its config asks for country DE
    text = write_report(db, out=tmp_path / "r.html").read_text()
    section = text[text.index('id="site"'):text.index('id="ratings"')]
    table = section[section.index("<table"):section.index("</table>")]
    head = re.findall(r"<th>(.*?)</th>", table)
    body = [re.findall(r"<td[^>]*>(.*?)</td>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])]
    cells = sorted((dict(zip(head, row, strict=True)) for row in body),
                   key=lambda c: c["location"])
    assert [(c["location"], c["tier"], c["grid water (L/kWh)"]) for c in cells] == [
        ("DE (config)", "-", "-"), ("FR", "datacenter", "0.5")]
    assert "marked (config)" in section


def test_the_report_loads_nothing_from_elsewhere(page: tuple[Path, str]) -> None:
    _, text = page
    parsed = Page(text)
    assert parsed.links, "the page has its in-page links"
    assert all(attr == "href" and value.startswith("#") for _, attr, value in parsed.links), \
        parsed.links
    assert not parsed.tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    lowered = text.lower()
    assert "@import" not in lowered and "url(" not in lowered
    assert "http://" not in lowered and "https://" not in lowered


def test_exact_savings_and_break_even(tmp_path: Path) -> None:
    # int8 halves 2 mWh per 1000 queries: it saves 1 µWh a query, so its 10 mWh step is
    # paid back after 10,000 queries.
    rows = [run_row("m", kwh_per_1000=2e-6, accuracy=0.90),
            run_row("m", "int8", parent="fp32", phase="optimization", kwh_per_1000=1e-5),
            run_row("m", "int8", parent="fp32", kwh_per_1000=1e-6, accuracy=0.88)]
    db = make_store(tmp_path / "w.db", rows)
    text = write_report(db, out=tmp_path / "r.html").read_text()
    section = text[text.index('id="savings"'):text.index('id="timeline"')]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", section)
    assert cells == ["m:int8", "fp32", "2 mWh → 1 mWh", "-50.0 %", "-", "-50.0 %", "+100.0 %",
                     "-2.00 pt", "+0.0 %", "10 mWh", "4 mg", "10,000"]
    assert 'data-chart="savings"' in section


def _spread_items(text: str) -> dict[str, tuple[str, str]]:
    """The savings section's spread list: (variant's, parent's) text by variant label."""
    section = text[text.index('id="savings"'):text.index('id="timeline"')]
    return {label: (variant, parent) for label, variant, parent in re.findall(
        r'<li data-variant="([^"]*)">.*?<span class="spread-variant">(.*?)</span>.*?'
        r'<span class="spread-parent">(.*?)</span></li>', section)}


def test_savings_show_the_spread_of_each_variant_and_its_parent(tmp_path: Path) -> None:
    rows = [run_row("m", kwh_per_1000=2e-3),  # one repetition of the parent
            run_row("m", "int8", parent="fp32", phase="optimization", kwh_per_1000=1e-5)]
    rows += [run_row("m", "int8", parent="fp32", kwh_per_1000=k, repetition=i)
             for i, k in enumerate((1.0e-3, 1.4e-3, 1.2e-3))]
    rows += [run_row("m", "pruned", parent="fp32", kwh_per_1000=k, repetition=i)
             for i, k in enumerate((1.5e-3, 1.5e-3))]
    db = make_store(tmp_path / "w.db", rows)
    scores = {s.model: s for s in calculate_scores("classification", "CPU", db=db)}
    with Store(db, read_only=True) as store:
        saving = {s.variant: s for s in wattprint.score.savings(store.runs())}
    items = _spread_items(write_report(db, out=tmp_path / "r.html").read_text())
    assert set(items) == {"m:int8", "m:pruned"}

    int8, parent = scores["m:int8"], scores["m"]
    assert (int8.kwh_per_1000_queries_min, int8.kwh_per_1000_queries_max) == (1.0e-3, 1.4e-3)
    low, high = saving["int8"].kwh_per_1000_queries_ci95_low, \
        saving["int8"].kwh_per_1000_queries_ci95_high
    assert low is not None and high is not None and low < 1.0e-3 and high > 1.4e-3
    interval = wattprint.score.interval_text(low, high)
    assert items["m:int8"][0] == escape(
        f"1.2 Wh (n=3), min – max 1 – 1.4 Wh, 95 % interval {interval}")
    assert items["m:int8"][1] == "2 Wh, n=1: no interval"
    assert saving["int8"].parent_kwh_per_1000_queries_ci95_low is None
    # two equal repetitions: a range and an interval of zero width
    assert items["m:pruned"][0].startswith(escape("1.5 Wh (n=2), min – max 1.5 – 1.5 Wh, 95 %"))
    assert parent.repetitions == 1


def test_the_spread_of_a_variant_whose_parent_has_no_runs_says_so(tmp_path: Path) -> None:
    rows = [run_row("m", "int8", parent="fp32", kwh_per_1000=1e-3)]
    db = make_store(tmp_path / "w.db", rows)
    items = _spread_items(write_report(db, out=tmp_path / "r.html").read_text())
    assert items == {"m:int8": ("1 Wh, n=1: no interval", "no rated inference runs")}


def test_the_energy_axis_is_logarithmic_only_beyond_two_decades(tmp_path: Path) -> None:
    wide = make_store(tmp_path / "wide.db", [run_row("a", kwh_per_1000=1e-6),
                                             run_row("b", kwh_per_1000=5e-4)])
    narrow = make_store(tmp_path / "narrow.db", [run_row("a", kwh_per_1000=1e-6),
                                                 run_row("b", kwh_per_1000=5e-5)])

    def energy_chart(db: Path) -> str:
        text = write_report(db, out=db.with_suffix(".html")).read_text()
        return text[text.index('data-chart="energy"'):text.index('id="pareto"')]

    log_chart = energy_chart(wide)
    assert "energy per 1000 queries (log scale)" in log_chart
    assert all(f">{tick}<" in log_chart for tick in ("1 mWh", "10 mWh", "100 mWh", "1 Wh"))
    assert "log scale" not in energy_chart(narrow)
    assert spans_decades([1.0, 101.0]) and not spans_decades([1.0, 100.0])
    assert not spans_decades([0.0, 1e6])


def _energy_bars(db: Path) -> dict[str, ET.Element]:
    """The energy chart of ``db``'s report: each bar's ``<g class="bar">`` by the model its
    hover title names."""
    text = write_report(db, out=db.with_suffix(".html")).read_text()
    start = text.index('data-chart="energy"')
    svg = text[text.index("<svg", start):text.index("</svg>", start) + len("</svg>")]
    root = ET.fromstring(svg)
    return {(g.findtext("title") or "").split(" on ")[0]: g
            for g in root.iter("g") if g.get("class") == "bar"}


def test_the_energy_bars_show_the_spread_of_the_repetitions_and_only_theirs(
        tmp_path: Path) -> None:
    rows = [run_row("a", kwh_per_1000=k, repetition=i)
            for i, k in enumerate((1.0e-3, 1.5e-3, 1.1e-3))]
    rows.append(run_row("b", kwh_per_1000=2e-3))  # one repetition: no error bar
    db = make_store(tmp_path / "w.db", rows)
    scores = {s.model: s for s in calculate_scores("classification", "CPU", db=db)}
    bars = _energy_bars(db)
    assert set(bars) == {"a", "b"}
    assert bars["b"].find("g") is None  # nothing drawn for one repetition

    a = scores["a"]
    (whisker,) = [g for g in bars["a"].iter("g") if g.get("class") == "error-bar"]
    assert float(whisker.get("data-low", "nan")) == a.kwh_per_1000_queries_min == 1.0e-3
    assert float(whisker.get("data-high", "nan")) == a.kwh_per_1000_queries_max == 1.5e-3
    (line,) = [e for e in whisker.iter("line") if e.get("class") == "range"]
    # the chart's own scale (linear here, from zero): the bar spans 0 .. the mean
    rect = bars["a"].find("rect")
    assert rect is not None
    x0, width = float(rect.get("x", "nan")), float(rect.get("width", "nan"))
    per_kwh = width / a.kwh_per_1000_queries
    assert float(line.get("x1", "nan")) == pytest.approx(x0 + per_kwh * 1.0e-3, abs=0.15)
    assert float(line.get("x2", "nan")) == pytest.approx(x0 + per_kwh * 1.5e-3, abs=0.15)
    assert float(line.get("x1", "nan")) < x0 + width < float(line.get("x2", "nan"))
    assert "3 repetitions 1 – 1.5 Wh" in (bars["a"].findtext("title") or "")
    assert "error bars span each model" in db.with_suffix(".html").read_text()

    # a sweep of single repetitions draws none, and says nothing of them
    single = make_store(tmp_path / "single.db", [run_row("a", kwh_per_1000=1e-3),
                                                 run_row("b", kwh_per_1000=2e-3)])
    bars = _energy_bars(single)
    assert set(bars) == {"a", "b"}
    assert all(g.find("g") is None and g.find("line") is None for g in bars.values())
    text = single.with_suffix(".html").read_text()
    assert 'class="error-bar"' not in text and "error bars" not in text


def test_bar_chart_draws_error_bars_on_its_own_scale() -> None:
    bars = [Bar("a", 2.0, low=1.0, high=4.0), Bar("b", 3.0, low=3.0, high=3.0), Bar("c", 1.0)]
    root = ET.fromstring(bar_chart(bars, axis_label="x", fmt=str))
    groups = [g for g in root.iter("g") if g.get("class") == "bar"]
    whiskers = [[w for w in g.iter("g") if w.get("class") == "error-bar"] for g in groups]
    assert [len(w) for w in whiskers] == [1, 0, 0]  # low == high: nothing to draw
    rect = groups[0].find("rect")
    assert rect is not None
    x0, width = float(rect.get("x", "nan")), float(rect.get("width", "nan"))
    (line,) = [e for e in whiskers[0][0].iter("line") if e.get("class") == "range"]
    assert float(line.get("x1", "nan")) == pytest.approx(x0 + width / 2, abs=0.15)
    assert float(line.get("x2", "nan")) == pytest.approx(x0 + width * 2, abs=0.15)


def test_every_string_from_the_store_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    rows = [run_row(evil, kwh_per_1000=1e-6, dataset="a&b"),
            run_row(evil, "int8", parent="fp32", kwh_per_1000=5e-7, dataset="a&b"),
            run_row("other", dataset="a&b", status="failed", error="<b>bold</b> & more")]
    db = make_store(tmp_path / "w.db", rows, project="<i>p</i>",
                    samples={rows[1]["cell_key"]: [(0.0, evil, 5.0), (1.0, evil, 6.0)]})
    text = write_report(db, out=tmp_path / "r.html").read_text()
    assert "<script" not in text.lower()
    assert "<b>bold" not in text and "<i>p</i>" not in text and "a&b" not in text
    assert escape(evil) in text and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in text
    assert "a&amp;b" in text
    parsed = Page(text)
    assert {f["chart"] for f in parsed.figures} == CHARTS  # the name is in every chart


def test_the_timeline_is_the_inference_run_with_the_most_samples(tmp_path: Path) -> None:
    rows = [run_row("early", kwh_per_1000=1e-6), run_row("long", kwh_per_1000=2e-6),
            run_row("short", kwh_per_1000=3e-6),
            run_row("last-without-samples", kwh_per_1000=4e-6)]
    samples = {
        rows[0]["cell_key"]: [(0.1, "cpu", 10.0), (0.2, "cpu", 11.0)],
        rows[1]["cell_key"]: [(t / 10, c, w + t) for t in range(1, 6)
                              for c, w in (("cpu", 30.0), ("gpu:0", 120.0))],
        rows[2]["cell_key"]: [(0.1, "cpu", 12.0), (0.2, "cpu", 13.0)],
    }
    db = make_store(tmp_path / "w.db", rows, samples=samples)
    text = write_report(db, out=tmp_path / "r.html").read_text()
    start = text.index('data-chart="timeline"')
    figure = text[start:text.index("</figure>", start)]
    assert figure.count("<polyline") == 2
    assert ">cpu<" in figure and ">gpu:0<" in figure
    assert "long on digits" in figure and "10 points" in figure
    assert "early on" not in figure and "short on" not in figure


def test_a_sweep_without_samples_says_so(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", [run_row("a")])
    text = write_report(db, out=tmp_path / "r.html").read_text()
    assert 'data-empty="timeline"' in text and "no power samples recorded" in text
    assert 'data-chart="timeline"' not in text
    assert "no optimized variants in this sweep" in text


def test_the_default_sweep_is_the_latest(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", [run_row("model-one")], sweep_id="s1", project="one")
    make_store(db, [run_row("model-two")], sweep_id="s2", project="two")
    latest = write_report(db, out=tmp_path / "latest.html").read_text()
    assert ">two</span>" in latest and "model-two" in latest and "model-one" not in latest
    older = write_report(db, sweep_id="s1", out=tmp_path / "s1.html").read_text()
    assert ">one</span>" in older and "model-one" in older and "model-two" not in older


def test_unknown_sweep_missing_or_empty_store_are_config_errors(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", [run_row("a")], sweep_id="s1")
    with pytest.raises(ConfigError, match=r"no sweep 'nope'.*the sweeps there: s1"):
        write_report(db, sweep_id="nope", out=tmp_path / "r.html")
    with pytest.raises(ConfigError, match="no results store"):
        write_report(tmp_path / "missing.db", out=tmp_path / "r.html")
    Store(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match="holds no sweeps"):
        write_report(tmp_path / "empty.db", out=tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_bar_chart_puts_bigger_values_further_right() -> None:
    svg = bar_chart([Bar("a", 1.0), Bar("b", 3.0)], axis_label="x", fmt=str)
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"',
                                            svg)]
    assert len(widths) == 2 and widths[1] == pytest.approx(3 * widths[0], rel=0.02)
    ET.fromstring(svg)  # well-formed


def test_importing_the_report_layer_stays_light() -> None:
    code = (
        "import sys, wattprint.report as r; light = sorted(m for m in sys.modules if m in "
        "('sqlite3', 'wattprint.store', 'wattprint.score')); "
        "import wattprint.report.html, wattprint.report.label; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', "
        "'matplotlib', 'PIL', 'numpy', 'sklearn') or m == 'wattprint.cli' or "
        "m.startswith('wattprint.sweep.')); print(light, bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[] []", result.stdout


# --------------------------------------------------------------------------------------------
# Labels.


def _visible_text(svg: Path) -> str:
    root = ET.parse(svg).getroot()
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def test_svg_label_names_the_model_its_stars_energy_and_provenance(
        sweep: tuple[Path, str], tmp_path: Path) -> None:
    db, sweep_id = sweep
    score = next(s for s in calculate_scores("classification", "CPU", db=db, sweep_id=sweep_id)
                 if s.model == "cnn:int8-dynamic")
    out = write_label("cnn:int8-dynamic", db=db, sweep_id=sweep_id, out=tmp_path / "l.svg")
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    assert (root.get("width"), root.get("height")) == (str(LABEL_WIDTH), str(LABEL_HEIGHT))
    title = root.findtext(f"{SVG}title") or ""
    assert star_glyphs(score.stars) in title
    visible = _visible_text(out)
    assert "cnn:int8-dynamic" in visible
    assert f"{score.stars} of 5 stars" in visible
    assert energy_text(score.kwh_per_1000_queries) in visible
    assert "FAKE SENSOR" in visible
    assert "classification · CPU · digits" in visible
    # the band of its stars is marked: its letter drawn twice (on the scale and the marker)
    letter = "EDCBA"[score.stars - 1]
    assert visible.split("\n").count(letter) == 2


@pytest.mark.parametrize(("provenance", "words"), [("measured", "MEASURED"),
                                                   ("estimate", "ESTIMATED"),
                                                   ("mixed", "PARTLY ESTIMATED")])
def test_the_label_says_where_the_energy_came_from(tmp_path: Path, provenance: str,
                                                   words: str) -> None:
    db = make_store(tmp_path / "w.db", [run_row("m", provenance=provenance),
                                        run_row("n", kwh_per_1000=5e-3, accuracy=None)])
    visible = _visible_text(write_label("m", db=db, out=tmp_path / "m.svg"))
    assert f"Energy: {words}" in visible
    assert "1 Wh" in visible and "90 %" in visible and "5 of 5 stars" in visible
    assert "not measured" in _visible_text(write_label("n", db=db, out=tmp_path / "n.svg"))


def test_png_label_is_drawn_at_its_size(sweep: tuple[Path, str], tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    db, _ = sweep
    out = write_label("logreg", task="classification", hardware="CPU", db=db,
                      out=tmp_path / "logreg.png")
    with image_module.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (LABEL_WIDTH * PNG_SCALE, LABEL_HEIGHT * PNG_SCALE)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50
        assert rgb.getpixel((PNG_SCALE * 390, PNG_SCALE * 10)) == (0x1A, 0x7F, 0x4B)  # header


def test_png_label_without_pillow_names_the_extra(sweep: tuple[Path, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(MissingExtra, match="images") as info:
        write_label("logreg", db=sweep[0], out=tmp_path / "l.png")
    assert info.value.extra == "images"
    assert not (tmp_path / "l.png").exists()


def test_label_errors_say_what_there_is(sweep: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = sweep
    with pytest.raises(ConfigError, match=r"no rated model 'nope'.*cnn, cnn:int8-dynamic, "
                                          r"forest, logreg"):
        write_label("nope", db=db, out=tmp_path / "l.svg")
    with pytest.raises(ConfigError, match=r"\.svg or \.png, not 'l\.pdf'"):
        write_label("logreg", db=db, out=tmp_path / "l.pdf")
    with pytest.raises(ConfigError, match="no sweep 'nope'"):
        write_label("logreg", db=db, sweep_id="nope", out=tmp_path / "l.svg")
    with pytest.raises(ConfigError, match="no results store"):
        write_label("logreg", db=tmp_path / "missing.db", out=tmp_path / "l.svg")


def test_a_model_in_several_groups_needs_task_and_hardware(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", [run_row("m", hardware="CPU", kwh_per_1000=2e-3),
                                        run_row("m", hardware="A100", kwh_per_1000=1e-3),
                                        run_row("n", hardware="A100", kwh_per_1000=4e-3)])
    with pytest.raises(ConfigError, match="several task/hardware groups: "
                                          "classification/A100, classification/CPU"):
        write_label("m", db=db, out=tmp_path / "m.svg")
    visible = _visible_text(write_label("m", hardware="a100", db=db, out=tmp_path / "m.svg"))
    assert "classification · A100 · digits" in visible and "1 Wh" in visible
    assert "among 2 models" in visible
    with pytest.raises(ConfigError, match="has no runs of task 'any' on hardware 'TPU'"):
        write_label("m", hardware="TPU", db=db, out=tmp_path / "m.svg")


# --------------------------------------------------------------------------------------------
# A real browser.


class Chromium:
    """Headless chromium driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages ended by a NUL byte, commands on the child's
    fd 3, replies and events on its fd 4). Only the standard library is needed."""

    def __init__(self, binary: str, profile: Path, *, timeout_s: float = 60.0) -> None:
        import fcntl

        self.timeout_s = timeout_s
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()

        def onto_fds_3_and_4() -> None:  # in the child, before exec
            a = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
            b = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=onto_fds_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(commands_r)
        os.close(replies_w)
        self._out, self._in = commands_w, replies_r
        self._buffer = bytearray()
        self._last_id = 0
        self.events: list[dict[str, Any]] = []
        try:
            targets = self.call("Target.getTargets")["targetInfos"]
            target = next(t["targetId"] for t in targets if t["type"] == "page")
            self.session = self.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", page=True)
        except BaseException:
            self.close()
            raise

    def _message(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"chromium sent nothing for {self.timeout_s} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk
        end = self._buffer.index(b"\0")
        raw = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             page: bool = False) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method,
                                   "params": params or {}}
        if page:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data):]
        while True:
            reply = self._message()
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._message()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def open(self, path: Path, *, width: int = 1280, height: int = 900) -> None:
        """Load ``path`` in a ``width`` x ``height`` viewport; forget earlier events."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  page=True)
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, page=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, page=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and warnings, and error log entries (failed
        loads among them) since the page was opened."""
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out.append(f"uncaught: {details.get('exception', {}).get('description')}"
                           f" {details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in (
                    "error", "assert", "warning"):
                out.append(f"console.{params['type']}: "
                           + " ".join(str(a.get("value", a.get("description")))
                                      for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        """The URL of every request the page made since it was opened."""
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, out: Path, *, height: int | None = None) -> None:
        """A PNG of the page from its top: ``height`` pixels, or all of it."""
        width = self.evaluate("document.documentElement.clientWidth")
        full = self.evaluate("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": width, "height": min(full, height or full),
                "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                    "captureBeyondViewport": True}, page=True)
        out.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.call("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        finally:
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            os.close(self._out)
            os.close(self._in)


CHART_SIZES = """
Array.from(document.querySelectorAll('figure.chart')).map(function (figure) {
  var svg = figure.querySelector('svg');
  var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  var drawn = svg ? svg.getBBox() : {width: 0, height: 0};
  return {chart: figure.dataset.chart, width: box.width, height: box.height,
          drawnWidth: drawn.width, drawnHeight: drawn.height};
})
"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = chromium_binary()
    if binary is None or sys.platform == "win32":
        reason = "no chromium on this machine (apt-get install chromium)"
        if os.environ.get("WATTPRINT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WATTPRINT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


def test_the_report_renders_in_a_real_browser(browser: Chromium, page: tuple[Path, str],
                                              tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    path, text = page
    browser.open(path)
    assert browser.problems() == []
    assert browser.requests() == [path.resolve().as_uri()]
    assert browser.evaluate("document.title").startswith("wattprint report: report-test")
    charts = browser.evaluate(CHART_SIZES)
    assert sorted(c["chart"] for c in charts) == sorted(f["chart"] for f in Page(text).figures)
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 50, chart
        assert chart["drawnWidth"] > 0 and chart["drawnHeight"] > 0, chart
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    with image_module.open(shot) as image:
        assert image.size[0] == 1280 and image.size[1] > 2000
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 24) or []) > 100


def test_the_browser_check_sees_errors_and_empty_charts(browser: Chromium,
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                   '<figure class="chart" data-chart="hidden"><svg width="0" height="0">'
                   '</svg></figure><img src="missing.png">'
                   '<script>console.error("said"); throw new Error("boom");</script>'
                   "</body></html>", encoding="utf-8")
    browser.open(bad)
    problems = "\n".join(browser.problems())
    assert "boom" in problems and "said" in problems and "missing.png" in problems
    assert any(url.endswith("missing.png") for url in browser.requests())
    [chart] = browser.evaluate(CHART_SIZES)
    assert chart["width"] == 0 and chart["drawnWidth"] == 0
