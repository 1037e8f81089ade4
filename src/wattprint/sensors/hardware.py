"""Hardware labels: the name a run is filed under, for comparing like with like.

:class:`Hardware` accepts any device name. A name the table :data:`PROFILES` knows gets that
entry's label and specs (kind, board power); any other name is kept, never refused. The rule,
applied by :func:`resolve_hardware` to a name given by a user, a config or NVML:

1. Runs of whitespace become one space; leading and trailing space goes.
2. A table entry's own label (any case: ``"h200"``) is that entry.
3. Else the first table entry one of whose phrases is a whole word or words of the name (any
   case: ``"NVIDIA H200"``, ``"NVIDIA A100-SXM4-80GB"``, ``"NVIDIA GeForce RTX 4090"``). A
   phrase followed by ``Laptop``, ``Mobile`` or ``Max-Q`` does not count: a laptop GPU is not
   its desktop namesake (``"RTX 4090 Laptop GPU"`` draws a fraction of the 450 W).
4. Else the name as given, less a leading ``"NVIDIA "`` (which NVML puts before every name):
   ``"NVIDIA B300 SXM6"`` is filed as ``"B300 SXM6"``. Its kind and board power are unknown
   (``None``) unless the caller knows the kind (:func:`detect_hardware` knows a GPU is one).

Only an empty name is refused.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Sensor

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence
    from functools import cache, lru_cache
    from typing import NamedTuple
else:
    from .._cache import cache, lru_cache
    from .._typing import NamedTuple

__all__ = [
    "PROFILES",
    "Hardware",
    "HardwareProfile",
    "MachineFacts",
    "detect_hardware",
    "machine_facts",
    "resolve_hardware",
]


class Hardware(NamedTuple):
    """A hardware label, with what is known of it: its kind and board power (TDP)."""

    #: The label runs are filed and rated under: ``"H100"``, ``"CPU"``, or a name as given.
    name: str
    #: ``"cpu"``, ``"gpu"`` or ``"soc"``; ``None`` for a name the table does not know.
    kind: str | None = None
    #: The maker's published board power in watts; ``None`` where not known or not published.
    tdp_w: float | None = None
    #: Phrases of a device name (as NVML or the CPU reports it) that identify a table entry.
    matches: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """True for an entry of :data:`PROFILES`."""
        return PROFILES.get(self.name.casefold()) == self


#: The former name of :class:`Hardware`.
HardwareProfile = Hardware


def _gpu(name: str, tdp_w: float, *matches: str) -> Hardware:
    return Hardware(name, "gpu", tdp_w, matches or (name,))


#: Makers' published board power (TDP, watts), of the highest-power form factor where a chip
#: comes in several (SXM over PCIe: the A100 PCIe is 250-300 W, the H100 PCIe 350 W, the H200
#: NVL 600 W); estimates use the GPU's own enforced power limit first. NVIDIA data-centre:
#: T4 70, V100 SXM2 300, P100 SXM2 300, A100 SXM4 400, A800 400, A30 165, A40 300, A10 150,
#: A10G 300 (AWS's part: no public datasheet; its power limit as NVML reports it), L4 72,
#: L40 300, L40S 350, H100 SXM5 700, H800 700, H200 SXM 700, H20 400, GH200 1000 (module, CPU
#: and memory included, configurable 450-1000), B100 700, B200 1000 (HGX B200), GB200 1200 (per
#: Blackwell GPU of a GB200 superchip, which is up to 2700 W with its two GPUs and Grace CPU).
#: Workstation: RTX A6000 300, RTX A5000 230, RTX A4000 140, RTX 6000 Ada 300. GeForce (total
#: graphics power): RTX 5090 575, RTX 5080 360, RTX 4090 450, RTX 4080 320, RTX 3090 Ti 450,
#: RTX 3090 350, RTX 3080 320. AMD Instinct: MI325X 1000, MI300X 750, MI250X 560, MI210 300.
#: Apple does not publish a TDP for its M chips (M1 to M4, Pro, Max, Ultra), nor NVIDIA one
#: figure for a Jetson module (each has power modes: 7-25 W for an Orin Nano, 15-60 W for an
#: AGX Orin): no figure is assumed. Entries whose phrase contains another's come first
#: ("RTX 3090 Ti" before "RTX 3090", "Apple M2 Pro" before "Apple M2").
PROFILES: dict[str, Hardware] = {
    p.name.casefold(): p
    for p in (
        Hardware("CPU", "cpu", None),
        _gpu("T4", 70.0),
        _gpu("V100", 300.0),
        _gpu("P100", 300.0),
        _gpu("A100", 400.0),
        _gpu("A800", 400.0),
        _gpu("A30", 165.0),
        _gpu("A40", 300.0),
        _gpu("A10G", 300.0),
        _gpu("A10", 150.0),
        _gpu("L4", 72.0),
        _gpu("L40S", 350.0),
        _gpu("L40", 300.0),
        _gpu("H100", 700.0),
        _gpu("H800", 700.0),
        _gpu("H200", 700.0),
        _gpu("H20", 400.0),
        _gpu("GH200", 1000.0),
        _gpu("B100", 700.0),
        _gpu("B200", 1000.0),
        _gpu("GB200", 1200.0),
        _gpu("A6000", 300.0),
        _gpu("A5000", 230.0),
        _gpu("A4000", 140.0),
        _gpu("RTX 6000 Ada", 300.0),
        _gpu("RTX 5090", 575.0),
        _gpu("RTX 5080", 360.0),
        _gpu("RTX 4090", 450.0),
        _gpu("RTX 4080", 320.0),
        _gpu("RTX 3090 Ti", 450.0),
        _gpu("RTX 3090", 350.0),
        _gpu("RTX 3080", 320.0),
        _gpu("MI325X", 1000.0),
        _gpu("MI300X", 750.0),
        _gpu("MI250X", 560.0),
        _gpu("MI210", 300.0),
        *(Hardware(f"M{n} {tier}", "soc", None, (f"Apple M{n} {tier}",))
          for n in (1, 2, 3, 4) for tier in ("Pro", "Max", "Ultra")),
        Hardware("M1", "soc", None, ("Apple M1",)),
        Hardware("M2", "soc", None, ("Apple M2",)),
        Hardware("M3", "soc", None, ("Apple M3",)),
        Hardware("M4", "soc", None, ("Apple M4",)),
        Hardware("Jetson AGX Orin", "soc", None, ("Jetson AGX Orin",)),
        Hardware("Jetson Orin NX", "soc", None, ("Jetson Orin NX",)),
        Hardware("Jetson Orin Nano", "soc", None, ("Jetson Orin Nano",)),
        Hardware("Jetson AGX Xavier", "soc", None, ("Jetson AGX Xavier",)),
        Hardware("Jetson Xavier NX", "soc", None, ("Jetson Xavier NX",)),
        Hardware("Jetson TX2 NX", "soc", None, ("Jetson TX2 NX",)),
        Hardware("Jetson TX2", "soc", None, ("Jetson TX2",)),
        Hardware("Jetson Nano", "soc", None, ("Jetson Nano",)),
    )
}

_NOT_DESKTOP = r"(?!\s+(?:Laptop|Mobile|Max-Q)\b)"


@cache
def _pattern(phrase: str) -> re.Pattern[str]:
    """A table phrase as a regex, compiled when a name could hold it (see :func:`_known`)."""
    import re

    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(rf"(?<!\w){words}(?!\w){_NOT_DESKTOP}", re.IGNORECASE)


@cache
def _phrases(kinds: tuple[str, ...]) -> tuple[tuple[Hardware, tuple[tuple[str, ...], ...]], ...]:
    """The entries of these kinds, each with its phrases as lower-case words."""
    return tuple((p, tuple(tuple(m.lower().split()) for m in p.matches))
                 for p in PROFILES.values() if p.kind in kinds)


@lru_cache(maxsize=256)  # a run's label is looked up again at every run
def _known(text: str, kinds: tuple[str, ...]) -> Hardware | None:
    """The first entry of these kinds named in ``text``, by whole words: "L4" is in
    "NVIDIA L4" but not in "NVIDIA L40S", "B200" not in "GB200".

    A phrase is compiled only when an ASCII ``text`` holds each of its words (a CPU's
    description holds none of the Apple and Jetson names, and a first measurement compiles
    no regex); any other text is searched with every phrase."""
    folded = text.lower() if text.isascii() else None
    for profile, phrases in _phrases(kinds):
        for phrase, words in zip(profile.matches, phrases, strict=True):
            if folded is not None and not all(w in folded for w in words):
                continue
            if _pattern(phrase).search(text):
                return profile
    return None


def resolve_hardware(name: str, kind: str | None = None) -> Hardware:
    """The label for the device called ``name``: a table entry, or the name as given.

    See the module's docstring for the rule. ``kind`` is the kind of an unknown device where
    the caller knows it. Only an empty name raises :class:`~wattprint.errors.ConfigError`.
    """
    text = " ".join(str(name).split())
    if not text:
        raise ConfigError("the hardware name is empty: use 'auto' or a device name")
    found = PROFILES.get(text.casefold()) or _known(text, ("gpu", "soc"))
    if found is not None:
        return found
    if text[:7].casefold() == "nvidia " and len(text) > 7:
        text = text[7:]
    return Hardware(text, kind)


def detect_hardware(sensors: Sequence[Sensor]) -> str:
    """The label for what the sensors read: the first GPU's, else an Apple chip's, else
    ``"CPU"``. A GPU the table does not know keeps its name (see :func:`resolve_hardware`)."""
    for sensor in sensors:
        if sensor.component.startswith("gpu"):
            text = sensor.description.split(" (", 1)[0].split(":", 1)[0]
            return resolve_hardware(text or "GPU", kind="gpu").name
    for sensor in sensors:
        found = _known(sensor.description, ("soc",))
        if found is not None:
            return found.name
    return "CPU"


class MachineFacts(NamedTuple):
    """What this machine is, for the rows of other tools' formats; None where unknown."""

    cpu_model: str | None
    ram_total_bytes: int | None


def machine_facts() -> MachineFacts:
    """This machine's CPU model name and installed memory, as the estimates read them."""
    from ..errors import WattprintError
    from .estimate import installed_memory_bytes, read_cpuinfo

    try:
        cpu_model: str | None = read_cpuinfo().model_name
    except WattprintError:
        cpu_model = None
    try:
        ram: int | None = installed_memory_bytes()
    except WattprintError:
        ram = None
    return MachineFacts(cpu_model, ram)
