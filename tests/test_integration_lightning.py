"""The PyTorch Lightning callback, on a real Trainer (CPU, two epochs of a tiny model).

The meters read :class:`~wattprint.FakeSensor` power, so every figure can be checked: an
epoch's energy is the power times its duration, the epochs add up to no more than the run, CO2
is the kWh times the site's intensity. The logged figures are read back from a CSVLogger's
file, the stored run from the results store.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from lightning.pytorch.strategies import SingleDeviceStrategy  # noqa: E402
from readme_blocks import readme_block  # noqa: E402

from wattprint import EnergyMeter, FakeSensor  # noqa: E402
from wattprint.errors import StoreError  # noqa: E402
from wattprint.integrations.lightning import EnergyCallback  # noqa: E402
from wattprint.store import Store  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
]

POWER_W = 50.0
INTENSITY = 400.0  # g CO2 per kWh
WUE, WATER_INTENSITY = 2.0, 1.5  # L per kWh, on site and off site


class Tiny(pl.LightningModule):  # type: ignore[misc]
    """A linear regression that notes when each training step ran."""

    def __init__(self, fail_in_epoch: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fail_in_epoch = fail_in_epoch
        self.steps: dict[int, list[float]] = {}
        self.on_epoch_start: list[Any] = []  # things to do as an epoch starts

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.current_epoch == self.fail_in_epoch:
            raise RuntimeError("the loss went to NaN")
        self.steps.setdefault(self.current_epoch, []).append(time.perf_counter())
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        time.sleep(0.01)  # every epoch lasts long enough to see on a busy machine
        return loss

    def on_train_epoch_start(self) -> None:
        for action in self.on_epoch_start:
            action(self.current_epoch)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader() -> Any:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=generator)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=8)


def meter(*sensors: FakeSensor) -> EnergyMeter:
    return EnergyMeter(list(sensors or [FakeSensor(POWER_W)]),
                       carbon_intensity_g_per_kwh=INTENSITY, pue=1.0, wue_l_per_kwh=WUE,
                       water_intensity_l_per_kwh=WATER_INTENSITY)


def fit(tmp_path: Path, callback: EnergyCallback, model: Tiny | None = None,
        **trainer_args: Any) -> tuple[Tiny, float]:
    """Train ``model`` for two epochs; the model and the seconds ``fit`` took."""
    model = model or Tiny()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=2, logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback], enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False, log_every_n_steps=1, **trainer_args)
    t0 = time.perf_counter()
    trainer.fit(model, loader())
    return model, time.perf_counter() - t0


def logged(tmp_path: Path) -> list[dict[str, float]]:
    """The CSVLogger's rows, empty cells left out."""
    with (tmp_path / "logs" / "version_0" / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def column(rows: list[dict[str, float]], name: str) -> list[float]:
    return [row[name] for row in rows if name in row]


def test_each_epoch_and_the_run_are_logged_with_their_footprint(tmp_path: Path) -> None:
    callback = EnergyCallback(meter=meter())
    model, fit_s = fit(tmp_path, callback)
    rows = logged(tmp_path)
    epochs, run = callback.epochs, callback.run
    assert run is not None and len(epochs) == 2
    for m in (*epochs, run):
        assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-6)
        kwh = m.energy_j / 3.6e6
        assert m.footprint.co2_g == pytest.approx(kwh * INTENSITY, rel=1e-9)
        assert m.footprint.water_l == pytest.approx(kwh * (WUE + WATER_INTENSITY), rel=1e-9)
        assert not m.partial
    # an epoch covers its training steps; the epochs fit in the run, the run in fit()
    for number, m in enumerate(epochs):
        steps = model.steps[number]
        assert len(steps) == 3
        assert m.duration_s >= steps[-1] - steps[0] + 0.01
    assert sum(m.energy_j for m in epochs) <= run.energy_j
    assert run.duration_s <= fit_s
    # the logged figures are the measured ones (Lightning logs float32)
    logged_epochs = column(rows, "wattprint/epoch_energy_j")
    assert logged_epochs == pytest.approx([m.energy_j for m in epochs], rel=1e-6)
    assert column(rows, "wattprint/epoch_co2_g") == pytest.approx(
        [m.footprint.co2_g for m in epochs], rel=1e-6)
    assert column(rows, "wattprint/epoch_water_l") == pytest.approx(
        [m.footprint.water_l for m in epochs], rel=1e-6)
    assert column(rows, "wattprint/epoch_duration_s") == pytest.approx(
        [m.duration_s for m in epochs], rel=1e-6)
    assert column(rows, "wattprint/epoch_partial") == [0.0, 0.0]
    assert column(rows, "wattprint/run_energy_j") == pytest.approx([run.energy_j], rel=1e-9)
    assert column(rows, "wattprint/run_co2_g") == pytest.approx([run.footprint.co2_g], rel=1e-9)
    assert len(column(rows, "train_loss")) == 2  # the module's own logging is untouched
    # provenance stays with the figures, and the meter's epoch summary counts the epochs
    assert run.components["cpu"].source.value == "fake"
    assert not run.components["cpu"].measured
    assert callback.meter is not None and callback.meter.summary()["num_epochs"] == 2
    assert callback.meter.open_windows == ()


def test_the_run_is_stored_as_a_training_run(tmp_path: Path) -> None:
    callback = EnergyCallback(meter=meter(), db=tmp_path / "w.db", model_name="tiny")
    fit(tmp_path, callback)
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
    run = callback.run
    assert run is not None
    assert record == callback.record
    assert (record.phase, record.status, record.model_name) == ("training", "ok", "tiny")
    assert record.energy_j == pytest.approx(run.energy_j)
    assert record.co2_g == pytest.approx(run.energy_j / 3.6e6 * INTENSITY)
    assert record.provenance == "fake" and not record.partial
    assert record.num_parameters == 5
    assert record.metrics is not None and "train_loss" in record.metrics
    assert record.extra is not None
    assert [e["energy_j"] for e in record.extra["epochs"]] == pytest.approx(
        [m.energy_j for m in callback.epochs])
    assert [e["epoch"] for e in record.extra["epochs"]] == [1, 2]


def test_a_store_that_fails_after_training_keeps_the_record_and_says_so(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    model = Tiny()
    model.on_epoch_start.append(lambda epoch: store.close())  # the store goes mid-training
    callback = EnergyCallback(meter=meter(), db=store, model_name="tiny")
    with pytest.raises(StoreError) as info:
        fit(tmp_path, callback, model)
    message = str(info.value)
    assert "training run of 'tiny' was measured but not stored" in message
    assert "is closed" in message and "EnergyCallback.record" in message
    record, run = callback.record, callback.run
    assert record is not None and run is not None and record.id is None
    assert (record.phase, record.model_name, record.status) == ("training", "tiny", "ok")
    assert record.energy_j == pytest.approx(run.energy_j) and len(record.extra["epochs"]) == 2


def test_a_failing_sensor_leaves_the_stored_run_partial(tmp_path: Path) -> None:
    clock = {"s": 0.0}
    ram = FakeSensor(20.0, component="ram", fail_after_s=5.0, clock=lambda: clock["s"])
    model = Tiny()
    # the RAM sensor fails during the second epoch (its clock jumps past fail_after_s)
    model.on_epoch_start.append(lambda epoch: clock.update(s=10.0 * epoch))
    callback = EnergyCallback(meter=meter(FakeSensor(30.0), ram), db=tmp_path / "w.db")
    fit(tmp_path, callback, model)
    first, second = callback.epochs
    assert not first.partial and set(first.components) == {"cpu", "ram"}
    assert second.partial and set(second.components) == {"cpu"}
    assert second.energy_j == pytest.approx(30.0 * second.duration_s, rel=1e-6)
    assert column(logged(tmp_path), "wattprint/epoch_partial") == [0.0, 1.0]
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
    assert record.status == "ok" and record.partial is True
    assert record.errors and "simulated failure" in record.errors[0]
    assert record.components is not None and set(record.components) == {"cpu"}
    assert callback.run is not None
    assert record.energy_j == pytest.approx(30.0 * callback.run.duration_s, rel=1e-6)


def test_a_training_that_raises_is_stored_as_failed(tmp_path: Path) -> None:
    callback = EnergyCallback(meter=meter(), db=tmp_path / "w.db")
    with pytest.raises(RuntimeError, match="NaN"):
        fit(tmp_path, callback, Tiny(fail_in_epoch=1))
    with Store(tmp_path / "w.db", read_only=True) as store:
        [record] = store.runs()
    assert record.status == "failed" and record.error == "RuntimeError: the loss went to NaN"
    assert record.extra is not None and len(record.extra["epochs"]) == 2
    assert callback.meter is not None and callback.meter.open_windows == ()


def test_a_db_that_cannot_be_a_store_fails_before_training(tmp_path: Path) -> None:
    energy = meter()
    model = Tiny()
    with pytest.raises(StoreError, match="is a folder"):
        fit(tmp_path, EnergyCallback(meter=energy, db=tmp_path), model)
    assert model.steps == {} and energy.open_windows == ()


class NotRankZero(SingleDeviceStrategy):  # type: ignore[misc]
    """One device, as a process of global rank 1 would see it."""

    def __init__(self) -> None:
        super().__init__(device=torch.device("cpu"))
        self.global_rank = 1

    @property
    def is_global_zero(self) -> bool:
        return False


def test_only_rank_zero_measures_logs_and_stores(tmp_path: Path) -> None:
    energy = meter()
    callback = EnergyCallback(meter=energy, db=tmp_path / "w.db")
    fit(tmp_path, callback, strategy=NotRankZero())
    rows = logged(tmp_path)
    assert len(column(rows, "train_loss")) == 2  # the trainer logged, on its own
    assert not [k for row in rows for k in row if k.startswith("wattprint/")]
    assert list(energy.history) == [] and callback.run is None and callback.epochs == []
    assert not (tmp_path / "w.db").exists()


PYTORCH_LIGHTNING_ONLY = textwrap.dedent("""
    import sys
    sys.modules["lightning"] = None  # as if only pytorch_lightning were installed
    import pytorch_lightning as pl
    import torch
    from wattprint import EnergyMeter, FakeSensor
    from wattprint.integrations.lightning import EnergyCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x = torch.randn(16, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    callback = EnergyCallback(meter=EnergyMeter([FakeSensor(10.0)]))
    pl.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[callback],
               enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False).fit(Tiny(), torch.utils.data.DataLoader(data, 8))
    print(issubclass(EnergyCallback, pl.Callback), len(callback.epochs),
          round(callback.run.energy_j / callback.run.duration_s, 6))
""")


def test_works_with_pytorch_lightning_alone() -> None:
    pytest.importorskip("pytorch_lightning")
    done = subprocess.run([sys.executable, "-c", PYTORCH_LIGHTNING_ONLY], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["True", "2", "10.0"]


def test_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(readme_block("lightning"), namespace)
    callback = namespace["callback"]
    assert isinstance(callback, EnergyCallback) and callback.run is not None
    assert len(callback.epochs) == 2
    assert callback.meter is None  # the meter it made for the run is closed
    with Store(tmp_path / "wattprint.db", read_only=True) as store:
        [record] = store.runs(phase="training")
    assert record.energy_j == pytest.approx(callback.run.energy_j)
