"""No test can hang the suite: each has a time limit, and a test past it fails with its stack."""

import subprocess
import sys

import pytest

from checks.harness import child_env
from tests.conftest import ROOT, TIME_LIMIT_SECONDS

SLEEPS_FOREVER = """
import time

import pytest


@pytest.mark.fast
@pytest.mark.timeout(2)
def test_sleeps_forever():
    while True:
        time.sleep(1)
"""


@pytest.mark.fast
def test_every_test_has_its_tiers_time_limit(request):
    assert request.node.get_closest_marker("timeout").args == (TIME_LIMIT_SECONDS["fast"],)


@pytest.mark.fast
def test_a_hung_test_fails_at_its_limit_with_its_stack(tmp_path):
    """The suite's own configuration (pyproject.toml, tests/conftest.py as a plugin) on a test
    that never ends: it is stopped at its limit, and the stack shows where it hung."""
    (tmp_path / "test_hang.py").write_text(SLEEPS_FOREVER)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path),
            "-c",
            str(ROOT / "pyproject.toml"),
            f"--rootdir={ROOT}",
            "-p",
            "tests.conftest",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # the 2 s limit, and pytest's start
        env=child_env(),
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "Timeout" in output and "test_hang.py" in output and "time.sleep(1)" in output, output
