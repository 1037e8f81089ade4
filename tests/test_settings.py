"""Settings without code: WATTPRINT_* variables, wattprint.toml and [tool.wattprint]."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattprint import ConfigError, EnergyMeter, FakeSensor, LocationError, Site
from wattprint.footprint import resolve_intensity
from wattprint.settings import KEYS, Origin, Settings, load_settings

WATTPRINT = [sys.executable, "-m", "wattprint"]
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray WATTPRINT_* variable of the caller's, and an empty working folder."""
    for name in list(os.environ):
        if name.startswith("WATTPRINT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def meter(**kwargs: object) -> EnergyMeter:
    return EnergyMeter([FakeSensor(power_w=1.0)], **kwargs)  # type: ignore[arg-type]


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WATTPRINT_")}
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_import_reads_no_setting() -> None:
    code = ("import os; os.environ['WATTPRINT_PUE'] = 'abc'; import sys, wattprint; "
            "assert 'tomllib' not in sys.modules; assert 'wattprint.settings' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_env_reaches_a_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    fr = resolve_intensity(country="FR")[0]
    assert fr != resolve_intensity()[0]
    monkeypatch.setenv("WATTPRINT_COUNTRY", "FR")
    monkeypatch.setenv("WATTPRINT_PUE", "1.25")
    m = meter()
    with m.window() as w:
        pass
    assert w.measurement is not None
    fp = w.measurement.footprint
    assert (fp.intensity_g_per_kwh, fp.location, fp.pue) == (fr, "FR", 1.25)
    assert m.settings.origin("country") == Origin("environment", "WATTPRINT_COUNTRY")
    assert m.settings.origin("zone") == Origin("default")
    m.close()


def test_env_sets_sampling_mode_and_tdp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_SAMPLE_HZ", "50")
    monkeypatch.setenv("WATTPRINT_MODE", "process")
    monkeypatch.setenv("WATTPRINT_CPU_TDP", "42")
    m = meter()
    assert (m.settings.sample_hz, m.mode, m.settings.cpu_tdp_w) == (50.0, "process", 42.0)
    # An explicit argument equal to the default still wins over the environment.
    m2 = meter(sample_hz=20.0, mode="machine", cpu_tdp_w=10.0)
    assert (m2.settings.sample_hz, m2.mode, m2.settings.cpu_tdp_w) == (20.0, "machine", 10.0)
    assert m2.settings.origin("sample_hz").kind == "argument"
    m.close()
    m2.close()


def test_signature_defaults_are_unchanged() -> None:
    params = inspect.signature(EnergyMeter).parameters
    assert params["sample_hz"].default == 20.0
    assert params["mode"].default == "machine"
    m = meter()
    assert (m.settings.sample_hz, m.mode) == (20.0, "machine")
    assert m.settings.origin("sample_hz") == Origin("default")
    m.close()


def test_explicit_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_COUNTRY", "FR")
    monkeypatch.setenv("WATTPRINT_PUE", "1.5")
    m = meter(country="DE", pue=1.2)
    assert (m.footprint_model.location, m.footprint_model.pue) == ("DE", 1.2)
    # Another way to name the grid is the same setting: the argument decides it alone.
    m2 = meter(zone="SE-SE3")
    assert m2.footprint_model.location == "SE-SE3"
    assert m2.settings.country is None and m2.footprint_model.pue == 1.5
    # A site= is the whole site: no site setting applies.
    m3 = meter(site=Site(country="DE"))
    assert (m3.footprint_model.location, m3.footprint_model.pue) == ("DE", 1.0)
    assert (m3.settings.country, m3.settings.pue) == ("DE", None)
    assert m3.settings.origin("pue") == Origin("argument", "site=")
    for each in (m, m2, m3):
        each.close()


def test_env_over_wattprint_toml_over_pyproject(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.wattprint]\npue = 1.1\ncountry = "DE"\n'
        'tier = "desktop"\nwue_l_per_kwh = 0.3\n')
    s = load_settings()
    assert (s.pue, s.country, s.tier) == (1.1, "DE", "desktop")
    assert s.origin("pue") == Origin("pyproject.toml", str(tmp_path / "pyproject.toml"))
    (tmp_path / "wattprint.toml").write_text('pue = 1.2\nzone = "FR"\n')
    s = load_settings()
    # The grid is one setting: wattprint.toml's zone replaces pyproject's country.
    assert (s.pue, s.zone, s.country, s.tier, s.wue_l_per_kwh) == (1.2, "FR", None, "desktop",
                                                                   0.3)
    assert s.origin("pue").kind == "wattprint.toml"
    assert s.origin("tier").kind == "pyproject.toml"
    monkeypatch.setenv("WATTPRINT_PUE", "1.3")
    m = meter()
    assert (m.footprint_model.pue, m.footprint_model.location, m.footprint_model.tier) == (
        1.3, "FR", "desktop")
    assert m.settings.origin("pue") == Origin("environment", "WATTPRINT_PUE")
    m.close()
    m2 = meter(pue=1.4)
    assert m2.footprint_model.pue == 1.4
    m2.close()


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "wattprint.toml"
    path.write_text("pue = 1.2\n")
    assert load_settings().pue == 1.2
    path.write_text("pue = 1.4\n")  # same size, likely the same mtime
    assert load_settings().pue == 1.4
    path.unlink()
    assert load_settings().pue is None


def test_db_is_relative_to_the_files_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "wattprint.toml").write_text('db = "stores/results.db"\n')
    s = load_settings(cwd=project)  # the process's own working folder is tmp_path
    assert s.db == project / "stores" / "results.db"
    env = load_settings(environ={"WATTPRINT_DB": "here.db"}, cwd=project)
    assert env.db == Path("here.db") and env.origin("db").kind == "environment"


@pytest.mark.parametrize("value", ["../outside.db", "/tmp/elsewhere.db", "~/x.db", "link/x.db",
                                   "."])
def test_a_files_db_cannot_leave_its_folder(tmp_path: Path, value: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "link").symlink_to(outside)
    (tmp_path / "project" / "wattprint.toml").write_text(f"db = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=r"^wattprint\.toml: db = .*(relative|leads out)"):
        load_settings(cwd=tmp_path / "project")


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("WATTPRINT_PUE", "abc", "WATTPRINT_PUE='abc' in the environment: not a number"),
    ("WATTPRINT_PUE", "0.5", "WATTPRINT_PUE='0.5' in the environment: pue must be a finite "
                             "number >= 1"),
    ("WATTPRINT_CARBON_INTENSITY", "-3", "WATTPRINT_CARBON_INTENSITY='-3' in the environment"),
    ("WATTPRINT_SAMPLE_HZ", "0", "WATTPRINT_SAMPLE_HZ='0' in the environment: sample_hz must be "
                                 "a finite number > 0"),
    ("WATTPRINT_CPU_TDP", "nan", "WATTPRINT_CPU_TDP='nan' in the environment"),
    ("WATTPRINT_TIER", "cloud", "WATTPRINT_TIER='cloud' in the environment: tier must be one of"),
    ("WATTPRINT_MODE", "thread", "WATTPRINT_MODE='thread' in the environment: mode must be one"),
])
def test_bad_env_values_name_their_source(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                          expected: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        meter()
    assert str(caught.value).startswith(expected), caught.value


def test_unknown_places_name_their_source(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("WATTPRINT_COUNTRY", "XX")
    with pytest.raises(LocationError, match=r"^WATTPRINT_COUNTRY='XX' in the environment: "
                                            r"unknown country"):
        meter()
    monkeypatch.delenv("WATTPRINT_COUNTRY")
    (tmp_path / "wattprint.toml").write_text('cloud_region = "aws:mars-1"\n')
    with pytest.raises(LocationError, match=r"^wattprint\.toml: "):
        meter()


def test_one_source_names_one_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_COUNTRY", "FR")
    monkeypatch.setenv("WATTPRINT_ZONE", "DE")
    with pytest.raises(ConfigError, match=r"^WATTPRINT_COUNTRY and WATTPRINT_ZONE in the "
                                          r"environment: give at most one of .* got country "
                                          r"and zone"):
        meter()
    assert meter(country="DE").footprint_model.location == "DE"  # the argument decides


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("wattprint.toml", "pue = 0.5\n", "wattprint.toml: pue must be a finite number >= 1"),
    ("wattprint.toml", 'pue = "high"\n', "wattprint.toml: pue must be a number >= 1"),
    ("wattprint.toml", "sample_hz = true\n", "wattprint.toml: sample_hz must be a number > 0"),
    ("wattprint.toml", 'mode = {run = "rm -rf /"}\n', "wattprint.toml: mode must be a string"),
    ("wattprint.toml", 'country = ["DE"]\n', "wattprint.toml: country must be a string"),
    ("wattprint.toml", "pue = \n", "not valid TOML"),
    ("pyproject.toml", '[tool.wattprint]\ntier = "cloud"\n',
     "pyproject.toml [tool.wattprint]: tier must be one of"),
    ("pyproject.toml", '[tool]\nwattprint = "DE"\n', "tool.wattprint must be a table"),
])
def test_bad_file_values_name_their_source(tmp_path: Path, name: str, text: str,
                                           expected: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        meter()
    assert expected in str(caught.value), caught.value


@pytest.mark.parametrize("name", ["wattprint.toml", "pyproject.toml"])
def test_unknown_keys_are_errors_listing_the_known(tmp_path: Path, name: str) -> None:
    body = 'contry = "DE"\n'
    (tmp_path / name).write_text(body if name == "wattprint.toml" else f"[tool.wattprint]\n{body}")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    said = str(caught.value)
    assert "unknown key 'contry'; did you mean 'country'?" in said
    assert all(k.name in said for k in KEYS)


def test_a_pyproject_without_wattprint_is_not_parsed(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname = broken\n")
    assert load_settings() == Settings()
    (tmp_path / "pyproject.toml").write_text("[project\n[tool.wattprint]\npue = 1.2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


@pytest.mark.parametrize(("text", "parsed"), [
    ("[tool.wattprint]\npue = 1.2\n", True),
    ('[tool."wattprint"]\npue = 1.2\n', True),
    ("tool.wattprint.pue = 1.2\n", True),
    ("[tool]\nwattprint = {pue = 1.2}\n", True),
    ("[tool]\nwattprint.pue = 1.2\n", True),
    ("tool = {wattprint = {pue = 1.2}}\n", True),
    ('[project]\ndependencies = ["wattprint>=1", "wattprint[nvidia]"]\n', False),
    ('[project.scripts]\nwattprint = "wattprint.cli:main"\n', False),
])
def test_only_a_pyproject_that_may_hold_the_table_is_parsed(tmp_path: Path, text: str,
                                                            parsed: bool) -> None:
    # A syntax error at the end shows whether the file was parsed at all.
    (tmp_path / "pyproject.toml").write_text(text + "[broken\n")
    if parsed:
        with pytest.raises(ConfigError, match=r"pyproject\.toml: not valid TOML"):
            load_settings()
    else:
        assert load_settings() == Settings()
    (tmp_path / "pyproject.toml").write_text(text)
    assert load_settings().pue == (1.2 if parsed else None)


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTPRINT_COUNTRY", "")
    monkeypatch.setenv("WATTPRINT_PUE", " ")
    assert load_settings() == Settings()


def test_keys_match_the_settings_and_the_readme() -> None:
    names = [f for f in Settings._fields if f != "origins"]
    assert names == [k.name for k in KEYS]
    assert len({k.env for k in KEYS}) == len(KEYS)
    text = README.read_text(encoding="utf-8")
    section = text.split("### Settings without code", 1)[1].split("\n## ", 1)[0]
    missing = [k for k in KEYS if f"`{k.env}`" not in section or f"`{k.name}`" not in section]
    assert not missing, missing


def test_the_readme_example_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8").split("### Settings without code", 1)[1]
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "wattprint.toml").write_text(example)
    s = load_settings()
    assert (s.country, s.tier, s.pue, s.cpu_tdp_w) == ("DE", "datacenter", 1.2, 65.0)
    assert s.db == tmp_path / "results" / "wattprint.db"


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "toml", "expected"), [
    ({"WATTPRINT_PUE": "abc"}, None, "error: WATTPRINT_PUE='abc' in the environment: not a "
                                     "number"),
    ({}, "pue = 0.5\n", "error: wattprint.toml: pue must be a finite number >= 1"),
    ({}, 'contry = "DE"\n', "error: wattprint.toml: unknown key 'contry'"),
    ({"WATTPRINT_COUNTRY": "XX"}, None, "error: WATTPRINT_COUNTRY='XX' in the environment: "
                                        "unknown country"),
])
def test_cli_bad_values_exit_2_with_one_line(tmp_path: Path, env: dict[str, str],
                                             toml: str | None, expected: str) -> None:
    if toml is not None:
        (tmp_path / "wattprint.toml").write_text(toml)
    for args in (("sensors",), ("score",)):
        done = cli(*args, cwd=tmp_path, **env)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        line = " ".join(done.stderr.split())  # rich may wrap the one message
        assert line.startswith(expected), done.stderr
        assert done.stderr.count("error:") == 1


def test_sensors_json_shows_each_setting_and_its_source(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.wattprint]\ntier = "datacenter"\npue = 1.1\n')
    (tmp_path / "wattprint.toml").write_text('pue = 1.2\ndb = "r.db"\n')
    done = cli("sensors", "--json", "--cpu-tdp", "55", "--powercap-root", str(tmp_path / "none"),
               cwd=tmp_path, WATTPRINT_COUNTRY="FR")
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)["settings"]
    assert [name for name in settings] == [k.name for k in KEYS]
    got = {name: (e["value"], e["source"]) for name, e in settings.items()}
    assert got["country"] == ("FR", "environment WATTPRINT_COUNTRY")
    assert got["pue"] == (1.2, "wattprint.toml")
    assert got["tier"] == ("datacenter", "pyproject.toml")
    assert got["cpu_tdp_w"] == (55.0, "argument")
    assert got["sample_hz"] == (20.0, "default")
    assert got["db"] == (str(tmp_path / "r.db"), "wattprint.toml")
    assert settings["pue"]["where"] == str(tmp_path / "wattprint.toml")
    human = cli("sensors", "--powercap-root", str(tmp_path / "none"), cwd=tmp_path,
                WATTPRINT_COUNTRY="FR", COLUMNS="200")  # a table wide enough for the source
    assert human.returncode == 0, human.stderr
    assert "Settings in effect" in human.stdout
    assert "environment WATTPRINT_COUNTRY" in human.stdout


def test_measure_grade_stores_where_the_settings_say(tmp_path: Path) -> None:
    (tmp_path / "stores").mkdir()
    program = ["--", sys.executable, "-c", "pass"]
    done = cli("measure", "--grade", "--json", *program, cwd=tmp_path,
               WATTPRINT_DB="stores/env.db", WATTPRINT_COUNTRY="FR", WATTPRINT_MODE="process")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "stores" / "env.db").is_file()
    assert not (tmp_path / "wattprint.db").exists()
    result = json.loads(done.stdout)
    assert result["measurement"]["footprint"]["location"] == "FR"
    # The program is another process: measure never takes wattprint's own share of it.
    assert all(c["scope"] == "machine" for c in result["measurement"]["components"].values())
    # --db and the options win over the environment.
    done = cli("measure", "--grade", "--db", "cli.db", "--country", "DE", "--json", *program,
               cwd=tmp_path, WATTPRINT_DB="stores/env.db", WATTPRINT_COUNTRY="FR")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli.db").is_file()
    assert json.loads(done.stdout)["measurement"]["footprint"]["location"] == "DE"
    # A wattprint.toml's db, relative to its folder.
    (tmp_path / "wattprint.toml").write_text('db = "stores/toml.db"\n')
    done = cli("measure", "--grade", *program, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "stores" / "toml.db").is_file()


def test_read_commands_use_the_settings_db(tmp_path: Path) -> None:
    done = cli("score", cwd=tmp_path, WATTPRINT_DB="elsewhere/results.db")
    assert done.returncode == 2
    assert "no results database at elsewhere/results.db" in " ".join(done.stderr.split())


def test_run_stores_where_the_settings_say(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(
        "project: p\n"
        "models: [{name: m, source: 'sklearn:LogisticRegression'}]\n"
        "datasets: [{name: iris}]\n"
        "monitoring: {warmup: 0, repetitions: 1, num_samples: 10}\n"
        "output: {export_formats: [], output_dir: out}\n")
    (tmp_path / "stores").mkdir()
    pytest.importorskip("sklearn")
    done = cli("run", "sweep.yaml", "--json", cwd=tmp_path, WATTPRINT_DB="stores/env.db")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["db"] == "stores/env.db"
    assert (tmp_path / "stores" / "env.db").is_file()
    assert not (tmp_path / "wattprint.db").exists()


def _sweep(**sections: object) -> dict[str, object]:
    return {"project": "p", "models": [{"name": "m", "source": "sklearn:LogisticRegression"}],
            "datasets": [{"name": "digits", "limit": 50}], **sections}


def test_a_sweep_config_takes_the_settings_where_it_is_silent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.sweep.config import config_hash, load_config

    monkeypatch.chdir(tmp_path)
    plain = load_config(_sweep())
    monkeypatch.setenv("WATTPRINT_COUNTRY", "FR")
    monkeypatch.setenv("WATTPRINT_PUE", "1.3")
    monkeypatch.setenv("WATTPRINT_SAMPLE_HZ", "50")
    (tmp_path / "wattprint.toml").write_text('tier = "edge"\n')
    filled = load_config(_sweep())
    site = filled.to_site()
    assert (site.country, site.pue, site.tier) == ("FR", 1.3, "edge")
    assert filled.monitoring.frequency_hz == 50.0
    assert config_hash(filled) != config_hash(plain)  # another site is another sweep
    # What the config says wins; the grid is one setting; a device profile sets the tier.
    own = load_config(_sweep(location={"zone": "DE", "pue": 1.1},
                             monitoring={"frequency_hz": 10},
                             hardware={"device_profile": "desktop"}))
    site = own.to_site()
    assert (site.country, site.zone, site.pue) == (None, "DE", 1.1)
    assert own.monitoring.frequency_hz == 10.0 and site.tier != "edge"
    monkeypatch.setenv("WATTPRINT_PUE", "0.5")
    with pytest.raises(ConfigError, match="WATTPRINT_PUE"):
        load_config(_sweep())


def test_measure_energy_without_a_site_takes_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from wattprint import measure_energy

    monkeypatch.chdir(tmp_path)

    def run() -> dict[str, object]:
        return measure_energy(lambda batch: [0] * len(batch), np.zeros((4, 2)), "m",
                              "classification", num_samples=4, warmup=0, progress=False,
                              output_dir=None, db=None)

    default = run()
    assert default["pue"] == 1.2  # ML Energy Score's, where the settings name none
    monkeypatch.setenv("WATTPRINT_COUNTRY", "FR")
    in_france = run()
    assert "FR" in str(in_france["location"]) and in_france["pue"] == 1.2
    monkeypatch.setenv("WATTPRINT_PUE", "1.5")
    assert run()["pue"] == 1.5
