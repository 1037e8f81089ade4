"""The core works without NumPy: measuring, storing, scoring, exporting and reporting.

NumPy comes with the extras that load models and data (``wattprint[sklearn]``, ``[torch]``,
``[onnx]``, ..., or ``wattprint[numpy]``); a core install is the meter, the sensors, the
footprint, the store, scores and reports. Each command here runs in a fresh interpreter in
which ``import numpy`` fails, as on a core install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Run the CLI with numpy (and what needs it) unimportable: sys.modules[name] = None makes
# ``import name`` raise ImportError and ``importlib.util.find_spec(name)`` return None.
_BLOCK = ("import sys\n"
          "for name in ('numpy', 'pandas', 'torch', 'onnxruntime', 'sklearn'):\n"
          "    sys.modules[name] = None\n")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = (_BLOCK + "from wattprint.cli import main\n"
            f"sys.argv = ['wattprint', *{list(args)!r}]\n"
            "try:\n    main()\nfinally:\n"
            "    assert 'numpy' not in [m for m, v in sys.modules.items() if v is not None]\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)


# Two models' inference runs, measured by a real meter and stored as the harness stores them.
_STORE_RUNS = _BLOCK + """
from wattprint import EnergyMeter, RunRecord, Store
meter = EnergyMeter()
with Store("core.db") as store:
    store.begin_sweep("s1", project="core", config={})
    for model, work in (("small", 20_000), ("large", 400_000)):
        for rep in range(2):
            with meter.window(model) as w:
                sum(range(work))
            store.write_run(RunRecord.from_measurement(
                w.measurement, sweep_id="s1", cell_key=f"{model}/inference/{rep}",
                model_name=model, variant="base", repetition=rep, dataset="counting",
                task="classification", hardware="CPU", phase="inference", num_samples=100))
    store.end_sweep("s1", "finished")
assert "numpy" not in [m for m, v in sys.modules.items() if v is not None]
"""


def test_measure_store_score_export_and_report_need_no_numpy(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _STORE_RUNS], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for _ in range(2):
        done = _cli(tmp_path, "measure", "--grade", "--db", "core.db", "--",
                    sys.executable, "-c", "sum(range(10000))")
        assert done.returncode == 0, done.stderr
    assert "grade" in done.stdout + done.stderr  # the summary goes to stderr, as perf stat
    done = _cli(tmp_path, "score", "--db", "core.db", "--json")
    assert done.returncode == 0, done.stderr
    rated = json.loads(done.stdout)
    assert {s["model"] for s in rated} >= {"small", "large"}, rated
    done = _cli(tmp_path, "export", "--db", "core.db", "--format", "json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert len(runs) == 6 and all(r["energy_j"] > 0 for r in runs)
    done = _cli(tmp_path, "report", "--db", "core.db", "--out", "report.html")
    assert done.returncode == 0, done.stderr
    assert "wattprint report" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(("call", "what"), [
    ("wattprint.load_model('m.onnx')", "models and datasets"),
    ("wattprint.load_dataset('digits')", "models and datasets"),
    ("import wattprint.sweep", "benchmark sweeps"),
    ("import wattprint.optimize", "optimizing models"),
])
def test_models_and_sweeps_without_numpy_name_the_extra(call: str, what: str) -> None:
    code = (_BLOCK + "import wattprint\nfrom wattprint.errors import MissingExtra\n"
            f"try:\n    {call}\nexcept MissingExtra as err:\n    print(err)\n"
            "else:\n    raise SystemExit('no MissingExtra')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == (f"{what} needs the 'numpy' extra: "
                                   "pip install 'wattprint[numpy]'")


def test_the_core_requirements_leave_numpy_to_the_extras() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                            .read_text())["project"]
    assert not any(dep.startswith("numpy") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    for extra in ("numpy", "torch", "torch-cpu", "onnx", "sklearn", "keras", "hf", "images",
                  "audio", "datasets"):
        assert any(dep.startswith("numpy") for dep in extras[extra]), extra
