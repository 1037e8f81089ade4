"""``wattprint measure --grade``: an A-G grade for a program's energy against its own history.

greenAI grades a script's eco-friendliness by asking a web service; wattprint asks no one (no
network, ever) and grades a run of a command against the earlier runs of the same command
kept in the results store. Each graded run is stored as a
:class:`~wattprint.record.RunRecord` in a sweep of the command's own, ``measure-<hash>``, the
hash of the command's arguments and the folder it ran in (``python train.py`` in two projects
is two programs). A program run is neither inference nor training, so the record has no
``phase``: the star ratings, which rate inference runs, leave it out.

The grade is the ratio of this run's energy to the median energy of the earlier comparable
runs (status ``ok``, not partial, energy of the same provenance, so an estimate is never graded
against a measurement)::

    ratio   <= 0.80  0.90  0.97  1.03  1.10  1.25  above
    grade      A     B     C     D     E     F     G

The ratio is graded to two decimals, as it is printed; D is "the same, within 3 %". Beside
the grade stands how much the earlier runs themselves vary (their lowest and highest energy
over their median), and whether this run lies within that: a grade outside D that lies within
it is no change beyond the runs' own noise (an estimate on a busy machine varies by tens of
per cent). With one earlier run the spread is not known yet, and the line says so. A run
whose measurement is partial, or whose program exited with a non-zero code (stored with status
``failed``), is stored but neither graded nor used to grade later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .record import RunRecord

if TYPE_CHECKING:
    from .measurement import Measurement
    from .store import Store

__all__ = ["GRADE_LIMITS", "CommandGrade", "command_sweep_id", "grade_letter", "grade_run"]

#: The highest ratio to the median of the earlier runs each grade takes; above the last: G.
GRADE_LIMITS: tuple[tuple[str, float], ...] = (
    ("A", 0.80), ("B", 0.90), ("C", 0.97), ("D", 1.03), ("E", 1.10), ("F", 1.25))
WORST_GRADE = "G"
#: The project the sweeps of ``measure --grade`` are filed under.
PROJECT = "measure"


def grade_letter(ratio: float) -> str:
    """The grade of an energy ``ratio`` to the median of the earlier runs (see the module),
    taken to two decimals, as it is printed: 1.034 is 1.03, a D."""
    shown = round(ratio, 2)
    for letter, limit in GRADE_LIMITS:
        if shown <= limit:
            return letter
    return WORST_GRADE


def command_sweep_id(command: Sequence[str], cwd: str) -> str:
    """``measure-<12 hex digits>``: the sweep of the runs of ``command`` run in ``cwd``."""
    key = json.dumps({"command": list(command), "cwd": cwd}, sort_keys=True)
    return f"measure-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, kw_only=True)
class CommandGrade:
    """The grade of one stored run of a command, or why there is none (``letter`` None).

    ``ratio`` is ``energy_j / median_j``; ``earlier_runs`` counts the comparable earlier runs
    the median is of, ``stored_runs`` every earlier run of the command in the store.
    ``spread`` is the lowest and highest of those runs' energies over their median (None with
    fewer than two), ``within_spread`` whether ``ratio`` lies in it.
    ``message`` is the line ``measure --grade`` prints. ``sweep_id`` and ``run_id`` say where
    the run was stored.
    """

    letter: str | None
    ratio: float | None
    energy_j: float
    median_j: float | None
    earlier_runs: int
    stored_runs: int
    provenance: str | None
    message: str
    sweep_id: str
    run_id: int
    spread: tuple[float, float] | None = None

    @property
    def within_spread(self) -> bool | None:
        """Whether ``ratio`` lies within ``spread`` (None without both)."""
        return _within(self.spread, self.ratio)

    def to_dict(self) -> dict[str, Any]:
        return {"letter": self.letter, "ratio": self.ratio, "energy_j": self.energy_j,
                "median_j": self.median_j, "earlier_runs": self.earlier_runs,
                "stored_runs": self.stored_runs, "provenance": self.provenance,
                "spread": None if self.spread is None else list(self.spread),
                "within_spread": self.within_spread,
                "message": self.message, "sweep_id": self.sweep_id, "run_id": self.run_id}


def _comparable(run: RunRecord, provenance: str | None) -> bool:
    return (run.ok and not run.partial and run.provenance == provenance
            and run.energy_j is not None and run.energy_j > 0)


_Graded = tuple[str | None, float | None, float | None, tuple[float, float] | None, str]


def _message(record: RunRecord, exit_code: int, earlier: list[RunRecord],
             comparable: list[float]) -> _Graded:
    """``(letter, ratio, median_j, spread, message)`` of ``record`` against the ``earlier``
    runs (see :class:`CommandGrade`)."""
    if record.partial:
        errors = "; ".join(record.errors or ()) or "a sensor failed"
        return _ungraded(f"not graded: the measurement is partial ({errors}); it is stored, "
                         "and left out of later grades")
    if exit_code != 0:
        return _ungraded(f"not graded: the program exited with code {exit_code}; the run is "
                         "stored as failed, and left out of later grades")
    if not earlier:
        return _ungraded("no grade yet: this is the first stored run of this command; run it "
                         "again to grade")
    if not comparable:
        n = len(earlier)
        return _ungraded(
            f"no grade yet: none of the {n} earlier run{'s' if n != 1 else ''} of this "
            f"command can be compared (complete, exit code 0, energy from "
            f"{record.provenance}); run it again to grade")
    median_j = statistics.median(comparable)
    energy_j = record.energy_j or 0.0
    ratio = energy_j / median_j
    letter = grade_letter(ratio)
    n = len(comparable)
    spread = _spread(comparable, median_j)
    if spread is None:
        noise = "one earlier run: how much its runs vary is not known yet"
    else:
        noise = f"the earlier runs spread {spread[0]:.2f}x-{spread[1]:.2f}x"
        if _within(spread, ratio):
            noise += ": this run is within it, no change beyond their own variation"
    return letter, ratio, median_j, spread, (
        f"grade {letter}: {ratio:.2f}x the median of {n} earlier run{'s' if n != 1 else ''} of "
        f"this command ({energy_j:.4g} J against {median_j:.4g} J; energy: "
        f"{record.provenance}); {noise}")


def _ungraded(message: str) -> _Graded:
    return None, None, None, None, message


def _spread(energies: list[float], median_j: float) -> tuple[float, float] | None:
    """The lowest and highest of ``energies`` over their median; None for fewer than two."""
    if len(energies) < 2:
        return None
    return min(energies) / median_j, max(energies) / median_j


def _within(spread: tuple[float, float] | None, ratio: float | None) -> bool | None:
    """Whether ``ratio`` lies within ``spread``, to two decimals as both are printed."""
    if spread is None or ratio is None:
        return None
    return round(spread[0], 2) <= round(ratio, 2) <= round(spread[1], 2)


def grade_run(store: Store, command: Sequence[str], measurement: Measurement, exit_code: int,
              *, cwd: str | None = None) -> CommandGrade:
    """Store the run of ``command`` that ``measurement`` measured, and grade it against the
    earlier runs of the same command (in ``cwd``, default the current folder) in ``store``."""
    cwd = os.getcwd() if cwd is None else cwd
    sweep_id = command_sweep_id(command, cwd)
    command_line = subprocess.list2cmdline(list(command))
    store.begin_sweep(sweep_id, project=PROJECT,
                      config={"measure": {"command": list(command), "cwd": cwd}})
    earlier = store.runs(sweep_id=sweep_id)
    extra: dict[str, Any] = {"command": list(command), "cwd": cwd, "exit_code": exit_code}
    if measurement.dynamic_j is not None:
        extra["dynamic_j"] = measurement.dynamic_j
        extra["idle_j"] = measurement.idle_j
    record = RunRecord.from_measurement(
        measurement,
        sweep_id=sweep_id,
        cell_key=f"run/{measurement.start:%Y%m%dT%H%M%S.%f}/{os.getpid()}",
        model_name=command_line,
        repetition=len(earlier),
        status="ok" if exit_code == 0 else "failed",
        error=None if exit_code == 0 else f"the program exited with code {exit_code}",
        extra=extra,
    )
    comparable = [float(r.energy_j or 0.0) for r in earlier
                  if _comparable(r, record.provenance)]
    letter, ratio, median_j, spread, message = _message(record, exit_code, earlier, comparable)
    run_id = store.write_run(record)
    store.end_sweep(sweep_id, "finished")
    return CommandGrade(letter=letter, ratio=ratio, energy_j=record.energy_j or 0.0,
                        median_j=median_j, earlier_runs=len(comparable),
                        stored_runs=len(earlier), provenance=record.provenance,
                        message=message, sweep_id=sweep_id, run_id=run_id, spread=spread)
