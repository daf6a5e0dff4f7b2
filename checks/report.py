"""A pytest plugin that turns a step's test run into the short, plain report a learner reads."""

from __future__ import annotations

import contextlib
import hashlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from checks import harness, options
from checks.harness import CompileFailed, LearnerError
from checks.max_cache import passed_checks_dir
from checks.recorder import Recorder
from checks.verdicts import checker_digest, keep_newest


# A check after a failed compile would run the same code (eagerly, minutes in bfloat16 on a CPU)
# for a verdict the compile error gave already.
AFTER_COMPILE_FAILURE = "not run: your code did not compile (above); fix that first"

# Why a check is not run after a failure above it: the one wording, and its reasons in brackets.
AFTER_FAILURE = "not run, because a check above failed: fix that first"

# Compiling takes 10-60 s and can only repeat what an eager failure already said.
COMPILED_AFTER_EAGER_FAILURE = (
    f"{AFTER_FAILURE} (the compiled check would only compile your code to say the same)"
)


def skipped_after_failure(item: pytest.Item) -> str:
    """Why a compiled check is not run after a failure above it. A check marked
    `compiled(runs_on="...")` compiles nothing of its own: it runs on what another check compiles."""
    runs_on = item.get_closest_marker("compiled").kwargs.get("runs_on")
    if runs_on is None:
        return COMPILED_AFTER_EAGER_FAILURE
    return f"{AFTER_FAILURE} (it runs on {runs_on})"


@dataclass
class Result:
    title: str
    passed: bool
    skipped: bool = False
    messages: list[str] = field(default_factory=list)
    traceback: str = ""
    notes: list[str] = field(default_factory=list)
    compile_failed: bool = False  # MAX could not compile the learner's code: the cause is named


def title_of(item: pytest.Item) -> str:
    doc = (getattr(item, "obj", None).__doc__ or item.name).strip().splitlines()[0].rstrip(".")
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        doc += f" ({callspec.id})"
    return doc


class PassedBefore:
    """The compiled checks that passed, each for the exact code it ran: the learner's step files,
    the checker, MAX's version, the device and dtype. The same code passes again without
    compiling (a cached graph still takes seconds to load); any edit compiles anew. The record
    lives in MAX's cache folder and goes with it; `warm`, whose job is to compile, ignores it."""

    def __init__(self) -> None:
        self.folder = passed_checks_dir()
        digest = hashlib.sha256(checker_digest().encode())
        folder = harness.steps_dir()
        for path in sorted([*folder.glob("*.py"), *folder.glob("kernels/*.mojo")]):  # all steps
            try:
                content = path.read_bytes()
            except OSError:  # a link copied without its target (`cp -r solutions`)
                content = b"<unreadable>"
            digest.update(path.name.encode() + content)
        self.code = digest.hexdigest()

    def path(self, item: pytest.Item) -> Path:
        return self.folder / f"{self.check_prefix(item)}-{self.code[:24]}"

    @staticmethod
    def check_prefix(item: pytest.Item) -> str:
        """The part of a record's name that names its check: each check keeps its newest few."""
        return hashlib.sha256(item.nodeid.encode()).hexdigest()[:16]

    def __contains__(self, item: pytest.Item) -> bool:
        return self.path(item).exists()

    def add(self, item: pytest.Item) -> None:
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path(item)
            path.write_text(item.nodeid + "\n")
            keep_newest(self.folder, f"{self.check_prefix(item)}-*", KEEP_PER_CHECK, written=path)


KEEP_PER_CHECK = 4  # records of passed code per compiled check: a few edits back and forth

EAGER_ONLY = "compiled checks skipped (--eager-only)"


def may_compile(request: pytest.FixtureRequest, compiled: Any) -> bool:
    """Whether a check that can run either model may use the compiled one, which `compiled` (a
    functools.cache'd builder) returns: not with --eager-only; after a failure above only if it is
    built already (the eager model says the same without the compile, but runs slower than a
    compiled one: 43 s against 13 s for the serving check)."""
    built = compiled.cache_info().currsize > 0
    return not options.current().eager_only and (built or not earlier_failure(request))


def is_compiled(item: pytest.Item) -> bool:
    """A check marked `@pytest.mark.compiled` compiles a graph: it is skipped after a failure
    above it, and skipped as passed for code that passed it before."""
    return item.get_closest_marker("compiled") is not None


# Whether a check before this one failed: a check may then run eagerly what it would compile.
EARLIER_FAILURE = pytest.StashKey[bool]()


def earlier_failure(request: pytest.FixtureRequest) -> bool:
    return request.config.stash.get(EARLIER_FAILURE, False)


class ReportPlugin:
    def __init__(self, run: options.Options, trust_passed: bool = True) -> None:
        self.run = run  # the run's options: its dtype and whether it compiles
        self.results: list[Result] = []
        self.passed_before = PassedBefore()
        self.trust_passed = trust_passed  # False: compile even what passed before (warm)
        # the running check's, made anew before each check, with the run's dtype for its tolerances
        self.recorder = Recorder(run.dtype)

    @pytest.fixture
    def record(self) -> Recorder:
        """The running check's Recorder: what it found goes there, and from there to the report."""
        return self.recorder

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "compiled: the check compiles a MAX graph")

    @pytest.hookimpl(tryfirst=True)  # before pytest sets up the fixtures, `record` among them
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.recorder = Recorder(self.run.dtype)
        failed = any(not r.passed for r in self.results)
        item.config.stash[EARLIER_FAILURE] = failed
        if any(r.compile_failed for r in self.results):
            pytest.skip(AFTER_COMPILE_FAILURE)
        if is_compiled(item) and self.run.eager_only:
            pytest.skip(EAGER_ONLY)
        if is_compiled(item) and failed:
            pytest.skip(skipped_after_failure(item))

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """True (the call is done, and passed) for a compiled check this exact code passed before."""
        if (
            is_compiled(pyfuncitem)
            and self.trust_passed
            and not self.run.eager_only
            and pyfuncitem in self.passed_before
        ):
            return True
        return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if report.when == "setup" and report.passed:
            return
        if report.when == "teardown" and report.passed:
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            reason = reason.removeprefix("Skipped: ")
            self.results.append(Result(title_of(item), True, True, [reason]))
            return
        if report.when == "call" or report.failed:
            messages = list(self.recorder.failures)
            text = ""
            compile_failed = False
            if call.excinfo is not None:
                error = call.excinfo.value
                if isinstance(error, LearnerError):
                    messages.append(str(error))
                    compile_failed = isinstance(error, CompileFailed)
                elif not _is_check_failure(error):
                    messages.append(
                        f"The checker itself failed ({type(error).__name__}: {error}). This is a "
                        "bug in checks/, not in your code: run again with -v for the traceback."
                    )
                    text = "".join(traceback.format_exception(error))
            self.results.append(
                Result(
                    title_of(item),
                    report.passed,
                    False,
                    messages,
                    text,
                    list(self.recorder.notes),
                    compile_failed,
                )
            )
            if report.when == "call" and report.passed and is_compiled(item) and not messages:
                self.passed_before.add(item)


def _is_check_failure(error: BaseException) -> bool:
    return type(error).__name__ in {"AssertionError", "CheckFailure"}
