"""The energy of inference over a dataset, and of training, with accuracy beside it."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import cache
from operator import attrgetter
from typing import Any

from .._stats import t_quantile_975
from ..errors import ConfigError, ModelError, WindowError
from ..meter import EnergyMeter
from ..record import RunRecord
from ..sensors.hardware import detect_hardware, resolve_hardware
from .datasets import Dataset, as_dataset

__all__ = ["LINE_EVERY", "measure_inference", "measure_training"]

#: Without a terminal, progress is a line every this many samples (ML Energy Score's habit).
LINE_EVERY = 100


@contextmanager
def _progress(enabled: bool | None, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Progress of ``total`` samples, told ``done`` so far: a rich bar when ``enabled`` is True,
    or None on a terminal; a line on stderr every :data:`LINE_EVERY` samples when None and
    stderr is not a terminal (a log, a notebook, CI); nothing when False."""
    if enabled is False:
        yield lambda done: None
        return
    if enabled is None and not sys.stderr.isatty():
        told = 0

        def line(done: int) -> None:
            nonlocal told
            if done >= min(told + LINE_EVERY, total):
                told = done
                print(f"{label}: {done}/{total} samples", file=sys.stderr, flush=True)

        yield line
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def _tokens(result: Any) -> int | None:
    """Tokens a text-generation call produced, when its result says so: a ``tokens`` key, or
    a ``tokens`` attribute (the arrays a generation model returns carry one)."""
    if isinstance(result, dict) and "tokens" in result:
        return int(result["tokens"])
    count = getattr(result, "tokens", None)
    return count if isinstance(count, int) else None


def _generation_metrics(m: Any, outputs: list[Any], prompts: int,
                        plain: bool) -> dict[str, Any]:
    """Tokens, tokens per second, and joules per token and per prompt of a generation run
    measured by ``m``; empty when the outputs do not count tokens (``plain``: they are all
    plain arrays, see :func:`_all_arrays`, which count none)."""
    if plain:
        return {}
    tokens = [n for n in map(_tokens, outputs) if n is not None]
    if not tokens:
        return {}
    total = sum(tokens)
    metrics: dict[str, Any] = {
        "tokens_generated": total,
        "tokens_per_second": total / m.duration_s if m.duration_s > 0 else 0.0,
        "joules_per_prompt": m.energy_j / prompts,
    }
    if total > 0:
        metrics["joules_per_token"] = m.energy_j / total
    return metrics


def _generator(inference_fn: Callable[[Any], Any]) -> Any:
    """The model whose bound ``predict`` ``inference_fn`` is, when that model generates text
    and can profile it (``generation_profile`` and ``perplexity``); else None."""
    owner = getattr(inference_fn, "__self__", None)
    if (owner is not None and getattr(owner, "generates", False) is True
            and callable(getattr(owner, "generation_profile", None))
            and callable(getattr(owner, "perplexity", None))):
        return owner
    return None


def _array(output: Any) -> Any:
    """``output`` as a NumPy array; a torch tensor is detached and copied to the CPU first."""
    import numpy as np

    detach = getattr(output, "detach", None)
    if callable(detach):
        output = detach().cpu().numpy()
    return np.asarray(output)


def _concat(outputs: list[Any], per_sample: bool = False) -> Any:
    """One array of every call's predictions (a list for text), or None if they differ.

    ``per_sample``: each output is one sample's prediction (a class, a score vector, or a
    batch of one), stacked along a new first axis; otherwise each is a batch's predictions,
    concatenated."""
    import numpy as np

    if not per_sample and all(isinstance(o, (list, tuple)) for o in outputs):
        return [item for o in outputs for item in o]
    try:
        arrays = [_array(o) for o in outputs]
        if per_sample:
            return _one_per_sample(np.stack(arrays))
        if all(a.ndim == 0 for a in arrays):  # one prediction per call
            return np.stack(arrays)
        return np.concatenate([np.atleast_1d(a) for a in arrays])
    except (TypeError, ValueError, RuntimeError):
        return None


def _one_per_sample(stacked: Any) -> Any:
    """Per-sample outputs stacked along a new first axis, less the axis of a batch of one
    where each call returned one (``(n, 1, k)`` is ``(n, k)``)."""
    if stacked.ndim >= 2 and stacked.shape[1] == 1:
        return stacked.reshape(stacked.shape[0], *stacked.shape[2:])
    return stacked


#: Bytes of outputs the finiteness check copies and sums at a time (as many outputs as the
#: first one's size makes that, at least one): the copy stays in the CPU's cache, and small
#: outputs are not joined a few kilobytes at a time, a Python call each.
FINITE_CHUNK_BYTES = 1 << 18


def _check_finite(outputs: list[Any], plain: bool, values: Any = None) -> None:
    """Raise :class:`ModelError` if any numeric output is NaN or infinite (``plain``: the
    outputs are all plain NumPy arrays, see :func:`_all_arrays`; ``values``: every output's
    values already in one array, as :func:`_joined_predictions` makes them, checked at once).

    A model whose outputs are not numbers has no accuracy to report (NaN predictions score as
    chance or garbage) and its energy is not that of a working model. Text and other
    non-numeric outputs are not checked. Runs once, after the measured loop.

    Outputs that are all NumPy arrays (the common case) are checked about
    :data:`FINITE_CHUNK_BYTES` at a time by their sum, which is finite exactly when every
    value is, unless finite values overflow it: then the chunk's values are tested one by one.
    Arrays of one float type are joined as bytes for the sum; arrays of several types are
    concatenated. Anything else, and any chunk found not finite, goes through the exact count
    the message gives. With labels the outputs are stacked for the accuracy anyway:
    ``values`` is that stack, summed at once.
    """
    import numpy as np

    if values is not None:
        if values.dtype.kind not in "fc":
            return  # one type, not a float: nothing to check
        with np.errstate(over="ignore", invalid="ignore"):
            if _chunk_finite(np, values.reshape(-1)):
                return
    elif outputs and plain:
        dtypes = list(map(_DTYPE, outputs))  # counted, not put in a set: a dtype's hash is dear
        first = dtypes[0]
        kind = first.kind if dtypes.count(first) == len(dtypes) else None
        if kind is not None and kind not in "fc":
            return  # one type, not a float: integers, text or objects, nothing to check
        join = _concatenated if kind is None else _joined  # one float type: its bytes joined
        # sized by the first output: where it is much smaller than the rest, a chunk may hold
        # them all, one copy of the outputs, as the labelled path's stack always is
        per = max(1, FINITE_CHUNK_BYTES // max(1, outputs[0].nbytes))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is looked into
            if all(_chunk_finite(np, join(np, outputs[at:at + per]))
                   for at in range(0, len(outputs), per)):
                return
    nan = inf = total = 0
    for out in outputs:
        try:
            a = _array(out)
        except (TypeError, ValueError, RuntimeError):  # ragged or odd outputs: nothing to check
            continue
        if a.dtype.kind not in "fc":
            continue
        total += a.size
        nan += int(np.count_nonzero(np.isnan(a)))
        inf += int(np.count_nonzero(np.isinf(a)))
    if nan or inf:
        raise ModelError(
            f"model output is not finite: {nan} NaN and {inf} infinite of {total} values "
            "predicted; its accuracy and energy would mean nothing, so nothing is reported"
        )


_DTYPE = attrgetter("dtype")
_SHAPE = attrgetter("shape")


def _joined_predictions(outputs: list[Any], per_sample: bool) -> Any:
    """What :func:`_concat` makes of ``outputs``, sooner, where they are plain NumPy arrays
    (see :func:`_all_arrays`) of one number type in this machine's byte order, C-contiguous,
    of one shape (one sample's predictions each) or of one shape after the first axis
    (batches): their bytes joined once, reshaped. None where they are not: :func:`_concat`
    decides then. The bytes are joined in a ``bytearray``, not ``bytes``: NumPy copies an array
    it cannot write before an ``argmax``.

    The same array serves :func:`_check_finite` (``values``) and the accuracy: one copy of
    the outputs instead of two, and no Python call per output."""
    import numpy as np

    first = outputs[0]
    dtype, shape = first.dtype, first.shape
    count = len(outputs)
    if (dtype.kind not in "biufc" or not dtype.isnative
            or list(map(_DTYPE, outputs)).count(dtype) != count):
        return None
    shapes = list(map(_SHAPE, outputs))
    if per_sample or not shape:
        if shapes.count(shape) != count:
            return None
        rows: tuple[int, ...] = (count, *shape)
    else:  # batches: concatenated along their first axis, which may differ (a short last one)
        rest = shape[1:]
        if [s[1:] for s in shapes if s].count(rest) != count:
            return None
        rows = (-1, *rest)
    try:
        stacked: Any = np.frombuffer(bytearray().join(outputs), dtype).reshape(rows)
    except TypeError:  # an array that is not C-contiguous has no bytes to join
        return None
    except ValueError:  # batches of no values: no first axis to count
        return None
    return _one_per_sample(stacked) if per_sample else stacked


def _all_arrays(outputs: list[Any]) -> bool:
    """Whether every output is a plain NumPy array (not a subclass that counts tokens)."""
    import numpy as np

    return bool(outputs) and list(map(type, outputs)).count(np.ndarray) == len(outputs)


def _joined(np: Any, chunk: list[Any]) -> Any:
    """The values of arrays of one float or complex type, in one array: their bytes joined
    (sooner than :func:`numpy.concatenate`), or concatenated where one is not contiguous."""
    try:
        return np.frombuffer(b"".join(chunk), chunk[0].dtype)
    except TypeError:  # an array that is not C-contiguous has no bytes to join
        return _concatenated(np, chunk)


def _concatenated(np: Any, chunk: list[Any]) -> Any:
    """The values of these arrays in one array, or None where their kinds do not mix (numbers
    and text)."""
    try:
        return np.concatenate(chunk, axis=None)
    except (TypeError, ValueError):
        return None


def _chunk_finite(np: Any, flat: Any) -> bool:
    """True when every number in ``flat``, the values of a chunk of outputs, is finite (or
    none is a float or complex); False when one is not, or when the chunk's kinds did not
    mix (``flat`` is None) or were made text or objects, which could hide floats: the exact
    count decides then."""
    if flat is None:
        return False
    kind = flat.dtype.kind
    if kind not in "fc":  # a mix made integers has no float in it; text or objects may
        return kind in "iub"
    wide = np.float64 if kind == "f" and flat.dtype.itemsize < 8 else None  # no float16 overflow
    # add.reduce is what ndarray.sum calls, through a Python function: called here directly
    return bool(np.isfinite(np.add.reduce(flat, dtype=wide))) or bool(np.isfinite(flat).all())


#: The most bytes of kept outputs :func:`_keep_heap` makes the C heap keep: glibc raises its
#: thresholds (below) only for a block of at most 32 MiB on a 64-bit machine.
KEEP_MAX_BYTES = 31 << 20
#: Bytes apart of the writes that make a block's pages the process's (the smallest page size).
PAGE_BYTES = 4096


@cache
def _glibc() -> bool:
    """Whether this process's C library is glibc, whose heap :func:`_keep_heap` tunes."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name: not glibc
        return False


def _host_bytes(output: Any) -> int:
    """Bytes ``output`` holds in this process's memory: a NumPy array's or a CPU tensor's;
    0 for anything else (a tensor on a GPU, text, a dict)."""
    nbytes = getattr(output, "nbytes", None)
    if type(nbytes) is not int:
        return 0
    device = getattr(output, "device", "cpu")  # NumPy's is "cpu"; torch's a device of a type
    return nbytes if str(getattr(device, "type", device)) == "cpu" else 0


def _keep_heap(nbytes: int, fault: bool) -> None:
    """Let the C heap keep ``nbytes`` (at most :data:`KEEP_MAX_BYTES`) of outputs from run to
    run; with ``fault``, make that memory the process's now, before the window opens.

    The measured loop keeps every call's output, where a serving loop would free each before
    the next call. glibc's malloc gives free memory at the top of its heap back to the system
    once more than its trim threshold (128 KiB at first) is free there, so the outputs of one
    run, freed together after it, are given back, and the next run's calls take their memory
    again: a page fault a page inside the window, which the model would not pay in service
    (about 2 µs each on a VM: 1-2% of a loop of 100 µs calls that return 3 KB each). A block
    above the threshold is mapped on its own, and freeing it raises the threshold to the
    block's size and the trim threshold to twice that: one such block, never written, is
    made and freed here. With ``fault``, a block of ``nbytes`` from the heap is written once a
    page and freed, so the loop's outputs take pages that are already there (a first run, in a
    fresh process). Outputs of more than :data:`KEEP_MAX_BYTES` are kept up to that. Elsewhere
    than glibc, nothing is done: other allocators keep their own counsel, and writing a block
    that is given back at once would only cost page faults."""
    size = min(nbytes, KEEP_MAX_BYTES)
    if size < 1 << 17:  # glibc keeps this much free already
        return
    if not _glibc():
        return
    import numpy as np

    try:
        np.empty(size + (1 << 16), np.uint8)  # mapped and unmapped at once: the thresholds rise
        if fault:
            block = np.empty(size, np.uint8)
            block[::PAGE_BYTES] = 0
            del block
    except MemoryError:  # a machine without the memory: the window pays the faults
        pass


def _close_quietly(meter: EnergyMeter, name: str) -> None:
    """End the window ``name`` after the code in it raised; its measurement is not reported."""
    with suppress(WindowError):  # the code itself ended it: nothing is left to close
        meter.end(name)


def measure_inference(
    inference_fn: Callable[[Any], Any],
    dataset: Any,
    model_name: str,
    task_name: str,
    hardware: str = "auto",
    num_samples: int = 1000,
    *,
    batch_size: int = 1,
    per_sample: bool = False,
    warmup: int = 10,
    meter: EnergyMeter | None = None,
    progress: bool | None = None,
    score: Callable[[list[Any]], Mapping[str, Any]] | None = None,
) -> RunRecord:
    """Measure ``num_samples`` queries of ``inference_fn`` over ``dataset``; return the run's
    :class:`~wattprint.record.RunRecord` (phase ``inference``, without a ``sweep_id`` or
    ``cell_key``: whoever stores it names it).

    ``inference_fn`` is called on batches of ``batch_size`` inputs, or, with ``per_sample``,
    on each input alone (a row of an array, one text, one tensor: as the dataset holds it).
    The dataset is cycled when it has fewer than ``num_samples``; ``warmup`` calls run first,
    unmeasured. Everything per call is prepared before the measured loop, which only calls
    the function. If the function raises, the window is closed and the error propagates, so a
    shared ``meter`` stays usable. ``hardware`` is the label the run is filed under:
    ``"auto"`` (the first GPU the meter reads, else ``"CPU"``) or any device name (see
    :func:`~wattprint.sensors.hardware.resolve_hardware`: ``"NVIDIA H200"`` is ``"H200"``).
    Accuracy (``metrics``) is computed when the dataset has labels and the function returns
    predictions (scores, class numbers or class names); where labels were given but could not
    score the outputs, ``measurement_notes`` says why. Numeric outputs that are NaN or infinite
    raise :class:`~wattprint.errors.ModelError` ("model output is not finite"). The batch size
    is in ``extra``. Progress: see ``progress`` of :func:`wattprint.measure_energy`.

    Generation: when the outputs count their tokens (see :func:`_tokens`), ``metrics`` has
    ``tokens_generated``, ``tokens_per_second``, ``joules_per_token`` and
    ``joules_per_prompt`` (the window's ``energy_j`` over the tokens, and over the
    ``num_samples`` prompts). When ``inference_fn`` is the ``predict`` of a model that can
    profile its generation (a transformers text-generation model:
    ``generation_profile(batches, meter)`` and ``perplexity(texts)``), two passes follow the
    measured loop, outside its window: a separately measured pass over the first batches for
    ``time_to_first_token_s`` and ``prefill_energy_j`` / ``decode_energy_j`` (see
    :meth:`~wattprint.workloads.loaders.transformers_loader.TransformersModel.generation_profile`),
    and an unmeasured one for the dataset's ``perplexity``. ``score``, if given, gets the
    outputs of every call, in order, after the loop, and returns metrics to add (the code
    set's ``exact_match`` and ``pass_rate``: :mod:`wattprint.workloads.codegen`).
    """
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, not {num_samples}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, not {warmup}")
    data = as_dataset(dataset)
    if len(data) == 0:
        raise ConfigError(f"dataset {data.name!r} is empty")
    profile = None if hardware.strip().lower() == "auto" else resolve_hardware(hardware)
    size = 1 if per_sample else batch_size
    own_meter = meter is None
    meter = meter if meter is not None else EnergyMeter()
    try:
        calls, labels = _prepare(data, num_samples, batch_size, per_sample)
        last = None
        for xb in calls[: max(warmup, 0)]:
            last = inference_fn(xb)
        # the memory of the outputs the loop keeps, sized by the last warm-up call's, is the
        # process's before the window opens (see _keep_heap)
        _keep_heap(_host_bytes(last) * len(calls), fault=True)
        last = None
        outputs: list[Any] = []
        append = outputs.append
        with _progress(progress, num_samples, f"{model_name} / {task_name}") as advance:
            # Calls between progress updates: about 1 % of the run for a bar, LINE_EVERY
            # samples for lines; chunks keep the progress's cost out of the per-query loop.
            every = max(1, len(calls) // 100) if progress or sys.stderr.isatty() else max(
                1, LINE_EVERY // size)
            name = f"inference:{model_name}:{task_name}"
            meter.begin(name)
            try:
                if progress is False:
                    for xb in calls:
                        append(inference_fn(xb))
                else:
                    for start in range(0, len(calls), every):
                        for xb in calls[start:start + every]:
                            append(inference_fn(xb))
                        advance(min((start + every) * size, num_samples))
            except BaseException:
                _close_quietly(meter, name)  # a shared meter must stay usable; the error goes on
                raise
            m = meter.end(name)
        if outputs:  # kept by the heap when freed, for the next run's loop (see _keep_heap)
            _keep_heap(_host_bytes(outputs[0]) * len(outputs), fault=False)
        plain = _all_arrays(outputs)
        # with labels, the outputs are stacked for the accuracy: checked in that one copy
        stacked = _joined_predictions(outputs, per_sample) if plain and labels is not None \
            else None
        _check_finite(outputs, plain, stacked)
        metrics = _generation_metrics(m, outputs, num_samples, plain)
        scored, unscored = _accuracy(data, labels, outputs, per_sample, stacked)
        metrics.update(scored)
        if "tokens_generated" in metrics and (generator := _generator(inference_fn)) is not None:
            metrics.update(generator.generation_profile(calls, meter))
            perplexity = generator.perplexity(data.x)
            if perplexity is not None:
                metrics["perplexity"] = perplexity
        if score is not None:
            metrics.update(score(outputs))
        return RunRecord.from_measurement(
            m, phase="inference", model_name=model_name, task=task_name,
            hardware=profile.name if profile else detect_hardware(meter.sensors),
            dataset=data.name, num_samples=num_samples,
            samples_per_second=num_samples / m.duration_s if m.duration_s > 0 else 0.0,
            kwh_per_1000_queries=m.footprint.kwh * 1000.0 / num_samples, metrics=metrics,
            extra={"batch_size": size},
            measurement_notes=(*m.notes, *(() if unscored is None else (unscored,))),
        )
    finally:
        if own_meter:
            meter.close()


def _prepare(data: Dataset, num_samples: int, batch_size: int,
             per_sample: bool = False) -> tuple[list[Any], Any]:
    """The measured loop's inputs, made up front, cycling the dataset to ``num_samples``: one
    input per call with ``per_sample`` (``x[i]``, as the dataset holds it), else batches.

    Batches are slices (views, no copies) except where one wraps around the dataset's end.
    """
    import numpy as np

    n, x = len(data), data.x
    calls: list[Any] = []
    if per_sample and type(x) is np.ndarray:  # rows made by NumPy's own iteration: sooner
        rows = list(x[:num_samples])  # only the rows the run calls on
        calls = rows if len(rows) == num_samples else (rows * -(-num_samples // n))[:num_samples]
    elif per_sample:
        calls = [x[i % n] for i in range(num_samples)]
    else:
        for start in range(0, num_samples, batch_size):
            size = min(batch_size, num_samples - start)
            a = start % n
            if a + size <= n:
                calls.append(x[a:a + size])
            else:
                idx = np.arange(a, a + size) % n
                calls.append([x[i] for i in idx] if isinstance(x, list) else x[idx])
    labels = None if data.y is None else data.y[np.arange(num_samples) % n]
    return calls, labels


def _accuracy(data: Dataset, labels: Any, outputs: list[Any], per_sample: bool = False,
              stacked: Any = None) -> tuple[dict[str, Any], str | None]:
    """The metrics of ``outputs`` against ``labels`` (``stacked``: the predictions already
    made of them, see :func:`_joined_predictions`), and, where labels were given for a task
    that is scored but they could not score the outputs, why: a note for the run's reader.

    Outputs that are texts are predictions too: class names, scored against the names of
    the dataset's classes, or transcripts, one per sample."""
    if labels is None or not outputs:
        return {}, None
    import numpy as np

    from .metrics import classification_metrics, regression_metrics, transcription_metrics

    predictions = _concat(outputs, per_sample) if stacked is None else stacked
    if isinstance(predictions, np.ndarray) and (
            predictions.dtype.kind in "US" or (predictions.dtype.kind == "O" and all(
                isinstance(v, str) for v in predictions.flat))):
        predictions = predictions.reshape(-1).tolist()  # texts, one per sample
    if data.task == "automatic-speech-recognition":
        if not isinstance(predictions, list):
            return {}, "no word error rate: the outputs are not transcripts, one text per sample"
        try:
            return transcription_metrics(labels, predictions), None
        except ValueError as err:  # transcripts that do not line up
            return {}, f"no word error rate: {err}"
    score: Callable[[Any, Any], dict[str, float]]
    if data.task == "regression":
        what, score = "rmse or mae", regression_metrics
    elif "classification" in data.task:
        what, score = "accuracy", classification_metrics
    else:
        return {}, None
    if predictions is None:
        return {}, (f"no {what}: the outputs could not be put together as predictions (they "
                    "differ in shape or kind)")
    if isinstance(predictions, list):
        if predictions and all(isinstance(p, str) for p in predictions):
            if score is regression_metrics:
                return {}, f"no {what}: the outputs are texts, the targets numbers"
            if data.classes is None:
                return {}, (f"no {what}: the outputs are texts and the labels have no class "
                            "names to match them with (they are numbers, some negative)")
            labels = np.asarray(data.classes)[labels]  # class names against class names
        elif any(isinstance(p, str) for p in predictions):
            return {}, f"no {what}: the outputs mix texts and other values"
        predictions = np.asarray(predictions)
    try:
        return score(labels, predictions), None
    except ValueError as err:  # predictions that do not line up with the labels
        return {}, f"no {what}: {err}"
    except TypeError as err:  # objects, None among them
        return {}, f"no {what}: the outputs cannot be compared with the labels ({err})"


def measure_training(
    model: Any,
    dataset: Any,
    epochs: int,
    *,
    batch_size: int = 32,
    meter: EnergyMeter | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    predict_after: int = 2,
    model_name: str | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """Train for ``epochs`` and measure each epoch's energy and loss.

    ``model`` is a :class:`~wattprint.workloads.model.Model` (its ``train_epoch`` is used) or a
    function ``train_epoch(data) -> loss``. From epoch ``predict_after`` on, each epoch's record
    carries a prediction of the whole run's energy and CO2, linear in epochs, with a 95 %
    prediction interval from the epoch-to-epoch spread (Student's t); ``on_epoch`` gets each
    record as it is made. Returns per-epoch records and totals; ``partial`` is true when a
    sensor failed in any epoch (that epoch's record is ``partial``: the totals miss it).
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, not {epochs}")
    if predict_after < 2:
        raise ConfigError("predict_after must be >= 2: a spread needs two epochs")
    data = as_dataset(dataset)
    step: Callable[[], Any]
    if hasattr(model, "train_epoch"):
        step = lambda: model.train_epoch(data, batch_size=batch_size, **train_options)  # noqa: E731
    elif callable(model):
        step = lambda: model(data)  # noqa: E731
    else:
        raise ConfigError("model must have train_epoch(data) or be a function of the data")
    own_meter = meter is None
    meter = meter if meter is not None else EnergyMeter()
    records: list[dict[str, Any]] = []
    energies: list[float] = []
    co2s: list[float] = []
    try:
        for epoch in range(1, epochs + 1):
            with meter.epoch() as w:
                loss = step()
            m = w.measurement
            assert m is not None
            energies.append(m.energy_j)
            co2s.append(m.footprint.co2_g)
            record: dict[str, Any] = {
                "epoch": epoch,
                "duration_s": m.duration_s,
                "energy_j": m.energy_j,
                "co2_g": m.footprint.co2_g,
                "loss": None if loss is None else float(loss),
                "measured": m.measured,
                "partial": m.partial,
            }
            if epoch >= predict_after:
                record["prediction"] = _predict(energies, co2s, epochs)
            records.append(record)
            if on_epoch is not None:
                on_epoch(record)
        total = sum(energies)
        fp = meter.footprint_model.of(total)
    finally:
        if own_meter:
            meter.close()
    return {
        "model_name": model_name or getattr(model, "framework", None) or "model",
        "epochs": records,
        "num_epochs": epochs,
        "total_energy_j": total,
        "total_energy_kwh": fp.kwh,
        "total_co2_g": fp.co2_g,
        "co2_kg": fp.co2_g / 1000.0,
        "water_l": fp.water_l,
        "duration_s": sum(r["duration_s"] for r in records),
        "carbon_intensity_source": fp.intensity_source,
        "measured": all(r["measured"] for r in records),
        # a sensor failed in some epoch: the totals (and predictions) miss what it would read
        "partial": any(r["partial"] for r in records),
    }


def _predict(energies: list[float], co2s: list[float], epochs: int) -> dict[str, Any]:
    """Whole-run energy and CO2 from the epochs so far: the sum so far plus the mean epoch
    times the epochs left, with a 95 % prediction interval for the sum of those epochs."""
    k, left = len(energies), epochs - len(energies)

    def one(xs: list[float]) -> tuple[float, float]:
        mean = sum(xs) / k
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (k - 1))
        half = t_quantile_975(k - 1) * sd * math.sqrt(left + left * left / k)
        return sum(xs) + mean * left, half

    energy, energy_pm = one(energies)
    co2, co2_pm = one(co2s)
    return {
        "after_epochs": k,
        "total_energy_j": energy,
        "total_energy_j_pm": energy_pm,
        "total_co2_g": co2,
        "total_co2_g_pm": co2_pm,
        "interval": "95% prediction interval (Student's t over epoch-to-epoch spread)",
    }
