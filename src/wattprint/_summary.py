"""A sweep's runs, totalled: :class:`SweepSummary`, with one :class:`ModelSummary` per model
variant and dataset.

:func:`summarize` is a pure function over run records (:class:`~wattprint.record.RunRecord`,
as ``Store.runs()`` returns them), used by :class:`wattprint.Benchmark` for its report, by the
command line and by the HTML report; it sits on the store's layer so that the report need not
import the code that runs sweeps. Each quantity keeps its one name and unit (``co2_g`` grams);
ML-EcoLyzer's ``analysis_summary`` dict (``total_co2_emissions_kg``) is a view made at the edge
by :meth:`SweepSummary.to_analysis_summary`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from statistics import fmean
from typing import Any

from .record import Quality, RunRecord, mean_quality

__all__ = ["ModelSummary", "SweepSummary", "summarize"]


@dataclass(frozen=True, kw_only=True)
class ModelSummary:
    """One model variant on one dataset: the mean of its successful inference repetitions
    (None where no repetition has the figure), the training or optimization step that made
    the variant (``step_*``, None without one), and what went wrong: ``errors`` of its failed
    cells, ``partial_runs`` (its inference runs whose measurement is partial: a sensor failed
    inside the window, their energy misses a component, and they are not rated) and
    ``partial_errors`` (what failed in them). ``quality`` is the quality figure of its
    repetitions (accuracy, word error rate, perplexity, ...:
    :func:`~wattprint.record.mean_quality`)."""

    model: str | None
    variant: str | None
    dataset: str | None
    parent: str | None = None
    task: str | None = None
    hardware: str | None = None
    framework: str | None = None
    repetitions: int = 0
    kwh_per_1000_queries: float | None = None
    energy_j: float | None = None
    co2_g: float | None = None
    water_l: float | None = None
    samples_per_second: float | None = None
    accuracy: float | None = None
    f1_macro: float | None = None
    rmse: float | None = None
    mae: float | None = None
    quality: Quality | None = None
    num_parameters: int | None = None
    effective_parameters: int | float | None = None
    size_bytes: int | None = None
    dtype: str | None = None
    provenance: str | None = None
    step_phase: str | None = None
    step_energy_j: float | None = None
    step_co2_g: float | None = None
    errors: tuple[str, ...] = ()
    partial_runs: int = 0
    partial_errors: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The model as scores name it: ``model``, or ``model:variant`` for a variant made
        from a parent."""
        return str(self.model) if self.parent is None else f"{self.model}:{self.variant}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field, lists for the tuples, ``quality`` as
        :meth:`Quality.to_dict <wattprint.record.Quality.to_dict>` (or None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (list(value) if isinstance(value, tuple)
                           else value.to_dict() if isinstance(value, Quality) else value)
        return out


@dataclass(frozen=True, kw_only=True)
class SweepSummary:
    """Totals over a sweep's successful runs (training, optimization and inference: energy
    in kWh, CO2e in grams, water in litres), the count of runs that ended ok and that failed,
    and one :class:`ModelSummary` per model variant and dataset, in name order."""

    total_energy_kwh: float
    total_co2_g: float
    total_water_l: float
    runs_ok: int
    runs_failed: int
    models: tuple[ModelSummary, ...] = ()

    def _repr_html_(self) -> str:
        """The totals and model rows for notebooks, with provenance (``wattprint._html``)."""
        from ._html import summary_html

        return summary_html(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, in this record's names and units."""
        return {"total_energy_kwh": self.total_energy_kwh, "total_co2_g": self.total_co2_g,
                "total_water_l": self.total_water_l, "runs_ok": self.runs_ok,
                "runs_failed": self.runs_failed, "models": [m.to_dict() for m in self.models]}

    def to_analysis_summary(self) -> dict[str, Any]:
        """ML-EcoLyzer's ``final_report.analysis_summary``: ``total_energy_kwh``,
        ``total_co2_emissions_kg`` (kilograms), ``total_water_l``, ``runs_ok``, ``runs_failed``
        and ``models`` (one dict per model row, :meth:`ModelSummary.to_dict`)."""
        return {"total_energy_kwh": self.total_energy_kwh,
                "total_co2_emissions_kg": self.total_co2_g / 1000.0,
                "total_water_l": self.total_water_l, "runs_ok": self.runs_ok,
                "runs_failed": self.runs_failed, "models": [m.to_dict() for m in self.models]}


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def _metric(runs: list[RunRecord], name: str) -> float | None:
    return _mean(r.metric(name) for r in runs)


_Key = tuple[str | None, str | None, str | None]
#: What a model row takes from its first repetition: what the model is, not what it measured.
_DESCRIBED = ("parent", "task", "hardware", "framework", "num_parameters",
              "effective_parameters", "size_bytes", "dtype", "provenance")


def _order(key: _Key) -> tuple[str, ...]:
    return tuple("" if part is None else part for part in key)


def summarize(runs: Iterable[RunRecord]) -> SweepSummary:
    """Totals over a sweep's runs, and one :class:`ModelSummary` per model variant and dataset.

    Totals add every successful run: training, optimization and inference. A model row
    averages its inference repetitions and carries the energy of the training or optimization
    step that made the variant.
    """
    runs = list(runs)
    ok = [r for r in runs if r.ok]
    groups: dict[_Key, list[RunRecord]] = defaultdict(list)
    steps: dict[_Key, RunRecord] = {}
    failed: dict[_Key, list[str]] = defaultdict(list)
    for r in runs:
        key = (r.model_name, r.variant, r.dataset)
        if not r.ok:
            failed[key].append(str(r.error))
        elif r.phase == "inference":
            groups[key].append(r)
        else:
            steps[key] = r
    models = []
    for key in sorted(set(groups) | set(failed), key=_order):
        rows = groups.get(key, [])
        step = steps.get(key)
        described = {name: getattr(rows[0], name) for name in _DESCRIBED} if rows else {}
        partial = [r for r in rows if r.partial]
        models.append(ModelSummary(
            model=key[0], variant=key[1], dataset=key[2], **described,
            repetitions=len(rows),
            kwh_per_1000_queries=_mean(r.kwh_per_1000_queries for r in rows),
            energy_j=_mean(r.energy_j for r in rows), co2_g=_mean(r.co2_g for r in rows),
            water_l=_mean(r.water_l for r in rows),
            samples_per_second=_mean(r.samples_per_second for r in rows),
            accuracy=_metric(rows, "accuracy"), f1_macro=_metric(rows, "f1_macro"),
            rmse=_metric(rows, "rmse"), mae=_metric(rows, "mae"), quality=mean_quality(rows),
            step_phase=None if step is None else step.phase,
            step_energy_j=None if step is None else step.energy_j,
            step_co2_g=None if step is None else step.co2_g,
            errors=tuple(failed.get(key, ())),
            partial_runs=len(partial),
            partial_errors=tuple(e for r in partial for e in (r.errors or ())),
        ))
    return SweepSummary(
        total_energy_kwh=math.fsum(r.energy_kwh or 0.0 for r in ok),
        total_co2_g=math.fsum(r.co2_g or 0.0 for r in ok),
        total_water_l=math.fsum(r.water_l or 0.0 for r in ok),
        runs_ok=len(ok),
        runs_failed=len(runs) - len(ok),
        models=tuple(models),
    )
