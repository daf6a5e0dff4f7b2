"""MAX in this process: its device and dtype defaults, its eager executor, its compile cache, and
the environment its children get."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Iterator

from checks import options


class NoDevice(Exception):
    """The device asked for is not on this machine."""


# MAX's defaults on a GPU machine are the GPU and bfloat16. The checks pin the CPU and float32 so
# they mean the same everywhere; `--device gpu` opts in to the accelerator (and its bfloat16), and
# `--dtype bfloat16` runs the checks in bfloat16 on either device.
@contextlib.contextmanager
def pinned_defaults() -> Iterator[None]:
    """MAX's default device and dtype are the run's options' while the block runs."""
    from max.driver import CPU, Accelerator, accelerator_count
    from max.experimental.tensor import default_device, default_dtype

    kind = options.current().device
    if kind == "gpu" and accelerator_count() == 0:
        raise NoDevice(
            "--device gpu: MAX sees no GPU on this machine. Run the checks without --device (they "
            "use the CPU), or see `python -m checks doctor`."
        )
    with default_device(Accelerator() if kind == "gpu" else CPU()), default_dtype(dtype()):
        yield


def device() -> Any:
    from max.experimental.tensor import defaults

    return defaults()[1].devices[0]


def dtype() -> Any:
    """The checks' float dtype as a MAX DType."""
    from max.dtype import DType

    return getattr(DType, options.current().dtype)


def low_precision() -> bool:
    return options.current().dtype != "float32"


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


def install_sigint_handler() -> None:
    """Python 3.11 + MAX eager ops run ~100x slower under the default SIGINT handler (see docs)."""

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _interrupt)


def prepare_max() -> None:
    """What every command that runs MAX code does first."""
    install_sigint_handler()
    interpret_eager_ops()
    forgotten = repair_kernel_cache()
    if forgotten:
        print(
            f"MAX's kernel cache listed {forgotten} compiled kernels whose code is gone, so every "
            "graph compiled them again; those entries are removed (MAX records them anew)."
        )


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


def max_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modular"


def max_cache_is_cold() -> bool:
    """Whether MAX has compiled nothing on this machine yet (its first run takes minutes)."""
    base = max_cache_dir()
    return not base.exists() or len(list(itertools.islice(base.rglob("*"), 20))) < 20


def max_cache_changed_since(moment: float) -> bool:
    """Whether MAX wrote to its on-disk cache after `moment` (time.time()): it compiled something."""
    for folder, _, files in os.walk(max_cache_dir()):
        for name in files:
            with contextlib.suppress(OSError):
                if os.stat(os.path.join(folder, name)).st_mtime > moment:
                    return True
    return False


def kernel_cache_entries() -> list[Path]:
    """MAX's index of compiled kernels (`.mogg_cache`), for the pinned MAX version only."""
    from importlib.metadata import version

    return list((max_cache_dir() / ".mogg_cache").glob(f"*/{version('max')}/*"))


# Another MAX process may be writing the cache right now (`pixi run warm` in a second terminal, a
# server starting): an index entry newer than this may be one whose kernel is still being written,
# or was written after the list of kernels below was read. Only older entries are judged; a
# compile takes minutes at most.
SETTLED_S = 15 * 60


def stale_kernel_cache_entries(settled_s: float = SETTLED_S) -> list[Path]:
    """The index entries, older than `settled_s`, whose compiled kernel is gone from
    `.mojo_cache/mojo/transform`."""
    objects: set[str] = set()
    for folder in (max_cache_dir() / ".mojo_cache" / "mojo" / "transform").glob("*"):
        with contextlib.suppress(OSError):
            objects.update(os.listdir(folder))
    settled = time.time() - settled_s
    stale = []
    for entry in kernel_cache_entries():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime > settled:
                continue
            key = entry.read_bytes()[:32]  # the object's name, base64-encoded without padding
            if base64.b64encode(key).decode().rstrip("=") not in objects:
                stale.append(entry)
    return stale


def repair_kernel_cache() -> int:
    """Forget MAX's kernel-cache entries whose compiled kernel is gone; returns how many.

    MAX 26.7 keeps a compiled kernel in two places: `.mogg_cache` maps the kernel to the name of
    an object in `.mojo_cache/mojo/transform` that holds its machine code. When that object is
    gone (a cache folder deleted to free disk space, a copied or partly restored cache), MAX
    compiles the kernel again in every graph and never rewrites the entry, so every edit costs a
    cold compile. Measured here: the GPT-2 graph after a one-line edit compiled in 72 s with 682
    such entries and in 56 s once they were removed (MAX then records the kernels it compiles).
    """
    stale = stale_kernel_cache_entries()
    for entry in stale:
        entry.unlink(missing_ok=True)
    if stale:  # graphs whose kernels are gone may be too: the checks compile them again
        shutil.rmtree(passed_checks_dir(), ignore_errors=True)
    return len(stale)


def passed_checks_dir() -> Path:
    """Where the checker records the compiled checks that passed (see report.PassedBefore): in
    MAX's cache folder, so that deleting the cache deletes the record of what it held."""
    return max_cache_dir() / "course-passed-compiled"


def launched_by_pixi() -> bool:
    """Whether `pixi run` (or `pixi shell`) started us: messages then name pixi tasks, else the
    `python ...` command each task runs, which works in any environment."""
    return "PIXI_PROJECT_ROOT" in os.environ
