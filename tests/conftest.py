"""Helpers for the repository's own tests: run the checker as a learner would, on copies of code."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from unittest import mock

import pytest

from checks.harness import child_env
from checks.max_cache import compiled_file_counts

ROOT = Path(__file__).resolve().parent.parent


# Each tier's time limit per test (pytest-timeout): a test past it fails with every thread's
# stack, and the run stops there, instead of a hung test holding CI until it is killed. The MAX
# tier's limit covers a cold compile of a whole model on 2 cores; longer tests mark their own.
TIME_LIMIT_SECONDS = {"fast": 60, "browser": 300, "max": 1200}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Three tiers: `fast` (pure Python, marked by hand), `browser` (chromium, marked by hand),
    and `max` (everything else: it runs MAX code). `pytest -m max` runs only the middle tier.
    Each test gets its tier's time limit unless it marks its own."""
    for item in items:
        if not item.get_closest_marker("fast") and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.max)
        if not item.get_closest_marker("timeout"):
            tier = next(t for t in TIME_LIMIT_SECONDS if item.get_closest_marker(t))
            item.add_marker(pytest.mark.timeout(TIME_LIMIT_SECONDS[tier]))


# The compile ledger: which tests added graphs or kernels to MAX's cache, and how long they took.
# A cold run (an empty XDG_CACHE_HOME, as in a fresh CI machine) spends most of its time in these
# tests; the summary says where, so that a new test that compiles a new graph is seen.
COMPILES: list[tuple[str, int, int, float]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    graphs, kernels = compiled_file_counts()
    start = time.monotonic()
    yield
    now_graphs, now_kernels = compiled_file_counts()
    if now_graphs > graphs or now_kernels > kernels:  # MAX also prunes its kernel files
        elapsed = time.monotonic() - start
        COMPILES.append((item.nodeid, now_graphs - graphs, now_kernels - kernels, elapsed))


def pytest_terminal_summary(terminalreporter) -> None:
    if not COMPILES:
        return
    graphs = sum(entry[1] for entry in COMPILES)
    kernels = sum(entry[2] for entry in COMPILES)
    seconds = sum(entry[3] for entry in COMPILES)
    terminalreporter.section("MAX compiles")
    terminalreporter.write_line(
        f"{len(COMPILES)} tests added {graphs} graphs and {kernels} kernel files to MAX's cache, "
        f"in {seconds:.0f} s of tests:"
    )
    for nodeid, new_graphs, new_kernels, elapsed in COMPILES:
        terminalreporter.write_line(
            f"{elapsed:7.1f} s  {new_graphs:3d} graphs {new_kernels:4d} kernel files  {nodeid}"
        )


@dataclass
class Run:
    code: int
    output: str  # stdout and stderr
    stdout: str = ""

    def assert_plain_failure(self, *fragments: str) -> None:
        """Exit 1, no traceback, and every fragment in the output."""
        assert self.code == 1, self.output
        assert "Traceback" not in self.output, self.output
        assert "checker itself failed" not in self.output, self.output
        for fragment in fragments:
            assert fragment in self.output, f"{fragment!r} not in:\n{self.output}"


def run_command(args: list[str], timeout: float = 900, stdin: str | None = None, **env: str) -> Run:
    result = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=child_env(**env),
    )
    return Run(result.returncode, result.stdout + result.stderr, result.stdout)


def run_checks(*args: str, timeout: float = 900, stdin: str | None = None, **env: str) -> Run:
    return run_command([sys.executable, "-m", "checks", *args], timeout=timeout, stdin=stdin, **env)


def start_checks(*args: str, **env: str) -> subprocess.Popen:
    """`python -m checks ARGS` as a child the test reads and may stop with a signal: its output
    piped as text, its stop signals as from a terminal, however this test run was started."""
    return subprocess.Popen(
        [sys.executable, "-m", "checks", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(**env),
        preexec_fn=signals_as_from_a_terminal,
    )


def run_checks_here(*args: str) -> Run:
    """`python -m checks ARGS` run in this process: its exit status and what it printed, the
    waiting beats included. No new interpreter imports torch, transformers and MAX again (5-8 s a
    run); each run imports the check files afresh and forgets what grader modules built from the
    learner's code (`checks.learner.learner_cache`, cleared by use_steps_dir), so nothing an
    earlier run cached (a compiled graph of other learner code) carries over. tests/test_solutions_and_skeletons.py runs the
    real command. A run past its test's time limit ends the test session with every thread's
    traceback (pytest-timeout); a stop signal (Ctrl+C, CI's SIGTERM) that the checker turned into its own "Stopped." stops the
    tests too."""
    from checks import __main__ as checker
    from checks import options, runtime
    from checks.waiting import waiting

    stopped: list[int] = []

    def install_stop_handlers() -> None:  # the checker's, remembering that a signal came
        def interrupt(signum: int, frame: object) -> None:
            stopped.append(signum)
            raise KeyboardInterrupt

        for signum in STOP_SIGNALS:
            signal.signal(signum, interrupt)

    for name in [name for name in sys.modules if name.startswith("checks.test_")]:
        del sys.modules[name]
    previous, path = options.current(), list(sys.path)
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            stack.enter_context(mock.patch.object(waiting, "speak", print))
            stack.enter_context(
                mock.patch.object(runtime, "install_stop_handlers", install_stop_handlers)
            )
            code = checker.main(list(args))
    finally:
        options.use(previous)
        sys.path[:] = path  # the step folder the run put first
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if stopped:
        raise KeyboardInterrupt
    return Run(code, out.getvalue() + err.getvalue(), out.getvalue())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signals_as_from_a_terminal() -> None:
    """Each stop signal's default action, as in a program started from a terminal. A test that
    sends one must not depend on how the test run was started: a background job (`nohup ... &`,
    a scheduler) inherits Ctrl+C and SIGHUP ignored, and would ignore what the test sends. Also a
    `preexec_fn`, for a child the test stops with a signal."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own: KeyboardInterrupt


@pytest.fixture
def terminal_signals() -> Iterator[None]:
    """The stop signals as from a terminal while the test runs; the run's own restored after."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signals_as_from_a_terminal()
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def copy_solutions(tmp_path: Path) -> Path:
    folder = tmp_path / "learner"
    shutil.copytree(ROOT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def mutate(folder: Path, step: int | str, replacements: list[tuple[str, str]]) -> None:
    """Apply exact text replacements to `step_NN.py` (or a named module, such as
    "ext_kv_cache", or file, such as "kernels/gemv.mojo"); each must match, so a test can't go
    stale."""
    if isinstance(step, str):  # a module ("ext_kv_cache") or another file ("kernels/gemv.mojo")
        path = folder / (step if "." in step else f"{step}.py")
    else:
        path = folder / f"step_{step:02d}.py"
    text = path.read_text()
    for old, new in replacements:
        assert old in text, f"{old!r} is no longer in solutions/{path.name}: update the test"
        text = text.replace(old, new)
    path.write_text(text)


def run_slip(folder: Path, step: int, replacements: list[tuple[str, str]], *flags: str) -> Run:
    """Make a slip in a copy of the solutions and run its step's check as a learner does: it must
    fail plainly, saying the step is not done yet. The run, for what else it must say."""
    from checks import harness

    mutate(folder, harness.module_name(step), replacements)
    run = run_checks_here(harness.step_argument(step), "--dir", str(folder), *flags)
    run.assert_plain_failure(f"{harness.step_name(step)} is not done yet")
    return run


@pytest.fixture
def learner_copy(tmp_path: Path) -> Path:
    return copy_solutions(tmp_path)
