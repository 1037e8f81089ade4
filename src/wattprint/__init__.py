"""wattprint: what machine-learning work really costs in energy, carbon and water.

Measure a block of code::

    import wattprint

    meter = wattprint.EnergyMeter(country="DE")
    with meter.window("inference") as w:
        run_model()
    print(w.measurement.energy_j, w.measurement.footprint.co2_g)

Every figure carries its provenance: ``measurement.components["cpu"].measured`` is True only
for a hardware counter or power register; estimates say so.
"""

from __future__ import annotations

import logging

from ._footprint import Footprint, footprint
from ._version import __version__
from .errors import (
    ConfigError,
    CounterWrapError,
    LocationError,
    SensorError,
    SensorPermissionError,
    SensorUnavailable,
    WattprintError,
    WindowError,
)
from .measurement import ComponentEnergy, Measurement
from .meter import EnergyMeter, Window, measure
from .sensors import FakeSensor, detect

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ComponentEnergy",
    "ConfigError",
    "CounterWrapError",
    "EnergyMeter",
    "FakeSensor",
    "Footprint",
    "LocationError",
    "Measurement",
    "SensorError",
    "SensorPermissionError",
    "SensorUnavailable",
    "WattprintError",
    "Window",
    "WindowError",
    "__version__",
    "detect",
    "footprint",
    "measure",
]
