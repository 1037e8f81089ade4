"""Benchmark sweeps: the config, the built-in recipes, and the runner.

Importing this package is cheap: pydantic, PyYAML and the frameworks load with the module
that needs them, on first use of a name below.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wattprint.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
