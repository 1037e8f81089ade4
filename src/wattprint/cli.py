"""The ``wattprint`` command. Thin: parse, call the library, render with rich."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape as _markup_escape
from rich.table import Table
from rich.text import Text

from ._console import console, printable
from ._version import __version__
from .errors import WattprintError

if TYPE_CHECKING:
    from .measurement import Measurement
    from .sensors.base import MissingSensor
    from .settings import Settings
    from .store import Store
    from .study import Benchmark, BenchmarkResult

app = typer.Typer(
    name="wattprint",
    help="What machine-learning work really costs in energy, carbon and water.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = console()
err = console(stderr=True)


def escape(text: str) -> str:
    """``text`` for a rich markup string: control characters and bidi marks shown as escapes
    (names come from configs and stores, which strangers write), markup brackets escaped."""
    return _markup_escape(printable(text, newlines=True))


def _cell(value: object) -> Text:
    """A table cell showing ``value`` as plain text, control characters escaped."""
    return Text(printable(value))


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _check_out(out_file: Path | None) -> None:
    """Refuse an ``--out`` that cannot be written (a folder; a folder missing or read-only)
    before any work is done."""
    from ._files import check_writable

    if out_file is not None:
        try:
            check_writable(out_file)
        except WattprintError as e:
            _fail(f"--out: {e}")


def _settings(**given: Any) -> Settings:
    """The settings in effect (:mod:`wattprint.settings`), the options ``given`` winning; a bad
    value ends the command with its source named."""
    from .settings import load_settings

    try:
        return load_settings(given)
    except WattprintError as e:
        _fail(str(e))


def _db(db: Path | None) -> Path:
    """The results database: ``--db``, else WATTPRINT_DB or a settings file's ``db``, else
    wattprint.db."""
    if db is not None:
        return db
    return _settings().db or Path("wattprint.db")


def _check_db(db: Path) -> None:
    """Refuse a ``--db`` that is not there: the commands that read results never make one."""
    if not db.is_file():
        _fail(f"no results database at {db}; run a benchmark first (wattprint run CONFIG.yaml, "
              "or wattprint demo), or pass --db PATH")


def _version(value: bool) -> None:
    if value:
        out.print(f"wattprint {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """What machine-learning work really costs in energy, carbon and water."""


DB_HELP = "Results database (default: WATTPRINT_DB, the settings files, else wattprint.db)."
PowercapRoot = Annotated[
    Path | None, typer.Option("--powercap-root", hidden=True, help="Powercap sysfs root.")
]
# The site and sensor options of the commands that measure (measure, monitor), declared once.
Country = Annotated[str | None, typer.Option(help="ISO country code, e.g. DE or DEU.")]
Zone = Annotated[str | None, typer.Option(help="Electricity Maps zone.")]
CloudRegion = Annotated[str | None, typer.Option(help="e.g. aws:eu-west-1.")]
Intensity = Annotated[float | None, typer.Option(help="Grid carbon intensity, gCO2/kWh.")]
Pue = Annotated[float | None, typer.Option(help="Power usage effectiveness.")]
Wue = Annotated[float | None, typer.Option(help="Water usage effectiveness, L/kWh.")]
Tier = Annotated[str | None, typer.Option(help="datacenter, desktop or edge.")]
WaterIntensity = Annotated[float | None, typer.Option(
    help="Grid water consumption, L/kWh off site (default: the U.S. average).")]
CpuTdp = Annotated[float | None, typer.Option(help="CPU TDP in watts, for estimates.")]
SampleHz = Annotated[float | None, typer.Option(
    help="Power samples per second of power-only sensors (default: WATTPRINT_SAMPLE_HZ, "
         "the settings files, else 20).")]


@app.command()
def sensors(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cpu_tdp: CpuTdp = None,
    powercap_root: PowercapRoot = None,
) -> None:
    """List the energy sensors of this machine, how to enable missing ones, and the settings
    in effect (WATTPRINT_* variables, wattprint.toml, [tool.wattprint]) with their sources."""
    from .sensors import detect

    settings = _settings(cpu_tdp_w=cpu_tdp)
    try:
        found = detect(powercap_root=powercap_root, cpu_tdp_w=settings.cpu_tdp_w,
                       gpu_tdp_w=settings.gpu_tdp_w, mode=settings.mode)
    except WattprintError as e:
        _fail(str(e))
    if as_json:
        data = {
            "sensors": [s.to_dict() for s in found],
            "missing": [m.to_dict() for m in found.missing],
            "settings": settings.to_dict(),
        }
        out.print_json(json.dumps(data))
        return
    table = Table(title="Sensors found", title_justify="left")
    for col in ("component", "sensor", "provenance", "what is read"):
        table.add_column(col, overflow="fold")
    for s in found:
        provenance = "[green]measured[/]" if s.measured else "[yellow]estimated[/]"
        table.add_row(_cell(s.component), _cell(s.name), provenance, _cell(s.description))
    out.print(table)
    if found.missing:
        lacking = Table(title="Not available", title_justify="left")
        for col in ("backend", "why", "how to enable"):
            lacking.add_column(col, overflow="fold")
        for m in found.missing:
            lacking.add_row(_cell(m.backend), _cell(m.reason), _cell(m.fix or ""))
        out.print(lacking)
    _print_settings(settings)
    if not any(s.measured for s in found):
        out.print(
            "[yellow]No hardware counter is readable here: every figure will be an estimate "
            "and is marked so.[/]"
        )


def _print_settings(settings: Settings) -> None:
    table = Table(title="Settings in effect", title_justify="left",
                  caption=Text("Set them with WATTPRINT_* variables, wattprint.toml or "
                               "[tool.wattprint] in pyproject.toml"), caption_justify="left")
    for col in ("setting", "value", "from"):
        table.add_column(col, overflow="fold")
    for name, entry in settings.to_dict().items():
        value = entry["value"]
        if value is None:
            value = "wattprint.db" if name == "db" else "-"
        table.add_row(_cell(name), _cell(value), _cell(entry["source"]))
    out.print(table)


KINDS = ("countries", "zones", "cloud")


@app.command()
def locations(
    kind: Annotated[str, typer.Argument(help="countries, zones or cloud.")] = "countries",
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Keep rows containing this text.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the places with grid data: countries, Electricity Maps zones or cloud regions."""
    from .footprint import list_cloud_regions, list_countries, list_zones

    listers: dict[str, Callable[[], Sequence[Any]]] = {
        "countries": list_countries,
        "zones": list_zones,
        "cloud": list_cloud_regions,
    }
    if kind not in listers:
        _fail(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    rows = [r._asdict() for r in listers[kind]()]
    if search:
        needle = search.lower()
        rows = [r for r in rows if any(needle in str(v).lower() for v in r.values())]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        _fail(f"no {kind} match {search!r}")
    table = Table(title=f"{len(rows)} {kind}", title_justify="left")
    for col in rows[0]:
        table.add_column(col.replace("_", " "))
    for r in rows:
        table.add_row(*(_cell("" if v is None else str(v)) for v in r.values()))
    out.print(table)


def _why_estimated(result: dict[str, Any], missing: Sequence[MissingSensor]) -> str | None:
    """Why the CPU or memory of ``measure``'s result was estimated, not measured: the reason
    its counter's backend gave (no powercap tree, a root-only counter), or None."""
    estimated = [name for name, c in result["measurement"]["components"].items()
                 if not c["measured"] and name in ("cpu", "ram")]
    backend = "powermetrics" if sys.platform == "darwin" else "rapl"  # what would read them
    reasons = [f"{m.backend}: {m.reason}" for m in missing if m.backend == backend]
    if not estimated or not reasons:
        return None
    return (f"{' and '.join(estimated)} estimated, {'; '.join(dict.fromkeys(reasons))} "
            "(wattprint sensors: how to enable it)")


def _render(result: dict[str, Any], missing: Sequence[MissingSensor] = ()) -> None:
    """The human report of ``measure``, on stderr so the program's stdout stays clean; why
    the CPU and memory were estimated, where the meter's ``missing`` backends say."""
    m = result["measurement"]
    fp = m["footprint"]
    table = Table(title=_cell(f"wattprint: {result['command_line']}"), title_justify="left")
    for col in ("component", "energy (J)", "source", "provenance"):
        table.add_column(col, justify="right" if col == "energy (J)" else "left")
    for name, c in m["components"].items():
        provenance = "measured" if c["measured"] else "estimated"
        if c["scope"] != "machine":
            provenance += f" ({c['scope']} share)"
        table.add_row(_cell(name), f"{c['energy_j']:.3f}", _cell(c["source"]), provenance)
    table.add_section()
    table.add_row("total", f"{m['energy_j']:.3f}", "", "measured" if m["measured"] else
                  "contains estimates")
    err.print(table)
    lines = [
        f"duration   {m['duration_s']:.3f} s   mean power {m['power_w']:.2f} W",
        f"energy     {fp['kwh']:.6g} kWh",
        f"CO2        {fp['co2_g']:.4g} g   at {fp['intensity_g_per_kwh']:.4g} gCO2/kWh "
        f"({fp['intensity_source']}), PUE {fp['pue']:g}",
        f"water      {fp['water_l']:.4g} L   (WUE {fp['wue_l_per_kwh']:g} L/kWh on site, "
        f"{fp['water_intensity_l_per_kwh']:g} L/kWh off site)",
        f"exit code  {result['exit_code']}",
    ]
    if m["idle_j"] is not None:
        lines.insert(2, f"above idle {m['dynamic_j']:.3f} J   (idle {m['idle_j']:.3f} J)")
    for line in lines:
        err.print(line, markup=False)
    if m["partial"]:
        err.print("[bold yellow]partial measurement:[/] " + escape("; ".join(m["errors"])))
    for note in m["notes"]:  # what the measurement says about itself (a counter that stood still)
        err.print(f"note: {printable(note)}", markup=False)
    why = _why_estimated(result, missing)
    if why is not None:
        err.print(f"note: {printable(why)}", markup=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    no_args_is_help=True,
)
def measure(
    command: Annotated[list[str], typer.Argument(metavar="-- CMD [ARGS]...", help="The program.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write JSON here.")] = None,
    country: Country = None,
    zone: Zone = None,
    cloud_region: CloudRegion = None,
    intensity: Intensity = None,
    pue: Pue = None,
    wue: Wue = None,
    tier: Tier = None,
    water_intensity: WaterIntensity = None,
    cpu_tdp: CpuTdp = None,
    idle: Annotated[
        float, typer.Option(help="Seconds of idle calibration before the run (0: none).")
    ] = 0.0,
    sample_hz: SampleHz = None,
    kill_after: Annotated[float, typer.Option(
        "--kill-after", min=0.0, metavar="SECONDS",
        help="Seconds the program has to end after a SIGTERM sent to wattprint (passed on to "
             "it) before it is killed with SIGKILL; 0: at once.")] = 10.0,
    grade: Annotated[bool, typer.Option(
        "--grade", help="Store the run in the results database and grade its energy A-G "
                        "against the earlier runs of the same command there.")] = False,
    db: Annotated[Path | None, typer.Option(
        help="Results database of --grade (default: WATTPRINT_DB, the settings files, else "
             "wattprint.db).")] = None,
    codecarbon_csv: Annotated[Path | None, typer.Option(
        "--codecarbon-csv", metavar="FILE",
        help="Append the run to this CodeCarbon emissions.csv (the header is written when "
             "the file is new; a file with another header is refused).")] = None,
    host_id: Annotated[str | None, typer.Option(
        "--host-id", metavar="ID",
        help="This machine's name for 'wattprint merge' (default: WATTPRINT_HOST_ID, else the "
             "host name and machine id): different ids for cloned VMs that share a machine "
             "id, the same id for containers that share one machine.")] = None,
    powercap_root: PowercapRoot = None,
) -> None:
    """Run a program and print the energy, carbon and water it cost: like perf stat.

    With --grade, the run is stored in the results database and graded A (under 0.80x) to G
    (over 1.25x) by its energy against the median of the earlier runs of the same command in
    the same folder; D is the same within 3 %.
    """
    from ._job import Job
    from .meter import EnergyMeter

    if not command:
        _fail("no program given: wattprint measure -- CMD [ARGS]...")
    if db is not None and not grade:
        _fail("--db is where --grade stores the run; pass --grade too")
    _check_out(out_file)  # before the program runs: its energy is not spent for nothing
    if codecarbon_csv is not None:
        from .integrations.codecarbon import check_csv

        try:
            check_csv(codecarbon_csv)
        except WattprintError as e:
            _fail(f"--codecarbon-csv: {e}")
    store = None
    try:
        # The options given win; the others come from the settings (WATTPRINT_*, files).
        given: dict[str, Any] = {} if sample_hz is None else {"sample_hz": sample_hz}
        meter = EnergyMeter(
            **given,
            country=country,
            zone=zone,
            cloud_region=cloud_region,
            carbon_intensity_g_per_kwh=intensity,
            pue=pue,
            wue_l_per_kwh=wue,
            tier=tier,
            water_intensity_l_per_kwh=water_intensity,
            cpu_tdp_w=cpu_tdp,
            # The program is another process: this one's share (WATTPRINT_MODE=process) would
            # leave its work out. It meters the whole machine, under torchrun or not.
            mode="machine",
            distributed=False,
            powercap_root=str(powercap_root) if powercap_root else None,
        )
        if grade:  # before the program runs: a store that cannot be written is said first
            store = _grade_store(_db(db))
        if idle > 0:
            meter.calibrate_idle(idle)
    except WattprintError as e:
        _fail(str(e))
    meter.begin("command")
    with Job(kill_after) as forwarder:
        try:
            forwarder.spawn(command)
        except OSError as e:
            meter.end("command")
            if store is not None:
                store.close()
            _fail(f"cannot run {command[0]!r}: {e.strerror or e}")
        status = forwarder.wait()
    measurement = meter.end("command")
    meter.close()
    if forwarder.killed:
        err.print(f"wattprint: the program was still running {kill_after:g} s after SIGTERM; "
                  "killed it (SIGKILL)", markup=False)
    code = status if status >= 0 else 128 - status
    from .merge import REPORT_FORMAT, this_host

    result = {
        "command": command,
        "command_line": subprocess.list2cmdline(command),
        "exit_code": code,
        "wattprint_version": __version__,
        "sensors": [s.to_dict() for s in meter.sensors],
        "measurement": measurement.to_dict(),
        # What ``wattprint merge`` needs to count each machine of a job once.
        "host": this_host(host_id).to_dict(),
        "report_format": REPORT_FORMAT,
    }
    graded: str | None = None
    if store is not None:
        graded, code = _grade_run(store, result, measurement, code)
    text = json.dumps(result, indent=2)
    if out_file is not None:
        from ._files import write_text

        try:
            write_text(out_file, text + "\n")
        except WattprintError as e:
            # The measurement is not lost: it is still printed below.
            err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
            code = code or 2
    if codecarbon_csv is not None:
        from .integrations.codecarbon import MEASURE_PROJECT, append_rows, row_from_measurement

        try:
            append_rows(codecarbon_csv,
                        [row_from_measurement(measurement, project_name=MEASURE_PROJECT)])
        except WattprintError as e:  # the measurement is still printed below
            err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
            code = code or 2
    if as_json:
        print(text)
    else:
        _render(result, meter.missing)
    if graded is not None:
        err.print(graded, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _grade_store(db: Path) -> Store:
    """The results store ``measure --grade`` writes to, opened (made if new) before the program
    runs, so that a ``--db`` that cannot be a store is refused first."""
    from .errors import ConfigError
    from .store import Store

    if db.is_dir():
        raise ConfigError(f"--db {db} is a folder; pass the path of a results database")
    return Store(db)


def _grade_run(store: Store, result: dict[str, Any], measurement: Measurement,
               code: int) -> tuple[str | None, int]:
    """Store the run of ``measure --grade`` and grade it: the grade's line (None when the run
    could not be stored, which is said on stderr) and the exit code (2 for a program that
    succeeded but whose run was not stored). ``result`` gains the grade as ``"grade"``."""
    from ._grade import grade_run

    try:
        graded = grade_run(store, result["command"], measurement, result["exit_code"])
    except WattprintError as e:
        err.print(f"[bold red]error:[/] the run was measured but not stored or graded: "
                  f"{escape(str(e))}", soft_wrap=True)
        return None, code or 2
    finally:
        store.close()
    result["grade"] = graded.to_dict()
    return graded.message, code


@app.command()
def schema() -> None:
    """Print the JSON Schema of the benchmark config (for editors and validators)."""
    from .sweep.config import config_schema

    print(json.dumps(config_schema(), indent=2))


def _render_summary(result: BenchmarkResult) -> None:
    from .score import energy_text as _energy

    summary = result.summary
    rows = summary.models
    several = len({r.dataset for r in rows}) > 1
    table = Table(title=f"sweep {result.sweep_id}", title_justify="left")
    table.add_column("model", min_width=5)
    table.add_column("variant", min_width=7)
    if several:
        table.add_column("dataset")
    for column in ("energy/1k q", "quality", "params", "size"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("source")
    footnotes: list[tuple[str, str]] = []  # (colour, text): a failed cell, partial runs
    for row in rows:
        head = [escape(str(row.model)), escape(str(row.variant))]
        if several:
            head.append(escape(str(row.dataset)))
        where = f"{row.model} {row.variant} {row.dataset}"
        if row.errors and not row.repetitions:
            footnotes.append(("red", f"{where}: {row.errors[0]}"))
            table.add_row(*head, f"[red]failed ({len(footnotes)})[/]", "", "", "", "")
            continue
        kwh = row.kwh_per_1000_queries
        energy = "-" if kwh is None else _energy(kwh)
        if row.partial_runs:  # their energy misses what failed: the mean is not the model's
            why = "; ".join(dict.fromkeys(row.partial_errors)) or "a sensor failed"
            footnotes.append(("yellow", f"{where}: {row.partial_runs} of {row.repetitions} "
                                        f"runs partial, their energy without what failed: {why}"))
            energy += f" [yellow]partial ({len(footnotes)})[/]"
        quality = (str(row.quality) if row.quality is not None
                   else "-" if row.rmse is None else f"RMSE {row.rmse:.3g}")
        table.add_row(
            *head,
            energy,
            quality,
            "-" if row.num_parameters is None else f"{row.num_parameters:,}",
            "-" if row.size_bytes is None else _bytes(row.size_bytes),
            escape(str(row.provenance)),
        )
    out.print(table)
    for i, (colour, text) in enumerate(footnotes, 1):
        out.print(f"[{colour}]({i})[/] {escape(text)}", soft_wrap=True)
    out.print(
        f"total {_energy(summary.total_energy_kwh)}, "
        f"{summary.total_co2_g:.3g} g CO2, "
        f"{summary.total_water_l:.3g} L water; "
        f"{summary.runs_ok} cells ok, {summary.runs_failed} failed; stored in "
        f"{escape(result.db)}"
    )


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _set_executor(bench: Benchmark, executor: str | None, address: str | None) -> None:
    """``--executor`` and ``--address`` over the config's ``execution`` section; the ray
    executor without Ray installed ends the command here, before anything is stored."""
    from .sweep.config import ExecutionConfig

    if executor not in (None, "local", "ray"):
        _fail(f"--executor: {executor!r} is not allowed (allowed: local, ray)")
    execution = bench.config.execution
    backend = executor or execution.backend
    if address is not None and backend != "ray":
        _fail("--address is for --executor ray")
    if backend == "local":
        changed = ExecutionConfig()
    else:
        changed = ExecutionConfig(
            backend="ray", address=address if address is not None else execution.address,
            num_cpus=execution.num_cpus, num_gpus=execution.num_gpus)
        from .sweep.ray_executor import import_ray

        import_ray()
    bench.config = bench.config.model_copy(update={"execution": changed})


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Benchmark config (YAML).")],
    db: Annotated[Path | None, typer.Option(
        help="Results database (default: the config's output.db, else WATTPRINT_DB or the "
             "settings files, else wattprint.db).")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Exports and model variants (default: output.output_dir).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish the last sweep of this config.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    run_generated_code: Annotated[bool, typer.Option(
        "--run-generated-code",
        help="Run the tests of code task sets on the models' completions (pass_rate). That "
             "runs code a model wrote, as you: only for models you trust.")] = False,
    executor: Annotated[str | None, typer.Option(
        help="Where the cells run: local (worker processes here) or ray (tasks on a Ray "
             "cluster, wattprint[ray]). Default: the config's execution.backend, else local."
    )] = None,
    address: Annotated[str | None, typer.Option(
        help="The Ray cluster to join (auto, host:port) with --executor ray. Default: the "
             "config's execution.address, else a Ray instance started here.")] = None,
) -> None:
    """Run a benchmark sweep: every model x dataset x variant, measured and stored."""
    from .study import Benchmark
    from .sweep.runner import SweepInterrupted

    try:
        bench = Benchmark.from_yaml(config, db=db, output_dir=output_dir)
        if db is None and "db" not in bench.config.output.model_fields_set:
            # Neither --db nor the config's output.db: WATTPRINT_DB or a settings file's db.
            setting = _settings().db
            if setting is not None:
                bench = Benchmark.from_yaml(config, db=setting, output_dir=output_dir)
        _set_executor(bench, executor, address)
    except WattprintError as e:
        _fail(str(e))
    try:
        result = bench.execute(resume=resume, progress=None if not as_json else False,
                               run_generated_code=run_generated_code)
    except SweepInterrupted as e:
        err.print(f"[yellow]interrupted:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None  # 130 for Ctrl-C, 143 for SIGTERM
    if as_json:  # the documented report: Benchmark.run()'s dict
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _render_summary(result)
    for path in result.exports:
        err.print(f"wrote {escape(path)}")
    summary = result.summary
    if summary.runs_failed and not summary.runs_ok:
        err.print(f"[bold red]error:[/] every cell failed ({summary.runs_failed} of "
                  f"{summary.runs_failed}); nothing was measured. Their errors are above and "
                  f"stored in {escape(result.db)}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or codecarbon (CodeCarbon's "
                                     "emissions.csv columns and units).")] = "csv",
    sweep: Annotated[str | None, typer.Option(help="Sweep id (default: every sweep).")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write here, not stdout; with --split-phases, the folder for both files "
        "(default: the current folder).")] = None,
    db: Annotated[Path | None, typer.Option(help=DB_HELP)] = None,
    split_phases: Annotated[bool, typer.Option(
        "--split-phases", help="Write optimization_results.csv and inference_results.csv, "
        "as the optimization-energy study did, into the --out folder.")] = False,
) -> None:
    """Export stored results as CSV, JSON or CodeCarbon's emissions.csv, or as the optimization
    study's two CSV files."""
    from .store import Store

    if fmt not in ("csv", "json", "codecarbon"):
        _fail(f"--format must be csv or json, or codecarbon for CodeCarbon's emissions.csv; "
              f"not {fmt!r}")
    if split_phases and fmt != "csv":
        _fail(f"--split-phases writes CSV files; leave out --format {fmt}")
    db = _db(db)
    _check_db(db)
    folder = Path(".") if out_file is None else out_file
    if split_phases and folder.exists() and not folder.is_dir():
        _fail(f"--out: {folder} is a file; --split-phases writes two files into a folder")
    if not split_phases:
        _check_out(out_file)
    try:
        with Store(db, read_only=True) as store:
            if sweep is not None and sweep not in {s["id"] for s in store.sweeps()}:
                _fail(f"no sweep {sweep!r} in {db}; `wattprint export` without --sweep "
                      "exports them all")
            if split_phases:
                written = store.export_phases(folder, sweep_id=sweep)
            elif fmt == "codecarbon":
                from .integrations.codecarbon import export_text

                text = export_text(store, sweep_id=sweep, out=out_file)
            else:
                text = store.export(fmt, sweep_id=sweep, out=out_file)
    except WattprintError as e:
        _fail(str(e))
    if split_phases:
        for path in written:
            err.print(f"wrote {escape(str(path))}", soft_wrap=True)
    elif out_file is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def score(
    task: Annotated[str | None, typer.Option(help="Task (default: every task stored).")] = None,
    hardware: Annotated[str | None, typer.Option(help="Hardware (default: all).")] = None,
    method: Annotated[str, typer.Option(help="quintile or range.")] = "quintile",
    sweep: Annotated[str | None, typer.Option(help="Only this sweep's runs.")] = None,
    db: Annotated[Path | None, typer.Option(help=DB_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Star ratings (1-5) of the stored models, by energy per 1000 queries.

    Partial runs (a sensor failed mid-run) and runs with figures that are not finite are
    listed as not rated, with why; in --json they are entries with "rated": false and a
    "reason". Each model shows its repetitions' min - max and the 95 % interval of the mean
    (kwh_per_1000_queries_min/_max/_ci95_low/_ci95_high in --json); "≈" marks neighbours whose
    intervals overlap (ranking_significant: false), their order being within the noise.
    """
    from . import score as scoring

    db = _db(db)
    _check_db(db)
    try:
        if method not in scoring.METHODS:
            _fail(f"--method must be one of: {', '.join(scoring.METHODS)}; not {method!r}")
        groups = scoring.stored_groups(db, sweep_id=sweep)
        if not groups:
            _fail(f"no successful inference runs in {db}; run a benchmark first "
                  "(wattprint run CONFIG, or wattprint demo)")
        wanted = (None if hardware is None
                  else {hardware.lower(), scoring.hardware_label(hardware).lower()})
        chosen = [(t, h) for t, h in groups
                  if (task is None or t.lower() == task.lower())
                  and (wanted is None or h.lower() in wanted)]
        if not chosen:
            there = ", ".join(f"{t}/{h}" for t, h in groups)
            _fail(f"no runs for task {task or 'any'!r} on hardware {hardware or 'any'!r} in "
                  f"{db}; there are: {there}")
        scores: list[scoring.Score] = []
        unrated: list[scoring.Unrated] = []
        for t, h in chosen:
            rated = scoring.calculate_scores(t, h, method=method, db=db, sweep_id=sweep)
            scores += rated
            unrated += rated.unrated
    except WattprintError as e:
        _fail(str(e))
    if as_json:  # the rated models, then those not rated (rated: false, with the reason)
        entries = [s.to_dict() for s in scores] + [u.to_dict() for u in unrated]
        print(json.dumps(entries, indent=2))
    else:
        scoring.print_scores(scores, unrated=unrated, console=out)


@app.command()
def report(
    sweep: Annotated[str | None, typer.Option(help="Sweep id (default: the latest).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")]
    = Path("report.html"),
    db: Annotated[Path | None, typer.Option(help=DB_HELP)] = None,
) -> None:
    """Write one self-contained HTML report of a sweep (opens offline)."""
    from .report import write_report

    db = _db(db)
    _check_db(db)
    _check_out(out_file)
    try:
        path = write_report(db, sweep_id=sweep, out=out_file)
    except WattprintError as e:
        _fail(str(e))
    err.print(f"wrote {escape(str(path))}")


@app.command()
def label(
    model: Annotated[str, typer.Argument(help="Model, as `wattprint score` names it.")],
    task: Annotated[str | None, typer.Option(help="Task, if the model has several.")] = None,
    hardware: Annotated[str | None, typer.Option(help="Hardware, if several.")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="label.svg or label.png.")]
    = Path("label.svg"),
    sweep: Annotated[str | None, typer.Option(help="Only this sweep's runs.")] = None,
    db: Annotated[Path | None, typer.Option(help=DB_HELP)] = None,
) -> None:
    """Write an energy label card for a model: energy per 1000 queries, stars, CO2."""
    from .report import write_label

    db = _db(db)
    _check_db(db)
    _check_out(out_file)
    try:
        path = write_label(model, task=task, hardware=hardware, db=db, out=out_file,
                           sweep_id=sweep)
    except WattprintError as e:
        _fail(str(e))
    err.print(f"wrote {escape(str(path))}")


@app.command()
def monitor(
    port: Annotated[int | None, typer.Option(
        help="Port of /metrics (default 9105; 0: a free one, shown at the start). With --push "
             "and no --port, nothing is served.")] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. 127.0.0.1: only this machine can scrape; 0.0.0.0: any "
             "machine that can reach this one.")] = "127.0.0.1",
    push: Annotated[str | None, typer.Option(
        "--push", metavar="GATEWAY",
        help="Push the metrics to this Prometheus Pushgateway (http://host:9091) every "
             "--interval seconds and once more when stopped: for batch jobs.")] = None,
    job: Annotated[str, typer.Option(help="The Pushgateway job of --push.")] = "wattprint",
    interval: Annotated[float | None, typer.Option(
        metavar="SECONDS",
        help="Seconds between pushes (default 10). Serving only, the shortest window: a scrape "
             "sooner than this after the last one gets the same figures (default 1).")] = None,
    country: Country = None,
    zone: Zone = None,
    cloud_region: CloudRegion = None,
    intensity: Intensity = None,
    pue: Pue = None,
    wue: Wue = None,
    tier: Tier = None,
    water_intensity: WaterIntensity = None,
    cpu_tdp: CpuTdp = None,
    sample_hz: SampleHz = None,
    powercap_root: PowercapRoot = None,
) -> None:
    """Serve this machine's energy, power and CO2 as Prometheus metrics on /metrics, or push
    them to a Pushgateway, until stopped (Ctrl-C or SIGTERM).

    Energy is a counter per component (wattprint_energy_joules_total), with its source and
    whether it is measured or estimated as labels. A sensor that fails adds nothing: its
    wattprint_sensor_up drops to 0 and wattprint_sensor_errors_total grows.
    """
    import math
    import threading

    from .meter import EnergyMeter

    if port is not None and not 0 <= port <= 65535:
        _fail(f"--port must be 0-65535, not {port}")
    if interval is not None and not (interval > 0 and math.isfinite(interval)):
        _fail(f"--interval must be a number of seconds > 0, not {interval:g}")
    if not host.strip():
        _fail("--host must name an address, e.g. 127.0.0.1")
    if not job.strip():
        _fail("--job must be a non-empty name")
    try:
        from .integrations import prometheus as prom
    except WattprintError as e:
        _fail(str(e))
    gateway = None
    if push is not None:
        try:
            gateway = prom.check_gateway(push)
        except WattprintError as e:
            _fail(f"--push: {e}")
    hz: dict[str, Any] = {} if sample_hz is None else {"sample_hz": sample_hz}
    try:
        meter = EnergyMeter(
            **hz,
            country=country,
            zone=zone,
            cloud_region=cloud_region,
            carbon_intensity_g_per_kwh=intensity,
            pue=pue,
            wue_l_per_kwh=wue,
            tier=tier,
            water_intensity_l_per_kwh=water_intensity,
            cpu_tdp_w=cpu_tdp,
            powercap_root=str(powercap_root) if powercap_root else None,
            mode="machine",  # the machine's energy: WATTPRINT_MODE=process would meter this one
            distributed=False,
        )
    except WattprintError as e:
        _fail(str(e))
    failing: set[str] = set()

    def said(m: Measurement) -> None:
        """Say when a component's sensor fails and when it reads again (not every window)."""
        nonlocal failing
        now = set(meter.components) - set(m.components)
        for c in sorted(now - failing):
            err.print(f"wattprint monitor: {c}: sensor failed, its energy is left out until it "
                      f"reads again: {'; '.join(m.errors)}", markup=False, soft_wrap=True)
        for c in sorted(failing - now):
            err.print(f"wattprint monitor: {c}: sensor reads again", markup=False)
        failing = now

    collector = prom.EnergyCollector(
        meter, min_interval_s=(interval or 1.0) if gateway is None else 0.0, on_window=said)
    server = pusher = None
    code = 0
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if gateway is None or port is not None:
            at = prom.DEFAULT_PORT if port is None else port
            try:
                server = prom.serve(collector, port=at, host=host)
            except OSError as e:
                _fail(f"cannot serve on {host}:{at}: {e.strerror or e}")
            err.print(f"wattprint monitor: serving {server.url}", markup=False, soft_wrap=True)
        if gateway is not None:
            every = interval or 10.0
            try:
                pusher = prom.push(
                    collector, gateway, job=job, interval_s=every,
                    on_error=lambda e: err.print(f"wattprint monitor: {e}", markup=False,
                                                 soft_wrap=True))
            except WattprintError as e:
                _fail(f"--push: {e}")
            err.print(f"wattprint monitor: pushing to {gateway} every {every:g} s (job "
                      f"{job!r})", markup=False, soft_wrap=True)
        what = ", ".join(f"{s.component} ({s.name}, {'measured' if s.measured else 'estimated'})"
                         for s in meter.sensors)
        err.print(f"wattprint monitor: reading {what}; Ctrl-C or SIGTERM stops",
                  markup=False, soft_wrap=True)
        while not stop.wait(1.0):
            pass
        if pusher is not None:
            try:
                pusher.close()  # the last figures reach the gateway
            except WattprintError as e:
                err.print(f"[bold red]error:[/] the last push failed: {escape(str(e))}",
                          soft_wrap=True)
                code = 1
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        collector.close()
        meter.close()
    err.print("wattprint monitor: stopped", markup=False)
    raise typer.Exit(code)


@app.command()
def merge(
    files: Annotated[list[Path], typer.Argument(
        metavar="NODE.json...", help="The nodes' `wattprint measure --out` files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write JSON here.")] = None,
    allow_disjoint: Annotated[bool, typer.Option(
        "--allow-disjoint", help="Sum nodes whose measurement windows do not all overlap "
                                 "(refused by default: not one job).")] = False,
) -> None:
    """Sum the node reports of one distributed job into one job report, each machine once.

    Run `wattprint measure --out node-N.json -- torchrun ...` on each node, then merge the
    files. The same machine (host name or machine id) in two files is refused: it would count
    twice. Each node's CO2 and water are at its own site; the job's are their sums.
    """
    from ._files import write_text
    from .merge import merge_reports

    _check_out(out_file)
    try:
        job = merge_reports(files, allow_disjoint=allow_disjoint)
    except WattprintError as e:
        _fail(str(e))
    text = json.dumps(job.to_dict(), indent=2)
    if out_file is not None:
        try:
            write_text(out_file, text + "\n")
        except WattprintError as e:
            _fail(str(e))
    if as_json:
        print(text)
        return
    count = f"{len(job.nodes)} node" + ("s" if len(job.nodes) > 1 else "")
    table = Table(title=f"wattprint: one job on {count}", title_justify="left")
    for col in ("component", "energy (J)", "source", "provenance"):
        table.add_column(col, justify="right" if col == "energy (J)" else "left")
    for name, c in job.components.items():
        provenance = "measured" if c.measured else "estimated"
        table.add_row(_cell(name), f"{c.energy_j:.3f}", _cell(c.source.value), provenance)
    table.add_section()
    table.add_row("total", f"{job.energy_j:.3f}", "",
                  "measured" if job.measured else "contains estimates")
    err.print(table)
    for node in job.nodes:
        fp = node.measurement.footprint
        err.print(f"{printable(node.host.name)}: {fp.co2_g:.4g} g CO2 at "
                  f"{fp.intensity_g_per_kwh:.4g} gCO2/kWh ({printable(fp.location)}), "
                  f"{fp.water_l:.4g} L water", markup=False)
    err.print(f"job: {job.duration_s:.3f} s, {job.kwh:.6g} kWh, {job.co2_g:.4g} g CO2, "
              f"{job.water_l:.4g} L water", markup=False)
    if job.partial:
        err.print("[bold yellow]partial measurement:[/] " + escape("; ".join(job.errors)))
    for note in job.notes:
        err.print(f"note: {printable(note)}", markup=False)


@app.command()
def demo(
    db: Annotated[Path | None, typer.Option(help=DB_HELP)] = None,
    out_dir: Annotated[Path, typer.Option(help="Where report.html and labels/ go.")]
    = Path("."),
    country: Annotated[str | None, typer.Option(help="ISO country code for CO2.")] = None,
    repetitions: Annotated[int, typer.Option(min=1, help="Repetitions per cell.")] = 2,
) -> None:
    """Benchmark models on digits: training, int8 and pruned variants, stars, report, labels."""
    from . import score as scoring
    from .demo import run_demo
    from .sweep.runner import SweepInterrupted

    db = _db(db)
    if not db.parent.is_dir():
        _fail(f"--db: folder {str(db.parent)!r} does not exist")
    try:
        result = run_demo(db=db, out_dir=out_dir, country=country, repetitions=repetitions)
    except SweepInterrupted as e:
        err.print(f"[yellow]interrupted:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None  # 130 for Ctrl-C, 143 for SIGTERM
    except WattprintError as e:
        _fail(str(e))
    _render_summary(result.benchmark)
    rows = [r for r in result.benchmark.runs if r.phase == "inference"]
    scores: list[scoring.Score] = []
    unrated: list[scoring.Unrated] = []
    for t, h in scoring.available_groups(rows):
        rated = scoring.calculate_scores(t, h, records=rows)
        scores += rated
        unrated += rated.unrated
    scoring.print_scores(scores, console=out, unrated=unrated)
    out.print(f"report: {escape(str(result.report_html))}; labels: "
              f"{escape(str(result.labels[0].parent)) if result.labels else '-'}")


def _plain_help() -> None:
    """Each command's help as the terminal should show it: each paragraph one line, for the
    terminal to wrap (Typer keeps a docstring's line breaks, which at any width but the
    source's leave a short line at each), and brackets shown, not read as rich markup
    (``[tool.wattprint]`` would vanish)."""
    for info in app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback is not None else None)
        if doc:
            paragraphs = [" ".join(line.strip() for line in p.splitlines())
                          for p in doc.strip().split("\n\n")]
            info.help = _markup_escape("\n\n".join(p for p in paragraphs if p))


_plain_help()


def _show_warnings() -> None:
    """Show wattprint's warnings on stderr, a line each (``warning: ...``; an exception's
    type and message at its end, no traceback), except those logged with
    :data:`wattprint._log.IN_RESULTS`, whose news the command's own output carries (an
    estimate and why, a sensor's failure, a run not rated). The library itself only logs."""
    import logging

    class Shown(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "in_results", False):
                return
            try:
                text = record.getMessage()
            except (TypeError, ValueError):  # a message and its arguments that do not fit
                self.handleError(record)
                return
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text += f" ({type(error).__name__}: {error})"
            err.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)

    logging.getLogger("wattprint").addHandler(Shown(logging.WARNING))


def main() -> None:
    """Entry point of the ``wattprint`` script."""
    if hasattr(signal, "SIGXFSZ"):
        # A file-size limit (ulimit -f) then fails the write with EFBIG, which is reported as
        # one line, instead of killing the process with a half-written file behind it.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _show_warnings()
    try:
        app()
    except WattprintError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        sys.exit(2)
