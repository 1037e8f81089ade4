"""Build hook: compiles wattprint's native edge reader, ``src/wattprint/sensors/_edge.c``.

A window edge reads its RAPL counters through it in one call, about a microsecond less per
window of four counters than one ``os.pread`` each (``benchmarks/bench_window.py`` prints both).
It is built with the compiler Python was built with (``sysconfig``'s ``LDSHARED``) where that is
found. Where it is not, where compiling fails, or with ``WATTPRINT_PURE_PYTHON=1`` set, the
wheel is pure Python: the same readings, in Python. An editable install (``pip install -e``,
as ``make test`` does) builds it beside its source, where the package is imported from.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src", "wattprint", "sensors", "_edge.c")
PACKAGE_DIR = "wattprint/sensors"


def compile_command(source: Path, target: Path) -> list[str] | None:
    """The command that builds ``source`` into the extension module ``target``, or None where
    this Python names no compiler to build extensions with (Windows builds: pure Python)."""
    ldshared = sysconfig.get_config_var("LDSHARED")
    include = sysconfig.get_paths().get("include")
    if not ldshared or not include or not Path(include, "Python.h").is_file():
        return None
    command = shlex.split(ldshared)
    if shutil.which(command[0]) is None:
        return None
    return [*command, "-O2", "-fPIC", f"-I{include}", str(source), "-o", str(target)]


def build(source: Path, target: Path) -> str | None:
    """Compile ``source`` into ``target``: None when done, else why not."""
    command = compile_command(source, target)
    if command is None:
        return "no C compiler for Python extensions found"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{command[0]} failed: {err}"
    if done.returncode != 0 or not target.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"{command[0]} failed ({done.returncode}): {' / '.join(tail)}"
    return None


class NativeEdgeReader(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._temp: str | None = None
        if self.target_name != "wheel":
            return
        source = Path(self.root, SOURCE)
        name = "_edge" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        editable = version == "editable"
        if editable:  # imported from src/: built there, and an old build removed first
            target = source.with_name(name)
            target.unlink(missing_ok=True)
        else:
            self._temp = tempfile.mkdtemp(prefix="wattprint-native-")
            target = Path(self._temp, name)
        if os.environ.get("WATTPRINT_PURE_PYTHON", "0") not in ("", "0"):
            self.app.display_info("wattprint: WATTPRINT_PURE_PYTHON is set: the edge reader "
                                  "stays pure Python")
            return
        why = build(source, target)
        if why is not None:
            self.app.display_warning(f"wattprint: the native edge reader is not built ({why}); "
                                     f"RAPL windows read their counters in Python, the same "
                                     f"figures a microsecond slower")
            return
        if not editable:
            build_data["force_include"][str(target)] = f"{PACKAGE_DIR}/{name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
