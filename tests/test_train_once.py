"""A torch recipe is trained once per dataset in a sweep: a later model with the same recipe,
options and epochs takes its weights; a resumed sweep takes the weights it saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import wattprint
from wattprint import FakeSensor
from wattprint.meter import EnergyMeter
from wattprint.store import Store


def config(tmp: Path, models: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "project": "train-once",
        "models": models,
        "datasets": [{"name": "digits", "task": "classification", "limit": 80}],
        "monitoring": {"repetitions": 1, "warmup": 0, "batch_size": 16},
        "output": {"export_formats": [], "output_dir": str(tmp / "results"),
                   "db": str(tmp / "w.db")},
    }


def run(cfg: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    meter = EnergyMeter(sensors=[FakeSensor(power_w=20.0)])
    try:
        return wattprint.Benchmark(cfg).run(meter=meter, progress=False, **kwargs)
    finally:
        meter.close()


def accuracy(db: Path) -> dict[tuple[str, str], float]:
    with Store(db, read_only=True) as store:
        return {(str(r.model_name), str(r.variant)): float(r.metric("accuracy"))
                for r in store.runs(phase="inference")}


def test_a_repeated_recipe_is_trained_once_and_shares_its_weights(tmp_path: Path) -> None:
    report = run(config(tmp_path, [
        {"name": "mlp", "source": "torch:MLP", "epochs": 2},
        {"name": "mlp-onnx", "source": "torch:MLP", "epochs": 2, "export": "onnx"},
        {"name": "mlp-3", "source": "torch:MLP", "epochs": 3},  # another training
    ]))
    assert [r["error"] for r in report["runs"] if r["status"] != "ok"] == []
    with Store(tmp_path / "w.db", read_only=True) as store:
        trained = sorted(str(r.model_name) for r in store.runs(phase="training"))
        shared = [r for r in store.runs(phase="inference") if r.model_name == "mlp-onnx"]
    assert trained == ["mlp", "mlp-3"]
    acc = accuracy(tmp_path / "w.db")
    assert acc["mlp-onnx", "fp32"] == acc["mlp", "fp32"]
    assert acc["mlp-onnx", "onnx"] == acc["mlp", "fp32"]  # the export of the same weights
    # the shared model is the first's saved model, on disk
    assert all(r.size_bytes and r.size_bytes > 0 for r in shared)


def test_a_resumed_sweep_takes_the_weights_its_training_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The training cell finished in the first run, its inference did not: the resumed run
    # scores the weights that were trained and recorded, not a model trained again.
    from wattprint.sweep import runner

    cfg = config(tmp_path, [{"name": "mlp", "source": "torch:MLP", "epochs": 1}])
    first = run(cfg)
    before = accuracy(tmp_path / "w.db")["mlp", "fp32"]
    with Store(tmp_path / "w.db") as store:
        store._transaction(lambda c: c.execute("DELETE FROM runs WHERE phase = 'inference'"),
                           write=True)

    def trained_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the resumed sweep trained the model again")

    monkeypatch.setattr(runner, "_train_model", trained_again)
    again = run(cfg, resume=True)
    assert [r["error"] for r in again["runs"] if r["status"] != "ok"] == []
    assert again["sweep_id"] == first["sweep_id"]
    with Store(tmp_path / "w.db", read_only=True) as store:
        assert len(store.runs(phase="training")) == 1
    assert accuracy(tmp_path / "w.db")["mlp", "fp32"] == before


def test_torch_runs_record_the_threads_torch_was_given(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from wattprint._cgroup import allotted_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # nothing asked: the cores
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(allotted_cores() + 3)  # more than the process is allotted
        report = run(config(tmp_path, [{"name": "mlp", "source": "torch:MLP", "epochs": 1},
                                       {"name": "lr", "source": "sklearn:LogisticRegression"}]))
    finally:
        torch.set_num_threads(before)
    assert [r["error"] for r in report["runs"] if r["status"] != "ok"] == []
    with Store(tmp_path / "w.db", read_only=True) as store:
        runs = store.runs(phase="inference")
    threads = {str(r.model_name): (r.host or {}).get("torch_threads") for r in runs}
    assert threads == {"mlp": allotted_cores(), "lr": None}


def test_a_torch_recipe_is_measured_as_the_torchscript_its_variants_are(tmp_path: Path) -> None:
    """The base of a torch recipe runs as the TorchScript the sweep saved it as, as each of its
    variants does (saved as TorchScript, loaded back): a variant's saving is then its own,
    not TorchScript's over eager torch. The model that shares the training does too."""
    report = run(config(tmp_path, [
        {"name": "cnn", "source": "torch:SmallCNN", "epochs": 1,
         "quantization": {"enabled": True, "method": "dynamic"},
         "pruning": {"enabled": True, "amount": 0.5}},
        {"name": "cnn-again", "source": "torch:SmallCNN", "epochs": 1},
    ]))
    assert [r["error"] for r in report["runs"] if r["status"] != "ok"] == []
    with Store(tmp_path / "w.db", read_only=True) as store:
        runs = store.runs(phase="inference")
    modes = {(str(r.model_name), str(r.variant)): (r.extra or {}).get("torchscript")
             for r in runs}
    assert modes == {("cnn", "fp32"): True, ("cnn", "int8-dynamic"): True,
                     ("cnn", "pruned-l1_unstructured-0.5"): True, ("cnn-again", "fp32"): True}
    acc = accuracy(tmp_path / "w.db")
    assert acc["cnn-again", "fp32"] == acc["cnn", "fp32"]  # the same weights, as saved
    sizes = {(str(r.model_name), str(r.variant)): r.size_bytes for r in runs}
    saved = next((tmp_path / "results").glob("*/cnn/digits/fp32.pt"))
    assert sizes["cnn", "fp32"] == sizes["cnn-again", "fp32"] == saved.stat().st_size
