"""Build fake Linux powercap trees in a directory, for tests and benchmarks.

A tree is a list of :class:`Zone` records; :func:`build_tree` writes them the way the kernel
shows them. Layouts:

* ``"sysfs"`` (default), as ``/sys/class/powercap``: real zone directories under their control
  type (``intel-rapl/intel-rapl:0/intel-rapl:0:1``) and a top-level symlink for every zone;
* ``"flat"``: every zone a real directory at the top level;
* ``"nested"``: top zones at the top level, subzones only inside their parent;
* ``"control"``: only ``<control type>/<zone>/<subzone>``, as ``/sys/devices/virtual/powercap``.

Tests move a counter with :func:`set_energy`, which rewrites ``energy_uj`` in place (same inode),
so a sensor that holds the file open sees the new value. A :class:`Ticker` moves counters on its
own, as hardware does, while a test detects or reads them. A zone with ``mirror_of`` shares its
``energy_uj`` (a hard link) with another zone: one counter exposed twice, as mirrored dies are.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["DEFAULT_MAX_RANGE_UJ", "LAYOUTS", "Ticker", "Zone", "build_tree", "set_energy"]

#: ``max_energy_range_uj`` of a typical Intel package zone: 2^32 energy units of 61.035 µJ.
DEFAULT_MAX_RANGE_UJ = 262_143_328_850
LAYOUTS = ("sysfs", "flat", "nested", "control")


@dataclass(frozen=True)
class Zone:
    """One powercap zone.

    ``zone_id`` is the directory name (``intel-rapl:0:1``): the control type, a colon, and the
    index path. ``max_energy_range_uj`` is written as given: ``None`` leaves the file out, a
    string is written verbatim (for garbage content). ``max_power_uw`` becomes
    ``constraint_0_max_power_uw`` (long term) and ``short_term_max_power_uw``
    ``constraint_1_max_power_uw`` when given. ``mirror_of`` names an earlier zone whose
    ``energy_uj`` this zone shares (a hard link; ``energy_uj`` is then ignored).
    """

    zone_id: str
    name: str
    energy_uj: int = 0
    max_energy_range_uj: int | str | None = DEFAULT_MAX_RANGE_UJ
    max_power_uw: int | None = None
    short_term_max_power_uw: int | None = None
    mirror_of: str | None = None

    @property
    def control(self) -> str:
        return self.zone_id.split(":", 1)[0]

    @property
    def parent_id(self) -> str | None:
        head, sep, _ = self.zone_id.rpartition(":")
        return head if sep and ":" in head else None


def build_tree(
    root: str | os.PathLike[str], zones: Sequence[Zone], *, layout: str = "sysfs"
) -> dict[str, Path]:
    """Write ``zones`` under ``root``; returns each zone's real directory by zone id.

    Parents must come before their subzones in ``zones``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    dirs: dict[str, Path] = {}
    for zone in zones:
        parent = zone.parent_id
        if parent is not None and layout != "flat":
            if parent not in dirs:
                raise ValueError(f"zone {zone.zone_id} comes before its parent {parent}")
            where = dirs[parent]
        elif layout in ("sysfs", "control"):
            where = base / zone.control
            where.mkdir(exist_ok=True)
            (where / "enabled").write_text("1\n")
        else:
            where = base
        path = where / zone.zone_id
        path.mkdir()
        _write_zone(path, zone)
        if zone.mirror_of is not None:
            (path / "energy_uj").unlink()
            os.link(dirs[zone.mirror_of] / "energy_uj", path / "energy_uj")
        dirs[zone.zone_id] = path
        if layout == "sysfs":
            (base / zone.zone_id).symlink_to(os.path.relpath(path, base))
    return dirs


def set_energy(zone_dir: str | os.PathLike[str], energy_uj: int) -> None:
    """Move a zone's counter to ``energy_uj``, rewriting the file in place."""
    with open(Path(zone_dir) / "energy_uj", "w", encoding="ascii") as f:
        f.write(f"{energy_uj}\n")


def _write_zone(path: Path, zone: Zone) -> None:
    (path / "name").write_text(f"{zone.name}\n")
    (path / "enabled").write_text("1\n")
    set_energy(path, zone.energy_uj)
    if zone.max_energy_range_uj is not None:
        text = zone.max_energy_range_uj
        (path / "max_energy_range_uj").write_text(text if isinstance(text, str) else f"{text}\n")
    if zone.max_power_uw is not None:
        (path / "constraint_0_name").write_text("long_term\n")
        (path / "constraint_0_max_power_uw").write_text(f"{zone.max_power_uw}\n")
    if zone.short_term_max_power_uw is not None:
        (path / "constraint_1_name").write_text("short_term\n")
        (path / "constraint_1_max_power_uw").write_text(f"{zone.short_term_max_power_uw}\n")


class Ticker:
    """Moves counters on a thread, as hardware does: every ``period_s``, each zone's
    ``energy_uj`` by its step in ``steps_uj`` (zone directory -> µJ).

    A context manager: ticks from ``__enter__`` to ``__exit__``. Values are written in place
    with a fixed width, so that a concurrent read never sees a half-written file.
    """

    def __init__(self, steps_uj: Mapping[Path, int], period_s: float = 0.001) -> None:
        self.period_s = period_s
        self.fds: list[tuple[int, int]] = []
        self.values: list[int] = []
        for zone_dir, step in steps_uj.items():
            path = Path(zone_dir) / "energy_uj"
            value = int(path.read_text())
            fd = os.open(path, os.O_WRONLY)
            os.pwrite(fd, _fixed(value), 0)  # the fixed width, before any read can race it
            self.fds.append((fd, step))
            self.values.append(value)
        self.ticks = 0
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self._running.is_set():
            for k, (fd, step) in enumerate(self.fds):
                self.values[k] += step
                os.pwrite(fd, _fixed(self.values[k]), 0)
            self.ticks += 1
            time.sleep(self.period_s)

    def __enter__(self) -> Ticker:
        self._running.set()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running.clear()
        self._thread.join()
        for fd, _ in self.fds:
            os.close(fd)


def _fixed(value: int) -> bytes:
    return f"{value:020d}\n".encode()
