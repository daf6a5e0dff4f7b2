"""A pytest plugin that turns a step's test run into the short, plain report a learner reads."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import pytest

from checks import compare
from checks.harness import LearnerError


@dataclass
class Result:
    title: str
    passed: bool
    skipped: bool = False
    messages: list[str] = field(default_factory=list)
    traceback: str = ""


def title_of(item: pytest.Item) -> str:
    doc = (getattr(item, "obj", None).__doc__ or item.name).strip().splitlines()[0].rstrip(".")
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        doc += f" ({callspec.id})"
    return doc


class ReportPlugin:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        compare.messages.clear()

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
            messages = list(compare.messages)
            text = ""
            if call.excinfo is not None:
                error = call.excinfo.value
                if isinstance(error, LearnerError):
                    messages.append(str(error))
                elif not _is_check_failure(error):
                    messages.append(
                        f"The checker itself failed ({type(error).__name__}: {error}). This is a "
                        "bug in checks/, not in your code: run again with -v for the traceback."
                    )
                    text = "".join(traceback.format_exception(error))
            self.results.append(Result(title_of(item), report.passed, False, messages, text))


def _is_check_failure(error: BaseException) -> bool:
    return type(error).__name__ in {"AssertionError", "CheckFailure"}
