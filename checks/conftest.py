"""A check file run by plain pytest, as a maintainer debugs one: `pytest checks/test_step_04.py`.

`python -m checks` sets up MAX, the step folder and the report itself; this file does the same
when pytest runs a check file directly (with `--solutions` or `--steps-dir DIR`, `--eager-only`,
and any pytest flag: `-x`, `--pdb`, `-k`), so that the `record` fixture exists and pytest-check
lists every failure.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from checks import harness, options
from checks.report import ReportPlugin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("checks", "the course's checks, run with plain pytest")
    group.addoption("--solutions", action="store_true", help="check solutions/ instead of steps/")
    group.addoption("--steps-dir", type=Path, help="check the step files in this folder")
    group.addoption("--eager-only", action="store_true", help="skip the compiled-graph checks")


def pytest_configure(config: pytest.Config) -> None:
    if any(isinstance(plugin, ReportPlugin) for plugin in config.pluginmanager.get_plugins()):
        return  # `python -m checks` runs this check and has set everything up
    folder = config.getoption("--steps-dir") or options.ROOT / (
        "solutions" if config.getoption("--solutions") else "steps"
    )
    options.use(options.current().but(eager_only=config.getoption("--eager-only")))
    harness.use_steps_dir(folder)  # sets the options' step folder too
    harness.prepare_max()  # as `python -m checks` does, MAX's log noise silenced
    defaults = contextlib.ExitStack()
    defaults.enter_context(harness.pinned_defaults())
    config.add_cleanup(defaults.close)
    # Every check runs, also a compiled one this code passed before: a breakpoint in it is met.
    config.pluginmanager.register(
        ReportPlugin(options.current(), trust_passed=False), "checks-report"
    )
