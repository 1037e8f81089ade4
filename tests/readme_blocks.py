"""The README's tagged examples, for the tests of the features they show.

The README's plain ``python`` blocks all run in ``tests/test_readme.py``. An example that needs
a framework or a setting of its own is fenced as ``python <tag>`` (highlighted as Python all
the same) and runs in the test of its feature: ``exec(readme_block("<tag>"), namespace)``.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(tag: str) -> str:
    """The one README block fenced as ``python <tag>``, as source code."""
    blocks = re.findall(rf"```python {re.escape(tag)}\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, f"README has {len(blocks)} blocks fenced as 'python {tag}'"
    return str(blocks[0])
