"""Names from configs and stores are shown safely on a terminal, and never name a folder
outside the sweep's: strangers write configs and stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from wattprint.store import Store

WATTPRINT = [sys.executable, "-m", "wattprint"]
#: A name that clears the screen, hides text behind a NUL, sets the window title and turns
#: the rest of the line around.
HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\x00\u202egnp.exe\x9b31m"
RAW = ("\x1b", "\x00", "\x07", "\u202e", "\x9b")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "300"})


def test_printable_escapes_controls_and_bidi_marks_only() -> None:
    from wattprint._console import printable

    assert printable("cnn:int8-dynamic ünï ★") == "cnn:int8-dynamic ünï ★"
    shown = printable(HOSTILE)
    assert not any(ch in shown for ch in RAW)
    assert "\\x1b[2J" in shown and "\\u202e" in shown and "\\x00" in shown
    assert printable("a\nb") == "a\\x0ab"
    assert printable("a\nb", newlines=True) == "a\nb"


def _inference(model: str, kwh: float, dataset: str = "iris") -> dict[str, Any]:
    return {
        "sweep_id": "s1", "cell_key": f"{model}/fp32/{dataset}/inference/0",
        "model_name": model, "variant": "fp32", "dataset": dataset, "repetition": 0,
        "phase": "inference", "task": "classification", "hardware": "CPU", "status": "ok",
        "num_samples": 100, "kwh_per_1000_queries": kwh, "energy_kwh": kwh / 10,
        "co2_g": 1.0, "provenance": "measured", "metrics": {"accuracy": 0.9},
    }


def test_score_table_shows_hostile_names_escaped(tmp_path: Path) -> None:
    db = tmp_path / "wattprint.db"
    with Store(db) as store:
        store.begin_sweep("s1", project="p", config={})
        store.write_run(_inference(HOSTILE, 1e-3))
        store.write_run(_inference("plain", 2e-3, dataset=HOSTILE))
    proc = _cli("score", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not any(ch in proc.stdout for ch in RAW), repr(proc.stdout)
    assert "evil\\x1b[2J" in proc.stdout and "\\u202egnp.exe" in proc.stdout


def test_run_summary_and_errors_show_names_escaped_and_files_stay_in_the_sweep(
        tmp_path: Path) -> None:
    out = tmp_path / "results"
    config = {
        "project": "names",
        "models": [{"name": HOSTILE, "source": "sklearn:LogisticRegression"},
                   {"name": "..", "source": "sklearn:LogisticRegression"},
                   {"name": ".", "source": "sklearn:LogisticRegression"},
                   {"name": "../../escaped", "source": "sklearn:LogisticRegression"}],
        "datasets": [{"name": "digits", "limit": 40}],
        "monitoring": {"repetitions": 1, "warmup": 0},
        "output": {"export_formats": [], "output_dir": str(out), "db": "wattprint.db"},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = _cli("run", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not any(ch in proc.stdout + proc.stderr for ch in RAW), repr(proc.stdout)
    assert "evil\\x1b[2J" in proc.stdout
    with Store(tmp_path / "wattprint.db") as store:
        (sweep,) = store.sweeps()
        runs = store.runs()
    assert {r.status for r in runs} == {"ok"}, [r.error for r in runs]
    assert {r.model_name for r in runs} == {HOSTILE, "..", ".", "../../escaped"}
    # Every file the sweep wrote is inside its own folder, one folder per model.
    assert sorted(p.name for p in out.iterdir()) == [sweep["id"]]
    assert not (tmp_path / "escaped").exists()
    folders = list((out / sweep["id"]).iterdir())
    assert len(folders) == 4
    for folder in folders:
        assert folder.name not in (".", "..") and not folder.name.startswith(".")
        assert (folder / "digits" / "fp32.skops").is_file()


def test_slugs_are_distinct_and_stay_in_their_folder() -> None:
    from wattprint.sweep.runner import _safe

    names = ["..", ".", "a/b", "a-b", "a b", "/etc/passwd", ".hidden", "x" * 300, "cnn", ""]
    slugs = [_safe(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    for slug in slugs:
        assert slug and "/" not in slug and not slug.startswith(".") and len(slug) < 100
        assert Path("/sweep", slug).resolve().parent == Path("/sweep")
    assert _safe("cnn") == "cnn" and _safe("logreg_v2.1") == "logreg_v2.1"


def _small_sweep(**output: Any) -> dict[str, Any]:
    return {
        "project": "outside",
        "models": [{"name": "logreg", "source": "sklearn:LogisticRegression"}],
        "datasets": [{"name": "digits", "limit": 40}],
        "monitoring": {"repetitions": 1, "warmup": 0},
        "output": {"export_formats": ["csv"], **output},
    }


def test_a_config_file_cannot_send_results_outside_its_folders(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "link").symlink_to(elsewhere)
    cases = {
        "output_dir": str(elsewhere / "results"),
        "db": "../elsewhere/stolen.db",
    }
    for key, value in cases.items():
        path = work / f"{key}.yaml"
        path.write_text(yaml.safe_dump(_small_sweep(**{key: value})))
        proc = _cli("run", str(path), cwd=work)
        assert proc.returncode == 2, proc.stderr
        flag = "--db" if key == "db" else "--output-dir"
        assert f"output.{key}" in proc.stderr and flag in proc.stderr
        assert "Traceback" not in proc.stderr
    path = work / "link.yaml"
    path.write_text(yaml.safe_dump(_small_sweep(output_dir="link/results")))
    proc = _cli("run", str(path), cwd=work)
    assert proc.returncode == 2 and "output.output_dir" in proc.stderr, proc.stderr
    assert list(elsewhere.iterdir()) == []
    assert not (work / "wattprint.db").exists()


def test_the_user_sends_results_anywhere_from_the_command_line(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    path = work / "sweep.yaml"
    path.write_text(yaml.safe_dump(_small_sweep(output_dir="/nonexistent/results",
                                                db="/nonexistent/x.db")))
    proc = _cli("run", str(path), "--db", str(elsewhere / "mine.db"), "--output-dir",
                str(elsewhere / "results"), cwd=work)
    assert proc.returncode == 0, proc.stderr
    with Store(elsewhere / "mine.db") as store:
        (sweep,) = store.sweeps()
        assert {r.status for r in store.runs()} == {"ok"}
    assert (elsewhere / "results" / f"{sweep['id']}.csv").is_file()
    assert list(work.iterdir()) == [path]
