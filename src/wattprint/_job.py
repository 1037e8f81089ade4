"""Running a program as a shell runs a job: ``wattprint measure``'s child process.

The program leads a process group of its own and, where wattprint holds the terminal, gets
the terminal's foreground while it runs; signals sent to wattprint go on to the whole group,
and a program that outlives a SIGTERM by ``kill_after_s`` is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

__all__ = ["Job"]


class Job:
    """Runs the program as a shell runs a job, and passes termination signals on to it.

    The program leads a process group of its own, so a signal reaches all it started (the
    children of a shell script too). When wattprint's group is the terminal's foreground group,
    the program's group is made the foreground while it runs, as a shell does: Ctrl-C then
    reaches the program once, from the terminal, and the program can read the terminal; the
    terminal is taken back after. When the terminal stops the program (Ctrl-Z, or a read from
    the background), wattprint stops too, so its shell sees the job stopped; continued (``fg``),
    it continues the program. SIGINT, SIGTERM and SIGHUP sent to wattprint go on to the
    program's group; a program still running ``kill_after_s`` seconds after a SIGTERM is killed
    (SIGKILL).
    """

    #: The signals passed on to the program's group.
    FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    #: The signals by which a terminal stops a job.
    TERMINAL_STOPS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)

    def __init__(self, kill_after_s: float) -> None:
        self.kill_after_s = kill_after_s
        self.killed = False
        self._child: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._tty = _controlling_terminal()
        self._timer_armed = False
        self._previous: dict[int, Any] = {}

    def spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        """Start ``command`` in a new process group, the terminal's foreground where
        wattprint's group is; signals that came before it started are passed on now."""
        foreground = self._foreground()
        if sys.version_info >= (3, 11):
            child = subprocess.Popen(command, process_group=0)
        else:  # Python 3.10 has no process_group: setpgrp is one system call, before exec
            child = subprocess.Popen(command, preexec_fn=os.setpgrp)
        self._child = child
        if foreground:
            self._hand_terminal(child.pid)
            # A program that read the terminal before it was handed over was stopped
            # (SIGTTIN); it goes on now. A program that was not stopped ignores this.
            self._signal_group(signal.SIGCONT)
        for signum in self._pending:
            self._forward(signum)
        return child

    def wait(self) -> int:
        """The program's exit status, once it has ended."""
        child = self._child
        assert child is not None
        if hasattr(os, "waitid"):
            self._wait_through_stops(child.pid)
        return child.wait()

    def _wait_through_stops(self, pid: int) -> None:
        """Return once the program has ended (not reaped: ``Popen.wait`` does that).

        Stopped by its terminal, the program's job is wattprint's: wattprint takes the terminal
        back and stops too, and once continued hands the terminal to the program again (if it
        is in the foreground) and continues it. Stopped otherwise (SIGSTOP), it is left to
        whoever stopped it to continue it.
        """
        while True:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT)
            if info is None or info.si_code != os.CLD_STOPPED:
                return
            if self._tty is None or info.si_status not in self.TERMINAL_STOPS:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WCONTINUED | os.WNOWAIT)
                continue
            self._take_terminal()
            os.kill(os.getpid(), signal.SIGSTOP)  # returns once wattprint is continued
            if self._foreground():
                self._hand_terminal(pid)
            self._signal_group(signal.SIGCONT)

    def _foreground(self) -> bool:
        """Whether wattprint's group is its terminal's foreground group."""
        if self._tty is None:
            return False
        try:
            return os.tcgetpgrp(self._tty) == os.getpgrp()
        except OSError:
            return False

    def _hand_terminal(self, pgid: int) -> None:
        assert self._tty is not None
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background tcsetpgrp
        try:
            os.tcsetpgrp(self._tty, pgid)
        except OSError:
            pass  # the terminal is gone: nothing to hand over
        finally:
            signal.signal(signal.SIGTTOU, previous)

    def _take_terminal(self) -> None:
        """The terminal back to wattprint's group, if the program's group holds it."""
        if self._tty is None or self._child is None:
            return
        try:
            holder = os.tcgetpgrp(self._tty)
        except OSError:
            return
        if holder == self._child.pid:
            self._hand_terminal(os.getpgrp())

    def _signal_group(self, signum: int) -> None:
        assert self._child is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._child.pid, signum)

    def _forward(self, signum: int) -> None:
        self._signal_group(signum)
        if signum != signal.SIGTERM or self._timer_armed:
            return
        self._timer_armed = True
        if self.kill_after_s > 0:
            signal.setitimer(signal.ITIMER_REAL, self.kill_after_s)
        else:
            self._kill()

    def _kill(self, signum: int = 0, frame: FrameType | None = None) -> None:
        assert self._child is not None
        if self._child.returncode is None:
            self.killed = True
            self._signal_group(signal.SIGKILL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._child is None:
            self._pending.append(signum)
        else:
            self._forward(signum)

    def __enter__(self) -> Job:
        for sig in self.FORWARDED:
            self._previous[sig] = signal.signal(sig, self._handle)
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._kill)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._take_terminal()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _controlling_terminal() -> int | None:
    """The file descriptor (stdin, stdout or stderr) of wattprint's controlling terminal, or
    None: ``tcgetpgrp`` answers only for the controlling terminal."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                os.tcgetpgrp(fd)
                return fd
        except OSError:
            continue
    return None
