"""The spread of each model's repetitions: min - max, the Student t 95 % interval of the mean,
neighbours whose intervals overlap (ranking not significant), and savings within the noise;
in the scores, the table, ``wattprint score --json`` and the HTML report."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_report import make_store, run_row
from test_score import run

from wattprint.report import write_report
from wattprint.score import print_scores, savings, star_ratings

#: t(0.975, 2) in closed form: (2p - 1) * sqrt(2 / (4p(1 - p))); tables print 4.3026527...
T_2 = 0.95 * math.sqrt(2.0 / (4.0 * 0.975 * 0.025))
#: t(0.975, 1) = tan(pi * (p - 1/2)).
T_1 = math.tan(math.pi * 0.475)


def interval(values: list[float], t: float) -> tuple[float, float]:
    """The t interval of the mean, from the textbook formula, not below 0 (an energy)."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return max(0.0, mean - t * s / math.sqrt(n)), mean + t * s / math.sqrt(n)


def test_t_quantiles_are_the_known_ones() -> None:
    from wattprint.score import t_quantile_975

    assert math.isclose(T_2, 4.302652729911275, rel_tol=1e-9)  # as printed in tables
    # closed forms for 1 and 2 degrees of freedom; SciPy's t.ppf(0.975, df) for the rest
    known = {1: T_1, 2: T_2, 3: 3.1824463052837078, 4: 2.7764451051977934,
             9: 2.262157162798205, 29: 2.045229642132703, 100: 1.9839715185235518,
             1000: 1.9623390808264083}
    for df, value in known.items():
        assert t_quantile_975(df) == pytest.approx(value, rel=1e-12), df


def test_min_max_and_interval_of_three_repetitions() -> None:
    records = [run("a", 1.0, repetition=0), run("a", 2.0, repetition=1),
               run("a", 4.0, repetition=2)]
    (a,) = star_ratings(records)
    low, high = interval([1.0, 2.0, 4.0], T_2)
    assert a.repetitions == 3
    assert a.kwh_per_1000_queries == pytest.approx(7.0 / 3.0)
    assert a.kwh_per_1000_queries_min == 1.0
    assert a.kwh_per_1000_queries_max == 4.0
    assert a.kwh_per_1000_queries_ci95_low == pytest.approx(low, rel=1e-12)
    assert a.kwh_per_1000_queries_ci95_high == pytest.approx(high, rel=1e-12)
    # half-width t * s / sqrt(n): s = sqrt(7/3), so 4.3027 * 0.8819 = 3.7947
    assert high - a.kwh_per_1000_queries == pytest.approx(T_2 * math.sqrt(7.0 / 9.0))


def test_two_repetitions_use_one_degree_of_freedom() -> None:
    (a,) = star_ratings([run("a", 1.0, repetition=0), run("a", 3.0, repetition=1)])
    # s = sqrt(2), n = 2: half-width t(0.975, 1) * 1; an energy is never below 0, so the
    # interval, 2 - 12.7 to 2 + 12.7, starts at 0
    assert a.kwh_per_1000_queries_ci95_low == 0.0
    assert a.kwh_per_1000_queries_ci95_high == pytest.approx(2.0 + T_1, rel=1e-12)
    (b,) = star_ratings([run("b", 10.0, repetition=0), run("b", 10.2, repetition=1)])
    assert b.kwh_per_1000_queries_ci95_low == pytest.approx(10.1 - T_1 * 0.1, rel=1e-9)


def test_one_repetition_has_no_interval_and_the_table_says_so() -> None:
    (a,) = star_ratings([run("a", 1.5)])
    assert a.kwh_per_1000_queries_min == a.kwh_per_1000_queries_max == 1.5
    assert a.kwh_per_1000_queries_ci95_low is None
    assert a.kwh_per_1000_queries_ci95_high is None
    assert a.ranking_significant and a.overlapping_neighbours == ()
    data = json.loads(json.dumps(a.to_dict()))
    assert data["kwh_per_1000_queries_ci95_low"] is None and data["repetitions"] == 1
    buffer = io.StringIO()
    print_scores([a], console=Console(file=buffer, width=200))
    assert "n=1: no interval" in buffer.getvalue()


def overlapping() -> list[dict[str, Any]]:
    """a (1, 2, 3): interval [-0.48, 4.48]; b (2.5, one run) inside it; c (10, 10.2): apart."""
    return [run("a", 1.0, repetition=0), run("a", 2.0, repetition=1),
            run("a", 3.0, repetition=2), run("b", 2.5), run("c", 10.0, repetition=0),
            run("c", 10.2, repetition=1)]


def test_neighbours_whose_intervals_overlap_are_not_significant() -> None:
    scores = {s.model: s for s in star_ratings(overlapping())}
    assert scores["a"].overlapping_neighbours == ("b",)
    assert scores["b"].overlapping_neighbours == ("a",)
    assert not scores["a"].ranking_significant and not scores["b"].ranking_significant
    assert scores["c"].overlapping_neighbours == () and scores["c"].ranking_significant
    # the stars are the same as without the spread: three models get 5, 4 and 2
    assert {m: s.stars for m, s in scores.items()} == {"a": 5, "b": 4, "c": 2}
    data = scores["a"].to_dict()
    assert data["ranking_significant"] is False and data["overlapping_neighbours"] == ["b"]


def test_separated_neighbours_and_two_single_runs_are_not_marked() -> None:
    # two runs each: a 1.05 +- 12.7 * 0.05 = [0.41, 1.69] and b [1.41, 2.69] still overlap
    close = star_ratings([run("a", 1.0, repetition=0), run("a", 1.1, repetition=1),
                          run("b", 2.0, repetition=0), run("b", 2.1, repetition=1)])
    assert [s.overlapping_neighbours for s in close] == [("b",), ("a",)]
    # four runs each (1, 1, 1, 1.1): t(0.975, 3) = 3.18, a [0.985, 1.065], b [1.985, 2.065]
    apart = star_ratings([run("a", 1.0, repetition=i) for i in range(3)]
                         + [run("a", 1.1, repetition=3)]
                         + [run("b", 2.0, repetition=i) for i in range(3)]
                         + [run("b", 2.1, repetition=3)])
    assert all(s.ranking_significant for s in apart)
    singles = star_ratings([run("a", 1.0), run("b", 1.0001)])
    assert all(s.ranking_significant for s in singles)  # no interval to compare


def test_print_scores_marks_overlaps_with_a_note() -> None:
    buffer = io.StringIO()
    print_scores(star_ratings(overlapping()), console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    assert "≈" in rows["a"] and "≈" in rows["b"] and "≈" not in rows["c"]
    assert "1 – 3 kWh" in rows["a"] and "n=1: no interval" in rows["b"]
    assert "ranking within overlapping intervals is not significant" in text


# -- savings ---------------------------------------------------------------------------------


def family() -> list[dict[str, Any]]:
    """fp32 (1.9, 2, 2.1), int8 (0.9, 1, 1.1): apart; fp16 (1.7, 1.9, 2.2): overlaps fp32."""
    rows = []
    for variant, parent, figures in (("fp32", None, (1.9, 2.0, 2.1)),
                                     ("int8", "fp32", (0.9, 1.0, 1.1)),
                                     ("fp16", "fp32", (1.7, 1.9, 2.2))):
        rows += [run("m", f, variant=variant, parent=parent, repetition=i)
                 for i, f in enumerate(figures)]
    return rows


def test_savings_compare_intervals() -> None:
    rows = {r.variant: r for r in savings(family())}
    int8, fp16 = rows["int8"], rows["fp16"]
    low, high = interval([0.9, 1.0, 1.1], T_2)
    assert int8.kwh_per_1000_queries_ci95_low == pytest.approx(low, rel=1e-12)
    assert int8.kwh_per_1000_queries_ci95_high == pytest.approx(high, rel=1e-12)
    parent_low, parent_high = interval([1.9, 2.0, 2.1], T_2)
    assert int8.parent_kwh_per_1000_queries_ci95_low == pytest.approx(parent_low, rel=1e-12)
    assert int8.parent_kwh_per_1000_queries_ci95_high == pytest.approx(parent_high,
                                                                      rel=1e-12)
    assert int8.energy_change_significant is True  # [0.75, 1.25] vs [1.75, 2.25]
    assert fp16.energy_change_pct == pytest.approx(-100 * 0.2 / 6)
    assert fp16.energy_change_significant is False  # the saving is within the noise


def test_savings_of_single_runs_or_without_parent_cannot_say() -> None:
    rows = {r.variant: r for r in savings([
        run("m", 2.0), run("m", 1.0, variant="int8", parent="fp32"),
        run("m", 1.0, variant="int4", parent="onnx", repetition=0),
        run("m", 1.1, variant="int4", parent="onnx", repetition=1)])}
    assert rows["int8"].energy_change_significant is None
    assert rows["int8"].kwh_per_1000_queries_ci95_low is None
    assert rows["int4"].energy_change_significant is None


# -- the CLI and the report ------------------------------------------------------------------


def spread_store(db: Path) -> Path:
    """a (1, 2, 3 mWh), b (2.5 mWh, one run), c (10, 10.2 mWh) per 1000 queries."""
    rows = [run_row("a", kwh_per_1000=f * 1e-6, repetition=i)
            for i, f in enumerate((1.0, 2.0, 3.0))]
    rows.append(run_row("b", kwh_per_1000=2.5e-6))
    rows += [run_row("c", kwh_per_1000=f * 1e-6, repetition=i)
             for i, f in enumerate((10.0, 10.2))]
    return make_store(db, rows)


def test_score_json_carries_the_spread(tmp_path: Path) -> None:
    db = spread_store(tmp_path / "w.db")
    proc = subprocess.run([sys.executable, "-m", "wattprint", "score", "--json", "--db",
                           str(db)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    entries = {e["model"]: e for e in json.loads(proc.stdout)}
    a, b, c = entries["a"], entries["b"], entries["c"]
    low, high = interval([1e-6, 2e-6, 3e-6], T_2)
    assert a["repetitions"] == 3
    assert a["kwh_per_1000_queries_min"] == pytest.approx(1e-6)
    assert a["kwh_per_1000_queries_max"] == pytest.approx(3e-6)
    assert a["kwh_per_1000_queries_ci95_low"] == pytest.approx(low, rel=1e-9)
    assert a["kwh_per_1000_queries_ci95_high"] == pytest.approx(high, rel=1e-9)
    assert a["ranking_significant"] is False and a["overlapping_neighbours"] == ["b"]
    assert b["kwh_per_1000_queries_ci95_low"] is None and b["repetitions"] == 1
    assert c["ranking_significant"] is True


def test_the_report_shows_the_spread_and_marks_overlaps(tmp_path: Path) -> None:
    db = spread_store(tmp_path / "w.db")
    text = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    section = text[text.index('id="ratings"'):text.index('id="energy"')]
    rows = {re.search(r"<td>([abc])</td>", row).group(1): row  # type: ignore[union-attr]
            for row in re.findall(r"<tr><td>.*?</tr>", section)}
    # a: 2 mWh +- 4.3027 * 1 mWh / sqrt(3) = [-484 µWh, 4.48 mWh], which starts at 0: an
    # energy is never negative
    assert "<td class=\"n\">1 – 3 mWh</td>" in rows["a"]
    assert "<td class=\"n\">0 µWh – 4.48 mWh</td>" in rows["a"]
    assert "n=1: no interval" in rows["b"]
    assert 'class="not-significant"' in rows["a"] and 'class="not-significant"' in rows["b"]
    assert 'class="not-significant"' not in rows["c"]
    assert "ranking within overlapping intervals is not significant" in section


def test_the_report_says_which_savings_are_not_significant(tmp_path: Path) -> None:
    rows = []
    for variant, parent, figures in (("fp32", None, (1.9, 2.0, 2.1)),
                                     ("int8", "fp32", (0.9, 1.0, 1.1)),
                                     ("fp16", "fp32", (1.7, 1.9, 2.2))):
        rows += [run_row("m", variant, parent=parent, kwh_per_1000=f * 1e-6, repetition=i)
                 for i, f in enumerate(figures)]
    text = write_report(make_store(tmp_path / "w.db", rows),
                        out=tmp_path / "r.html").read_text(encoding="utf-8")
    section = text[text.index('id="savings"'):text.index('id="timeline"')]
    cells = {row[0]: row for row in (re.findall(r"<td[^>]*>(.*?)</td>", r)
                                     for r in re.findall(r"<tr><td>.*?</tr>", section))}
    assert cells["m:int8"][3:5] == ["-50.0 %", "significant"]
    assert cells["m:fp16"][3:5] == ["-3.3 %", "not significant"]
    assert "intervals (variant and parent) overlap is not significant" in section
