"""The Keras callback, on a real ``model.fit`` (two epochs of a tiny model, TensorFlow CPU).

The meters read :class:`~wattprint.FakeSensor` power, so every figure can be checked: an
epoch's energy is the power times its duration, the epochs add up to no more than the run, CO2
is the kWh times the site's intensity. The figures are read back from ``fit``'s History, the
stored run from the results store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from readme_blocks import readme_block  # noqa: E402

from wattprint import EnergyMeter, FakeSensor  # noqa: E402
from wattprint.errors import StoreError  # noqa: E402
from wattprint.integrations.keras import LOG_KEYS, EnergyCallback  # noqa: E402
from wattprint.store import Store  # noqa: E402

#: Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

POWER_W = 50.0
INTENSITY = 400.0  # g CO2 per kWh
WUE, WATER_INTENSITY = 2.0, 1.5  # L per kWh, on site and off site
BATCHES = 4  # per epoch


class Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Placed after the energy callback: notes what each batch's logs held, and when."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, float, dict[str, Any]]] = []
        self.epoch = 0
        self.on_epoch_start: list[Any] = []  # things to do as an epoch begins

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch
        for action in self.on_epoch_start:
            action(epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches.append((self.epoch, time.perf_counter(), dict(logs or {})))


def model() -> Any:
    keras.utils.set_random_seed(0)
    made = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    made.compile(optimizer="sgd", loss="mse")
    return made


def fit(callback: EnergyCallback, recorder: Recorder | None = None,
        **fit_args: Any) -> tuple[Any, float]:
    """Two epochs of ``BATCHES`` batches: the History and the seconds ``fit`` took."""
    x = np.random.default_rng(0).normal(size=(16 * BATCHES, 4)).astype("float32")
    fit_args.setdefault("epochs", 2)
    t0 = time.perf_counter()
    history = model().fit(x, x.sum(axis=1), batch_size=16, verbose=0,
                          callbacks=[callback, recorder or Recorder()], **fit_args)
    return history, time.perf_counter() - t0


def meter(*sensors: FakeSensor) -> EnergyMeter:
    return EnergyMeter(list(sensors or [FakeSensor(POWER_W)]),
                       carbon_intensity_g_per_kwh=INTENSITY, pue=1.0, wue_l_per_kwh=WUE,
                       water_intensity_l_per_kwh=WATER_INTENSITY)


def test_each_epoch_lands_in_the_history(tmp_path: Path) -> None:
    energy = meter()
    callback, recorder = EnergyCallback(meter=energy), Recorder()
    history, fit_s = fit(callback, recorder)
    epochs, run = callback.epochs, callback.run
    assert run is not None and len(epochs) == 2
    for m in (*epochs, run):
        assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-6)
        kwh = m.energy_j / 3.6e6
        assert m.footprint.co2_g == pytest.approx(kwh * INTENSITY, rel=1e-9)
        assert m.footprint.water_l == pytest.approx(kwh * (WUE + WATER_INTENSITY), rel=1e-9)
    # an epoch covers its batches; the epochs fit in the run, the run in fit()
    for number, m in enumerate(epochs):
        ends = [t for epoch, t, _ in recorder.batches if epoch == number]
        assert len(ends) == BATCHES and m.duration_s >= ends[-1] - ends[0]
    assert sum(m.energy_j for m in epochs) <= run.energy_j
    assert run.duration_s <= fit_s
    h = history.history
    assert h["energy_j"] == [m.energy_j for m in epochs]
    assert h["energy_kwh"] == [m.footprint.kwh for m in epochs]
    assert h["co2_g"] == [m.footprint.co2_g for m in epochs]
    assert h["water_l"] == [m.footprint.water_l for m in epochs]
    assert h["energy_duration_s"] == [m.duration_s for m in epochs]
    assert h["energy_partial"] == [0.0, 0.0]
    assert len(h["loss"]) == 2  # Keras's own figures are untouched
    # batches are measured only when asked for
    assert not any("energy_j" in logs for _, _, logs in recorder.batches)
    assert energy.summary()["num_batches"] == 0 and energy.summary()["num_epochs"] == 2
    assert run.components["cpu"].source.value == "fake" and not run.components["cpu"].measured
    assert energy.open_windows == ()


def test_per_batch_figures_when_asked_for() -> None:
    energy = meter()
    callback, recorder = EnergyCallback(meter=energy, per_batch=True), Recorder()
    history, _ = fit(callback, recorder)
    assert len(recorder.batches) == 2 * BATCHES
    for number, epoch in enumerate(callback.epochs):
        batches = [logs for e, _, logs in recorder.batches if e == number]
        for logs in batches:
            assert set(LOG_KEYS) <= set(logs)
            assert logs["energy_j"] == pytest.approx(POWER_W * logs["energy_duration_s"],
                                                     rel=1e-6)
            assert logs["co2_g"] == pytest.approx(logs["energy_j"] / 3.6e6 * INTENSITY)
        assert sum(logs["energy_j"] for logs in batches) <= epoch.energy_j
    assert energy.summary()["num_batches"] == 2 * BATCHES
    assert energy.batch_summary()["total_energy_j"] == pytest.approx(
        sum(logs["energy_j"] for _, _, logs in recorder.batches))
    assert len(history.history["energy_j"]) == 2  # History keeps the epochs


def test_the_run_is_stored_as_a_training_run(tmp_path: Path) -> None:
    callback = EnergyCallback(meter=meter(), db=tmp_path / "w.db", model_name="tiny")
    fit(callback, initial_epoch=1, epochs=3)  # a resumed fit: its epochs are 2 and 3
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
    run = callback.run
    assert run is not None and record == callback.record
    assert (record.phase, record.status, record.model_name) == ("training", "ok", "tiny")
    assert record.framework == "keras" and record.num_parameters == 5
    assert record.energy_j == pytest.approx(run.energy_j)
    assert record.co2_g == pytest.approx(run.energy_j / 3.6e6 * INTENSITY)
    assert record.provenance == "fake" and not record.partial
    assert record.metrics is not None and set(record.metrics) == {"loss"}
    assert record.extra is not None
    assert [e["energy_j"] for e in record.extra["epochs"]] == pytest.approx(
        [m.energy_j for m in callback.epochs])
    assert [e["epoch"] for e in record.extra["epochs"]] == [2, 3]


def test_a_store_that_fails_after_training_keeps_the_record_and_says_so(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    callback = EnergyCallback(meter=meter(), db=store, model_name="tiny")
    recorder = Recorder()
    recorder.on_epoch_start.append(lambda epoch: store.close())  # the store goes mid-fit
    with pytest.raises(StoreError) as info:
        fit(callback, recorder)
    message = str(info.value)
    assert "training run of 'tiny' was measured but not stored" in message
    assert "is closed" in message and "EnergyCallback.record" in message
    record, run = callback.record, callback.run
    assert record is not None and run is not None and record.id is None
    assert (record.phase, record.model_name, record.framework) == ("training", "tiny", "keras")
    assert record.energy_j == pytest.approx(run.energy_j) and len(record.extra["epochs"]) == 2


def test_a_failing_sensor_leaves_the_stored_run_partial(tmp_path: Path) -> None:
    clock = {"s": 0.0}
    ram = FakeSensor(20.0, component="ram", fail_after_s=5.0, clock=lambda: clock["s"])
    recorder = Recorder()
    # the RAM sensor fails during the second epoch (its clock jumps past fail_after_s)
    recorder.on_epoch_start.append(lambda epoch: clock.update(s=10.0 * epoch))
    callback = EnergyCallback(meter=meter(FakeSensor(30.0), ram), db=tmp_path / "w.db")
    history, _ = fit(callback, recorder)
    first, second = callback.epochs
    assert not first.partial and set(first.components) == {"cpu", "ram"}
    assert second.partial and set(second.components) == {"cpu"}
    assert history.history["energy_partial"] == [0.0, 1.0]
    assert history.history["energy_j"][1] == pytest.approx(30.0 * second.duration_s, rel=1e-6)
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
    assert record.status == "ok" and record.partial is True
    assert record.errors and "simulated failure" in record.errors[0]
    assert record.components is not None and set(record.components) == {"cpu"}
    assert callback.run is not None
    assert record.energy_j == pytest.approx(30.0 * callback.run.duration_s, rel=1e-6)


def test_a_fit_that_raised_is_not_stored_and_its_windows_end() -> None:
    energy = meter()
    callback = EnergyCallback(meter=energy)

    class Stop(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            raise RuntimeError("out of memory")

    x = np.zeros((32, 4), dtype="float32")
    with pytest.raises(RuntimeError, match="out of memory"):
        model().fit(x, x.sum(axis=1), epochs=2, verbose=0, callbacks=[callback, Stop()])
    assert len(energy.open_windows) == 2  # the run and its first epoch: Keras says nothing
    fit(callback)  # the next fit ends them, and measures itself
    assert energy.open_windows == () and len(callback.epochs) == 2


class OutOfMemory(keras.callbacks.Callback):  # type: ignore[misc]
    """Raises in the second epoch's second batch, as a fit that runs out of memory."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if (self.epoch, batch) == (1, 1):
            raise RuntimeError("out of memory")


def test_a_fit_that_raises_in_the_with_block_is_stored_failed_with_its_error(
        tmp_path: Path) -> None:
    """Keras calls no hook when a fit raises: around the fit, the callback ends its windows
    as the error leaves the block, stores the run failed with what was measured until then
    (the first epoch whole, the second cut short), and the error goes on."""
    energy = meter()
    x = np.zeros((16 * BATCHES, 4), dtype="float32")
    callback = EnergyCallback(meter=energy, db=tmp_path / "w.db", model_name="tiny")
    with pytest.raises(RuntimeError, match="out of memory"), callback:
        model().fit(x, x.sum(axis=1), batch_size=16, epochs=3, verbose=0,
                    callbacks=[callback, OutOfMemory()])
    assert energy.open_windows == ()
    run = callback.run
    assert run is not None and len(callback.epochs) == 2
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
        [sweep] = store.sweeps()
    assert record == callback.record
    assert (record.status, record.error) == ("failed", "RuntimeError: out of memory")
    assert (record.phase, record.model_name, record.framework) == ("training", "tiny", "keras")
    assert record.energy_j == pytest.approx(POWER_W * run.duration_s, rel=1e-6)
    assert record.provenance == "fake" and not record.partial
    assert [e["epoch"] for e in record.extra["epochs"]] == [1, 2]
    assert (sweep["status"], sweep["num_failed"]) == ("failed", 1)
    # the callback fits again, in a block of its own: a second run beside the failed one
    with callback:
        fit(callback)
    with Store(tmp_path / "w.db", read_only=True) as store:
        assert [r.status for r in store.runs()] == ["failed", "ok"]


def test_an_error_caught_inside_the_block_leaves_the_fit_out(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Where the fit's error was caught inside the block, when the fit stopped is not known:
    the block's end ends its windows, and it is not stored."""
    energy = meter()
    x = np.zeros((16 * BATCHES, 4), dtype="float32")
    with EnergyCallback(meter=energy, db=tmp_path / "w.db") as callback:
        with pytest.raises(RuntimeError, match="out of memory"):
            model().fit(x, x.sum(axis=1), batch_size=16, epochs=3, verbose=0,
                        callbacks=[callback, OutOfMemory()])
        assert len(energy.open_windows) == 2
    assert energy.open_windows == () and callback.record is None
    assert "the block ended: its measurement is left out and not stored" in caplog.text
    with Store(tmp_path / "w.db", read_only=True) as store:
        assert store.runs() == []


def test_a_db_that_cannot_be_a_store_fails_before_training(tmp_path: Path) -> None:
    energy, recorder = meter(), Recorder()
    with pytest.raises(StoreError, match="is a folder"):
        fit(EnergyCallback(meter=energy, db=tmp_path), recorder)
    assert recorder.batches == [] and energy.open_windows == ()


def test_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(readme_block("keras"), namespace)
    callback, history = namespace["callback"], namespace["history"]
    assert isinstance(callback, EnergyCallback) and callback.run is not None
    assert history.history["energy_j"] == [m.energy_j for m in callback.epochs]
    assert callback.meter is None  # the meter it made for the fit is closed
    with Store(tmp_path / "wattprint.db", read_only=True) as store:
        [record] = store.runs(phase="training")
    assert record.energy_j == pytest.approx(callback.run.energy_j)
