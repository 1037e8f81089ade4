"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples save models in the working folder
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    calls: list[str] = []
    namespace: dict[str, object] = {
        # What the examples leave to the reader: the user's own work.
        "run_model": lambda: calls.append("run_model"),
        "load_data": lambda: calls.append("load_data"),
        "batch": [1, 2, 3],
        "epochs": 2,
        "loader": range(3),
        "step": lambda b: calls.append("step"),
    }
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert calls.count("step") == 6 and "run_model" in calls
    m = namespace["m"]
    assert m.energy_j >= 0 and m.footprint.co2_g >= 0  # type: ignore[attr-defined]
    fp = namespace["fp"]
    assert fp.kwh == 1.0 and "FR" in fp.location  # type: ignore[attr-defined]
    result = namespace["result"]
    assert result["accuracy"] > 0.9 and result["num_samples"] == 500  # type: ignore[index]
    run = namespace["run"]
    assert len(run["epochs"]) == 4 and "prediction" in run["epochs"][-1]  # type: ignore[index]
    image_scores = namespace["image_scores"]
    assert sorted(s.model for s in image_scores) == ["forest", "logreg"]  # type: ignore[attr-defined]
    runs = namespace["runs"]
    assert {r.model_name for r in runs} == {"forest", "logreg"}  # type: ignore[attr-defined]
    scores = namespace["scores"]
    assert sorted(s.model for s in scores) == ["forest", "logreg"]  # type: ignore[attr-defined]
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert (tmp_path / "logreg.svg").read_text().lstrip().startswith("<svg")
