"""``measure_energy``: ML Energy Score's call, measured, stored and written as it documents.

ML Energy Score's workflow is: measure each model with ``measure_energy(inference_fn, dataset,
model_name, task_name, hardware, num_samples)``, which writes a JSON result file, then rate them
with ``calculate_scores(task, hardware)`` and ``print_scores``. Here each call also records its
run in the results store (``db``, default ``wattprint.db``), so that ``calculate_scores`` and
``wattprint score`` find it; the dict returned, and written under ``output_dir`` (default
``results``), is a view of the run's :class:`~wattprint.record.RunRecord` in ML Energy Score's
keys (``co2_kg``, ``duration_seconds``).

Each call is one sweep of its own in the store (``measure_energy``, ``measure_energy-2``, ...:
its config is the call's arguments), with one inference run; repetitions of a model in several
calls are averaged by the star ratings as repetitions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import write_text
from ._version import __version__
from .errors import ConfigError, StoreError

if TYPE_CHECKING:
    import os

    from .footprint import Site
    from .meter import EnergyMeter
    from .record import RunRecord

__all__ = ["DEFAULT_PUE", "energy_score_view", "measure_energy"]

#: The power usage effectiveness ``measure_energy`` assumes when it makes its own meter and no
#: ``site`` is given: CodeCarbon's 1.2, as ML Energy Score uses it. The result states it.
DEFAULT_PUE = 1.2
#: The sweep id ``measure_energy`` runs are filed under (``measure_energy-2`` and on after).
SWEEP_BASE = "measure_energy"
#: The variant a ``measure_energy`` run is stored as: the model as the user's function runs it
#: (the star table names it by ``model_name`` alone).
VARIANT = "default"


def measure_energy(
    inference_fn: Callable[[Any], Any],
    dataset: Any,
    model_name: str,
    task_name: str,
    hardware: str = "auto",
    num_samples: int = 1000,
    *,
    batch_size: int = 1,
    warmup: int = 10,
    output_dir: str | os.PathLike[str] | None = "results",
    db: str | os.PathLike[str] | None = "wattprint.db",
    meter: EnergyMeter | None = None,
    site: Site | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Measure the energy of ``num_samples`` queries of ``inference_fn`` over ``dataset``,
    store the run and write its JSON result; return the result.

    ``inference_fn(sample)`` is called once per sample, as ML Energy Score documents: with
    one row of an array, one text, one tensor of a tensor dataset (tensors stay tensors).
    ``batch_size`` > 1 opts into batches: ``inference_fn(batch)`` gets that many inputs at a
    time. The dataset is cycled when it has fewer than ``num_samples``; ``warmup`` calls run
    first, unmeasured. ``hardware`` is the label the run is filed under: ``"auto"`` (the first
    GPU the meter reads, else ``"CPU"``) or any device name (``"NVIDIA H200"`` is ``"H200"``).

    The run is recorded in the results store ``db`` (``None``: not stored) with its task,
    hardware and model name, so that ``calculate_scores(task_name, hardware)`` rates it; the
    result is written as JSON under ``output_dir`` (``None``: not written; its path is the
    result's ``output_file``). Both are checked before anything runs: a ``db`` or
    ``output_dir`` that cannot be written is a :class:`~wattprint.errors.ConfigError` naming
    it. If storing fails after the measurement, the error names the JSON file that holds it.

    Without a ``meter``, one is made for the call at ``site`` (a :class:`~wattprint.Site`),
    by default the settings' (``WATTPRINT_COUNTRY``, ``wattprint.toml``, ...; see
    :mod:`wattprint.settings`) with a PUE of :data:`DEFAULT_PUE` (1.2, as ML Energy Score via
    CodeCarbon) where they name none; a given ``meter`` brings its own site. The result's
    ``pue`` says which was used.

    ``progress``: ``None`` (default) shows a bar on a terminal and otherwise prints a line
    every 100 samples to stderr; ``True`` always the bar; ``False`` nothing.

    Returns a dict with ``model_name``, ``task_name``, ``hardware``, ``timestamp``,
    ``num_samples``, ``energy_kwh``, ``co2_kg``, ``water_l``, ``duration_seconds``,
    ``kwh_per_1000_queries``, ``samples_per_second``, per-component energy with its provenance,
    and, when the dataset has labels and the function returns predictions, ``accuracy`` and
    ``f1_macro`` (classification) or ``rmse`` and ``mae`` (regression); for text generation
    ``tokens_generated`` and ``tokens_per_second``. ``partial`` says that a sensor failed
    inside the window (its component is missing from the energy), ``errors`` what failed and
    ``notes`` what else a reader should know (among it why labels given could not score the
    outputs, where they could not). ``db``, ``sweep_id`` and ``cell_key`` say where
    the run is stored. Numeric outputs that are NaN or infinite raise
    :class:`~wattprint.errors.ModelError` ("model output is not finite"), and nothing is
    stored or written.
    """
    from ._files import folder_problem, store_problem
    from .meter import EnergyMeter
    from .workloads.harness import measure_inference

    if meter is not None and site is not None:
        raise ConfigError("give either meter= or site=, not both: a meter brings its own site")
    folder = None if output_dir is None else Path(output_dir)
    store_path = None if db is None else Path(db)
    problems = []
    if folder is not None and (why := folder_problem(folder)) is not None:
        problems.append(f"output_dir: {why}")
    if store_path is not None and (why := store_problem(store_path)) is not None:
        problems.append(f"db: {why}")
    if problems:
        raise ConfigError("measure_energy cannot keep its result:\n"
                          + "\n".join(f"  {line}" for line in problems))
    own_meter = meter is None
    if meter is None and site is not None:
        meter = EnergyMeter(site=site)
    elif meter is None:  # the settings' site (WATTPRINT_COUNTRY, ...), with ML Energy Score's
        from .settings import DEFAULT, load_settings  # PUE where they name none

        meter = EnergyMeter(pue=DEFAULT_PUE if load_settings().origin("pue") == DEFAULT
                            else None)
    try:
        record = measure_inference(
            inference_fn, dataset, model_name, task_name, hardware, num_samples,
            batch_size=batch_size, per_sample=batch_size == 1, warmup=warmup, meter=meter,
            progress=progress)
    finally:
        if own_meter:
            meter.close()
    result = energy_score_view(record)
    path = None
    if folder is not None:
        stamp = datetime.fromtimestamp(record.started_at or 0.0, timezone.utc)
        path = (folder / f"{_safe_name(model_name)}_{_safe_name(task_name)}_"
                f"{stamp.strftime('%Y%m%dT%H%M%S_%f')}.json")
        result["output_file"] = str(path)
    try:
        if store_path is not None:
            result.update(_store(record, store_path))
    except StoreError as err:
        kept = "" if path is None else f"; the measurement is in {path}"
        raise StoreError(f"the run of {model_name!r} was measured but not stored: "
                         f"{err}{kept}") from err
    finally:  # the file is written even when storing failed: nothing measured is lost
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def _store(record: RunRecord, db: Path) -> dict[str, str]:
    """Record the run in a sweep of its own in the store ``db``; where it went."""
    from .store import Store

    config = {"measure_energy": {
        "model_name": record.model_name, "task_name": record.task,
        "hardware": record.hardware, "dataset": record.dataset,
        "num_samples": record.num_samples, "batch_size": (record.extra or {}).get("batch_size"),
    }}
    cell_key = f"{record.model_name}/{record.task}/{record.dataset}/inference/0"
    with Store(db) as store:
        sweep_id = store.claim_sweep(SWEEP_BASE, project="measure_energy", config=config)
        store.write_run(record.replace(sweep_id=sweep_id, cell_key=cell_key, repetition=0,
                                       variant=record.variant or VARIANT))
        store.end_sweep(sweep_id, "finished")
    return {"db": str(db), "sweep_id": sweep_id, "cell_key": cell_key}


def energy_score_view(record: RunRecord) -> dict[str, Any]:
    """The dict :func:`measure_energy` returns (ML Energy Score's keys), made from the run's
    record: ``co2_kg`` and ``duration_seconds`` exist only here, at the edge."""
    comps = record.components or {}
    started = record.started_at or 0.0
    view: dict[str, Any] = {
        "model_name": record.model_name,
        "task_name": record.task,
        "hardware": record.hardware,
        "timestamp": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "num_samples": record.num_samples,
        "batch_size": (record.extra or {}).get("batch_size"),
        "dataset": record.dataset,
        "duration_seconds": record.duration_s,
        "energy_j": record.energy_j,
        "energy_kwh": record.energy_kwh,
        "co2_kg": None if record.co2_g is None else record.co2_g / 1000.0,
        "water_l": record.water_l,
        "carbon_intensity_g_per_kwh": record.intensity_g_per_kwh,
        "carbon_intensity_source": record.intensity_source,
        "location": record.location,
        "pue": record.pue,
        "wue_l_per_kwh": record.wue_l_per_kwh,
        "provenance": record.provenance,
        "measured": bool(comps) and all(c.measured for c in comps.values()),
        "partial": bool(record.partial),
        "errors": list(record.errors or ()),
        "notes": list(record.measurement_notes or ()),
        "components": {name: c.to_dict() for name, c in comps.items()},
        "kwh_per_1000_queries": record.kwh_per_1000_queries,
        "samples_per_second": record.samples_per_second,
        "wattprint_version": __version__,
    }
    view.update(record.metrics or {})
    return view


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"
