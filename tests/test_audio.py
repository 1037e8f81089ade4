"""Speech recognition: audio files read with soundfile, a folder of clips with transcripts, a
tiny Whisper loaded from a folder, and the word error rate beside energy.

The Whisper model (one layer each side, width 16, 8 mel bins) is built from a config with
random weights, beside a byte-level tokenizer written here: nothing is downloaded, and every
test runs with the network refused. Audio is synthetic (sine tones), written at 16 kHz, and
one file at 8 kHz for the resampling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from offline import no_network  # noqa: F401  (autouse: no test here reaches a network)

import wattprint
from wattprint import EnergyMeter, FakeSensor
from wattprint.errors import DatasetError
from wattprint.workloads.audio import load_audio_dataset, read_audio, resample
from wattprint.workloads.metrics import transcription_metrics, word_error_rate

RATE = 16_000
#: File name, rate, tone (Hz), seconds, transcript.
CLIPS = (("one.wav", RATE, 440.0, 0.5, "the cat sat"),
         ("two.flac", RATE, 660.0, 0.25, "On the mat!"),
         ("three.wav", 8_000, 330.0, 0.5, "a dog ran"))
SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>",
            "<|translate|>", "<|notimestamps|>", "<|nospeech|>", "<|startofprev|>")


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three clips (WAV and FLAC, one at 8 kHz) and their transcripts.jsonl."""
    sf = pytest.importorskip("soundfile")
    folder = tmp_path_factory.mktemp("clips")
    lines = []
    for name, rate, hz, seconds, text in CLIPS:
        sf.write(str(folder / name), _tone(hz, seconds, rate), rate)
        lines.append(json.dumps({"audio": name, "text": text}))
    (folder / "transcripts.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return folder


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies use."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars), strict=True))


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Whisper, its feature extractor and tokenizer, saved in a folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("whisper")
    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = transformers.WhisperTokenizer(str(folder / "vocab.json"),
                                              str(folder / "merges.txt"))
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIALS[1:])})
    eos = tokenizer.convert_tokens_to_ids(SPECIALS[0])
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=8, d_model=16, encoder_layers=1,
        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=1500,
        max_target_positions=64, eos_token_id=eos, pad_token_id=eos, bos_token_id=eos,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids(SPECIALS[1]),
        suppress_tokens=None, begin_suppress_tokens=None)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config)
    extractor = transformers.WhisperFeatureExtractor(feature_size=8, sampling_rate=RATE)
    model.save_pretrained(folder)
    transformers.WhisperProcessor(feature_extractor=extractor,
                                  tokenizer=tokenizer).save_pretrained(folder)
    return folder


# -- word error rate -----------------------------------------------------------------------------

def test_word_error_rate_on_known_strings() -> None:
    assert word_error_rate(["the cat sat"], ["the cat sit on"]) == pytest.approx(2 / 3)
    assert word_error_rate(["Hello, World!"], ["hello world"]) == 0.0  # case, punctuation
    assert word_error_rate(["a b c d"], [""]) == 1.0  # four deletions
    assert word_error_rate(["a"], ["x y z"]) == 3.0  # insertions take it above 1
    # corpus-level: edits summed over reference words summed, not a mean of the two rates
    assert word_error_rate(["a b c d", "e"], ["a b c d", "f"]) == pytest.approx(1 / 5)
    assert transcription_metrics(["the cat sat"], ["the cat sit on"]) == {
        "wer": pytest.approx(2 / 3), "word_errors": 2, "reference_words": 3}
    with pytest.raises(ValueError, match="2 transcripts for 1"):
        word_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["", "..."], ["a", ""])


# -- reading audio -------------------------------------------------------------------------------

def test_read_audio_mixes_to_mono_float32_and_resamples_linearly(tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    left, right = _tone(440.0, 0.1, RATE), np.zeros(round(0.1 * RATE), np.float32)
    sf.write(str(tmp_path / "stereo.wav"), np.stack([left, right], axis=1), RATE)
    mono = read_audio(tmp_path / "stereo.wav")
    assert mono.dtype == np.float32 and mono.ndim == 1
    np.testing.assert_allclose(mono, left / 2, atol=1e-4)  # 16-bit PCM, channels averaged

    ramp = np.linspace(0.0, 0.5, 800, dtype=np.float32)  # 0.1 s at 8 kHz
    sf.write(str(tmp_path / "slow.flac"), ramp, 8_000, subtype="PCM_24")
    up = read_audio(tmp_path / "slow.flac", RATE)
    assert len(up) == 1600  # the same 0.1 s at 16 kHz
    np.testing.assert_allclose(up[:-2:2], ramp[:-1], atol=1e-5)  # the old samples stay
    np.testing.assert_allclose(up[1:-2:2], (ramp[:-1] + ramp[1:]) / 2, atol=1e-5)  # midpoints
    assert len(resample(up, RATE, 8_000)) == 800
    with pytest.raises(DatasetError, match=r"8000 Hz.*16000 Hz"):
        read_audio(tmp_path / "slow.flac", RATE, resample_audio=False)
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="soundfile can read"):
        read_audio(tmp_path / "junk.wav")


def test_audio_folder_with_transcripts_is_a_speech_dataset(clips: Path, tmp_path: Path) -> None:
    ds = load_audio_dataset(clips)
    assert ds.task == "automatic-speech-recognition" and len(ds) == 3 and ds.name == clips.name
    assert [len(x) for x in ds.x] == [8000, 4000, 8000]  # the 8 kHz clip at 16 kHz
    assert all(x.dtype == np.float32 for x in ds.x)
    assert ds.y is not None and list(ds.y) == [text for *_, text in CLIPS]
    assert len(load_audio_dataset(clips / "transcripts.jsonl").subset([2, 0])) == 2

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("b.wav", "a.flac"):
        (bare / name).write_bytes((clips / "one.wav").read_bytes() if name.endswith("wav")
                                  else (clips / "two.flac").read_bytes())
    unlabelled = load_audio_dataset(bare)
    assert unlabelled.y is None and [len(x) for x in unlabelled.x] == [4000, 8000]  # sorted

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "transcripts.jsonl").write_text('{"audio": "../bare/a.flac", "text": "x"}\n')
    with pytest.raises(DatasetError, match="outside"):
        load_audio_dataset(bad)
    (bad / "a.flac").write_bytes((clips / "two.flac").read_bytes())
    (bad / "transcripts.jsonl").write_text('{"audio": "a.flac", "text": "x"}\n'
                                           '{"audio": "a.flac"}\n')
    with pytest.raises(DatasetError, match=r"1 record.* no 'text'"):
        load_audio_dataset(bad)


# -- a tiny Whisper ------------------------------------------------------------------------------

def test_whisper_folder_transcribes_paths_and_arrays(whisper: Path, clips: Path) -> None:
    model = wattprint.load_model(whisper, max_new_tokens=5)
    assert model.task == "automatic-speech-recognition" and not model.generates
    assert model.inputs[0].name == "audio"
    paths = [clips / name for name, *_ in CLIPS]
    from_files = model.predict(paths)
    assert len(from_files) == 3 and all(isinstance(t, str) for t in from_files)
    assert 0 < from_files.tokens <= 3 * 5 and model.last_generated_tokens == from_files.tokens
    clips_in = load_audio_dataset(clips).x
    assert model.predict(list(clips_in)) == from_files  # the same audio, decoded up front
    assert model.predict(clips_in[:2]) == from_files[:2]  # an object array, as datasets hold
    assert model.predict(str(clips / "one.wav")) == from_files[:1]
    assert len(model.predict(np.zeros((2, 1600), np.float32))) == 2  # a clip a row
    with pytest.raises(wattprint.errors.ConfigError, match="batch of clips"):
        model.predict(np.zeros(1600, np.float32))


def _measure(model: Any, clips: Path) -> dict[str, Any]:
    meter = EnergyMeter([FakeSensor(power_w=10.0)])
    try:
        return wattprint.measure_energy(
            model.predict, load_audio_dataset(clips), "tiny-whisper",
            "automatic-speech-recognition", num_samples=3, batch_size=2, warmup=0,
            db=None, output_dir=None, meter=meter, progress=False)
    finally:
        meter.close()


def test_measure_energy_of_speech_recognition(whisper: Path, clips: Path) -> None:
    model = wattprint.load_model(whisper, max_new_tokens=4)
    result = _measure(model, clips)
    data = load_audio_dataset(clips)
    expected = model.predict(data.x[:2]).tokens + model.predict(data.x[2:]).tokens
    assert result["energy_j"] > 0
    assert result["tokens_generated"] == expected


def test_measure_energy_reports_word_error_rate(whisper: Path, clips: Path) -> None:
    model = wattprint.load_model(whisper, max_new_tokens=4)
    result = _measure(model, clips)
    data = load_audio_dataset(clips)
    assert data.y is not None
    hypotheses = [*model.predict(data.x[:2]), *model.predict(data.x[2:])]
    assert result["wer"] == pytest.approx(word_error_rate(data.y, hypotheses))
    assert result["reference_words"] == 9


def test_an_int8_whisper_variant_keeps_its_feature_extractor(whisper: Path, clips: Path,
                                                             tmp_path: Path) -> None:
    from wattprint import optimize

    model = wattprint.load_model(whisper, max_new_tokens=4)
    with wattprint.EnergyMeter([wattprint.FakeSensor(power_w=10.0)]) as meter:
        result = optimize.quantize(model, "dynamic", out_dir=tmp_path / "variants", meter=meter)
    variant = result.model
    assert getattr(variant, "feature_extractor", None) is not None
    assert (result.path / "preprocessor_config.json").is_file()
    data = load_audio_dataset(clips)
    transcripts = variant.predict(data.x[:2])
    assert len(transcripts) == 2 and all(isinstance(t, str) for t in transcripts)
