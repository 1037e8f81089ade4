"""Coming from greenAI: its model factory's ``register_format(".ext", MyModelClass)`` (the class
is constructed with the file's path), training a Keras ``.h5`` model, and a grade for a
script's energy (here ``wattprint measure --grade``, graded against the script's own stored
runs, with no web service)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint import FakeSensor, Model, load_model, register_format
from wattprint.errors import ConfigError, ModelError, UntrustedModelError
from wattprint.workloads import registry

WATTPRINT = [sys.executable, "-m", "wattprint"]

#: Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats registered in a test stay in that test."""
    monkeypatch.setattr(registry, "_SUFFIXES", dict(registry._SUFFIXES))


#: The classes constructed in a test, with what they were given.
constructed: list[dict[str, Any]] = []


class GreenAIStyleModel:
    """A model class as greenAI's README writes one: constructed with the path (and options),
    counting its parameters with ``get_number_of_parameters()``, running with ``run()``."""

    def __init__(self, data_path: Path, enable_GPU: bool = True) -> None:
        constructed.append({"class": "GreenAIStyleModel", "path": data_path,
                            "enable_GPU": enable_GPU})
        with np.load(data_path) as saved:
            self.weights = saved["weights"]
            self.bias = saved["bias"]

    def get_number_of_parameters(self) -> int:
        return int(self.weights.size + self.bias.size)

    def run(self, input_data: Any) -> Any:
        return np.asarray(input_data) @ self.weights + self.bias


class LinearModel(Model):
    """The same file, as a wattprint :class:`Model` subclass that takes the task."""

    framework = "numpy"

    def __init__(self, path: Path, *, task: str | None = None, scale: float = 1.0) -> None:
        constructed.append({"class": "LinearModel", "path": path, "task": task, "scale": scale})
        with np.load(path) as saved:
            self.weights = saved["weights"] * scale
            self.bias = saved["bias"]
        self.num_parameters = int(self.weights.size + self.bias.size)

    def predict(self, batch: Any) -> Any:
        return np.asarray(batch) @ self.weights + self.bias


@pytest.fixture
def linear_file(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    constructed.clear()
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
    path = tmp_path / "linear.greenai"
    with path.open("wb") as f:
        np.savez(f, weights=weights, bias=bias)
    return path, weights, bias


def test_register_a_class_and_load_a_file_through_it(
        linear_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, weights, bias = linear_file
    register_format(".greenai", GreenAIStyleModel)
    assert ".greenai" in registry.supported_formats()
    model = load_model(path, enable_GPU=False)
    assert constructed == [{"class": "GreenAIStyleModel", "path": path, "enable_GPU": False}]
    assert isinstance(model, Model)
    assert isinstance(model.model, GreenAIStyleModel)  # type: ignore[attr-defined]
    assert model.num_parameters == weights.size + bias.size == 15
    assert model.path == path and model.size_bytes == path.stat().st_size
    x = np.ones((2, 4))
    np.testing.assert_allclose(model.predict(x), x @ weights + bias)
    assert not model.trainable
    with pytest.raises(NotImplementedError):
        model.train_epoch((x, np.zeros(2)))
    # An option the constructor does not take is one clear error naming what it takes.
    with pytest.raises(ConfigError, match=r"enable_GPU"):
        load_model(path, use_gpu=True)


def test_a_registered_model_subclass_is_the_model_and_gets_the_task(
        linear_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, weights, bias = linear_file
    register_format(".greenai", LinearModel)
    model = load_model(path, task="regression", scale=2.0)
    assert type(model) is LinearModel
    assert constructed == [{"class": "LinearModel", "path": path, "task": "regression",
                            "scale": 2.0}]
    assert model.task == "regression" and model.path == path
    np.testing.assert_allclose(model.predict(np.ones((1, 4))), np.ones((1, 4)) @ (2 * weights)
                               + bias)


def test_a_class_without_predict_or_run_is_a_model_error(tmp_path: Path) -> None:
    class NoRun:
        def __init__(self, path: Path) -> None:
            self.path = path

    path = tmp_path / "x.norun"
    path.write_bytes(b"weights")
    register_format(".norun", NoRun)
    with pytest.raises(ModelError, match=r"predict\(batch\) or run\(batch\)"):
        load_model(path)


def test_a_class_named_in_text_needs_trust(
        linear_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, weights, bias = linear_file
    # As a config or a command line names it: the class is code from wherever the text came.
    register_format(".greenai", f"{__name__}:GreenAIStyleModel")
    with pytest.raises(UntrustedModelError, match=r"trust=True") as err:
        load_model(path)
    assert str(path) in str(err.value) and "GreenAIStyleModel" in str(err.value)
    assert constructed == []  # refused before it was constructed
    model = load_model(path, trust=True, enable_GPU=False)
    np.testing.assert_allclose(model.predict(np.ones((1, 4))), np.ones((1, 4)) @ weights + bias)
    assert len(constructed) == 1
    # Any callable named in text is refused alike: 'os:system' is never called.
    register_format(".greenai", "os:system")
    with pytest.raises(UntrustedModelError, match=r"os:system"):
        load_model(path)
    # A wattprint Model subclass named in text is used without trust.
    register_format(".greenai", f"{__name__}:LinearModel")
    assert type(load_model(path, task="regression")) is LinearModel


def test_a_keras_h5_model_trains(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    made = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])
    made.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    path = tmp_path / "tiny.h5"
    made.save(path)  # legacy HDF5, with its training configuration, as greenAI saves Keras
    model = load_model(path)
    assert model.framework == "keras" and model.trainable
    before = [np.array(w) for w in model.model.get_weights()]  # type: ignore[attr-defined]
    losses = [model.train_epoch((x, y), batch_size=32) for _ in range(4)]
    after = model.model.get_weights()  # type: ignore[attr-defined]
    assert all(isinstance(loss, float) and np.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def test_grade_scale() -> None:
    from wattprint._grade import grade_letter

    cases = {0.5: "A", 0.80: "A", 0.804: "A", 0.81: "B", 0.90: "B", 0.95: "C", 1.0: "D",
             1.034: "D", 1.036: "E", 1.10: "E", 1.2: "F", 1.25: "F", 1.26: "G", 3.0: "G"}
    assert {ratio: grade_letter(ratio) for ratio in cases} == cases


def test_a_partial_run_is_stored_but_neither_graded_nor_used_to_grade(tmp_path: Path) -> None:
    from wattprint._grade import grade_run

    def window(meter: wattprint.EnergyMeter, seconds: float) -> Any:
        meter.begin("program")
        time.sleep(seconds)
        return meter.end("program")

    failing = wattprint.EnergyMeter([FakeSensor(power_w=10.0, fail_after_s=0.02),
                                     FakeSensor(power_w=5.0, component="ram")])
    steady = wattprint.EnergyMeter([FakeSensor(power_w=10.0),
                                    FakeSensor(power_w=5.0, component="ram")])
    try:
        with wattprint.Store(tmp_path / "runs.db") as store:
            partial = window(failing, 0.05)
            assert partial.partial
            graded = grade_run(store, ["prog"], partial, 0, cwd=str(tmp_path))
            assert graded.letter is None
            assert graded.message.startswith("not graded: the measurement is partial")
            graded = grade_run(store, ["prog"], window(steady, 0.05), 0, cwd=str(tmp_path))
            assert graded.letter is None and graded.stored_runs == 1
            assert "none of the 1 earlier run of this command can be compared" in graded.message
            graded = grade_run(store, ["prog"], window(steady, 0.05), 0, cwd=str(tmp_path))
            assert graded.letter is not None and graded.earlier_runs == 1
            graded = grade_run(store, ["prog"], window(steady, 0.5), 0, cwd=str(tmp_path))
            assert graded.letter == "G" and graded.earlier_runs == 2
            assert graded.ratio is not None and graded.ratio > 1.25
            assert graded.message.startswith(f"grade G: {graded.ratio:.2f}x the median of 2 "
                                             "earlier runs of this command")
            # The same command in another folder is another program, with no history.
            elsewhere = grade_run(store, ["prog"], window(steady, 0.05), 0,
                                  cwd=str(tmp_path / "other"))
            assert elsewhere.message.startswith("no grade yet: this is the first stored run")
            runs = store.runs(sweep_id=graded.sweep_id)
    finally:
        failing.close()
        steady.close()
    assert [r.partial for r in runs] == [True, False, False, False]
    assert all(r.provenance == "fake" and r.phase is None for r in runs)


def _program_run(joules: float, n: int) -> Any:
    """The measurement of the ``n``-th run of a program that used ``joules``."""
    from datetime import datetime, timedelta, timezone

    from wattprint.footprint import Site
    from wattprint.measurement import ComponentEnergy, Measurement
    from wattprint.sensors.base import Source

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=n)
    return Measurement("program", t0, t0 + timedelta(seconds=1), 1.0, joules,
                       {"cpu": ComponentEnergy(joules, Source.FAKE, False, sensors=("fake",))},
                       Site(country="FR").resolve())


def test_a_grade_says_how_much_the_earlier_runs_vary(tmp_path: Path) -> None:
    """A grade beyond D is only a change when the run lies outside the spread of the earlier
    runs: the line and the JSON say which, and that one earlier run shows no spread yet."""
    from wattprint._grade import grade_run

    with wattprint.Store(tmp_path / "runs.db") as store:
        grades = [grade_run(store, ["prog"], _program_run(joules, n), 0, cwd=str(tmp_path))
                  for n, joules in enumerate([10.0, 12.0, 11.0, 15.0, 10.5])]
    first, one, same, more, lower = grades
    assert first.letter is None and first.spread is None
    assert (one.letter, one.spread, one.within_spread) == ("F", None, None)
    assert one.message.endswith("; one earlier run: how much its runs vary is not known yet")
    assert (same.letter, same.within_spread) == ("D", True)  # 11 J against 10 and 12
    assert same.spread == pytest.approx((10 / 11, 12 / 11))
    assert same.message.endswith("; the earlier runs spread 0.91x-1.09x: this run is within "
                                 "it, no change beyond their own variation")
    assert (more.letter, more.within_spread) == ("G", False)  # 15 J: beyond 0.91x-1.09x
    assert more.message.endswith("; the earlier runs spread 0.91x-1.09x")
    assert (lower.letter, lower.within_spread) == ("C", True)  # 0.91x, within 0.87x-1.30x
    assert lower.spread == pytest.approx((10 / 11.5, 15 / 11.5))
    assert lower.to_dict()["spread"] == pytest.approx([10 / 11.5, 15 / 11.5])
    assert lower.to_dict()["within_spread"] is True


def _measure(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATTPRINT, "measure", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_measure_grade_grades_a_script_against_its_stored_runs(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    program = [sys.executable, "-c", "print(sum(range(200_000)))"]
    first = _measure(tmp_path, "--grade", "--db", str(db), "--", *program)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(sum(range(200_000)))  # the program's output, untouched
    assert ("no grade yet: this is the first stored run of this command; run it again to "
            "grade") in first.stderr
    graded = re.compile(r"grade ([A-G]): \d+\.\d\dx the median of (\d) earlier runs? of this "
                        r"command")
    second = _measure(tmp_path, "--grade", "--db", str(db), "--", *program)
    assert second.returncode == 0, second.stderr
    found = graded.search(second.stderr)
    assert found is not None, second.stderr
    assert found.group(2) == "1"
    third = _measure(tmp_path, "--grade", "--db", str(db), "--json", "--", *program)
    assert third.returncode == 0, third.stderr
    # --json: the program's own output, then the JSON, with the grade in it.
    grade = json.loads(third.stdout[third.stdout.index("{"):])["grade"]
    assert grade["letter"] in "ABCDEFG" and grade["earlier_runs"] == 2
    assert grade["message"] in third.stderr
    # A run of the program that fails is stored, but not graded, nor used to grade.
    failed = _measure(tmp_path, "--grade", "--db", str(db), "--", sys.executable, "-c",
                      "import sys; sys.exit(3)")
    assert failed.returncode == 3
    assert "not graded: the program exited with code 3" in failed.stderr

    with wattprint.Store(db, read_only=True) as store:
        runs = store.runs()
    ours = [r for r in runs if r.model_name and "200_000" in r.model_name]
    assert len(ours) == 3 and len({r.sweep_id for r in ours}) == 1
    assert ours[0].sweep_id is not None and ours[0].sweep_id.startswith("measure-")
    assert all(r.ok and r.phase is None and r.energy_j is not None and r.energy_j > 0
               and r.provenance for r in ours)
    assert [r.energy_j for r in ours][-1] == pytest.approx(grade["energy_j"])
    (stored_failure,) = [r for r in runs if r.status == "failed"]
    assert stored_failure.error == "the program exited with code 3"


def test_measure_db_without_grade_is_refused_before_the_program_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = _measure(tmp_path, "--db", str(tmp_path / "x.db"), "--", sys.executable, "-c",
                 f"open({str(marker)!r}, 'w')")
    assert r.returncode == 2 and "--grade" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
    r = _measure(tmp_path, "--grade", "--db", str(tmp_path), "--", sys.executable, "-c",
                 f"open({str(marker)!r}, 'w')")
    assert r.returncode == 2 and "folder" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
