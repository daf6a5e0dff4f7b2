"""The grader's modules: no two import each other (not even from inside a function), none imports a
check file, none is over MAX_LINES lines nor has a function over MAX_FUNCTION_LINES, no pickle,
and each opens with a one-line docstring naming its one job."""

import ast
import functools
import re

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.fast

CHECKS = ROOT / "checks"


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The names in `modules` (checks' modules, without `checks.`) that `source` imports anywhere,
    at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.removeprefix("checks.") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "checks":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("checks."):
            found.add(node.module.removeprefix("checks.").split(".")[0])
    return found & modules


def import_cycle(sources: dict[str, str]) -> list[str] | None:
    """One chain of imports from a module back to itself among `sources` ({name: source}), or
    None when there is none."""
    graph = {name: sorted(imported_modules(text, set(sources))) for name, text in sources.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in done:
            return None
        for other in graph[name]:
            if cycle := visit(other, [*path, name]):
                return cycle
        done.add(name)
        return None

    for name in sorted(graph):
        if cycle := visit(name, []):
            return cycle
    return None


@functools.cache
def grader_sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(CHECKS.glob("*.py"))}


def test_the_cycle_guard_can_fail():
    hidden = {
        "compare": "from checks import harness\n",
        "harness": "from checks.reference import max_tensor\n",
        "reference": "def f():\n    from checks.compare import as_numpy\n",
        "options": "import checks.course\n",
        "course": "",
    }
    assert import_cycle(hidden) == ["compare", "harness", "reference", "compare"]
    assert import_cycle({**hidden, "reference": ""}) is None


def test_no_checks_module_imports_one_that_imports_it_back():
    assert import_cycle(grader_sources()) is None


# A check file (checks/test_*.py) holds checks and what only they use; whatever two modules share
# lives in a grader module, so no module imports a check file (nor its cached, learner-built state).
CHECK_FILE_IMPORT = re.compile(r"from checks\.test_|import test_")


def check_files_imported(sources: dict[str, str]) -> dict[str, list[str]]:
    """{module: the check files it imports} over `sources` ({name: source}), found by parsing
    (`from checks import test_x as x` too, and inside functions) and by the issue's grep."""
    found = {}
    for name, text in sources.items():
        parsed = {m for m in imported_modules(text, set(sources)) if m.startswith("test_")}
        grepped = [line.strip() for line in text.splitlines() if CHECK_FILE_IMPORT.search(line)]
        if parsed or grepped:
            found[name] = sorted(parsed) + grepped
    return found


def test_the_check_file_import_guard_can_fail():
    hidden = {
        "bench": "def f():\n    from checks.test_ext_mojo import kernel_read_gbs\n",
        "test_ext_serve": "from checks import test_ext_kv_cache as kv\n",
        "test_ext_kv_cache": "from checks import kv_reference\n",
        "kv_reference": "",
        "test_ext_mojo": "",
    }
    assert set(check_files_imported(hidden)) == {"bench", "test_ext_serve"}
    assert check_files_imported({**hidden, "bench": "", "test_ext_serve": ""}) == {}


def test_no_module_in_checks_imports_a_check_file():
    assert check_files_imported(grader_sources()) == {}


MAX_LINES = 450  # a module longer than this does more than one job: split it by job


def test_no_module_in_checks_is_over_max_lines():
    long = {
        name: n
        for name, text in grader_sources().items()
        if (n := len(text.splitlines())) > MAX_LINES
    }
    assert not long, f"these modules are over {MAX_LINES} lines: {long}"


MAX_FUNCTION_LINES = 80  # a function longer than this does several things: give each a name


def test_no_function_in_checks_is_over_max_function_lines():
    long = [
        f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, text in grader_sources().items()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"these functions are over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_pickle_in_the_grader():
    users = [name for name, text in grader_sources().items() if "pickle" in imported_names(text)]
    assert not users, f"these import pickle (a pickle is code): {users}"


def imported_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def first_docstring_line(source: str) -> str | None:
    """The first line of a module's docstring; None when it has none."""
    doc = ast.get_docstring(ast.parse(source), clean=False)
    return doc.split("\n")[0] if doc else None


def says_its_job_in_one_line(first: str | None) -> bool:
    return bool(first) and first.endswith((".", ":")) and len(f'"""{first}') <= 100


def test_the_docstring_guard_can_fail():
    assert says_its_job_in_one_line(first_docstring_line('"""Compares arrays."""\n'))
    assert not says_its_job_in_one_line(first_docstring_line("import os\n"))
    wrapped = (
        '"""Compares arrays and words what differs, a sentence that runs on past\nthe line."""'
    )
    assert not says_its_job_in_one_line(first_docstring_line(wrapped))


def test_each_module_opens_with_a_one_line_docstring():
    """Every module of checks/, the package's __init__ too, says its one job in its first line."""
    sources = grader_sources()
    vague = {
        name: first_docstring_line(text)
        for name, text in sources.items()
        if not says_its_job_in_one_line(first_docstring_line(text))
    }
    assert not vague, f"these modules' docstrings do not say their job in one line: {vague}"


def test_only_the_recorder_hands_failures_to_pytest_check():
    """One record of a failure: checks record through the `record` fixture, never beside it."""
    users = [
        name for name, text in grader_sources().items() if "pytest_check" in imported_names(text)
    ]
    assert users == ["recorder"], users
