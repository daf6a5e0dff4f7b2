"""pixi can't be installed on our machines, so run each pixi task's command line in the pip env."""

import shlex
import sys
import tomllib

import pytest

from tests.conftest import ROOT, run_command

TASKS = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]


def command(task: str, *extra: str) -> list[str]:
    words = shlex.split(TASKS[task])
    assert words[0] == "python", f"pixi task {task} should be a one-line python call"
    return [sys.executable, *words[1:], *extra]


def test_pins_match_pyproject():
    pixi = tomllib.loads((ROOT / "pixi.toml").read_text())["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(requirement.split("==") for requirement in project if "==" in requirement)
    assert pixi["modular"] == f"=={pins['max']}"
    assert pixi["pytorch"] == f"=={pins['torch']}"
    for name in ("transformers", "pytest-check", "mkdocs-material"):
        assert pixi[name] == f"=={pins[name]}", name


def test_step_tasks_are_the_checker():
    for step in range(1, 12):
        assert TASKS[f"s{step}"] == f"python -m checks {step}"


@pytest.mark.parametrize("step", [1, 4])
def test_step_task_runs_on_the_skeleton(step):
    run = run_command(command(f"s{step}"))
    run.assert_plain_failure(f"Step {step} is not done yet")


def test_check_all_runs():
    run = run_command(command("check-all"))
    run.assert_plain_failure("Next: step 1")


def test_test_task_collects_the_suite():
    run = run_command(command("test", "--collect-only", "-q", "tests/test_pixi_tasks.py"))
    assert run.code == 0, run.output
    assert "test_check_all_runs" in run.output


def test_docs_task_is_mkdocs():
    run = run_command(command("docs", "--help"))
    assert run.code == 0 and "serve" in run.output.lower(), run.output
