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
    │   └── UntrustedModelError     an unsafe format (pickle) given without trust=True
    ├── DatasetError                a dataset is unknown, empty or malformed (also a ValueError)
    ├── StoreError                  the results store cannot be opened, read or written
    └── MissingExtra                a framework is not installed (also an ImportError)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CounterWrapError",
    "DatasetError",
    "LocationError",
    "MissingExtra",
    "ModelError",
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
    """An unsafe format (pickle, joblib, a full ``torch.save`` model) without ``trust=True``."""


class DatasetError(WattprintError, ValueError):
    """A dataset is unknown, empty or malformed."""


class StoreError(WattprintError):
    """The results store cannot be used: its folder is missing, the file is not a store or is
    from a newer wattprint, or it stayed locked too long. The message names the file and the fix.
    """


class MissingExtra(WattprintError, ImportError):
    """A framework wattprint needs for this is not installed; the message names the extra."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'wattprint[{extra}]'")
        self.extra = extra
