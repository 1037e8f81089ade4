"""Worker processes that can be stopped: where the sweep runner runs a model's cells.

A :class:`Worker` runs a function in a child made with ``os.fork``, so the child starts with
everything the parent built: the meter and its idle baseline, the config, the loaded data, the
formats registered with :func:`wattprint.register_format`. The child leads its own process
group, so a terminal's Ctrl-C reaches only the parent, and stopping a worker (``SIGKILL`` to
its group) also stops the processes it started. The child sends pickled tuples to the parent
through a one-way pipe; it never touches the parent's results store.

Where ``os.fork`` is missing (Windows), :data:`CAN_FORK` is False and the caller runs the work
in its own process instead.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn

__all__ = ["CAN_FORK", "Worker", "WorkerGone"]

#: Whether workers can be forked on this platform.
CAN_FORK = hasattr(os, "fork") and hasattr(os, "killpg")

#: How often the parent looks up from an idle pipe: to notice a worker that died while a
#: process it started holds the pipe open, and to let the caller refresh a progress display.
_SLICE_S = 1.0
#: How long a worker that said it is done may take to exit before it is killed.
_EXIT_GRACE_S = 10.0
#: ``prctl`` option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


class WorkerGone(Exception):
    """The worker exited; ``reason`` says how, in words for a stored error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Worker:
    """``target(send)`` running in a forked child; ``send.send(message)`` reaches the parent.

    The child exits when ``target`` returns (code 0) or raises (code 1, after sending
    ``("crash", text)`` and printing the traceback on stderr).
    """

    def __init__(self, target: Callable[[Connection], None]) -> None:
        receive, send = Pipe(duplex=False)
        parent = os.getpid()
        _flush()  # what the parent buffered is written once, not once more by the child
        # The child's garbage collector leaves alone what it inherits (frozen in the child),
        # as CPython's gc.freeze documents for fork: else its first collections walk every
        # object of the parent (torch, the frameworks, the data), writing to each and so
        # copying their pages, inside a measured window; 13 ms for the first one measured in
        # the demo, beside windows of 16 ms. The parent's objects are its own again at once.
        gc.freeze()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns when forking with threads: the meter's parked sampler is
                # rebuilt in the child, and no other thread's lock is taken there.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                _child(target, receive, send, parent)
        finally:
            if os.getpid() == parent:
                gc.unfreeze()
        send.close()
        with contextlib.suppress(OSError):  # the child does it too; whichever runs first
            os.setpgid(pid, pid)
        self.pid = pid
        self._conn = receive
        self._status: int | None = None
        self._crash: str | None = None

    def receive(self, timeout_s: float,
                tick: Callable[[], None] | None = None) -> tuple[Any, ...] | None:
        """The worker's next message, or None when none came within ``timeout_s``.

        Raises :class:`WorkerGone` once the worker has exited and its messages are read.
        ``tick`` is called about once a second while the pipe is idle.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._conn.poll(min(left, _SLICE_S)):
                try:
                    message: tuple[Any, ...] = self._conn.recv()
                except EOFError:
                    raise WorkerGone(self._reason(self._wait(_EXIT_GRACE_S))) from None
                if message[0] == "crash":
                    self._crash = str(message[1])
                    continue
                return message
            if self._exited():
                if self._conn.poll(0):
                    continue  # read what it sent before it exited
                raise WorkerGone(self._reason(self._wait(0)))
            if tick is not None:
                tick()

    def stop(self) -> None:
        """Kill the worker and every process of its group, now; close the pipe."""
        if self._status is None:
            self._kill_group()
            self._status = os.waitpid(self.pid, 0)[1]
        self._conn.close()

    def close(self) -> None:
        """Let a worker that is done exit (killing it if it lingers), stop what it started."""
        if self._status is None:
            self._wait(_EXIT_GRACE_S)
        self._conn.close()

    # -- its exit ------------------------------------------------------------------------------

    def _exited(self) -> bool:
        """Whether the worker has exited, without reaping it (its id stays reserved)."""
        if self._status is not None:
            return True
        if hasattr(os, "waitid"):
            found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            return found is not None
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self._status = status
        return bool(pid)

    def _wait(self, grace_s: float) -> int:
        """The worker's wait status once it has exited; killed after ``grace_s`` seconds.

        The processes it started are killed too, while its unreaped exit still reserves the
        group's id.
        """
        if self._status is None:
            deadline = time.monotonic() + grace_s
            while not self._exited() and time.monotonic() < deadline:
                time.sleep(0.01)
            self._kill_group()
            if self._status is None:
                self._status = os.waitpid(self.pid, 0)[1]
        return self._status

    def _kill_group(self) -> None:
        for kill, target in ((os.killpg, self.pid), (os.kill, self.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(target, signal.SIGKILL)

    def _reason(self, status: int) -> str:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            hint = " (out of memory?)" if number == signal.SIGKILL else ""
            return f"the worker process was killed by {name}{hint}"
        if self._crash is not None:
            return f"the worker process failed: {self._crash}"
        return f"the worker process exited with code {os.waitstatus_to_exitcode(status)}"


def _child(target: Callable[[Connection], None], receive: Connection,
           send: Connection, parent: int) -> NoReturn:
    code = 1
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        _die_with(parent)
        receive.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)  # the parent stops its workers itself
        # A progress display in the parent may have replaced the standard streams.
        sys.stdout = sys.__stdout__ or sys.stdout
        sys.stderr = sys.__stderr__ or sys.stderr
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)  # a background process group must not read the terminal
            os.close(null)
        _in_new_thread(target, send)
        code = 0
    except BaseException as err:
        with contextlib.suppress(Exception):
            send.send(("crash", f"{type(err).__name__}: {err}"))
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        _flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """On Linux, have the kernel kill this worker when the process that forked it dies (a
    SIGKILL, a crash), so that no orphan runs on; elsewhere it exits at its next message."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _in_new_thread(target: Callable[[Connection], None], send: Connection) -> None:
    """``target(send)`` on a new thread, not the forked main one: an OpenMP runtime (GNU
    libgomp, under torch and scikit-learn) keeps a team of threads per thread that ran a
    parallel region, and the main thread's team from before the fork is not in this process,
    so a parallel region there would wait for it forever. A new thread starts its own team."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            target(send)
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=run, name="wattprint-worker")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
