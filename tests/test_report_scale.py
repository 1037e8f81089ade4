"""The report of a large sweep: read from the store's sums and a few columns, not run by run.

The timeline run is found by one query, the stars come from the store's sums, and a sweep of
more runs than the report lists (``RUNS_LISTED``) shows the runs that failed, are partial or
are not rated, one row per model, and how to export the rest. What is shown stays what the
records say. Time and memory are measured by ``benchmarks/bench_store.py``, not here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest
from test_report import make_store, run_row

from wattprint.errors import ConfigError
from wattprint.record import RunRecord
from wattprint.report import _sections as sections
from wattprint.report import write_report
from wattprint.report.html import render_report
from wattprint.score import rate_stored_sweep, savings, stored_sums
from wattprint.store import Store


def _old_timeline(store: Store, runs: list[RunRecord]) -> int | None:
    """The timeline run as the report found it before: a query per run."""
    best: int | None = None
    best_times: set[float] = set()
    for run in runs:
        if run.phase == "inference" and run.ok and run.id is not None:
            found = store.samples(run.id)
            times = {t for t, _, _ in found}
            if found and len(times) >= len(best_times):
                best, best_times = run.id, times
    return best


def _mixed_rows() -> list[dict[str, Any]]:
    """Three models of two repetitions on CPU, one on GPU; a failed cell, a partial run, a
    run whose accuracy is NaN, and a model whose only run is partial."""
    rows = [run_row(m, kwh_per_1000=k * (1 + rep / 10), repetition=rep, accuracy=a)
            for m, k, a in (("a", 1e-3, 0.9), ("b", 2e-3, 0.8), ("c", 5e-3, 0.95))
            for rep in (0, 1)]
    rows.append(run_row("g", kwh_per_1000=3e-3, hardware="GPU"))
    rows.append(run_row("g", kwh_per_1000=4e-3, hardware="GPU", repetition=1))
    rows.append(run_row("broken", status="failed", error="Traceback: the model file is broken"))
    partial = run_row("a", kwh_per_1000=1e-4, repetition=2)
    partial.update(partial=True, errors=["gpu:0: not readable"])
    nan = run_row("b", kwh_per_1000=2e-3, repetition=2, accuracy=math.nan)
    only_partial = run_row("lonely", kwh_per_1000=1e-3)
    only_partial.update(partial=True, errors=["cpu: counter gone"])
    return [*rows, partial, nan, only_partial]


# --------------------------------------------------------------------------------------------
# The timeline run.


def test_the_timeline_query_picks_the_run_the_old_loop_picked(tmp_path: Path) -> None:
    rows = [run_row(f"m{i}", kwh_per_1000=1e-3 * (i + 1)) for i in range(5)]
    rows.append(run_row("train", phase="training"))
    rows.append(run_row("gone", status="failed", error="boom"))
    three = [(t / 10, "cpu", 10.0 + t) for t in range(3)]
    samples = {
        rows[0]["cell_key"]: three,
        # many samples, but only two distinct times: fewer than three
        rows[1]["cell_key"]: [(t, c, 1.0) for t in (0.1, 0.2) for c in ("cpu", "ram", "gpu")],
        rows[2]["cell_key"]: three,  # ties with m0 and m3: the latest of them wins
        rows[3]["cell_key"]: [(t / 10, "gpu:0", 50.0) for t in range(3)],
        rows[5]["cell_key"]: [(t / 10, "cpu", 1.0) for t in range(30)],  # training: not shown
        rows[6]["cell_key"]: [(t / 10, "cpu", 1.0) for t in range(30)],  # failed: not shown
    }
    db = make_store(tmp_path / "w.db", rows, samples=samples)
    with Store(db) as store:
        store.begin_sweep("other", project="p", config={})  # another sweep's longer timeline
        store.write_run({"sweep_id": "other", **run_row("x")},
                        [(t / 10, "cpu", 1.0) for t in range(50)])
        runs = store.runs(sweep_id="s1")
        found = store.timeline_run_id("s1")
        assert found == _old_timeline(store, runs)
        assert store.runs_by_id([found or 0])[0].model_name == "m3"
        assert store.timeline_run_id("no such sweep") is None


def test_a_sweep_without_samples_has_no_timeline_run(tmp_path: Path) -> None:
    db = make_store(tmp_path / "w.db", [run_row("a"), run_row("b")])
    with Store(db, read_only=True) as store:
        assert store.timeline_run_id("s1") is None
        assert _old_timeline(store, store.runs()) is None


# --------------------------------------------------------------------------------------------
# Ratings, totals and savings from the store: the same as from the records.


def _same_scores(stored: dict[tuple[str, str], Any], from_records: dict[tuple[str, str], Any],
                 ) -> None:
    assert list(stored) == list(from_records)
    for key, group in stored.items():
        other = from_records[key]
        assert [s.model for s in group] == [s.model for s in other]
        assert group.unrated == other.unrated
        for a, b in zip(group, other, strict=True):
            for name, value in dataclasses.asdict(a).items():
                want = dataclasses.asdict(b)[name]
                if isinstance(value, float):
                    assert value == pytest.approx(want, rel=1e-12), name
                elif isinstance(value, dict) and name == "quality":
                    assert value["metric"] == want["metric"]
                    assert value["value"] == pytest.approx(want["value"], rel=1e-12)
                else:
                    assert value == want, name


def test_the_ratings_from_the_store_equal_those_from_the_records(tmp_path: Path) -> None:
    rows = _mixed_rows()
    rows.append(run_row("a", kwh_per_1000=1e-3, hardware="cpu", repetition=7))  # one group
    db = make_store(tmp_path / "w.db", rows)
    with Store(db, read_only=True) as store:
        stored, problems = rate_stored_sweep(store, "s1")
        from_records, record_problems = sections.rate(store.runs(sweep_id="s1"))
    assert problems == record_problems == []
    assert set(stored) == {("classification", "CPU"), ("classification", "GPU")}
    assert [u.model for u in stored[("classification", "CPU")].unrated] == ["a", "b", "lonely"]
    _same_scores(stored, from_records)


def test_a_group_with_an_unnamed_run_is_not_rated_from_the_store_either(tmp_path: Path,
                                                                         ) -> None:
    unnamed = run_row("x", hardware="GPU")
    unnamed["model_name"] = None
    db = make_store(tmp_path / "w.db", [*_mixed_rows(), unnamed])
    with Store(db, read_only=True) as store:
        stored, problems = rate_stored_sweep(store, "s1")
        from_records, record_problems = sections.rate(store.runs(sweep_id="s1"))
    assert problems == record_problems
    assert len(problems) == 1 and "without model_name" in problems[0]
    assert list(stored) == [("classification", "CPU")]
    _same_scores(stored, from_records)


def test_the_overview_from_the_store_is_that_of_the_records(tmp_path: Path) -> None:
    rows = _mixed_rows()
    elsewhere = run_row("d", kwh_per_1000=1e-3)
    elsewhere.update(location="FR", tier="on-premise", intensity_g_per_kwh=50.0)
    rows += [elsewhere, run_row("e", provenance="estimate"), run_row("f", phase="training")]
    db = make_store(tmp_path / "w.db", rows)
    with Store(db, read_only=True) as store:
        overview = store.sweep_overview("s1")
        assert overview == sections.overview_of(store.runs(sweep_id="s1"))
    assert (overview.runs_ok, overview.runs_failed, overview.runs_partial) == (14, 1, 2)
    assert [kind for kind, _ in overview.provenances] == ["measured", "estimate"]
    assert [n for _, n in overview.sites] == [13, 1]


def test_the_savings_of_the_savings_runs_are_those_of_every_run(tmp_path: Path) -> None:
    rows = [run_row("cnn", "fp32", kwh_per_1000=4e-3, repetition=r) for r in (0, 1)]
    rows += [run_row("cnn", "int8", kwh_per_1000=1e-3, parent="fp32", repetition=r,
                     accuracy=0.85) for r in (0, 1)]
    rows.append(run_row("cnn", "int8", kwh_per_1000=5e-6, phase="optimization"))
    rows += [run_row(f"plain{i}", kwh_per_1000=1e-3 * (i + 1)) for i in range(4)]
    db = make_store(tmp_path / "w.db", rows)
    with Store(db, read_only=True) as store:
        some = store.savings_runs("s1")
        every = store.runs(sweep_id="s1")
    assert {r.model_name for r in some} == {"cnn"} and len(some) == 5
    assert savings(some) == savings(every) and len(savings(every)) == 1


def test_the_savings_runs_keep_the_error_of_an_unnamed_run(tmp_path: Path) -> None:
    unnamed = run_row("x", repetition=3)
    unnamed["dataset"] = None
    db = make_store(tmp_path / "w.db", [run_row("cnn", "int8", parent="fp32"), unnamed])
    with Store(db, read_only=True) as store:
        some, every = store.savings_runs("s1"), store.runs(sweep_id="s1")
    with pytest.raises(ConfigError) as from_some:
        savings(some)
    with pytest.raises(ConfigError) as from_every:
        savings(every)
    assert str(from_some.value) == str(from_every.value)


def _without_date(page: str) -> str:
    return re.sub(r"<footer>.*?</footer>", "", page)


def test_a_small_sweep_reads_as_it_did_from_the_records(tmp_path: Path) -> None:
    rows = _mixed_rows()
    db = make_store(tmp_path / "w.db", rows,
                    samples={rows[2]["cell_key"]: [(0.1, "cpu", 3.0), (0.2, "cpu", 4.0)]})
    written = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    with Store(db, read_only=True) as store:
        sweep = store.sweeps()[0]
        runs = store.runs(sweep_id="s1")
        timeline = next(r for r in runs if r.cell_key == rows[2]["cell_key"])
        from_records = render_report(sweep, runs, timeline, store.samples(timeline.id or 0))
    assert _without_date(written) == _without_date(from_records)
    assert "more runs are in the full data" not in written


# --------------------------------------------------------------------------------------------
# A sweep of more runs than the report lists.


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def test_a_sweep_over_the_cap_lists_the_runs_to_see_and_one_row_per_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _mixed_rows()
    db = make_store(tmp_path / "w.db", rows)
    small = write_report(db, out=tmp_path / "small.html").read_text(encoding="utf-8")
    monkeypatch.setattr(sections, "RUNS_LISTED", 5)
    page = write_report(db, out=tmp_path / "large.html").read_text(encoding="utf-8")

    runs = _section(page, "runs")
    listed = ["broken/fp32/digits/CPU/inference/0", "a/fp32/digits/CPU/inference/2",
              "b/fp32/digits/CPU/inference/2", "lonely/fp32/digits/CPU/inference/0"]
    table = runs[runs.index('class="runs"'):runs.index("</table>", runs.index('class="runs"'))]
    assert table.count("<tr>") == 1 + len(listed)  # the header and the runs to see
    assert table.count(">not rated<") == 3 and table.count(">partial<") == 2
    assert table.count("status-failed") == 1
    more = len(rows) - len(listed)
    assert f'data-more="{more}"' in runs
    assert f"{more} more runs are in the full data" in runs
    assert f"<code>wattprint export --sweep s1 --db {db} --format csv</code>" in runs
    models = runs[runs.index('class="models"'):]
    for model in ("a", "b", "c", "g", "broken", "lonely"):
        assert f"<td>{model}</td>" in models

    # every failed run and every model not rated are still there, as in the small page
    assert "Traceback: the model file is broken" in _section(page, "failed")
    ratings = _section(page, "ratings")
    assert ratings == _section(small, "ratings")
    for model in ("a", "b", "lonely"):
        assert f"<td>{model}</td>" in ratings[ratings.index('class="unrated"'):]
    for anchor in ("totals", "site", "energy", "pareto", "savings", "failed"):
        assert _section(page, anchor) == _section(small, anchor), anchor
    summed = _section(page, "provenance")
    assert 'class="components-summed"' in summed and "rapl" in summed
    assert "more runs are in the full data" not in small


def test_the_export_command_names_a_store_that_is_not_the_default() -> None:
    from wattprint.report._sections import Digest

    def digest(db: str) -> Digest:
        return Digest(sweep_id="s 1", overview=None, models=(), components=(),  # type: ignore[arg-type]
                      savings_runs=(), db=db)

    assert digest("wattprint.db").export_command == "wattprint export --sweep 's 1' --format csv"
    assert digest("runs/my store.db").export_command == (
        "wattprint export --sweep 's 1' --db 'runs/my store.db' --format csv")


def test_savings_from_the_stores_sums_equal_those_of_every_run(tmp_path: Path) -> None:
    # A large sweep's report takes its savings from the store's sums and the optimization
    # runs alone: the same savings as from every run, and the same error for an unnamed run.
    import dataclasses

    from wattprint._savings import stored_savings

    rows = [run_row("cnn", "fp32", kwh_per_1000=4e-3 * (1 + r / 10), repetition=r)
            for r in range(3)]
    rows += [run_row("cnn", "int8", kwh_per_1000=1e-3 * (1 + r / 7), parent="fp32",
                     repetition=r, accuracy=0.85) for r in range(3)]
    rows.append(run_row("cnn", "int8", kwh_per_1000=5e-6, phase="optimization"))
    rows += [run_row(f"plain{i}", kwh_per_1000=1e-3 * (i + 1)) for i in range(4)]
    db = make_store(tmp_path / "w.db", rows)
    with Store(db, read_only=True) as store:
        every = store.runs(sweep_id="s1")
    (got,), (want,) = stored_savings(db, sweep_id="s1"), savings(every)
    with Store(db, read_only=True) as store:  # the sums a report reads once for its stars too
        sums = stored_sums(store, "s1")
    assert stored_savings(db, sweep_id="s1", sums=sums) == [got]
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9), field.name
        else:
            assert a == b, field.name
    unnamed = run_row("x", repetition=3)
    unnamed["dataset"] = None
    db2 = make_store(tmp_path / "w2.db", [run_row("cnn", "int8", parent="fp32"), unnamed])
    with Store(db2, read_only=True) as store:
        every = store.runs(sweep_id="s1")
    with pytest.raises(ConfigError) as from_store:
        stored_savings(db2, sweep_id="s1")
    with Store(db2, read_only=True) as store, pytest.raises(ConfigError) as from_sums:
        stored_savings(db2, sweep_id="s1", sums=stored_sums(store, "s1"))
    assert str(from_sums.value) == str(from_store.value)
    with pytest.raises(ConfigError) as from_every:
        savings(every)
    assert str(from_store.value) == str(from_every.value)


def test_a_sweep_with_more_failures_than_the_cap_counts_them_by_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [run_row("ok", kwh_per_1000=1e-3, repetition=r) for r in range(3)]
    rows += [run_row(f"bad{i}", status="failed",
                     error="ModelError: out of memory\nat line 3" if i % 3 else "Timeout")
             for i in range(9)]
    db = make_store(tmp_path / "w.db", rows)
    monkeypatch.setattr(sections, "RUNS_LISTED", 4)
    page = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    failed = _section(page, "failed")
    assert "9 cells failed" in failed
    counts = failed[failed.index('class="failed-errors"'):failed.index("</table>")]
    assert re.search(r">6<.*ModelError: out of memory<", counts, re.S)
    assert re.search(r">3<.*Timeout<", counts, re.S)
    listed = failed[failed.index('class="failed"'):]
    assert listed.count("<tr>") == 1 + 4  # header and the first 4 cells
    runs = _section(page, "runs")
    assert "The first 4 of them." in runs
    table = runs[runs.index('class="runs"'):runs.index("</table>", runs.index('class="runs"'))]
    assert table.count("<tr>") == 1 + 4
    assert 'data-more="8"' in runs  # 12 runs, 4 listed


def _many_bad_rows() -> list[dict[str, Any]]:
    """Good runs, then failures and partial runs interleaved past the cap, then runs whose
    accuracy is NaN (successful, not rated) after all of them; errors that are missing, empty,
    one line and several lines, with counts that tie."""
    rows = [run_row("ok", kwh_per_1000=1e-3, repetition=r) for r in range(4)]
    errors = [None, "", "Timeout", "ModelError: out of memory\nat line 3",
              "ModelError: out of memory\nat line 9"]
    for i in range(15):
        rows.append(run_row(f"bad{i}", status="failed", error=errors[i % len(errors)]))
        partial = run_row("part", kwh_per_1000=1e-3, repetition=i)
        partial.update(partial=True, errors=[f"gpu:{i % 2}: not readable"])
        rows.append(partial)
    rows += [run_row("nan", kwh_per_1000=1e-3, repetition=r, accuracy=math.nan)
             for r in range(3)]
    return rows


def test_failures_are_counted_by_the_store_as_the_report_counts_the_records(
        tmp_path: Path) -> None:
    from collections import Counter

    db = make_store(tmp_path / "w.db", _many_bad_rows())
    with Store(db, read_only=True) as store:
        every = store.runs(sweep_id="s1")
        counts = store.failure_counts("s1")
        first = store.failed_runs("s1", limit=4)
    failures = [r for r in every if not r.ok]
    want = Counter((r.error or "no error recorded").split("\n", 1)[0] for r in failures)
    assert counts == want.most_common()
    # missing and empty alike; two errors with one first line; a tie in order of first run
    assert counts == [("no error recorded", 6), ("ModelError: out of memory", 6), ("Timeout", 3)]
    assert [r.id for r in first] == [r.id for r in failures[:4]]


def test_a_report_reads_only_the_first_bad_runs_and_shows_what_reading_all_showed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the page made from the first RUNS_LISTED failed and partial runs (and the store's
    # counts) is the page made from every one of them
    db = make_store(tmp_path / "w.db", _many_bad_rows())
    monkeypatch.setattr(sections, "RUNS_LISTED", 4)
    page = write_report(db, out=tmp_path / "r.html").read_text(encoding="utf-8")
    with Store(db, read_only=True) as store:
        read = store.notable_runs("s1", limit=4)
        every = store.notable_runs("s1")
        sweep = next(s for s in store.sweeps() if s["id"] == "s1")
        digest = sections.Digest(
            sweep_id="s1", overview=store.sweep_overview("s1"), models=store.model_runs("s1"),
            components=store.component_runs("s1"), savings_runs=(), savings=[], db=str(db))
        ratings = rate_stored_sweep(store, "s1")
    assert len(every) == 15 + 15 + 3 and len(read) == 4 + 3  # the first four, and the NaN runs
    assert [r.id for r in read] == sorted(r.id or 0 for r in [*every[:4], *every[-3:]])
    from_every = render_report(sweep, every, ratings=ratings, digest=digest)
    for anchor in ("runs", "failed"):
        assert _section(page, anchor) == _section(from_every, anchor), anchor
    runs = _section(page, "runs")
    assert "Runs that failed, are partial or are not rated (33)" in runs
    assert f'data-more="{4 + 33 - 4}"' in runs  # 37 runs, 4 listed
    failed = _section(page, "failed")
    assert "15 cells failed" in failed
    assert re.search(r">6<.*ModelError: out of memory<", failed, re.S)
