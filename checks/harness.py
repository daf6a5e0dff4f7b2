"""Loading and running the learner's code: every way it can go wrong becomes a plain `LearnerError`.

The checker imports `step_NN` by bare module name from one folder (the learner's `steps/` by
default), exactly as the steps import each other, and guards each call into that code with a time
limit, so a syntax error, an exception, a `None` or a loop that never ends reads as one sentence.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from checks.course import (  # noqa: F401  the registry of steps, reached through the harness
    ALL_STEPS,
    COMPILING_STEPS,
    EXTENSION,
    STEP_TITLES,
    STEP_USES,
    STEPS,
    module_name,
    parse_step,
    step_argument,
    step_command,
    step_name,
)

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR_ENV = "GPT2_STEPS_DIR"

# On a cold cache one eager call can spend minutes compiling kernels (a first MLP forward: 139 s
# here); a loop that never ends is still reported. `python -m checks N --time-limit S` changes it.
TIME_LIMIT_S = float(os.environ.get("GPT2_CHECK_TIME_LIMIT", "300"))


def eager_only() -> bool:
    return os.environ.get("GPT2_CHECK_EAGER_ONLY") == "1"


def max_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modular"


def max_cache_is_cold() -> bool:
    """Whether MAX has compiled nothing on this machine yet (its first run takes minutes)."""
    base = max_cache_dir()
    return not base.exists() or len(list(itertools.islice(base.rglob("*"), 20))) < 20


# MAX's defaults on a GPU machine are the GPU and bfloat16. The checks pin the CPU and float32 so
# they mean the same everywhere; `--device gpu` opts in to the accelerator (and its bfloat16), and
# `--dtype bfloat16` runs the checks in bfloat16 on either device.
DEVICE_ENV = "GPT2_CHECK_DEVICE"
DTYPE_ENV = "GPT2_CHECK_DTYPE"
DTYPES = ("float32", "bfloat16")
_pinned: contextlib.ExitStack | None = None


def device_kind() -> str:
    return os.environ.get(DEVICE_ENV, "cpu")


def dtype_name() -> str:
    return os.environ.get(DTYPE_ENV, "float32")


def use_device(kind: str, precision: str | None = None) -> None:
    """Make `kind` ("cpu" or "gpu") and `precision` (a name in DTYPES; the device's usual one when
    None) MAX's defaults for the rest of the process."""
    global _pinned
    from max.driver import CPU, Accelerator, accelerator_count
    from max.experimental.tensor import default_device, default_dtype

    if kind == "gpu" and accelerator_count() == 0:
        raise LearnerError(
            "--device gpu: MAX sees no GPU on this machine. Run the checks without --device (they "
            "use the CPU), or see `pixi run doctor`."
        )
    os.environ[DEVICE_ENV] = kind
    os.environ[DTYPE_ENV] = precision or ("bfloat16" if kind == "gpu" else "float32")
    if _pinned is not None:
        _pinned.close()
    _pinned = contextlib.ExitStack()
    _pinned.enter_context(default_device(Accelerator() if kind == "gpu" else CPU()))
    _pinned.enter_context(default_dtype(dtype()))


def device() -> Any:
    from max.experimental.tensor import defaults

    return defaults()[1].devices[0]


def dtype() -> Any:
    """The checks' float dtype as a MAX DType."""
    from max.dtype import DType

    return getattr(DType, dtype_name())


def low_precision() -> bool:
    return dtype_name() != "float32"


def tolerances(atol: float, rtol: float, scale: float = 1.0) -> tuple[float, float]:
    """A check's float32 tolerances, widened in bfloat16, which keeps about 3 decimal digits:
    its rounding errors grow with the size of the values they pass through (`scale`, the largest
    expected magnitude), so near-zero outputs of a whole model get an absolute margin."""
    if not low_precision():
        return atol, rtol
    return max(atol, 3e-2 * max(1.0, scale)), max(rtol, 3e-2)


# MAX 26.7, after its first compile, sets these in the process's C-level environment (they never
# show in os.environ): PYTHONEXECUTABLE is then the `python3` found on PATH, so a child started
# with a venv's sys.executable runs another environment's Python and can't import max.
LEAKED_BY_MAX = ("PYTHONEXECUTABLE", "MOJO_PYTHON_LIBRARY")


def child_env(**extra: str) -> dict[str, str]:
    """The environment to pass, always explicitly, to every child process the project starts."""
    env = {name: value for name, value in os.environ.items() if name not in LEAKED_BY_MAX}
    if not env.get("PYTHONPATH", "").strip(os.pathsep):  # MAX's PYTHONPATH=":" means nothing
        env.pop("PYTHONPATH", None)
    return {**env, **extra}


class LearnerError(Exception):
    """A problem in the learner's code, already worded for the learner."""


class LearnerTimeout(BaseException):
    """Raised inside learner code by the alarm; a BaseException so `except Exception` can't eat it."""


def install_sigint_handler() -> None:
    """Python 3.11 + MAX eager ops run ~100x slower under the default SIGINT handler (see docs)."""

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _interrupt)


def interpret_eager_ops() -> None:
    """Run eager ops in MAX's interpreter only; compile just the graphs it refuses.

    MAX's default eager executor interprets each op *and* compiles it again in background worker
    processes. On a 2-core machine those compiles take the CPU from the check itself: measured,
    a warm step 4 took 8.3 s with them and 3.3 s without, step 7 12.0 s and 3.9 s.
    """
    from max.experimental import executor

    executor.set_default_executor(
        executor._FallbackExecutor(  # max==26.7.0 is pinned; refusals are GPU dtypes, huge graphs
            interpreter=executor.InterpreterExecutor(max_ops=executor._interpreter_max_ops()),
            refusals_only=True,
        )
    )


def add_folder_options(parser: Any, verb: str) -> None:
    """--solutions / --dir DIR: which folder's step files a command `verb`s (steps/ by default)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--solutions", action="store_true", help=f"{verb} solutions/ instead")
    where.add_argument("--dir", type=Path, help=f"{verb} the step files in this folder")


def chosen_folder(args: Any) -> Path:
    return args.dir or ROOT / ("solutions" if args.solutions else "steps")


def steps_dir() -> Path:
    return Path(os.environ.get(STEPS_DIR_ENV, ROOT / "steps")).resolve()


def use_steps_dir(path: Path) -> None:
    """Make `import step_NN` find the files in `path`, forgetting modules from any earlier folder."""
    os.environ[STEPS_DIR_ENV] = str(Path(path).resolve())
    for name in list(sys.modules):
        if re.fullmatch(r"(step_\d\d|ext_\w+)", name):
            del sys.modules[name]
    folder = str(Path(path).resolve())
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)


def where_in_learner_code(tb: Any) -> str:
    """`step_04.py line 37` for the innermost frame of a traceback that is in the learner's files."""
    folder = str(steps_dir())
    found = ""
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith(folder):
            found = f"{Path(frame.filename).name} line {frame.lineno}"
    return found


def max_cache_changed_since(moment: float) -> bool:
    """Whether MAX wrote to its on-disk cache after `moment` (time.time()): it compiled something."""
    for folder, _, files in os.walk(max_cache_dir()):
        for name in files:
            with contextlib.suppress(OSError):
                if os.stat(os.path.join(folder, name)).st_mtime > moment:
                    return True
    return False


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
        raise LearnerError(
            f"{what} did not finish within {seconds:.0f} s. Look for a loop that never ends "
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
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    detail = f": {' '.join(lines[:2])[:300]}" if lines else ""
    return f"{what} raised {type(error).__name__}{at}{detail}"


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run learner code under the time limit; any failure becomes a `LearnerError` naming `what`.

    A call that takes long is announced: on a first run MAX compiles the kernels of each new
    operation here (20-60 s each on 2 cores)."""
    try:
        with (
            time_limit(TIME_LIMIT_S, what) if not _alarm_set() else contextlib.nullcontext(),
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
        raise LearnerError(describe_exception(what, error)) from error


def load_step(step: int) -> Any:
    """Import the learner's `step_NN.py`, turning every import-time problem into one sentence."""
    name = module_name(step)
    path = steps_dir() / f"{name}.py"
    if not path.exists():
        raise LearnerError(f"There is no {name}.py in {steps_dir()}.")
    try:
        with time_limit(TIME_LIMIT_S, f"Importing {name}.py"):
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


class Waiting:
    """Keeps the terminal from going silent: a wait that passes `after_s` says what it is, then
    prints the elapsed time every `every_s` until it ends. Short waits print nothing."""

    def __init__(
        self,
        after_s: float = 5.0,
        every_s: float = 12.0,
        speak: Callable[[str], None] | None = None,
    ):
        self.after_s, self.every_s = after_s, every_s
        self.speak = speak or say
        self.busy = False  # one wait speaks at a time: the outermost

    @contextlib.contextmanager
    def announce(self, text: str) -> Iterator[None]:
        if self.busy:
            yield
            return
        self.busy, done, start = True, threading.Event(), time.monotonic()
        spoke = threading.Event()

        def beat() -> None:
            if done.wait(self.after_s):
                return
            self.speak(f"  … {text}")
            spoke.set()
            while not done.wait(self.every_s):
                self.speak(f"  … still working ({time.monotonic() - start:.0f} s)")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.busy = False
            if spoke.is_set():
                self.speak(f"  … done ({time.monotonic() - start:.0f} s)")


def say(line: str) -> None:
    """A progress line straight to the terminal, even while a report is being captured."""
    print(line, file=sys.__stdout__, flush=True)


waiting = Waiting()

COMPILE_NOTE = (
    "compiling your {what} into a MAX graph (again whenever your code changes: "
    "10-60 s on 2 cores; a few seconds when it is unchanged)"
)


def compile_module(what: str, module: Any, *input_types: Any) -> Any:
    """`module.compile(...)`, announced while it takes long; compiling never counts as the
    learner's time (see time_limit)."""
    with waiting.announce(COMPILE_NOTE.format(what=what)):
        return call(f"Compiling {what}", module.compile, *input_types)
