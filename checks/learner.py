"""Loading and running the learner's code: every way it can go wrong becomes a plain `LearnerError`.

The checker imports `step_NN` by bare module name from one folder (the learner's `steps/` by
default), exactly as the steps import each other, and guards each call into that code with a time
limit, so a syntax error, an exception, a `None` or a loop that never ends reads as one sentence.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from checks import options
from checks.course import module_name
from checks.max_cache import max_cache_changed_since
from checks.waiting import waiting


class LearnerError(Exception):
    """A problem in the learner's code, already worded for the learner."""


class CompileFailed(LearnerError):
    """MAX could not compile the learner's code: every check after it would fail the same way."""


# How MAX 26.7's exception begins when its compiler refused a graph (the cause went to fd 2).
COMPILE_FAILED = "Failed to compile"


class LearnerTimeout(BaseException):
    """Raised inside learner code by the alarm; a BaseException so `except Exception` can't eat it."""


def steps_dir() -> Path:
    return options.current().steps_dir


# Every folder use_steps_dir has put on sys.path: modules imported from any of them are the
# learner's (or given beside theirs), and a new folder must not reuse them.
_step_folders: set[str] = set()


# What grader modules built from the learner's code (a kernel, a compiled graph) and keep for the
# run: use_steps_dir forgets it with the learner's modules. (A check file's own caches go with the
# file: tests.conftest.run_checks_here imports the check files afresh for each run.)
_learner_caches: list[Any] = []


def learner_cache(build: Callable[..., Any]) -> Callable[..., Any]:
    """functools.cache for what a grader module builds from the learner's code, forgotten when
    use_steps_dir loads the code again, so no run meets what an earlier run's code built."""
    cached = functools.cache(build)
    _learner_caches.append(cached)
    return cached


def use_steps_dir(path: Path) -> None:
    """Make `import step_NN` find the files in `path`, forgetting modules from any earlier folder
    and what was built from them (learner_cache)."""
    folder = Path(path).resolve()
    options.use(options.current().but(steps_dir=folder))
    for cached in _learner_caches:
        cached.cache_clear()
    _step_folders.add(str(folder))
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if re.fullmatch(r"(step_\d\d|ext_\w+)", name) or os.path.dirname(file) in _step_folders:
            del sys.modules[name]  # also the given modules beside the steps (gpt2_demo, ...)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))


def where_in_learner_code(tb: Any) -> str:
    """`step_04.py line 37` for the innermost frame of a traceback that is in the learner's files."""
    folder = str(steps_dir())
    found = ""
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith(folder):
            found = f"{Path(frame.filename).name} line {frame.lineno}"
    return found


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Stop `what` after `seconds` of the learner's own time; MAX compiling does not count.

    When the limit falls due, the time is granted again if MAX compiled meanwhile: its cache
    changed, or the alarm came late because the main thread was blocked in a native call (a graph
    compile). A Python loop that never ends gets the alarm on time and changes no cache.
    """
    period = {"start": time.time(), "due": time.monotonic() + seconds}

    def _alarm(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now - period["due"] > 2.0 or max_cache_changed_since(period["start"]):
            period.update(start=time.time(), due=now + seconds)
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return
        raise LearnerTimeout

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except LearnerTimeout:
        limit = seconds if seconds < 1 else round(seconds)  # 0.3 s, 5 s, 300 s
        raise LearnerError(
            f"{what} did not finish within {limit} s. Look for a loop that never ends "
            "(a `while` whose condition never changes, a generation loop without a stop)."
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _alarm_set() -> bool:
    return signal.getitimer(signal.ITIMER_REAL)[0] > 0


def describe_exception(what: str, error: BaseException) -> str:
    where = where_in_learner_code(error.__traceback__)
    at = f" at {where}" if where else ""
    if isinstance(error, NotImplementedError):
        return f"{what} is not implemented yet{at}: work through its TODOs."
    detail = error_summary(str(error))
    return f"{what} raised {type(error).__name__}{at}" + (f": {detail}" if detail else "")


def error_summary(text: str, limit: int = 500) -> str:
    """An error's text on one line, at most `limit` characters, cut between words.

    MAX's graph errors list the op's inputs before what went wrong ("Failed to create op
    'AddOp': Inputs: args[0] = ..., Diagnostics: ... shapes ... do not match"): the cause comes
    first here, then the inputs' types, so a cut loses the least useful part."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last):" in lines:  # a child's traceback: its words are enough
        lines = lines[: lines.index("Traceback (most recent call last):")] or lines[-1:]
    if lines and lines[0].startswith("Failed to create op") and "Inputs:" in lines:
        start = lines.index("Inputs:") + 1
        end = start
        while end < len(lines) and re.match(r"[\w\[\]]+ = ", lines[end]):
            end += 1
        causes = [line for line in lines[end:] if line != "Diagnostics:"]
        lines = [lines[0], *causes, "Inputs: " + "; ".join(lines[start:end])]
    summary = " ".join(lines)
    if len(summary) <= limit:
        return summary
    cut = summary.rfind(" ", 0, limit - 2)
    return summary[: cut if cut > limit // 2 else limit - 2] + " …"


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run learner code under the time limit; any failure becomes a `LearnerError` naming `what`,
    a `CompileFailed` when MAX could not compile it.

    A call that takes long is announced: on a first run MAX compiles the kernels of each new
    operation here (20-60 s each on 2 cores)."""
    outermost = not _alarm_set()
    try:
        with (
            time_limit(options.current().time_limit_s, what)
            if outermost
            else contextlib.nullcontext(),
            compiler_output_kept() if outermost else contextlib.nullcontext([]) as compiler,
            waiting.announce(
                f"running {what} (a first run also compiles MAX's kernels for "
                "each new kind of operation, once per machine)"
            ),
        ):
            return fn(*args, **kwargs)
    except LearnerError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as error:  # the learner's code may raise anything
        if COMPILE_FAILED in str(error):
            raise CompileFailed(describe_compile_failure(what, error, compiler)) from error
        raise LearnerError(describe_exception(what, error)) from error


# What MAX 26.7's compiler says of a layer norm written from its formula with bfloat16 statistics:
# it fuses the formula into its own LayerNorm kernel, whose epsilon must be a float32.
BFLOAT16_STATISTICS = "cannot be converted from 'BFloat16' to 'Float32'"


def describe_compile_failure(what: str, error: BaseException, compiler_output: list[str]) -> str:
    output = "".join(compiler_output)
    if BFLOAT16_STATISTICS in output and "LayerNorm" in output:
        return (
            f"{what.removeprefix('Compiling ')} does not compile in bfloat16 (MAX's dtype on a GPU): "
            "MAX 26.7 cannot compile a layer norm whose mean and variance are computed in "
            "bfloat16. The formula is right; compute in float32 as step 5's page shows "
            "(x.cast(DType.float32), weight and bias cast too, .cast(x.dtype) at the end)."
        )
    cause = next((line.strip() for line in output.splitlines() if "error:" in line), str(error))
    return f"{what} failed in MAX's compiler: {error_summary(cause)}"


@contextlib.contextmanager
def compiler_output_kept() -> Iterator[list[str]]:
    """What native code writes to file descriptor 2 while the block runs, kept: MAX's compiler
    writes why a graph failed there, not into its exception ("Failed to compile the model").
    Passed on to stderr afterwards, but for a failed compile, whose message words the cause."""
    kept: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    worded = False
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield kept
        except BaseException as error:
            worded = COMPILE_FAILED in str(error)
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            text = file.read().decode(errors="replace")
            kept.append(text)
            if text and not worded:
                sys.stderr.write(text)


def load_step(step: int) -> Any:
    """Import the learner's `step_NN.py`, turning every import-time problem into one sentence."""
    name = module_name(step)
    path = steps_dir() / f"{name}.py"
    if not path.exists():
        raise LearnerError(f"There is no {name}.py in {steps_dir()}.")
    try:
        with time_limit(options.current().time_limit_s, f"Importing {name}.py"):
            return importlib.import_module(name)
    except LearnerError:
        raise
    except SyntaxError as error:
        file = Path(error.filename or path).name
        raise LearnerError(
            f"{file} has a syntax error on line {error.lineno}: {error.msg}. "
            "Fix it, then run the check again."
        ) from None
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if re.fullmatch(r"step_\d\d", missing):
            raise LearnerError(
                f"{name}.py imports {missing}, but there is no {missing}.py in {steps_dir()}."
            ) from None
        raise LearnerError(
            f"{name}.py imports `{missing}`, which is not installed or does not exist. Check the "
            "import lines at the top of the file (the MAX API lives under max.experimental)."
        ) from None
    except ImportError as error:
        raise LearnerError(
            f"{name}.py could not import what it needs: {error}. Check its import lines "
            "(and that the earlier step it imports from defines that name)."
        ) from None
    except Exception as error:
        raise LearnerError(describe_exception(f"Importing {name}.py", error)) from None


def learner_attr(step: int, name: str) -> Any:
    module = load_step(step)
    if not hasattr(module, name):
        raise LearnerError(
            f"{module_name(step)}.py does not define `{name}`. Keep the name the skeleton uses."
        )
    return getattr(module, name)


def not_none(what: str, value: Any) -> Any:
    if value is None:
        raise LearnerError(
            f"{what} is None: it is still the skeleton's placeholder. Replace it as its TODO says."
        )
    return value


COMPILE_NOTE = (
    "compiling your {what} into a MAX graph (again whenever your code changes: "
    "10-60 s on 2 cores; a few seconds when it is unchanged)"
)


def compile_module(what: str, module: Any, *input_types: Any) -> Any:
    """`module.compile(...)`, announced while it takes long; compiling never counts as the
    learner's time (see time_limit)."""
    with waiting.announce(COMPILE_NOTE.format(what=what)):
        return call(f"Compiling {what}", module.compile, *input_types)
