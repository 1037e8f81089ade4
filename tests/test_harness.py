"""measure_energy and measure_training, end to end with a sensor of known power."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint import ConfigError, EnergyMeter, FakeSensor
from wattprint.sensors import CounterSensor, Source
from wattprint.workloads.metrics import classification_metrics, regression_metrics


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_energy keeps its results in the working folder by default (wattprint.db,
    results/): each test here works in a folder of its own."""
    monkeypatch.chdir(tmp_path)

POWER_W = 40.0


@pytest.fixture
def meter() -> Any:
    m = EnergyMeter([FakeSensor(power_w=POWER_W)], carbon_intensity_g_per_kwh=300.0)
    yield m
    m.close()


@pytest.fixture(scope="module")
def digits_model() -> Any:
    from sklearn.linear_model import LogisticRegression

    train = wattprint.load_dataset("digits", split="train", seed=0)
    return LogisticRegression(max_iter=2000).fit(train.x, train.y)


def test_measure_energy_on_digits_with_known_power(
    meter: EnergyMeter, digits_model: Any, tmp_path: Path
) -> None:
    test = wattprint.load_dataset("digits", split="test", seed=0)
    result = wattprint.measure_energy(
        digits_model.predict_proba, test, "logreg", "digits", num_samples=300, batch_size=16,
        warmup=2, meter=meter, output_dir=tmp_path, progress=False,
    )
    for key in ("model_name", "task_name", "hardware", "timestamp", "num_samples", "energy_kwh",
                "co2_kg", "water_l", "duration_seconds", "kwh_per_1000_queries",
                "samples_per_second", "components"):
        assert key in result, key
    # Energy is power times the measured duration, exactly (a constant-power sensor).
    assert result["energy_j"] == pytest.approx(POWER_W * result["duration_seconds"], rel=1e-9)
    assert result["energy_kwh"] == pytest.approx(result["energy_j"] / 3.6e6)
    assert result["kwh_per_1000_queries"] == pytest.approx(result["energy_kwh"] * 1000 / 300)
    assert result["samples_per_second"] == pytest.approx(300 / result["duration_seconds"])
    assert result["co2_kg"] == pytest.approx(result["energy_kwh"] * 300.0 / 1000)
    assert result["components"]["cpu"] == {
        "energy_j": pytest.approx(result["energy_j"]), "source": "fake", "measured": False,
        "scope": "machine",
    }
    assert result["measured"] is False
    assert result["hardware"] == "CPU"
    assert result["accuracy"] > 0.9 and 0.9 < result["f1_macro"] <= 1.0
    written = json.loads(Path(result["output_file"]).read_text())
    assert written == json.loads(json.dumps(result))


def test_more_queries_than_samples_cycle_the_dataset(meter: EnergyMeter) -> None:
    calls: list[int] = []
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    result = wattprint.measure_energy(
        lambda b: calls.append(len(b)), x, "m", "t", num_samples=25, batch_size=4, warmup=0,
        meter=meter,
    )
    assert sum(calls) == 25 and calls[-1] == 1
    assert result["num_samples"] == 25


def test_one_query_per_row_cycles_an_array_in_order(meter: EnergyMeter) -> None:
    seen: list[Any] = []
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    wattprint.measure_energy(lambda row: seen.append(row), x, "m", "t", num_samples=25,
                             warmup=3, meter=meter, progress=False)
    assert len(seen) == 28  # three warm-up calls, then 25 measured ones
    measured = seen[3:]
    assert [int(row[0]) // 2 for row in measured] == [*range(10), *range(10), *range(5)]
    assert all(row.shape == (2,) and row.dtype == np.float32 for row in measured)
    assert all(np.shares_memory(row, x) for row in measured)  # rows as the dataset holds them


@pytest.mark.parametrize("rows", [25, 60])
def test_one_query_per_row_takes_the_first_rows_of_a_longer_array(meter: EnergyMeter,
                                                                   rows: int) -> None:
    seen: list[Any] = []
    x = np.arange(rows, dtype=np.float64).reshape(rows, 1)
    labels = np.arange(rows) % 3

    def predict(row: Any) -> Any:
        seen.append(row)
        return np.eye(3)[int(row[0]) % 3]  # right every time: the labels line up with the rows

    result = wattprint.measure_energy(predict, (x, labels), "m", "classification",
                                      num_samples=25, warmup=0, meter=meter, progress=False,
                                      db=None, output_dir=None)
    assert [int(row[0]) for row in seen] == list(range(25))
    assert result["accuracy"] == 1.0


def test_warmup_is_not_measured(meter: EnergyMeter) -> None:
    seen: list[float] = []
    x = np.zeros((5, 1))

    def slow_first(batch: Any) -> None:
        seen.append(time.perf_counter())
        if len(seen) <= 3:
            time.sleep(0.1)

    result = wattprint.measure_energy(slow_first, x, "m", "t", num_samples=5, warmup=3,
                                      meter=meter)
    assert len(seen) == 8
    assert result["duration_seconds"] < 0.1


def test_regression_metrics_and_known_hardware(meter: EnergyMeter) -> None:
    from sklearn.linear_model import LinearRegression

    data = wattprint.load_dataset("diabetes")
    model = LinearRegression().fit(data.x, data.y)
    result = wattprint.measure_energy(model.predict, data, "linreg", "diabetes", hardware="t4",
                                      num_samples=len(data), batch_size=64, meter=meter)
    expected = regression_metrics(data.y, model.predict(data.x))
    assert result["rmse"] == pytest.approx(expected["rmse"])
    assert result["mae"] == pytest.approx(expected["mae"])
    assert result["hardware"] == "T4"


def test_any_hardware_name_is_a_label_only_an_empty_one_is_refused(meter: EnergyMeter) -> None:
    result = wattprint.measure_energy(str, [1, 2], "m", "t", hardware="TPUv9", num_samples=2,
                                      meter=meter)
    assert result["hardware"] == "TPUv9"
    result = wattprint.measure_energy(str, [1, 2], "m", "t", hardware="NVIDIA H200",
                                      num_samples=2, meter=meter)
    assert result["hardware"] == "H200"
    with pytest.raises(ConfigError, match="hardware name is empty"):
        wattprint.measure_energy(str, [1, 2], "m", "t", hardware=" ", meter=meter)
    with pytest.raises(ConfigError, match="num_samples"):
        wattprint.measure_energy(str, [1, 2], "m", "t", num_samples=0, meter=meter)


class Boom(Exception):
    pass


def test_a_model_that_raises_leaves_the_shared_meter_usable(meter: EnergyMeter) -> None:
    x = np.zeros((8, 1))
    calls = 0

    def fails_on_the_third_batch(batch: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Boom("the model's own error")
        return batch.sum()

    with pytest.raises(Boom, match="the model's own error"):
        wattprint.measure_energy(fails_on_the_third_batch, x, "m", "t", num_samples=8,
                                 warmup=0, meter=meter, progress=False)
    assert meter.open_windows == ()
    result = wattprint.measure_energy(lambda b: b.sum(), x, "m", "t", num_samples=8, warmup=0,
                                      meter=meter, progress=False)
    assert result["num_samples"] == 8 and result["energy_j"] > 0


def test_a_training_step_that_raises_leaves_the_shared_meter_usable(
    meter: EnergyMeter,
) -> None:
    def fails(data: Any) -> float:
        raise Boom("diverged")

    with pytest.raises(Boom, match="diverged"):
        wattprint.measure_training(fails, np.zeros((4, 1)), 3, meter=meter)
    assert meter.open_windows == ()
    result = wattprint.measure_training(lambda data: 0.5, np.zeros((4, 1)), 2, meter=meter)
    assert result["num_epochs"] == 2 and result["total_energy_j"] > 0


def test_training_whose_sensor_failed_is_partial_in_its_totals(meter: EnergyMeter) -> None:
    """A GPU sensor lost in the second epoch: that epoch and the next are partial, and so are
    the totals, which miss its energy; a training with every sensor whole is not."""
    started = time.perf_counter()
    gpu = FakeSensor(power_w=200.0, component="gpu:0", name="gpu:0", fail_after_s=10.0,
                     clock=lambda: time.perf_counter() - started)
    losing = EnergyMeter([FakeSensor(power_w=80.0), gpu])
    epochs = 0

    def epoch(data: Any) -> float:
        nonlocal started, epochs
        epochs += 1
        if epochs == 2:
            started -= 10.0  # the GPU's clock jumps past its failure
        time.sleep(0.01)
        return 0.5

    try:
        result = wattprint.measure_training(epoch, np.zeros((4, 1)), 3, meter=losing)
    finally:
        losing.close()
    assert [e["partial"] for e in result["epochs"]] == [False, True, True]
    assert result["partial"] is True
    whole = wattprint.measure_training(epoch, np.zeros((4, 1)), 2, meter=meter)
    assert whole["partial"] is False and not any(e["partial"] for e in whole["epochs"])


def test_text_generation_counts_tokens(meter: EnergyMeter) -> None:
    prompts = ["hello", "energy", "carbon"]

    def generate(batch: list[str]) -> dict[str, Any]:
        return {"texts": [p + " world" for p in batch], "tokens": 2 * len(batch)}

    result = wattprint.measure_energy(generate, prompts, "gen", "text", num_samples=6,
                                      batch_size=2, warmup=0, meter=meter)
    assert result["tokens_generated"] == 12
    assert result["tokens_per_second"] == pytest.approx(12 / result["duration_seconds"])


def test_progress_bar_can_be_forced(meter: EnergyMeter) -> None:
    x = np.zeros((300, 2))
    result = wattprint.measure_energy(lambda b: b.sum(), x, "m", "t", num_samples=300,
                                      meter=meter, progress=True)
    assert result["num_samples"] == 300


def test_metrics_agree_with_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    scores = rng.random((200, 4))
    got = classification_metrics(y, scores)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, scores.argmax(1)))
    assert got["f1_macro"] == pytest.approx(f1_score(y, scores.argmax(1), average="macro"))
    t, p = rng.random(50), rng.random(50)
    reg = regression_metrics(t, p)
    assert reg["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t, p)))
    assert reg["mae"] == pytest.approx(mean_absolute_error(t, p))


def _f1_macro_by_definition(y: Any, p: Any) -> float:
    """Macro F1 as its definition reads: for each class in the labels or the predictions,
    2 tp / (2 tp + fp + fn), 0 where a class has none of them; then the mean."""
    f1s = []
    for c in np.union1d(y, p):
        tp = float(np.sum((p == c) & (y == c)))
        fp = float(np.sum((p == c) & (y != c)))
        fn = float(np.sum((p != c) & (y == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


@pytest.mark.parametrize(("y", "p"), [
    (np.array(["cat", "dog", "cat", "emu"]), np.array(["cat", "cat", "dog", "yak"])),
    (np.array([-1, 0, 1, 1, 2]), np.array([0, 0, 1, -1, 5])),  # a negative class
    (np.array([3, 900_000, 5]), np.array([5, 900_000, 7])),  # class numbers far apart
    (np.array([True, False, True]), np.array([True, True, False])),
    (np.array([3, 5, 5], dtype=np.uint8), np.array([5, 5, 7], dtype=np.uint8)),
    (np.array([3, 5, 5], dtype=np.uint64), np.array([5, 5, 7], dtype=np.uint64)),
    (np.array([0.5, np.nan, 1.5, np.nan]), np.array([0.5, np.nan, np.nan, 2.5])),  # NaN: no hit
    (np.array([2, 2]), np.array([2, 2])),
    (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)),
], ids=["text", "negative", "far-apart", "bool", "uint8", "uint64", "nan", "one-class", "empty"])
def test_f1_macro_is_its_definition_for_any_labels(y: Any, p: Any) -> None:
    assert classification_metrics(y, p)["f1_macro"] == _f1_macro_by_definition(y, p)


def test_f1_macro_over_a_thousand_classes_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 1000, 3000)
    scores = rng.random((3000, 1000))
    scores[np.arange(0, 3000, 2), y[::2]] = 2.0  # half of them right
    got = classification_metrics(y, scores)
    assert got["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y))
    assert got["f1_macro"] == pytest.approx(f1_score(y, scores.argmax(1), average="macro"))
    assert got["f1_macro"] == _f1_macro_by_definition(y, scores.argmax(1))


_ROWS = np.random.default_rng(3).random((9, 4))


@pytest.mark.parametrize(("outputs", "per_sample", "joined"), [
    ([_ROWS[i] for i in range(9)], True, True),
    ([_ROWS[i:i + 1] for i in range(9)], True, True),  # a batch of one per call
    ([np.array(i % 4) for i in range(9)], True, True),  # one class number per call
    ([_ROWS[i:i + 4] for i in range(0, 9, 4)], False, True),  # batches, a short last one
    ([_ROWS.ravel()[i:i + 4] for i in range(0, 9, 4)], False, True),
    ([np.array(float(i)) for i in range(9)], False, True),  # one prediction per call
    ([_ROWS[i] > 0.5 for i in range(9)], True, True),
    ([_ROWS[i] + 1j for i in range(9)], True, True),
    ([np.zeros((0, 4)), np.zeros((0, 4))], False, True),
    ([np.array(1.0), _ROWS[0]], False, False),  # one prediction, then a batch
    ([_ROWS[0], _ROWS[1].astype(np.float32)], True, False),  # two types
    ([_ROWS[0], _ROWS[1, :3]], True, False),  # ragged
    ([np.asfortranarray(_ROWS[:4, :2]), np.asfortranarray(_ROWS[4:8, :2])], False, False),
    ([_ROWS[i, ::2] for i in range(9)], True, False),  # not contiguous
    ([_ROWS[i].astype(">f8") for i in range(9)], True, False),  # big-endian
    ([np.array(["a", "b"]), np.array(["c", "d"])], False, False),
], ids=["rows", "batch-of-one", "class-numbers", "batches", "batches-1d", "scalars", "bool",
        "complex", "empty-batches", "scalar-and-batch", "two-types", "ragged", "fortran",
        "strided", "big-endian", "text"])
def test_joined_outputs_are_what_stacking_them_makes(outputs: list[Any], per_sample: bool,
                                                     joined: bool) -> None:
    from wattprint.workloads.harness import _concat, _joined_predictions

    got = _joined_predictions(outputs, per_sample)
    assert (got is not None) is joined  # where not, stacking them decides
    if got is not None:
        want = _concat(outputs, per_sample)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
        assert got.flags.writeable  # NumPy copies a read-only array before its argmax


@pytest.mark.parametrize("batch_size", [1, 8])
def test_accuracy_of_many_classes_is_what_scikit_learn_says(meter: EnergyMeter,
                                                           batch_size: int) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(4)
    x, y = rng.random((203, 6)), rng.integers(0, 40, 203)
    w = rng.random((6, 40))

    def predict(batch: Any) -> Any:
        return batch @ w

    result = wattprint.measure_energy(predict, (x, y), "m", "t", num_samples=203,
                                      batch_size=batch_size, warmup=0, meter=meter,
                                      progress=False, db=None, output_dir=None)
    predicted = (x @ w).argmax(1)
    assert result["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert result["f1_macro"] == pytest.approx(f1_score(y, predicted, average="macro"))


class EpochCounter(CounterSensor):
    """A counter the test advances itself: each epoch costs exactly what the test says,
    however the machine's load stretches its time."""

    name, component, source, measured = "counter:epochs", "cpu", Source.FAKE, False

    def __init__(self) -> None:
        self.joules = 0.0

    def energy_j(self) -> float:
        return self.joules


def test_training_per_epoch_sums_to_total_and_prediction_holds() -> None:
    seen: list[dict[str, Any]] = []
    counter = EpochCounter()

    def steady_epoch(data: Any) -> float:
        counter.joules += 5.0
        return 1.0 / (len(seen) + 1)

    with EnergyMeter([counter], carbon_intensity_g_per_kwh=300.0) as meter:
        result = wattprint.measure_training(steady_epoch, np.zeros((4, 1)), 6, meter=meter,
                                            on_epoch=seen.append)
    epochs = result["epochs"]
    assert len(epochs) == 6 and seen == epochs
    assert [e["energy_j"] for e in epochs] == [5.0] * 6
    assert sum(e["energy_j"] for e in epochs) == pytest.approx(result["total_energy_j"])
    assert result["total_co2_g"] == pytest.approx(sum(e["co2_g"] for e in epochs))
    assert "prediction" not in epochs[0]
    early = epochs[1]["prediction"]
    assert early["after_epochs"] == 2
    actual = result["total_energy_j"]
    assert abs(early["total_energy_j"] - actual) <= early["total_energy_j_pm"]
    assert abs(early["total_co2_g"] - result["total_co2_g"]) <= early["total_co2_g_pm"]
    assert epochs[-1]["prediction"]["total_energy_j"] == pytest.approx(actual)
    assert epochs[-1]["prediction"]["total_energy_j_pm"] == 0.0
    assert [e["loss"] for e in epochs] == pytest.approx([1 / (i + 1) for i in range(6)])


_TEXTS = ["good", "bad", "great", "awful", "fine", "dire"]
_SENTIMENT = ["pos", "neg", "pos", "neg", "pos", "neg"]


def _says(text: str) -> str:
    """A sentiment model that is right on all but "fine"."""
    return "pos" if text in ("good", "great") else "neg"


@pytest.mark.parametrize(("batch_size", "as_objects"), [(1, False), (4, False), (4, True)])
def test_class_names_are_scored_against_the_labels_names(meter: EnergyMeter, batch_size: int,
                                                         as_objects: bool) -> None:
    from sklearn.metrics import f1_score

    def predict(batch: Any) -> Any:
        if batch_size == 1:
            return _says(batch)
        said = [_says(t) for t in batch]
        return np.array(said, dtype=object) if as_objects else said

    result = wattprint.measure_energy(predict, (_TEXTS, _SENTIMENT), "m", "sentiment",
                                      num_samples=6, batch_size=batch_size, warmup=0,
                                      meter=meter, progress=False, db=None, output_dir=None)
    said = [_says(t) for t in _TEXTS]
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["f1_macro"] == pytest.approx(f1_score(_SENTIMENT, said, average="macro"))
    assert not any(note.startswith("no accuracy") for note in result["notes"])


def test_class_numbers_returned_as_a_list_per_batch_are_scored(meter: EnergyMeter) -> None:
    x, y = np.arange(6.0).reshape(6, 1), np.array([0, 1, 0, 1, 0, 0])
    result = wattprint.measure_energy(lambda b: [int(v[0]) % 2 for v in b], (x, y), "m", "t",
                                      num_samples=6, batch_size=4, warmup=0, meter=meter,
                                      progress=False, db=None, output_dir=None)
    assert result["accuracy"] == pytest.approx(5 / 6)


@pytest.mark.parametrize(("predict", "data", "why"), [
    (lambda b: np.zeros(5), (np.zeros((6, 2)), np.arange(6) % 2),
     "no accuracy: 10 predictions for 6 labels"),
    (lambda b: np.zeros((len(b), 2 + len(b) % 4)), (np.zeros((6, 2)), np.arange(6) % 2),
     "no accuracy: the outputs could not be put together as predictions"),
    (lambda b: ["pos"] * len(b), (np.zeros((6, 2)), np.arange(6) - 1),
     "no accuracy: the outputs are texts and the labels have no class names"),
    (lambda b: ["pos"] * len(b), (np.zeros((6, 2)), np.linspace(0, 1, 6)),
     "no rmse or mae: the outputs are texts, the targets numbers"),
    (lambda b: np.array([[None, 1.0]] * len(b), dtype=object),
     (np.zeros((6, 2)), np.arange(6) % 2),
     "no accuracy: the outputs cannot be compared with the labels"),
    (lambda b: ["pos", 1, 0, 1][:len(b)], (np.zeros((6, 2)), np.arange(6) % 2),
     "no accuracy: the outputs mix texts and other values"),
], ids=["too-many", "ragged", "texts-unnamed-labels", "texts-for-targets", "objects", "mixed"])
def test_labels_that_cannot_score_the_outputs_say_why_down_to_the_report(
        meter: EnergyMeter, tmp_path: Path, predict: Any, data: Any, why: str) -> None:
    from wattprint.report import write_report
    from wattprint.store import Store

    db = tmp_path / "runs.db"
    result = wattprint.measure_energy(predict, data, "m", "t", num_samples=6, batch_size=4,
                                      warmup=0, meter=meter, progress=False, db=db,
                                      output_dir=tmp_path / "results")
    assert "accuracy" not in result and "rmse" not in result
    assert any(note.startswith(why) for note in result["notes"]), result["notes"]
    with Store(db) as store:
        (run,) = store.runs()
    assert run.measurement_notes == tuple(result["notes"])
    written = json.loads(Path(result["output_file"]).read_text())
    assert written["notes"] == result["notes"]
    html = write_report(db, out=tmp_path / "report.html").read_text()
    runs = html.split('<section id="runs">')[1].split("</section>")[0]
    (title,) = re.findall(r'<span class="hint" title="([^"]*)">note</span>', runs)
    assert title == escape("; ".join(result["notes"]), quote=True)


def test_transcripts_returned_one_per_sample_are_scored(meter: EnergyMeter) -> None:
    from wattprint.workloads.datasets import as_dataset
    from wattprint.workloads.metrics import word_error_rate

    heard = ["the cat sat", "a dog", "hello there"]
    said = ["the cat sat", "a dog barked", "hello"]
    data = as_dataset((np.arange(3.0).reshape(3, 1), said), task="automatic-speech-recognition")
    result = wattprint.measure_energy(lambda clip: heard[int(clip[0])], data, "m", "asr",
                                      num_samples=3, warmup=0, meter=meter, progress=False,
                                      db=None, output_dir=None)
    assert result["wer"] == pytest.approx(word_error_rate(said, heard))
    assert result["wer"] > 0


#: Runs measure_inference in a fresh process, once per warm-up count given, on a model of eight
#: layers whose calls each return a new array of 300 floats (2.4 KB: the 1,000 outputs kept span
#: about 590 pages); prints the minor page faults the process took inside each run's window, as
#: JSON. Before the outputs' memory was kept, the runs after the first took about 430 each.
KEPT_OUTPUTS_SCRIPT = """\
import json, resource, sys
import numpy as np
from wattprint import EnergyMeter
from wattprint.workloads.harness import measure_inference

root, warmups = sys.argv[1], [int(w) for w in sys.argv[2:]]
w = np.random.default_rng(0).random((300, 300)) / 300
data = np.random.default_rng(1).random((1000, 300))

def model(x):  # layers: their temporaries come and go as a network's do
    for _ in range(8):
        x = np.tanh(x @ w)
    return x

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

meter = EnergyMeter(["rapl"], powercap_root=root)
edges = []
begin, end = meter.begin, meter.end
def counted_begin(name):
    begin(name)
    edges.append(faults())
def counted_end(name):
    edges.append(faults())
    return end(name)
meter.begin, meter.end = counted_begin, counted_end
window = []
for warmup in warmups:
    measure_inference(model, data, "m", "t", num_samples=1000, warmup=warmup, meter=meter,
                      per_sample=True, progress=False)
    window.append(edges[-1] - edges[-2])
print(json.dumps(window))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc gives a freed heap top back to the system")
@pytest.mark.parametrize("warmups", [[10], [0, 0, 0]], ids=["first-run-warmed", "runs-after"])
def test_kept_outputs_take_no_page_faults_in_the_window(tmp_path: Path,
                                                        warmups: list[int]) -> None:
    """The loop keeps every output (a serving loop frees each): their memory is the
    process's before the window opens, sized by the warm-up's outputs, and stays with it from
    run to run, so the window does not pay a page fault a page for them (about 590 here).
    Without a warm-up, a fresh process's first run does take them: what follows does not."""
    from powercap import Zone, build_tree

    build_tree(tmp_path / "powercap", [Zone("intel-rapl:0", "package-0", energy_uj=1_000)])
    script = tmp_path / "kept.py"
    script.write_text(KEPT_OUTPUTS_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "powercap"),
                           *map(str, warmups)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    window = json.loads(done.stdout)
    counted = window if warmups[0] else window[1:]  # a cold first run pays its pages
    assert counted and all(n < 60 for n in counted), window
    if not warmups[0]:
        assert window[0] > 300, window  # the pages the outputs need: the test can see them


def test_outputs_kept_are_sized_by_what_they_hold_in_this_process() -> None:
    """What the heap is asked to keep for the loop's outputs: an array's or a CPU tensor's
    bytes; nothing for text, a dict, or a tensor that is not in this process's memory."""
    import torch

    from wattprint.workloads.harness import _host_bytes

    assert _host_bytes(np.zeros(3)) == 24
    assert _host_bytes(torch.zeros(4, dtype=torch.float32)) == 16
    assert _host_bytes(torch.zeros(4, device="meta")) == 0
    assert _host_bytes("some text") == 0
    assert _host_bytes({"tokens": 3}) == 0
    assert _host_bytes(None) == 0
