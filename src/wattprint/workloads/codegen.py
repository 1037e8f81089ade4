"""Code generation: small coding tasks with tests, the completions a model writes for them, and
two quality figures beside the energy, ``exact_match`` and ``pass_rate``.

A task set is JSONL, one task per line, a JSON object with these fields:

``task_id`` (string, required)
    A name unique in the set.
``prompt`` (string, required)
    The code the model continues: a function's signature and docstring, say.
``tests`` (string, required)
    Python statements run after the prompt and the completion (``assert add(2, 3) == 5``);
    the completion passes when the program ``prompt + completion + "\\n" + tests`` exits 0
    within the timeout.
``reference`` (string, optional)
    A correct completion: ``exact_match`` compares the model's completion with it, each
    line's trailing spaces and the blank lines before and after left out.

Other fields are refused (a misspelt ``reference`` would silently drop the exact match).
wattprint ships a tiny sample (:func:`load_code_tasks` without a path; six tasks written for
it, ``data/NOTICE.md``): it shows the figures are computed, it is not a benchmark.

Running the tests runs the model's output, which is code nobody has read: it happens only
with ``run_code=True``. Each program runs in a fresh Python (``python -I``: no environment
variables, no user site) in a temporary folder that is deleted after, with standard input
closed and a timeout after which its process group is killed. That is containment against
accidents (a loop that never ends, a stray file), not a sandbox: the program runs as you,
with your files and network. Without ``run_code`` there is no ``pass_rate``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._data import DATA_DIR
from ..errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from ..meter import EnergyMeter
    from ..record import RunRecord

__all__ = ["FIELDS", "SAMPLE", "CodeScores", "CodeTask", "completions", "load_code_tasks",
           "measure_code_generation", "score_completions"]

#: The fields of a task in a JSONL set; ``reference`` may be left out.
FIELDS = ("task_id", "prompt", "tests", "reference")
#: The sample set shipped in ``wattprint/data``.
SAMPLE = os.path.join(DATA_DIR, "code_tasks.jsonl")
#: Seconds one task's program may run before it is killed and counted as failed.
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CodeTask:
    """One coding task: the prompt a model continues, the tests its completion must pass,
    and, if known, a correct completion."""

    task_id: str
    prompt: str
    tests: str
    reference: str | None = None


@dataclass(frozen=True)
class CodeScores:
    """How a model's completions of a task set did.

    ``exact_match``: the fraction of tasks with a ``reference`` whose completion matches it
    (None when no task has one). ``pass_rate``: the fraction of tasks whose program passed
    (None when the code was not run); ``passed`` counts them, and ``failed`` names each task
    that did not pass with why (``exit 1: AssertionError``, ``timeout after 10 s``).
    """

    tasks: int
    exact_match: float | None
    pass_rate: float | None = None
    passed: int | None = None
    failed: tuple[tuple[str, str], ...] = ()

    def metrics(self) -> dict[str, Any]:
        """The figures for a run record's ``metrics``: ``code_tasks``, ``exact_match`` and,
        when the code ran, ``pass_rate`` and ``tests_passed``."""
        out: dict[str, Any] = {"code_tasks": self.tasks}
        if self.exact_match is not None:
            out["exact_match"] = self.exact_match
        if self.pass_rate is not None:
            out["pass_rate"] = self.pass_rate
            out["tests_passed"] = self.passed
        return out


def load_code_tasks(path: str | os.PathLike[str] | None = None) -> list[CodeTask]:
    """The tasks of a JSONL set (see the module docstring); the shipped sample without
    ``path``. Raises :class:`~wattprint.errors.DatasetError` naming the line of a malformed
    task."""
    where = Path(path) if path is not None else Path(SAMPLE)
    try:
        lines = where.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DatasetError(f"{where}: cannot read the code task set: {err}") from err
    tasks: list[CodeTask] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{where}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{at}: not JSON: {err.msg}") from err
        if not isinstance(row, dict):
            raise DatasetError(f"{at}: a task is a JSON object, not {type(row).__name__}")
        unknown = sorted(set(row) - set(FIELDS))
        if unknown:
            raise DatasetError(f"{at}: unknown field(s) {', '.join(unknown)}; the fields "
                               f"are {', '.join(FIELDS)}")
        for name in FIELDS:
            required = name != "reference"
            if (required and name not in row) or (
                    name in row and not isinstance(row[name], str)):
                raise DatasetError(f"{at}: {name!r} must be a string"
                                   + (" (required)" if required else ""))
        if row["task_id"] in seen:
            raise DatasetError(f"{at}: task_id {row['task_id']!r} is used twice")
        seen.add(row["task_id"])
        tasks.append(CodeTask(row["task_id"], row["prompt"], row["tests"], row.get("reference")))
    if not tasks:
        raise DatasetError(f"{where}: no tasks")
    return tasks


def _normal(code: str) -> str:
    lines = [line.rstrip() for line in code.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def score_completions(tasks: Sequence[CodeTask], completions: Sequence[str], *,
                      run_code: bool = False,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> CodeScores:
    """Exact match, and with ``run_code=True`` the pass rate, of one completion per task
    (in the tasks' order). ``run_code`` runs each completion with its task's tests: read
    the module docstring first."""
    if len(completions) != len(tasks):
        raise ConfigError(f"{len(completions)} completions for {len(tasks)} tasks")
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be > 0, not {timeout_s}")
    refs = [(t.reference, c) for t, c in zip(tasks, completions, strict=True)
            if t.reference is not None]
    exact = (sum(_normal(r) == _normal(c) for r, c in refs) / len(refs)) if refs else None
    if not run_code:
        return CodeScores(len(tasks), exact)
    failed: list[tuple[str, str]] = []
    for task, completion in zip(tasks, completions, strict=True):
        why = _run(task.prompt + completion + "\n" + task.tests + "\n", timeout_s)
        if why is not None:
            failed.append((task.task_id, why))
    passed = len(tasks) - len(failed)
    return CodeScores(len(tasks), exact, passed / len(tasks), passed, tuple(failed))


def _run(program: str, timeout_s: float) -> str | None:
    """Run ``program`` in a fresh Python in a temporary folder; None if it exited 0, else
    why it failed."""
    with tempfile.TemporaryDirectory(prefix="wattprint-code-") as folder:
        script = Path(folder) / "task.py"
        script.write_text(program, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
        if sys.platform == "win32":
            env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
        proc = subprocess.Popen(  # the opt-in is run_code=True
            [sys.executable, "-I", str(script)], cwd=folder, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=sys.platform != "win32")
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return f"timeout after {timeout_s:g} s"
    if proc.returncode == 0:
        return None
    last = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return f"exit {proc.returncode}" + (f": {last[-1].strip()[:200]}" if last else "")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the program and anything it started (its process group, on POSIX)."""
    if sys.platform != "win32":
        with suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.communicate()


def completions(outputs: Sequence[Any],
                decode: Callable[[Any], Sequence[str]] | None = None) -> list[str]:
    """One completion per prompt from the outputs of each call, in order: a call's output
    is a string, a list of strings, or token ids that ``decode`` turns into texts (one per
    row)."""
    texts: list[str] = []
    for out in outputs:
        if isinstance(out, str):
            texts.append(out)
        elif isinstance(out, (list, tuple)) and all(isinstance(o, str) for o in out):
            texts.extend(out)
        elif decode is not None:
            texts.extend(decode(out))
        else:
            raise ConfigError("the model returned token ids, not text: give decode= (a "
                              "transformers model's decode is used by default)")
    return texts


def measure_code_generation(
    inference_fn: Callable[[Any], Any],
    tasks: Sequence[CodeTask] | str | os.PathLike[str] | None = None,
    *,
    model_name: str,
    run_code: bool = False,
    decode: Callable[[Any], Sequence[str]] | None = None,
    batch_size: int = 1,
    warmup: int = 0,
    hardware: str = "auto",
    meter: EnergyMeter | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RunRecord:
    """Measure ``inference_fn`` completing each task's prompt once (batches of
    ``batch_size`` prompts), then score the completions after the measured window: the run's
    record (task ``code-generation``) has :meth:`CodeScores.metrics` in ``metrics``, beside
    the generation figures of :func:`~wattprint.workloads.harness.measure_inference`.

    ``tasks``: a list of :class:`CodeTask`, a JSONL path, or None for the shipped sample.
    ``inference_fn`` returns completions as text, or token ids that ``decode`` turns into
    text (by default the ``decode`` of the model whose ``predict`` it is). ``run_code=True``
    runs the completions with the tests (see the module docstring) for ``pass_rate``.
    """
    from .harness import measure_inference

    items = list(tasks) if isinstance(tasks, Sequence) and not isinstance(tasks, str) else (
        load_code_tasks(tasks))
    if decode is None:
        decode = getattr(getattr(inference_fn, "__self__", None), "decode", None)

    def score(outputs: list[Any]) -> Mapping[str, Any]:
        return score_completions(items, completions(outputs, decode), run_code=run_code,
                                 timeout_s=timeout_s).metrics()

    return measure_inference(inference_fn, [t.prompt for t in items], model_name,
                             "code-generation", hardware, len(items), batch_size=batch_size,
                             warmup=warmup, meter=meter, progress=False, score=score)
