"""The report, on stand-in check files run through pytest in-process (no MAX): what it says for
each way a check ends, and its rules for compiled checks (marked so, never named so)."""

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from checks import __main__ as checker
from checks import options, report

pytestmark = pytest.mark.fast

CHECKS = '''
import pytest
from pathlib import Path

RAN = Path(__file__).with_name("ran.txt")

def test_eager(record):
    """The eager check"""
    record.expect(FAIL_EAGER, "the eager numbers are wrong")

def test_named_compiled_but_not_marked():
    """A check whose name says compiled"""

@pytest.mark.compiled
def test_graph():
    """The graph check"""
    with RAN.open("a") as ran:
        ran.write("graph\\n")
'''


def run_checks_file(folder: Path, fail_eager: bool) -> list[report.Result]:
    return run_source(folder, f"FAIL_EAGER = {not fail_eager}\n" + textwrap.dedent(CHECKS))


def run_source(folder: Path, source: str) -> list[report.Result]:
    """The report's results for a check file of `source`, run with the checker's own pytest
    arguments."""
    checks = folder / "test_stand_in.py"
    checks.write_text(source)
    plugin, path = report.ReportPlugin(options.current()), list(sys.path)
    pytest.main(checker.pytest_arguments(str(checks), verbose=False), plugins=[plugin])
    sys.modules.pop(checks.stem, None)  # the next run imports its own file
    sys.path[:] = path  # pytest put the stand-in's folder first
    return plugin.results


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the passed-checks record
    previous = options.current()
    options.use(previous.but(steps_dir=tmp_path))
    yield tmp_path
    options.use(previous)


def test_a_marked_check_is_skipped_after_a_failure_and_the_name_alone_means_nothing(folder):
    eager, named, graph = run_checks_file(folder, fail_eager=True)
    assert not eager.passed and "the eager numbers are wrong" in eager.messages[0]
    assert named.passed and not named.skipped, "a name must not make a check compiled"
    assert graph.skipped and graph.messages == [report.COMPILED_AFTER_EAGER_FAILURE]
    assert not (folder / "ran.txt").exists()


RUNS_ON_A_COMPILED_MODEL = """
import pytest

def test_eager(record):
    record.expect(False, "the eager numbers are wrong")

@pytest.mark.compiled(runs_on="the model the check above compiles")
def test_loop():
    \"\"\"A check on another check's compiled model\"\"\"
"""


def test_a_check_on_another_s_compiled_model_says_so_when_skipped(folder):
    _, loop = run_source(folder, RUNS_ON_A_COMPILED_MODEL)
    assert loop.skipped and loop.messages == [
        "not run, because a check above failed: fix that first (it runs on the model the check "
        "above compiles)"
    ]


def test_step_11_s_checks_on_the_built_model_are_marked_so():
    from checks import test_step_11 as step_11

    for check in (
        step_11.test_run_model_interactive_compiled,
        step_11.test_demo_command_line_compiled,
    ):
        (mark,) = check.pytestmark
        assert mark.kwargs == {"runs_on": "the model build_model compiles, checked above"}


def test_a_marked_check_that_passed_is_not_compiled_again_for_the_same_code(folder):
    first = run_checks_file(folder, fail_eager=False)
    assert all(result.passed for result in first)
    again = run_checks_file(folder, fail_eager=False)
    assert all(result.passed for result in again)
    assert (folder / "ran.txt").read_text() == "graph\n", "the second run compiled again"


def test_the_record_of_passed_checks_keeps_a_few_codes_per_check(folder, monkeypatch):
    monkeypatch.setattr(report, "KEEP_PER_CHECK", 2)
    check, other = (SimpleNamespace(nodeid=f"test_stand_in.py::{name}") for name in "ab")
    for edit in range(4):  # each edit of a step file is new code, recorded when its check passes
        (folder / "step_01.py").write_text(f"EDIT = {edit}\n")
        passed = report.PassedBefore()
        passed.add(check)
        passed.add(other)
    assert len(list(report.passed_checks_dir().iterdir())) == 4, "the record grows with each edit"
    assert check in passed and other in passed  # the newest code is still remembered
    (folder / "step_01.py").write_text("EDIT = 2\n")
    assert check in report.PassedBefore(), "the edit before the newest is still remembered"
    (folder / "step_01.py").write_text("EDIT = 1\n")
    assert check not in report.PassedBefore()


WORDING = '''
import numpy as np

from checks.learner import LearnerError


def test_two_mismatches(record):
    """Two mismatches."""
    record.expect_close("Logits", np.ones(2, np.float32), np.zeros(2, np.float32))
    record.expect(False, "h holds 3 blocks; config.n_layer is 2.")


def test_learner_error(record):
    """A learner's error"""
    raise LearnerError("GPT2MLP.forward returned None: return the result.")


def test_checker_bug():
    """A bug in the checker"""
    {}["missing"]


def test_speed(record):
    """A check that reports a speed"""
    record.note("your kernel 1.5 ms")
'''


def test_what_the_report_says_for_each_way_a_check_ends(folder):
    mismatches, learner, bug, speed = run_source(folder, WORDING)
    assert mismatches.title == "Two mismatches" and not mismatches.passed
    assert mismatches.messages == [  # each once: pytest-check is not a second record of them
        "Logits: largest difference 1 at [0] (expected 0, got 1; tolerance 1e-05 + "
        "1e-05·|expected|); 100% of 2 elements differ.",
        "h holds 3 blocks; config.n_layer is 2.",
    ]
    assert not learner.passed and learner.traceback == ""
    assert learner.messages == ["GPT2MLP.forward returned None: return the result."]
    assert not bug.passed and "KeyError: 'missing'" in bug.traceback
    assert bug.messages == [
        "The checker itself failed (KeyError: 'missing'). This is a bug in checks/, not in your "
        "code: run again with -v for the traceback."
    ]
    assert speed.passed and speed.messages == [] and speed.notes == ["your kernel 1.5 ms"]


@pytest.mark.fast
def test_the_report_follows_the_options_it_was_given_not_the_current_ones():
    """The run's options are passed to the report: its tolerances' dtype and its skipping of
    compiled checks follow them, whatever the options current when a check starts."""
    from types import SimpleNamespace

    given = options.Options(dtype="bfloat16", eager_only=True)
    plugin = report.ReportPlugin(given)
    compiled = SimpleNamespace(
        config=SimpleNamespace(stash={}),
        get_closest_marker=lambda name: object() if name == "compiled" else None,
    )
    with options.changed(dtype="float32", eager_only=False):
        with pytest.raises(pytest.skip.Exception, match="--eager-only"):
            plugin.pytest_runtest_setup(compiled)
        assert plugin.recorder.precision == "bfloat16"
    source = Path(report.__file__).read_text()
    plugin_source = source[source.index("class ReportPlugin") :]
    assert "options.current()" not in plugin_source
