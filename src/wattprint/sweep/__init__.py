"""Benchmark sweeps: the config, the built-in recipes, and the runner.

Importing this package is cheap: pydantic, PyYAML and the frameworks load with the module
that needs them, on first use of a name below.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .._numpy import require_numpy

require_numpy("benchmark sweeps")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import BenchConfig, config_hash, config_schema, load_config
    from .recipes import RECIPES, Recipe, make_recipe
    from .runner import SweepInterrupted, plan_cells, run_sweep

_LAZY = {
    "BenchConfig": ".config",
    "config_hash": ".config",
    "config_schema": ".config",
    "load_config": ".config",
    "RECIPES": ".recipes",
    "Recipe": ".recipes",
    "make_recipe": ".recipes",
    "SweepInterrupted": ".runner",
    "plan_cells": ".runner",
    "run_sweep": ".runner",
}

__all__ = [
    "RECIPES",
    "BenchConfig",
    "Recipe",
    "SweepInterrupted",
    "config_hash",
    "config_schema",
    "load_config",
    "make_recipe",
    "plan_cells",
    "run_sweep",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
