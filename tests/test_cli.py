"""The ``wattprint`` command, run as a user runs it: a separate process."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nvml_standin import cli_with_gpus
from powercap import Zone, build_tree

WATTPRINT = [sys.executable, "-m", "wattprint"]


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WATTPRINT, *args], capture_output=True, text=True, timeout=120, **kwargs  # type: ignore[call-overload]
    )


def test_version() -> None:
    import wattprint

    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"wattprint {wattprint.__version__}"


@pytest.mark.parametrize("command", ["sensors", "measure", "score", "monitor", "merge"])
def test_help_shows_each_paragraph_whole_and_its_brackets(command: str) -> None:
    """Each paragraph of a command's help is wrapped by the terminal, not where the source
    broke its lines, and ``[tool.wattprint]`` is text, not rich markup."""
    from wattprint.cli import app

    [info] = [i for i in app.registered_commands
              if (i.name or getattr(i.callback, "__name__", "")) == command]
    doc = (info.callback.__doc__ or "").split("\n\n")
    wide = run(command, "--help", env={**os.environ, "COLUMNS": "1000"})
    assert wide.returncode == 0, wide.stderr
    shown = [line.strip() for line in wide.stdout.splitlines()]
    for paragraph in doc:
        assert " ".join(paragraph.split()) in shown, (paragraph, wide.stdout)
    narrow = run(command, "--help", env={**os.environ, "COLUMNS": "80"})
    text = narrow.stdout[:narrow.stdout.index("╭")]  # the prose, before the option panels
    lines = [line.strip() for line in text.strip().splitlines()[1:]]  # after "Usage:"
    for line, after in itertools.pairwise(lines):
        if line and after:  # within a paragraph: broken only where the next word did not fit
            assert len(line) + 1 + len(after.split()[0]) > 76, (line, narrow.stdout)


def test_sensors_on_a_two_socket_tree(tmp_path: Path) -> None:
    build_tree(
        tmp_path,
        [
            Zone("intel-rapl:0", "package-0", energy_uj=1000),
            Zone("intel-rapl:0:0", "dram", energy_uj=10),
            Zone("intel-rapl:1", "package-1", energy_uj=2000),
            Zone("intel-rapl:1:0", "dram", energy_uj=20),
        ],
    )
    r = run("sensors", "--json", "--powercap-root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    rapl = [s for s in data["sensors"] if s["source"] == "rapl"]
    assert sorted(s["component"] for s in rapl) == ["cpu", "cpu", "ram", "ram"]
    assert all(s["measured"] for s in rapl)
    assert not any(s["source"] == "estimate" for s in data["sensors"])
    human = run("sensors", "--powercap-root", str(tmp_path))
    assert human.returncode == 0
    assert "measured" in human.stdout and "package-1" in human.stdout


def test_sensors_without_counters_says_everything_is_estimated(tmp_path: Path) -> None:
    r = run("sensors", "--powercap-root", str(tmp_path / "absent"))
    assert r.returncode == 0, r.stderr
    assert "estimated" in r.stdout
    assert "rapl" in r.stdout  # why RAPL is missing, and how to enable it
    data = json.loads(run("sensors", "--json", "--powercap-root", str(tmp_path)).stdout)
    assert {m["backend"] for m in data["missing"]} >= {"rapl", "nvml"}
    assert all(m["reason"] for m in data["missing"])


def test_measure_prints_the_footprint_and_keeps_the_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = run(
        "measure", "--country", "FR", "--out", str(out), "--",
        sys.executable, "-c", "import sys; sum(range(10**6)); print('child says hi'); sys.exit(3)",
    )
    assert r.returncode == 3
    assert "child says hi" in r.stdout  # the program's own output is untouched
    for word in ("duration", "kWh", "CO2", "water", "estimated", "cpu"):
        assert word in r.stderr, word
    data = json.loads(out.read_text())
    m = data["measurement"]
    assert data["exit_code"] == 3
    assert m["energy_j"] > 0 and m["duration_s"] > 0
    assert m["energy_j"] == pytest.approx(sum(c["energy_j"] for c in m["components"].values()))
    assert "FR" in m["footprint"]["location"]
    assert all(not c["measured"] for c in m["components"].values())


def test_measure_prints_what_the_measurement_notes(tmp_path: Path) -> None:
    """A GPU whose energy counter stands still (the NVML stand-in, drawing 0 W): its energy is
    unknown, not zero, and the report on the terminal says so, as the JSON does."""
    out = tmp_path / "m.json"
    r = cli_with_gpus("[StandinGPU(power_mw=0)]", "measure", "--out", str(out), "--",
                      sys.executable, "-c", "import time; time.sleep(0.3)")
    assert r.returncode == 0, r.stderr
    notes = json.loads(out.read_text())["measurement"]["notes"]
    assert any("did not move during the window" in note for note in notes), notes
    for note in notes:
        assert f"note: {note}" in r.stderr, r.stderr


def test_the_librarys_warnings_reach_the_terminal_once(tmp_path: Path) -> None:
    """A warning nothing else reports (two models of GPU, numbered by CUDA otherwise than by
    NVML) is shown, a line, no traceback; one the report already says (why the CPU is an
    estimate, under the table) is not shown a second time."""
    r = cli_with_gpus('[StandinGPU(), StandinGPU(name="NVIDIA A100-SXM4-40GB", '
                      'uuid="GPU-00000000-0000-4000-8000-000000000001")]',
                      "measure", "--powercap-root", str(tmp_path / "absent"), "--",
                      sys.executable, "-c", "pass", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: GPUs of different models (NVIDIA A100-SXM4-40GB, NVIDIA H100 80GB HBM3) and "
        "CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers them fastest first, so gpu:N may "
        "not be cuda:N; set CUDA_DEVICE_ORDER=PCI_BUS_ID"], r.stderr
    assert "note: cpu and ram estimated, rapl: no powercap tree at" in r.stderr
    assert "estimating" not in r.stderr and "Traceback" not in r.stderr


def test_run_says_when_cells_run_without_their_time_limit(tmp_path: Path) -> None:
    """Where CUDA was initialised before the sweep (here said so by the runner's probe: this
    machine has no GPU), cells run in the sweep's own process, where a time limit cannot stop
    them: the user is told."""
    (tmp_path / "sweep.yaml").write_text(
        "project: p\nmodels: [{name: lr, source: 'sklearn:LogisticRegression'}]\n"
        "datasets: [{name: iris}]\nmonitoring: {repetitions: 1, warmup: 0}\n"
        "output: {export_formats: []}\n")
    code = ("import sys; from wattprint.sweep import runner; "
            "runner._cuda_initialised = lambda: True; "
            "from wattprint.cli import main; sys.argv = ['wattprint', 'run', 'sweep.yaml']; "
            "main()")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    assert ("warning: this process has initialised CUDA, which a forked worker cannot use: "
            "cells run in this process, without monitoring.cell_timeout_s"
            ) in r.stderr.splitlines(), r.stderr


def test_measure_says_why_the_cpu_was_estimated(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    r = run("measure", "--powercap-root", str(absent), "--", sys.executable, "-c", "pass",
            env={**os.environ, "COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    assert (f"note: cpu and ram estimated, rapl: no powercap tree at {absent} (wattprint "
            "sensors: how to enable it)") in r.stderr.splitlines(), r.stderr
    build_tree(tmp_path / "tree", [Zone("intel-rapl:0", "package-0", energy_uj=1000),
                                   Zone("intel-rapl:0:0", "dram", energy_uj=100)])
    r = run("measure", "--powercap-root", str(tmp_path / "tree"), "--", sys.executable, "-c",
            "pass")
    assert r.returncode == 0, r.stderr
    assert "rapl" in r.stderr and "estimated," not in r.stderr  # read: nothing to say


def test_measure_json_on_stdout() -> None:
    r = run("measure", "--json", "--intensity", "100", "--", sys.executable, "-c", "pass")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["measurement"]["footprint"]["intensity_g_per_kwh"] == 100


def test_interrupt_goes_to_the_child_and_the_measurement_is_still_printed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "m.json"
    ready = tmp_path / "ready"
    child = (  # ready inside the try: a SIGINT sent once it exists is always caught
        "import pathlib, time\n"
        f"try:\n    pathlib.Path({str(ready)!r}).touch(); time.sleep(30)\n"
        "except KeyboardInterrupt:\n"
        "    print('child interrupted', flush=True); raise SystemExit(42)\n"
    )
    proc = subprocess.Popen(
        [*WATTPRINT, "measure", "--out", str(out), "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert "child interrupted" in stdout
    assert proc.returncode == 42
    assert "Traceback" not in stderr
    data = json.loads(out.read_text())
    assert data["exit_code"] == 42 and data["measurement"]["duration_s"] > 0


def test_child_killed_by_a_signal_gives_128_plus_signal() -> None:
    r = run("measure", "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 15)")
    assert r.returncode == 128 + 15


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["measure", "--country", "Atlantis", "--", "true"], "Atlantis"),
        (["measure", "--pue", "0.5", "--", "true"], "pue"),
        (["measure", "--", "/no/such/program"], "/no/such/program"),
        (["measure", "--out", "/no/such/dir/m.json", "--", "true"], "/no/such/dir"),
        (["measure"], "Usage"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_2(args: list[str], needle: str) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle.lower() in (r.stderr + r.stdout).lower()
    assert "Traceback" not in r.stderr


def test_demo_workload_runs() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "wattprint._cli_workload", "--seconds", "0.2"],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert r.returncode == 0
    assert "rounds" in r.stdout


def test_locations_lists_what_footprint_accepts() -> None:
    r = run("locations", "cloud", "--search", "eu-west-1", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {(row["provider"], row["region"]) for row in rows} >= {("aws", "eu-west-1")}
    zone = next(row["zone"] for row in rows if row["region"] == "eu-west-1")
    # What is listed is what measure accepts.
    m = run("measure", "--json", "--cloud-region", "aws:eu-west-1", "--", sys.executable, "-c", "0")
    assert zone in json.loads(m.stdout)["measurement"]["footprint"]["location"]
    countries = run("locations", "countries", "-s", "germany")
    assert countries.returncode == 0 and "DE" in countries.stdout
    bad = run("locations", "planets")
    assert bad.returncode == 2 and "countries, zones, cloud" in bad.stderr


def test_text_with_brackets_is_shown_as_is(tmp_path: Path) -> None:
    # Rich would read "[nvidia]" as markup and drop it: the fix must be printed verbatim.
    # No pynvml to be found (sys.modules[name] = None hides it from find_spec and import):
    # the fix is to install the extra.
    code = ("import sys; sys.modules['pynvml'] = None; from wattprint.cli import main; "
            f"sys.argv = ['wattprint', 'sensors', '--powercap-root', {str(tmp_path)!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, check=False, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "wattprint[nvidia]" in r.stdout.replace("\n", "").replace("│", "").replace(" ", "")
    m = run("measure", "--", sys.executable, "-c", "x = [1][0]")
    assert "[1][0]" in m.stderr


def test_ctrl_c_in_a_terminal_reaches_the_child_once(tmp_path: Path) -> None:
    import pty

    out = tmp_path / "m.json"
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, time\n"
        "hits = []\n"
        "signal.signal(signal.SIGINT, lambda *a: hits.append(1))\n"
        f"pathlib.Path({str(ready)!r}).touch()  # ready once a SIGINT is counted\n"
        "deadline = time.monotonic() + 120\n"
        "while time.monotonic() < deadline and not hits:\n    time.sleep(0.01)\n"
        "time.sleep(0.3)  # a second, forwarded SIGINT would arrive in this time\n"
        "print('sigints:', len(hits), flush=True); raise SystemExit(42)\n"
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: wattprint, with the pty as its controlling terminal
        os.execv(sys.executable, [*WATTPRINT, "measure", "--out", str(out), "--",
                                  sys.executable, "-c", child])
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline, "program never started"
        time.sleep(0.02)
    os.write(fd, b"\x03")  # Ctrl-C: the terminal signals its whole foreground group
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the other side is closed
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.WEXITSTATUS(status) == 42, text
    assert "sigints: 1" in text, text  # once from the terminal, not again from wattprint
    assert json.loads(out.read_text())["exit_code"] == 42
