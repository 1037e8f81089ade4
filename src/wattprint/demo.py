"""``wattprint demo``: a built-in benchmark on real data, from training to report.

On scikit-learn's ``digits`` (8x8 images of handwritten digits, shipped inside scikit-learn):
three scikit-learn models, a small CNN trained with torch, its int8 (torch dynamic) and pruned
variants, and the same CNN exported to ONNX with an int8 (ONNX Runtime static) variant. Every
cell's training, optimization and inference energy and accuracy go into the results database;
then the star table, an HTML report and an energy label per model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import BenchmarkResult

__all__ = ["DemoResult", "demo_config", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo made: the benchmark's result, the HTML report and one energy label per
    rated model."""

    benchmark: BenchmarkResult
    report_html: Path
    labels: tuple[Path, ...]

    def to_dict(self) -> dict[str, Any]:
        """The benchmark's report (:meth:`~wattprint.study.BenchmarkResult.to_dict`) with
        ``report_html`` and ``labels`` (paths, as text) added."""
        return {**self.benchmark.to_dict(), "report_html": str(self.report_html),
                "labels": [str(path) for path in self.labels]}


def demo_config(*, db: str | os.PathLike[str] = "wattprint.db",
                output_dir: str | os.PathLike[str] = "results",
                country: str | None = None, repetitions: int = 2) -> dict[str, Any]:
    """The demo's benchmark config, as a dict in the shape of a YAML config."""
    location: dict[str, Any] = {} if country is None else {"country": country}
    return {
        "project": "wattprint-demo",
        "models": [
            {"name": "logreg", "source": "sklearn:LogisticRegression"},
            {"name": "svc", "source": "sklearn:SVC"},
            {"name": "forest", "source": "sklearn:RandomForestClassifier"},
            {"name": "cnn", "source": "torch:SmallCNN",
             "quantization": {"enabled": True, "method": "dynamic"},
             "pruning": {"enabled": True, "method": "l1_unstructured", "amount": 0.5}},
            {"name": "cnn-onnx", "source": "torch:SmallCNN", "export": "onnx",
             "quantization": {"enabled": True, "method": "static"}},
        ],
        "datasets": [{"name": "digits", "task": "classification", "split": "test"}],
        "monitoring": {"repetitions": repetitions, "warmup": 10, "batch_size": 1},
        "location": location,
        "output": {"export_formats": ["json", "csv"], "output_dir": str(output_dir),
                   "db": str(db)},
    }


def run_demo(*, db: str | os.PathLike[str] = "wattprint.db",
             out_dir: str | os.PathLike[str] = ".", country: str | None = None,
             repetitions: int = 2, progress: bool | None = None) -> DemoResult:
    """Run the demo benchmark and write its report and labels into ``out_dir``.

    Returns a :class:`DemoResult`: the benchmark's result and the paths of the report and the
    labels (:meth:`DemoResult.to_dict` is the benchmark report with ``report_html`` and
    ``labels`` added). Each file is replaced whole or not at all; a failed write raises
    :class:`~wattprint.errors.OutputError`.
    """
    from ._files import make_folder
    from .report import write_label, write_report
    from .study import Benchmark

    folder = make_folder(out_dir)
    config = demo_config(db=db, output_dir=folder / "results", country=country,
                         repetitions=repetitions)
    result = Benchmark(config).execute(progress=progress)
    sweep = result.sweep_id
    report_html = write_report(db, sweep_id=sweep, out=folder / "report.html")
    labels_dir = make_folder(folder / "labels")
    labels = []
    for row in result.summary.models:
        if row.repetitions == 0:
            continue
        path = write_label(row.label, task=row.task, hardware=row.hardware, db=db,
                           sweep_id=sweep, out=labels_dir / f"{row.label.replace(':', '-')}.svg")
        labels.append(path)
    return DemoResult(result, report_html, tuple(labels))
