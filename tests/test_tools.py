"""progress and doctor run as a learner runs them, and the hints' and usage errors' wording.

reset, hint and progress on stand-ins run in-process in tests/test_cli.py."""

import re

import pytest

from checks import course, harness, tools
from tests.conftest import ROOT, run_checks


def status_of(output: str, step: int) -> str:
    match = re.search(
        rf"^  step {harness.step_argument(step):>2}  (passed|failing|not started) ", output, re.M
    )
    assert match, f"no line for step {step} in:\n{output}"
    return match.group(1)


@pytest.mark.fast
def test_skeleton_snapshot_is_steps():
    complete = course.complete()  # an entry that lacks its copy: tests/test_course.py names it
    assert tools.skeletons() == {
        step: (ROOT / "steps" / f"{harness.module_name(step)}.py").read_text() for step in complete
    }, "run python -m checks.samples"
    for step in complete:
        for name in tools.step_files(step):
            snapshot = (tools.SKELETONS / name).read_text()
            assert snapshot == (ROOT / "steps" / name).read_text(), "run python -m checks.samples"


def test_progress_when_every_step_passes():
    run = run_checks("progress", "--solutions", "--eager-only")
    assert run.code == 0, run.output
    assert all(status_of(run.output, step) == "passed" for step in tools.ALL_STEPS), run.output
    steps = len(course.STEPS)
    assert f"{steps} of {steps} steps pass. Every step and extension passes" in run.output


@pytest.mark.fast
@pytest.mark.parametrize("step", course.complete())
def test_hints_grow_in_detail_and_end_at_the_api(step):
    hints = tools.hints(step)
    assert len(hints) >= 3
    solution = (ROOT / "solutions" / f"{harness.module_name(step)}.py").read_text()
    # calls such as `F.softmax(` or dataclass fields such as `n_embd: int = 768`
    code = set(re.findall(r"[A-Za-z_][\w.]*\(|\w+: [\w |]+ = \S+", hints[-1]))
    assert any(piece.rstrip(",") in solution for piece in code), (
        f"step {step}'s last hint names nothing its solution uses"
    )
    # More detail = more code: calls, assignments, shapes. The last hint is the most concrete.
    detail = [len(re.findall(r"[\w.]+\(|[\w\]]+ = |\[[\w, ]+\]", hint)) for hint in hints]
    assert detail[-1] == max(detail) and detail[-1] > detail[0], (
        f"step {step}'s hints do not grow in detail: {detail} pieces of code"
    )


def test_doctor_reports_each_part_of_the_setup():
    run = run_checks("doctor")
    assert run.code == 0, run.output
    for fragment in (
        "Python 3.",
        "max 26.7.0",
        "torch 2.13.0",
        "transformers ",
        "MAX kernel cache",
        "MAX would use",
        "GPT-2 weights",
    ):
        assert fragment in run.output, f"{fragment!r} not in:\n{run.output}"


def test_device_gpu():
    from max.driver import accelerator_count

    run = run_checks("4", "--solutions", "--device", "gpu")
    if accelerator_count() == 0:
        run.assert_plain_failure("MAX sees no GPU on this machine")
    else:
        assert run.code == 0, run.output


LISTED = course.steps_in_words()  # "1-11, kv, serve or mojo": held by tests/test_course.py
PAST_THE_LAST = str(len(course.STEPS) + 1)  # "12"


@pytest.mark.fast
@pytest.mark.parametrize(
    "args, message",
    [
        (["hint"], f"hint needs a step {LISTED}"),
        (["reset", PAST_THE_LAST], f"reset needs a step {LISTED}, not '{PAST_THE_LAST}'"),
        ([PAST_THE_LAST], f"the step must be {LISTED}, not '{PAST_THE_LAST}'"),
        (["warm", "x"], f"warm takes a step ({LISTED}) or nothing"),
        (["progress", "3"], "progress takes no step number"),
        (["frobnicate"], f"must be a step ({LISTED}) or one of all, progress"),
    ],
)
def test_usage_errors_are_plain(args, message, capsys):
    from checks.__main__ import parse_args

    with pytest.raises(SystemExit) as exit:
        parse_args(args)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and message in error and "Traceback" not in error, error


@pytest.mark.fast
def test_warm_without_the_solutions_says_so_in_one_sentence_and_fails(
    tmp_path, monkeypatch, capsys
):
    """A copy of the course without solutions/: warm can't compile the checks' graphs."""
    import checks.__main__ as cli
    from checks import options

    monkeypatch.setattr(cli, "ROOT", tmp_path)  # where warm looks for solutions/
    previous = options.current()
    try:
        assert cli.main(["warm"]) == 1
    finally:
        harness.use_steps_dir(previous.steps_dir)
        options.use(previous)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Nothing was warmed"), lines
    assert "solutions/" in lines[0] and "no such folder" in lines[0], lines
