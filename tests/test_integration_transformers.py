"""The Hugging Face Trainer callback, end to end with the real ``transformers.Trainer``.

Tiny models built from configs (nothing downloaded), random token ids as data, on the CPU; a
:class:`~wattprint.sensors.FakeSensor` of known power, so that every figure can be checked
against power x time.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from offline import no_network  # noqa: F401,E402  (autouse: no test here reaches a network)
from readme_blocks import readme_block  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from wattprint import EnergyMeter, FakeSensor  # noqa: E402
from wattprint.errors import ConfigError, LocationError  # noqa: E402
from wattprint.integrations.transformers import EnergyCallback  # noqa: E402
from wattprint.store import Store  # noqa: E402

POWER_W = 50.0


def tiny_bert() -> Any:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2))


def classification_data(n: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(5, 50, (8,), generator=g), "labels": torch.tensor(i % 2)}
            for i in range(n)]


def arguments(tmp_path: Path, **options: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4,
        "num_train_epochs": 2, "logging_steps": 2, "report_to": [], "use_cpu": True,
        "save_strategy": "no", "disable_tqdm": True}
    settings.update(options)
    return TrainingArguments(**settings)


def fake_meter(**options: Any) -> EnergyMeter:
    return EnergyMeter([FakeSensor(power_w=POWER_W, **options)])


class Recorder(TrainerCallback):
    """Keeps a copy of every log it is handed, as a reporter (TensorBoard, W&B) would."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
               **kwargs: Any) -> None:
        self.logs.append(dict(logs))


def test_logs_each_step_epoch_and_the_run(tmp_path: Path) -> None:
    meter = fake_meter()
    reporter = Recorder()
    trainer = Trainer(model=tiny_bert(), args=arguments(tmp_path),
                      train_dataset=classification_data(16), callbacks=[reporter])
    energy = EnergyCallback(meter).attach(trainer)
    assert trainer.callback_handler.callbacks[0] is energy  # ahead of the "reporter"
    trainer.train()

    run = energy.run
    assert run is not None and not run.partial
    assert run.energy_j == pytest.approx(POWER_W * run.duration_s, rel=1e-9)
    logs = reporter.logs
    steps = [log for log in logs if "loss" in log]
    assert len(steps) == 4  # 8 steps, a log every 2
    summary = logs[-1]
    assert "train_runtime" in summary
    assert summary["train_energy_j"] == run.energy_j
    assert summary["train_co2_g"] == run.footprint.co2_g > 0
    assert summary["train_water_l"] == run.footprint.water_l
    # every log carries the time since the previous one: together, nearly all of the run
    logged = [log["energy_j"] for log in logs]
    assert all(e > 0 for e in logged)
    assert [m.energy_j for m in energy.steps] == logged
    assert sum(logged) <= run.energy_j * (1 + 1e-9)
    assert sum(logged) >= 0.9 * run.energy_j
    for log, m in zip(logs, energy.steps, strict=True):
        assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-9)
        assert log["co2_g"] == pytest.approx(m.footprint.co2_g)
        assert log["water_l"] == pytest.approx(m.footprint.water_l)
    # each epoch, in the first log after it ends
    epochs = [log["epoch_energy_j"] for log in logs if "epoch_energy_j" in log]
    assert epochs == [m.energy_j for m in energy.epochs]
    assert len(epochs) == 2
    for m in energy.epochs:
        assert m.energy_j == pytest.approx(POWER_W * m.duration_s, rel=1e-9)
    assert sum(epochs) <= run.energy_j
    assert not any("energy_partial" in log for log in logs)
    # the Trainer's own record of its logs has them too
    history = trainer.state.log_history
    assert [h["energy_j"] for h in history] == logged
    assert history[-1]["train_energy_j"] == run.energy_j
    assert meter.open_windows == ()
    assert energy.record is not None and energy.record.phase == "training"
    assert meter.summary()["num_epochs"] == 2  # the meter's own epoch view agrees


def test_a_callback_given_after_the_reporters_warns_and_they_miss_its_figures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reporter = Recorder()
    energy = EnergyCallback(fake_meter())
    trainer = Trainer(model=tiny_bert(), args=arguments(tmp_path, num_train_epochs=1),
                      train_dataset=classification_data(8), callbacks=[reporter, energy])
    trainer.train()
    assert not any("energy_j" in log for log in reporter.logs)  # why attach() exists
    assert "energy_j" in trainer.state.log_history[0]
    # with reporters configured and no attach(), the callback says so when training begins
    args = arguments(tmp_path, report_to=["mlflow"])
    state = transformers.TrainerState()
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        energy.on_train_begin(args, state, transformers.TrainerControl())
    assert "attach(trainer)" in caplog.text and "mlflow" in caplog.text
    energy.on_train_end(args, state, transformers.TrainerControl())


def test_seq2seq_trainer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
        num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    g = torch.Generator().manual_seed(2)
    data = [{"input_ids": torch.randint(2, 50, (8,), generator=g),
             "labels": torch.randint(2, 50, (4,), generator=g)} for _ in range(8)]
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=4,
        logging_steps=2, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data)
    energy = EnergyCallback(fake_meter(), db=tmp_path / "runs.db",
                            model_name="tiny-t5").attach(trainer)
    trainer.train()
    run = energy.run
    assert run is not None
    assert trainer.state.log_history[-1]["train_energy_j"] == run.energy_j
    assert run.energy_j == pytest.approx(POWER_W * run.duration_s, rel=1e-9)
    assert sum(h["energy_j"] for h in trainer.state.log_history) <= run.energy_j
    [stored] = Store(tmp_path / "runs.db").runs(phase="training")
    assert stored.model_name == "tiny-t5" and stored.energy_j == run.energy_j


def test_the_run_is_stored_as_a_training_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    trainer = Trainer(model=tiny_bert(),
                      args=arguments(tmp_path, eval_strategy="epoch", logging_steps=4),
                      train_dataset=classification_data(16), eval_dataset=classification_data(4))
    energy = EnergyCallback(fake_meter(), db=db, sweep_id="fine-tune", task="classification",
                            dataset="random-ids").attach(trainer)
    trainer.train()
    run = energy.run
    assert run is not None and energy.record is not None
    with Store(db) as store:
        [stored] = store.runs(sweep_id="fine-tune")
    assert stored == energy.record and stored.id == energy.record.id is not None
    assert stored.phase == "training" and stored.status == "ok"
    assert stored.model_name == "BertForSequenceClassification"
    assert stored.framework == "transformers"
    assert stored.task == "classification" and stored.dataset == "random-ids"
    assert stored.energy_j == run.energy_j
    assert stored.duration_s == pytest.approx(run.duration_s)
    assert stored.co2_g == pytest.approx(run.footprint.co2_g)
    assert stored.water_l == pytest.approx(run.footprint.water_l)
    assert stored.provenance == "fake"
    assert stored.components is not None
    assert stored.components["cpu"].source == "fake"
    assert stored.components["cpu"].measured is False
    assert stored.partial is False and stored.errors == ()
    assert stored.num_parameters == sum(p.numel() for p in trainer.model.parameters())
    assert stored.repetition == 0
    assert stored.metrics is not None
    assert stored.metrics["train_loss"] > 0 and "eval_loss" in stored.metrics
    assert stored.metrics["global_step"] == 8
    assert stored.extra is not None
    assert [e["energy_j"] for e in stored.extra["epochs"]] == [m.energy_j
                                                              for m in energy.epochs]
    assert len(stored.extra["epochs"]) == 2
    # a second training with the same callback is the sweep's next repetition
    trainer.train()
    with Store(db) as store:
        runs = store.runs(sweep_id="fine-tune", phase="training")
    assert [r.repetition for r in runs] == [0, 1]
    assert runs[1].energy_j == energy.run.energy_j != run.energy_j


def test_a_failing_sensor_leaves_the_stored_run_partial(tmp_path: Path) -> None:
    now = [0.0]
    sensor = FakeSensor(power_w=POWER_W, fail_after_s=10.0, clock=lambda: now[0])

    class Breaks(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:
                now[0] = 11.0  # from now on, every read of the sensor fails

    db = tmp_path / "runs.db"
    trainer = Trainer(model=tiny_bert(), args=arguments(tmp_path),
                      train_dataset=classification_data(16), callbacks=[Breaks()])
    energy = EnergyCallback(EnergyMeter([sensor]), db=db).attach(trainer)
    trainer.train()
    assert trainer.state.global_step == 8  # the training went on
    history = trainer.state.log_history
    assert "energy_partial" not in history[0]  # step 2: before the failure
    assert all(h["energy_partial"] == 1 for h in history[1:])
    assert energy.run is not None and energy.run.partial
    [stored] = Store(db).runs(phase="training")
    assert stored.status == "ok"
    assert stored.partial is True
    assert stored.errors and "simulated failure" in " ".join(stored.errors)
    assert stored.components == {}  # the failed component is left out, not guessed
    assert stored.extra is not None and stored.extra["epochs"][-1]["partial"] is True


def test_a_training_that_raises_is_stored_as_failed(tmp_path: Path) -> None:
    """The Trainer tells callbacks nothing of an exception: an attached callback still
    stores the run, failed, with what was measured until then, and the error goes on."""

    class Diverges(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:
                raise FloatingPointError("the loss went to NaN")

    db = tmp_path / "runs.db"
    trainer = Trainer(model=tiny_bert(), args=arguments(tmp_path),
                      train_dataset=classification_data(16), callbacks=[Diverges()])
    meter = fake_meter()
    energy = EnergyCallback(meter, db=db).attach(trainer)
    with pytest.raises(FloatingPointError, match="NaN"):
        trainer.train()
    assert meter.open_windows == ()  # nothing left open
    assert energy.run is not None and energy.run.energy_j > 0
    with Store(db) as store:
        [stored] = store.runs(phase="training")
    assert stored.status == "failed"
    assert stored.error == "FloatingPointError: the loss went to NaN"
    assert stored.energy_j == energy.run.energy_j
    assert stored.metrics is not None and stored.metrics["global_step"] == 3
    # the same trainer trains again: a new run, stored beside the failed one
    trainer.callback_handler.callbacks = [c for c in trainer.callback_handler.callbacks
                                          if not isinstance(c, Diverges)]
    trainer.train()
    with Store(db) as store:
        assert [r.status for r in store.runs(phase="training")] == ["failed", "ok"]


class NotMainProcess(Trainer):
    """A Trainer as on a process other than the main one (``args.process_index`` 1)."""

    def is_world_process_zero(self) -> bool:
        return False


def test_only_the_main_process_measures_logs_and_stores(tmp_path: Path) -> None:
    meter = fake_meter()
    db = tmp_path / "runs.db"
    given = EnergyCallback(meter, db=db)
    lazy = EnergyCallback(db=tmp_path / "lazy.db")
    trainer = NotMainProcess(model=tiny_bert(), args=arguments(tmp_path, num_train_epochs=1),
                             train_dataset=classification_data(8), callbacks=[given, lazy])
    trainer.train()
    assert not trainer.state.is_world_process_zero
    assert not any(k.endswith(("energy_j", "co2_g", "water_l"))
                   for h in trainer.state.log_history for k in h)
    assert len(trainer.state.log_history) >= 2  # the Trainer did log
    assert len(meter.history) == 0 and meter.open_windows == ()
    assert lazy.meter is None  # never made
    assert not db.exists() and not (tmp_path / "lazy.db").exists()
    assert given.record is None and given.run is None and given.steps == []


def test_location_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        EnergyCallback(fake_meter(), country="DE")
    with pytest.raises(LocationError):
        EnergyCallback(country="XX")  # fails here, not once training has begun
    energy = EnergyCallback(country="DE", pue=1.2)
    assert energy.site is not None and energy.site.country == "DE"


def test_importing_wattprint_does_not_import_transformers() -> None:
    code = ("import sys, wattprint, wattprint.integrations; "
            "assert 'transformers' not in sys.modules; "
            "import wattprint.integrations.transformers; "
            "assert 'transformers' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore:'pin_memory' argument:UserWarning")  # a CPU-only machine
def test_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"model": tiny_bert(),
                                 "train_dataset": classification_data(8)}
    exec(readme_block("transformers"), namespace)
    energy = namespace["energy"]
    assert isinstance(energy, EnergyCallback)
    assert energy.run is not None and math.isfinite(energy.run.energy_j)
    [stored] = Store(tmp_path / "wattprint.db").runs(phase="training")
    assert stored.location == "DE"
    assert stored.energy_j == energy.run.energy_j
    assert namespace["trainer"].state.log_history[-1]["train_energy_j"] == energy.run.energy_j
