"""The report's rules for compiled checks, on stand-in check files run through pytest in-process
(no MAX): a check is compiled because it is marked so, never because of its name."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

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
    checks = folder / "test_stand_in.py"
    checks.write_text(f"FAIL_EAGER = {not fail_eager}\n" + textwrap.dedent(CHECKS))
    plugin = report.ReportPlugin()
    args = [str(checks), "-q", "--import-mode=importlib", "-p", "pytest_check.plugin"]
    args += ["-p", "no:cacheprovider"]
    pytest.main(
        [*args, "--assert=plain", f"--rootdir={folder}", "-c", os.devnull], plugins=[plugin]
    )
    sys.modules.pop(checks.stem, None)  # the next run imports its own file
    return plugin.results


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the passed-checks record
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # as the checker runs pytest
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


def test_a_marked_check_that_passed_is_not_compiled_again_for_the_same_code(folder):
    first = run_checks_file(folder, fail_eager=False)
    assert all(result.passed for result in first)
    again = run_checks_file(folder, fail_eager=False)
    assert all(result.passed for result in again)
    assert (folder / "ran.txt").read_text() == "graph\n", "the second run compiled again"
