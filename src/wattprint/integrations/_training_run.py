"""What the training callbacks (Keras, Lightning, Hugging Face's Trainer) share: an epoch's
entry in the run's ``extra["epochs"]``, the provenance their log line names, and the storing
of the run in a sweep of its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import StoreError
from ..measurement import Measurement
from ..record import RunRecord
from ..store import Store

__all__ = ["epoch_entry", "provenance_text", "store_training_run"]


def epoch_entry(number: int, m: Measurement) -> dict[str, Any]:
    """Epoch ``number``'s figures as the run's ``extra["epochs"]`` lists them."""
    fp = m.footprint
    return {"epoch": number, "duration_s": m.duration_s, "energy_j": m.energy_j,
            "co2_g": fp.co2_g, "water_l": fp.water_l, "measured": m.measured,
            "partial": m.partial, "errors": list(m.errors)}


def provenance_text(m: Measurement) -> str:
    """``"cpu (rapl), gpu:0 (nvml)"``: each component and where its figure came from."""
    return ", ".join(f"{c} ({e.source.value}{'' if e.measured else ', estimated'})"
                     for c, e in m.components.items()) or "no component"


def store_training_run(store: Store, record: RunRecord, *, base: str,
                       config: Mapping[str, Any], cell_key: Callable[[int], str],
                       sweep_id: str | None = None, failed: bool = False) -> RunRecord:
    """Write the training run ``record`` to ``store``; return it with its store ``id``.

    The run goes into ``sweep_id`` when given (begun if new), else into a sweep of its own,
    ``base``, ``base-2`` ... (project ``base``, ``config`` its configuration), as the next
    repetition of its model on its dataset there, under ``cell_key(repetition)``; the sweep
    then ends ``failed`` or ``finished``. A store that fails raises
    :class:`~wattprint.errors.StoreError` saying that the run was measured but not stored:
    the record stays on the callback (``EnergyCallback.record``), and the measurement
    (``EnergyCallback.run``)."""
    name = record.model_name or "model"
    try:
        if sweep_id is None:
            sweep_id = store.claim_sweep(base, project=base, config=dict(config))
        else:
            store.begin_sweep(sweep_id, project=base, config=dict(config))
        repetition = sum(r.model_name == record.model_name and r.dataset == record.dataset
                         for r in store.runs(sweep_id=sweep_id, phase="training"))
        record = record.replace(sweep_id=sweep_id, repetition=repetition,
                                cell_key=cell_key(repetition))
        run_id = store.write_run(record)
        store.end_sweep(sweep_id, "failed" if failed else "finished")
    except StoreError as err:
        raise StoreError(f"the training run of {name!r} was measured but not stored: "
                         f"{err}; its record is EnergyCallback.record") from err
    return record.replace(id=run_id)
