"""The ``powermetrics`` stream and the sensors that read it: what :mod:`.powermetrics` uses
where the command can run (macOS, or a command given). Elsewhere this module is never imported.

The stream's timings (:data:`.powermetrics.FIRST_SAMPLE_TIMEOUT_S`, ``STALE_S``,
:data:`.powermetrics.IDLE_STOP_S`) are the backend's settings, read there at each use.
"""

from __future__ import annotations

import os
import time

from ..errors import SensorError
from . import powermetrics as backend
from .base import PowerSensor, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence
    from typing import IO, Any

__all__ = ["ApplePowerSensor", "PowermetricsStream"]

#: A sample is a few kilobytes; this many bytes without a NUL is not a plist stream.
_MAX_SAMPLE_BYTES = 1 << 20


class PowermetricsStream:
    """One ``powermetrics`` process and the latest sample it wrote, shared by three sensors.

    A generation is one run of the command. A run that ends in an error (the stream ended,
    the process died, a sample did not parse) raises in the next reading of each sensor that
    read it; the reading after that starts a new run.
    """

    def __init__(self, command: Sequence[str]) -> None:
        import threading  # here: on a machine without powermetrics, detection needs none

        self.command = tuple(command)
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self._latest: dict[str, float] | None = None
        self._latest_t = 0.0
        self.interval_s: float | None = None
        self._error: str | None = None
        #: The runs that ended in an error, with the error.
        self._failed: dict[int, str] = {}
        self._running = False
        self._last_use = 0.0
        self._holders = 0
        self._waiting = 0

    # -- used by the sensors --------------------------------------------------------------------

    def hold(self) -> None:
        with self._cond:
            self._holders += 1

    def release(self) -> None:
        with self._cond:
            self._holders -= 1
            last = self._holders <= 0
        if last:
            self.stop()

    def read(self, part: str, sensor: ApplePowerSensor) -> float:
        """The latest sample's watts of ``part``; starts the command if it is not running."""
        with self._cond:
            now = time.monotonic()
            self._last_use = now
            failed = self._failed.get(sensor.generation)
            if failed is not None:
                sensor.generation = -1  # told once; the next reading starts a new run
                raise SensorError(f"{sensor.name}: {failed}")
            if not self._running:
                self._start()
            sensor.generation = self.generation
            deadline = now + backend.FIRST_SAMPLE_TIMEOUT_S
            self._waiting += 1  # not idle: the reader does not stop the command meanwhile
            try:
                while self._latest is None and self._error is None and self._running:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._fail(f"no sample from {self._what()} within "
                                   f"{backend.FIRST_SAMPLE_TIMEOUT_S:g} s")
                        break
                    self._cond.wait(left)
            finally:
                self._waiting -= 1
            if self._error is not None:
                sensor.generation = -1
                raise SensorError(f"{sensor.name}: {self._error}")
            if self._latest is None:
                raise SensorError(f"{sensor.name}: {self._what()} was stopped (closed)")
            stale_s = max(backend.STALE_S, 5 * (self.interval_s or 0.0))
            age = time.monotonic() - self._latest_t
            if age > stale_s:
                self._fail(f"{self._what()} sent no sample for {age:.1f} s")
                sensor.generation = -1
                raise SensorError(f"{sensor.name}: {self._error}")
            watts = self._latest.get(part)
        if watts is None:
            raise SensorError(f"{sensor.name}: the powermetrics sample has no {part} power "
                              f"({part}_power or {part}_energy)")
        return watts

    def stop(self) -> None:
        """Stop the command (not an error: the next reading starts it again)."""
        with self._cond:
            proc, self._proc = self._proc, None
            self._running = False
            self._latest = None
            self._cond.notify_all()
        if proc is not None:
            _end(proc)

    # -- the process ------------------------------------------------------------------------------

    def _what(self) -> str:
        return f"powermetrics ({' '.join(self.command)})"

    def _start(self) -> None:  # with the condition held
        import subprocess
        import tempfile

        self.generation += 1
        self._error = None
        self._latest = None
        # stderr to a file, which never blocks the command; the reader closes it
        said = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=said, close_fds=True,
            )
        except OSError as err:
            said.close()
            self._fail(f"cannot start {self._what()}: {err.strerror or err}")
            return
        self._proc = proc
        self._running = True
        import threading

        thread = threading.Thread(target=self._reader, args=(proc, self.generation, said),
                                  name="wattprint-powermetrics", daemon=True)
        thread.start()

    def _fail(self, message: str) -> None:  # with the condition held
        """End the current run with an error; its process is stopped."""
        if self._error is None:
            self._error = message
        self._failed[self.generation] = self._error
        self._running = False
        self._latest = None
        proc, self._proc = self._proc, None
        self._cond.notify_all()
        if proc is not None:
            import threading

            threading.Thread(target=_end, args=(proc,), daemon=True).start()

    def _reader(self, proc: subprocess.Popen[bytes], generation: int, said: IO[bytes]) -> None:
        """Read the process's stream until it ends; keep the latest sample. Its stdout and
        the file its stderr goes to are closed here, once nothing reads them."""
        try:
            self._read_stream(proc, generation, said)
        finally:
            said.close()
            if proc.stdout is not None:
                proc.stdout.close()

    def _read_stream(self, proc: subprocess.Popen[bytes], generation: int,
                     said: IO[bytes]) -> None:
        import plistlib
        from xml.parsers.expat import ExpatError

        stdout = proc.stdout
        assert stdout is not None
        buffer = b""
        while True:
            chunk = _read_chunk(stdout)
            if not chunk:
                break
            buffer += chunk
            *pieces, buffer = buffer.split(b"\x00")
            if len(buffer) > _MAX_SAMPLE_BYTES:
                with self._cond:
                    if self.generation == generation and self._proc is proc:
                        self._fail(f"{self._what()} wrote {len(buffer)} bytes without a NUL: "
                                   "not a stream of plists (-f plist)")
                return
            for piece in pieces:
                piece = piece.strip()
                if not piece:
                    continue
                try:
                    sample = plistlib.loads(piece)
                    if not isinstance(sample, dict):
                        raise ValueError("not a dictionary")
                except (plistlib.InvalidFileException, ValueError, ExpatError) as err:
                    with self._cond:
                        if self.generation == generation and self._proc is proc:
                            self._fail(f"{self._what()} wrote a sample that is not a plist: "
                                       f"{type(err).__name__}: {err}")
                    return
                self._keep(proc, generation, sample)
            with self._cond:
                if self._proc is not proc:
                    return  # stopped or failed: the process is being ended
                if not self._waiting and time.monotonic() - self._last_use > backend.IDLE_STOP_S:
                    self._proc, self._running, self._latest = None, False, None
                    idle = True
                else:
                    idle = False
            if idle:
                _end(proc)
                return
        code = proc.wait()
        text = _read_rest(said)
        with self._cond:
            if self.generation == generation and self._proc is proc:
                tail = f": {text.splitlines()[-1]}" if text else ""
                self._fail(f"{self._what()} ended (exit code {code}){tail}")

    def _keep(self, proc: subprocess.Popen[bytes], generation: int,
              sample: dict[str, Any]) -> None:
        watts = backend.parse_sample(sample)
        elapsed = sample.get("elapsed_ns")
        with self._cond:
            if self.generation != generation or self._proc is not proc:
                return
            self._latest = watts
            self._latest_t = time.monotonic()
            if isinstance(elapsed, (int, float)) and elapsed > 0:
                self.interval_s = elapsed / 1e9
            self._cond.notify_all()


def _read_chunk(stream: IO[bytes]) -> bytes:
    try:
        return os.read(stream.fileno(), 65536)
    except (OSError, ValueError):  # ValueError: closed
        return b""


def _read_rest(said: IO[bytes]) -> str:
    """The end of what the process wrote to stderr (it has ended), as text."""
    try:
        size = said.seek(0, os.SEEK_END)
        said.seek(max(size - 4096, 0))
        return said.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process and reap it (its reader closes its pipes)."""
    import subprocess

    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except OSError:  # already gone
            pass


class ApplePowerSensor(PowerSensor):
    """The power of one part of an Apple chip (CPU, GPU or ANE) from the shared stream."""

    def __init__(self, stream: PowermetricsStream, component: str, part: str,
                 chip: str) -> None:
        self._stream = stream
        self._part = part
        self._closed = False
        self.generation = -1
        self.name = f"powermetrics:{part}"
        self.component = component
        self.source = Source.POWERMETRICS
        self.measured = True
        self.description = (f"{chip}: {part.upper()} power from powermetrics "
                            f"({part}_power, mW averaged over each sample), sampled")
        stream.hold()

    def power_w(self) -> float:
        if self._closed:
            raise SensorError(f"{self.name}: read after close()")
        return self._stream.read(self._part, self)

    def notes(self, duration_s: float) -> tuple[str, ...]:
        """A window shorter than the interval powermetrics averages power over."""
        interval = self._stream.interval_s
        if interval is not None and duration_s < interval:
            return (f"The window is shorter than the {interval * 1000:.0f} ms over which "
                    f"powermetrics averages power, so its {self.component} energy is that "
                    "average times its length, not its own draw.",)
        return ()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.release()
