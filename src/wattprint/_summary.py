"""A sweep's stored rows, totalled: one row per model variant and dataset.

A pure function over the results store's rows (``Store.runs()``), used by
:class:`wattprint.Benchmark` for its report and by the HTML report; it sits on the store's layer
so that the report need not import the code that runs sweeps.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import Any

__all__ = ["summarize"]


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return fmean(values) if values else None


def _metric(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r["metrics"][key] for r in rows
              if isinstance(r.get("metrics"), dict) and r["metrics"].get(key) is not None]
    return fmean(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over a sweep's stored rows, and one row per model variant and dataset.

    Totals add every successful row: training, optimization and inference. A model row
    averages its inference repetitions and carries the energy of the training or optimization
    step that made the variant. ``partial_runs`` counts its inference runs whose measurement
    is partial (a sensor failed inside the window: their energy misses a component, and
    they are not rated), ``partial_errors`` says what failed.
    """
    ok = [r for r in runs if r["status"] == "ok"]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    steps: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in runs:
        key = (r["model_name"], r["variant"], r["dataset"])
        if r["status"] != "ok":
            failed[key].append(str(r.get("error")))
        elif r["phase"] == "inference":
            groups[key].append(r)
        else:
            steps[key] = r
    models = []
    for key in sorted(set(groups) | set(failed)):
        rows = groups.get(key, [])
        step = steps.get(key)
        first = rows[0] if rows else {}
        models.append({
            "model": key[0], "variant": key[1], "dataset": key[2],
            "parent": first.get("parent"), "task": first.get("task"),
            "hardware": first.get("hardware"), "framework": first.get("framework"),
            "repetitions": len(rows),
            "kwh_per_1000_queries": _mean(rows, "kwh_per_1000_queries"),
            "energy_j": _mean(rows, "energy_j"), "co2_g": _mean(rows, "co2_g"),
            "water_l": _mean(rows, "water_l"),
            "samples_per_second": _mean(rows, "samples_per_second"),
            "accuracy": _metric(rows, "accuracy"), "f1_macro": _metric(rows, "f1_macro"),
            "rmse": _metric(rows, "rmse"), "mae": _metric(rows, "mae"),
            "num_parameters": first.get("num_parameters"),
            "effective_parameters": first.get("effective_parameters"),
            "size_bytes": first.get("size_bytes"), "dtype": first.get("dtype"),
            "provenance": first.get("provenance"),
            "step_phase": None if step is None else step["phase"],
            "step_energy_j": None if step is None else step["energy_j"],
            "step_co2_g": None if step is None else step["co2_g"],
            "errors": failed.get(key, []),
            "partial_runs": sum(1 for r in rows if r.get("partial")),
            "partial_errors": [e for r in rows if r.get("partial")
                               for e in (r.get("errors") or [])],
        })
    return {
        "total_energy_kwh": sum(r["energy_kwh"] or 0.0 for r in ok),
        "total_co2_emissions_kg": sum(r["co2_g"] or 0.0 for r in ok) / 1000.0,
        "total_water_l": sum(r["water_l"] or 0.0 for r in ok),
        "runs_ok": len(ok),
        "runs_failed": len(runs) - len(ok),
        "models": models,
    }
