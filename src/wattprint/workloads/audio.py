"""Audio for speech recognition: reading WAV and FLAC files, a folder of clips with their
transcripts as a :class:`~wattprint.workloads.datasets.Dataset`, and the word error rate.

Files are decoded with ``soundfile`` (the ``audio`` extra, imported only when a file is read)
to **mono float32** in [-1, 1] at the sampling rate asked for (16 kHz by default, Whisper's):

* Channels are averaged into one.
* A file at another rate is **resampled by linear interpolation** (``numpy.interp``) between
  neighbouring samples, the clip keeping its duration: ``round(n * to / from)`` samples.
  There is no anti-aliasing filter: upsampling (8 kHz telephone audio to 16 kHz) is faithful
  to the band the file has, but downsampling folds whatever lies above the new Nyquist
  frequency (8 kHz at 16 kHz) back into the band. Where that matters, resample the files
  beforehand with a filtering resampler (sox, ffmpeg, librosa), or pass ``resample=False``
  to refuse any file whose rate differs (:class:`~wattprint.errors.DatasetError` naming both).

The transcript format (:func:`load_audio_dataset`): a UTF-8 JSON Lines file,
``transcripts.jsonl``, beside the clips, one object per line::

    {"audio": "one.wav", "text": "the cat sat"}
    {"audio": "sub/two.flac", "text": "on the mat"}

``audio`` is a path relative to the folder of the JSONL file (it may not leave that folder),
``text`` the reference transcript; blank lines are skipped. Either every line has ``text``
(a labelled dataset: word error rate beside energy) or none has (transcripts made, no WER).
A folder without ``transcripts.jsonl`` is read as its ``.wav`` and ``.flac`` files, sorted by
name, unlabelled.

The dataset's task is ``"automatic-speech-recognition"``; its ``x`` is a NumPy object array
of 1-D float32 clips (clips differ in length), its ``y`` an object array of the reference
transcripts. A Hugging Face speech-recognition model (Whisper) takes either, or file paths:
see :mod:`wattprint.workloads.loaders.transformers_loader`.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import DatasetError, MissingExtra
from .datasets import Dataset
from .images import is_image_source, named_files
from .metrics import word_error_rate

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_SAMPLING_RATE",
    "TASK",
    "TRANSCRIPTS_FILE",
    "audio_files",
    "is_audio_source",
    "load_audio_dataset",
    "read_audio",
    "resample",
    "word_error_rate",
]

#: The dataset task of transcribed audio.
TASK = "automatic-speech-recognition"
#: The audio files read here.
AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
#: Whisper's rate, and the default of :func:`read_audio` and :func:`load_audio_dataset`.
DEFAULT_SAMPLING_RATE = 16_000
#: The file of a folder that pairs its clips with their transcripts.
TRANSCRIPTS_FILE = "transcripts.jsonl"


def resample(audio: NDArray[Any], from_rate: int, to_rate: int) -> NDArray[np.float32]:
    """``audio`` (1-D, at ``from_rate`` Hz) at ``to_rate`` Hz, by linear interpolation between
    neighbouring samples; no anti-aliasing filter (see the module docstring)."""
    x = np.asarray(audio, dtype=np.float32)
    if from_rate <= 0 or to_rate <= 0:
        raise DatasetError(f"sampling rates must be positive, not {from_rate} and {to_rate}")
    if from_rate == to_rate or x.size == 0:
        return x
    n = max(1, round(x.size * to_rate / from_rate))
    t_new = np.arange(n, dtype=np.float64) * (from_rate / to_rate)  # in input samples
    out: NDArray[np.float32] = np.interp(t_new, np.arange(x.size, dtype=np.float64),
                                         x).astype(np.float32)
    return out


def read_audio(path: str | os.PathLike[str], sampling_rate: int = DEFAULT_SAMPLING_RATE, *,
               resample_audio: bool = True) -> NDArray[np.float32]:
    """The WAV or FLAC file ``path`` as mono float32 at ``sampling_rate`` Hz (channels
    averaged; another rate resampled linearly, or refused with ``resample_audio=False``)."""
    try:
        soundfile = importlib.import_module("soundfile")  # no stubs: typed as a module
    except ImportError as err:
        raise MissingExtra("reading audio files", "audio") from err
    path = Path(path)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise DatasetError(f"{path}: not an audio file soundfile can read ({err})") from err
    mono: NDArray[np.float32] = np.asarray(data.mean(axis=1), dtype=np.float32)
    if rate != sampling_rate:
        if not resample_audio:
            raise DatasetError(f"{path}: sampled at {rate} Hz, but {sampling_rate} Hz is "
                               "wanted; resample it, or allow linear resampling")
        mono = resample(mono, int(rate), sampling_rate)
    return mono


def is_audio_source(batch: Any) -> bool:
    """Whether ``batch`` names audio files: a path, or a non-empty list of paths (the same
    test as for image files: :func:`~wattprint.workloads.images.is_image_source`)."""
    return is_image_source(batch)


def audio_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                ) -> list[Path]:
    """The files ``source`` names: a file, a list of files, or a folder (its ``.wav`` and
    ``.flac`` files, sorted by name)."""
    def in_folder(path: Path) -> list[Path]:
        found = _audio_in(path)
        if not found:
            raise DatasetError(f"{path}: no audio files in the folder (kinds: "
                               f"{', '.join(sorted(AUDIO_SUFFIXES))})")
        return found

    return named_files(source, in_folder, "audio")


def load_audio_dataset(path: str | os.PathLike[str], *,
                       sampling_rate: int = DEFAULT_SAMPLING_RATE, resample_audio: bool = True,
                       name: str | None = None) -> Dataset:
    """The clips and transcripts of ``path``: a folder with a ``transcripts.jsonl`` (or that
    file itself), or a folder of ``.wav`` / ``.flac`` files without one (unlabelled). Each
    clip is decoded up front by :func:`read_audio` (nothing is read in a measured loop)."""
    path = Path(path)
    if path.is_dir() and not (path / TRANSCRIPTS_FILE).is_file():
        files = _audio_in(path)
        if not files:
            raise DatasetError(f"{path}: no {TRANSCRIPTS_FILE} and no audio files (kinds: "
                               f"{', '.join(sorted(AUDIO_SUFFIXES))})")
        return _dataset(name or path.name, files, None, sampling_rate, resample_audio)
    manifest = path / TRANSCRIPTS_FILE if path.is_dir() else path
    if not manifest.is_file():
        raise DatasetError(f"{path}: no such audio folder or transcripts file")
    files, texts = _read_manifest(manifest)
    return _dataset(name or manifest.parent.name, files, texts, sampling_rate, resample_audio)


def _dataset(name: str, files: list[Path], texts: list[str] | None, sampling_rate: int,
             resample_audio: bool) -> Dataset:
    clips = np.empty(len(files), dtype=object)
    for i, f in enumerate(files):
        clips[i] = read_audio(f, sampling_rate, resample_audio=resample_audio)
    y = None if texts is None else np.array(texts, dtype=object)
    return Dataset(name, TASK, clips, y)


def _read_manifest(manifest: Path) -> tuple[list[Path], list[str] | None]:
    root = manifest.parent.resolve()
    files: list[Path] = []
    texts: list[str] = []
    try:
        lines = manifest.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{manifest}: not UTF-8 text ({err.reason})") from err
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{manifest}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{where}: not JSON ({err.msg})") from err
        if not isinstance(record, dict) or not isinstance(record.get("audio"), str):
            raise DatasetError(f"{where}: expected an object with an 'audio' path, got "
                               f"{line.strip()[:80]!r}")
        file = (root / record["audio"]).resolve()
        if not file.is_relative_to(root):
            raise DatasetError(f"{where}: audio {record['audio']!r} is outside {root}")
        if not file.is_file():
            raise DatasetError(f"{where}: no audio file {record['audio']!r} in {root}")
        if "text" in record:
            if not isinstance(record["text"], str):
                raise DatasetError(f"{where}: 'text' must be a string, not {record['text']!r}")
            texts.append(record["text"])
        files.append(file)
    if not files:
        raise DatasetError(f"{manifest}: the file has no records")
    if texts and len(texts) != len(files):
        raise DatasetError(f"{manifest}: {len(files) - len(texts)} record(s) have no 'text' "
                           "while others have one")
    return files, texts or None


def _audio_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
