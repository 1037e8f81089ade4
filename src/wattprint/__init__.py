"""wattprint: what machine-learning work really costs in energy, carbon and water.

Measure a block of code::

    import wattprint

    meter = wattprint.EnergyMeter(country="DE")
    with meter.window("inference") as w:
        run_model()
    print(w.measurement.energy_j, w.measurement.footprint.co2_g)

Every figure carries its provenance: ``measurement.components["cpu"].measured`` is True only
for a hardware counter or power register; estimates say so.

Importing the package is cheap: the modules behind the names below load on first use.
"""

from __future__ import annotations

from ._lazy import lazy_exports
from ._version import __version__
from .errors import (
    ConfigError,
    CounterWrapError,
    DatasetError,
    LocationError,
    MissingExtra,
    ModelError,
    SensorError,
    SensorPermissionError,
    SensorUnavailable,
    StoreError,
    UntrustedModelError,
    WattprintError,
    WindowError,
)

TYPE_CHECKING = False  # not from typing: importing typing costs milliseconds here
if TYPE_CHECKING:
    from ._energy_score import measure_energy
    from .footprint import Footprint, Site, footprint
    from .integrations.codecarbon import track_emissions as track_emissions
    from .measurement import ComponentEnergy, Measurement
    from .meter import EnergyMeter, Window, measure
    from .record import Quality, RunRecord, quality
    from .score import calculate_scores, print_scores
    from .sensors import FakeSensor, detect
    from .store import Store
    from .study import Benchmark
    from .workloads import (
        Dataset,
        Model,
        load_dataset,
        load_model,
        measure_training,
        register_format,
    )

__all__ = [
    "Benchmark",
    "ComponentEnergy",
    "ConfigError",
    "CounterWrapError",
    "Dataset",
    "DatasetError",
    "EnergyMeter",
    "FakeSensor",
    "Footprint",
    "LocationError",
    "Measurement",
    "MissingExtra",
    "Model",
    "ModelError",
    "Quality",
    "RunRecord",
    "SensorError",
    "SensorPermissionError",
    "SensorUnavailable",
    "Site",
    "Store",
    "StoreError",
    "UntrustedModelError",
    "WattprintError",
    "Window",
    "WindowError",
    "__version__",
    "calculate_scores",
    "detect",
    "footprint",
    "load_dataset",
    "load_model",
    "measure",
    "measure_energy",
    "measure_training",
    "print_scores",
    "quality",
    "register_format",
    "track_emissions",
]

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "ComponentEnergy": ".measurement",
    "Measurement": ".measurement",
    "EnergyMeter": ".meter",
    "Window": ".meter",
    "measure": ".meter",
    "Benchmark": ".study",
    "Store": ".store",
    "RunRecord": ".record",
    "Quality": ".record",
    "quality": ".record",
    "calculate_scores": ".score",
    "print_scores": ".score",
    "Footprint": ".footprint",
    "Site": ".footprint",
    "FakeSensor": ".sensors",
    "detect": ".sensors",
    "Dataset": ".workloads",
    "Model": ".workloads",
    "load_dataset": ".workloads",
    "load_model": ".workloads",
    "measure_energy": "._energy_score",
    "measure_training": ".workloads",
    "register_format": ".workloads",
    # CodeCarbon's decorator, for people switching over.
    "track_emissions": ".integrations.codecarbon",
    # `%load_ext wattprint` (IPython imports nothing of it until then; not in __all__).
    "load_ipython_extension": ".integrations.notebook",
    "unload_ipython_extension": ".integrations.notebook",
}


_lazy_getattr, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)


def __getattr__(name: str) -> object:
    if name == "footprint":
        # The public module, which is callable: wattprint.footprint(joules, country="DE")
        # calls the function, wattprint.footprint.Site is the module's. Importing it sets
        # the package's attribute to the module itself.
        from ._lazy import import_module

        return import_module(".footprint", __name__)
    return _lazy_getattr(name)
