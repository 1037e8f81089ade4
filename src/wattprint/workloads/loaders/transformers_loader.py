"""Hugging Face transformers models (the ``hf`` extra, run with PyTorch): a model folder, or a
hub id.

A folder holding ``config.json`` (``save_pretrained``) is loaded with torch by the ``Auto``
class of its task; the tokenizer saved beside it turns text into ids:

``"text-classification"``
    ``AutoModelForSequenceClassification``; ``predict(texts)`` returns the logits,
    ``(n, num_labels)``, and ``train_epoch`` fine-tunes it (AdamW, cross-entropy).
``"text-generation"``
    ``AutoModelForCausalLM``; ``predict(prompts)`` generates greedily (``do_sample=False``)
    up to ``max_new_tokens`` and returns only the new token ids, ``(n, new)``, a row padded
    with the pad id after its end token. The count of new tokens, padding excluded, is the
    ``tokens`` of the returned array and the model's ``last_generated_tokens``: the harness
    reports tokens per second from it. ``decode(ids)`` turns new ids back into text,
    ``perplexity(texts)`` scores a text set (unmeasured), and ``generation_profile(batches,
    meter)`` times the first token and measures prefill and decode energy apart, in a pass of
    its own (see each method).
``"automatic-speech-recognition"``
    ``AutoModelForSpeechSeq2Seq`` (Whisper), with the feature extractor and tokenizer saved
    beside it (``WhisperProcessor.save_pretrained``). ``predict(batch)`` takes audio clips
    (a list or object array of 1-D float arrays, or a 2-D array, one clip a row, at the
    feature extractor's ``sampling_rate``) or audio files (a path, a list of paths, or a
    folder; WAV and FLAC read by :func:`wattprint.workloads.audio.read_audio`, the ``audio``
    extra, resampled to that rate) and returns one transcript per clip, a
    :class:`Transcripts` list of strings: greedy ``generate`` (``do_sample=False``) up to
    ``max_new_tokens``, decoded without special tokens; a clip longer than the extractor's
    window (30 s for Whisper) is cut to it, as the feature extractor cuts. Its ``tokens``
    (and the model's ``last_generated_tokens``) count the new tokens as text generation
    counts them (each row up to and with its end token; a decoder prompt that ``generate``
    returns is not counted), so the harness reports tokens per second.
``"text2text-generation"``
    ``AutoModelForSeq2SeqLM`` (T5, BART, Marian, ...), with its tokenizer. ``predict(prompts)``
    encodes the prompts and generates greedily (``do_sample=False``) up to
    ``max_new_tokens``; it returns the new token ids as text generation does (a
    :class:`GeneratedIds`; the decoder start token is not counted, nor the padding after a
    row's end token), and ``decode(ids)`` gives their text. ``generation_profile`` measures
    prefill (the encoder's pass over the prompts and the first decoder step) and decode
    apart, as for a causal model; ``perplexity`` is ``None``: the prompts are the encoder's
    input, not text the model continues, and a text set holds no reference outputs.
``"image-classification"``
    ``AutoModelForImageClassification`` (ViT, ...). ``predict(batch)`` takes image files (a
    path, a list of paths, or a folder, made into a batch by :attr:`preprocess`), a float
    array already in the model's layout, ``(n, 3, H, W)`` ``pixel_values``, or uint8 pixels
    ``(n, H, W, 3)`` of the model's size (as :func:`~wattprint.load_dataset` reads an image
    folder), and returns the logits, ``(n, num_labels)``. :attr:`preprocess` is read from the
    image processor saved beside the model (``preprocessor_config.json``, by
    :func:`wattprint.workloads.images.from_hf_processor`: its size, ``resample`` filter,
    centre crop (``do_center_crop``, ``crop_size``), ``rescale_factor``, ``image_mean`` and
    ``image_std``, and the steps of ConvNeXt's, PoolFormer's, LeViT's, EfficientNet's and
    MobileViT's own processors), completed or checked by the ``preprocess`` option; without
    that file, from the model's input (NCHW, the config's ``image_size``) and the option, as
    for other image models. Image files are resized and cropped with Pillow, as the
    processor's Pillow backend does them.
``None``
    The task the config's ``architectures`` name (``...ForSequenceClassification``,
    ``...ForCausalLM``, ``...LMHeadModel``, ``...ForImageClassification``;
    ``...ForConditionalGeneration`` of a speech sequence-to-sequence model type with a
    feature extractor in the folder is ``"automatic-speech-recognition"``; the
    sequence-to-sequence language model class of its model type, ``T5ForConditionalGeneration``
    or ``MarianMTModel``, with a tokenizer in the folder, is ``"text2text-generation"``), else
    ``AutoModel``, whose ``predict`` returns its first output (the last hidden state).

Weights load from ``model.safetensors`` where the folder has it (transformers prefers it over
``pytorch_model.bin``, which it reads weights-only). A folder whose config names code of its own
(``auto_map``) runs that code only with ``trust=True`` (``trust_remote_code``); without it
:class:`~wattprint.errors.UntrustedModelError`. A folder with no tokenizer still loads;
``predict`` then takes token ids, ``(n, length)`` integers.

A path that does not exist is taken for a hub id (``"org/name"``) by :func:`load_hub`. The
local Hugging Face cache is read without any network access; a model not in it is downloaded
only with ``allow_network=True`` (safetensors weights where the repository has them, else
``.bin``; code files only with ``trust=True``). With ``allow_network=True`` the hub is asked
for the model's files each time; where it cannot be reached (``HF_HUB_OFFLINE``, no route, a
time-out) and the model is in the cache, the cached copy loads, with a warning, as
transformers does.

Options: ``device`` (``"cpu"``, default, or ``"cuda"``, ...), ``max_new_tokens`` (default
20), ``max_length`` (tokens a text is cut to; default what the model takes, less
``max_new_tokens`` for causal generation), ``preprocess`` (image classification only: a
mapping of :class:`~wattprint.workloads.images.ImageSpec` fields); for hub ids also
``revision`` and ``cache_dir``.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..._log import IN_RESULTS, TORCHAO_IMPORT_LOGGERS, get_logger, quiet_loggers
from ...errors import ConfigError, MissingExtra, ModelError, UntrustedModelError, WindowError
from ..datasets import as_dataset
from ..model import InputSpec, Model, dir_size_bytes
from ..registry import supported_formats
from ._common import ANSI as _ANSI
from ._common import check_options, model_error

if TYPE_CHECKING:
    import torch

    from ...measurement import Measurement
    from ...meter import EnergyMeter
    from ..images import ImageSpec

log = get_logger(__name__)

__all__ = ["HUB_OPTIONS", "LOAD_OPTIONS", "PROFILE_CALLS", "TASKS", "GeneratedIds",
           "Transcripts", "TransformersModel", "hub_model_cached", "load", "load_hub"]

#: Task -> the transformers ``Auto`` class that loads it; ``None`` is the bare model.
_AUTO_CLASSES = {
    "text-classification": "AutoModelForSequenceClassification",
    "text-generation": "AutoModelForCausalLM",
    "automatic-speech-recognition": "AutoModelForSpeechSeq2Seq",
    "text2text-generation": "AutoModelForSeq2SeqLM",
    "image-classification": "AutoModelForImageClassification",
    None: "AutoModel",
}
#: The tasks :func:`load` takes (``None``: from the config, else the bare model).
TASKS = ("text-classification", "text-generation", "automatic-speech-recognition",
         "text2text-generation", "image-classification")
_ASR = "automatic-speech-recognition"
_SEQ2SEQ = "text2text-generation"
_IMAGES = "image-classification"
#: The tasks whose ``predict`` generates token ids (``generates``).
_GENERATIVE = ("text-generation", _SEQ2SEQ)
#: The file a saved image processor keeps its settings in.
_IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
#: Files where a saved feature extractor (audio models) keeps its settings.
_FEATURE_FILES = ("preprocessor_config.json", "processor_config.json")
#: Endings of architecture names in ``config.json`` -> the task they do.
_ARCHITECTURE_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForImageClassification", _IMAGES),
)
_LOAD_OPTIONS = ("device", "max_length", "max_new_tokens", "preprocess")
_HUB_OPTIONS = ("cache_dir", "revision")
#: The options :func:`load` takes, and those :func:`load_hub` takes besides (a config
#: checks them before anything runs).
LOAD_OPTIONS = _LOAD_OPTIONS
HUB_OPTIONS = _HUB_OPTIONS
_TRAIN_OPTIONS = ("lr", "seed")
DEFAULT_MAX_NEW_TOKENS = 20
#: The files a tokenizer is saved in, any of which marks a folder as having one.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
#: A Hugging Face hub id: ``name`` or ``namespace/name``.
_HUB_ID = re.compile(r"(?!\.)[\w.-]{1,96}(/(?!\.)[\w.-]{1,96})?")
#: Tokenizers report "no limit" as a huge ``model_max_length``.
_NO_LIMIT = 1_000_000_000
#: Batches :meth:`TransformersModel.generation_profile` runs at most (the first ones given).
PROFILE_CALLS = 16


class GeneratedIds(np.ndarray[Any, np.dtype[Any]]):
    """The new token ids of a generation call; ``tokens`` counts them, padding excluded.

    A plain NumPy array besides; arrays derived from it (slices, sums) have ``tokens=None``.
    """

    tokens: int | None = None


class Transcripts(list[str]):
    """The transcripts of a speech-recognition call, one per clip; ``tokens`` counts the new
    token ids generated for them, padding excluded."""

    tokens: int | None = None


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise MissingExtra("Hugging Face transformers models (run with PyTorch)",
                           "torch") from err
    try:
        import transformers
    except ImportError as err:
        raise MissingExtra("Hugging Face transformers models", "hf") from err
    return transformers


def _error(where: Path | str, reason: str, *, formats: bool = True) -> ModelError:
    return model_error(where, reason, as_what="a Hugging Face transformers model",
                       formats=formats)


def _reason(err: BaseException) -> str:
    """The first line of a vendor error, without terminal colours, in 300 characters."""
    lines = [line.strip() for line in _ANSI.sub("", str(err)).strip().splitlines()]
    line = next((text for text in lines if text), type(err).__name__)
    return line if len(line) <= 300 else line[:294].rstrip() + " [...]"


_check_options = check_options


def load(path: Path, *, task: str | None = None, trust: bool = False,
         allow_network: bool = False, **options: Any) -> TransformersModel:
    """Load the model folder ``path`` for ``task``; code of its own only with ``trust=True``.

    Options: ``device``, ``max_new_tokens``, ``max_length`` (see the module docstring).
    ``allow_network`` is accepted as :func:`load_hub` accepts it; a folder needs no network.
    """
    path = Path(path)
    _check_options(options, _LOAD_OPTIONS, "a Hugging Face model folder", where=path)
    with quiet_loggers(*TORCHAO_IMPORT_LOGGERS):  # transformers may import torchao
        return _load_folder(path, task=task, trust=trust, options=options)


def load_hub(model_id: str, *, task: str | None = None, trust: bool = False,
             allow_network: bool = False, **options: Any) -> TransformersModel:
    """Load the hub model ``model_id`` (``"org/name"``) from the local Hugging Face cache or,
    with ``allow_network=True`` only, from the hub.

    :func:`~wattprint.load_model` calls this for a path that does not exist. Options: those
    of :func:`load`, and ``revision`` and ``cache_dir`` of the hub cache.
    """
    _check_options(options, (*_LOAD_OPTIONS, *_HUB_OPTIONS), "a Hugging Face hub model",
                   where=model_id)
    hub = {key: options[key] for key in _HUB_OPTIONS if options.get(key) is not None}
    rest = {key: value for key, value in options.items() if key not in _HUB_OPTIONS}
    if not _HUB_ID.fullmatch(model_id):
        raise ModelError(f"{model_id}: no such file or folder. Supported: {supported_formats()}")
    note = None
    if allow_network:
        folder, note = _download(model_id, trust=trust, **hub)
    else:
        cached = _cached(model_id, **hub)
        if cached is None:
            raise ModelError(
                f"{model_id}: no such file or folder here, and no Hugging Face hub model "
                f"{model_id!r} in the local cache. To download it from the hub, pass "
                "allow_network=True (wattprint makes no network call unless asked), with the "
                f"'hf' extra installed. Supported: {supported_formats()}")
        folder = cached
    with quiet_loggers(*TORCHAO_IMPORT_LOGGERS):
        model = _load_folder(folder, task=task, trust=trust, options=rest, name=model_id)
    if note is not None:
        model.notes = (*model.notes, note)
    return model


def hub_model_cached(model_id: str, cache_dir: str | None = None) -> Path | None:
    """The folder of the hub model ``model_id`` in the local Hugging Face cache (or
    ``cache_dir``), found without the network; None when it is not there (or the ``hf``
    extra is missing)."""
    from ..hf_datasets import hub_cache_dir  # read from the environment at each call

    return _cached(model_id, cache_dir=str(cache_dir or hub_cache_dir()))


def _cached(model_id: str, **hub: Any) -> Path | None:
    """The model's folder in the local hub cache, found without the network, or None."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(model_id, local_files_only=True, **hub))
    except (OSError, ValueError):  # not in the cache, or not a valid id
        return None
    return folder if (folder / "config.json").is_file() else None


def _download(model_id: str, *, trust: bool, **hub: Any) -> tuple[Path, str | None]:
    """Download the files the model needs into the hub cache; return its folder there, and
    None. Where the hub cannot be reached (see :func:`_unreachable`), the model's folder in
    the cache, if it is there, and a note saying so (also logged as a warning)."""
    _import_transformers()
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(model_id, revision=hub.get("revision"))
        folder = snapshot_download(model_id, allow_patterns=_wanted(files, trust=trust), **hub)
    except Exception as err:  # the boundary: the hub client raises its own errors, OSErrors and
        # its HTTP library's (a refused connection is httpx's ConnectError), with no base in common
        cached = _cached(model_id, **hub) if _unreachable(err) else None
        if cached is not None:
            note = (f"{model_id}: the copy in the local Hugging Face cache ({cached.name}), "
                    f"the hub not reached: {_reason(err)}")
            log.warning("%s", note, extra=IN_RESULTS)  # each run's notes carry it
            return cached, note
        raise _error(model_id, f"download from the Hugging Face hub failed: {_reason(err)}",
                     formats=False) from err
    return Path(folder), None


#: The errors, by module and name, of the HTTP libraries hub clients use that say the hub
#: was not reached (no answer, as against an answer that refuses). Looked up in the modules
#: already loaded: an error of a library not loaded was not raised.
_TRANSPORT_ERRORS = (("httpx2", "TransportError"), ("httpx", "TransportError"),
                     ("requests", "ConnectionError"), ("requests", "Timeout"))


def _unreachable(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from, says the hub could not be reached: its
    client's offline mode (a :class:`ConnectionError`), a refused or failed connection, a
    time-out. An answer of the hub (no such model, not allowed) is not that."""
    kinds: list[type] = [ConnectionError, TimeoutError]
    for module, name in _TRANSPORT_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type):
            kinds.append(kind)
    seen: BaseException | None = err
    for _ in range(8):  # the hub client wraps errors; a few links down is far enough
        if seen is None:
            return False
        if isinstance(seen, tuple(kinds)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _wanted(files: list[str], *, trust: bool) -> list[str]:
    """Download patterns: config and tokenizer files, and one format of weights."""
    patterns = ["*.json", "*.txt", "*.model", "*.tiktoken"]
    if any(name.endswith(".safetensors") for name in files):
        patterns.append("*.safetensors")
    else:
        patterns.append("*.bin")
    if trust:
        patterns.append("*.py")
    return patterns


def _load_folder(path: Path, *, task: str | None, trust: bool, options: Mapping[str, Any],
                 name: str | None = None) -> TransformersModel:
    transformers = _import_transformers()
    from safetensors import SafetensorError

    errors = (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError,
              SafetensorError)
    if not (path / "config.json").is_file():
        raise _error(path, "no config.json in the folder")
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r} for a Hugging Face model; one of: "
                          f"{', '.join(TASKS)}, or None for the model's own")
    device = _device(options.get("device", "cpu"))
    local = {"trust_remote_code": trust, "local_files_only": True}
    stage = "config.json"
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), **local)
        task = task or _task_of(config, path)
        stage = "the weights"
        auto = getattr(transformers, _AUTO_CLASSES[task])
        module = auto.from_pretrained(str(path), config=config, **local)
        tokenizer = feature_extractor = None
        if any((path / f).is_file() for f in _TOKENIZER_FILES):
            stage = "the tokenizer"
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), **local)
        if task == _ASR:
            stage = "the feature extractor"
            feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(str(path),
                                                                                  **local)
        image_processor = None
        if task == _IMAGES and (path / _IMAGE_PROCESSOR_FILE).is_file():
            stage = _IMAGE_PROCESSOR_FILE
            image_processor = _read_json(path / _IMAGE_PROCESSOR_FILE)
    except errors as err:
        if not trust and "trust_remote_code" in str(err):
            raise UntrustedModelError(
                f"{path}: its config names Python code of its own (auto_map), which runs when "
                "it is loaded; load it only if you trust its source, with trust=True. "
                f"Supported: {supported_formats()}") from err
        raise _error(path, f"{stage}: {_reason(err)}") from err
    if task == _ASR and tokenizer is None:
        raise _error(path, "a speech-recognition model needs its tokenizer saved beside it "
                     "(WhisperProcessor.save_pretrained) to turn ids into text")
    model = TransformersModel(
        module, tokenizer, task=task, path=path, name=name, device=device,
        feature_extractor=feature_extractor, image_processor=image_processor,
        max_new_tokens=_positive(options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
                                 "max_new_tokens"),
        max_length=(None if options.get("max_length") is None
                    else _positive(options["max_length"], "max_length")),
    )
    model.set_preprocess(options.get("preprocess"))
    return model


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file (a saved processor's settings)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err.reason})") from err
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, not {type(value).__name__}")
    return value


def _task_of(config: Any, path: Path) -> str | None:
    """The task the config's architectures do, when it is one of :data:`TASKS`."""
    for architecture in getattr(config, "architectures", None) or []:
        for ending, task in _ARCHITECTURE_TASKS:
            if str(architecture).endswith(ending):
                return task
        if str(architecture).endswith("ForConditionalGeneration") and _speech(config, path):
            return _ASR
        if _seq2seq_lm(config, str(architecture)) and any(
                (path / f).is_file() for f in _TOKENIZER_FILES):
            return _SEQ2SEQ
    return None


def _seq2seq_lm(config: Any, architecture: str) -> bool:
    """Whether ``architecture`` is the sequence-to-sequence language model class of the
    config's model type (``T5ForConditionalGeneration``, ``BartForConditionalGeneration``,
    ``MarianMTModel``) and an encoder-decoder; speech and audio language models are not."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
    )

    model_type = str(getattr(config, "model_type", ""))
    return (getattr(config, "is_encoder_decoder", False) is True
            and model_type not in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES
            and MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.get(model_type) == architecture)


def _speech(config: Any, path: Path) -> bool:
    """Whether the config's model type is a speech sequence-to-sequence one (Whisper's) and
    the folder holds an audio feature extractor."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES

    if getattr(config, "model_type", None) not in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return False
    return any("feature_extractor" in (path / f).read_text(encoding="utf-8", errors="replace")
               for f in _FEATURE_FILES if (path / f).is_file())


class TransformersModel(Model):
    """A transformers model and its tokenizer. ``module`` is the ``PreTrainedModel`` and
    ``tokenizer`` its tokenizer (``None`` when the folder has none); ``name`` is the hub id
    it was loaded by, if any."""

    framework = "transformers"

    def __init__(self, module: Any, tokenizer: Any, *, task: str | None = None,
                 path: Path | None = None, name: str | None = None, device: str = "cpu",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 max_length: int | None = None, feature_extractor: Any = None,
                 image_processor: Mapping[str, Any] | None = None) -> None:
        import torch

        self.device = torch.device(device)
        self.module = module.to(self.device)
        self.module.eval()
        self.tokenizer = tokenizer
        #: The audio feature extractor of a speech-recognition model, else None.
        self.feature_extractor = feature_extractor
        #: The settings of an image-classification model's image processor (its
        #: ``preprocessor_config.json``), else None.
        self.image_processor = None if image_processor is None else dict(image_processor)
        self.task = task
        self.path = path
        self.name = name
        self.num_parameters = int(module.num_parameters())
        self.size_bytes = (dir_size_bytes(path) if path is not None
                           else sum(p.numel() * p.element_size() for p in module.parameters()))
        self.dtype = _weights_dtype(module)
        self.max_new_tokens = max_new_tokens
        self.generates = task in _GENERATIVE
        #: Whether the model is an encoder-decoder that generates (text2text-generation).
        self.seq2seq = task == _SEQ2SEQ
        self.max_length = max_length or self._length_limit()
        self.inputs = ((InputSpec("audio", (None, None), "float32"),) if task == _ASR
                       else (self._pixel_values(),) if task == _IMAGES
                       else (InputSpec("text", (None,), "str"),) if tokenizer is not None
                       else (InputSpec("input_ids", (None, None), "int64"),))
        if task == _IMAGES and self.image_processor is not None:
            from ..images import from_hf_processor

            self.preprocess = self._resolve_images(from_hf_processor(self.image_processor))
        self.trainable = task == "text-classification" and tokenizer is not None
        #: New tokens the last ``predict`` of a text-generation or speech-recognition model
        #: made, padding excluded.
        self.last_generated_tokens: int | None = None
        self._eos = _eos_ids(module)
        self._pad_id = self._padding()
        self._optimizer: torch.optim.Optimizer | None = None
        self._epochs = 0

    def _pixel_values(self) -> InputSpec:
        """The input of an image-classification model: ``(None, C, H, W)`` float32, ``H``
        and ``W`` from the config's ``image_size`` (``None`` when it has none)."""
        config = self.module.config
        size = getattr(config, "image_size", None)
        height: int | None = None
        width: int | None = None
        if isinstance(size, int) and not isinstance(size, bool):
            height = width = size
        elif isinstance(size, list | tuple) and len(size) == 2:
            height, width = int(size[0]), int(size[1])
        channels = getattr(config, "num_channels", 3)
        return InputSpec("pixel_values",
                         (None, channels if isinstance(channels, int) else 3, height, width),
                         "float32")

    def set_preprocess(self, value: Any) -> None:
        """Take the ``preprocess`` option of an image-classification model: its fields
        complete the spec the saved image processor gives (the given ones win), and the
        whole is checked against the model's input (``NCHW``, its size and channels).
        ``None`` does nothing; any other model is a :class:`~wattprint.errors.ConfigError`."""
        if value is None:
            return
        if self.task != _IMAGES:
            raise ConfigError("preprocess is an option of image-classification models, not of "
                              f"{self.task or 'a bare model'}")
        from ..images import ImageSpec, from_hf_processor

        given = ImageSpec.from_option(value)
        if self.image_processor is not None:
            given = _completed(from_hf_processor(self.image_processor), given, value)
        self.preprocess = self._resolve_images(given)

    def predict(self, batch: Any) -> Any:
        """Logits (text-classification, image-classification), new token ids
        (text-generation, text2text-generation: a :class:`GeneratedIds`), transcripts
        (automatic-speech-recognition, a :class:`Transcripts`), or the first output of the
        bare model, for ``batch``."""
        import torch

        if self.task == _ASR:
            return self._transcribe(batch)
        if self.task == _IMAGES:
            return self._classify_images(batch)
        encoded = self._encode(batch)
        with torch.inference_mode():
            if self.generates:
                return self._generate(encoded)
            out = self.module(**encoded)
        first = out if isinstance(out, torch.Tensor) else out[0]
        return _to_numpy(first)

    def train_epoch(self, data: Any, *, batch_size: int = 32, **options: Any) -> float:
        """Fine-tune a text-classification model for one pass over ``data``; the mean loss.

        ``data`` is ``(texts, labels)`` or a Dataset of texts, labels class indices below the
        model's ``num_labels``. Options: ``lr`` (default ``5e-5``; AdamW, whose state carries
        over from epoch to epoch), ``seed`` (default 0: epoch ``k`` shuffles with the seed
        ``(seed, k)``).
        """
        import torch

        if not self.trainable:
            raise NotImplementedError(
                "wattprint trains only text-classification transformers models with a "
                f"tokenizer; this one is {self.task or 'a bare model'!s}"
                + ("" if self.tokenizer is not None else " without a tokenizer"))
        _check_options(options, _TRAIN_OPTIONS, "train_epoch")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        dataset = as_dataset(data, task="text-classification")
        if not isinstance(dataset.x, list) or dataset.y is None:
            raise ConfigError("train_epoch needs texts and their labels")
        texts, n = dataset.x, len(dataset)
        num_labels = int(self.module.config.num_labels)
        labels = np.asarray(dataset.y, dtype=np.int64)
        if labels.min() < 0 or labels.max() >= num_labels:
            raise ConfigError(f"labels must be class indices 0..{num_labels - 1} of the "
                              f"model's {num_labels} labels, not {labels.min()}..{labels.max()}")
        optimizer = self._adamw(float(options.get("lr", 5e-5)))
        order = np.random.default_rng([int(options.get("seed", 0)), self._epochs]).permutation(n)
        total = 0.0
        self.module.train()
        try:
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                encoded = self._encode([texts[i] for i in idx])
                optimizer.zero_grad(set_to_none=True)
                y = torch.as_tensor(labels[idx], device=self.device)
                loss = self.module(**encoded, labels=y).loss
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
        finally:
            self.module.eval()
        self._epochs += 1
        return total / n

    def _encode(self, batch: Any) -> dict[str, torch.Tensor]:
        """The model's keyword inputs for a batch of texts (or of token ids, untokenized)."""
        import torch

        if self.tokenizer is None:
            ids = np.asarray(batch)
            if ids.ndim != 2 or ids.dtype.kind not in "iu":
                raise ConfigError("this model folder has no tokenizer: give token ids, an "
                                  f"integer array (n, length), not {ids.dtype} {ids.shape}")
            return {"input_ids": torch.as_tensor(ids, dtype=torch.int64, device=self.device)}
        if isinstance(batch, str):
            raise ConfigError("give a batch of texts (a list of strings), not one string")
        texts = [str(t) for t in batch]
        try:
            encoded = self.tokenizer(texts, padding=True, truncation=self.max_length is not None,
                                     max_length=self.max_length, return_tensors="pt")
        except ValueError as err:
            raise ConfigError(f"the tokenizer cannot encode the batch: {_reason(err)}") from err
        return {key: value.to(self.device) for key, value in encoded.items()}

    def _generate(self, encoded: dict[str, torch.Tensor]) -> GeneratedIds:
        out = self.module.generate(**encoded, max_new_tokens=self.max_new_tokens,
                                   do_sample=False, pad_token_id=self._pad_id)
        ids = self._new_ids(out, encoded).view(GeneratedIds)
        ids.tokens = self.last_generated_tokens = _count_new(ids, self._eos)
        return ids

    def _new_ids(self, out: Any, encoded: dict[str, torch.Tensor]) -> NDArray[Any]:
        """The new token ids of a ``generate`` output: after the prompt (a causal model
        continues it), or after the decoder start token (an encoder-decoder's output holds
        only the decoder's ids, the first its start token)."""
        sequences = out if not hasattr(out, "sequences") else out.sequences
        start = 1 if self.seq2seq else encoded["input_ids"].shape[1]
        return _to_numpy(sequences[:, start:])

    def _classify_images(self, batch: Any) -> NDArray[Any]:
        """The logits of an image-classification model for image files or an array."""
        import torch

        from ..images import is_image_source

        x = self.read_images(batch) if is_image_source(batch) else self._pixel_array(batch)
        dtype = next(self.module.parameters()).dtype
        pixels = torch.as_tensor(x).to(self.device, dtype=dtype)
        with torch.inference_mode():
            out = self.module(pixel_values=pixels)
        return _to_numpy(out.logits)

    def _pixel_array(self, batch: Any) -> NDArray[np.float32]:
        """``pixel_values`` from an array: floats ``(n, C, H, W)`` as they are, or uint8
        pixels ``(n, H, W, C)`` (an image folder's dataset) made by :attr:`preprocess`."""
        x = np.asarray(batch)
        shape = self.inputs[0].shape or (None, 3, None, None)
        channels = shape[1]
        if x.ndim == 4 and x.dtype == np.uint8 and x.shape[-1] == channels:
            if self.preprocess is None:
                self.preprocess = self._resolve_images(None)
            size = self.preprocess.output_size
            if size is not None and tuple(x.shape[1:3]) != size:
                raise ConfigError(f"images of {x.shape[1]}x{x.shape[2]} pixels, but the model "
                                  f"takes {size[0]}x{size[1]}: give image files (they are "
                                  "resized), or load the image folder with image_size=(H, W)")
            return self.preprocess.apply(x)
        if x.ndim != 4 or x.dtype.kind != "f" or x.shape[1] != channels:
            raise ConfigError(f"give image files, pixel_values (n, {channels}, H, W) floats, or "
                              f"uint8 pixels (n, H, W, {channels}); not {x.dtype} {x.shape}")
        if None not in shape[2:] and tuple(x.shape[2:]) != tuple(shape[2:]):
            raise ConfigError(f"pixel_values of {x.shape[2]}x{x.shape[3]} pixels, but the "
                              f"model takes {shape[2]}x{shape[3]}")
        return x.astype(np.float32, copy=False)

    def _transcribe(self, batch: Any) -> Transcripts:
        """One transcript per clip (or audio file) of ``batch``; see the module docstring."""
        import torch

        if self.feature_extractor is None:
            raise ConfigError("this speech-recognition model has no feature extractor: load "
                              "it from a folder that holds one (WhisperProcessor."
                              "save_pretrained), or pass feature_extractor=")
        rate = int(getattr(self.feature_extractor, "sampling_rate", 16_000))
        clips = _clips(batch, rate)
        try:
            features = self.feature_extractor(clips, sampling_rate=rate, return_tensors="pt")
        except ValueError as err:
            raise ConfigError(f"the feature extractor cannot take the batch: {_reason(err)}"
                              ) from err
        dtype = next(self.module.parameters()).dtype
        inputs = features["input_features"].to(self.device, dtype=dtype)
        with torch.inference_mode():
            out = self.module.generate(inputs, max_new_tokens=self.max_new_tokens,
                                       do_sample=False)
        ids = _to_numpy(out if isinstance(out, torch.Tensor) else out.sequences)
        ids = ids[:, _prompt_length(ids, self._prompt_ids()):]
        texts = Transcripts(self.decode(ids))
        texts.tokens = self.last_generated_tokens = _count_new(ids, self._eos)
        return texts

    def _prompt_ids(self) -> frozenset[int]:
        """Special ids that may open a generated row as its decoder prompt (start of
        transcript, language, task, no timestamps): every special id but the end tokens."""
        special = getattr(self.tokenizer, "all_special_ids", None) or []
        start = getattr(self.module.generation_config, "decoder_start_token_id", None)
        ids = {int(i) for i in special} | ({start} if isinstance(start, int) else set())
        return frozenset(ids - set(self._eos))

    def decode(self, ids: Any) -> list[str]:
        """The text of each row of new token ids (what ``predict`` of a text-generation model
        returns), cut after the row's first end token, special tokens left out."""
        if self.tokenizer is None:
            raise ConfigError("this model folder has no tokenizer: its ids cannot be decoded")
        texts = []
        for row in np.atleast_2d(np.asarray(ids)).tolist():
            end = next((i for i, t in enumerate(row) if t in self._eos), len(row))
            texts.append(str(self.tokenizer.decode(row[:end], skip_special_tokens=True)))
        return texts

    def perplexity(self, texts: Any) -> float | None:
        """The perplexity of this causal language model on ``texts`` (strings, or rows of
        token ids for a model without a tokenizer): ``exp`` of the mean negative
        log-likelihood of every token after a text's first given the tokens before it, over
        all texts together (token-weighted, as corpus perplexity is). Each text runs alone,
        unpadded, cut to the model's positions; a text of fewer than two tokens predicts
        nothing. None when no text has two tokens.

        Not measured: it runs outside any window of its own (the harness calls it after its
        measured loop). None for a text2text-generation model: its texts are the encoder's
        input, not text it continues, and a text set holds no reference outputs to score.
        Raises :class:`~wattprint.errors.ConfigError` for a model that does not generate.
        """
        import math

        import torch

        if not self.generates:
            raise ConfigError("perplexity needs a causal language model (task "
                              f"text-generation), not {self.task or 'a bare model'}")
        if self.seq2seq:
            return None
        limit = self._positions()
        nll, count = 0.0, 0
        with torch.inference_mode():
            for item in texts:
                ids = self._ids(item)[:limit]
                if len(ids) < 2:
                    continue
                x = torch.as_tensor([ids], dtype=torch.int64, device=self.device)
                logits = self.module(input_ids=x).logits[0, :-1].float()
                nll += float(torch.nn.functional.cross_entropy(logits, x[0, 1:],
                                                               reduction="sum"))
                count += len(ids) - 1
        return math.exp(nll / count) if count else None

    def generation_profile(self, batches: Sequence[Any], meter: EnergyMeter,
                           ) -> dict[str, Any]:
        """Time to first token, and the energy of prefill and of decode measured apart, in a
        pass of its own over the first :data:`PROFILE_CALLS` of ``batches`` (each a batch of
        prompts, as ``predict`` takes it).

        It is a second, separate pass: the harness runs it after its measured loop, so the
        loop's energy and tokens per second are not disturbed by it. Each batch is generated
        as ``predict`` generates it (greedy, ``max_new_tokens``) inside two ``meter``
        windows: *prefill* from the start of encoding the prompts until the first new token
        of every row is chosen (the forward pass over the prompts), *decode* from there until
        generation ends. The boundary is read by a stopping criterion that transformers calls
        after each new token, so both windows are edges of one ``generate`` call, not a
        difference of two runs (a CUDA device is synchronised before each edge). For a
        text2text-generation (encoder-decoder) model, prefill is the encoder's pass over the
        prompts and the decoder's first step; decode the decoder's further steps.

        Returns ``time_to_first_token_s`` (the mean duration of the prefill windows: the
        wait from a batch of prompts to its first tokens), ``prefill_s`` and ``decode_s``
        (summed), ``prefill_energy_j`` and ``decode_energy_j`` (summed over the batches, with
        ``prefill_decode_provenance``, one of :data:`~wattprint.record.PROVENANCES`),
        ``profiled_prompts`` and ``profiled_tokens`` (new tokens, padding excluded; each
        prompt's first token is the prefill's). The energies are left out when a window was
        partial (a sensor failed in it). Windows shorter than a counter's update interval
        (about 1 ms for RAPL) carry that granularity: read the energies with the durations.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from ...record import RunComponent, provenance

        if not self.generates:
            raise ConfigError("generation_profile needs a text-generation model")
        tag = f"generation-profile:{id(self)}"
        prefill_name, decode_name = f"{tag}:prefill", f"{tag}:decode"
        device = self.device

        def settle() -> None:
            """Wait for the device's queued work, so an edge is read after it (the times too,
            whatever the meter's ``sync_cuda``)."""
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        class Boundary(StoppingCriteria):
            """Ends the prefill window and opens the decode window at the first token."""

            first: Measurement | None = None

            def __call__(self, input_ids: torch.Tensor, scores: Any,
                         **kwargs: Any) -> torch.Tensor:
                if self.first is None:
                    settle()
                    self.first = meter.end(prefill_name)
                    meter.begin(decode_name)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool,
                                   device=input_ids.device)

        prefill: list[Measurement] = []
        decode: list[Measurement] = []
        prompts = tokens = 0
        for batch in list(batches)[:PROFILE_CALLS]:
            boundary = Boundary()
            meter.begin(prefill_name)
            try:
                encoded = self._encode(batch)
                with torch.inference_mode():
                    out = self.module.generate(
                        **encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
                        pad_token_id=self._pad_id,
                        stopping_criteria=StoppingCriteriaList([boundary]))
            except BaseException:
                for name in (prefill_name, decode_name):
                    with suppress(WindowError):
                        meter.end(name)
                raise
            settle()
            decode.append(meter.end(decode_name))
            assert boundary.first is not None  # generate makes at least one token
            prefill.append(boundary.first)
            new = self._new_ids(out, encoded)
            prompts += new.shape[0]
            tokens += _count_new(new, self._eos)
        if not prefill:
            return {}
        out_metrics: dict[str, Any] = {
            "time_to_first_token_s": sum(m.duration_s for m in prefill) / len(prefill),
            "prefill_s": sum(m.duration_s for m in prefill),
            "decode_s": sum(m.duration_s for m in decode),
            "profiled_prompts": prompts, "profiled_tokens": tokens,
        }
        windows = prefill + decode
        if not any(m.partial for m in windows):
            kinds = {provenance({k: RunComponent(c.energy_j, c.source.value, c.measured,
                                                 c.scope) for k, c in m.components.items()},
                                m.samples) for m in windows}
            out_metrics.update(
                prefill_energy_j=sum(m.energy_j for m in prefill),
                decode_energy_j=sum(m.energy_j for m in decode),
                prefill_decode_provenance=kinds.pop() if len(kinds) == 1 else "mixed")
        return out_metrics

    def _ids(self, item: Any) -> list[int]:
        """The token ids of one text (or one row of ids, for a model without a tokenizer)."""
        if self.tokenizer is None:
            return [int(t) for t in np.asarray(item).ravel()]
        return [int(t) for t in self.tokenizer(str(item))["input_ids"]]

    def _positions(self) -> int | None:
        """The positions the model has (its longest input), if its config says."""
        config = self.module.config
        known = [int(v) for v in (getattr(config, "max_position_embeddings", None),
                                  getattr(config, "n_positions", None))
                 if isinstance(v, int) and 0 < v < _NO_LIMIT]
        return min(known) if known else None

    def _length_limit(self) -> int | None:
        """The longest input the model and tokenizer take, less room for new tokens (for a
        causal model: an encoder-decoder's new tokens are the decoder's, not the input's)."""
        config = self.module.config
        limits = [getattr(config, "max_position_embeddings", None),
                  getattr(config, "n_positions", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        known = [int(v) for v in limits if isinstance(v, int) and 0 < v < _NO_LIMIT]
        if not known:
            return None
        causal = self.generates and not self.seq2seq
        limit = min(known) - (self.max_new_tokens if causal else 0)
        if limit < 1:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} leaves no room for a "
                              f"prompt in the model's {min(known)} positions")
        return limit

    def _padding(self) -> int | None:
        """The pad id; a tokenizer without a pad token pads with its end token. Causal
        generation pads on the left, so that every prompt ends where the new tokens begin (an
        encoder-decoder's prompts pad as its tokenizer pads them)."""
        tokenizer = self.tokenizer
        if tokenizer is not None:
            if tokenizer.pad_token is None and tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            if self.generates and not self.seq2seq:
                tokenizer.padding_side = "left"
        generation = getattr(self.module, "generation_config", None)
        for pad in (getattr(generation, "pad_token_id", None),
                    getattr(tokenizer, "pad_token_id", None)):
            if isinstance(pad, int):
                return pad
        return self._eos[0] if self._eos else None

    def _adamw(self, lr: float) -> torch.optim.Optimizer:
        import torch

        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW(self.module.parameters(), lr=lr)
        else:
            for group in self._optimizer.param_groups:
                group["lr"] = lr
        return self._optimizer


def _clips(batch: Any, rate: int) -> list[NDArray[np.float32]]:
    """The 1-D float32 clips of a batch: audio files (read at ``rate``), a 2-D array (a clip
    a row), or a list or object array of 1-D arrays."""
    from ..audio import audio_files, is_audio_source, read_audio

    if is_audio_source(batch):
        return [read_audio(f, rate) for f in audio_files(batch)]
    if isinstance(batch, np.ndarray) and batch.dtype != object:
        if batch.ndim != 2:
            raise ConfigError("give a batch of clips: a 2-D array (n, samples), a list of 1-D "
                              f"arrays, or audio file paths; not an array of shape {batch.shape}")
        return [np.asarray(row, dtype=np.float32) for row in batch]
    try:
        clips = [np.asarray(clip, dtype=np.float32) for clip in batch]
    except (TypeError, ValueError) as err:
        raise ConfigError("give a batch of clips: a list of 1-D float arrays, a 2-D array, or "
                          f"audio file paths; not {type(batch).__name__}") from err
    if not clips or any(c.ndim != 1 for c in clips):
        raise ConfigError("give a batch of clips: a non-empty list of 1-D float arrays (one "
                          "clip each), a 2-D array, or audio file paths")
    return clips


def _completed(base: ImageSpec, given: ImageSpec, option: Any) -> ImageSpec:
    """``base`` (the image processor's spec) with the fields the ``preprocess`` ``option``
    gives (a mapping: its keys; an :class:`ImageSpec`: all its set fields) put in place."""
    from ..images import ImageSpec

    named = (set(map(str, option)) if isinstance(option, Mapping)
             else {"mean", "std", "resample", "channel_order"})
    size, edge = base.size, base.shortest_edge  # a given size or shortest edge replaces both
    if given.size is not None or given.shortest_edge is not None:
        size, edge = given.size, given.shortest_edge
    return ImageSpec(
        size=size,
        shortest_edge=edge,
        crop=given.crop if given.crop is not None else base.crop,
        resample=given.resample if "resample" in named else base.resample,
        layout=given.layout or base.layout,
        channels=given.channels if given.channels is not None else base.channels,
        scale=given.scale if given.scale is not None else base.scale,
        mean=given.mean if "mean" in named else base.mean,
        std=given.std if "std" in named else base.std,
        channel_order=given.channel_order if "channel_order" in named else base.channel_order,
        unfollowed=base.unfollowed,
    )


def _prompt_length(ids: NDArray[Any], prompt: frozenset[int]) -> int:
    """The columns that open every row with prompt ids (a decoder prompt ``generate`` kept)."""
    n = 0
    while n < ids.shape[1] and all(int(t) in prompt for t in ids[:, n]):
        n += 1
    return n


def _count_new(ids: NDArray[Any], eos: tuple[int, ...]) -> int:
    """New tokens in each row up to and with its first end token; the padding after is none."""
    if not eos or ids.size == 0:
        return int(ids.size)
    ended = np.isin(ids, eos)
    lengths = np.where(ended.any(axis=1), ended.argmax(axis=1) + 1, ids.shape[1])
    return int(lengths.sum())


def _eos_ids(module: Any) -> tuple[int, ...]:
    generation = getattr(module, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None)
    if eos is None:
        eos = getattr(module.config, "eos_token_id", None)
    if isinstance(eos, int):
        return (eos,)
    return tuple(int(e) for e in eos) if isinstance(eos, list | tuple) else ()


def _device(device: Any) -> str:
    import torch

    name = str(device)
    try:
        parsed = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown torch device {name!r}: {err}") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA device")
    return name


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    return value


def _weights_dtype(module: torch.nn.Module) -> str:
    """The dtype that holds most of the parameters."""
    sizes: Counter[str] = Counter()
    for p in module.parameters():
        sizes[str(p.dtype).removeprefix("torch.")] += p.numel()
    return sizes.most_common(1)[0][0] if sizes else "float32"


def _to_numpy(tensor: torch.Tensor) -> NDArray[Any]:
    import torch

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16
        t = t.float()
    return t.numpy()
