"""``wattprint demo``: a built-in benchmark on real data, from training to report.

On scikit-learn's ``digits`` (8x8 images of handwritten digits, shipped inside scikit-learn):
three scikit-learn models, a small CNN trained with torch, its int8 (torch dynamic) and pruned
variants, and the same CNN exported to ONNX with an int8 (ONNX Runtime static) variant. Every
cell's training, optimization and inference energy and accuracy go into the results database;
then the star table, an HTML report and an energy label per model.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["demo_config", "run_demo"]


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
             repetitions: int = 2, progress: bool | None = None) -> dict[str, Any]:
    """Run the demo benchmark and write its report and labels into ``out_dir``.

    Returns the benchmark report, with ``report_html`` and ``labels`` (paths) added. Each
    file is replaced whole or not at all; a failed write raises
    :class:`~wattprint.errors.OutputError`.
    """
    from ._files import make_folder
    from .report import write_label, write_report
    from .study import Benchmark

    folder = make_folder(out_dir)
    config = demo_config(db=db, output_dir=folder / "results", country=country,
                         repetitions=repetitions)
    report = Benchmark(config).run(progress=progress)
    sweep = report["sweep_id"]
    report["report_html"] = str(write_report(db, sweep_id=sweep, out=folder / "report.html"))
    labels = make_folder(folder / "labels")
    report["labels"] = []
    for row in report["final_report"]["analysis_summary"]["models"]:
        if row["repetitions"] == 0:
            continue
        label = row["model"] if row["parent"] is None else f"{row['model']}:{row['variant']}"
        name = label.replace(":", "-")
        path = write_label(label, task=row["task"], hardware=row["hardware"], db=db,
                           sweep_id=sweep, out=labels / f"{name}.svg")
        report["labels"].append(str(path))
    return report
