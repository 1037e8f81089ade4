"""Apple Silicon CPU, GPU and Neural Engine power from macOS ``powermetrics``.

``powermetrics --samplers cpu_power,gpu_power,ane_power -f plist -i 100`` writes one plist per
sample, each followed by a NUL byte. Its ``processor`` dictionary holds ``cpu_power``,
``gpu_power`` and ``ane_power`` in milliwatts, averaged over the sample's ``elapsed_ns`` (where
a release gives only ``cpu_energy``/``gpu_energy``/``ane_energy``, millijoules over the sample,
the power is that over ``elapsed_ns``). Three sensors share one stream: ``cpu``, ``gpu:0``
(the chip's GPU) and ``ane``; each reading is the latest sample's power, integrated by the
meter's sampler like any power-only sensor. The chip (``sysctl -n machdep.cpu.brand_string``,
``Apple M2 Pro``) leads each description, so runs are filed under it (``M2 Pro``).

The command runs only while it is read: it starts at the first reading (a window's first
edge, which waits for the first sample), and stops after :data:`IDLE_STOP_S` seconds without
a reading (no window open), or when its sensors are closed. A stream that ends, a process that
dies, a sample that cannot be parsed or a stream that falls silent raises
:class:`~wattprint.errors.SensorError` in the reading of every sensor that was using it, so the
window is marked partial; the next reading starts the command again.

``powermetrics`` needs root: run as root, or let this user run it without a password (a
sudoers rule) and give the command as ``powermetrics=["sudo", "-n", "/usr/bin/powermetrics",
...]``. The command is a parameter (``DetectOptions.powermetrics``): the argv to run, as given,
nothing appended (tests replay a recorded stream with a small script); ``False`` turns the
backend off. Off macOS detection says so at once, without starting anything.

This module is the backend: what detection asks on every machine, the stream's settings and
the parsing of a sample. The stream and its sensors are in :mod:`._powermetrics_stream`,
imported where the command can run (the classes are also reached here, by name).
"""

from __future__ import annotations

import os
import sys

from .._log import get_logger
from .base import MissingSensor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ._powermetrics_stream import ApplePowerSensor, PowermetricsStream
    from ._registry import DetectOptions
    from .base import Sensor

__all__ = [
    "COMMAND",
    "FIRST_SAMPLE_TIMEOUT_S",
    "IDLE_STOP_S",
    "NAME",
    "ApplePowerSensor",
    "PowermetricsStream",
    "available",
    "chip_name",
    "discover",
    "parse_sample",
]

NAME = "powermetrics"

log = get_logger(__name__)

#: The command run by default: CPU, GPU and ANE power every 100 ms, as NUL-separated plists.
COMMAND = ("/usr/bin/powermetrics", "--samplers", "cpu_power,gpu_power,ane_power",
           "-f", "plist", "-i", "100")
#: How long a first reading waits for the stream's first sample.
FIRST_SAMPLE_TIMEOUT_S = 5.0
#: A stream with no new sample for this long (or 5 sample intervals, if longer) is stalled.
STALE_S = 2.0
#: The command is stopped after this long without a reading (no window open).
IDLE_STOP_S = 5.0
ROOT_FIX = (
    "powermetrics needs root: run as root (sudo), or allow this user to run it without a "
    "password (`sudo visudo -f /etc/sudoers.d/powermetrics`, line "
    "`USER ALL=(root) NOPASSWD: /usr/bin/powermetrics`) and pass "
    "powermetrics=['sudo', '-n', '/usr/bin/powermetrics', '--samplers', "
    "'cpu_power,gpu_power,ane_power', '-f', 'plist', '-i', '100'] to EnergyMeter or detect"
)

#: Sensor component -> the sample's key.
_PARTS = (("cpu", "cpu"), ("gpu:0", "gpu"), ("ane", "ane"))


def parse_sample(sample: dict[str, Any]) -> dict[str, float]:
    """Watts of ``cpu``, ``gpu`` and ``ane`` in one powermetrics sample, where it has them."""
    processor = sample.get("processor")
    processor = processor if isinstance(processor, dict) else {}
    elapsed_ns = sample.get("elapsed_ns")
    elapsed_s = elapsed_ns / 1e9 if isinstance(elapsed_ns, (int, float)) and elapsed_ns > 0 \
        else None
    gpu = sample.get("gpu")
    found: dict[str, float] = {}
    for part in ("cpu", "gpu", "ane"):
        mw = _number(processor.get(f"{part}_power"))
        if mw is None and elapsed_s is not None:
            mj = _number(processor.get(f"{part}_energy"))
            if mj is None and part == "gpu" and isinstance(gpu, dict):
                mj = _number(gpu.get("gpu_energy"))
            if mj is not None:
                mw = mj / elapsed_s
        if mw is not None:
            found[part] = mw / 1000.0
    return found


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


# -- the backend ----------------------------------------------------------------------------------


def chip_name() -> str | None:
    """``Apple M2 Pro``: ``sysctl -n machdep.cpu.brand_string``; None off macOS or on failure."""
    if sys.platform != "darwin":
        return None
    import subprocess

    try:
        done = subprocess.run(["/usr/sbin/sysctl", "-n", "machdep.cpu.brand_string"],
                              capture_output=True, text=True, timeout=5.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def available(options: DetectOptions) -> bool:
    """True on macOS, or with a command given; never with ``powermetrics=False``."""
    if options.powermetrics is False:
        return False
    return options.powermetrics not in (None, True) or sys.platform == "darwin"


def discover(
    options: DetectOptions, covered: set[str]
) -> tuple[list[Sensor], list[MissingSensor]]:
    """The CPU, GPU and ANE sensors of an Apple chip, where no earlier backend covers them.

    Nothing is started here: the command runs while the sensors are read.
    """
    given = options.powermetrics
    if given is False:
        return [], []
    if given is None or given is True:
        if sys.platform != "darwin":
            return [], [MissingSensor(NAME, "not available: macOS only",
                                      "runs on Apple Silicon Macs (powermetrics ships with "
                                      "macOS)")]
        if os.uname().machine != "arm64":
            return [], [MissingSensor(NAME, "this Mac has an Intel CPU: powermetrics reads "
                                            "CPU, GPU and ANE power on Apple Silicon only")]
        if not os.path.exists(COMMAND[0]):
            return [], [MissingSensor(NAME, f"{COMMAND[0]} is missing",
                                      "powermetrics ships with macOS")]
        if os.geteuid() != 0:
            return [], [MissingSensor(NAME, "powermetrics needs root", ROOT_FIX)]
        command: Sequence[str] = COMMAND
    else:
        command = [str(a) for a in given]
        if not command:
            return [], [MissingSensor(NAME, "the powermetrics command given is empty")]
    chip = chip_name() or "Apple Silicon"
    from ._powermetrics_stream import ApplePowerSensor, PowermetricsStream

    stream = PowermetricsStream(command)
    sensors: list[Sensor] = [ApplePowerSensor(stream, component, part, chip)
                             for component, part in _PARTS if component not in covered]
    return sensors, []


#: The classes defined in :mod:`._powermetrics_stream` and reached here by name.
_STREAM_CLASSES = ("ApplePowerSensor", "PowermetricsStream")


def __getattr__(name: str) -> Any:
    """:class:`PowermetricsStream` and :class:`ApplePowerSensor`, from
    :mod:`._powermetrics_stream`, imported at the first use of one of them."""
    if name in _STREAM_CLASSES:
        from . import _powermetrics_stream

        return getattr(_powermetrics_stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
