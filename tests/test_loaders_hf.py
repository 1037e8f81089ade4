"""Hugging Face transformers folders and hub ids, loaded through :func:`wattprint.load_model`.

Tiny randomly initialised models (two layers, width 32, a 20-word vocabulary) are built from
configs and saved with ``save_pretrained`` beside a tokenizer made from a vocabulary file
written here: nothing is downloaded. Every test runs with the network refused, and fails if
anything tried to reach it. Expected counts and outputs come from transformers itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from offline import no_network, with_nonsense_hub  # noqa: F401  (no_network: autouse)

import wattprint
from wattprint import EnergyMeter, FakeSensor
from wattprint.errors import ConfigError, MissingExtra, ModelError, UntrustedModelError


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """measure_energy keeps its results in the working folder by default (wattprint.db,
    results/): each test here works in a folder of its own."""
    monkeypatch.chdir(tmp_path)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on",
         "mat", "ran", "fast", "slow", "good", "bad", "is", "was", "not")
TEXTS = ["the cat sat on the mat", "a dog ran fast", "good", "the mat is not bad at all"]
NUM_LABELS = 3
#: A model revision, as the hub cache names snapshot folders.
REVISION = "0123456789abcdef0123456789abcdef01234567"




def _tokenizer(folder: Path, *, bert: bool) -> Any:
    """A word-piece tokenizer over :data:`WORDS`, from a vocab file; BERT's adds [CLS] and
    [SEP] around each text, GPT-2's adds nothing."""
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece.from_file(str(vocab),
                                                                     unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    if bert:
        tok.post_processor = tokenizers.processors.BertProcessing(
            ("[SEP]", WORDS.index("[SEP]")), ("[CLS]", WORDS.index("[CLS]")))
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _tokenizer(tmp_path_factory.mktemp("vocab"), bert=True)


@pytest.fixture(scope="module")
def gpt_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tok = _tokenizer(tmp_path_factory.mktemp("vocab"), bert=False)
    tok.padding_side = "left"  # generation continues every prompt from its end
    return tok


def _bert_config() -> Any:
    return transformers.BertConfig(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64, num_labels=NUM_LABELS)


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> tuple[Any, Path]:
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(_bert_config()).eval()
    return model, _save(model, tokenizer, tmp_path_factory.mktemp("hf") / "bert-classifier")


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory, gpt_tokenizer: Any) -> tuple[Any, Path]:
    """A GPT-2 whose end token is the first token it generates after TEXTS[0] (in a batch of
    TEXTS), so that row stops at once while others may run on to ``max_new_tokens``."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=2, n_positions=64,
        bos_token_id=WORDS.index("[CLS]"), eos_token_id=WORDS.index("[SEP]"),
        pad_token_id=WORDS.index("[PAD]"))
    model = transformers.GPT2LMHeadModel(config).eval()
    prompts = gpt_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompts, max_new_tokens=1, do_sample=False)
    model.generation_config.eos_token_id = int(out[0, -1])
    return model, _save(model, gpt_tokenizer, tmp_path_factory.mktemp("hf") / "gpt2")


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _logits(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()


def test_text_classification_folder(classifier: tuple[Any, Path], tokenizer: Any) -> None:
    model, folder = classifier
    loaded = wattprint.load_model(folder, task="text-classification")
    assert loaded.framework == "transformers"
    assert loaded.task == "text-classification"
    assert loaded.num_parameters == model.num_parameters()
    assert loaded.num_parameters == sum(p.numel() for p in model.parameters())
    assert loaded.size_bytes == _folder_bytes(folder)
    assert loaded.dtype == "float32"
    assert loaded.trainable
    logits = loaded.predict(TEXTS)
    assert logits.shape == (len(TEXTS), NUM_LABELS)
    np.testing.assert_allclose(logits, _logits(model, tokenizer, TEXTS), rtol=1e-5, atol=1e-6)
    # Without a task, the config's architecture (BertForSequenceClassification) names it;
    # allowing the network changes nothing for a local folder (the autouse guard checks).
    assert wattprint.load_model(folder, allow_network=True).task == "text-classification"


def test_bare_model_returns_its_first_output(
    tmp_path: Path, tokenizer: Any
) -> None:
    torch.manual_seed(0)
    model = transformers.BertModel(_bert_config()).eval()
    folder = _save(model, tokenizer, tmp_path / "bert")
    loaded = wattprint.load_model(folder)
    assert loaded.task is None and not loaded.trainable
    assert loaded.num_parameters == model.num_parameters()
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
    np.testing.assert_allclose(loaded.predict(TEXTS), expected.last_hidden_state.numpy(),
                               rtol=1e-5, atol=1e-6)


def _new_tokens(ids: Any, eos: int) -> int:
    """Tokens per row up to and with the first end token, summed."""
    total = 0
    for row in ids.tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def test_text_generation_returns_new_ids_and_counts_them(
    generator: tuple[Any, Path], gpt_tokenizer: Any
) -> None:
    model, folder = generator
    loaded = wattprint.load_model(folder, task="text-generation", max_new_tokens=6)
    assert loaded.num_parameters == model.num_parameters()
    assert loaded.num_parameters == sum(p.numel() for p in model.parameters())
    ids = loaded.predict(TEXTS)
    prompts = gpt_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompts, max_new_tokens=6, do_sample=False)
    expected = out[:, prompts["input_ids"].shape[1]:].numpy()
    np.testing.assert_array_equal(ids, expected)
    eos = model.generation_config.eos_token_id
    assert ids.tokens == loaded.last_generated_tokens == _new_tokens(expected, eos)
    assert ids.tokens < ids.size  # the first row ended at once: its padding is not counted


def test_generated_tokens_reach_the_harness(generator: tuple[Any, Path]) -> None:
    _, folder = generator
    loaded = wattprint.load_model(folder, max_new_tokens=4)
    prompts = [*TEXTS, "a cat"]
    batches = [prompts[0:2], prompts[2:4], prompts[4:5]]  # the last batch is short
    expected = sum(loaded.predict(batch).tokens for batch in batches)
    meter = EnergyMeter([FakeSensor(power_w=10.0)])
    try:
        result = wattprint.measure_energy(
            loaded.predict, prompts, "tiny-gpt2", "text-generation", num_samples=len(prompts),
            batch_size=2, warmup=0, meter=meter, progress=False)
    finally:
        meter.close()
    assert result["tokens_generated"] == expected
    assert result["tokens_per_second"] == pytest.approx(expected / result["duration_seconds"])


def test_train_epoch_lowers_the_loss(classifier: tuple[Any, Path]) -> None:
    _, folder = classifier
    loaded = wattprint.load_model(folder, task="text-classification")
    texts = ["good cat", "the good dog", "a good mat"] * 6 + ["bad cat", "a bad dog"] * 6
    labels = [2] * 18 + [0] * 12
    torch.manual_seed(0)
    losses = [loaded.train_epoch((texts, labels), batch_size=8, lr=1e-3) for _ in range(4)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    with pytest.raises(ConfigError, match="class indices"):
        loaded.train_epoch((texts[:2], [0, NUM_LABELS]))


def test_generation_model_is_not_trainable(generator: tuple[Any, Path]) -> None:
    _, folder = generator
    loaded = wattprint.load_model(folder)
    assert loaded.task == "text-generation" and not loaded.trainable
    with pytest.raises(NotImplementedError, match="text-classification"):
        loaded.train_epoch((TEXTS, [0, 1, 0, 1]))


def test_safetensors_weights_are_preferred(
    classifier: tuple[Any, Path], tokenizer: Any, tmp_path: Path
) -> None:
    model, good = classifier
    torch.manual_seed(1)
    other = transformers.BertForSequenceClassification(_bert_config()).eval()
    folder = tmp_path / "both"
    shutil.copytree(good, folder)
    torch.save(other.state_dict(), folder / "pytorch_model.bin")
    both = wattprint.load_model(folder)
    np.testing.assert_allclose(both.predict(TEXTS), _logits(model, tokenizer, TEXTS),
                               rtol=1e-5, atol=1e-6)
    (folder / "model.safetensors").unlink()
    only_bin = wattprint.load_model(folder)  # read weights-only: no trust needed
    np.testing.assert_allclose(only_bin.predict(TEXTS), _logits(other, tokenizer, TEXTS),
                               rtol=1e-5, atol=1e-6)


def test_hub_id_without_allow_network_is_refused_offline(no_network: list[Any]) -> None:  # noqa: F811
    with pytest.raises(ModelError) as err:
        wattprint.load_model("wattprint-tests/no-such-model", task="text-classification")
    message = str(err.value)
    assert "no such file or folder here" in message
    assert "allow_network=True" in message
    assert "local cache" in message
    assert no_network == []


def test_a_hub_endpoint_that_answers_nonsense_is_a_model_error_saying_so(
        tmp_path: Path) -> None:
    """A download from a hub endpoint that answers what the hub's API does not (a mirror or
    proxy misconfigured) fails with the reason as a ModelError: the hub client's own error,
    which is no OSError, does not escape raw. The load runs in a child process, the hub client
    reading its endpoint from the environment."""
    code = ("import wattprint\n"
            "try:\n"
            "    wattprint.load_model('someone/some-model', allow_network=True)\n"
            "except wattprint.ModelError as err:\n"
            "    print(err)\n")
    proc = with_nonsense_hub(code, tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("someone/some-model: cannot be loaded as a Hugging Face "
                                  "transformers model: download from the Hugging Face hub "
                                  "failed: "), proc.stdout + proc.stderr
    assert "Supported:" not in proc.stdout


def _in_hub_cache(folder: Path, hub: Path, model_id: str) -> Path:
    """Copy the model ``folder`` into the hub cache ``hub`` as ``model_id``'s main revision,
    in the cache's layout; its snapshot folder there."""
    repo = hub / f"models--{model_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return repo / "snapshots" / REVISION


def test_hub_id_in_the_local_cache_loads_offline(
    classifier: tuple[Any, Path], tokenizer: Any, tmp_path: Path
) -> None:
    model, folder = classifier
    snapshot = _in_hub_cache(folder, tmp_path / "hub", "wattprint-tests/tiny-bert")
    loaded = wattprint.load_model("wattprint-tests/tiny-bert", cache_dir=str(tmp_path / "hub"))
    assert loaded.num_parameters == model.num_parameters()
    assert loaded.path == snapshot
    np.testing.assert_allclose(loaded.predict(TEXTS), _logits(model, tokenizer, TEXTS),
                               rtol=1e-5, atol=1e-6)


def test_a_hub_model_allowed_the_network_loads_from_the_cache_when_the_hub_is_not_reached(
    classifier: tuple[Any, Path], tokenizer: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    model, folder = classifier
    snapshot = _in_hub_cache(folder, tmp_path / "hub", "wattprint-tests/tiny-bert")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    caplog.set_level("WARNING", logger="wattprint")
    loaded = wattprint.load_model("wattprint-tests/tiny-bert", allow_network=True,
                                  cache_dir=str(tmp_path / "hub"))
    assert loaded.path == snapshot
    np.testing.assert_allclose(loaded.predict(TEXTS), _logits(model, tokenizer, TEXTS),
                               rtol=1e-5, atol=1e-6)
    (note,) = loaded.describe()["notes"]
    assert note.startswith(f"wattprint-tests/tiny-bert: the copy in the local Hugging Face "
                           f"cache ({REVISION}), the hub not reached: "), note
    assert "offline mode is enabled" in note
    assert [r.getMessage() for r in caplog.records if r.name.startswith("wattprint")] == [note]
    # Not in the cache: the hub's reason, as before, and nothing loaded.
    with pytest.raises(ModelError, match=r"download from the Hugging Face hub failed: .*offline"):
        wattprint.load_model("wattprint-tests/other", allow_network=True,
                             cache_dir=str(tmp_path / "hub"))


def test_a_hub_answer_is_not_taken_for_the_hub_not_reached() -> None:
    """Only a hub not reached lets the cache stand in: not its answer (no such model, not
    allowed), whatever the error was raised from."""
    import httpx2
    from huggingface_hub import errors

    from wattprint.workloads.loaders.transformers_loader import _unreachable

    refused = httpx2.ConnectError("[Errno 111] Connection refused")
    wrapped = RuntimeError("while listing the files")
    wrapped.__cause__ = refused
    assert _unreachable(refused) and _unreachable(wrapped)
    assert _unreachable(errors.OfflineModeIsEnabled("offline")) and _unreachable(TimeoutError())
    answer = httpx2.Response(404, request=httpx2.Request("GET", "https://hub.invalid/api"))
    assert not _unreachable(errors.RepositoryNotFoundError("404 no such model",
                                                           response=answer))
    assert not _unreachable(ValueError("[1] is not a dict"))


def test_code_in_the_folder_needs_trust(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    folder.mkdir()
    ran = tmp_path / "code-ran"
    (folder / "configuration_tiny.py").write_text(
        f"from pathlib import Path\nPath({str(ran)!r}).touch()\n")
    (folder / "config.json").write_text(
        '{"model_type": "wattprint-tiny", "architectures": ["TinyModel"], '
        '"auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", '
        '"AutoModel": "modeling_tiny.TinyModel"}}')
    with pytest.raises(UntrustedModelError, match="trust=True") as err:
        wattprint.load_model(folder)
    assert str(folder) in str(err.value)
    assert not ran.exists()


def test_missing_transformers_names_the_extra(
    classifier: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = classifier
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    with pytest.raises(MissingExtra) as err:
        wattprint.load_model(folder)
    assert err.value.extra == "hf"
    assert "pip install 'wattprint[hf]'" in str(err.value)


def test_unknown_task_and_option_are_config_errors(classifier: tuple[Any, Path]) -> None:
    _, folder = classifier
    with pytest.raises(ConfigError, match="text-generation"):
        wattprint.load_model(folder, task="translation")
    with pytest.raises(ConfigError, match="unknown option"):
        wattprint.load_model(folder, signature="serving_default")


def _bad_config(folder: Path) -> None:
    (folder / "config.json").write_text("{ not json")


def _truncated_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize(("spoil", "stage"), [
    (_bad_config, "config.json"), (_truncated_weights, "weights"), (_no_weights, "weights"),
], ids=["bad-config", "truncated-weights", "no-weights"])
def test_corrupt_folder_is_a_model_error(
    classifier: tuple[Any, Path], tmp_path: Path, spoil: Any, stage: str
) -> None:
    _, good = classifier
    folder = tmp_path / "broken"
    shutil.copytree(good, folder)
    spoil(folder)
    with pytest.raises(ModelError) as err:
        wattprint.load_model(folder)
    assert not isinstance(err.value, UntrustedModelError)
    message = str(err.value)
    assert str(folder) in message and stage in message
    assert "Supported:" in message and "config.json" in message
