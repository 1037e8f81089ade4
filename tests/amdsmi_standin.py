"""A stand-in for ``amdsmi`` (ROCm's AMD SMI Python package): the part of its API wattprint uses.

``make_amdsmi(gpus=[StandinAmdGPU(...)])`` returns a module object with the same names,
return shapes, units and error classes as the real ``amdsmi`` (``amdsmi_interface.py``):

* ``amdsmi_init()`` / ``amdsmi_shut_down()``; every other call raises
  ``AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)`` while not initialised.
* ``amdsmi_get_processor_handles() -> list`` of opaque handles, in PCI order.
* ``amdsmi_get_gpu_asic_info(h) -> dict`` with ``market_name`` (``"AMD Instinct MI300X"``);
  ``amdsmi_get_gpu_device_uuid(h) -> str``.
* ``amdsmi_get_energy_count(h) -> {"energy_accumulator": int, "power": int (the same, its
  name before ROCm 6.1), "counter_resolution": float (µJ per tick), "timestamp": int (ns)}``.
* ``amdsmi_get_power_info(h) -> dict`` with ``current_socket_power`` and
  ``average_socket_power`` in watts (``"N/A"`` where the GPU has none), ``gfx_voltage``,
  ``soc_voltage``, ``mem_voltage`` (mV) and ``power_limit`` (W).
* ``AmdSmiException`` > ``AmdSmiLibraryException`` (``err_code``, ``err_info``), and
  ``AMDSMI_STATUS_*`` codes.

The accumulator advances from the GPU's ``power_w`` and the clock (``time.perf_counter``
unless given): ``ticks += power_w x seconds / resolution``, so accumulator and power agree.
Tests may set ``gpu.ticks`` (a wrap: near ``2**32`` or ``2**64``) and ``gpu.power_w`` at any
time. ``module.standin`` holds the state tests look at.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FILE_ERROR = 4
AMDSMI_STATUS_NO_PERM = 5
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 38
AMDSMI_STATUS_NOT_FOUND = 43
AMDSMI_STATUS_UNEXPECTED_DATA = 44

NA = "N/A"


class AmdSmiException(Exception):
    """Like ``amdsmi.AmdSmiException``: the base of every error AMD SMI raises."""


class AmdSmiLibraryException(AmdSmiException):
    """Like ``amdsmi.AmdSmiLibraryException``: a failed call, with ``err_code``."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = f"AMDSMI_STATUS {err_code}"

    def __str__(self) -> str:
        return f"An error occurred with code: {self.err_code}({self.err_info})"


@dataclass
class StandinAmdGPU:
    """One GPU of the stand-in."""

    market_name: str = "AMD Instinct MI300X"
    uuid: str = "1fff74a1-0000-1000-80d3-c5fca3cb9a5e"
    #: Socket power in watts; also what the accumulator advances by.
    power_w: float = 400.0
    #: The energy accumulator, in ticks of ``resolution_uj``.
    ticks: float = 0.0
    resolution_uj: float = 15.259
    supports_energy: bool = True
    supports_power: bool = True
    #: After this many successful readings (energy or power, the probes of ``discover``
    #: included), every reading raises ``AmdSmiLibraryException(fail_error)``.
    fail_after_reads: int | None = None
    fail_error: int = AMDSMI_STATUS_DRIVER_NOT_LOADED
    reads: int = field(default=0, init=False)
    _last_t: float | None = field(default=None, init=False, repr=False)


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass
class StandinState:
    gpus: list[StandinAmdGPU]
    clock: Callable[[], float]
    init_error: int | None = None
    initialised: bool = False
    init_count: int = 0
    shutdown_count: int = 0

    def gpu(self, handle: Any) -> StandinAmdGPU:
        if not self.initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        return self.gpus[handle.index]

    def reading(self, gpu: StandinAmdGPU, supported: bool) -> None:
        if gpu.fail_after_reads is not None and gpu.reads >= gpu.fail_after_reads:
            raise AmdSmiLibraryException(gpu.fail_error)
        if not supported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        gpu.reads += 1

    def advance(self, gpu: StandinAmdGPU) -> None:
        now = self.clock()
        if gpu._last_t is not None:
            gpu.ticks += gpu.power_w * (now - gpu._last_t) * 1e6 / gpu.resolution_uj
        gpu._last_t = now


def make_amdsmi(
    gpus: Sequence[StandinAmdGPU] = (),
    *,
    init_error: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> types.ModuleType:
    """An ``amdsmi``-like module with these GPUs, index = position in ``gpus``."""
    state = StandinState(list(gpus), clock, init_error)
    for gpu in state.gpus:
        state.advance(gpu)

    def amdsmi_init(flags: int = 0) -> None:
        if state.init_error is not None:
            raise AmdSmiLibraryException(state.init_error)
        state.initialised = True
        state.init_count += 1

    def amdsmi_shut_down() -> None:
        if not state.initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        state.initialised = False
        state.shutdown_count += 1

    def amdsmi_get_processor_handles() -> list[_Handle]:
        if not state.initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        return [_Handle(i) for i in range(len(state.gpus))]

    def amdsmi_get_gpu_asic_info(handle: Any) -> dict[str, Any]:
        gpu = state.gpu(handle)
        return {"market_name": gpu.market_name, "vendor_id": "0x1002", "device_id": "0x74a1",
                "rev_id": "0x00", "asic_serial": "0x0", "oam_id": handle.index}

    def amdsmi_get_gpu_device_uuid(handle: Any) -> str:
        return state.gpu(handle).uuid

    def amdsmi_get_energy_count(handle: Any) -> dict[str, Any]:
        gpu = state.gpu(handle)
        state.reading(gpu, gpu.supports_energy)
        state.advance(gpu)
        ticks = int(gpu.ticks) % (1 << 64)
        return {"energy_accumulator": ticks, "power": ticks,
                "counter_resolution": gpu.resolution_uj,
                "timestamp": int(state.clock() * 1e9)}

    def amdsmi_get_power_info(handle: Any) -> dict[str, Any]:
        gpu = state.gpu(handle)
        state.reading(gpu, True)
        watts: Any = int(gpu.power_w) if gpu.supports_power else NA
        return {"current_socket_power": watts, "average_socket_power": watts,
                "gfx_voltage": 800, "soc_voltage": 750, "mem_voltage": 1100,
                "power_limit": 750}

    module = types.ModuleType("amdsmi_standin", "A stand-in for amdsmi, for tests.")
    module.__dict__.update(
        {name: value for name, value in globals().items() if name.startswith("AMDSMI_")}
    )
    module.__dict__.update(
        AmdSmiException=AmdSmiException,
        AmdSmiLibraryException=AmdSmiLibraryException,
        amdsmi_init=amdsmi_init,
        amdsmi_shut_down=amdsmi_shut_down,
        amdsmi_get_processor_handles=amdsmi_get_processor_handles,
        amdsmi_get_gpu_asic_info=amdsmi_get_gpu_asic_info,
        amdsmi_get_gpu_device_uuid=amdsmi_get_gpu_device_uuid,
        amdsmi_get_energy_count=amdsmi_get_energy_count,
        amdsmi_get_power_info=amdsmi_get_power_info,
        standin=state,
    )
    return module
