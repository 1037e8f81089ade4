"""Size of the core install: ``pip install wattprint`` (no extra), site-packages over a bare
venv's, beside NumPy's own size (which the core no longer pulls in).

Needs the package registry (pip installs the core's requirements into a temporary venv).
CodeCarbon's and Zeus's installs (the versions ``peers.py`` pins) are measured the same way,
beside it. Floor: 40 MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, verdict
from peers import PINS

FLOOR_MIB = 40.0


def tree_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages")) or [venv / "Lib" / "site-packages"]
    return found[0]


def make_venv(where: Path, *packages: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / ("Scripts" if os.name == "nt" else "bin") / "python"
    if packages:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir",
                        *packages], check=True)
    return site_packages(where)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        bare = tree_mib(make_venv(Path(tmp) / "bare"))
        core_site = make_venv(Path(tmp) / "core", str(ROOT))
        core = tree_mib(core_site) - bare
        has_numpy = (core_site / "numpy").is_dir()
        numpy = tree_mib(make_venv(Path(tmp) / "numpy", "numpy")) - bare
        peers: dict[str, float | str] = {}
        for pin in PINS:  # each in a venv of its own, as a user would install it
            name = pin.split("==")[0]
            try:
                peers[pin] = tree_mib(make_venv(Path(tmp) / name, pin)) - bare
            except subprocess.CalledProcessError as err:
                peers[pin] = f"not compared: pip install {pin} failed ({err.returncode})"
    print("core install, site-packages over a bare venv")
    print(f"  wattprint (no extra)   {core:7.1f} MiB   numpy installed: {has_numpy}")
    print(f"  numpy alone            {numpy:7.1f} MiB   (comes with the framework extras)")
    for pin, size in peers.items():
        if isinstance(size, str):
            print(f"  {pin:<22} {size}")
        else:
            print(f"  {pin:<22} {size:7.1f} MiB   = {size / core:.1f}x wattprint's")
    print(f"  floor: core <= {FLOOR_MIB:.0f} MiB -> {verdict(core <= FLOOR_MIB)}")
    return {"core_mib": core, "numpy_mib": numpy}


if __name__ == "__main__":
    main()
