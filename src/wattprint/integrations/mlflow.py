"""Energy, carbon and water in MLflow runs.

:func:`log_measurement` logs one :class:`~wattprint.Measurement` to a run; :func:`track` measures
a block (or every call of a function) and logs it, like ``mlflow.autolog`` does for a ``fit``.
Needs the ``mlflow`` extra (``pip install "wattprint[mlflow]"``, which brings ``mlflow-skinny``);
``import wattprint`` does not import MLflow, and neither does this module until it logs.

What a run gets, under ``prefix`` (``wattprint.`` by default):

* metrics, at ``step`` and at the window's end time: ``energy_j``, ``energy_kwh``, ``co2_g``,
  ``water_l``, ``duration_s``, ``power_w``, ``partial`` (1.0 for a partial window, else 0.0),
  ``idle_j`` and ``dynamic_j`` once idle power was calibrated, and ``<component>.energy_j``
  (``cpu.energy_j``, ``gpu_0.energy_j``: a character MLflow refuses in a key on some platform,
  the ``:`` of ``gpu:0``, becomes ``_``);
* params, the site that turned joules into CO2 and water: ``location``, ``intensity_g_per_kwh``,
  ``intensity_source``, ``pue``, ``wue_l_per_kwh``, ``water_intensity_l_per_kwh``,
  ``water_intensity_source`` and ``tier`` when there is one;
* tags, the provenance: ``<component>.source`` (``rapl``, ``nvml``, ``estimate``, ``fake``),
  ``<component>.measured`` (``true`` only for a hardware counter or power register),
  ``<component>.scope`` and ``<component>.sensors``; ``measured`` (``true`` only when every
  component was); ``partial`` (``true`` or ``false``), ``errors`` (one line per error) and
  ``notes``.

A run holds every measurement logged to it under one prefix, so its tags describe them all:
once one of them was partial, ``partial`` stays ``true`` and ``errors`` keeps its lines (a
complete later step never makes the run look complete); once one was estimated, ``measured``
stays ``false``; a component whose source changed lists both. Params in MLflow cannot change:
a measurement made at another site than the one a run already has under that prefix raises
:class:`~wattprint.errors.ConfigError` (log it under another prefix, or to another run).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._log import get_logger
from ..errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag

    from ..footprint import Site
    from ..measurement import Measurement
    from ..meter import EnergyMeter, Window
    from ..sensors.base import Sensor

__all__ = ["log_measurement", "track"]

log = get_logger(__name__)

#: MLflow's limits: the length of a tag's value, and params plus tags in one ``log_batch``.
_MAX_TAG_CHARS = 8000
_MAX_PARAMS_TAGS_PER_BATCH = 100
_UNSAFE = re.compile(r"[^\w.\-]")


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as err:
        raise MissingExtra("logging to MLflow", "mlflow") from err
    return mlflow


def _key(component: str) -> str:
    """A component name as a part of a key every MLflow store and platform accepts."""
    return _UNSAFE.sub("_", component)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _union(old: str | None, new: str) -> str:
    """``new``, or, when the run already has another value, both (sorted, comma-separated)."""
    if old is None or old == new:
        return new
    return ", ".join(sorted({*old.split(", "), *new.split(", ")}))


def _lines(old: str | None, new: list[str]) -> str:
    """The lines of ``old`` and then those of ``new`` not in it yet, cut to MLflow's limit
    with a last line that says how many were left out."""
    lines = list(dict.fromkeys([*(old.splitlines() if old else []), *new]))
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        more = f"... and {len(lines) - i} more"
        if size + len(line) + 1 + len(more) > _MAX_TAG_CHARS:
            kept.append(more)
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def _params(m: Measurement, prefix: str) -> dict[str, str]:
    fp = m.footprint
    params = {
        "location": fp.location,
        "intensity_g_per_kwh": repr(fp.intensity_g_per_kwh),
        "intensity_source": fp.intensity_source,
        "pue": repr(fp.pue),
        "wue_l_per_kwh": repr(fp.wue_l_per_kwh),
        "water_intensity_l_per_kwh": repr(fp.water_intensity_l_per_kwh),
        "water_intensity_source": fp.water_intensity_source,
    }
    if fp.tier is not None:
        params["tier"] = fp.tier
    return {prefix + k: v for k, v in params.items()}


def _metrics(m: Measurement, prefix: str) -> dict[str, float]:
    fp = m.footprint
    metrics = {
        "energy_j": m.energy_j,
        "energy_kwh": fp.kwh,
        "co2_g": fp.co2_g,
        "water_l": fp.water_l,
        "duration_s": m.duration_s,
        "power_w": m.power_w,
        "partial": 1.0 if m.partial else 0.0,
    }
    if m.idle_j is not None:
        metrics["idle_j"] = m.idle_j
    if m.dynamic_j is not None:
        metrics["dynamic_j"] = m.dynamic_j
    for name, c in m.components.items():
        metrics[f"{_key(name)}.energy_j"] = c.energy_j
        if c.dynamic_j is not None:
            metrics[f"{_key(name)}.dynamic_j"] = c.dynamic_j
    return {prefix + k: float(v) for k, v in metrics.items()}


def _tags(
    m: Measurement, prefix: str, step: int | None, old: Mapping[str, str]
) -> dict[str, str]:
    """The provenance tags, merged with what the run already has under ``prefix``."""
    p = prefix
    tags = {
        p + "partial": _flag(m.partial or old.get(p + "partial") == "true"),
        p + "measured": _flag(m.measured and old.get(p + "measured") != "false"),
    }
    for name, c in m.components.items():
        k = f"{p}{_key(name)}."
        tags[k + "source"] = _union(old.get(k + "source"), c.source.value)
        tags[k + "measured"] = _flag(c.measured and old.get(k + "measured") != "false")
        tags[k + "scope"] = _union(old.get(k + "scope"), c.scope)
        tags[k + "sensors"] = _union(old.get(k + "sensors"), ", ".join(c.sensors))
    at = "" if step is None else f"step {step}: "
    if m.errors:
        tags[p + "errors"] = _lines(old.get(p + "errors"), [at + e for e in m.errors])
    if m.notes:
        tags[p + "notes"] = _lines(old.get(p + "notes"), [at + n for n in m.notes])
    return tags


def log_measurement(
    m: Measurement, *, prefix: str = "wattprint.", step: int | None = None,
    run_id: str | None = None,
) -> str:
    """Log a measurement's energy, carbon and water, with their provenance, to an MLflow run.

    The run is ``run_id``, else the active run, else a new one, which stays active, as with
    ``mlflow.log_metric``. Metrics are logged at ``step`` (MLflow's 0 when None); what is logged
    under which key is in this module's docstring. A partial measurement logs ``partial`` as
    1.0 at its step, sets the run's ``partial`` tag to ``true`` and adds its errors to the
    ``errors`` tag. Returns the run's id.

    Raises :class:`~wattprint.errors.ConfigError` when the run already has other site params
    under ``prefix``, and :class:`~wattprint.errors.MissingExtra` without MLflow.
    """
    mlflow = _mlflow()
    from mlflow.entities import Metric, Param, RunTag

    if run_id is None:
        run_id = str((mlflow.active_run() or mlflow.start_run()).info.run_id)
    client = mlflow.MlflowClient()
    data = client.get_run(run_id).data
    old_params: dict[str, str] = data.params
    params = _params(m, prefix)
    clash = sorted(k for k, v in params.items() if k in old_params and old_params[k] != v)
    if clash:
        where = prefix + "location"
        raise ConfigError(
            f"MLflow run {run_id} already has a measurement at another site under {prefix!r} "
            f"({where} {old_params.get(where)!r}, not {params[where]!r}; "
            f"{', '.join(clash)} differ): log this one under another prefix or to another run"
        )
    when = int(m.end.timestamp() * 1000)
    metrics: list[Metric] = [
        Metric(k, v, when, step if step is not None else 0) for k, v in _metrics(m, prefix).items()
    ]
    # One batch as a rule: the figures, their ``partial`` metric and the provenance together
    # (MLflow takes at most 100 params and tags per batch; more go in later batches).
    entries: list[Param | RunTag] = [
        RunTag(k, v) for k, v in _tags(m, prefix, step, data.tags).items()
    ]
    entries += [Param(k, v) for k, v in params.items() if k not in old_params]
    for i in range(0, max(len(entries), 1), _MAX_PARAMS_TAGS_PER_BATCH):
        chunk = entries[i:i + _MAX_PARAMS_TAGS_PER_BATCH]
        client.log_batch(
            run_id,
            metrics=metrics if i == 0 else [],
            params=[e for e in chunk if isinstance(e, Param)],
            tags=[e for e in chunk if isinstance(e, RunTag)],
        )
    return run_id


@contextlib.contextmanager
def track(
    meter: EnergyMeter | None = None,
    *,
    name: str | None = None,
    step: int | None = None,
    prefix: str = "wattprint.",
    run_id: str | None = None,
    sensors: str | Sequence[Sensor | str] = "auto",
    country: str | None = None,
    zone: str | None = None,
    cloud_region: str | None = None,
    carbon_intensity_g_per_kwh: float | None = None,
    pue: float | None = None,
    tier: str | None = None,
    site: Site | None = None,
) -> Iterator[Window]:
    """Measure a block and log it to MLflow: ``with track(country="DE") as w: train()``.

    Also a decorator: ``@track(meter)`` measures and logs every call. The block runs in a
    window of ``meter``, or, without one, of a meter made for the block from ``sensors`` and
    the location arguments (see :class:`~wattprint.EnergyMeter`) and closed after it; give
    either a meter or those, not both. ``w.measurement`` is the measurement after the block.

    The run is chosen as ``mlflow.autolog`` chooses it: ``run_id`` when given, else the active
    run (left active), else a run started before the block, so that what the block logs
    itself lands in the same run, and ended after it (``FAILED`` when the block raised).
    A block that raises is still logged, and its exception goes on; a failure to log is then
    a warning, so that it does not hide the block's exception.
    """
    from ..meter import EnergyMeter

    location = {
        "country": country, "zone": zone, "cloud_region": cloud_region,
        "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh, "pue": pue, "tier": tier,
        "site": site,
    }
    given = sorted(k for k, v in location.items() if v is not None)
    if meter is not None and (given or sensors != "auto"):
        raise ConfigError(
            f"track() got a meter and {', '.join(given) or 'sensors'}: the meter has its own "
            "sensors and site; give one or the other"
        )
    mlflow = _mlflow()
    own_meter = meter is None
    use = meter if meter is not None else EnergyMeter(
        sensors, country=country, zone=zone, cloud_region=cloud_region,
        carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh, pue=pue, tier=tier, site=site,
    )
    started = None
    try:
        if run_id is None and mlflow.active_run() is None:
            started = mlflow.start_run()
        target = run_id if run_id is not None else str(
            (started or mlflow.active_run()).info.run_id
        )
        window = use.window(name)
        failed = True
        try:
            with window:
                yield window
            failed = False
        finally:
            if window.measurement is not None:
                try:
                    log_measurement(window.measurement, prefix=prefix, step=step,
                                    run_id=target)
                except Exception as err:  # the boundary: the block's exception goes first
                    if not failed:
                        raise
                    log.warning("the block raised, and logging its energy to MLflow run %s "
                                "failed too: %s", target, err)
            if started is not None:
                _end(mlflow, started, "FAILED" if failed else "FINISHED")
                started = None
    finally:
        if started is not None:
            _end(mlflow, started, "FAILED")
        if own_meter:
            use.close()


def _end(mlflow: Any, run: Any, status: str) -> None:
    """End the run :func:`track` started: the active one, unless the block left another
    active (then only ours is ended, and the block's stays as the block left it)."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run.info.run_id:
        mlflow.end_run(status)
    else:
        mlflow.MlflowClient().set_terminated(run.info.run_id, status)
