"""Models, datasets, and the energy of inference and training over them.

Frameworks are imported only when a model of theirs is loaded.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .datasets import BUILTIN_DATASETS, Dataset, as_dataset, load_dataset
    from .hardware import PROFILES, HardwareProfile
    from .harness import measure_energy, measure_training
    from .model import InputSpec, Model
    from .registry import load_model, register_format, supported_formats

_LAZY = {
    "BUILTIN_DATASETS": ".datasets",
    "Dataset": ".datasets",
    "as_dataset": ".datasets",
    "load_dataset": ".datasets",
    "PROFILES": ".hardware",
    "HardwareProfile": ".hardware",
    "measure_energy": ".harness",
    "measure_training": ".harness",
    "InputSpec": ".model",
    "Model": ".model",
    "load_model": ".registry",
    "register_format": ".registry",
    "supported_formats": ".registry",
}

__all__ = [
    "BUILTIN_DATASETS",
    "PROFILES",
    "Dataset",
    "HardwareProfile",
    "InputSpec",
    "Model",
    "as_dataset",
    "load_dataset",
    "load_model",
    "measure_energy",
    "measure_training",
    "register_format",
    "supported_formats",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wattprint.workloads' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
