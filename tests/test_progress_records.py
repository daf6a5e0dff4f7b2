"""`progress` answers from the verdicts the checks keep, without running (or importing) MAX, and
runs a step's checks again only when its code changed. In-process, with stand-in checks."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from checks import course, harness, tools, verdicts
from checks.report import Result
from tests.conftest import ROOT

pytestmark = pytest.mark.fast


@pytest.fixture
def learner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "steps"
    shutil.copytree(ROOT / "steps", folder, ignore=shutil.ignore_patterns("__pycache__"))
    for step in (1, 2):
        shutil.copy(ROOT / "solutions" / f"step_{step:02d}.py", folder)
    monkeypatch.setattr(verdicts, "FOLDER", tmp_path / "verdicts")
    previous = harness.steps_dir()
    harness.use_steps_dir(folder)
    yield folder
    harness.use_steps_dir(previous)
    for name in ("step_01", "step_02"):
        sys.modules.pop(name, None)


def no_check(step: int) -> list:
    raise AssertionError(f"progress ran step {step}'s check although its verdict is recorded")


def test_recorded_verdicts_answer_without_running_a_check(learner, capsys):
    verdicts.record(1, True, "", eager_only=False)
    verdicts.record(2, False, "MLP output (eager): largest difference 0.1\n  Hint: exact GELU")
    assert tools.progress(no_check, prepare=lambda: no_check(0)) is False
    output = capsys.readouterr().out
    assert "step  1  passed       the GPT-2 configuration (GPT2Config)  [checked at" in output
    assert "step  2  failing" in output and "Hint: exact GELU" in output
    assert "step  3  not started" in output
    assert "the verdict of your last check of the same code" in output
    assert f"1 of {len(course.STEPS)} steps pass. Next: step 2" in output


def test_an_edited_step_is_checked_again_and_its_verdict_kept(learner, capsys):
    verdicts.record(1, True, "", eager_only=False)
    verdicts.record(2, True, "", eager_only=False)
    path = learner / "step_01.py"
    path.write_text(path.read_text() + "\n# edited\n")
    ran = []

    def check(step: int) -> list:
        ran.append(step)
        return (
            [Result("a check", False, messages=["n_embd is 512"])]
            if step == 1
            else [Result("a check", True)]
        )

    prepared = []
    tools.progress(check, prepare=lambda: prepared.append(True))
    output = capsys.readouterr().out
    assert 1 in ran and prepared == [True], (ran, prepared)
    assert "step  1  failing" in output and "[checked now, eager checks only]" in output
    assert "n_embd is 512" in output
    assert verdicts.recorded(1) == verdicts.Verdict(
        False, "n_embd is 512", True, verdicts.recorded(1).when
    )


def test_a_verdict_is_kept_per_code_and_remembers_the_steps_it_imports(learner, capsys):
    verdicts.record(4, True, "", eager_only=False)
    assert verdicts.recorded(4).passed and verdicts.recorded(4).changed_uses() == []
    path = learner / "step_03.py"  # step 4 imports steps 1 and 3
    path.write_text(path.read_text() + "\n# edited\n")
    assert verdicts.recorded(4).changed_uses() == [3]
    path.write_text(path.read_text().removesuffix("\n# edited\n"))
    assert verdicts.recorded(4).changed_uses() == []
    path = learner / "step_04.py"
    path.write_text(path.read_text() + "\n# edited\n")
    assert verdicts.recorded(4) is None


def test_a_later_step_is_not_checked_again_for_an_edit_of_a_step_it_imports(learner, capsys):
    for step in (1, 2):
        verdicts.record(step, True, "", eager_only=False)
    path = learner / "step_01.py"  # step 2 imports step 1
    path.write_text(path.read_text() + "\n# edited\n")
    ran = []
    tools.progress(lambda step: ran.append(step) or [Result("a check", True)], prepare=list)
    output = capsys.readouterr().out
    assert ran == [1], ran
    assert "step  2  passed" in output and "before you changed step 1]" in output


def test_verdicts_are_bounded_per_step_the_oldest_removed_first(learner):
    verdicts.record(2, True, "", eager_only=False)  # another step's verdict stays
    path = learner / "step_01.py"
    original = path.read_text()
    for edit in range(verdicts.KEEP_PER_STEP + 3):
        path.write_text(f"{original}\n# edit {edit}\n")
        verdicts.record(1, edit % 2 == 0, f"edit {edit}", eager_only=False)
    kept = sorted(verdicts.FOLDER.glob("1-*.json"))
    assert len(kept) == verdicts.KEEP_PER_STEP, kept
    assert verdicts.recorded(1).detail == f"edit {verdicts.KEEP_PER_STEP + 2}"  # the newest
    path.write_text(f"{original}\n# edit 0\n")  # the oldest edit's verdict went first
    assert verdicts.recorded(1) is None
    path.write_text(f"{original}\n# edit 3\n")
    assert verdicts.recorded(1).detail == "edit 3"
    assert verdicts.recorded(2).passed


def test_keep_newest_keeps_the_file_just_written_even_on_a_coarse_clock(tmp_path):
    for name in "abcd":
        (tmp_path / f"x-{name}").write_text(name)
        os.utime(tmp_path / f"x-{name}", ns=(10**9, 10**9))  # all in one clock tick
    (tmp_path / "y-a").write_text("another pattern")
    verdicts.keep_newest(tmp_path, "x-*", 1, written=tmp_path / "x-c")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x-c", "y-a"]


def test_a_failing_checks_earlier_steps_are_answered_from_their_verdicts(learner, monkeypatch):
    """Which earlier step to fix first: a kept verdict of the same code answers (a failing KV check
    no longer runs the step 10 check again); an eager-only verdict answers only an eager-only run,
    and an edit of the step, or of a step it imports, runs the check."""
    from checks import __main__ as cli
    from checks import options

    ran = []
    monkeypatch.setattr(cli, "run_step", lambda step, **kw: ran.append(step) or [Result("c", True)])
    verdicts.record(2, False, "MLP output differs", eager_only=False)
    verdicts.record(4, True, "", eager_only=True)
    assert cli.step_passes(2) is False and ran == []
    assert cli.step_passes(4) is True and ran == [4], "a full run needs a full verdict"
    before = options.current()
    options.use(before.but(eager_only=True))
    try:
        ran.clear()
        assert cli.step_passes(4) is True and ran == []
        path = learner / "step_01.py"  # step 4 imports it
        path.write_text(path.read_text() + "\n# edited\n")
        assert cli.step_passes(4) is True and ran == [4]
    finally:
        options.use(before)


def test_a_chapter_not_shipped_yet_is_not_started_and_a_deleted_file_is_not(tmp_path, monkeypatch):
    """A course entry being written (no skeleton copy, no learner file) is "not started" rather
    than checked; a learner's deleted file of a shipped step is not "untouched"."""
    monkeypatch.setattr(tools, "SKELETONS", tmp_path / "skeletons")  # nothing shipped
    tools.skeletons.cache_clear()
    try:
        assert tools.untouched(tmp_path, 1)
    finally:
        monkeypatch.undo()
        tools.skeletons.cache_clear()
    assert not tools.untouched(tmp_path, 1)  # step 1 is shipped; tmp_path has no step_01.py
    assert tools.untouched(ROOT / "steps", 1)
