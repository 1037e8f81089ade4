"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(tmp_path: Path) -> None:
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
