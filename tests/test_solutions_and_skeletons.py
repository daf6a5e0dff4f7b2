"""Every solution passes its check; every untouched skeleton fails it with a plain message.

The same runs prove that the sample reports on the docs pages are what the checker prints.
"""

import sys

import pytest

from checks import course, harness, samples
from tests.conftest import Run, run_checks, run_command

STEPS = list(course.complete())  # the steps and extensions (tests/test_course.py: what one lacks)


# The only checks a float32 run on the CPU may skip: those that need `--dtype bfloat16`.
FLOAT32_RUN_SKIPS = ("the bfloat16 model is checked with --dtype bfloat16, on the CPU",)


@pytest.mark.parametrize("step", STEPS)
def test_solution_passes(step):
    run = run_checks(harness.step_argument(step), "--solutions")
    assert run.code == 0, run.output
    assert f"{harness.step_name(step)} passes" in run.output
    assert "FAIL" not in run.output
    skipped = [line for line in run.output.splitlines() if line.lstrip().startswith("SKIP")]
    assert all(line.endswith(FLOAT32_RUN_SKIPS) for line in skipped), run.output
    assert_docs_sample_matches(run, step, solution=True)


@pytest.mark.parametrize("step", STEPS)
def test_untouched_skeleton_fails_plainly(step):
    """A chapter's skeleton among finished steps 1-11, as a learner meets it (samples does the
    same)."""
    with samples.learner_folder(step) as folder:
        run = run_checks(*samples.command(step, solution=False, folder=folder)[3:])
    run.assert_plain_failure(f"{harness.step_name(step)} is not done yet")
    assert_docs_sample_matches(run, step, solution=False, folder=folder)


def assert_docs_sample_matches(run: Run, step: int, solution: bool, folder=None) -> None:
    page_sample = samples.report_path(step, solution)
    assert page_sample.exists(), f"{page_sample} is missing: run python -m checks.samples"
    assert samples.comparable(page_sample.read_text()) == samples.comparable(
        samples.as_sample(run.stdout, folder)
    ), f"{page_sample} is not what the checker prints now: run python -m checks.samples"


def test_a_check_file_runs_under_plain_pytest_as_a_maintainer_debugs_it():
    """checks/conftest.py gives a plain pytest run what `python -m checks` sets up: the step
    folder (steps/ by default, --solutions) and the `record` fixture, whose failures pytest-check
    lists together."""
    check_file = "checks/test_step_01.py"
    plain = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", check_file]
    skeleton = run_command(plain)
    assert skeleton.code == 1 and "3 failed" in skeleton.output, skeleton.output
    assert "fixture 'record' not found" not in skeleton.output
    assert "GPT2Config is not a dataclass" in skeleton.output  # the check's own words
    solution = run_command([*plain, "--solutions"])
    assert solution.code == 0 and "3 passed" in solution.output, solution.output
