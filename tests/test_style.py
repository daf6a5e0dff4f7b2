"""The code passes ruff's lint and the grader and tests its formatter (pyproject.toml's settings)."""

import ast
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


# The environment variables the grader may read, and why: none of them is one of its options,
# which travel in one checks.options.Options made by the command line.
ENVIRONMENT_READS = {
    "max_cache.py": "MODULAR_CACHE_DIR and XDG_CACHE_HOME, where MAX keeps its cache",
    "runtime.py": "child_env copies the environment; "
    "PIXI_PROJECT_ROOT, whether pixi started the checker, so its messages name pixi's commands",
}


def environment_reads(source: str) -> int:
    """How many times `source` reads os.environ / os.getenv (writes such as os.environ[K] = V,
    pytest's own switch, are not reads)."""
    tree = ast.parse(source)
    written = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
    }
    return sum(
        isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and id(node) not in written
        for node in ast.walk(tree)
    )


def planted_globals(source: str) -> list[str]:
    """`global NAME` statements and `module.NAME = ...` assignments in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Global):
            found.append(f"global {', '.join(node.names)}")
        for target in node.targets if isinstance(node, ast.Assign) else []:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id not in ("self", "cls")
                and target.attr.isupper()
            ):
                found.append(f"{target.value.id}.{target.attr} = ...")
    return found


GRADER = sorted((ROOT / "checks").glob("*.py"))


def test_the_guards_below_can_fail():
    assert environment_reads("import os\nlimit = os.environ.get('GPT2_CHECK_TIME_LIMIT')") == 1
    assert environment_reads("import os\nos.environ['PYTEST_X'] = '1'") == 0
    assert planted_globals("def f():\n    global _pinned\n    _pinned = 1") == ["global _pinned"]
    assert planted_globals("harness.TIME_LIMIT_S = 3") == ["harness.TIME_LIMIT_S = ..."]


def test_options_come_from_one_object_not_the_environment():
    readers = {path.name for path in GRADER if environment_reads(path.read_text())}
    assert readers <= set(ENVIRONMENT_READS), f"these read the environment: {readers}"


def test_no_module_plants_globals():
    """State is passed (an Options, a list handed in), never planted in a module."""
    found = [
        f"{path.name}: {line}" for path in GRADER for line in planted_globals(path.read_text())
    ]
    assert not found, found
