"""The errors wattprint raises.

Vendor errors (``OSError`` from sysfs, ``NVMLError`` from nvidia-ml-py) are translated at the
backend boundary into this small tree, always chained with ``raise ... from err``::

    WattprintError
    ├── SensorError                 a sensor could not be read
    │   ├── SensorUnavailable       a sensor the user asked for is not on this machine
    │   ├── SensorPermissionError   the OS refused to let us read it (also a PermissionError)
    │   └── CounterWrapError        a counter wrapped and its range is unknown
    ├── LocationError               an unknown country, zone or cloud region (also a ValueError)
    ├── ConfigError                 a bad argument or option (also a ValueError)
    ├── WindowError                 a window ended that was never begun, or begun twice
    ├── ModelError                  a model file is corrupt, unsupported or untrusted
    │   └── UntrustedModelError     code (a pickle, TorchScript, ...) given without trust=True
    ├── DatasetError                a dataset is unknown, empty or malformed (also a ValueError)
    ├── StoreError                  the results store cannot be opened, read or written
    ├── OutputError                 an output file cannot be written (also an OSError)
    └── MissingExtra                a framework is not installed (also an ImportError)

and one warning, :class:`PartialMeasurementWarning`: a figure returned as a bare number comes
from a partial measurement.
"""

from __future__ import annotations

import os

__all__ = [
    "ConfigError",
    "CounterWrapError",
    "DatasetError",
    "LocationError",
    "MissingExtra",
    "ModelError",
    "OutputError",
    "PartialMeasurementWarning",
    "SensorError",
    "SensorPermissionError",
    "SensorUnavailable",
    "StoreError",
    "UntrustedModelError",
    "WattprintError",
    "WindowError",
]


class WattprintError(Exception):
    """Base class of every error wattprint raises on purpose."""


class SensorError(WattprintError):
    """A sensor could not be read. Inside a window this marks the measurement partial."""


class SensorUnavailable(SensorError):
    """A sensor the user asked for is not present; ``fix`` says how to enable it, if known."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")
        self.reason = message
        self.fix = fix


class SensorPermissionError(SensorError, PermissionError):
    """Reading the sensor was refused by the OS; ``fix`` says how to grant access."""

    def __init__(self, message: str, *, fix: str) -> None:
        super().__init__(f"{message}\n  fix: {fix}")
        self.reason = message
        self.fix = fix


class CounterWrapError(SensorError):
    """A cumulative counter went backwards and its wrap range could not be read."""


class LocationError(WattprintError, ValueError):
    """An unknown country, grid zone or cloud region."""


class ConfigError(WattprintError, ValueError):
    """A bad argument or option, with the allowed values."""


class WindowError(WattprintError):
    """A measurement window was misused: ended without a begin, or begun twice under one name."""


class ModelError(WattprintError, ValueError):
    """A model could not be loaded: the message names the file, the reason and the formats."""


class UntrustedModelError(ModelError):
    """Something that runs code when loaded or called, given without ``trust=True``: a pickle,
    joblib, a full ``torch.save`` model, TorchScript, a TensorFlow SavedModel, Keras ``Lambda``
    code, Hugging Face ``auto_map`` code, or a ``model_class`` that is no ``torch.nn.Module``."""


class DatasetError(WattprintError, ValueError):
    """A dataset is unknown, empty or malformed."""


class StoreError(WattprintError):
    """The results store cannot be used: its folder is missing, the file is not a store or is
    from a newer wattprint, it stayed locked too long, the disk is full, or a sweep to resume
    is still being run by another process. The message names the file and the fix.
    """


class OutputError(WattprintError, OSError):
    """An output file (an export, a report, a label, ``measure --out``) cannot be written: its
    folder is missing or refuses new files, or the disk is full, or a file-size limit was hit.
    The message names the file and the reason; an existing file at that path is left as it was.
    """

    def __init__(self, message: str, *, path: os.PathLike[str] | str | None = None,
                 reason: str = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        if errno is not None:
            self.errno = errno


class MissingExtra(WattprintError, ImportError):
    """A framework wattprint needs for this is not installed; the message names the extra."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'wattprint[{extra}]'")
        self.extra = extra


class PartialMeasurementWarning(UserWarning):
    """A figure returned as a bare number (the joules of ``meter.evaluate``) comes from a
    partial measurement: a sensor failed inside its window, and the number misses what it
    would have read. The measurement, with its errors, is ``meter.last_measurement``. To make
    it an error: ``warnings.simplefilter("error", PartialMeasurementWarning)``."""
