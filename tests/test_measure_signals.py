"""``wattprint measure`` and signals: a program runs as a shell runs a job, in a process group
of its own. A SIGTERM reaches everything it started, a program that ignores it is killed after
``--kill-after``, and in a terminal it can still read the terminal and be stopped and continued.

Each test runs the real command in a separate process; the terminal ones on a real pty.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WATTPRINT = [sys.executable, "-m", "wattprint"]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_in(path: Path, proc: subprocess.Popen[str]) -> int:
    """The pid the program wrote to ``path``, once it has."""
    deadline = time.monotonic() + 120
    while not (path.exists() and path.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.02)
    return int(path.read_text())


def _measure(tmp_path: Path, script: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*WATTPRINT, "measure", "--json", *options, "--", "sh", "-c", script],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def leftovers() -> list[int]:
    """Pids a test started through wattprint; any still running afterwards is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


#: A shell that starts ``sleep`` in the background and waits for it; the sleep's output is not
#: wattprint's, so that a sleep left behind does not hold wattprint's pipes open.
BACKGROUND_SLEEP = "sleep 300 >/dev/null 2>&1 & echo $! > sleep.pid; wait"
#: A shell that runs ``sleep`` in the foreground (a non-interactive shell starts background
#: jobs with SIGINT ignored).
FOREGROUND_SLEEP = "sh -c 'echo $$ > sleep.pid; exec sleep 300 >/dev/null 2>&1'; echo after"


def test_sigterm_reaches_what_the_program_started(tmp_path: Path, leftovers: list[int]) -> None:
    proc = _measure(tmp_path, BACKGROUND_SLEEP)
    sleeper = _pid_in(tmp_path / "sleep.pid", proc)
    leftovers.append(sleeper)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert _gone_within(sleeper, 10), "the shell's background sleep outlived wattprint"
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    result = json.loads(stdout)
    assert result["exit_code"] == 128 + signal.SIGTERM
    assert result["measurement"]["duration_s"] > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_reach_the_whole_group(tmp_path: Path, leftovers: list[int],
                                                 sig: signal.Signals) -> None:
    proc = _measure(tmp_path, FOREGROUND_SLEEP)
    sleeper = _pid_in(tmp_path / "sleep.pid", proc)
    leftovers.append(sleeper)
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=120)
    assert _gone_within(sleeper, 10)
    assert json.loads(stdout)["exit_code"] == 128 + sig


def test_a_program_that_ignores_sigterm_is_killed_after_the_grace_period(
        tmp_path: Path, leftovers: list[int]) -> None:
    script = "trap '' TERM; echo $$ > sh.pid; " + BACKGROUND_SLEEP
    proc = _measure(tmp_path, script, "--kill-after", "1")
    sleeper = _pid_in(tmp_path / "sleep.pid", proc)
    shell = _pid_in(tmp_path / "sh.pid", proc)
    leftovers.extend([sleeper, shell])
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGKILL, stderr
    assert "SIGKILL" in stderr and "Traceback" not in stderr
    result = json.loads(stdout)  # what was measured is still printed
    assert result["exit_code"] == 128 + signal.SIGKILL
    assert result["measurement"]["energy_j"] >= 0
    assert _gone_within(shell, 10) and _gone_within(sleeper, 10)


def test_kill_after_must_not_be_negative() -> None:
    proc = subprocess.run([*WATTPRINT, "measure", "--kill-after", "-1", "--", "true"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--kill-after" in proc.stderr


# -- in a terminal ------------------------------------------------------------------------------

def _in_a_terminal(command: list[str]) -> tuple[int, int]:
    """``(pid, master fd)`` of ``command`` run with a new pty as its controlling terminal."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: wattprint, session leader of the pty
        os.execv(sys.executable, command)
    return pid, fd


def _read_until_closed(fd: int, seconds: float = 60) -> str:
    output = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the other side is closed
            break
        if not chunk:
            break
        output += chunk
    return output.decode(errors="replace")


def _status(pid: int, seconds: float = 60, flags: int = 0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG | flags)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("wattprint did not end (or stop) in time")


def test_the_program_reads_the_terminal(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (f"import pathlib, sys; pathlib.Path({str(ready)!r}).touch()\n"
             "print('read:', sys.stdin.readline().strip(), flush=True)\n")
    pid, fd = _in_a_terminal([*WATTPRINT, "measure", "--", sys.executable, "-c", child])
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline, "program never started"
        time.sleep(0.02)
    os.write(fd, b"typed line\n")
    text = _read_until_closed(fd)
    status = _status(pid)
    os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text
    assert "read: typed line" in text, text


#: A small job-control shell, session leader of a pty: it runs a command as a job of its own
#: process group, in the foreground (``fg``) or the background (``bg``). When the job stops,
#: it takes the terminal back, says so (``job-stopped``) and waits for the file ``fg``, then
#: continues the job in the foreground, as ``fg`` does. It exits with the job's exit code.
SHELL = """
import json, os, pathlib, signal, sys, time
command, mode, folder = json.loads(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    if mode == "fg":
        os.tcsetpgrp(0, os.getpid())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.executable, command)
try:
    os.setpgid(pid, pid)
except OSError:
    pass
(folder / "job.pid").write_text(str(pid))
if mode == "fg":
    os.tcsetpgrp(0, pid)
_, status = os.waitpid(pid, os.WUNTRACED)
if os.WIFSTOPPED(status):
    os.tcsetpgrp(0, os.getpgrp())
    (folder / "job-stopped").touch()
    deadline = time.monotonic() + 120
    while not (folder / "fg").exists():
        if time.monotonic() > deadline:
            sys.exit(101)
        time.sleep(0.02)
    os.tcsetpgrp(0, pid)
    os.killpg(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, 0)
os.tcsetpgrp(0, os.getpgrp())
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 100)
"""


def _wait_for(path: Path, what: str) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _job(tmp_path: Path, program: str, mode: str) -> tuple[int, int]:
    """``(shell pid, pty fd)`` of :data:`SHELL` running ``wattprint measure`` of the Python
    ``program`` as a job in ``mode``."""
    command = [*WATTPRINT, "measure", "--", sys.executable, "-c", program]
    return _in_a_terminal([sys.executable, "-c", SHELL, json.dumps(command), mode,
                           str(tmp_path)])


def _end_job(tmp_path: Path, shell: int, fd: int) -> None:
    """Kill whatever of the job is left (after a failure), and close the terminal."""
    pids = [shell]
    for name in ("job.pid", "program.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((tmp_path / name).read_text()))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(shell, os.WNOHANG)
    os.close(fd)


def test_ctrl_z_stops_the_job_and_fg_continues_the_program(tmp_path: Path) -> None:
    program = (f"import os, pathlib, time; folder = pathlib.Path({str(tmp_path)!r})\n"
               "(folder / 'program.pid').write_text(str(os.getpid()))\n"
               "while not (folder / 'fg').exists():\n    time.sleep(0.02)\n"
               "print('program done', flush=True)\n")
    shell, fd = _job(tmp_path, program, "fg")
    try:
        _wait_for(tmp_path / "program.pid", "the program never started")
        os.write(fd, b"\x1a")  # Ctrl-Z: the terminal stops its foreground group
        _wait_for(tmp_path / "job-stopped", "the shell never saw the job stop")
        (tmp_path / "fg").touch()
        text = _read_until_closed(fd)
        status = _status(shell)
    finally:
        _end_job(tmp_path, shell, fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text
    assert "program done" in text and "exit code  0" in text, text


def test_a_background_job_that_reads_the_terminal_stops_until_fg(tmp_path: Path) -> None:
    program = (f"import os, pathlib, sys; folder = pathlib.Path({str(tmp_path)!r})\n"
               "(folder / 'program.pid').write_text(str(os.getpid()))\n"
               "print('read:', sys.stdin.readline().strip(), flush=True)\n")
    shell, fd = _job(tmp_path, program, "bg")
    try:
        _wait_for(tmp_path / "job-stopped", "a read from the background did not stop the job")
        (tmp_path / "fg").touch()
        os.write(fd, b"typed line\n")
        text = _read_until_closed(fd)
        status = _status(shell)
    finally:
        _end_job(tmp_path, shell, fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text
    assert "read: typed line" in text, text
