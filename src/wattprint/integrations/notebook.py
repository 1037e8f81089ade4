"""``%%wattprint``: the energy, carbon and water of a notebook cell.

Load it with ``%load_ext wattprint`` (``pip install "wattprint[notebook]"``), then start a cell
with ``%%wattprint [--country DE] [--zone ZONE] [--cloud-region REGION] [--name NAME]``. The
cell runs in the notebook's namespace, as it would without the magic, inside a window of an
:class:`~wattprint.EnergyMeter` (``sensors="auto"``: hardware counters where this machine has
them, visible estimates where not; one meter per location, made at its first cell). The
:class:`~wattprint.Measurement` is shown as a table with each figure's provenance and kept in
the namespace as ``_wattprint``; the cell's last expression is the cell's value, as usual.

A cell that raises is still measured: the measurement is shown and kept, then the error goes
on to the notebook. Arguments the magic does not know, or a location it cannot resolve, are a
short usage message (IPython's ``UsageError``), not a traceback.
"""

from __future__ import annotations

import argparse
import ast
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.display import display

from ..errors import WattprintError
from ..meter import EnergyMeter

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..measurement import Measurement

__all__ = ["RESULT_NAME", "CellMagic", "load_ipython_extension", "unload_ipython_extension"]

#: The name in the notebook's namespace that holds the last cell's measurement.
RESULT_NAME = "_wattprint"
_MAGIC = "wattprint"
_Site = tuple[str | None, str | None, str | None]
#: IPython's ``display`` (untyped there).
_display: Callable[[object], object] = display


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%%{_MAGIC}: {message}\n{self.format_usage().strip()}")


def _parser() -> _Parser:
    parser = _Parser(prog=f"%%{_MAGIC}", add_help=False,
                     description="Measure the energy, carbon and water of this cell.")
    parser.add_argument("--country", help="ISO country code of the grid (DE, FR, US, ...)")
    parser.add_argument("--zone", help="Electricity Maps zone (US-CAL-CISO, ...)")
    parser.add_argument("--cloud-region", dest="cloud_region",
                        help="cloud region (aws:eu-central-1, ...)")
    parser.add_argument("--name", help="the measurement's name (default: cell N)")
    return parser


class CellMagic:
    """The ``%%wattprint`` cell magic of one IPython shell, with its meters (one per
    location, made at first use and closed by :func:`unload_ipython_extension`)."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.meters: dict[_Site, EnergyMeter] = {}

    def meter(self, site: _Site) -> EnergyMeter:
        """The meter for a location, made once."""
        meter = self.meters.get(site)
        if meter is None:
            country, zone, cloud_region = site
            try:
                meter = EnergyMeter(country=country, zone=zone, cloud_region=cloud_region)
            except WattprintError as err:  # a location it cannot resolve, a bad sensor set-up
                raise UsageError(f"%%{_MAGIC}: {err}") from err
            self.meters[site] = meter
        return meter

    def wattprint(self, line: str, cell: str) -> Any:
        """Measure the energy, carbon and water of this cell.

        ``%%wattprint [--country DE] [--zone ZONE] [--cloud-region REGION] [--name NAME]``

        The cell runs in the notebook's namespace; its measurement is shown with each
        figure's provenance and kept as ``_wattprint``.
        """
        try:
            words = shlex.split(line)
        except ValueError as err:
            raise UsageError(f"%%{_MAGIC}: {err}") from err
        args = _parser().parse_args(words)
        meter = self.meter((args.country, args.zone, args.cloud_region))
        shell: Any = self.shell  # IPython's shell is mostly untyped
        name = args.name or f"cell {shell.execution_count}"
        source = shell.transform_cell(cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source))
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        where = shell.compile.cache(source, shell.execution_count)  # tracebacks show the cell
        body = shell.compile(tree, where, "exec")
        value = shell.compile(last, where, "eval") if last is not None else None
        namespace = shell.user_ns
        window = meter.window(name)
        try:
            with window:
                exec(body, namespace)
                result = eval(value, namespace) if value is not None else None
        finally:  # a cell that raised was measured all the same
            if window.measurement is not None:
                self._show(window.measurement)
        return result

    def _show(self, measurement: Measurement) -> None:
        self.shell.user_ns[RESULT_NAME] = measurement
        _display(measurement)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register ``%%wattprint`` (what ``%load_ext wattprint`` calls)."""
    magic = CellMagic(ipython)
    shell: Any = ipython  # register_magic_function is untyped
    shell.register_magic_function(magic.wattprint, magic_kind="cell", magic_name=_MAGIC)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove ``%%wattprint`` and close its meters (what ``%unload_ext wattprint`` calls)."""
    registered = ipython.magics_manager.magics["cell"].pop(_MAGIC, None)
    magic = getattr(registered, "__self__", None)
    if isinstance(magic, CellMagic):
        for meter in magic.meters.values():
            meter.close()
        magic.meters.clear()
