"""Audio folders wherever datasets are read: ``load_dataset`` on a folder of clips, and a sweep
whose dataset is that folder, measuring the tiny Whisper of ``test_audio`` with the word error
rate stored beside the energy. Nothing is downloaded; the network is refused throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from offline import no_network  # noqa: F401  (autouse: no test here reaches a network)
from test_audio import RATE, _tone, whisper  # noqa: F401  (whisper: the tiny model fixture)

import wattprint
from wattprint import EnergyMeter, FakeSensor
from wattprint.errors import ConfigError
from wattprint.score import calculate_scores

SPEECH = "automatic-speech-recognition"
#: File name, samples at 16 kHz, transcript.
CLIPS = (("a.wav", 4000, "the cat sat"), ("b.flac", 8000, "on the mat"),
         ("c.wav", 6000, "a dog ran"), ("d.wav", 5000, "good day"))


def _clips(folder: Path, *, transcripts: bool = True) -> Path:
    sf = pytest.importorskip("soundfile")
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, n, _) in enumerate(CLIPS):
        sf.write(str(folder / name), _tone(220.0 * (i + 1), n / RATE, RATE), RATE)
    if transcripts:
        (folder / "transcripts.jsonl").write_text(
            "\n".join(json.dumps({"audio": name, "text": text}) for name, _, text in CLIPS)
            + "\n", encoding="utf-8")
    return folder


def test_load_dataset_reads_a_folder_of_clips_as_speech(tmp_path: Path) -> None:
    folder = _clips(tmp_path / "clips")
    ds = wattprint.load_dataset(folder)
    assert ds.task == SPEECH and len(ds) == 4
    assert isinstance(ds.x, np.ndarray) and ds.x.dtype == object
    assert [len(c) for c in ds.x] == [n for _, n, _ in CLIPS]
    assert ds.y is not None and list(ds.y) == [t for _, _, t in CLIPS]
    # the speech task may be given; it also reads the transcripts file by itself
    for source in (folder, folder / "transcripts.jsonl"):
        again = wattprint.load_dataset(source, task=SPEECH)
        assert again.task == SPEECH and again.y is not None and list(again.y) == list(ds.y)
    # no transcripts: the clips, unlabelled
    bare = wattprint.load_dataset(_clips(tmp_path / "bare", transcripts=False))
    assert bare.task == SPEECH and bare.y is None and len(bare) == 4


def test_split_and_sample_keep_clips_with_their_transcripts(tmp_path: Path) -> None:
    ds = wattprint.load_dataset(_clips(tmp_path / "clips"))
    assert ds.y is not None
    pairs = {len(c): t for c, t in zip(ds.x, ds.y, strict=True)}
    train, test = ds.split(0.5, seed=3)
    assert len(train) == len(test) == 2
    assert sorted(len(c) for c in [*train.x, *test.x]) == sorted(pairs)
    for part in (train, test, ds.sample(3, seed=1),
                 wattprint.load_dataset(tmp_path / "clips", split="test", limit=1,
                                        test_size=0.5)):
        assert isinstance(part.x, np.ndarray) and part.x.dtype == object
        assert part.y is not None and part.x.shape == part.y.shape
        assert all(c.dtype == np.float32 and c.ndim == 1 for c in part.x)
        assert [pairs[len(c)] for c in part.x] == list(part.y)


def test_a_folder_of_images_and_audio_needs_a_task(tmp_path: Path) -> None:
    folder = _clips(tmp_path / "mixed")
    (folder / "cats").mkdir()
    (folder / "cats" / "one.png").write_bytes(b"not decoded: the suffix decides")
    with pytest.raises(ConfigError, match=r"both images and audio.*task=") as err:
        wattprint.load_dataset(folder)
    assert "image-classification" in str(err.value) and SPEECH in str(err.value)
    assert wattprint.load_dataset(folder, task=SPEECH).task == SPEECH
    # a task that audio cannot serve is refused by name
    with pytest.raises(ConfigError, match="holds audio"):
        wattprint.load_dataset(_clips(tmp_path / "only"), task="text")


def test_sweep_with_an_audio_folder_stores_the_word_error_rate(
        whisper: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.chdir(tmp_path)  # as `wattprint run sweep.yaml` in the sweep's folder
    _clips(tmp_path / "clips")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""\
project: speech
models:
  - name: whisper-tiny
    path: {json.dumps(str(whisper))}
    options: {{max_new_tokens: 4}}
datasets:
  - {{name: ./clips, task: {SPEECH}, split: all}}
monitoring: {{warmup: 0}}
output: {{export_formats: [], db: w.db, output_dir: out}}
""", encoding="utf-8")
    with EnergyMeter([FakeSensor(power_w=10.0)]) as meter:
        wattprint.Benchmark(sweep).run(meter=meter, progress=False)
    with wattprint.Store(tmp_path / "w.db", read_only=True) as store:
        runs = [r for r in store.runs() if r.phase == "inference"]
    assert runs, "no inference run was stored"
    for run in runs:
        assert run.ok, (run.variant, run.error)
        assert Path(str(run.dataset)).name == "clips" and run.num_samples == 4
        assert run.metrics is not None and run.metrics["reference_words"] == 11
        assert run.metrics["wer"] >= 0.0
        assert (run.energy_j or 0.0) > 0
    # rated beside its energy by the word error rate (lower is better), not by accuracy
    scores = calculate_scores(SPEECH, str(runs[0].hardware), db=tmp_path / "w.db")
    assert scores and all(s.quality is not None and s.quality.metric == "wer"
                          and s.quality.higher_is_better is False for s in scores)
