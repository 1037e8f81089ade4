"""Safe by default: anything that runs code when it is loaded or called needs ``trust=True``.

Each test builds a real artifact that attacks the machine (writes or reads a file of our
choosing inside ``tmp_path``), then checks that without trust wattprint refuses it before the
attack can run, and that with trust it loads and the attack does happen, which proves the
artifact is real.
"""

from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wattprint
from wattprint import FakeSensor
from wattprint.errors import ModelError, UntrustedModelError, WattprintError
from wattprint.meter import EnergyMeter

torch = pytest.importorskip("torch")

from tiny_models import TinyNet  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning"),
    # Keras's TensorFlow backend calls ``np.array`` on variables, which NumPy 2 warns about.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

#: What the attacks write: three bytes, ``b"hi\n"``.
PAYLOAD = (104, 105, 10)


# -- TorchScript is code ------------------------------------------------------------------------

class WritesOnLoad(torch.nn.Module):
    """Its scripted ``__setstate__``, which ``torch.jit.load`` runs, writes ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.weight = torch.nn.Parameter(torch.ones(4, 2))
        self.written = torch.zeros(len(PAYLOAD), dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.target, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.target = state[0]
        self.weight = state[1]
        self.training = state[2]
        file = torch.from_file(self.target, shared=True, size=3, dtype=torch.uint8)
        self.written = file.copy_(torch.tensor([104, 105, 10], dtype=torch.uint8))


class WritesOnPredict(torch.nn.Module):
    """Its scripted ``forward`` overwrites the start of ``target`` on every call."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.weight = torch.nn.Parameter(torch.ones(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        file = torch.from_file(self.target, shared=True, size=3, dtype=torch.uint8)
        written = file.copy_(torch.tensor([104, 105, 10], dtype=torch.uint8))
        return x @ self.weight + written.sum().float() * 0.0


class ReadsOnPredict(torch.nn.Module):
    """Its scripted ``forward`` returns the bytes of ``secret``, whatever the input."""

    def __init__(self, secret: str, size: int) -> None:
        super().__init__()
        self.secret = secret
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.secret, shared=False, size=self.size, dtype=torch.uint8)
        return data.reshape(1, -1).expand(x.shape[0], -1)


def _scripted(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_torchscript_that_writes_a_file_on_load_needs_trust(tmp_path: Path) -> None:
    target = tmp_path / "written-on-load"
    path = _scripted(WritesOnLoad(str(target)), tmp_path / "model.pt")
    assert not target.exists()
    with pytest.raises(UntrustedModelError) as info:
        wattprint.load_model(path)
    assert not target.exists()
    message = str(info.value)
    assert str(path) in message and "TorchScript" in message
    assert "when it is loaded" in message and "when it predicts" in message
    assert "read and write" in message
    assert "trust=True" in message and "trust: true" in message
    assert "state_dict" in message and "model_class=" in message
    assert ".safetensors" in message and "ONNX" in message

    model = wattprint.load_model(path, trust=True)  # the attack is real: loading writes
    assert target.read_bytes() == bytes(PAYLOAD)
    assert model.predict(np.ones((2, 4), dtype=np.float32)).shape == (2, 2)


def test_torchscript_that_writes_a_file_on_predict_needs_trust(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_bytes(b"mine: keep")
    path = _scripted(WritesOnPredict(str(target)), tmp_path / "model.pth")
    with pytest.raises(UntrustedModelError, match="TorchScript"):
        wattprint.load_model(path, task="classification")
    assert target.read_bytes() == b"mine: keep"

    model = wattprint.load_model(path, task="classification", trust=True)
    assert target.read_bytes() == b"mine: keep"
    model.predict(np.ones((1, 4), dtype=np.float32))
    assert target.read_bytes() == b"hi\ne: keep"


def test_torchscript_that_reads_a_file_on_predict_needs_trust(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"s3cret")
    path = _scripted(ReadsOnPredict(str(secret), 6), tmp_path / "model.pt")
    with pytest.raises(UntrustedModelError, match="TorchScript"):
        wattprint.load_model(path)

    model = wattprint.load_model(path, trust=True)
    out = model.predict(np.zeros((1, 4), dtype=np.float32))
    assert bytes(out[0].astype(np.uint8)) == b"s3cret"


def test_state_dict_and_safetensors_still_load_without_trust(tmp_path: Path) -> None:
    net = TinyNet().eval()
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    loaded = wattprint.load_model(tmp_path / "weights.pt", model_class="tiny_models:TinyNet")
    assert loaded.num_parameters == 1210
    safetensors = pytest.importorskip("safetensors.torch")
    safetensors.save_file(net.state_dict(), str(tmp_path / "weights.safetensors"))
    loaded = wattprint.load_model(tmp_path / "weights.safetensors", model_class=TinyNet)
    assert loaded.num_parameters == 1210


# -- model_class calls only torch.nn.Module classes unless trusted -------------------------------

@pytest.fixture
def state_dict(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pt"
    torch.save(TinyNet().state_dict(), path)
    return path


def _shell_writes(target: Path) -> dict[str, Any]:
    return {"command": f"echo hi > {shlex.quote(str(target))}"}


@pytest.mark.parametrize("how", ["os:system", "builtins:open", "builtins.open"])
def test_model_class_that_is_no_module_is_refused_before_it_is_called(
    state_dict: Path, tmp_path: Path, how: str
) -> None:
    target = tmp_path / "made-by-model-class"
    kwargs = (_shell_writes(target) if how == "os:system"
              else {"file": str(target), "mode": "w"})
    with pytest.raises(ModelError) as info:
        wattprint.load_model(state_dict, model_class=how, model_kwargs=kwargs)
    assert not target.exists()
    assert isinstance(info.value, UntrustedModelError)
    message = str(info.value)
    assert how in message and "torch.nn.Module" in message
    assert "trust=True" in message and "trust: true" in message


def test_model_class_given_as_a_class_is_checked_too(state_dict: Path) -> None:
    with pytest.raises(UntrustedModelError, match=r"not a torch\.nn\.Module subclass"):
        wattprint.load_model(state_dict, model_class=dict)
    with pytest.raises(ModelError, match=r"made a dict, not a torch\.nn\.Module") as info:
        wattprint.load_model(state_dict, model_class=dict, trust=True)  # called, trusted
    assert not isinstance(info.value, UntrustedModelError)
    assert wattprint.load_model(state_dict, model_class=TinyNet).num_parameters == 1210


def test_trusted_model_class_is_called(state_dict: Path, tmp_path: Path) -> None:
    target = tmp_path / "made-by-model-class"
    with pytest.raises(ModelError, match=r"not a torch\.nn\.Module") as info:
        wattprint.load_model(state_dict, model_class="os:system",
                             model_kwargs=_shell_writes(target), trust=True)
    assert not isinstance(info.value, UntrustedModelError)
    assert target.read_text() == "hi\n"  # trusted, it ran: the refusal above is what stops it


def test_sweep_config_naming_os_system_fails_cleanly(state_dict: Path, tmp_path: Path) -> None:
    target = tmp_path / "made-by-sweep"
    config = tmp_path / "sweep.yaml"
    q = json.dumps  # a JSON string is a YAML string
    config.write_text(f"""
project: attack
models:
  - name: evil
    path: {q(str(state_dict))}
    task: classification
    options:
      model_class: "os:system"
      model_kwargs: {{command: {q(_shell_writes(target)["command"])}}}
datasets:
  - {{name: digits, split: test}}
monitoring: {{warmup: 0, repetitions: 1}}
output:
  export_formats: []
  db: {q(str(tmp_path / "w.db"))}
  output_dir: {q(str(tmp_path / "out"))}
""")
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0)])
    try:
        report = wattprint.Benchmark(config).run(meter=meter, progress=False)
    except WattprintError as err:  # refused while the config is checked
        message = str(err)
    else:  # refused when the cell loads the model: the cell fails, the sweep ends
        failed = [r for r in report["runs"] if r["status"] == "failed"]
        assert len(failed) == len(report["runs"]) == 1
        message = failed[0]["error"]
    assert not target.exists()
    assert "torch.nn.Module" in message and "trust" in message


# -- wattprint's own variants load back trusted; the files stay untrusted to others ---------------

def test_pruned_variant_loads_back_but_is_not_trusted_afterwards(tmp_path: Path) -> None:
    from wattprint.optimize import prune
    from wattprint.workloads.loaders.torch_loader import from_module

    model = from_module(TinyNet(), task="classification", input_shape=(64,))
    meter = EnergyMeter(sensors=[FakeSensor(power_w=5.0)])
    result = prune(model, "l1_unstructured", 0.5, out_dir=tmp_path, meter=meter)
    assert result.model.predict(np.zeros((2, 64), dtype=np.float32)).shape == (2, 10)
    with pytest.raises(UntrustedModelError, match="TorchScript"):
        wattprint.load_model(result.path)
    assert wattprint.load_model(result.path, trust=True).num_parameters == 1210


# -- ONNX external data stays inside the model's folder -----------------------------------------

def _onnx_reading(location: str) -> Any:
    """An ONNX model whose one initializer is 6 bytes of external data at ``location``:
    its output is the input plus those bytes."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    weight = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[6],
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "6")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])], "reads",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, 6])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [None, 6])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_onnx_bytes_naming_external_data_are_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.workloads.loaders.onnx_loader import from_bytes

    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.bin").write_bytes(b"s3cret")
    data = _onnx_reading("secret.bin").SerializeToString()
    with pytest.raises(ModelError) as info:
        from_bytes(data)
    assert "external data" in str(info.value) and "'secret.bin'" in str(info.value)
    # Saved beside its data, the same model is an ordinary model file and loads.
    (tmp_path / "model.onnx").write_bytes(data)
    model = wattprint.load_model(tmp_path / "model.onnx")
    out = model.predict(np.zeros((1, 6), dtype=np.uint8))
    assert bytes(out[0]) == b"s3cret"


@pytest.mark.parametrize("how", ["parent", "absolute", "link"])
def test_onnx_file_naming_data_outside_its_folder_is_refused(tmp_path: Path, how: str) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s3cret")
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"parent": "../secret.bin", "absolute": str(secret), "link": "data.bin"}[how]
    if how == "link":
        (folder / "data.bin").symlink_to(secret)
    path = folder / "model.onnx"
    path.write_bytes(_onnx_reading(location).SerializeToString())
    with pytest.raises(ModelError) as info:
        wattprint.load_model(path)
    assert "external data outside its folder" in str(info.value)


# -- TensorFlow SavedModels are code ------------------------------------------------------------

def _saved_model_writing(tf: Any, folder: Path, target: Path) -> None:
    """A SavedModel whose resource's initializer, run by ``tf.saved_model.load``, writes
    ``target``; its serving signature is an ordinary matmul."""

    class Writer(tf.saved_model.experimental.TrackableResource):  # type: ignore[misc]
        def _create_resource(self) -> Any:
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self) -> Any:
            return tf.io.write_file(str(target), "hi\n")

    class Affine(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones([4, 2]))
            self.writer = Writer()

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x: Any) -> dict[str, Any]:
            return {"y": tf.matmul(x, self.w)}

    module = Affine()
    tf.saved_model.save(module, str(folder), signatures=module.__call__)


def test_saved_model_that_writes_a_file_on_load_needs_trust(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    target = tmp_path / "written-by-savedmodel"
    folder = tmp_path / "savedmodel"
    _saved_model_writing(tf, folder, target)
    target.unlink(missing_ok=True)
    with pytest.raises(UntrustedModelError) as info:
        wattprint.load_model(folder)
    assert not target.exists()
    message = str(info.value)
    assert str(folder) in message and "TensorFlow SavedModel" in message
    assert "when it is loaded" in message and "when it predicts" in message
    assert "read and write" in message
    assert "trust=True" in message and "trust: true" in message
    assert ".keras" in message and "ONNX" in message

    model = wattprint.load_model(folder, trust=True)  # the attack is real: loading writes
    assert target.read_bytes() == b"hi\n"
    assert model.predict(np.ones((2, 4), dtype=np.float32)).shape == (2, 2)


def test_keras_file_that_wraps_a_saved_model_is_refused(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    target = tmp_path / "written-by-savedmodel"
    folder = tmp_path / "savedmodel"
    _saved_model_writing(tf, folder, target)
    inputs = keras.Input((4,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = keras.layers.TFSMLayer(str(folder), call_endpoint="serving_default")
    keras.Model(inputs, layer(inputs)).save(tmp_path / "wraps.keras")
    target.unlink(missing_ok=True)
    with pytest.raises(UntrustedModelError, match="trust=True"):
        wattprint.load_model(tmp_path / "wraps.keras")
    assert not target.exists()


# -- a sweep config is refused before anything runs when it names code without trust ----------

def _code_files(tmp_path: Path) -> dict[str, Path]:
    script = _scripted(TinyNet(), tmp_path / "net.pt")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")  # the folder's shape is enough here
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04N.")
    return {"TorchScript archive": script, "TensorFlow SavedModel folder": saved,
            "pickle": pickled}


def test_config_naming_code_without_trust_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    from wattprint.errors import ConfigError
    from wattprint.sweep.config import load_config

    files = _code_files(tmp_path)
    models = [{"name": f"m{i}", "path": str(path), "task": "classification"}
              for i, path in enumerate(files.values())]
    config = {"project": "code", "models": models, "datasets": [{"name": "digits"}],
              "output": {"db": str(tmp_path / "w.db"), "output_dir": str(tmp_path / "out")}}
    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    for i, kind in enumerate(files):
        assert f"models[{i}].trust: " in message and kind in message
    # Trusted, each passes the config's checks.
    trusted = [{**m, "trust": True} for m in models]
    assert [m.trust for m in load_config({**config, "models": trusted}).models] == [True] * 3
    # The command line: exit 2, one message, nothing stored.
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "wattprint", "run", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "trust: true" in proc.stderr
    assert not (tmp_path / "w.db").exists() and not (tmp_path / "out").exists()


def test_a_state_dict_needs_no_trust_in_a_config(state_dict: Path) -> None:
    from wattprint.sweep.config import load_config

    config = {"project": "safe", "datasets": [{"name": "digits"}],
              "models": [{"name": "m", "path": str(state_dict),
                          "options": {"model_class": "tiny_models:TinyNet"}}]}
    assert load_config(config).models[0].trust is False
