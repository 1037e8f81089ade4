"""``Benchmark``: a config in, every cell measured and stored, a report out.

This joins the sweep runner (``sweep/``) to the results store (``store``); both are imported
when a benchmark runs, not before. :meth:`Benchmark.execute` returns the typed
:class:`BenchmarkResult` (the stored :class:`~wattprint.record.RunRecord` of each cell and
their :class:`~wattprint._summary.SweepSummary`); :meth:`Benchmark.run` returns its JSON view,
the documented report dict with ML-EcoLyzer's ``final_report.analysis_summary``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._summary import SweepSummary, summarize

if TYPE_CHECKING:
    from .meter import EnergyMeter
    from .record import RunRecord
    from .store import Store
    from .sweep.config import BenchConfig

__all__ = ["Benchmark", "BenchmarkResult"]


@dataclass(frozen=True, kw_only=True)
class BenchmarkResult:
    """What one benchmark run made: its ``sweep_id``, ``project``, the results store ``db``,
    the validated ``config`` (its dict form), every stored run of the sweep (``runs``, as the
    store reads them back), the ``exports`` written, and the sweep's ``summary``."""

    sweep_id: str
    project: str
    db: str
    config: Mapping[str, Any]
    runs: tuple[RunRecord, ...]
    exports: tuple[str, ...]
    summary: SweepSummary

    def _repr_html_(self) -> str:
        """The sweep and its summary for notebooks (``wattprint._html``)."""
        from ._html import benchmark_html

        return benchmark_html(self)

    def to_dict(self) -> dict[str, Any]:
        """The report as :meth:`Benchmark.run` documents it: ``sweep_id``, ``project``,
        ``db``, ``config``, ``runs`` (each run's JSON form), ``exports`` and
        ``final_report.analysis_summary`` (:meth:`SweepSummary.to_analysis_summary`)."""
        return {
            "sweep_id": self.sweep_id,
            "project": self.project,
            "db": self.db,
            "config": dict(self.config),
            "runs": [r.to_dict() for r in self.runs],
            "exports": list(self.exports),
            "final_report": {"analysis_summary": self.summary.to_analysis_summary()},
        }


class Benchmark:
    """A sweep over models x datasets x variants, declared once.

    ``Benchmark(config)`` takes a dict (the YAML's shape), a validated config, or a path to a
    YAML file; :meth:`from_yaml` reads a file. An invalid config raises
    :class:`~wattprint.errors.ConfigError` naming each bad field, before anything is stored.
    ``db`` overrides ``output.db`` and ``output_dir`` ``output.output_dir``; these may lie
    anywhere, while a YAML file's own must lie below the working directory or its folder.
    """

    def __init__(self, config: dict[str, Any] | BenchConfig | str | os.PathLike[str], *,
                 db: str | os.PathLike[str] | None = None,
                 output_dir: str | os.PathLike[str] | None = None) -> None:
        from .sweep.config import load_config

        self.config: BenchConfig = load_config(config, output={"db": db,
                                                               "output_dir": output_dir})
        self.db = Path(self.config.output.db)
        self._db_given = db is not None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *,
                  db: str | os.PathLike[str] | None = None,
                  output_dir: str | os.PathLike[str] | None = None) -> Benchmark:
        """The benchmark a YAML file declares."""
        return cls(Path(path), db=db, output_dir=output_dir)

    def run(self, *, resume: bool = False, progress: bool | None = None,
            meter: EnergyMeter | None = None,
            run_generated_code: bool = False) -> dict[str, Any]:
        """Measure every cell (with ``resume``, only those the last run of this config left),
        store each as it ends, write the configured exports, and return the report. Before
        the first cell, an ``output_dir`` that is a file, cannot be created or is not writable,
        and a results store that cannot be opened raise :class:`~wattprint.errors.ConfigError`
        naming each; nothing is stored then.

        The report holds ``sweep_id``, ``db``, ``runs`` (every stored row of the sweep),
        ``exports`` (files written) and ``final_report.analysis_summary`` with
        ``total_energy_kwh``, ``total_co2_emissions_kg``, ``total_water_l``, ``runs_ok``,
        ``runs_failed`` and ``models`` (one row per model variant and dataset). It is the
        JSON view of what :meth:`execute` returns. ``run_generated_code`` runs the tests of
        code task sets on the models' completions for their ``pass_rate`` (the model's output
        is run as you: see :mod:`wattprint.workloads.codegen`); a config file cannot ask it.
        """
        return self.execute(resume=resume, progress=progress, meter=meter,
                            run_generated_code=run_generated_code).to_dict()

    def execute(self, *, resume: bool = False, progress: bool | None = None,
                meter: EnergyMeter | None = None,
                run_generated_code: bool = False) -> BenchmarkResult:
        """As :meth:`run`, but the result typed: a :class:`BenchmarkResult` holding the
        stored :class:`~wattprint.record.RunRecord` of each cell and their
        :class:`~wattprint._summary.SweepSummary`."""
        from ._files import make_folder
        from .sweep.runner import run_sweep

        with self._open_store() as store:
            sweep_id = run_sweep(self.config, store, resume=resume, progress=progress,
                                 meter=meter, run_generated_code=run_generated_code)
            runs = store.runs(sweep_id=sweep_id)
            exports = []
            out_dir = Path(self.config.output.output_dir)
            for fmt in self.config.output.export_formats:
                make_folder(out_dir)
                path = out_dir / f"{sweep_id}.{fmt}"
                if fmt == "html":  # the report, as `wattprint report` writes it
                    from .report import write_report

                    write_report(self.db, sweep_id=sweep_id, out=path)
                else:
                    store.export(fmt, sweep_id=sweep_id, out=path)  # whole or not at all
                exports.append(str(path))
        return BenchmarkResult(
            sweep_id=sweep_id,
            project=self.config.project,
            db=str(self.db),
            config=self.config.to_dict(),
            runs=tuple(runs),
            exports=tuple(exports),
            summary=summarize(runs),
        )

    def _open_store(self) -> Store:
        """The results store, once the places results go are known to work: an
        ``output_dir`` that is a file, cannot be created or is not writable, and a store that
        cannot be opened are a :class:`~wattprint.errors.ConfigError` naming each, raised
        before any cell runs and before a new store file is made."""
        from ._files import folder_problem, store_problem
        from .errors import ConfigError, StoreError
        from .store import Store

        db_field = "db" if self._db_given else "output.db"
        problems = []
        folder = folder_problem(Path(self.config.output.output_dir))
        if folder is not None:
            problems.append(f"output.output_dir: {folder}")
        db = store_problem(self.db)
        if db is not None:
            problems.append(f"{db_field}: {db}")
        store = None
        if db is None and (not problems or self.db.exists()):  # opening makes no new file
            try:
                store = Store(self.db)
            except StoreError as err:
                problems.append(f"{db_field}: {err}")
        if problems:
            if store is not None:
                store.close()
            count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
            raise ConfigError(f"invalid config ({count}):\n"
                              + "\n".join(f"  {line}" for line in problems))
        assert store is not None
        return store
