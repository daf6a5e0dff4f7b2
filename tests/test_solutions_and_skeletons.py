"""Every solution passes its check; every untouched skeleton fails it with a plain message."""

import pytest

from tests.conftest import ROOT, run_checks

STEPS = sorted(int(p.stem[-2:]) for p in (ROOT / "checks").glob("test_step_*.py"))


def test_every_step_has_a_skeleton_a_solution_and_a_check():
    for step in STEPS:
        assert (ROOT / "steps" / f"step_{step:02d}.py").exists()
        assert (ROOT / "solutions" / f"step_{step:02d}.py").exists()


@pytest.mark.parametrize("step", STEPS)
def test_solution_passes(step):
    run = run_checks(str(step), "--solutions")
    assert run.code == 0, run.output
    assert f"Step {step} passes" in run.output
    assert "FAIL" not in run.output and "SKIP" not in run.output


@pytest.mark.parametrize("step", STEPS)
def test_untouched_skeleton_fails_plainly(step):
    run = run_checks(str(step))
    run.assert_plain_failure(f"Step {step} is not done yet")
