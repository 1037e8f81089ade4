"""The PyTorch loader, against real files torch writes in ``tmp_path``.

State_dicts load by default; TorchScript (code) and a whole pickled model only with
``trust=True`` (tests/test_trust.py has the attacks that refusal stops).
Expected counts and outputs come from torch itself (``sum(p.numel())``, ``module(x)``), never
typed in.
"""

from __future__ import annotations

import itertools
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import TinyCNN, TinyNet  # noqa: E402

from wattprint import load_model  # noqa: E402
from wattprint.errors import ConfigError, ModelError, UntrustedModelError  # noqa: E402
from wattprint.workloads.datasets import Dataset, load_dataset  # noqa: E402
from wattprint.workloads.loaders import torch_loader  # noqa: E402
from wattprint.workloads.loaders.torch_loader import TorchModel, from_module  # noqa: E402
from wattprint.workloads.registry import supported_formats  # noqa: E402

#: TorchScript is deprecated in torch 2.13 but still the safe way to ship a whole model.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.save` is deprecated:DeprecationWarning"),
]


def _torch_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _outputs(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = module(torch.as_tensor(x)).numpy()
    return out


def _tiny_net(seed: int = 0, **kwargs: int) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kwargs).eval()


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def x(digits: Dataset) -> np.ndarray:
    assert isinstance(digits.x, np.ndarray)
    return digits.x[:32]


@pytest.fixture(scope="module")
def net() -> TinyNet:
    return _tiny_net()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, net: TinyNet) -> dict[str, Path]:
    """One file of each kind torch writes, from ``net``, plus damaged copies."""
    d = tmp_path_factory.mktemp("torch")
    paths = {name: d / f"{name}.pt" for name in (
        "scripted", "state_dict", "pickled", "pickled_legacy", "checkpoint", "narrow")}
    torch.jit.save(torch.jit.script(net), str(paths["scripted"]))
    torch.save(net.state_dict(), paths["state_dict"])
    torch.save(net, paths["pickled"])
    torch.save(net, paths["pickled_legacy"], _use_new_zipfile_serialization=False)
    torch.save({"model": net.state_dict(), "epoch": 3}, paths["checkpoint"])
    torch.save(_tiny_net(hidden=8).state_dict(), paths["narrow"])
    paths["random"] = d / "random.pt"
    paths["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    paths["empty"] = d / "empty.pth"
    paths["empty"].touch()
    for name in ("scripted", "state_dict"):
        data = paths[name].read_bytes()
        paths[f"truncated_{name}"] = d / f"truncated_{name}.pt"
        paths[f"truncated_{name}"].write_bytes(data[: len(data) // 2])
    paths["foreign_zip"] = d / "foreign_zip.pt"
    with zipfile.ZipFile(paths["foreign_zip"], "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return paths


# -- formats that load by default ----------------------------------------------------------------

def test_torchscript_loads_when_trusted(files: dict[str, Path], net: TinyNet,
                                        x: np.ndarray) -> None:
    with pytest.raises(UntrustedModelError, match="TorchScript"):
        load_model(files["scripted"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(files["scripted"], trust=True)
    assert not [str(w.message) for w in caught]
    assert isinstance(model, TorchModel)
    assert model.framework == "torch"
    assert isinstance(model.module, torch.jit.ScriptModule)
    assert model.num_parameters == _torch_count(net) == 1210
    assert model.path == files["scripted"]
    assert model.size_bytes == files["scripted"].stat().st_size
    assert model.dtype == "float32"
    assert model.trainable
    np.testing.assert_allclose(model.predict(x), _outputs(net, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_class", ["tiny_models:TinyNet", "tiny_models.TinyNet", TinyNet])
def test_state_dict_loads_into_model_class(files: dict[str, Path], net: TinyNet, x: np.ndarray,
                                           model_class: Any) -> None:
    model = load_model(files["state_dict"], model_class=model_class)
    assert isinstance(model.module, TinyNet)
    assert model.num_parameters == _torch_count(net)
    for name, tensor in net.state_dict().items():
        assert torch.equal(model.module.state_dict()[name], tensor), name
    np.testing.assert_array_equal(model.predict(x), _outputs(net, x))


def test_state_dict_with_constructor_arguments(files: dict[str, Path]) -> None:
    model = load_model(files["narrow"], model_class="tiny_models:TinyNet",
                       model_kwargs={"hidden": 8})
    assert model.num_parameters == _torch_count(TinyNet(hidden=8)) == 610


def test_state_dict_under_a_checkpoint_key(files: dict[str, Path], net: TinyNet,
                                           x: np.ndarray) -> None:
    with pytest.raises(ModelError, match=r"state_dict_key='model'") as info:
        load_model(files["checkpoint"], model_class="tiny_models:TinyNet")
    assert str(files["checkpoint"]) in str(info.value)
    model = load_model(files["checkpoint"], model_class="tiny_models:TinyNet",
                       state_dict_key="model")
    np.testing.assert_array_equal(model.predict(x), _outputs(net, x))
    with pytest.raises(ModelError, match=r"no state_dict_key 'weights'.*'model', 'epoch'"):
        load_model(files["checkpoint"], model_class="tiny_models:TinyNet",
                   state_dict_key="weights")


def test_safetensors_weights_load_into_model_class(tmp_path: Path, net: TinyNet,
                                                   x: np.ndarray) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "net.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))
    model = load_model(path, model_class="tiny_models:TinyNet")
    assert model.num_parameters == _torch_count(net)
    np.testing.assert_array_equal(model.predict(x), _outputs(net, x))


@pytest.mark.parametrize("name", ["absent.pt", "./models/absent", "/no/such/model.onnx"])
def test_a_missing_file_is_named_not_sent_to_the_hub(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelError, match="no such file or folder") as info:
        load_model(name)
    assert name.lstrip("./") in str(info.value) and "Supported:" in str(info.value)


# -- state_dicts that do not fit -----------------------------------------------------------------

def test_mismatched_state_dict_is_a_clear_model_error(files: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as info:
        load_model(files["narrow"], model_class="tiny_models:TinyNet")
    message = str(info.value)
    assert str(files["narrow"]) in message
    assert "does not fit TinyNet" in message
    assert "size mismatch for fc1.weight" in message
    assert message.endswith(f"Supported: {supported_formats()}")
    assert not isinstance(info.value, UntrustedModelError)


def test_state_dict_with_missing_keys_is_refused(tmp_path: Path, net: TinyNet) -> None:
    path = tmp_path / "partial.pt"
    torch.save({"fc1.weight": net.fc1.weight.detach()}, path)
    with pytest.raises(ModelError, match=r"does not fit TinyNet.*Missing key"):
        load_model(path, model_class="tiny_models:TinyNet")


def test_state_dict_needs_a_model_class(files: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"model_class='package.module:ClassName'") as info:
        load_model(files["state_dict"])
    assert str(files["state_dict"]) in str(info.value)


def test_model_class_that_cannot_be_imported(files: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"model_class 'tiny_models:Nope' could not be imported"):
        load_model(files["state_dict"], model_class="tiny_models:Nope")
    with pytest.raises(ConfigError, match=r"model_class must be"):
        load_model(files["state_dict"], model_class="TinyNet")


# -- whole pickled models ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["pickled", "pickled_legacy"])
def test_whole_pickled_model_is_refused_without_trust(files: dict[str, Path], name: str) -> None:
    with pytest.raises(UntrustedModelError) as info:
        load_model(files[name])
    message = str(info.value)
    assert str(files[name]) in message
    assert "tiny_models.TinyNet" in message
    if name == "pickled":  # a zip file lists every class it would import
        assert "torch.nn.modules.linear.Linear" in message
    assert "trust=True" in message
    assert message.endswith(f"Supported: {supported_formats()}")


@pytest.mark.parametrize("name", ["pickled", "pickled_legacy"])
def test_whole_pickled_model_loads_with_trust(files: dict[str, Path], net: TinyNet,
                                              x: np.ndarray, name: str) -> None:
    model = load_model(files[name], trust=True)
    assert isinstance(model.module, TinyNet)
    assert model.num_parameters == _torch_count(net)
    np.testing.assert_array_equal(model.predict(x), _outputs(net, x))


def test_trusted_pickle_whose_class_is_gone(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "gone_models.py"
    source.write_text("import torch\n\n\nclass Gone(torch.nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_models

    path = tmp_path / "gone.pt"
    torch.save(gone_models.Gone(2, 2), path)
    monkeypatch.delitem(sys.modules, "gone_models")
    source.unlink()
    with pytest.raises(ModelError, match=r"could not be loaded.*gone_models") as info:
        load_model(path, trust=True)
    assert str(path) in str(info.value)


# -- predict and train ---------------------------------------------------------------------------

def test_input_shape_reshapes_flat_rows(tmp_path: Path, x: np.ndarray) -> None:
    torch.manual_seed(0)
    cnn = TinyCNN().eval()
    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(cnn), str(path))
    model = load_model(path, input_shape=(1, 8, 8), trust=True)
    assert model.num_parameters == _torch_count(cnn)
    assert model.inputs[0].shape == (None, 1, 8, 8)
    np.testing.assert_allclose(model.predict(x), _outputs(cnn, x.reshape(-1, 1, 8, 8)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match=r"input_shape \(1, 7, 7\) does not fit"):
        load_model(path, input_shape=(1, 7, 7), trust=True).predict(x)


def test_train_epoch_lowers_the_loss_on_digits(files: dict[str, Path], digits: Dataset,
                                               net: TinyNet) -> None:
    model = load_model(files["state_dict"], model_class="tiny_models:TinyNet",
                       task="classification")
    before = model.predict(digits.x)
    losses = [model.train_epoch(digits, batch_size=64, lr=1e-2) for _ in range(4)]
    assert all(np.isfinite(losses)), losses
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses
    assert not np.allclose(model.predict(digits.x), before)
    assert not model.module.training  # back in eval mode
    assert model.num_parameters == _torch_count(net)
    accuracy = float(np.mean(model.predict(digits.x).argmax(axis=1) == digits.y))
    assert accuracy > 0.8, (losses, accuracy)


def test_train_epoch_repeats_exactly_from_the_same_start(files: dict[str, Path],
                                                         digits: Dataset) -> None:
    runs = []
    for seed in (7, 7, 8):
        model = load_model(files["state_dict"], model_class="tiny_models:TinyNet")
        runs.append([model.train_epoch(digits, seed=seed) for _ in range(2)])
    assert runs[1] == pytest.approx(runs[0], rel=1e-6)
    assert runs[2] != pytest.approx(runs[0], rel=1e-6)  # the seed decides the shuffle


def test_torchscript_model_trains(files: dict[str, Path], digits: Dataset) -> None:
    model = load_model(files["scripted"], trust=True)
    before = [p.detach().clone() for p in model.module.parameters()]
    loss = model.train_epoch((digits.x, digits.y), batch_size=128)
    assert np.isfinite(loss) and loss > 0
    after = list(model.module.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_train_epoch_regression_uses_mse() -> None:
    diabetes = load_dataset("diabetes")
    assert isinstance(diabetes.x, np.ndarray) and diabetes.y is not None
    torch.manual_seed(0)
    model = from_module(TinyNet(n_in=diabetes.x.shape[1], n_out=1), task="regression")
    y = (diabetes.y - diabetes.y.mean()) / diabetes.y.std()
    losses = [model.train_epoch((diabetes.x, y), lr=1e-2) for _ in range(3)]
    assert losses[-1] < losses[0], losses
    assert model.predict(diabetes.x[:5]).shape == (5, 1)
    with pytest.raises(ConfigError, match=r"unknown loss 'hinge'"):
        model.train_epoch((diabetes.x, y), loss="hinge")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) for train_epoch: momentum"):
        model.train_epoch((diabetes.x, y), momentum=0.9)


# -- one clear error -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "reason"), [
    ("random", "neither a TorchScript archive nor a file torch.save wrote"),
    ("empty", "the file is empty"),
    ("truncated_scripted", "truncated or corrupt"),
    ("truncated_state_dict", "truncated or corrupt"),
    ("foreign_zip", "neither a TorchScript archive nor a file torch.save wrote"),
])
@pytest.mark.parametrize("trust", [False, True])
def test_corrupt_file_is_one_model_error(files: dict[str, Path], name: str, reason: str,
                                         trust: bool, recwarn: pytest.WarningsRecorder) -> None:
    path = files[name]
    with pytest.raises(ModelError) as info:
        load_model(path, trust=trust)
    message = str(info.value)
    if trust and name in ("random", "foreign_zip"):  # trusted: the unpickler's own reason
        reason = "could not be loaded"
    assert type(info.value) is ModelError
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert message.endswith(f"Supported: {supported_formats()}")
    assert ".." not in message.replace("[...]", "")
    assert not recwarn.list


def test_unknown_option_is_a_config_error(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(files["scripted"], batch=8)
    message = str(info.value)
    assert str(files["scripted"]) in message
    assert "unknown option(s) for a PyTorch model: batch" in message
    assert "known: device, input_dtype, input_shape, model_class" in message


def test_cuda_without_cuda_is_a_config_error(files: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"device 'cuda' was asked for, but torch sees no CUDA"):
        load_model(files["scripted"], device="cuda")


def test_missing_file_given_to_the_loader_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.pt"
    with pytest.raises(ModelError, match=r"absent\.pt: cannot read the file"):
        torch_loader.load(path)


def test_from_module_wraps_an_eager_module(net: TinyNet, x: np.ndarray) -> None:
    model = from_module(net)
    assert model.path is None
    assert model.num_parameters == _torch_count(net)
    assert model.size_bytes == sum(p.numel() * p.element_size() for p in net.parameters())
    np.testing.assert_array_equal(model.predict(x), _outputs(net, x))
    with pytest.raises(ConfigError, match=r"needs a torch.nn.Module"):
        from_module(object())  # type: ignore[arg-type]
