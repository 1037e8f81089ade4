"""CodeCarbon and Zeus in a venv of their own, for the benchmarks that compare with them.

The benchmarks that measure something these tools also do (a first measurement, a RAPL window,
an install, a loop of model calls measured as a whole) print their figures beside wattprint's.
They run in a separate venv, made here on first use with the pinned versions below (it needs
the package registry once; later runs reuse it): ``benchmarks/.peers-venv``, or the folder
named by ``WATTPRINT_PEERS_VENV``. Where it cannot be made, each benchmark says so in one line
and goes on without the comparison.

``python benchmarks/peers.py`` makes the venv and prints where it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import ROOT

#: The versions compared (those the issue measured against).
PINS = ("codecarbon==3.3.2", "zeus==0.16.0")
VENV = Path(os.environ.get("WATTPRINT_PEERS_VENV", ROOT / "benchmarks" / ".peers-venv"))
_STAMP = "wattprint-peers.txt"
_failed: str | None = None


def peer_python() -> str | None:
    """The peers' interpreter, making their venv on first use; None (said once) if it cannot."""
    global _failed
    if _failed is not None:
        return None
    python = VENV / "bin" / "python"
    stamp = VENV / _STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return str(python)
    print(f"  (making {VENV} with {', '.join(PINS)}: once, from the package registry)")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True,
                       capture_output=True, text=True, timeout=600)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True,
                       capture_output=True, text=True, timeout=1800)
    except subprocess.CalledProcessError as err:
        lines = (err.stderr or err.stdout or "").strip().splitlines()
        _failed = lines[-1] if lines else f"exit status {err.returncode}"
    except (OSError, subprocess.TimeoutExpired) as err:
        _failed = str(err)
    if _failed is not None:
        print(f"  CodeCarbon and Zeus not compared: their venv cannot be made ({_failed})")
        return None
    stamp.write_text("\n".join(PINS))
    return str(python)


def run_peer(script: str, *args: str, what: str) -> dict[str, Any] | None:
    """Run ``script`` in the peers' venv; the JSON object its last stdout line prints, or None
    (with one line saying why) where the venv or the script fails."""
    python = peer_python()
    if python is None:
        return None
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    try:
        done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True,
                              timeout=1200, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {what}: not compared (no answer in 1200 s)")
        return None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        print(f"  {what}: not compared ({lines[-1] if lines else f'exit {done.returncode}'})")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    where = peer_python()
    print(where or "not made")
    sys.exit(0 if where else 1)
