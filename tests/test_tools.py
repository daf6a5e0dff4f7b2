"""progress, hint, reset and doctor, run as a learner runs them, on temporary copies of steps/."""

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from checks import harness, tools
from tests.conftest import ROOT, mutate, run_checks

GELU = 'F.gelu(hidden_states, approximate="tanh")'


@pytest.fixture
def steps_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "steps"
    shutil.copytree(ROOT / "steps", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def status_of(output: str, step: int) -> str:
    match = re.search(
        rf"^  step {harness.step_argument(step):>2}  (passed|failing|not started) ", output, re.M
    )
    assert match, f"no line for step {step} in:\n{output}"
    return match.group(1)


@pytest.mark.fast
def test_skeleton_snapshot_is_steps():
    assert tools.skeletons() == {
        step: (ROOT / "steps" / f"{harness.module_name(step)}.py").read_text()
        for step in tools.ALL_STEPS
    }, "run python -m checks.samples"
    for step in tools.ALL_STEPS:
        for name in tools.step_files(step):
            snapshot = (tools.SKELETONS / name).read_text()
            assert snapshot == (ROOT / "steps" / name).read_text(), "run python -m checks.samples"


def test_reset_restores_every_file_of_a_step(steps_copy):
    (steps_copy / "kernels" / "gemv.mojo").write_text("# mine\n")
    run = run_checks("reset", "mojo", "--dir", str(steps_copy), "--yes")
    assert run.code == 0, run.output
    assert (steps_copy / "kernels" / "gemv.mojo").read_text() == (
        ROOT / "steps" / "kernels" / "gemv.mojo"
    ).read_text()
    assert [p.name for p in (steps_copy / "kernels").glob("gemv.mojo.bak-*")], run.output


def test_progress_on_a_mix_of_passed_failing_and_untouched_steps(steps_copy):
    for step in (1, 3):
        shutil.copy(ROOT / "solutions" / f"step_{step:02d}.py", steps_copy)
    shutil.copy(ROOT / "solutions" / "step_02.py", steps_copy)
    mutate(steps_copy, 2, [(GELU, "F.gelu(hidden_states)")])
    (steps_copy / "step_05.py").write_text((steps_copy / "step_05.py").read_text() + "# started\n")
    run = run_checks("progress", "--dir", str(steps_copy), "--eager-only")
    assert run.code == 1, run.output
    assert "Traceback" not in run.output, run.output
    expected = {
        1: "passed",
        2: "failing",
        3: "passed",
        4: "not started",
        5: "failing",
        **{step: "not started" for step in range(6, 13)},
    }
    assert {step: status_of(run.output, step) for step in expected} == expected, run.output
    assert "exact (erf) GELU" in run.output  # the first failure's hint, under step 2
    assert "2 of 11 steps pass. Next: step 2" in run.output


def test_progress_when_every_step_passes():
    run = run_checks("progress", "--solutions", "--eager-only")
    assert run.code == 0, run.output
    assert all(status_of(run.output, step) == "passed" for step in tools.ALL_STEPS), run.output
    assert "11 of 11 steps pass. Every step and extension passes" in run.output


@pytest.mark.fast
@pytest.mark.parametrize("step", tools.ALL_STEPS)
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


def test_hint_shows_one_hint_per_request():
    run = run_checks("hint", "4", stdin="\n")
    assert run.code == 0, run.output
    assert "1/4" in run.output and "2/4" in run.output and "3/4" not in run.output
    run = run_checks("hint", "4", stdin="q\n")
    assert "1/4" in run.output and "2/4" not in run.output
    run = run_checks("hint", "4", stdin="\n\n\n")
    assert "4/4" in run.output and "F.softmax" in run.output


def test_reset_asks_keeps_a_backup_and_touches_nothing_else(steps_copy):
    shutil.copy(ROOT / "solutions" / "step_04.py", steps_copy)
    before = fingerprint(steps_copy)

    run = run_checks("reset", "4", "--dir", str(steps_copy), stdin="n\n")
    assert run.code == 1 and "Nothing changed" in run.output, run.output
    assert fingerprint(steps_copy) == before

    run = run_checks("reset", "4", "--dir", str(steps_copy), stdin="y\n")
    assert run.code == 0, run.output
    after = fingerprint(steps_copy)
    backups = [name for name in after if name.startswith("step_04.py.bak-")]
    assert len(backups) == 1, after
    assert (steps_copy / backups[0]).read_text() == (ROOT / "solutions" / "step_04.py").read_text()
    assert (steps_copy / "step_04.py").read_text() == tools.skeletons()[4]
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    assert changed == {"step_04.py", backups[0]}, changed

    run = run_checks("reset", "4", "--dir", str(steps_copy), "--yes")
    assert run.code == 0 and "already the untouched skeleton" in run.output
    assert fingerprint(steps_copy) == after


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


@pytest.mark.fast
@pytest.mark.parametrize(
    "args, message",
    [
        (["hint"], "hint needs a step 1-11, kv, serve or mojo"),
        (["reset", "12"], "reset needs a step 1-11, kv, serve or mojo, not '12'"),
        (["12"], "the step must be 1-11, kv, serve or mojo, not '12'"),
        (["warm", "x"], "warm takes a step (1-11, kv, serve or mojo) or nothing"),
        (["progress", "3"], "progress takes no step number"),
        (["frobnicate"], "must be a step (1-11, kv, serve or mojo) or one of all, progress"),
    ],
)
def test_usage_errors_are_plain(args, message, capsys):
    from checks.__main__ import parse_args

    with pytest.raises(SystemExit) as exit:
        parse_args(args)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and message in error and "Traceback" not in error, error


@pytest.mark.fast
def test_warm_without_the_solutions_says_so_in_one_sentence_and_fails(tmp_path):
    """A copy of the course without solutions/: warm can't compile the checks' graphs."""
    copy = tmp_path / "course"
    copy.mkdir()
    for name in ("checks", "course.toml", "pyproject.toml", "pixi.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    import subprocess
    import sys

    from checks.harness import child_env

    run = subprocess.run(
        [sys.executable, "-m", "checks", "warm"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(PYTHONPATH=str(copy)),
    )
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert run.returncode == 1, lines
    assert len(lines) == 1 and lines[0].startswith("Nothing was warmed"), lines
    assert "solutions/" in lines[0] and "no such folder" in lines[0], lines
