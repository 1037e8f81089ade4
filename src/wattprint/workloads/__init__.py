"""Models, datasets, and the energy of inference and training over them.

Frameworks are imported only when a model of theirs is loaded.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .._numpy import require_numpy

require_numpy("models and datasets")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..sensors.hardware import PROFILES, HardwareProfile
    from .datasets import BUILTIN_DATASETS, Dataset, as_dataset, load_dataset
    from .harness import measure_inference, measure_training
    from .model import InputSpec, Model
    from .registry import load_model, register_format, supported_formats

_LAZY = {
    "BUILTIN_DATASETS": ".datasets",
    "Dataset": ".datasets",
    "as_dataset": ".datasets",
    "load_dataset": ".datasets",
    "PROFILES": "..sensors.hardware",
    "HardwareProfile": "..sensors.hardware",
    "measure_inference": ".harness",
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
    "measure_inference",
    "measure_training",
    "register_format",
    "supported_formats",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
