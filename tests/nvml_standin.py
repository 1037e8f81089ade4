"""A stand-in for ``pynvml`` (nvidia-ml-py): the part of its API that wattprint uses.

``make_nvml(gpus=[StandinGPU(...)])`` returns a module object with the same names, argument
types, return types, units and error class as the real ``pynvml``:

* ``nvmlInit()`` / ``nvmlShutdown()``: reference counted, as in NVML; every other call raises
  ``NVMLError(NVML_ERROR_UNINITIALIZED)`` while the count is 0.
* ``nvmlDeviceGetCount() -> int``; ``nvmlDeviceGetHandleByIndex(i)`` and
  ``nvmlDeviceGetHandleByUUID(uuid)`` return opaque handles.
* ``nvmlDeviceGetName(h)``, ``nvmlDeviceGetUUID(h)`` -> ``str`` (``bytes`` with
  ``legacy_bytes=True``, as nvidia-ml-py before 11.515 returned).
* ``nvmlDeviceGetTotalEnergyConsumption(h) -> int`` millijoules;
  ``nvmlDeviceGetPowerUsage(h) -> int`` milliwatts; ``nvmlDeviceGetEnforcedPowerLimit(h) -> int``
  milliwatts; ``nvmlDeviceGetUtilizationRates(h)`` -> an object with ``.gpu`` and ``.memory``
  percent.
* ``NVMLError(value)`` with ``.value``; ``NVMLError(3)`` is an ``NVMLError_NotSupported``, as in
  pynvml; ``NVML_ERROR_*`` constants with the real numbers.

The energy counter advances from the GPU's ``power_mw`` and the clock (``time.perf_counter``
unless given): at every read, ``energy_mj += power_mw x seconds since the last read``, so counter
and power agree. Tests may set ``gpu.energy_mj`` and ``gpu.power_mw`` at any time.
``module.standin`` holds the state tests look at (init and shutdown counts, the GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like ``pynvml.NVMLError``: ``NVMLError(code)`` is an instance of the code's subclass."""

    _subclasses: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - filled once below
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._subclasses.get(value, NVMLError)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _subclass_name(constant: str) -> str:
    # NVML_ERROR_NOT_SUPPORTED -> NVMLError_NotSupported, as pynvml names them.
    words = constant.removeprefix("NVML_ERROR_").split("_")
    return "NVMLError_" + "".join(w.capitalize() for w in words)


_ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _constant, _code in list(globals().items()):
    if _constant.startswith("NVML_ERROR_"):
        _cls = type(_subclass_name(_constant), (NVMLError,), {})
        NVMLError._subclasses[_code] = _cls
        _ERROR_CLASSES[_cls.__name__] = _cls


@dataclass
class StandinGPU:
    """One GPU of the stand-in. ``None`` for a reading means NVML says Not Supported."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-8f2c1d3e-0000-4000-8000-000000000000"
    #: Power draw in milliwatts; also what the energy counter advances by.
    power_mw: int = 300_000
    #: The energy counter in millijoules; it advances by ``power_mw`` x elapsed seconds.
    energy_mj: float = 0.0
    supports_energy: bool = True
    supports_power: bool = True
    #: ``nvmlDeviceGetUtilizationRates().gpu``, percent; None: Not Supported.
    util_percent: int | None = 50
    #: ``nvmlDeviceGetEnforcedPowerLimit``, milliwatts; None: Not Supported.
    power_limit_mw: int | None = 700_000
    #: After this many successful readings (energy, power or utilisation, the probes of
    #: ``discover`` included), every reading raises ``NVMLError(fail_error)``.
    fail_after_reads: int | None = None
    fail_error: int = NVML_ERROR_GPU_IS_LOST
    #: ``nvmlDeviceGetHandleByIndex`` raises ``NVMLError(handle_error)`` for this GPU.
    handle_error: int | None = None
    reads: int = field(default=0, init=False)
    _last_t: float | None = field(default=None, init=False, repr=False)


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class Utilization:
    """Like ``pynvml.c_nvmlUtilization_t``: percent of time busy over the last sample period."""

    gpu: int
    memory: int


@dataclass
class StandinState:
    gpus: list[StandinGPU]
    clock: Callable[[], float]
    init_error: int | None = None
    legacy_bytes: bool = False
    init_count: int = 0
    shutdown_count: int = 0
    refcount: int = 0

    def gpu(self, handle: Any) -> StandinGPU:
        self.check_init()
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

    def check_init(self) -> None:
        if self.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def reading(self, gpu: StandinGPU, supported: bool) -> None:
        """Count one reading; raise as the GPU is configured to."""
        if gpu.fail_after_reads is not None and gpu.reads >= gpu.fail_after_reads:
            raise NVMLError(gpu.fail_error)
        if not supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        gpu.reads += 1

    def advance(self, gpu: StandinGPU) -> None:
        now = self.clock()
        if gpu._last_t is not None:
            gpu.energy_mj += gpu.power_mw * (now - gpu._last_t)
        gpu._last_t = now

    def text(self, value: str) -> str | bytes:
        return value.encode() if self.legacy_bytes else value


def make_nvml(
    gpus: Sequence[StandinGPU] = (),
    *,
    init_error: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    legacy_bytes: bool = False,
) -> types.ModuleType:
    """A ``pynvml``-like module with these GPUs, NVML index = position in ``gpus``.

    ``init_error``: ``nvmlInit`` raises ``NVMLError(init_error)``, as with no driver
    (``NVML_ERROR_LIBRARY_NOT_FOUND``) or an unloaded one (``NVML_ERROR_DRIVER_NOT_LOADED``).
    """
    state = StandinState(list(gpus), clock, init_error, legacy_bytes)
    for gpu in state.gpus:
        state.advance(gpu)  # the counter starts now

    def nvmlInit() -> None:
        if state.init_error is not None:
            raise NVMLError(state.init_error)
        state.init_count += 1
        state.refcount += 1

    def nvmlShutdown() -> None:
        state.check_init()
        state.shutdown_count += 1
        state.refcount -= 1

    def nvmlDeviceGetCount() -> int:
        state.check_init()
        return len(state.gpus)

    def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
        state.check_init()
        if not 0 <= index < len(state.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        error = state.gpus[index].handle_error
        if error is not None:
            raise NVMLError(error)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(uuid: str | bytes) -> _Handle:
        state.check_init()
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for index, gpu in enumerate(state.gpus):
            if gpu.uuid == text:
                return _Handle(index)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetName(handle: Any) -> str | bytes:
        return state.text(state.gpu(handle).name)

    def nvmlDeviceGetUUID(handle: Any) -> str | bytes:
        return state.text(state.gpu(handle).uuid)

    def nvmlDeviceGetTotalEnergyConsumption(handle: Any) -> int:
        gpu = state.gpu(handle)
        state.reading(gpu, gpu.supports_energy)
        state.advance(gpu)
        return int(gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(handle: Any) -> int:
        gpu = state.gpu(handle)
        state.reading(gpu, gpu.supports_power)
        state.advance(gpu)
        return gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(handle: Any) -> int:
        gpu = state.gpu(handle)
        if gpu.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_limit_mw

    def nvmlDeviceGetUtilizationRates(handle: Any) -> Utilization:
        gpu = state.gpu(handle)
        state.reading(gpu, gpu.util_percent is not None)
        assert gpu.util_percent is not None
        return Utilization(gpu=gpu.util_percent, memory=0)

    module = types.ModuleType("pynvml_standin", "A stand-in for pynvml, for tests.")
    namespace: dict[str, Any] = {
        name: value for name, value in globals().items() if name.startswith("NVML_")
    }
    namespace.update(_ERROR_CLASSES)
    namespace.update(
        NVMLError=NVMLError,
        nvmlInit=nvmlInit,
        nvmlShutdown=nvmlShutdown,
        nvmlDeviceGetCount=nvmlDeviceGetCount,
        nvmlDeviceGetHandleByIndex=nvmlDeviceGetHandleByIndex,
        nvmlDeviceGetHandleByUUID=nvmlDeviceGetHandleByUUID,
        nvmlDeviceGetName=nvmlDeviceGetName,
        nvmlDeviceGetUUID=nvmlDeviceGetUUID,
        nvmlDeviceGetTotalEnergyConsumption=nvmlDeviceGetTotalEnergyConsumption,
        nvmlDeviceGetPowerUsage=nvmlDeviceGetPowerUsage,
        nvmlDeviceGetEnforcedPowerLimit=nvmlDeviceGetEnforcedPowerLimit,
        nvmlDeviceGetUtilizationRates=nvmlDeviceGetUtilizationRates,
        standin=state,
    )
    module.__dict__.update(namespace)
    return module


def cli_with_gpus(gpus: str, *args: str, cwd: str | os.PathLike[str] | None = None,
                  ) -> subprocess.CompletedProcess[str]:
    """``wattprint *args`` run as a user runs it, in a child Python whose ``pynvml`` is this
    stand-in with the GPUs ``gpus`` (the source of a list, e.g. ``"[StandinGPU(power_mw=0)]"``),
    on a wide terminal."""
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from nvml_standin import StandinGPU, make_nvml; "
            f"sys.modules['pynvml'] = make_nvml({gpus}); "
            "from wattprint.cli import main; sys.argv[0] = 'wattprint'; main()")
    return subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "1000"})
