"""The code passes ruff's lint and the grader and tests its formatter (pyproject.toml's settings)."""

import subprocess
import sys

import pytest

from checks.harness import child_env
from tests.conftest import ROOT

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert run.returncode == 0, run.stdout + run.stderr
