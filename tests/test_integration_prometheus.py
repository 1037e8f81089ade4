"""The Prometheus exporter: scraped over real HTTP, pushed to a real (tiny) HTTP server, and
``wattprint monitor`` run as a user runs it."""

from __future__ import annotations

import http.server
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from powercap import Zone, build_tree, set_energy
from prometheus_client.parser import text_string_to_metric_families
from readme_blocks import readme_block

import wattprint
from wattprint.errors import ConfigError
from wattprint.integrations.prometheus import (
    EnergyCollector,
    PushError,
    check_gateway,
    push,
    serve,
)
from wattprint.sensors import FakeSensor

WATTPRINT = [sys.executable, "-m", "wattprint"]
# Straight to 127.0.0.1, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str) -> Samples:
    with _OPENER.open(url, timeout=120) as response:
        assert response.status == 200
        return parse(response.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, sorted(samples))
    return found[0]


def has(samples: Samples, name: str, **labels: str) -> bool:
    return any(n == name and set(labels.items()) <= ls for (n, ls) in samples)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # prometheus_client pushes with urllib, which honours *_proxy variables.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# -- serving ---------------------------------------------------------------------------------


def test_scrapes_count_energy_up_with_provenance_and_power_times_time() -> None:
    meter = wattprint.EnergyMeter(
        [FakeSensor(power_w=50.0), FakeSensor(power_w=5.0, component="ram")],
        carbon_intensity_g_per_kwh=100.0, pue=1.5,
    )
    t_before = time.perf_counter()
    server = serve(meter, port=0, min_interval_s=0.0)
    t_served = time.perf_counter()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics" and server.port > 0
        fake = {"source": "fake", "measured": "false", "scope": "machine"}
        last = {"cpu": 0.0, "ram": 0.0}
        previous_ask = t_before
        for _ in range(4):
            time.sleep(0.15)
            t_ask = time.perf_counter()
            samples = scrape(server.url)
            t_got = time.perf_counter()
            # The power's interval: from the previous scrape (or the start) to this one.
            assert 0.15 <= value(samples, "wattprint_window_seconds") <= t_got - previous_ask
            previous_ask = t_ask
            for component, watts in (("cpu", 50.0), ("ram", 5.0)):
                energy = value(samples, "wattprint_energy_joules_total",
                               component=component, **fake)
                assert energy > last[component]  # a counter: it only grows
                last[component] = energy
                # The window opened inside serve() and closed inside the scrape.
                assert watts * (t_ask - t_served) - 1e-6 <= energy
                assert energy <= watts * (t_got - t_before) + 1e-6
                assert value(samples, "wattprint_power_watts", component=component,
                             **fake) == pytest.approx(watts)
                assert value(samples, "wattprint_sensor_up", component=component) == 1.0
                assert value(samples, "wattprint_sensor_errors_total",
                             component=component) == 0.0
            total_j = last["cpu"] + last["ram"]
            assert value(samples, "wattprint_co2_grams_total") == pytest.approx(
                total_j / 3.6e6 * 100.0 * 1.5)
            assert value(samples, "wattprint_carbon_intensity_grams_per_kwh",
                         pue="1.5") == 100.0
            assert value(samples, "wattprint_sensor_info", component="cpu",
                         kind="power", **fake) == 1.0
    finally:
        server.close()
        meter.close()
    assert meter.open_windows == ()  # the exporter's window ended with it
    assert not any(m.name.startswith("prometheus") for m in meter.history)


def test_a_measured_rapl_counter_is_passed_on_exactly(tmp_path: Path) -> None:
    dirs = build_tree(tmp_path, [Zone("intel-rapl:0", "package-0", energy_uj=1_000_000)])
    meter = wattprint.EnergyMeter(["rapl"], powercap_root=str(tmp_path))
    rapl = {"component": "cpu", "source": "rapl", "measured": "true"}
    with serve(meter, port=0, min_interval_s=0.0) as server:
        assert value(scrape(server.url), "wattprint_energy_joules_total", **rapl) == 0.0
        set_energy(dirs["intel-rapl:0"], 3_500_000)
        samples = scrape(server.url)
        assert value(samples, "wattprint_energy_joules_total", **rapl) == pytest.approx(2.5)
        assert value(samples, "wattprint_power_watts", **rapl) > 0
        assert value(samples, "wattprint_sensor_info", sensor="rapl:package-0",
                     kind="counter", **rapl) == 1.0
        set_energy(dirs["intel-rapl:0"], 4_000_000)
        assert value(scrape(server.url), "wattprint_energy_joules_total",
                     **rapl) == pytest.approx(3.0)
        assert value(scrape(server.url), "wattprint_energy_joules_total",
                     **rapl) == pytest.approx(3.0)
    meter.close()


def test_a_failing_sensor_shows_and_its_energy_is_never_invented() -> None:
    meter = wattprint.EnergyMeter(
        [FakeSensor(power_w=50.0),
         FakeSensor(power_w=20.0, component="gpu:0", fail_after_s=0.4)],
        carbon_intensity_g_per_kwh=100.0, pue=1.0,
    )
    seen: list[wattprint.Measurement] = []
    collector = EnergyCollector(meter, on_window=seen.append)
    with serve(collector, port=0) as server:
        first = scrape(server.url)
        assert value(first, "wattprint_sensor_up", component="gpu:0") == 1.0
        gpu_before = value(first, "wattprint_energy_joules_total", component="gpu:0")
        assert gpu_before > 0
        time.sleep(0.6)  # the GPU's sensor fails in this window
        runs = [scrape(server.url)]
        time.sleep(0.2)
        runs.append(scrape(server.url))
        for samples in runs:
            # Nothing is added for the window the sensor failed in, nor after.
            assert value(samples, "wattprint_energy_joules_total",
                         component="gpu:0") == gpu_before
            assert value(samples, "wattprint_sensor_up", component="gpu:0") == 0.0
            assert not has(samples, "wattprint_power_watts", component="gpu:0")
            assert value(samples, "wattprint_sensor_up", component="cpu") == 1.0
            assert value(samples, "wattprint_power_watts", component="cpu") == pytest.approx(50)
        assert value(runs[0], "wattprint_sensor_errors_total", component="gpu:0") == 1.0
        assert value(runs[1], "wattprint_sensor_errors_total", component="gpu:0") == 2.0
        lost = [value(s, "wattprint_unmeasured_seconds_total", component="gpu:0") for s in runs]
        assert 0.6 <= lost[0] < lost[1]
        assert value(runs[1], "wattprint_sensor_errors_total", component="cpu") == 0.0
        cpu = value(runs[1], "wattprint_energy_joules_total", component="cpu")
        assert value(runs[1], "wattprint_co2_grams_total") == pytest.approx(
            (cpu + gpu_before) / 3.6e6 * 100.0)
    assert not collector.closed  # the caller's collector: the server leaves it open
    collector.close()
    assert meter.open_windows == ()
    assert [m.partial for m in seen] == [False, True, True]
    assert any("simulated failure" in e for e in seen[1].errors)
    meter.close()


def test_scrapes_closer_than_the_shortest_window_get_the_same_figures() -> None:
    meter = wattprint.EnergyMeter([FakeSensor(power_w=50.0)])
    with serve(meter, port=0, min_interval_s=60.0) as server:
        first = scrape(server.url)
        time.sleep(0.1)
        assert scrape(server.url) == first
        assert value(first, "wattprint_energy_joules_total", component="cpu") > 0
    meter.close()


def test_a_bad_port_is_refused() -> None:
    meter = wattprint.EnergyMeter([FakeSensor(power_w=1.0)])
    with pytest.raises(ConfigError, match="port"):
        serve(meter, port=70_000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve(meter, port=taken.getsockname()[1])
    assert meter.open_windows == ()  # the window opened for the server that failed is closed
    meter.close()


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(readme_block("prometheus"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()
    samples = parse("\n".join(printed) + "\n")
    assert value(samples, "wattprint_energy_joules_total", component="cpu", source="fake",
                 measured="false") > 0


# -- pushing ---------------------------------------------------------------------------------


class Gateway:
    """A tiny HTTP server that records what is pushed to it (a Pushgateway stand-in)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self.status = 200
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                gateway.received.append((self.command, self.path, body))
                self.send_response(gateway.status)
                self.end_headers()

            do_PUT = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[Samples]:
        return [parse(body) for _, _, body in list(self.received)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    g = Gateway()
    yield g
    g.close()


def test_push_sends_growing_counters_and_the_last_figures_when_closed(gateway: Gateway) -> None:
    meter = wattprint.EnergyMeter([FakeSensor(power_w=50.0)])
    t0 = time.perf_counter()
    pusher = push(meter, gateway.url, job="train", interval_s=0.15,
                  grouping_key={"instance": "box-1"})
    t_pushed = time.perf_counter()
    assert len(gateway.received) == 1  # the first push is made before push() returns
    time.sleep(0.6)
    t_closing = time.perf_counter()
    pusher.close()
    t1 = time.perf_counter()
    meter.close()
    assert len(gateway.received) >= 4
    where = {(method, path) for method, path, _ in gateway.received}
    assert where == {("PUT", "/metrics/job/train/instance/box-1")}
    energies = [value(b, "wattprint_energy_joules_total", component="cpu", source="fake",
                      measured="false") for b in gateway.bodies()]
    assert energies == sorted(energies) and energies[0] < energies[-1]
    # The last push's window ends inside close(): 50 W over all the time pushed.
    assert 50.0 * (t_closing - t_pushed) - 1e-6 <= energies[-1] <= 50.0 * (t1 - t0) + 1e-6
    assert pusher.pushes == len(gateway.received) and pusher.failures == 0
    n = len(gateway.received)
    pusher.close()  # closing twice pushes nothing more
    assert len(gateway.received) == n


def test_a_failed_push_is_an_error_not_silence(gateway: Gateway) -> None:
    meter = wattprint.EnergyMeter([FakeSensor(power_w=50.0)])
    gateway.status = 500
    with pytest.raises(PushError, match="refused the metrics: HTTP 500"):
        push(meter, gateway.url, interval_s=0.1)
    assert meter.open_windows == ()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: nobody answers
        with pytest.raises(PushError, match="cannot reach"):
            push(meter, f"127.0.0.1:{port}", interval_s=0.1)
    # Later failures are retried, counted and told; the last push's failure raises.
    gateway.status = 200
    told: list[PushError] = []
    pusher = push(meter, gateway.url, interval_s=0.1, on_error=told.append)
    gateway.status = 503
    time.sleep(0.5)
    assert pusher.failures >= 2 and len(told) == pusher.failures
    assert pusher.last_error is not None and "503" in str(pusher.last_error)
    with pytest.raises(PushError, match="503"):
        pusher.close()
    meter.close()


@pytest.mark.parametrize("bad", ["ftp://gateway:9091", "http://", "http://host:port",
                                 "http://gw:9091/?x=1", "gw 9091"])
def test_a_gateway_that_is_no_url_is_refused_before_any_network(bad: str) -> None:
    with pytest.raises(ConfigError, match="Pushgateway must be a URL"):
        check_gateway(bad)


def test_a_bare_host_and_port_is_a_gateway() -> None:
    assert check_gateway("pushgateway:9091") == "http://pushgateway:9091"
    assert check_gateway("https://gw.example:443/") == "https://gw.example:443"


# -- the command -----------------------------------------------------------------------------


def monitor(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """Start ``wattprint monitor``; its stderr lines arrive on the queue."""
    proc = subprocess.Popen([*WATTPRINT, "monitor", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue[str], needle: str, seen: list[str]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never came: {seen}")


def stop(proc: subprocess.Popen[str], sig: int, lines: queue.Queue[str],
         seen: list[str]) -> str:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_monitor_serves_a_measured_counter_and_stops_cleanly(tmp_path: Path, sig: int) -> None:
    tree = tmp_path / "powercap"
    dirs = build_tree(tree, [Zone("intel-rapl:0", "package-0", energy_uj=7_000_000)])
    # The machine's energy, whatever mode the settings name for meters in programs.
    proc, lines = monitor("--port", "0", "--interval", "0.05", "--intensity", "200",
                          "--powercap-root", str(tree), cwd=tmp_path,
                          env={"WATTPRINT_MODE": "process"})
    seen: list[str] = []
    try:
        line = wait_for(lines, "serving http://127.0.0.1:", seen)
        url = line.split("serving ", 1)[1].strip()
        rapl = {"component": "cpu", "source": "rapl", "measured": "true", "scope": "machine"}
        before = value(scrape(url), "wattprint_energy_joules_total", **rapl)
        set_energy(dirs["intel-rapl:0"], 9_000_000)
        time.sleep(0.1)
        samples = scrape(url)
        assert value(samples, "wattprint_energy_joules_total", **rapl) == pytest.approx(
            before + 2.0)
        assert value(samples, "wattprint_sensor_up", **rapl) == 1.0
        assert value(samples, "wattprint_carbon_intensity_grams_per_kwh") == 200.0
        # The counter becomes unreadable: said on stderr and in the metrics, never guessed.
        (dirs["intel-rapl:0"] / "energy_uj").write_text("garbage\n")
        time.sleep(0.1)
        broken = scrape(url)
        assert value(broken, "wattprint_sensor_up", **rapl) == 0.0
        assert value(broken, "wattprint_sensor_errors_total", **rapl) >= 1.0
        assert value(broken, "wattprint_energy_joules_total", **rapl) == pytest.approx(
            before + 2.0)
        wait_for(lines, "cpu: sensor failed", seen)
    finally:
        text = stop(proc, sig, lines, seen)
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "stopped" in text


def test_monitor_pushes_and_pushes_once_more_when_stopped(tmp_path: Path,
                                                          gateway: Gateway) -> None:
    env_gateway = gateway.url.replace("http://", "")  # host:port works too
    proc, lines = monitor("--push", env_gateway, "--job", "batch", "--interval", "0.1",
                          "--intensity", "100", cwd=tmp_path)
    seen: list[str] = []
    try:
        wait_for(lines, "pushing to", seen)
        time.sleep(0.4)
        during = len(gateway.received)
    finally:
        text = stop(proc, signal.SIGTERM, lines, seen)
    assert proc.returncode == 0, text
    assert "serving" not in text  # --push alone serves nothing
    assert during >= 2 and len(gateway.received) > during  # the last push, at SIGTERM
    assert all(p.startswith("/metrics/job/batch/instance/") for _, p, _ in gateway.received)
    energies = [value(b, "wattprint_energy_joules_total", component="cpu")
                for b in gateway.bodies()]
    assert energies == sorted(energies) and energies[-1] > 0


def _free_port_taken() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "-1"], "--port must be 0-65535"),
        (["--port", "70000"], "--port must be 0-65535"),
        (["--interval", "0"], "--interval must be"),
        (["--push", "ftp://gateway:9091"], "scheme must be http or https"),
        (["--push", "http://"], "names no host"),
        (["--push", "http://127.0.0.1:PORT"], "cannot reach the Pushgateway"),
        (["--port", "PORT"], "cannot serve on 127.0.0.1"),
        (["--country", "Atlantis"], "atlantis"),
    ],
)
def test_monitor_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                                   needle: str) -> None:
    with _free_port_taken() as taken:
        port = str(taken.getsockname()[1])
        if "cannot reach" in needle:  # a port nobody listens on
            taken.close()
        r = subprocess.run([*WATTPRINT, "monitor", *(a.replace("PORT", port) for a in args)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle.lower() in r.stderr.lower(), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_import_wattprint_loads_no_prometheus_client() -> None:
    code = ("import sys, wattprint, wattprint.integrations, wattprint.cli; "
            "assert 'prometheus_client' not in sys.modules, 'loaded'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
