"""Energy and carbon as Prometheus metrics: served on ``/metrics``, or pushed to a Pushgateway.

:class:`EnergyCollector` keeps one window of an :class:`~wattprint.EnergyMeter` open at all
times. Each collection (a scrape, a push) ends that window and opens the next, and adds the
window's energy, per component, to counters that only ever grow. Consecutive windows share
their edge instant within microseconds (the next one opens just before the last one ends, as
:meth:`EnergyMeter.trace` does), so no energy between them goes missing. The windows do not
enter the meter's ``history``.

What is exposed (``component``, ``source``, ``measured`` and ``scope`` labels on every
per-component series, so that provenance travels with each figure)::

    wattprint_energy_joules_total        counter  energy read, per component
    wattprint_power_watts                gauge    mean power over the last window
    wattprint_sensor_up                  gauge    1 when the last window read the component, 0 not
    wattprint_sensor_errors_total        counter  windows in which the component's sensor failed
    wattprint_unmeasured_seconds_total   counter  seconds whose energy is missing from the counter
    wattprint_co2_grams_total            counter  CO2 of the energy read (PUE included)
    wattprint_water_liters_total         counter  water of the energy read
    wattprint_window_seconds             gauge    length of the last window (the power's interval)
    wattprint_carbon_intensity_grams_per_kwh  gauge  the grid intensity used (location, source)
    wattprint_sensor_info                gauge    1 per sensor read, with its name and kind

A window in which a component's sensor fails adds nothing to that component's energy (it is
never guessed): the component's ``sensor_up`` drops to 0, its ``sensor_errors_total`` and
``unmeasured_seconds_total`` grow, and its power gauge is left out until a window reads it
again. ``prometheus_client`` is imported by this module only (``pip install
"wattprint[prometheus]"``); ``import wattprint`` does not load it.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from .._log import get_logger
from ..errors import ConfigError, MissingExtra, OutputError
from ..sensors.base import PowerSensor

try:
    from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as err:  # pragma: no cover - the extra is installed in the tests
    raise MissingExtra("the Prometheus exporter", "prometheus") from err

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ..measurement import Measurement
    from ..meter import EnergyMeter

__all__ = [
    "DEFAULT_PORT",
    "EnergyCollector",
    "MetricsServer",
    "PushError",
    "Pusher",
    "check_gateway",
    "push",
    "serve",
]

log = get_logger(__name__)

#: The port ``wattprint monitor`` serves on unless told otherwise.
DEFAULT_PORT = 9105
_LABELS = ("component", "source", "measured", "scope")
_ids = itertools.count(1)


class PushError(OutputError):
    """The metrics could not be pushed to the Pushgateway: it is unreachable or refused them.
    The message names the gateway and the reason."""


@dataclass
class _Totals:
    """What one component has added up so far."""

    labels: tuple[str, str, str, str]
    energy_j: float = 0.0
    errors: int = 0
    unmeasured_s: float = 0.0
    power_w: float | None = None
    up: bool | None = None


class EnergyCollector(Collector):
    """A Prometheus collector over ``meter``: each collection closes a window and adds it up.

    ``min_interval_s`` is the shortest window: a collection sooner than that after the last
    window ended reports the same figures, without reading the sensors (several scrapers, or
    a scrape storm, then cost nothing and give no power over a sliver of time). The first
    collection always reads. ``on_window`` is called with each window's
    :class:`~wattprint.Measurement`, for whoever wants to see its errors as they happen.

    The collector owns its window, not the meter: :meth:`close` ends the window and leaves
    the meter open.
    """

    def __init__(
        self,
        meter: EnergyMeter,
        *,
        min_interval_s: float = 0.0,
        on_window: Callable[[Measurement], None] | None = None,
    ) -> None:
        if not (min_interval_s >= 0 and math.isfinite(min_interval_s)):
            raise ConfigError(f"min_interval_s must be a number >= 0, not {min_interval_s}")
        self.meter = meter
        self.min_interval_s = min_interval_s
        self._on_window = on_window
        self._lock = threading.Lock()
        self._base = f"prometheus#{next(_ids)}"
        self._count = itertools.count(1)
        self._totals: dict[str, _Totals] = {}
        for component in meter.components:  # one source and scope each (the meter checks)
            parts = [s for s in meter.sensors if s.component == component]
            measured = "true" if all(s.measured for s in parts) else "false"
            self._totals[component] = _Totals(
                (component, parts[0].source.value, measured, parts[0].scope))
        self._co2_g = 0.0
        self._water_l = 0.0
        self._window_s: float | None = None
        self._windows = 0
        self._closed = False
        self._open = meter.begin(f"{self._base}.0")
        self._opened_at = time.monotonic()

    # -- reading ----------------------------------------------------------------------------

    def _advance(self) -> Measurement:
        """(lock held) One window more."""
        following = self.meter.begin(f"{self._base}.{next(self._count)}")
        ending, self._open = self._open, following
        # Like EnergyMeter.trace: the collector's windows stay out of the meter's history.
        m = self.meter._end(ending)
        self._opened_at = time.monotonic()
        self._add(m)
        return m

    def _add(self, m: Measurement) -> None:
        """Add one window's figures to the totals; a component it lacks failed in it."""
        for component, totals in self._totals.items():
            got = m.components.get(component)
            if got is None:
                totals.errors += 1
                totals.unmeasured_s += m.duration_s
                totals.power_w = None
                totals.up = False
                continue
            totals.energy_j += got.energy_j
            totals.power_w = got.energy_j / m.duration_s if m.duration_s > 0 else None
            totals.up = True
        if m.energy_j > 0:
            footprint = m.footprint
            self._co2_g += footprint.co2_g
            self._water_l += footprint.water_l
        self._window_s = m.duration_s
        self._windows += 1

    def collect(self) -> Iterable[Metric]:
        """The metrics, after one window more (unless the last ended under ``min_interval_s``
        ago, or the collector is closed)."""
        measurement = None
        with self._lock:
            if not self._closed and (
                self._windows == 0
                or time.monotonic() - self._opened_at >= self.min_interval_s
            ):
                measurement = self._advance()
            families = self._families()
        if measurement is not None and self._on_window is not None:
            self._on_window(measurement)
        return families

    def describe(self) -> Iterable[Metric]:
        """The metric names, without reading anything (the registry asks when registering)."""
        return self._families(samples=False)

    def _families(self, samples: bool = True) -> list[Metric]:
        """(lock held) The metric families of the totals."""
        energy = CounterMetricFamily(
            "wattprint_energy_joules", "Energy read since the exporter started, per component.",
            labels=_LABELS, unit="joules")
        power = GaugeMetricFamily(
            "wattprint_power_watts", "Mean power over the last window (between two "
            "collections); absent while the component's sensor fails.",
            labels=_LABELS, unit="watts")
        up = GaugeMetricFamily(
            "wattprint_sensor_up", "1 when the last window read the component, 0 when its "
            "sensor failed (its energy is then left out, never guessed).", labels=_LABELS)
        errors = CounterMetricFamily(
            "wattprint_sensor_errors", "Windows in which the component's sensor failed.",
            labels=_LABELS)
        unmeasured = CounterMetricFamily(
            "wattprint_unmeasured_seconds", "Seconds whose energy is missing from "
            "wattprint_energy_joules_total because the component's sensor failed.",
            labels=_LABELS, unit="seconds")
        co2 = CounterMetricFamily(
            "wattprint_co2_grams", "CO2 of the energy read, at the grid intensity and PUE of "
            "wattprint_carbon_intensity_grams_per_kwh.", unit="grams")
        water = CounterMetricFamily(
            "wattprint_water_liters", "Water of the energy read (on site and off site).",
            unit="liters")
        window = GaugeMetricFamily(
            "wattprint_window_seconds", "Length of the last window: the interval of "
            "wattprint_power_watts.", unit="seconds")
        site = self.meter.footprint_model
        intensity = GaugeMetricFamily(
            "wattprint_carbon_intensity_grams_per_kwh", "Grid carbon intensity used for CO2, "
            "in gCO2/kWh, with where it comes from.", labels=("location", "source", "pue"))
        info = GaugeMetricFamily(
            "wattprint_sensor_info", "The sensors read: 1 per sensor, with its provenance.",
            labels=("sensor", "kind", *_LABELS))
        families: list[Metric] = [energy, power, up, errors, unmeasured, co2, water, window,
                                  intensity, info]
        if not samples:
            return families
        for totals in self._totals.values():
            labels = list(totals.labels)
            energy.add_metric(labels, totals.energy_j)
            errors.add_metric(labels, totals.errors)
            unmeasured.add_metric(labels, totals.unmeasured_s)
            if totals.up is not None:
                up.add_metric(labels, 1.0 if totals.up else 0.0)
            if totals.power_w is not None:
                power.add_metric(labels, totals.power_w)
        co2.add_metric([], self._co2_g)
        water.add_metric([], self._water_l)
        if self._window_s is not None:
            window.add_metric([], self._window_s)
        intensity.add_metric(
            [site.location, site.intensity_source, f"{site.pue:g}"], site.intensity_g_per_kwh)
        for s in self.meter.sensors:
            kind = "power" if isinstance(s, PowerSensor) else "counter"
            info.add_metric([s.name, kind, *self._totals[s.component].labels], 1.0)
        return families

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the open window (its energy is not added); later collections report the last
        figures. The meter stays open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.meter._end(self._open)

    def __enter__(self) -> EnergyCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collector(source: EnergyMeter | EnergyCollector, min_interval_s: float
               ) -> tuple[EnergyCollector, bool]:
    """The collector to use, and whether the caller made it (and so closes it)."""
    if isinstance(source, EnergyCollector):
        return source, False
    return EnergyCollector(source, min_interval_s=min_interval_s), True


class MetricsServer:
    """What :func:`serve` returns: an HTTP server of ``/metrics`` on its own thread.

    ``url`` is where the metrics are (``port`` is the one bound, when ``0`` was asked).
    :meth:`close` stops the server and ends the collector's window, unless the collector was
    given by the caller; the meter stays open.
    """

    def __init__(self, collector: EnergyCollector, owns: bool, host: str, port: int) -> None:
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(collector)
        self._owns = owns
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except BaseException:
            if owns:
                collector.close()
            raise
        self._server: WSGIServer = server
        self._thread = thread
        self.host = host
        self.port: int = int(server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/metrics"
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._owns:
            self.collector.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}{' closed' if self._closed else ''}>"


def serve(
    meter: EnergyMeter | EnergyCollector,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    *,
    min_interval_s: float = 1.0,
) -> MetricsServer:
    """Serve the meter's energy, power and CO2 on ``http://host:port/metrics``.

    ``host`` is the loopback address by default: only this machine can scrape. Pass
    ``"0.0.0.0"`` (or the address of one interface) to let a Prometheus server on another
    machine in. ``port=0`` binds a free port (see ``.port``). Each scrape closes one window of
    the meter (at most one per ``min_interval_s``; see :class:`EnergyCollector`). A port that
    is taken or a host that cannot be bound raises :class:`OSError`.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0-65535, not {port!r}")
    collector, owns = _collector(meter, min_interval_s)
    return MetricsServer(collector, owns, host, port)


def check_gateway(gateway: str) -> str:
    """``gateway`` as a URL ``push_to_gateway`` takes (``host:port`` gets ``http://``), or
    :class:`~wattprint.errors.ConfigError` naming what is wrong with it. Reads nothing."""
    text = gateway.strip()
    url = text if "://" in text else f"http://{text}"
    problem = None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        problem = str(err)
    else:
        if parts.scheme not in ("http", "https"):
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.query or parts.fragment:
            problem = "it has a query or a fragment"
        elif any(c.isspace() for c in text):
            problem = "it contains spaces"
    if problem is not None:
        raise ConfigError(f"the Pushgateway must be a URL like http://pushgateway:9091, not "
                          f"{gateway!r}: {problem}")
    return url.rstrip("/")


class Pusher:
    """What :func:`push` returns: pushes every ``interval_s`` seconds on its own thread.

    A push that fails on the thread is logged (and given to ``on_error``) and tried again at
    the next interval; ``failures`` counts them and ``last_error`` keeps the latest.
    :meth:`close` stops the thread and pushes once more, so that the last figures reach the
    gateway (a failure of that push raises :class:`PushError`).
    """

    def __init__(
        self,
        collector: EnergyCollector,
        owns: bool,
        gateway: str,
        job: str,
        interval_s: float,
        grouping_key: Mapping[str, str],
        timeout_s: float,
        on_error: Callable[[PushError], None] | None,
    ) -> None:
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(collector)
        self.gateway = gateway
        self.job = job
        self.interval_s = interval_s
        self.grouping_key = dict(grouping_key)
        self.timeout_s = timeout_s
        self._owns = owns
        self._on_error = on_error
        self.pushes = 0
        self.failures = 0
        self.last_error: PushError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def push_now(self) -> None:
        """Close a window and push the metrics; :class:`PushError` when the gateway cannot
        be reached or refuses them."""
        try:
            push_to_gateway(self.gateway, job=self.job, registry=self.registry,
                            grouping_key=self.grouping_key, timeout=self.timeout_s)
        except urllib.error.HTTPError as err:
            raise PushError(f"the Pushgateway {self.gateway} refused the metrics: HTTP "
                            f"{err.code} {err.reason}") from err
        except urllib.error.URLError as err:
            raise PushError(f"cannot reach the Pushgateway {self.gateway}: "
                            f"{_reason(err.reason)}") from err
        except OSError as err:  # a timeout, a connection reset
            raise PushError(f"cannot push to the Pushgateway {self.gateway}: "
                            f"{_reason(err)}") from err
        self.pushes += 1

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wattprint-push", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.push_now()
            except PushError as err:
                self.failures += 1
                self.last_error = err
                log.warning("%s; trying again in %g s", err, self.interval_s)
                if self._on_error is not None:
                    self._on_error(err)

    def close(self) -> None:
        """Stop pushing; push the last figures once more (:class:`PushError` if that fails)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
        try:
            self.push_now()
        finally:
            if self._owns:
                self.collector.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        try:  # the block's own error is the one to see; a failed last push is only logged
            self.close()
        except PushError as err:
            log.warning("%s", err)

    def __repr__(self) -> str:
        return f"<Pusher {self.gateway} job={self.job!r} every {self.interval_s:g} s>"


def _reason(err: object) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def push(
    meter: EnergyMeter | EnergyCollector,
    gateway: str,
    *,
    job: str = "wattprint",
    interval_s: float = 10.0,
    grouping_key: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    on_error: Callable[[PushError], None] | None = None,
) -> Pusher:
    """Push the meter's metrics to a Prometheus Pushgateway now and every ``interval_s``
    seconds, until the returned :class:`Pusher` is closed (which pushes the last figures).

    For batch jobs, which end before a scrape would find them. ``gateway`` is
    ``http://host:9091`` or ``host:9091``; the metrics go under ``job`` and ``grouping_key``
    (default: ``{"instance": <this host's name>}``, so that machines do not overwrite each
    other), replacing what was there. The first push happens before this returns: a
    gateway that cannot be reached raises :class:`PushError` at once; later failures are
    logged and retried.
    """
    url = check_gateway(gateway)
    if not (interval_s > 0 and math.isfinite(interval_s)):
        raise ConfigError(f"interval_s must be a number of seconds > 0, not {interval_s}")
    if not job:
        raise ConfigError("job must be a non-empty name")
    key = {"instance": socket.gethostname()} if grouping_key is None else dict(grouping_key)
    collector, owns = _collector(meter, 0.0)
    pusher = Pusher(collector, owns, url, job, interval_s, key, timeout_s, on_error)
    try:
        pusher.push_now()
    except BaseException:
        if owns:
            collector.close()
        raise
    pusher._start()
    return pusher
