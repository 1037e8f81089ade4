"""``Benchmark``: a config in, every cell measured and stored, a report dict out.

This joins the sweep runner (``bench/``) to the results store (``store``); both are imported
when a benchmark runs, not before.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bench.config import BenchConfig
    from .meter import EnergyMeter

__all__ = ["Benchmark", "summarize"]


class Benchmark:
    """A sweep over models x datasets x variants, declared once.

    ``Benchmark(config)`` takes a dict (the YAML's shape), a validated config, or a path to a
    YAML file; :meth:`from_yaml` reads a file. An invalid config raises
    :class:`~wattprint.errors.ConfigError` naming each bad field, before anything is stored.
    ``db`` overrides ``output.db``.
    """

    def __init__(self, config: dict[str, Any] | BenchConfig | str | os.PathLike[str], *,
                 db: str | os.PathLike[str] | None = None) -> None:
        from .bench.config import BenchConfig, load_config

        self.config: BenchConfig = (config if isinstance(config, BenchConfig)
                                    else load_config(config))
        self.db = Path(db) if db is not None else Path(self.config.output.db)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *,
                  db: str | os.PathLike[str] | None = None) -> Benchmark:
        """The benchmark a YAML file declares."""
        return cls(Path(path), db=db)

    def run(self, *, resume: bool = False, progress: bool | None = None,
            meter: EnergyMeter | None = None) -> dict[str, Any]:
        """Measure every cell (with ``resume``, only those the last run of this config left),
        store each as it ends, write the configured exports, and return the report.

        The report holds ``sweep_id``, ``db``, ``runs`` (every stored row of the sweep),
        ``exports`` (files written) and ``final_report.analysis_summary`` with
        ``total_energy_kwh``, ``total_co2_emissions_kg``, ``total_water_l``, ``runs_ok``,
        ``runs_failed`` and ``models`` (one row per model variant and dataset).
        """
        from .bench.runner import run_sweep
        from .store import Store

        with Store(self.db) as store:
            sweep_id = run_sweep(self.config, store, resume=resume, progress=progress,
                                 meter=meter)
            runs = store.runs(sweep_id=sweep_id)
            exports = []
            out_dir = Path(self.config.output.output_dir)
            for fmt in self.config.output.export_formats:
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"{sweep_id}.{fmt}"
                store.export(fmt, sweep_id=sweep_id, out=path)
                exports.append(str(path))
        return {
            "sweep_id": sweep_id,
            "project": self.config.project,
            "db": str(self.db),
            "config": self.config.to_dict(),
            "runs": runs,
            "exports": exports,
            "final_report": {"analysis_summary": summarize(runs)},
        }


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
    step that made the variant.
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
        })
    return {
        "total_energy_kwh": sum(r["energy_kwh"] or 0.0 for r in ok),
        "total_co2_emissions_kg": sum(r["co2_g"] or 0.0 for r in ok) / 1000.0,
        "total_water_l": sum(r["water_l"] or 0.0 for r in ok),
        "runs_ok": len(ok),
        "runs_failed": len(runs) - len(ok),
        "models": models,
    }
