"""What the NVML and AMD SMI sensors share: one start of the vendor's library per detection,
and the naming, error translation and closing of a GPU's sensor.

Imported by :mod:`._nvml_gpus` and :mod:`._amdsmi_gpus` only, once the library has started.
"""

from __future__ import annotations

import _thread

from ..errors import SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol, TypeVar

    T = TypeVar("T")

    from .._log import Logger

    class Gpu(Protocol):
        """One GPU as the library sees it (each backend's ``_Gpu``)."""

        @property
        def session(self) -> LibrarySession: ...
        @property
        def handle(self) -> Any: ...
        @property
        def ordinal(self) -> int: ...
        @property
        def label(self) -> str: ...

__all__ = ["GpuSensor", "LibrarySession"]


class LibrarySession:
    """One start of a vendor's library (``nvmlInit``, ``amdsmi_init``), shared by the sensors
    of one detection: ``shutdown`` (``nvmlShutdown``, ``amdsmi_shut_down``, named ``call`` in
    the log) runs once, when the last holder lets go. A shutdown that raises ``error`` is
    logged at debug level: closing must not fail, and nothing is lost."""

    def __init__(self, shutdown: Callable[[], object], error: type[BaseException], call: str,
                 log: Logger) -> None:
        self._shutdown = shutdown
        self._error = error
        self._call = call
        self._log = log
        self._lock = _thread.allocate_lock()
        self._holders: set[int] = set()
        self._done = False

    def discover(self, find: Callable[[LibrarySession], T]) -> T:
        """``find(self)``, the session held meanwhile: the sensors ``find`` makes hold it in
        turn, and if it makes none the library is shut down when it returns (or raises)."""
        token = object()
        self.hold(token)
        try:
            return find(self)
        finally:
            self.release(token)

    def hold(self, holder: object) -> None:
        with self._lock:
            self._holders.add(id(holder))

    def release(self, holder: object) -> None:
        with self._lock:
            self._holders.discard(id(holder))
            if self._holders or self._done:
                return
            self._done = True
        try:
            self._shutdown()
        except self._error as err:
            self._log.debug("%s failed: %s", self._call, err)


class GpuSensor:
    """What a GPU's sensors share: the name ``<backend>:gpu<N>`` and the component ``gpu:N``
    (``N`` its place among the GPUs this process sees), the library's errors made
    :class:`~wattprint.errors.SensorError` naming the GPU and the call, and a close that lets
    go of the session (the last sensor of a detection to close shuts the library down)."""

    name: str
    component: str
    _gpu: Gpu
    _closed: bool

    def _setup(self, gpu: Gpu, backend: str, error: type[BaseException]) -> None:
        self._gpu = gpu
        self._handle = gpu.handle
        self._error = error
        self._closed = False
        self.name = f"{backend}:gpu{gpu.ordinal}"
        self.component = f"gpu:{gpu.ordinal}"
        gpu.session.hold(self)

    def _failed(self, call: str, err: BaseException) -> SensorError:
        return SensorError(f"{self.name}: {call} failed on {self._gpu.label}: {err}")

    def _check_open(self) -> None:
        if self._closed:
            raise SensorError(f"{self.name}: read after close()")

    def close(self) -> None:
        """Let go of the library; the last sensor of a detection to close shuts it down."""
        if not self._closed:
            self._closed = True
            self._gpu.session.release(self)
