"""MAX in this process: device and dtype defaults, the eager executor, the children's environment."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

from checks import options
from checks.max_cache import repair_kernel_cache, repair_note


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


def install_stop_handlers() -> None:
    """Ctrl+C, SIGTERM (kill, a process manager) and SIGHUP (the terminal closed) each raise
    KeyboardInterrupt, so `finally` blocks run: a server the bench started stops with it (it runs
    in a session of its own, which no signal to the bench reaches). Python 3.11 + MAX eager ops
    also run ~100x slower under the default SIGINT handler (see docs).

    A signal this process was started with ignored stays ignored: a shell starts a background
    job (`cmd &`) with Ctrl+C ignored, and `nohup` ignores SIGHUP; that is the Unix convention,
    and SIGTERM still stops the process."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)
    stop_even_inside_native_calls()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long a stop signal may wait for the main thread before the process ends without it.
STOP_GRACE_S = 1.5
_stop_handled_at = [float("-inf")]  # when the handler last ran (time.monotonic())
_stop_watcher: list[threading.Thread] = []


def _interrupt(signum: int, frame: Any) -> None:
    _stop_handled_at[0] = time.monotonic()
    raise KeyboardInterrupt


def stop_even_inside_native_calls() -> None:
    """Python runs a signal's handler between two bytecodes of the main thread, so a stop signal
    waits out a native call: a MAX graph compile, a minute on 2 cores. The C-level handler writes
    the signal's number to the wakeup fd at once; a thread reads it and, if the handler has not run
    within STOP_GRACE_S, says "Stopped." and ends the process itself (MAX compiles without the
    GIL, so the thread runs meanwhile). Signals handled by others (the learner's time limit's
    SIGALRM, a test's own handlers) are left to them."""
    if _stop_watcher:
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write)
    if previous != -1:  # someone else's (an event loop's): leave it to them
        signal.set_wakeup_fd(previous)
        return

    def watch() -> None:
        while True:
            arrived = set(os.read(read, 64)) & set(STOP_SIGNALS)
            if not any(signal.getsignal(signum) is _interrupt for signum in arrived):
                continue
            # Handled if the handler ran just before the byte was read, or runs in time: Python
            # may run it before this thread reads, and runs it once for signals that come fast.
            read_at = time.monotonic()
            while _stop_handled_at[0] < read_at - STOP_GRACE_S:
                if time.monotonic() > read_at + STOP_GRACE_S:
                    print("\nStopped.", file=sys.__stdout__, flush=True)
                    os._exit(130)
                time.sleep(0.05)

    _stop_watcher.append(threading.Thread(target=watch, name="stop-signals", daemon=True))
    _stop_watcher[0].start()


def prepare_max() -> None:
    """What every command that runs MAX code does first."""
    install_stop_handlers()
    quiet_max_logs()
    interpret_eager_ops()
    forgotten = repair_kernel_cache()
    if forgotten:  # a note on the machine, beside the command's own answer on stdout
        print(repair_note(forgotten), file=sys.stderr)


def quiet_max_logs() -> None:
    """Keep MAX's warnings off the course's output. After its first on-the-fly compile of an
    eager op MAX advises `max warm-interpreter-cache`, which did not finish in 10 minutes on 2
    cores (`python -m checks warm` is the course's warm-up), and notes each such compile."""
    logging.getLogger("max").setLevel(logging.ERROR)


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


def launched_by_pixi() -> bool:
    """Whether `pixi run` (or `pixi shell`) started us: messages then name pixi tasks, else the
    `python ...` command each task runs, which works in any environment."""
    return "PIXI_PROJECT_ROOT" in os.environ
