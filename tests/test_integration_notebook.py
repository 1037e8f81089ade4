"""Notebooks: the HTML of measurements, score tables and sweep summaries, and ``%%wattprint``.

The HTML comes from real measurements (a :class:`~wattprint.FakeSensor`, the estimate
sensors, a fake powercap tree read by the RAPL sensor) and real score and summary functions
over hand-built run records; the magic runs in a real IPython shell.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from powercap import Zone, build_tree, set_energy
from readme_blocks import readme_block

import wattprint
from wattprint import EnergyMeter, FakeSensor, Measurement
from wattprint._html import si
from wattprint._summary import summarize
from wattprint.record import RunRecord
from wattprint.score import star_ratings
from wattprint.study import BenchmarkResult

SCRIPT = "<script>alert('x')</script>"
VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col"}


class _Balance(HTMLParser):
    """Checks that every tag is closed, in order, and records the provenance badges."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[str] = []
        self.badges: list[tuple[str, str]] = []  # (data-provenance, title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if "data-provenance" in values:
            self.badges.append((values["data-provenance"] or "", values.get("title") or ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parsed(html: str) -> _Balance:
    """The page parsed, after checking its tags balance and nothing outside is loaded."""
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert not parser.problems, parser.problems
    assert not parser.stack, f"unclosed: {parser.stack}"
    assert not {"script", "style", "link", "img", "iframe"} & set(parser.tags), parser.tags
    return parser


def kinds(html: str) -> set[str]:
    return {kind for kind, _ in parsed(html).badges}


def measure(meter: EnergyMeter, name: str = "block", seconds: float = 0.02) -> Measurement:
    with meter.window(name) as w:
        time.sleep(seconds)
    meter.close()
    assert w.measurement is not None
    return w.measurement


# -- HTML of a measurement -------------------------------------------------------------------


def test_si_prefixes() -> None:
    assert si(0.0123, "g") == "12.3 mg"
    assert si(4500.0, "J") == "4.5 kJ"
    assert si(999.96, "J") == "1 kJ"
    assert si(2.5e-7, "L") == "250 nL"
    assert si(0.0, "J") == "0 J"
    assert si(None, "J") == "-"


def test_fake_sensor_measurement_shows_energy_co2_and_that_it_is_not_measured() -> None:
    m = measure(EnergyMeter([FakeSensor(power_w=10.0)], country="DE"))
    html = m._repr_html_()
    assert m.energy_j == pytest.approx(10.0 * m.duration_s, rel=1e-6)
    assert si(m.energy_j, "J") in html
    assert f"CO2e <b>{si(m.footprint.co2_g, 'g')}</b>" in html
    assert m.footprint.co2_g > 0 and si(m.footprint.water_l, "L") in html
    assert "DE, " in html and "gCO2e/kWh" in html
    badges = parsed(html).badges
    assert badges and {k for k, _ in badges} == {"fake"}  # never "measured"
    assert all(title.startswith("not measured") for _, title in badges)
    assert "partial" not in html


def test_estimate_sensors_show_an_estimate_badge() -> None:
    m = measure(EnergyMeter(["estimate"], country="FR"))
    html = m._repr_html_()
    assert set(m.components) == {"cpu", "ram"}
    assert kinds(html) == {"estimate"}
    assert ">estimate</span>" in html and "FR, " in html


def test_rapl_counter_shows_measured(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000)])
    meter = EnergyMeter(["rapl"], powercap_root=str(tmp_path), country="DE")
    meter.begin("rapl window")
    set_energy(dirs["intel-rapl:0"], 3_500_000)
    m = meter.end("rapl window")
    meter.close()
    assert m.measured and m.energy_j == pytest.approx(2.5)
    html = m._repr_html_()
    assert kinds(html) == {"measured"}
    assert ">measured</span>" in html and "2.5 J" in html
    assert "estimate" not in html


def test_partial_measurement_shows_its_error_escaped() -> None:
    bad = FakeSensor(power_w=50.0, component="gpu:0", name=SCRIPT, fail_after_s=0.0)
    m = measure(EnergyMeter([FakeSensor(power_w=5.0), bad], country="DE"), name="<b>cell</b>")
    assert m.partial and any(SCRIPT in e for e in m.errors)
    html = m._repr_html_()
    assert "<script" not in html and "<b>cell</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;: simulated failure" in html
    assert "&lt;b&gt;cell&lt;/b&gt;" in html
    assert "partial" in kinds(html)
    assert "gpu:0" not in m.components and "color:#cf222e" in html


# -- HTML of score tables and sweep summaries ------------------------------------------------


def record(model: str, kwh_per_1000: float, *, provenance: str = "measured",
           repetition: int = 0, **more: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "sweep_id": "s1", "cell_key": f"{model}/{repetition}", "model_name": model,
        "variant": "fp32", "dataset": "iris", "repetition": repetition, "phase": "inference",
        "task": "classification", "hardware": "cpu", "status": "ok", "num_samples": 1000,
        "kwh_per_1000_queries": kwh_per_1000, "energy_kwh": kwh_per_1000,
        "energy_j": kwh_per_1000 * 3.6e6, "co2_g": kwh_per_1000 * 400.0,
        "provenance": provenance, "metrics": {"accuracy": 0.9},
    }
    fields.update(more)
    return RunRecord(**fields)


RECORDS = [
    record(SCRIPT, 0.001),
    record("estimated", 0.002, provenance="estimate"),
    record("flaky", 0.0005, provenance="sampled", partial=True,
           errors=("gpu:0: <img src=x onerror=alert(1)>",)),
]


def test_score_table_has_stars_badges_and_unrated_models_escaped() -> None:
    scores = star_ratings(RECORDS)
    assert [s.model for s in scores] == [SCRIPT, "estimated"]
    html = scores._repr_html_()
    assert kinds(html) == {"measured", "estimate"}
    assert "★★★★★" in html and "★★★☆☆" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "not rated" in html and "<img" not in html
    assert "flaky: not rated: partial" in html and "onerror=alert(1)&gt;" in html
    assert ">1 Wh<" in html  # energy per 1000 queries of the best model (0.001 kWh)


def test_empty_score_table() -> None:
    assert "no scores" in star_ratings([])._repr_html_()


def test_sweep_summary_and_benchmark_result_show_failures_and_partial_runs() -> None:
    failed = RunRecord(sweep_id="s1", cell_key="broken/0", model_name="broken", variant="fp32",
                       dataset="iris", phase="inference", status="failed",
                       error=f"ValueError: {SCRIPT}")
    summary = summarize([*RECORDS, failed])
    html = summary._repr_html_()
    assert summary.runs_failed == 1
    assert "1 failed</span>" in html and "runs: 3 ok" in html
    assert "<script" not in html and "failed: ValueError: &lt;script&gt;" in html
    assert "1 partial run: gpu:0: &lt;img" in html
    assert {"measured", "estimate", "sampled", "partial"} <= kinds(html)
    result = BenchmarkResult(sweep_id="<s1>", project="demo", db="wattprint.db", config={},
                             runs=(), exports=("results/<s1>.json",), summary=summary)
    page = result._repr_html_()
    assert "sweep &lt;s1&gt;" in page and "wrote results/&lt;s1&gt;.json" in page
    assert html in page
    parsed(page)


# -- the light import ------------------------------------------------------------------------


def test_import_wattprint_and_html_load_no_ipython() -> None:
    code = (
        "import sys, wattprint\n"
        "assert 'wattprint._html' not in sys.modules\n"
        "m = wattprint.EnergyMeter([wattprint.FakeSensor(power_w=1.0)])\n"
        "with m.window('w') as w: pass\n"
        "assert 'wattprint._html' not in sys.modules\n"
        "assert 'fake' in w.measurement._repr_html_()\n"
        "assert 'IPython' not in sys.modules, 'IPython imported'\n"
        "assert callable(wattprint.load_ipython_extension)\n"
        "assert 'IPython' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- the magic in a real IPython shell -------------------------------------------------------


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    assert ip.run_line_magic("load_ext", "wattprint") is None  # not "no load function"
    yield ip
    ip.run_line_magic("unload_ext", "wattprint")
    assert "wattprint" not in ip.magics_manager.magics["cell"]
    InteractiveShell.clear_instance()


def test_magic_measures_the_cell_in_the_users_namespace(shell: Any) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        out = shell.run_cell_magic("wattprint", "--country DE", "x = sum(range(10000))")
    assert out is None
    assert shell.user_ns["x"] == 49995000
    m = shell.user_ns["_wattprint"]
    assert isinstance(m, Measurement) and m.energy_j > 0
    de = wattprint.footprint(1.0, country="DE")
    assert m.footprint.location == de.location
    assert m.footprint.intensity_g_per_kwh == de.intensity_g_per_kwh
    html = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]
    assert html == [m._repr_html_()]


def test_magic_name_and_last_value(shell: Any) -> None:
    out = shell.run_cell_magic("wattprint", "--name 'my step' --country FR", "y = 2\ny * 21")
    assert out == 42 and shell.user_ns["y"] == 2
    m = shell.user_ns["_wattprint"]
    assert m.name == "my step"
    assert m.footprint.intensity_g_per_kwh == wattprint.footprint(1.0, country="FR")\
        .intensity_g_per_kwh


def test_a_cell_that_raises_is_measured_and_the_error_goes_on(shell: Any) -> None:
    result = shell.run_cell("%%wattprint --name failing\nz = 1\nraise ValueError('boom')\n")
    assert isinstance(result.error_in_exec, ValueError)
    assert shell.user_ns["z"] == 1
    assert shell.user_ns["_wattprint"].name == "failing"


@pytest.mark.parametrize(("line", "message"), [
    ("--bogus 1", "%%wattprint: unrecognized arguments: --bogus 1"),
    ("--country XX", "%%wattprint: unknown country 'XX'"),
    ("--name 'unclosed", "%%wattprint: No closing quotation"),
])
def test_bad_arguments_are_a_usage_message_not_a_traceback(
    shell: Any, capsys: pytest.CaptureFixture[str], line: str, message: str,
) -> None:
    from IPython.core.error import UsageError

    shell.user_ns.pop("q", None)
    result = shell.run_cell(f"%%wattprint {line}\nq = 1\n")
    output = "".join(capsys.readouterr())
    assert f"UsageError: {message}" in output
    assert "Traceback" not in output
    assert isinstance(result.error_in_exec, UsageError)
    assert "q" not in shell.user_ns  # the cell did not run
    with pytest.raises(UsageError, match="%%wattprint: "):
        shell.run_cell_magic("wattprint", line, "q = 1")


def test_readme_example() -> None:
    namespace: dict[str, Any] = {}
    exec(readme_block("notebook"), namespace)
    namespace["meter"].close()
    m = namespace["w"].measurement
    assert len(namespace["squares"]) == 100_000
    assert "DE, " in m._repr_html_() and m.footprint.location == "DE"
