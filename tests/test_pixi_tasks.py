"""pixi can't be installed on our machines, so run each pixi task's command line in the pip env."""

import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

import pytest

from checks.harness import child_env
from tests.conftest import ROOT, run_command

TASKS = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]


def command(task: str, *extra: str) -> list[str]:
    words = shlex.split(TASKS[task])
    assert words[0] == "python", f"pixi task {task} should be a one-line python call"
    return [sys.executable, *words[1:], *extra]


@pytest.mark.fast
def test_pins_match_pyproject():
    pixi = tomllib.loads((ROOT / "pixi.toml").read_text())["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(requirement.split("==") for requirement in project if "==" in requirement)
    assert pixi["modular"] == f"=={pins['max[serve]']}"  # conda's modular includes max serve
    assert pixi["pytorch"] == f"=={pins['torch']}"
    for name in (
        "transformers",
        "openai",
        "pytest-check",
        "pytest-timeout",
        "mkdocs-material",
        "ruff",
        "watchdog",
        "matplotlib",
    ):
        assert pixi[name] == f"=={pins[name]}", name
    docs = tomllib.loads((ROOT / "pixi.toml").read_text())["feature"]["docs"]["pypi-dependencies"]
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [f"{name}{pin}" for name, pin in docs.items()] == extra["docs"]


@pytest.mark.fast
def test_pixi_points_max_at_condas_mojo_kernel_packages():
    """As Modular's GPT-2 book does: max serve with a custom architecture and Mojo custom ops
    need MAX's Mojo packages, which conda's modular keeps under $CONDA_PREFIX/lib/mojo."""
    env = tomllib.loads((ROOT / "pixi.toml").read_text())["activation"]["env"]
    assert env["MODULAR_MOJO_MAX_IMPORT_PATH"] == "$CONDA_PREFIX/lib/mojo"


@pytest.mark.fast
def test_tasks_beside_the_steps_run_what_the_pages_say():
    """The step tasks are held to course.toml by tests/test_course.py; these are the others."""
    assert TASKS["serve"] == "python steps/gpt2_serve.py"
    assert TASKS["serve-reference"] == "python solutions/gpt2_serve.py"
    assert TASKS["watch"] == "python -m checks watch"


def test_check_all_runs():
    run = run_command(command("check-all"))
    run.assert_plain_failure("Next: step 1")


def test_docs_task_serves_the_site():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        command("docs", "--dev-addr", f"127.0.0.1:{port}"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
    )
    try:
        page = None
        for _ in range(120):  # the first build takes a few seconds
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        assert page is not None, (
            f"pixi run docs served nothing:\n{server.stdout.read() if server.poll() is not None else ''}"
        )
        assert b"Build GPT-2 with MAX" in page
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_tool_tasks_run(tmp_path):
    # doctor's command line runs in tests/test_tools.py, the step tasks' in
    # tests/test_solutions_and_skeletons.py (test_course.py holds them to course.toml).
    hint = run_command(command("hint", "3"), stdin="")
    assert hint.code == 0 and "1/4" in hint.output, hint.output
    (tmp_path / "step_03.py").write_text("# my attempt\n")
    reset = run_command(command("reset", "3", "--dir", str(tmp_path), "--yes"))
    assert reset.code == 0 and "skeleton again" in reset.output, reset.output
    progress = run_command(command("progress", "--dir", str(tmp_path)))
    progress.assert_plain_failure("step  3  not started")
