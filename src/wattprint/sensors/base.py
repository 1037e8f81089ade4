"""The one interface every sensor backend implements.

A sensor covers one *component* of the machine (``"cpu"``, ``"ram"``, ``"gpu:0"``) and is one of
two kinds:

* :class:`CounterSensor` reports a cumulative energy in joules. The meter reads it only at window
  edges (and, for counters that wrap, at a low rate from a watcher so that no wrap is missed).
* :class:`PowerSensor` reports the power in watts right now. The meter samples it on a background
  thread while a window is open and integrates the samples with the trapezoidal rule.

Every sensor states its provenance: ``source`` (which backend) and ``measured`` (a hardware counter
or power register, as opposed to an estimate from a model).

Contract for backends:

* ``energy_j()`` / ``power_w()`` are cheap (microseconds for counters) and raise only
  :class:`~wattprint.errors.SensorError` subclasses, chained from the vendor error.
* After raising, the next read continues from a fresh baseline: energy across the failure is
  lost and reported as an error by the meter, never invented.
* ``energy_j()`` is monotonic: wraps of the underlying hardware counter are handled inside.
"""

from __future__ import annotations

import abc
import math
import os
from _collections_abc import Sequence  # collections.abc's own: that package loads more
from _thread import _local

from .._frozen import Frozen
from ..errors import SensorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any, ClassVar, NamedTuple, overload
else:
    from .._typing import NamedTuple, overload

__all__ = [
    "CounterSensor",
    "Detected",
    "MissingSensor",
    "PowerSensor",
    "Sensor",
    "Source",
]


class _SourceType(type):
    """The class of :class:`Source`, which is the set of its members, as an enum's class is:
    ``Source("rapl")`` is ``Source.RAPL``, ``Source["RAPL"]`` too, and iterating gives every
    member in order. (:mod:`enum`, with the :mod:`functools` and :mod:`collections` it
    loads, was a quarter of a first measurement's instructions over a bare interpreter, for
    seven names: see :mod:`wattprint._cache`.)"""

    _by_name: dict[str, Source]
    _by_value: dict[str, Source]

    def __call__(cls, value: object) -> Source:
        """The member whose value is ``value`` (a member gives itself)."""
        member = cls._by_value.get(value) if isinstance(value, str) else None
        if member is None:
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")
        return member

    def __getitem__(cls, name: str) -> Source:
        return cls._by_name[name]

    def __iter__(cls) -> Iterator[Source]:
        return iter(tuple(cls._by_name.values()))

    def __len__(cls) -> int:
        return len(cls._by_name)

    def __contains__(cls, value: object) -> bool:
        """Whether ``value`` is a member or a member's value (Python 3.12's enum answer)."""
        return isinstance(value, str) and value in cls._by_value

    @property
    def __members__(cls) -> Mapping[str, Source]:
        from types import MappingProxyType

        return MappingProxyType(cls._by_name)

    def __setattr__(cls, name: str, value: object) -> None:
        if name in cls.__dict__.get("_by_name", ()):
            raise AttributeError(f"cannot reassign member {name!r}")  # as an enum's
        super().__setattr__(name, value)


class Source(str, metaclass=_SourceType):
    """Where an energy figure comes from. Compares equal to its string value.

    An enumeration (``Source.RAPL``, ``.name``, ``.value``, ``Source("rapl")``, ``list(Source)``)
    of strings: each member is the ``str`` of its value, so it hashes, sorts, formats and
    writes to JSON as that string does."""

    __slots__ = ()

    RAPL: ClassVar[Source]
    NVML: ClassVar[Source]
    AMDSMI: ClassVar[Source]
    POWERMETRICS: ClassVar[Source]
    HWMON: ClassVar[Source]
    ESTIMATE: ClassVar[Source]
    FAKE: ClassVar[Source]

    @property
    def name(self) -> str:
        """The member's name: ``"RAPL"``."""
        return _SOURCE_NAMES[self]

    @property
    def value(self) -> str:
        """The member's value, a plain ``str``: ``"rapl"``."""
        return str.__str__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"<Source.{self.name}: {self.value!r}>"

    def __reduce_ex__(self, protocol: Any) -> tuple[type[Source], tuple[str]]:
        return Source, (self.value,)  # pickles and copies give back the member itself


_SOURCE_NAMES: dict[str, str] = {}
Source._by_name, Source._by_value = {}, {}
for _name, _value in (("RAPL", "rapl"), ("NVML", "nvml"), ("AMDSMI", "amdsmi"),
                      ("POWERMETRICS", "powermetrics"), ("HWMON", "hwmon"),
                      ("ESTIMATE", "estimate"), ("FAKE", "fake")):
    _member = str.__new__(Source, _value)
    type.__setattr__(Source, _name, _member)
    Source._by_name[_name] = Source._by_value[_value] = _member
    _SOURCE_NAMES[_value] = _name
del _name, _value, _member


class Sensor(abc.ABC):
    """Base class of all sensors; use :class:`CounterSensor` or :class:`PowerSensor`."""

    #: Unique name, ``backend:detail``, for example ``"rapl:package-0"``.
    name: str
    #: What the energy is of: ``"cpu"``, ``"ram"``, ``"gpu:0"``, ...
    component: str
    source: Source
    #: True for a hardware counter or power register, False for an estimate.
    measured: bool
    #: ``"machine"``, or ``"process"`` when the figure is the process's share.
    scope: str = "machine"
    #: One line for people: what is read and from where.
    description: str = ""
    #: Other components whose energy this sensor's figure already holds (RAPL psys holds the
    #: DRAM's): no later backend adds its own figure for them.
    covers: tuple[str, ...] = ()
    #: How many times one read of this sensor reads the machine's CPU times (the CPU estimate
    #: once; a process share once, plus what the counter it wraps reads). Where an edge's
    #: counters read them more than once, the edge reads them once and shares the figure.
    reads_cpu_times: int = 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles. Reads after ``close`` are not allowed."""

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """What a reader of a window of ``duration_s`` seconds should know about this
        sensor's figure for it, one sentence each: a window shorter than the counter's update
        period, or than the clock an estimate rests on. Empty by default."""
        return ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "component": self.component,
            "source": self.source.value,
            "measured": self.measured,
            "kind": "counter" if isinstance(self, CounterSensor) else "power",
            "scope": self.scope,
            "description": self.description,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.component}, {self.source.value})>"


class CounterSensor(Sensor):
    """A sensor with a cumulative energy counter."""

    @abc.abstractmethod
    def energy_j(self) -> float:
        """Cumulative joules since an arbitrary origin; monotonic, wraps already handled."""

    def energy_j_at(self, t: float) -> float:
        """:meth:`energy_j` read by a caller that has just taken the time ``t``
        (``time.perf_counter()``) as the moment of the reading.

        A hardware counter is read now and ignores ``t``. An estimate that integrates wall time
        integrates up to ``t``, so that its energy spans exactly the caller's interval, even
        when the reading thread waited for the interpreter between taking ``t`` and reading.
        """
        return self.energy_j()

    @classmethod
    def read_edge(
        cls, sensors: Sequence[CounterSensor], t: float, out: list[float | None],
        at: Sequence[int],
    ) -> list[tuple[int, Exception]]:
        """Read ``sensors`` (all of this class) at one window edge taken at time ``t``: each
        one's :meth:`energy_j_at` ``(t)`` goes to ``out[at[k]]`` when it is a finite number;
        what went wrong with the others is returned as ``(at[k], exception)`` pairs.

        The meter reads a window's edge through this, one call per sensor class. A backend
        whose sensors can be read together more cheaply than one by one (one lock for all,
        no call per sensor) overrides it; ``energy_j_at`` must then agree with it.
        """
        faults: list[tuple[int, Exception]] = []
        for i, sensor in zip(at, sensors, strict=True):
            try:
                value = sensor.energy_j_at(t)
                if not math.isfinite(value):
                    raise SensorError(f"energy reading is not finite ({value!r})")
            except Exception as err:  # the caller reports each sensor's fault
                faults.append((i, err))
            else:
                out[i] = value
        return faults

    @classmethod
    def edge_companion(cls, sensors: Sequence[CounterSensor]) -> type[CounterSensor] | None:
        """Another class of counters that this class's :meth:`read_edge` reads, with
        ``sensors``, in the one call (wrappers whose inner counters are of that class), or
        None. The meter then gives the group the edge's other counters of that class, after
        ``sensors``, and reads them all in that call."""
        return None

    @classmethod
    def cpu_time_reads(cls, sensors: Sequence[CounterSensor]) -> int:
        """How many times one :meth:`read_edge` of ``sensors`` reads the machine's CPU
        times: the meter shares one reading among them where an edge would read more."""
        return sum(s.reads_cpu_times for s in sensors)

    def _read_alone(self, t: float) -> float:
        """This sensor alone through its class's :meth:`read_edge`, raising its fault: the
        :meth:`energy_j_at` of a backend whose ``read_edge`` holds the reading."""
        out: list[float | None] = [None]
        faults = type(self).read_edge((self,), t, out, (0,))
        if faults:
            raise faults[0][1]
        value = out[0]
        assert value is not None  # set when there is no fault
        return value

    def watch_interval_s(self) -> float | None:
        """How often the counter must be read, at least, so that no wrap is missed.

        ``None`` when the counter cannot wrap in practice.
        """
        return None


class PowerSensor(Sensor):
    """A sensor that only reports instantaneous power."""

    @abc.abstractmethod
    def power_w(self) -> float:
        """Power now, in watts."""


class MissingSensor(NamedTuple):
    """A backend that found nothing usable: why, and how to enable it."""

    backend: str
    reason: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "reason": self.reason, "fix": self.fix}


class Detected(Frozen, Sequence[Sensor]):
    """The sensors :func:`wattprint.sensors.detect` found, and what it did not find (and why).
    An immutable record (:class:`wattprint._frozen.Frozen`), as a frozen dataclass."""

    _fields = ("sensors", "missing")
    __slots__ = _fields
    sensors: tuple[Sensor, ...]
    missing: tuple[MissingSensor, ...]

    def __init__(self, sensors: tuple[Sensor, ...] = (),
                 missing: tuple[MissingSensor, ...] = ()) -> None:
        object.__setattr__(self, "sensors", sensors)
        object.__setattr__(self, "missing", missing)

    @overload
    def __getitem__(self, index: int) -> Sensor: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Sensor]: ...
    def __getitem__(self, index: int | slice) -> Sensor | Sequence[Sensor]:
        return self.sensors[index]

    def __len__(self) -> int:
        return len(self.sensors)

    def __iter__(self) -> Iterator[Sensor]:
        return iter(self.sensors)

    def components(self) -> set[str]:
        return {s.component for s in self.sensors}


# -- window edges ---------------------------------------------------------------------------------


class _Edge(_local):
    """The machine's busy CPU seconds read at the current window edge, per ``/proc/stat``
    path: ``None`` outside an edge (every call reads)."""

    busy: dict[str | os.PathLike[str], float] | None = None


#: This thread's current window edge.
EDGE = _Edge()


def begin_edge() -> None:
    """Start a window edge in this thread: until :func:`end_edge`, every sensor that needs
    the machine's CPU times (the CPU estimate, each process share; see
    :func:`wattprint.sensors.estimate.machine_busy_cpu_s`) gets one shared read."""
    EDGE.busy = {}


def end_edge() -> None:
    """End the edge begun by :func:`begin_edge`: later calls read afresh."""
    EDGE.busy = None
