"""Sensor backends behind one interface, and :func:`detect`."""

from ._registry import backend_names, detect
from .base import CounterSensor, Detected, MissingSensor, PowerSensor, Sensor, Source
from .fake import FakeSensor

__all__ = [
    "CounterSensor",
    "Detected",
    "FakeSensor",
    "MissingSensor",
    "PowerSensor",
    "Sensor",
    "Source",
    "backend_names",
    "detect",
]
