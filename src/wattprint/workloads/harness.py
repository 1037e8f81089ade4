"""The energy of inference over a dataset, and of training, with accuracy beside it."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .._files import write_text
from .._version import __version__
from ..errors import ConfigError, ModelError, WindowError
from ..meter import EnergyMeter
from ..record import RunRecord
from ..sensors.hardware import detect_hardware, resolve_hardware
from .datasets import Dataset, as_dataset

__all__ = ["energy_score_view", "measure_energy", "measure_inference", "measure_training"]

#: Progress is updated at most this often (seconds), so that a bar costs nothing per query.
_PROGRESS_EVERY_S = 0.1
#: Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (95 % intervals).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def _t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def energy_score_view(record: RunRecord) -> dict[str, Any]:
    """The dict :func:`measure_energy` returns (ML Energy Score's keys), made from the run's
    record: ``co2_kg`` and ``duration_seconds`` exist only here, at the edge."""
    from datetime import datetime, timezone

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


@contextmanager
def _progress(enabled: bool | None, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal, updated at most every 0.1 s; a no-op otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda done: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def _tokens(result: Any) -> int | None:
    """Tokens a text-generation call produced, when its result says so: a ``tokens`` key, or
    a ``tokens`` attribute (the arrays a generation model returns carry one)."""
    if isinstance(result, dict) and "tokens" in result:
        return int(result["tokens"])
    count = getattr(result, "tokens", None)
    return count if isinstance(count, int) else None


def _concat(outputs: list[Any]) -> Any:
    """One array of every batch's predictions (a list for text), or None if they differ."""
    import numpy as np

    if all(isinstance(o, (list, tuple)) for o in outputs):
        return [item for o in outputs for item in o]
    arrays = [np.asarray(o) for o in outputs]
    try:
        if all(a.ndim == 0 for a in arrays):  # one prediction per call
            return np.stack(arrays)
        return np.concatenate([np.atleast_1d(a) for a in arrays])
    except ValueError:
        return None


def _check_finite(outputs: list[Any]) -> None:
    """Raise :class:`ModelError` if any numeric output is NaN or infinite.

    A model whose outputs are not numbers has no accuracy to report (NaN predictions score as
    chance or garbage) and its energy is not that of a working model. Text and other
    non-numeric outputs are not checked. Runs once, after the measured loop.
    """
    import numpy as np

    nan = inf = total = 0
    for out in outputs:
        try:
            a = np.asarray(out)
        except (TypeError, ValueError):  # ragged or odd outputs: nothing to check
            continue
        if a.dtype.kind not in "fc":
            continue
        total += a.size
        nan += int(np.count_nonzero(np.isnan(a)))
        inf += int(np.count_nonzero(np.isinf(a)))
    if nan or inf:
        raise ModelError(
            f"model output is not finite: {nan} NaN and {inf} infinite of {total} values "
            "predicted; its accuracy and energy would mean nothing, so nothing is reported"
        )


def _close_quietly(meter: EnergyMeter, name: str) -> None:
    """End the window ``name`` after the code in it raised; its measurement is not reported."""
    with suppress(WindowError):  # the code itself ended it: nothing is left to close
        meter.end(name)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


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
    output_dir: str | Path | None = None,
    meter: EnergyMeter | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Measure the energy of ``num_samples`` queries of ``inference_fn`` over ``dataset``.

    ``inference_fn(batch)`` is called on batches of ``batch_size`` inputs; the dataset is
    cycled when it has fewer than ``num_samples``. ``warmup`` batches run first, unmeasured.
    Everything per batch is prepared before the measured loop, which only calls the function.
    If the function raises, the window is closed and the error propagates, so a shared
    ``meter`` stays usable. ``hardware`` is the label the result is filed under: ``"auto"``
    (the first GPU the meter reads, else ``"CPU"``) or any device name (see
    :func:`~wattprint.sensors.hardware.resolve_hardware`: ``"NVIDIA H200"`` is ``"H200"``).

    Returns a dict with ``model_name``, ``task_name``, ``hardware``, ``timestamp``,
    ``num_samples``, ``energy_kwh``, ``co2_kg``, ``water_l``, ``duration_seconds``,
    ``kwh_per_1000_queries``, ``samples_per_second``, per-component energy with its provenance,
    and, when the dataset has labels and the function returns predictions, ``accuracy`` and
    ``f1_macro`` (classification) or ``rmse`` and ``mae`` (regression); for text generation
    ``tokens_generated`` and ``tokens_per_second``. ``partial`` says that a sensor failed
    inside the window (its component is missing from the energy), ``errors`` what failed and
    ``notes`` what else a reader should know. Numeric outputs that are NaN or infinite raise
    :class:`~wattprint.errors.ModelError` ("model output is not finite"). With ``output_dir``
    the dict is also written there as JSON (its path under ``output_file``).

    The dict is a view (:func:`energy_score_view`) of the run's
    :class:`~wattprint.record.RunRecord`, which :func:`measure_inference` returns.
    """
    record = measure_inference(inference_fn, dataset, model_name, task_name, hardware,
                               num_samples, batch_size=batch_size, warmup=warmup, meter=meter,
                               progress=progress)
    result = energy_score_view(record)
    if output_dir is not None:
        from datetime import datetime, timezone

        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(record.started_at or 0.0, timezone.utc)
        path = (folder / f"{_safe_name(model_name)}_{_safe_name(task_name)}_"
                f"{stamp.strftime('%Y%m%dT%H%M%S')}.json")
        result["output_file"] = str(path)
        write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def measure_inference(
    inference_fn: Callable[[Any], Any],
    dataset: Any,
    model_name: str,
    task_name: str,
    hardware: str = "auto",
    num_samples: int = 1000,
    *,
    batch_size: int = 1,
    warmup: int = 10,
    meter: EnergyMeter | None = None,
    progress: bool | None = None,
) -> RunRecord:
    """What :func:`measure_energy` measures, as the run's
    :class:`~wattprint.record.RunRecord` (phase ``inference``, without a ``sweep_id`` or
    ``cell_key``: whoever stores it names it). The metrics are in ``metrics``, the batch size
    in ``extra``."""
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, not {num_samples}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, not {warmup}")
    data = as_dataset(dataset)
    if len(data) == 0:
        raise ConfigError(f"dataset {data.name!r} is empty")
    profile = None if hardware.strip().lower() == "auto" else resolve_hardware(hardware)
    own_meter = meter is None
    meter = meter if meter is not None else EnergyMeter()
    try:
        batches, labels = _prepare(data, num_samples, batch_size)
        for xb in batches[: max(warmup, 0)]:
            inference_fn(xb)
        outputs: list[Any] = []
        append = outputs.append
        tokens = 0
        counted_tokens = False
        update_every = max(1, len(batches) // 100)
        with _progress(progress, len(batches), f"{model_name} / {task_name}") as advance:
            name = f"inference:{model_name}:{task_name}"
            meter.begin(name)
            try:
                if update_every == 1 or progress is False:
                    for xb in batches:
                        append(inference_fn(xb))
                else:
                    # Chunks keep the bar's cost out of the per-query loop.
                    for start in range(0, len(batches), update_every):
                        for xb in batches[start:start + update_every]:
                            append(inference_fn(xb))
                        advance(start + update_every)
            except BaseException:
                _close_quietly(meter, name)  # a shared meter must stay usable; the error goes on
                raise
            m = meter.end(name)
        _check_finite(outputs)
        for out in outputs:
            n = _tokens(out)
            if n is not None:
                tokens += n
                counted_tokens = True
        metrics: dict[str, Any] = {}
        if counted_tokens:
            metrics["tokens_generated"] = tokens
            metrics["tokens_per_second"] = tokens / m.duration_s if m.duration_s > 0 else 0.0
        metrics.update(_accuracy(data, labels, outputs))
        return RunRecord.from_measurement(
            m, phase="inference", model_name=model_name, task=task_name,
            hardware=profile.name if profile else detect_hardware(meter.sensors),
            dataset=data.name, num_samples=num_samples,
            samples_per_second=num_samples / m.duration_s if m.duration_s > 0 else 0.0,
            kwh_per_1000_queries=m.footprint.kwh * 1000.0 / num_samples, metrics=metrics,
            extra={"batch_size": batch_size},
        )
    finally:
        if own_meter:
            meter.close()


def _prepare(data: Dataset, num_samples: int, batch_size: int) -> tuple[list[Any], Any]:
    """The measured loop's batches, made up front, cycling the dataset to ``num_samples``.

    Batches are slices (views, no copies) except where one wraps around the dataset's end.
    """
    import numpy as np

    n, x = len(data), data.x
    batches: list[Any] = []
    for start in range(0, num_samples, batch_size):
        size = min(batch_size, num_samples - start)
        a = start % n
        if a + size <= n:
            batches.append(x[a:a + size])
        else:
            idx = np.arange(a, a + size) % n
            batches.append([x[i] for i in idx] if isinstance(x, list) else x[idx])
    labels = None if data.y is None else data.y[np.arange(num_samples) % n]
    return batches, labels


def _accuracy(data: Dataset, labels: Any, outputs: list[Any]) -> dict[str, Any]:
    from .metrics import classification_metrics, regression_metrics

    if labels is None or not outputs:
        return {}
    predictions = _concat(outputs)
    if predictions is None or isinstance(predictions, list):
        return {}
    try:
        if data.task == "regression":
            return regression_metrics(labels, predictions)
        if "classification" in data.task:
            return classification_metrics(labels, predictions)
    except ValueError:  # predictions that do not line up with the labels: no metric
        return {}
    return {}


def measure_training(
    model: Any,
    dataset: Any,
    epochs: int,
    *,
    batch_size: int = 32,
    meter: EnergyMeter | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    predict_after: int = 2,
    model_name: str | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """Train for ``epochs`` and measure each epoch's energy and loss.

    ``model`` is a :class:`~wattprint.workloads.model.Model` (its ``train_epoch`` is used) or a
    function ``train_epoch(data) -> loss``. From epoch ``predict_after`` on, each epoch's record
    carries a prediction of the whole run's energy and CO2, linear in epochs, with a 95 %
    prediction interval from the epoch-to-epoch spread (Student's t); ``on_epoch`` gets each
    record as it is made. Returns per-epoch records and totals.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, not {epochs}")
    if predict_after < 2:
        raise ConfigError("predict_after must be >= 2: a spread needs two epochs")
    data = as_dataset(dataset)
    step: Callable[[], Any]
    if hasattr(model, "train_epoch"):
        step = lambda: model.train_epoch(data, batch_size=batch_size, **train_options)  # noqa: E731
    elif callable(model):
        step = lambda: model(data)  # noqa: E731
    else:
        raise ConfigError("model must have train_epoch(data) or be a function of the data")
    own_meter = meter is None
    meter = meter if meter is not None else EnergyMeter()
    records: list[dict[str, Any]] = []
    energies: list[float] = []
    co2s: list[float] = []
    try:
        for epoch in range(1, epochs + 1):
            with meter.epoch() as w:
                loss = step()
            m = w.measurement
            assert m is not None
            energies.append(m.energy_j)
            co2s.append(m.footprint.co2_g)
            record: dict[str, Any] = {
                "epoch": epoch,
                "duration_s": m.duration_s,
                "energy_j": m.energy_j,
                "co2_g": m.footprint.co2_g,
                "loss": None if loss is None else float(loss),
                "measured": m.measured,
                "partial": m.partial,
            }
            if epoch >= predict_after:
                record["prediction"] = _predict(energies, co2s, epochs)
            records.append(record)
            if on_epoch is not None:
                on_epoch(record)
        total = sum(energies)
        fp = meter.footprint_model.of(total)
    finally:
        if own_meter:
            meter.close()
    return {
        "model_name": model_name or getattr(model, "framework", None) or "model",
        "epochs": records,
        "num_epochs": epochs,
        "total_energy_j": total,
        "total_energy_kwh": fp.kwh,
        "total_co2_g": fp.co2_g,
        "co2_kg": fp.co2_g / 1000.0,
        "water_l": fp.water_l,
        "duration_s": sum(r["duration_s"] for r in records),
        "carbon_intensity_source": fp.intensity_source,
        "measured": all(r["measured"] for r in records),
    }


def _predict(energies: list[float], co2s: list[float], epochs: int) -> dict[str, Any]:
    """Whole-run energy and CO2 from the epochs so far: the sum so far plus the mean epoch
    times the epochs left, with a 95 % prediction interval for the sum of those epochs."""
    k, left = len(energies), epochs - len(energies)

    def one(xs: list[float]) -> tuple[float, float]:
        mean = sum(xs) / k
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (k - 1))
        half = _t975(k - 1) * sd * math.sqrt(left + left * left / k)
        return sum(xs) + mean * left, half

    energy, energy_pm = one(energies)
    co2, co2_pm = one(co2s)
    return {
        "after_epochs": k,
        "total_energy_j": energy,
        "total_energy_j_pm": energy_pm,
        "total_co2_g": co2,
        "total_co2_g_pm": co2_pm,
        "interval": "95% prediction interval (Student's t over epoch-to-epoch spread)",
    }
