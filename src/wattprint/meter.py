"""The energy meter: windows over sensors, a sampler for power-only sensors, and records.

Every sensor is turned into one cumulative energy figure per window edge:

* a :class:`CounterSensor` is read at the edge;
* a :class:`PowerSensor` is integrated (trapezoidal rule) into a running total by the sampler
  thread (``_sampler.py``) at a fixed rate while any window is open, and sampled once more at
  each edge.

A window's energy is then the difference of the two edges, per sensor, summed per component.
Windows may nest and overlap: each is just a pair of edges. One daemon thread per meter does the
sampling and watches wrapping counters; it runs only while a window is open and the meter has a
power-only sensor or a counter that can wrap, and is parked on a condition otherwise. After the
last window closes it keeps its schedule until its next sample is due, so that the windows of a
loop (one per batch) do not each wake it: a wake-up hands the GIL to it and back.
"""

from __future__ import annotations

import _thread
import itertools
import math
import os
import sys
import time
import weakref

from ._log import IN_RESULTS, get_logger
from ._sampler import _Integrator as _Integrator  # re-exported: tests integrate with it
from ._sampler import _Open, _sampler, _Shared, _stop, track_for_fork
from ._training import _Stats, _TrainingMixin
from .errors import ConfigError, PartialMeasurementWarning, SensorError, WindowError
from .footprint import FootprintModel, Site, _site
from .measurement import Measurement, _Part
from .sensors import detect
from .sensors._registry import MODES
from .sensors.base import Sensor, Source
from .sensors.hardware import detect_hardware
from .settings import Settings, load_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections import deque
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager
    from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

    from .distributed import Rank

    P = ParamSpec("P")
    R = TypeVar("R")
else:
    from _collections import deque  # collections' own: that package loads more

    from ._typing import NamedTuple, overload

__all__ = ["EnergyMeter", "Window", "default_meter", "measure"]

log = get_logger(__name__)


class _DefaultHz(float):
    """The default ``sample_hz`` (20.0): told apart from an explicit 20.0 by identity, so that
    a ``sample_hz`` setting (``WATTPRINT_SAMPLE_HZ``, wattprint.toml) applies only when the
    argument was not given."""

    __slots__ = ()


class _DefaultMode(str):
    """The default ``mode`` (``"machine"``), told apart from an explicit one by identity."""

    __slots__ = ()


_DEFAULT_SAMPLE_HZ: float = _DefaultHz(20.0)
_clock = time.perf_counter
_time = time.time  # a window's wall-clock edges, made into datetimes when read
_measurement = Measurement._of
_DEFAULT_MODE: str = _DefaultMode("machine")


class Window:
    """Handle of a window opened with :meth:`EnergyMeter.window`.

    ``measurement`` is ``None`` while the window is open and the :class:`Measurement` after.
    """

    def __init__(self, meter: EnergyMeter, name: str) -> None:
        self._meter = meter
        self.name = name
        self.measurement: Measurement | None = None

    def __enter__(self) -> Window:
        self._meter.begin(self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self.measurement = self._meter.end(self.name)

    def __repr__(self) -> str:
        return f"<Window {self.name!r} {'open' if self.measurement is None else 'closed'}>"


def _no_sync() -> None:
    pass


class _Group(NamedTuple):
    """The sensors of one component, summed into one :class:`ComponentEnergy`."""

    component: str
    indices: tuple[int, ...]
    names: tuple[str, ...]
    source: Source
    measured: bool
    scope: str


def _group(sensors: Sequence[Sensor]) -> list[_Group]:
    by_component: dict[str, list[int]] = {}
    for i, s in enumerate(sensors):
        by_component.setdefault(s.component, []).append(i)
    groups = []
    for component, indices in by_component.items():
        parts = [sensors[i] for i in indices]
        kinds = {(s.source, s.scope) for s in parts}
        if len(kinds) > 1:
            raise ConfigError(
                f"sensors of {component!r} mix sources "
                f"({', '.join(sorted(f'{a.value}/{b}' for a, b in kinds))}): one component's "
                "figure must have one provenance; give the sensors different components"
            )
        groups.append(
            _Group(
                component,
                tuple(indices),
                tuple(s.name for s in parts),
                parts[0].source,
                all(s.measured for s in parts),
                parts[0].scope,
            )
        )
    return groups


class EnergyMeter(_TrainingMixin):
    """Measures the energy of code between window edges.

    ``sensors`` is ``"auto"`` (detect what this machine has, estimating what no counter covers),
    or a list of :class:`Sensor` objects and backend names (``"rapl"``, ``"nvml"``,
    ``"amdsmi"``, ``"powermetrics"``, ``"hwmon"``, ``"estimate"``). A named backend that is
    missing raises :class:`~wattprint.errors.SensorUnavailable`. ``powercap_root``, ``nvml``,
    ``amdsmi``, ``powermetrics`` and ``hwmon_root`` are passed to
    :func:`wattprint.sensors.detect` (roots, modules and commands for tests; ``False`` turns a
    vendor backend off).

    Power-only sensors are sampled at ``sample_hz`` (or every ``sample_interval`` seconds, when
    given) for the whole window, however long, and at both edges; the samples are integrated
    with the trapezoidal rule. With ``h = 1 / sample_hz``, the expected error is: none for power
    that is constant or changes linearly between samples; about ``T * h**2 * max|P''| / 12``
    joules over ``T`` seconds for smoothly varying power; and for each step change of ``dP``
    watts at most ``dP * h`` joules, with signs that vary, so that ``n`` steps add up to about
    ``dP * h * sqrt(n) / 3`` (at the default 20 Hz, a 10/100 W square wave at 2 Hz over 30 s is
    off by about 1 %; one 1 s burst of 100 W on 10 W in 30 s by about 0.5 %). The
    place of each sample inside its interval moves by the golden ratio from one interval to the
    next, so that power periodic at a multiple of the interval cannot alias into a steady bias.
    A burst shorter than ``h`` is missed or over-counted, depending on whether a sample lands
    in it (right on average, not per window): raise ``sample_hz`` for short bursts. A sensor
    read that raises or returns a reading that is not finite marks every open window partial,
    with the error named, and is never integrated.
    The location arguments, or one :class:`~wattprint.Site` given as ``site`` (not both), choose
    the grid's carbon intensity for the footprint of each measurement (see
    :func:`wattprint.footprint`). ``mode="process"`` reports this process's
    share of the machine's CPU energy by its share of CPU time.
    ``sync_cuda`` synchronises CUDA devices before each window edge when torch with CUDA is in
    use; the default does so when a GPU sensor is in use.

    In a distributed job (``torch.distributed`` initialised, or ``torchrun``'s ``RANK``,
    ``LOCAL_RANK`` and ``WORLD_SIZE``), each process reads only what it owns: its host's
    components if it is its host's first process (``LOCAL_RANK`` 0; with ``distributed=True``
    or ``sync="dist"``, the lowest rank among the processes whose ``host_id``, default the
    host name, is the same: every process must then make its meter at once), and its own GPUs
    (``gpus``, default the device torch made current, else ``LOCAL_RANK``'s); see
    :mod:`wattprint.distributed`. ``distributed=False`` reads everything (a meter made on one
    process only, to meter its whole machine), ``True`` insists on a job. ``sync="dist"`` waits
    for every process at a ``barrier()`` before each window edge; :meth:`gather` gives the
    whole job's measurement.

    Arguments left out are taken from the settings (:mod:`wattprint.settings`): the
    ``WATTPRINT_*`` environment variables, then ``wattprint.toml``, then ``[tool.wattprint]`` in
    ``pyproject.toml`` of the working folder; ``meter.settings`` says where each came from.
    """

    def __init__(
        self,
        sensors: str | Sequence[Sensor | str] = "auto",
        sample_hz: float = _DEFAULT_SAMPLE_HZ,
        *,
        sample_interval: float | None = None,
        cpu_tdp_w: float | None = None,
        gpu_tdp_w: float | None = None,
        carbon_intensity_g_per_kwh: float | None = None,
        country: str | None = None,
        zone: str | None = None,
        cloud_region: str | None = None,
        pue: float | None = None,
        wue_l_per_kwh: float | None = None,
        water_intensity_l_per_kwh: float | None = None,
        tier: str | None = None,
        site: Site | None = None,
        mode: str = _DEFAULT_MODE,
        sync_cuda: bool | None = None,
        powercap_root: str | None = None,
        nvml: Any = None,
        amdsmi: Any = None,
        powermetrics: Any = None,
        hwmon_root: str | None = None,
        distributed: bool | None = None,
        host_id: str | None = None,
        gpus: Sequence[int] | None = None,
        sync: str | None = None,
    ) -> None:
        if not sample_hz > 0:
            raise ConfigError(f"sample_hz must be > 0, not {sample_hz}")
        if sample_interval is not None and not sample_interval > 0:
            raise ConfigError(f"sample_interval must be > 0 seconds, not {sample_interval}")
        loose = {
            "country": country,
            "zone": zone,
            "cloud_region": cloud_region,
            "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh,
            "pue": pue,
            "wue_l_per_kwh": wue_l_per_kwh,
            "tier": tier,
            "water_intensity_l_per_kwh": water_intensity_l_per_kwh,
        }
        #: The settings in effect, each with where it came from: the arguments given, then
        #: the WATTPRINT_* environment, wattprint.toml and pyproject.toml (see
        #: :mod:`wattprint.settings`). A ``site=`` is the whole site: no site setting applies.
        self.settings: Settings = load_settings({
            **(loose if site is None else {}),
            "cpu_tdp_w": cpu_tdp_w,
            "gpu_tdp_w": gpu_tdp_w,
            "sample_hz": None if sample_hz is _DEFAULT_SAMPLE_HZ else sample_hz,
            "mode": None if mode is _DEFAULT_MODE else mode,
        })
        sample_hz, mode = self.settings.sample_hz, self.settings.mode
        cpu_tdp_w, gpu_tdp_w = self.settings.cpu_tdp_w, self.settings.gpu_tdp_w
        #: Where the energy is used: given as ``site=`` or built once from the loose arguments
        #: and the settings.
        self.site: Site = _site(site, loose if site is not None else self.settings.site_args())
        if site is not None:
            self.settings = self.settings.with_site(self.site)
        self.footprint_model: FootprintModel = self.site.resolve()
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        detect_args: dict[str, Any] = {
            "powercap_root": powercap_root,
            "nvml": nvml,
            "amdsmi": amdsmi,
            "powermetrics": powermetrics,
            "hwmon_root": hwmon_root,
            "cpu_tdp_w": cpu_tdp_w,
            "gpu_tdp_w": gpu_tdp_w,
            "mode": mode,
        }
        if isinstance(sensors, str):
            if sensors != "auto":
                raise ConfigError(
                    f'sensors must be "auto" or a list of sensors and backend names, '
                    f"not {sensors!r}"
                )
            found = detect(**detect_args)
            chosen: list[Sensor] = list(found)
            self.missing = found.missing
        else:
            chosen = [s for s in sensors if isinstance(s, Sensor)]
            names = [s for s in sensors if isinstance(s, str)]
            bad = [s for s in sensors if not isinstance(s, (Sensor, str))]
            if bad:
                raise ConfigError(f"not a sensor or backend name: {bad[0]!r}")
            self.missing = ()
            if names:
                covered = {s.component for s in chosen}
                found = detect(**detect_args, only=names)
                chosen += [s for s in found if s.component not in covered]
                self.missing = found.missing
        #: This process's place in a distributed job (:mod:`wattprint.distributed`), or None.
        self.rank: Rank | None = None
        if distributed is not False and (
            distributed or "WORLD_SIZE" in os.environ or "torch" in sys.modules
        ):
            from .distributed import detect_rank, gpu_ordinals, own

            self.rank = detect_rank(host_id=host_id, gpus=gpus, required=bool(distributed),
                                    gather_hosts=bool(distributed) or sync == "dist",
                                    visible_gpus=gpu_ordinals(chosen))
            if self.rank is not None:
                chosen = own(chosen, self.rank)
        if sync not in (None, "dist"):
            raise ConfigError(f'sync must be "dist" or None, not {sync!r}')
        if sync == "dist" and (self.rank is None or not self.rank.initialised):
            raise ConfigError('sync="dist" waits for every process at each window edge: it '
                              "needs torch.distributed initialised (init_process_group) first")
        if not chosen and self.rank is None:
            raise ConfigError("no sensors to read: pass sensors='auto' or at least one sensor")
        names_seen = [s.name for s in chosen]
        dupes = {n for n in names_seen if names_seen.count(n) > 1}
        if dupes:
            raise ConfigError(f"sensor given twice: {', '.join(sorted(dupes))}")
        self.sensors: tuple[Sensor, ...] = tuple(chosen)
        estimated = sorted({s.component for s in chosen if not s.measured})
        if estimated and self.missing:
            why = "; ".join(f"{m.backend}: {m.reason}" for m in self.missing)
            log.warning("estimating %s: no readable hardware counter (%s)",
                        ", ".join(estimated), why, extra=IN_RESULTS)
        if sync_cuda is None:
            sync_cuda = any(s.source in (Source.NVML, Source.AMDSMI, Source.HWMON)
                            for s in chosen)
        self.sync_cuda = sync_cuda
        self._sync: Callable[[], None] = _no_sync
        if sync_cuda:
            from .sensors.sync import cuda_synchronize

            self._sync = cuda_synchronize
        if sync == "dist":
            from .distributed import barrier_after

            self._sync = barrier_after(self._sync)
        self._groups = _group(chosen)
        #: The sensors that may have a note on a window (the others inherit the empty one).
        self._noting = tuple(s for s in chosen if type(s).notes is not Sensor.notes)
        self._shared = _Shared(chosen, sample_hz, sample_interval)
        self._finalizer = weakref.finalize(self, _stop, self._shared)
        track_for_fork(self._shared)
        self._auto_names = itertools.count(1)
        self._idle_w: dict[str, float] | None = None
        self.history: deque[Measurement] = deque(maxlen=10_000)
        self._batches = _Stats()
        self._epochs = _Stats()

    # -- windows ------------------------------------------------------------------------------

    def begin(self, name: str | None = None) -> str:
        """Open a window and return its name. Windows may nest and overlap."""
        if name is None:
            name = f"window-{next(self._auto_names)}"
        if self._sync is not _no_sync:  # a call less on a window's edge
            self._sync()
        shared = self._shared
        lock = shared.lock
        lock.acquire()  # not ``with``: a window's edge is the meter's hot path
        try:
            windows = shared.windows
            if name in windows:
                raise WindowError(f"window {name!r} is already open; end it or use another name")
            wall0 = _time()
            t0 = _clock()
            if not windows and (shared.powers or (shared.watch and shared.thread is None)):
                self._wake(t0)
            window = windows[name] = _Open(name, t0, wall0, shared.ticks)
            window.start = shared.snapshot(t0)
        finally:
            lock.release()
        return name

    def _wake(self, t0: float) -> None:
        """First window opened (lock held): restart the integrators, wake the sampler."""
        shared = self._shared
        for _, _, integ in shared.powers:
            integ.last_t = None
        if shared.thread is None and (shared.powers or shared.watch):
            import threading  # here, not at import: a meter of counters alone starts no thread

            shared.next_watch = [t0 + interval for _, _, interval in shared.watch]
            _ = shared.cond  # made here, lock held: the thread and the edges share this one
            shared.thread = threading.Thread(
                target=_sampler, args=(shared,), name="wattprint-sampler", daemon=True
            )
            shared.thread.start()
        elif shared.powers and not shared.sampling:  # else it wakes for its next sample
            shared.cond.notify()

    def end(self, name: str | None = None) -> Measurement:
        """Close a window and return what it measured.

        ``name`` may be left out when exactly one window is open.
        """
        measurement = self._end(name)
        self.history.append(measurement)
        return measurement

    def _end(self, name: str | None) -> Measurement:
        if self._sync is not _no_sync:  # a call less on a window's edge
            self._sync()
        shared = self._shared
        lock = shared.lock
        lock.acquire()  # not ``with``: a window's edge is the meter's hot path
        try:
            windows = shared.windows
            if name is None:
                if len(windows) != 1:
                    raise WindowError(f"{len(windows)} windows are open; name the one to end")
                name = next(iter(windows))
            t1 = _clock()
            stop = shared.snapshot(t1)
            wall1 = _time()
            window = windows.pop(name, None)
            if window is None:
                raise WindowError(f"no open window named {name!r}; open ones: "
                                  f"{', '.join(windows) or 'none'}")
            ticks = shared.ticks - window.ticks0
        finally:
            lock.release()
        return self._record(window, stop, t1, wall1, ticks)

    def _record(
        self, w: _Open, stop: list[float | None], t1: float, wall1: float, ticks: int
    ) -> Measurement:
        duration = t1 - w.t0
        start, idle, errors = w.start, self._idle_w, w.errors
        parts: list[_Part] = []  # made into ComponentEnergy records when first read
        failed: dict[int, str] | None = None  # the window's errors and the groups', if any
        total = 0.0
        inf = math.inf
        for group in self._groups:
            component, indices, names, source, measured, scope = group
            energy, ok = 0.0, True
            try:  # the common case: every reading there (None - x raises), none going back
                for i in indices:
                    d = stop[i] - start[i]  # type: ignore[operator]
                    if not 0.0 <= d < inf or i in errors:
                        ok = False
                        break
                    energy += d
            except TypeError:
                ok = False
            if ok:
                dynamic = None
                if idle is not None and component in idle:
                    dynamic = max(energy - idle[component] * duration, 0.0)
                parts.append((component, energy, source, measured, scope, names, dynamic))
                total += energy
                continue
            if failed is None:
                failed = dict(errors)
            self._group_failed(w.name, group, start, stop, failed)
        if failed is None:
            failed = errors
        idle_j = dynamic_j = None
        if idle is not None:
            idle_j = sum(idle.get(part[0], 0.0) * duration for part in parts)
            dynamic_j = sum(part[6] or 0.0 for part in parts)
        return _measurement(
            w.name, w.wall0, wall1, duration, total, parts, self.footprint_model,
            idle_j, dynamic_j, ticks + 1 if self._shared.powers else 0, bool(failed),
            tuple(failed[i] for i in sorted(failed)) if failed else (),
            self._notes(duration) if self._noting else (),
        )

    def _notes(self, duration: float) -> tuple[str, ...]:
        """The notes of a window of ``duration`` seconds, each once."""
        noting = self._noting
        if len(noting) == 1:
            return noting[0].notes(duration)
        found: tuple[str, ...] = ()
        for sensor in noting:  # a few sensors, a note or none each: a loop, not a dict
            for note in sensor.notes(duration):
                if note not in found:
                    found += (note,)
        return found

    def _group_failed(self, window: str, group: _Group, start: list[float | None],
                      stop: list[float | None], errors: dict[int, str]) -> None:
        """Name in ``errors`` what went wrong with each of ``group``'s sensors in a window
        whose figure for the group cannot be given; the group is left out."""
        for i in group.indices:
            a, b = start[i], stop[i]
            if a is None or b is None or i in errors:
                errors.setdefault(i, f"{self.sensors[i].name}: not readable")
            elif b < a:
                errors[i] = f"{self.sensors[i].name}: counter went backwards by {a - b:.6g} J"
            elif not b - a < math.inf:  # readings are finite; their difference may not be
                errors[i] = f"{self.sensors[i].name}: energy is not finite ({b - a})"
        log.warning("window %r: %s left out, its sensor failed", window, group.component,
                    extra=IN_RESULTS)

    def gather(self, measurement: Measurement | None = None, *, dst: int = 0
               ) -> Measurement | None:
        """The whole job's measurement of a window, from every process's ``measurement`` of
        it (default: this meter's last), at rank ``dst``; ``None`` at the other ranks.

        Every process must call it (it is a collective of ``torch.distributed``). The job's
        measurement has a component per host and device (``"node-a/cpu"``,
        ``"node-a/gpu:0"``), each counted once with its provenance, and is partial when any
        process's is. In a process that is not part of a distributed job, the job is this
        process: its measurement in the same shape.
        """
        from .distributed import gather

        m = measurement if measurement is not None else self.last_measurement
        if m is None:
            raise WindowError("nothing to gather: no window has ended yet")
        return gather(m, self.rank, dst)

    def window(self, name: str | None = None) -> Window:
        """A context manager over a window: ``with meter.window("x") as w: ...``, then
        ``w.measurement``."""
        return Window(self, name if name is not None else f"window-{next(self._auto_names)}")

    @overload
    def measure(self, fn: Callable[P, R], /) -> Callable[P, R]: ...
    @overload
    def measure(
        self, fn: None = None, /, *, name: str | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
    def measure(
        self, fn: Callable[P, R] | None = None, /, *, name: str | None = None
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: every call of the function is measured.

        The last measurement is on the wrapper as ``last_measurement`` and in ``meter.history``.
        """

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            import functools  # here: a first measurement need not load it

            label = name or getattr(func, "__qualname__", "call")

            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                w = Window(self, f"{label}#{next(self._auto_names)}")
                with w:
                    result = func(*args, **kwargs)
                wrapper.last_measurement = w.measurement  # type: ignore[attr-defined]
                return result

            wrapper.last_measurement = None  # type: ignore[attr-defined]
            return wrapper

        return decorate(fn) if fn is not None else decorate

    def evaluate(
        self, fn: Callable[..., R], *args: Any, **kwargs: Any
    ) -> tuple[float, float, R]:
        """Call ``fn(*args, **kwargs)`` in a window; return ``(seconds, joules, result)``.

        The joules are a bare number: where a sensor failed inside the window, they miss what
        it would have read, and a :class:`~wattprint.errors.PartialMeasurementWarning` says
        so (the measurement, with its errors, is :attr:`last_measurement`)."""
        with self.window(getattr(fn, "__qualname__", None)) as w:
            result = fn(*args, **kwargs)
        m = w.measurement
        assert m is not None
        if m.partial:
            import warnings

            warnings.warn(f"meter.evaluate({m.name}): partial measurement, the joules miss what "
                          f"failed: {'; '.join(m.errors)}", PartialMeasurementWarning,
                          stacklevel=2)
        return m.duration_s, m.energy_j, result

    @property
    def last_measurement(self) -> Measurement | None:
        return self.history[-1] if self.history else None

    # -- idle baseline ---------------------------------------------------------------------

    def calibrate_idle(self, seconds: float = 5.0) -> dict[str, float]:
        """Measure the idle power of each component over ``seconds`` of sleep.

        Later measurements report ``idle_j`` and ``dynamic_j`` (the energy above idle).
        Run it when the machine is as quiet as it will be during the work.
        """
        if not seconds > 0:
            raise ConfigError(f"calibrate_idle needs seconds > 0, not {seconds}")
        name = f"idle-calibration#{next(self._auto_names)}"
        self.begin(name)
        time.sleep(seconds)
        m = self.end(name)
        if m.partial:
            raise SensorError("idle calibration failed: " + "; ".join(m.errors))
        self._idle_w = {c: e.energy_j / m.duration_s for c, e in m.components.items()}
        return dict(self._idle_w)

    @property
    def idle_w(self) -> dict[str, float] | None:
        return None if self._idle_w is None else dict(self._idle_w)

    def trace(self, hz: float = 10.0) -> AbstractContextManager[list[tuple[float, str, float]]]:
        """Power over time while the block runs, for timelines: ``with meter.trace() as
        points: ...``.

        Yields a list that fills with ``(seconds since the start, component, watts)``, one
        point per component at the end of each slice: the
        mean power of each component over consecutive slices of ``1 / hz`` seconds, each
        slice measured like a window (the last, shorter slice when the block ends). The
        slices run on their own thread and do not enter :attr:`history`.
        """
        if not hz > 0:
            raise ConfigError(f"trace needs hz > 0, not {hz}")
        return _Trace(self, hz)

    # -- training loops (the methods are in _training.py) ------------------------------

    def _training_window(self, label: str) -> Window:
        return Window(self, f"{label}#{next(self._auto_names)}")

    # -- description and life cycle ----------------------------------------------------------

    @property
    def device(self) -> str:
        """``"gpu"`` when the meter reads a GPU (a component ``"gpu"`` or ``"gpu:N"``), else
        ``"cpu"``, as Energy-Meter has it. The components read are :attr:`components`."""
        return "gpu" if any(c.startswith("gpu") for c in self.components) else "cpu"

    @property
    def components(self) -> tuple[str, ...]:
        """The components the meter reads, in the order of its sensors:
        ``("cpu", "ram", "gpu:0")``."""
        return tuple(g.component for g in self._groups)

    @property
    def gpu_name(self) -> str | None:
        """The hardware label of the first GPU read (``"NVIDIA A100-SXM4-80GB"`` is
        ``"A100"``; a GPU the table does not know keeps its name, see
        :func:`~wattprint.sensors.hardware.resolve_hardware`); ``None`` without a GPU."""
        gpus = [s for s in self.sensors if s.component.startswith("gpu")]
        return detect_hardware(gpus[:1]) if gpus else None

    @property
    def unit(self) -> str:
        """The unit of every energy figure the meter gives: ``"J"`` (joules)."""
        return "J"

    def get_unit(self) -> str:
        """``"J"``: the unit of every energy figure the meter gives (greenAI's spelling of
        :attr:`unit`)."""
        return self.unit

    def _describe(self) -> str:
        """What is measured, for people: ``"cpu (rapl), ram (rapl), gpu:0 (nvml)"``."""
        seen: dict[str, str] = {}
        for s in self.sensors:
            kind = s.source.value if s.measured else f"{s.source.value}, estimated"
            seen.setdefault(s.component, kind)
        return ", ".join(f"{c} ({k})" for c, k in seen.items())

    @property
    def open_windows(self) -> tuple[str, ...]:
        with self._shared.lock:
            return tuple(self._shared.windows)

    def close(self) -> None:
        """Stop the sampler thread and release the sensors."""
        self._finalizer()
        thread = self._shared.thread
        if thread is not None and thread.ident != _thread.get_ident():
            thread.join(timeout=5)
        for s in self.sensors:
            s.close()

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EnergyMeter {self._describe()}>"


class _Trace:
    """The context manager :meth:`EnergyMeter.trace` returns (a class, not a generator: a
    first measurement loads this module, and :mod:`contextlib` would cost it about a
    millisecond)."""

    def __init__(self, meter: EnergyMeter, hz: float) -> None:
        self._meter = meter
        self._hz = hz
        import threading

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> list[tuple[float, str, float]]:
        meter, hz, stop = self._meter, self._hz, self._stop
        points: list[tuple[float, str, float]] = []
        base = f"trace#{next(meter._auto_names)}"
        t0 = time.perf_counter()

        def slice_(i: int) -> None:
            m = meter._end(f"{base}.{i}")
            t = time.perf_counter() - t0
            if m.duration_s > 0:
                points.extend((t, c, e.energy_j / m.duration_s)
                              for c, e in m.components.items())

        def run() -> None:
            i = 0
            while not stop.wait(1.0 / hz):
                meter.begin(f"{base}.{i + 1}")
                slice_(i)
                i += 1
            slice_(i)

        meter.begin(f"{base}.0")
        import threading

        self._thread = threading.Thread(target=run, name="wattprint-trace", daemon=True)
        self._thread.start()
        return points

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


_default: EnergyMeter | None = None
_default_lock = _thread.allocate_lock()


def default_meter() -> EnergyMeter:
    """The meter behind :func:`measure`: made on first use with ``sensors="auto"``."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EnergyMeter()
        return _default


class _Measure:
    """What ``wattprint.measure(name)`` returns: a context manager and a decorator."""

    def __init__(self, name: str | None, meter: EnergyMeter | None) -> None:
        self.name = name
        self.meter = meter
        self._open: list[Window] = []

    def __enter__(self) -> Window:
        w = (self.meter or default_meter()).window(self.name)
        self._open.append(w)
        return w.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._open.pop().__exit__(*exc)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        import functools  # here: a first measurement need not load it

        label = self.name or getattr(fn, "__qualname__", "call")
        count = itertools.count(1)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            # The meter is chosen at call time: decorating at import must not detect sensors.
            w = (self.meter or default_meter()).window(f"{label}#{next(count)}")
            with w:
                result = fn(*args, **kwargs)
            wrapper.last_measurement = w.measurement  # type: ignore[attr-defined]
            return result

        wrapper.last_measurement = None  # type: ignore[attr-defined]
        return wrapper


@overload
def measure(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def measure(name: str | None = None, /, *, meter: EnergyMeter | None = None) -> _Measure: ...
def measure(
    arg: Callable[P, R] | str | None = None, /, *, meter: EnergyMeter | None = None
) -> Callable[P, R] | _Measure:
    """Measure a block or a function with the default meter (or ``meter``).

    ``@wattprint.measure`` and ``@wattprint.measure("name")`` decorate a function (the wrapper
    keeps ``last_measurement``); ``with wattprint.measure("name") as w:`` measures a block and
    ``w.measurement`` holds the result. Every measurement is also in ``meter.history``.
    """
    if callable(arg):
        return _Measure(None, meter)(arg)
    return _Measure(arg, meter)
