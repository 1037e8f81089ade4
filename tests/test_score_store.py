"""Star ratings read from the store are summed in SQL (Store.inference_totals), never
decoding the runs; they equal the ratings of the same runs as records."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wattprint import RunRecord, Store, calculate_scores
from wattprint.errors import ConfigError
from wattprint.score import Score, Unrated, _why_not, stored_groups, why_not_rated


def record(i: int, model: str, **fields: Any) -> RunRecord:
    made: dict[str, Any] = {
        "sweep_id": "s1", "cell_key": f"c{i}", "model_name": model, "variant": "fp32",
        "dataset": "digits", "repetition": i, "phase": "inference", "task": "classification",
        "hardware": "CPU", "status": "ok", "energy_j": 36.0 * (i + 1), "num_samples": 100,
        "co2_g": 0.01 * (i + 1), "provenance": "estimate", "metrics": {"accuracy": 0.9},
        "num_parameters": 1000,
    }
    made.update(fields)
    return RunRecord(**made)


def write(path: Path, records: list[RunRecord]) -> list[RunRecord]:
    """Store ``records``; return them as the store reads them back (a NaN it keeps as NULL)."""
    with Store(path) as store:
        for sweep in sorted({r.sweep_id for r in records if r.sweep_id}):
            store.begin_sweep(sweep, project="p", config={})
        for r in records:
            store.write_run(r)
        return store.runs()


def same(a: list[Score], b: list[Score]) -> None:
    assert [(s.model, s.stars, s.repetitions, s.provenance) for s in a] == \
        [(s.model, s.stars, s.repetitions, s.provenance) for s in b]
    for x, y in zip(a, b, strict=True):
        for field in ("kwh_per_1000_queries", "kwh_per_1000_queries_min",
                      "kwh_per_1000_queries_max", "kwh_per_1000_queries_ci95_low",
                      "kwh_per_1000_queries_ci95_high", "co2_g_per_1000_queries", "accuracy",
                      "ess"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None), field
            if u is not None:
                assert u == pytest.approx(v, rel=1e-9, abs=1e-300), field
        assert (x.quality is None) == (y.quality is None)
        if x.quality is not None and y.quality is not None:
            assert x.quality.metric == y.quality.metric
            assert x.quality.value == pytest.approx(y.quality.value, rel=1e-12)
        assert (x.num_parameters, x.size_bytes) == (y.num_parameters, y.size_bytes)


def same_unrated(a: list[Unrated], b: list[Unrated]) -> None:
    assert [(u.model, u.runs, u.reason, u.cell_keys) for u in a] == \
        [(u.model, u.runs, u.reason, u.cell_keys) for u in b]


def test_store_and_records_rate_alike_with_runs_left_out(tmp_path: Path) -> None:
    runs = [
        record(0, "a"), record(1, "a"), record(2, "a", metrics={"accuracy": 0.8}),
        record(3, "b", energy_j=10.0, metrics={"wer": 0.2}),
        record(4, "b", energy_j=12.0, metrics={"wer": 0.3, "note": "NaN here is text"}),
        record(5, "b", energy_j=11.0, partial=True, errors=("rapl: gone",)),
        record(6, "c", metrics={"accuracy": float("nan")}),
        record(7, "c", energy_j=None, energy_kwh=None),
        record(8, "d", task="Classification", hardware="cpu", energy_j=5.0, parent="a",
               variant="int8", effective_parameters=500, size_bytes=99),
        record(9, "d", energy_j=6.0, parent="a", variant="int8"),
        record(10, "e", kwh_per_1000_queries=0.5, metrics={"accuracy": True, "r2": 0.7}),
        record(11, "f", energy_j=float("inf")),
        record(12, "g", status="failed", energy_j=None),
        record(13, "h", phase="training"),
        record(14, "i", sweep_id="s2", energy_j=1.0),
    ]
    db = tmp_path / "w.db"
    runs = write(db, runs)
    for sweep in (None, "s1", "s2"):
        from_store = calculate_scores("classification", "CPU", db=db, sweep_id=sweep)
        from_records = calculate_scores("classification", "CPU", records=runs, sweep_id=sweep)
        same(list(from_store), list(from_records))
        same_unrated(list(from_store.unrated), list(from_records.unrated))
    scores = calculate_scores("classification", "CPU", db=db)
    by_model = {s.model: s for s in scores}
    assert by_model["b"].repetitions == 2  # the text "NaN" in a metric leaves the run rated
    assert by_model["b"].quality is not None and by_model["b"].quality.metric == "wer"
    assert by_model["d:int8"].repetitions == 2  # "Classification"/"cpu" is the same group
    assert by_model["e"].accuracy is None  # a boolean is no accuracy
    assert {u.model for u in scores.unrated} == {"b", "c", "f"}
    assert stored_groups(db) == [("classification", "CPU")]


def test_an_unnamed_inference_run_in_the_store_is_the_same_error(tmp_path: Path) -> None:
    runs = [record(0, "a"), record(1, "b", dataset=None)]
    write(tmp_path / "w.db", runs)
    with pytest.raises(ConfigError) as from_records:
        calculate_scores("classification", "CPU", records=runs)
    with pytest.raises(ConfigError) as from_store:
        calculate_scores("classification", "CPU", db=tmp_path / "w.db")
    assert str(from_store.value) == str(from_records.value)
    assert "without dataset" in str(from_store.value)


def _decoded_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row ids the store decodes into records from now on, as it decodes them."""
    from wattprint import store as store_module

    decoded: list[int] = []
    real = store_module._decode_run

    def counting(row: Any) -> RunRecord:
        decoded.append(row[0])
        return real(row)

    monkeypatch.setattr(store_module, "_decode_run", counting)
    return decoded


def test_the_store_is_not_decoded_run_by_run(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # No run is read as a record: the one the SQL sums leave out (partial) is judged from
    # the few fields that say so.
    runs = [record(i, f"m{i % 3}") for i in range(30)]
    runs.append(record(30, "m0", partial=True, errors=("x",)))
    write(tmp_path / "w.db", runs)
    decoded = _decoded_rows(monkeypatch)
    scores = calculate_scores("classification", "CPU", db=tmp_path / "w.db")
    assert len(scores) == 3 and len(scores.unrated) == 1
    assert decoded == []


finite = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False)
odd = st.sampled_from([float("nan"), float("inf"), None])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["fp32", "int8"]),
                          st.one_of(finite, odd), st.integers(0, 3), st.booleans(),
                          st.one_of(st.none(), finite), st.sampled_from(["CPU", "cpu"])),
                min_size=1, max_size=25))
def test_store_and_records_agree_on_any_runs(tmp_path_factory: pytest.TempPathFactory,
                                             rows: list[tuple[Any, ...]]) -> None:
    runs = []
    for i, (model, variant, energy, samples, partial, acc, hardware) in enumerate(rows):
        runs.append(record(i, model, variant=variant, energy_j=energy, num_samples=samples,
                           partial=partial, errors=("x",) if partial else None,
                           hardware=hardware, parent=None if variant == "fp32" else model,
                           metrics=None if acc is None else {"accuracy": acc / 1e3}))
    db = tmp_path_factory.mktemp("s") / "w.db"
    runs = write(db, runs)
    try:
        expected = calculate_scores("classification", "CPU", records=runs)
    except ConfigError as err:
        with pytest.raises(ConfigError) as got:
            calculate_scores("classification", "CPU", db=db)
        assert str(got.value).split(" in ")[0] == str(err).split(" in ")[0]
        return
    got_scores = calculate_scores("classification", "CPU", db=db)
    same(list(got_scores), list(expected))
    same_unrated(list(got_scores.unrated), list(expected.unrated))
    assert all(math.isfinite(s.kwh_per_1000_queries) for s in got_scores)


def test_a_replaced_run_is_summed_again_from_the_runs(tmp_path: Path) -> None:
    # A retried cell replaces its run: the kept sums of that model are stale, and are summed
    # again from what is stored now; the other models keep theirs.
    db = tmp_path / "w.db"
    write(db, [record(0, "a", energy_j=100.0), record(1, "a", energy_j=200.0),
               record(2, "b", energy_j=50.0)])
    with Store(db) as store:
        store.write_run(record(1, "a", energy_j=10.0, metrics={"accuracy": 0.5}))
        store.write_run(record(3, "a", energy_j=20.0, partial=True, errors=("x",)))
        stale = store._transaction(lambda c: c.execute(
            "SELECT model_name, stale FROM run_totals ORDER BY model_name").fetchall(),
            write=False)
        runs = store.runs()
    assert [tuple(r) for r in stale] == [("a", 1), ("b", 0)]
    from_store = calculate_scores("classification", "CPU", db=db)
    same(list(from_store), list(calculate_scores("classification", "CPU", records=runs)))
    a = {s.model: s for s in from_store}["a"]
    assert a.repetitions == 2 and a.kwh_per_1000_queries_max == pytest.approx(100.0 / 3.6e6 * 10)
    assert a.accuracy == pytest.approx(0.7)
    assert [u.cell_keys for u in from_store.unrated] == [("c3",)]


def test_an_older_store_gets_the_sums_of_the_runs_it_holds(tmp_path: Path) -> None:
    # A store of schema 5 (before the kept sums) is upgraded when opened: the sums are made
    # from its runs, and later runs are added to them.
    import sqlite3

    db = tmp_path / "w.db"
    write(db, [record(i, "ab"[i % 2], energy_j=10.0 + i) for i in range(6)])
    conn = sqlite3.connect(db)
    with conn:
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER run_totals_{trigger}")
        conn.execute("DROP TABLE run_totals")
        conn.execute("DROP INDEX runs_left_out")
        conn.execute("DROP INDEX runs_by_sweep")
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    with Store(db) as store:
        store.write_run(record(6, "c", energy_j=1.0))
        runs = store.runs()
    from_store = calculate_scores("classification", "CPU", db=db)
    assert [s.repetitions for s in from_store] == [1, 3, 3]
    same(list(from_store), list(calculate_scores("classification", "CPU", records=runs)))


def test_runs_left_out_of_the_sums_are_judged_without_being_made_into_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # thousands of partial runs are listed as not rated from a few fields each; a run rated
    # after all (a metric whose text says NaN) is read in full, for its figures
    runs = [record(i, "a", num_parameters=1000 + i) for i in range(3)]
    runs += [record(3 + i, "a", partial=True, errors=(f"rapl: gone {i % 2}",)) for i in range(4)]
    runs.append(record(7, "a", metrics={"accuracy": 0.7, "note": "NaN here is text"}))
    runs = write(tmp_path / "w.db", runs)
    decoded = _decoded_rows(monkeypatch)
    scores = calculate_scores("classification", "CPU", db=tmp_path / "w.db")
    (a,) = scores
    assert a.repetitions == 4 and a.accuracy == pytest.approx((0.9 * 3 + 0.7) / 4)
    (left,) = scores.unrated
    assert (left.runs, left.reason) == (4, "partial, rapl: gone 0; partial, rapl: gone 1")
    assert left.cell_keys == tuple(r.cell_key for r in runs[3:7])
    assert decoded == [runs[7].id]  # the one run rated after all


def test_judged_runs_are_the_fields_of_the_stored_runs(tmp_path: Path) -> None:
    runs = write(tmp_path / "w.db", [
        record(0, "a", partial=True, errors=("gpu:0: not readable",),
               metrics={"accuracy": float("nan")}),
        record(1, "b", energy_j=None, energy_kwh=float("inf"), parent="a", variant="int8"),
        record(2, "c", partial=True, errors=("gpu:0: not readable",),
               metrics={"accuracy": float("nan")})])
    with Store(tmp_path / "w.db", read_only=True) as store:
        judged = store.judged_runs(reversed(store.inference_totals()))
    assert [j.ids for j in judged] == [(r.id,) for r in runs]  # all three, in id order
    for j, r in zip(judged, runs, strict=True):
        assert j.cell_keys == (r.cell_key,)
        for name in j._fields[2:]:
            want, got = getattr(r, name), getattr(j, name)
            if name == "partial":
                assert got is bool(want)
            elif name == "metrics" and want is not None:
                assert list(got) == list(want) and all(
                    (math.isnan(x) and math.isnan(y)) or x == y
                    for x, y in zip(got.values(), want.values(), strict=True))
            else:
                assert got == want, name
    assert judged[0].metrics is judged[2].metrics  # one text, decoded once


def test_runs_that_are_judged_alike_are_judged_once(tmp_path: Path) -> None:
    # the runs of a model that the sums leave out are grouped by what judges them: partial,
    # errors, metrics, and whether each figure is a finite number, an infinity or missing
    # (not by the figures themselves); each group names its runs in id order
    inf, nan = float("inf"), float("nan")
    kinds = [
        {"partial": True, "errors": ("rapl: gone",)},
        {"partial": True, "errors": ("rapl: gone",), "energy_j": 7.0},
        {"partial": True, "errors": ("nvml: lost",)},
        {"energy_kwh": inf},
        {"energy_kwh": -inf, "energy_j": 9.0},
        {"co2_g": inf},
        {"metrics": {"accuracy": nan}},
        {"metrics": {"accuracy": inf}},
        {"energy_j": None, "num_samples": 0},  # no energy figure
        {"energy_j": None, "num_samples": 100},
    ]
    runs = [record(i, "a", **kinds[i % len(kinds)]) for i in range(40)]
    runs = write(tmp_path / "w.db", runs)
    with Store(tmp_path / "w.db", read_only=True) as store:
        judged = store.judged_runs(store.inference_totals())
    expected: dict[str, list[int]] = {}
    for r in runs:
        why = why_not_rated(r)
        if why is not None:
            expected.setdefault(why, []).append(r.id)
    got: dict[str, list[int]] = {}
    for j in judged:
        why = _why_not(j.partial, j.errors, j.energy_j, j.energy_kwh, j.kwh_per_1000_queries,
                       j.co2_g, j.metrics, j.num_samples)
        assert why is not None and list(j.ids) == sorted(j.ids)
        assert j.cell_keys == tuple(f"c{i - 1}" for i in j.ids)
        got.setdefault(why, []).extend(j.ids)
    assert {k: sorted(v) for k, v in got.items()} == expected
    # kinds 0 and 1 (finite energies that differ) are judged alike, and so are 3 and 4 (an
    # infinity of either sign); each other kind is judged on its own
    assert [[(i - 1) % len(kinds) for i in j.ids[:2]] for j in judged] == [
        [0, 1], [2, 2], [3, 4], [5, 5], [6, 6], [7, 7], [8, 8], [9, 9]]
    (a,) = calculate_scores("classification", "CPU", db=tmp_path / "w.db").unrated
    assert a.runs == 40 and a.cell_keys == tuple(r.cell_key for r in runs if why_not_rated(r))
    assert a.reason == "; ".join(dict.fromkeys(filter(None, map(why_not_rated, runs))))


def test_runs_left_out_are_read_through_their_index_or_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import sqlite3

    import wattprint.store as store_module

    runs = [record(i, "a", partial=i % 3 == 0, errors=("rapl: gone",) if i % 3 == 0 else None,
                   co2_g=float("inf") if i % 3 == 1 else 0.01) for i in range(30)]
    runs = write(tmp_path / "new.db", runs)  # the runs as a store reads them back
    expected = calculate_scores("classification", "CPU", records=runs).unrated
    # a store of schema 6 (run_totals listing the ids of the runs it leaves out, no index),
    # written as that schema's triggers write, gets the index and counts when opened
    db = tmp_path / "w.db"
    conn = sqlite3.connect(db)
    for step in store_module.MIGRATIONS[:6]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 6")
    conn.execute("INSERT INTO sweeps (id, project, config_json, created_at, updated_at, status)"
                 " VALUES ('s1', 'p', '{}', 1.0, 2.0, 'finished')")
    for r in runs:
        conn.execute(store_module._INSERT_RUN, store_module._encode_record(r.replace(id=None)))
    conn.commit()
    assert conn.execute("SELECT unclean FROM run_totals").fetchone()[0].count(",") == 19
    conn.close()
    (left,) = calculate_scores("classification", "CPU", db=db).unrated
    assert left == expected[0] and left.runs == 20
    with Store(db, read_only=True) as store:
        (totals,) = store.inference_totals()
    assert (totals.left_out, totals.runs) == (20, 10)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT unclean FROM run_totals").fetchone()[0] is None
    plan = str(conn.execute(
        f"EXPLAIN QUERY PLAN SELECT min(id) FROM runs INDEXED BY runs_left_out WHERE "
        f"{store_module._LEFT_OUT} GROUP BY {', '.join(store_module._LEFT_OUT_ORDER)}"
    ).fetchall())
    conn.close()
    assert "runs_left_out" in plan and "B-TREE" not in plan
    assert "read without it" not in caplog.text
    # the runs written now are counted as they come
    with Store(db) as store:
        store.write_run(record(30, "a", cell_key="late", partial=True, errors=("rapl: gone",)))
        (totals,) = store.inference_totals()
    assert totals.left_out == 21
    (left,) = calculate_scores("classification", "CPU", db=db).unrated
    assert left.runs == 21 and left.cell_keys[-1] == "late"
    # an index that misses runs (a rule of the query that is not the index's), or none at all:
    # every run is still listed, read without it, and the log says so
    monkeypatch.setattr(store_module, "_LEFT_OUT", store_module._LEFT_OUT + " AND partial")
    assert calculate_scores("classification", "CPU", db=db).unrated == [left]
    assert "it holds 11 of the 21" in caplog.text
    monkeypatch.undo()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DROP INDEX runs_left_out")
    conn.close()
    assert calculate_scores("classification", "CPU", db=db).unrated == [left]
    assert "no such index" in caplog.text
