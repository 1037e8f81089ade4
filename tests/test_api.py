"""The public API is what the docs promise, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import wattprint

DOCUMENTED = {
    "Benchmark",
    "ComponentEnergy",
    "ConfigError",
    "CounterWrapError",
    "Dataset",
    "DatasetError",
    "EnergyMeter",
    "FakeSensor",
    "Footprint",
    "LocationError",
    "Measurement",
    "MissingExtra",
    "Model",
    "ModelError",
    "Quality",
    "RunRecord",
    "SensorError",
    "SensorPermissionError",
    "SensorUnavailable",
    "Site",
    "Store",
    "StoreError",
    "UntrustedModelError",
    "WattprintError",
    "Window",
    "WindowError",
    "__version__",
    "calculate_scores",
    "detect",
    "footprint",
    "load_dataset",
    "load_model",
    "measure",
    "measure_energy",
    "measure_training",
    "print_scores",
    "quality",
    "register_format",
    "track_emissions",
}


def test_exported_names_are_the_documented_ones() -> None:
    assert set(wattprint.__all__) == DOCUMENTED
    for name in wattprint.__all__:
        assert hasattr(wattprint, name), name


def test_footprint_is_a_public_module_that_is_called_like_the_function() -> None:
    """``wattprint.footprint(joules, ...)`` keeps working, and ``wattprint.footprint`` is the
    module whose names the docs use, before and after the submodule is imported by name."""
    code = (
        "import wattprint\n"
        "first = wattprint.footprint(3.6e6, country='DE')\n"
        "import wattprint.footprint as module\n"
        "from wattprint.footprint import Site, footprint, list_zones\n"
        "assert wattprint.footprint is module, type(wattprint.footprint)\n"
        "assert module.Site is Site is wattprint.Site\n"
        "again = wattprint.footprint(3.6e6, country='DE')\n"
        "assert again == footprint(3.6e6, country='DE') == first\n"
        "assert first.kwh == 1.0 and first.co2_g > 0\n"
        "site = Site(country='DE', tier='datacenter')\n"
        "assert footprint(1.0, site=site).to_dict()['site'] == site.to_dict()\n"
        "assert footprint(1.0, site=site).to_dict()['site']['tier'] == 'datacenter'\n"
        "assert list_zones()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_sensors_package_exports() -> None:
    import wattprint.sensors as sensors

    for name in sensors.__all__:
        assert hasattr(sensors, name), name
    assert sensors.detect is wattprint.detect


def test_errors_form_one_tree() -> None:
    for name in ("SensorError", "LocationError", "ConfigError", "WindowError"):
        assert issubclass(getattr(wattprint, name), wattprint.WattprintError)
    assert issubclass(wattprint.SensorPermissionError, PermissionError)
    assert issubclass(wattprint.LocationError, ValueError)
    assert issubclass(wattprint.CounterWrapError, wattprint.SensorError)


def test_import_is_light() -> None:
    heavy = ["torch", "pandas", "onnxruntime", "matplotlib", "sklearn", "tensorflow",
             "transformers", "pynvml", "typer", "rich", "psutil", "pydantic", "yaml", "sqlite3"]
    code = (
        "import sys, wattprint; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    assert _stdout(code).strip() == ""


def test_library_logs_and_does_not_print() -> None:
    """Records go to the application's handlers, never to stderr on their own; until the
    application has loaded :mod:`logging`, nothing could show them and it is not loaded."""
    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)

    silent = run("import logging, wattprint.meter\n"
                 "wattprint.meter.log.warning('nobody asked for this')\n"
                 "print(logging.getLogger('wattprint.meter').getEffectiveLevel())")
    assert silent.stderr == "" and silent.stdout.strip() == "30"
    shown = run("import logging, wattprint.meter\n"
                "logging.basicConfig(format='%(name)s|%(filename)s|%(lineno)d|%(message)s')\n"
                "wattprint.meter.log.warning('window %r: %s', 'w', 'left out')\n"
                "wattprint.meter.log.debug('not at this level')\n")
    assert shown.stderr.splitlines() == ["wattprint.meter|<string>|3|window 'w': left out"]
    unloaded = run("import sys, wattprint.meter\n"
                   "wattprint.meter.log.warning('dropped')\n"
                   "print('logging' in sys.modules)")
    assert unloaded.stderr == "" and unloaded.stdout.strip() == "False"


def _stdout(code: str) -> str:
    """What ``python -c code`` prints, in a fresh process (it must exit 0)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout


def _first_window_loads(meter_args: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh process has loaded after ``EnergyMeter(meter_args)``,
    one window, and the hardware label of its sensors."""
    code = (
        "import sys, wattprint\n"
        f"m = wattprint.EnergyMeter({meter_args})\n"
        "m.begin('w'); m.end('w')\n"
        "from wattprint.sensors.hardware import detect_hardware\n"
        "detect_hardware(m.sensors)\n"
        f"print(' '.join(n for n in {modules!r} if n in sys.modules))"
    )
    return _stdout(code).split()


def test_a_first_window_loads_no_logging_or_pathlib() -> None:
    """What the first measurement costs at start-up: the meter, its sensors and a window
    import neither :mod:`logging` nor :mod:`pathlib`, nor :mod:`typing` or
    :mod:`dataclasses` (nor anything heavy), nor :mod:`datetime` (a window's times are read
    as dates only when asked for), :mod:`bisect` (only a replayed trace needs it),
    :mod:`contextlib` or :mod:`importlib.util` (the GPU backends ask the finders directly
    whether their vendor module is installed), nor :mod:`importlib` itself (the lazy names
    resolve their modules with ``wattprint._lazy.import_module``), nor :mod:`enum`,
    :mod:`functools` or :mod:`collections` (``Source`` is an enumeration of its own; caches
    come from ``wattprint._cache``)."""
    assert _first_window_loads("nvml=False", ("logging", "pathlib", "typing", "dataclasses",
                                              "inspect", "numpy", "psutil", "datetime",
                                              "bisect", "contextlib", "importlib.util",
                                              "importlib", "enum", "functools",
                                              "collections")) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the driver marks are Linux's")
def test_a_first_window_without_gpu_drivers_loads_no_gpu_sensor_module(tmp_path: Path) -> None:
    """Where no NVIDIA or AMD driver is loaded and the machine is not a Mac, the GPU backends
    say why they are missing without defining their sensor classes (no module that holds
    ``GpuEnergyCounter``, ``AmdEnergyCounter`` or the ``powermetrics`` stream is loaded) or
    importing the vendor's module: a first measurement loads only what its window reads."""
    absent = str(tmp_path / "no-driver")
    code = (
        "import sys\n"
        "from wattprint.sensors import amdsmi, nvml\n"
        f"nvml.DRIVER_MARKS = amdsmi.DRIVER_MARKS = ({absent!r},)\n"
        "import wattprint\n"
        "m = wattprint.EnergyMeter()\n"
        "m.begin('w'); m.end('w')\n"
        "print(' '.join(sorted({s.backend for s in m.missing})))\n"
        "classes = ('GpuEnergyCounter', 'AmdEnergyCounter', 'PowermetricsStream')\n"
        "print(' '.join(n for n, mod in list(sys.modules.items()) if n in ('pynvml', 'amdsmi')"
        " or n.startswith('wattprint') and any(c in vars(mod) for c in classes)))\n"
    )
    missing, loaded = _stdout(code).split("\n")[:2]
    assert {"amdsmi", "nvml", "powermetrics"} <= set(missing.split())  # each said why
    assert loaded == ""


def test_a_first_window_compiles_no_regex_where_no_device_needs_one(tmp_path: Path) -> None:
    """Without a powercap tree or power rails, and with a TDP given (no CPU name to match),
    a first measurement imports neither :mod:`re` nor :mod:`csv`: the estimate's table and
    the hardware label are looked up without compiling a pattern."""
    none = str(tmp_path / "none")
    assert _first_window_loads(
        f"nvml=False, amdsmi=False, powermetrics=False, powercap_root={none!r}, "
        f"hwmon_root={none!r}, cpu_tdp_w=65", ("re", "csv")) == []


def test_a_meter_of_estimates_starts_no_thread_and_loads_no_threading(tmp_path: Path) -> None:
    """Counters read at the window's edges (estimates, as on a VM without RAPL) need no
    sampler: a first measurement, the open windows and closing the meter do without
    :mod:`threading`. A power sensor's meter, made after, still starts its sampler and
    samples (the condition it parks on is made with the thread)."""
    none = str(tmp_path / "none")
    code = (
        "import sys, time, wattprint\n"
        f"m = wattprint.EnergyMeter(nvml=False, amdsmi=False, powermetrics=False, "
        f"powercap_root={none!r}, hwmon_root={none!r}, cpu_tdp_w=65)\n"
        "m.begin('w'); print(m.open_windows); m.end('w'); m.close()\n"
        "print('threading' in sys.modules)\n"
        "p = wattprint.EnergyMeter([wattprint.FakeSensor(power_w=10.0)], sample_hz=100)\n"
        "with p.window('w') as w:\n"
        "    time.sleep(0.1)\n"
        "print(p._shared.thread is not None, w.measurement.samples > 1)\n"
        "p.close()\n"
        "print(p._shared.thread.is_alive())\n"
    )
    assert _stdout(code).split("\n")[:4] == ["('w',)", "False", "True True", "False"]


def test_import_module_answers_as_importlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lazy names' import: importlib.import_module's module, for names relative to a
    package (one dot or two) and absolute ones, and its error for one that is not there."""
    import importlib

    from wattprint._lazy import import_module

    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert import_module("colorsys", "wattprint").__name__ == "colorsys"  # imported for it
    for name, package in ((".meter", "wattprint"), ("..sensors.fake", "wattprint.report"),
                          (".", "wattprint.sensors"), ("colorsys", "wattprint")):
        assert import_module(name, package) is importlib.import_module(name, package), name
    with pytest.raises(ModuleNotFoundError):
        import_module(".no_such_module", "wattprint")
    monkeypatch.setitem(sys.modules, "colorsys", None)  # made unimportable on purpose
    with pytest.raises(ModuleNotFoundError):
        import_module("colorsys", "wattprint")


def test_installed_answers_as_find_spec_without_importing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the GPU backends ask before importing a vendor module: the answer of
    importlib.util.find_spec, got from the import system's finders directly."""
    import importlib.util

    from wattprint._lazy import installed

    for name in ("json", "sqlite3", "wattprint", "no_such_module_here", "_io", "pytest"):
        assert installed(name) is (importlib.util.find_spec(name) is not None), name
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert installed("colorsys") and "colorsys" not in sys.modules  # found, not imported
    monkeypatch.setitem(sys.modules, "colorsys", None)  # made unimportable on purpose
    assert not installed("colorsys")


def test_names_load_on_first_use() -> None:
    code = (
        "import sys, wattprint\n"
        "assert 'wattprint.meter' not in sys.modules\n"
        "m = wattprint.EnergyMeter([wattprint.FakeSensor(power_w=1.0)])\n"
        "assert 'wattprint.meter' in sys.modules and 'EnergyMeter' in dir(wattprint)\n"
        "try:\n    wattprint.nonsense\nexcept AttributeError as e:\n    print(e)\n"
    )
    assert "has no attribute 'nonsense'" in _stdout(code)


def test_workloads_exports_resolve_and_import_no_framework() -> None:
    code = (
        "import sys, wattprint.workloads as w\n"
        "for name in w.__all__: getattr(w, name)\n"
        "heavy = ['torch', 'sklearn', 'onnxruntime', 'tensorflow', 'keras', 'transformers',"
        " 'PIL', 'pandas', 'matplotlib']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    assert _stdout(code).strip() == ""


def test_bench_store_and_optimize_import_no_framework() -> None:
    code = (
        "import sys, wattprint.sweep, wattprint.optimize, wattprint.store, wattprint.study\n"
        "import wattprint.sweep.runner\n"
        "heavy = ['torch', 'sklearn', 'onnxruntime', 'onnx', 'tensorflow', 'keras',"
        " 'transformers', 'pandas', 'matplotlib']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    assert _stdout(code).strip() == ""


def test_optimize_names_are_functions_whatever_was_imported_first() -> None:
    code = (
        "import wattprint.optimize.quantization, wattprint.optimize.pruning\n"
        "import wattprint.sweep.config as c\n"
        "c.load_config({'project': 'p', 'models': [{'name': 'm', 'source': 'torch:MLP',"
        " 'quantization': {'enabled': True, 'method': 'dynamic'}}],"
        " 'datasets': [{'name': 'iris'}]})\n"
        "from wattprint import optimize\n"
        "import types\n"
        "for name in optimize.__all__:\n"
        "    assert not isinstance(getattr(optimize, name), types.ModuleType), name\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
