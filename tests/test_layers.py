"""The layers of DESIGN.md hold: data flows down, nothing below imports from above.

Every module under ``src/wattprint`` is read with :mod:`ast` (nothing is imported, so a module
that would import torch costs nothing here) and each of its imports, at the top, inside a
function or under ``if TYPE_CHECKING``, is checked against the layer order::

    cli > study > report > score > store > sweep > optimize > workloads > footprint > meter
        > sensors

with the package root (the public facade) above all, and the small helpers every layer uses
(errors, logging, lazy exports, files, shipped data) below all. A module that is in no layer
fails the test: a new module is placed on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import wattprint

PACKAGE = "wattprint"
SRC = Path(wattprint.__file__).resolve().parent

# Bottom first. A module belongs to the first entry whose name is the module's, or a package
# above it. Every module may import its own layer and those below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("helpers", ("errors", "_lazy", "_log", "_version", "_files", "_console", "_data", "_job",
                 "_stats", "_numpy", "data", "_frozen", "_typing", "_cache", "_cgroup")),
    ("sensors", ("sensors",)),
    ("meter", ("meter", "measurement", "_sampler", "_training", "settings", "distributed")),
    ("footprint", ("footprint", "record")),
    ("workloads", ("workloads",)),
    ("optimize", ("optimize",)),
    ("sweep", ("sweep",)),
    ("store", ("store", "_summary", "_energy_score", "_grade")),
    ("score", ("score", "_score_text", "_savings")),
    ("report", ("report",)),
    ("study", ("study", "merge")),
    ("integrations", ("integrations", "_html")),
    ("cli", ("cli", "__main__", "demo", "_cli_workload")),
]
ROOT_RANK = len(LAYERS)  # the package's __init__: it re-exports every layer

# Crossings that exist on purpose, each with its reason; anything else upward fails.
KNOWN_CROSSINGS = {
    # A Measurement carries its footprint (``measurement.footprint``, ``EnergyMeter(country=)``
    # in the README), so the meter knows the footprint model DESIGN.md draws above it.
    ("wattprint.meter", "wattprint.footprint"),
    ("wattprint.measurement", "wattprint.footprint"),
    # The meter's training summary (its mixin) reads the footprint model's intensity and PUE:
    # the type, for the type checker only.
    ("wattprint._training", "wattprint.footprint"),
    # The meter's settings (WATTPRINT_*, wattprint.toml) check a tier or a place where it was
    # given, so that a bad one names its source.
    ("wattprint.settings", "wattprint.footprint"),
    # A record shows itself in a notebook (``_repr_html_``) through the one HTML renderer,
    # imported when a notebook asks for it.
    ("wattprint.measurement", "wattprint._html"),
    ("wattprint._summary", "wattprint._html"),
    ("wattprint.score", "wattprint._html"),
    ("wattprint.study", "wattprint._html"),
}

# The sensor backends: reached through the registry (``wattprint.sensors.detect``), never
# imported by name from outside ``wattprint.sensors``.
BACKENDS = ("amdsmi", "estimate", "hwmon", "nvml", "powermetrics", "process", "rapl")

# Scores and reports read stored records: they import nothing of what makes them (models,
# optimizations, sweeps).
READERS = ("score", "report")
PRODUCERS = ("workloads", "optimize", "sweep", "study", "_energy_score")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


MODULES = _modules()


def _is_module(name: str) -> bool:
    return name in MODULES


def _imports(name: str, path: Path) -> Iterator[str]:
    """The ``wattprint`` modules that module ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # ``from . import score`` imports the module score
                sub = f"{source}.{alias.name}"
                yield sub if _is_module(sub) else source


def _edges() -> Iterator[tuple[str, str]]:
    for name, path in MODULES.items():
        for target in _imports(name, path):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                yield name, target


def _within(name: str, stem: str) -> bool:
    full = f"{PACKAGE}.{stem}"
    return name == full or name.startswith(full + ".")


def _rank(name: str) -> int | None:
    if name == PACKAGE:
        return ROOT_RANK
    for rank, (_, stems) in enumerate(LAYERS):
        if any(_within(name, stem) for stem in stems):
            return rank
    return None


def _layer(rank: int) -> str:
    return "the package root" if rank == ROOT_RANK else LAYERS[rank][0]


def test_the_source_is_found() -> None:
    assert f"{PACKAGE}.meter" in MODULES and f"{PACKAGE}.cli" in MODULES


def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in MODULES if _rank(name) is None)
    assert not missing, (
        f"modules in no layer (place each in LAYERS of {__name__}): {', '.join(missing)}")


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for source, target in _edges():
        low, high = _rank(source), _rank(target)
        if low is None or high is None or (source, target) in KNOWN_CROSSINGS:
            continue  # a module in no layer fails the test above
        if high > low:
            wrong.append(f"{source} ({_layer(low)}) imports {target} ({_layer(high)})")
    assert not wrong, "imports from a higher layer:\n" + "\n".join(sorted(set(wrong)))


def test_known_crossings_still_exist() -> None:
    edges = set(_edges())
    gone = sorted(f"{a} -> {b}" for a, b in KNOWN_CROSSINGS if (a, b) not in edges)
    assert not gone, f"no longer crossing, remove from KNOWN_CROSSINGS: {', '.join(gone)}"


def test_only_the_sensors_package_imports_a_backend() -> None:
    wrong = sorted({
        f"{source} imports {target}" for source, target in _edges()
        if not _within(source, "sensors")
        and any(_within(target, f"sensors.{backend}") for backend in BACKENDS)})
    assert not wrong, ("a sensor backend imported from outside wattprint.sensors (use the "
                       "registry, or a module of the interface):\n" + "\n".join(wrong))


def test_scores_and_reports_import_nothing_that_makes_records() -> None:
    wrong = sorted({
        f"{source} imports {target}" for source, target in _edges()
        if any(_within(source, reader) for reader in READERS)
        and any(_within(target, producer) for producer in PRODUCERS)})
    assert not wrong, ("scores and reports read stored records; they import:\n"
                       + "\n".join(wrong))


# Other tools' names for quantities the code calls ``co2_g`` (grams) and ``duration_s``: they
# exist only where a view in another tool's shape is made, at the edge.
OTHER_SPELLINGS = frozenset({
    "co2_kg", "carbon_g", "total_carbon_g", "mean_carbon_g", "total_co2_emissions_kg",
    "duration_seconds",
})
VIEWS = {
    # ML Energy Score's measure_energy dict, and the training result beside it.
    ("wattprint._energy_score", "energy_score_view"),
    ("wattprint.workloads.harness", "measure_training"),
    # Energy-Meter's last_batch() / last_epoch() / summary().
    ("wattprint._training", "*"),
    # ML-EcoLyzer's final_report.analysis_summary, and its config's monitoring keys.
    ("wattprint._summary", "to_analysis_summary"),
    ("wattprint.sweep.config", "config_hash"),
}


def _spellings(path: Path) -> Iterator[tuple[str, str, int]]:
    """(enclosing top-level function or method, spelling, line) of each string constant or
    attribute/keyword name that is another tool's spelling; docstrings are text, not names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    tops: list[ast.stmt] = []
    for top in tree.body:  # a class's methods count by their own names
        tops += top.body if isinstance(top, ast.ClassDef) else [top]
    for top in tops:
        owner = getattr(top, "name", "<module>")
        for node in ast.walk(top):
            if isinstance(node, ast.Constant) and node.value in OTHER_SPELLINGS:
                yield owner, str(node.value), node.lineno
            elif isinstance(node, ast.Attribute) and node.attr in OTHER_SPELLINGS:
                yield owner, node.attr, node.lineno
            elif isinstance(node, ast.keyword) and node.arg in OTHER_SPELLINGS:
                yield owner, str(node.arg), getattr(node, "lineno", 0)


def test_one_spelling_per_quantity_inside_the_code() -> None:
    wrong = []
    for name, path in MODULES.items():
        for owner, spelling, line in _spellings(path):
            if (name, owner) not in VIEWS and (name, "*") not in VIEWS:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({owner}): {spelling!r}")
    assert not wrong, ("another tool's spelling outside the views made at the edge (inside, "
                       "co2_g and duration_s):\n" + "\n".join(wrong))
