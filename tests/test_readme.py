"""The README's maintainer part stays true to the repository: its module map names every module
in checks/, and its test command is the one .ci/run runs."""

import fnmatch
import re
import shlex

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.fast

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n#", start + 1)
    return README[start : end if end != -1 else None]


def test_the_module_map_names_every_module_in_checks():
    rows = re.findall(r"^\| (`[^|]+`) \|", section("Module map"), re.M)
    named = [name for row in rows for name in re.findall(r"`([^`]+)`", row)]
    modules = sorted(path.name for path in (ROOT / "checks").glob("*.py"))
    missing = [
        m for m in modules if not any(fnmatch.fnmatch(m, n.replace("NN", "*")) for n in named)
    ]
    assert not missing, f"the README's module map lacks {missing}"
    stale = [n for n in named if not any(fnmatch.fnmatch(m, n.replace("NN", "*")) for m in modules)]
    assert not stale, f"the README's module map names modules checks/ lacks: {stale}"


def test_the_readmes_test_command_is_what_ci_runs():
    """.ci/run runs the fast tier, then the rest; the README tells a maintainer the same."""
    ci = [
        shlex.split(line)
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith("python3 -m pytest")
    ]
    assert ci == [
        ["python3", "-m", "pytest", "-q", "-m", "fast"],
        ["python3", "-m", "pytest", "-q", "-m", "not fast"],
    ]
    line = next(line for line in section("The two commands").splitlines() if "pytest" in line)
    install, *tests = [shlex.split(step) for step in line.split("#")[0].split(" && ")]
    assert install == ["python3", "-m", "pip", "install", "-e", ".[docs]"], install
    assert tests == ci, f"the README tests with {tests}, .ci/run with {ci}"
