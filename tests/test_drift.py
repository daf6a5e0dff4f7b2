"""Skeletons and solutions stay in step, and each page lists the skeleton's tasks (issue 14)."""

import ast
import re

import pytest

from checks import course, drift, harness
from tests.conftest import ROOT

pytestmark = pytest.mark.fast
STEPS = list(course.complete())  # an entry that lacks a file: tests/test_course.py names it


def files(step: int) -> tuple[str, str]:
    name = f"{harness.module_name(step)}.py"
    return (ROOT / "steps" / name).read_text(), (ROOT / "solutions" / name).read_text()


# A chapter whose tasks go on on a page of their own (an optional part): page -> that page.
CONTINUED = {"steps/14-mojo.md": "mojo-bfloat16.md"}


def task_lists(step: int) -> str:
    """The "Your tasks" section of the step's page, then of the page its tasks go on on, if any."""
    pages = [course.BY_ID[step].page]
    if pages[0] in CONTINUED:
        pages.append(CONTINUED[pages[0]])
    sections = [(ROOT / "docs" / name).read_text().split("## Your tasks", 1)[1] for name in pages]
    return "\n".join(section.split("\n#", 1)[0] for section in sections)


@pytest.mark.parametrize("step", STEPS, ids=harness.step_argument)
def test_solving_the_skeleton_only_adds_code(step):
    assert drift.drift_problems(*files(step)) == []


@pytest.mark.parametrize("step", STEPS, ids=harness.step_argument)
def test_the_page_lists_as_many_tasks_as_the_skeleton_has_todos(step):
    tasks = task_lists(step)
    numbered = re.findall(r"^(\d+)\. ", tasks, re.M)
    todos = drift.todo_count(files(step)[0]) + sum(
        drift.todo_count((ROOT / "steps" / other).read_text()) for other in course.BY_ID[step].also
    )
    assert [int(n) for n in numbered] == list(range(1, todos + 1))


def test_the_guard_fails_on_an_extra_public_function():
    skeleton, solution = files(2)
    extra = skeleton + "\n\ndef helper(x):\n    return x\n"
    assert "the skeleton defines helper, the solution does not" in drift.drift_problems(
        extra, solution
    )


def test_the_guard_fails_on_a_renamed_parameter():
    skeleton, solution = files(10)
    renamed = skeleton.replace("max_new_tokens: int = 50", "new_tokens: int = 50")
    problems = drift.drift_problems(renamed, solution)
    assert any(p.startswith("generate_text takes") for p in problems), problems


def test_the_guard_fails_on_given_code_changed_in_the_solution_only():
    skeleton, solution = files(11)
    changed = solution.replace(
        'CONV1D_LAYERS = ("c_attn", "c_proj", "c_fc")', 'CONV1D_LAYERS = ("c_attn", "c_proj")'
    )
    assert any("CONV1D_LAYERS" in p for p in drift.drift_problems(skeleton, changed))


def test_todos_and_placeholders_are_not_given_code():
    skeleton = '''"""Doc."""
def f(x):
    # TODO 1: double x.
    # Hint: x * 2
    #   (or x + x)
    y = None
    return None
'''
    assert drift.given_lines(skeleton) == ["def f(x):"]
    assert drift.todo_count(skeleton) == 1


@pytest.mark.parametrize("step", STEPS, ids=harness.step_argument)
def test_given_plumbing_is_not_copied_into_skeleton_and_solution(step):
    """A function the skeleton gives whole is short: loading, the command line and the KV cache's
    helpers live once, in steps/gpt2_demo.py (solutions/gpt2_demo.py links to it)."""
    skeleton = files(step)[0]
    for node in ast.walk(ast.parse(skeleton)):
        if isinstance(node, ast.FunctionDef):
            source = ast.get_source_segment(skeleton, node)
            if "TODO" not in source:
                assert len(source.splitlines()) <= 10, (
                    f"{node.name} is given whole: move it to gpt2_demo.py"
                )


GIVEN = ("gpt2_demo.py", "gpt2_serve.py", "gpt2_client.py", "gpt2_chat.jinja", "amx")


@pytest.mark.parametrize("name", GIVEN)
def test_each_given_file_is_one_file(name):
    link = ROOT / "solutions" / name
    assert link.is_symlink() and link.resolve() == (ROOT / "steps" / name).resolve()


def test_steps_holds_only_steps_and_given_files():
    modules = {f"{course.BY_ID[step].module}.py" for step in course.ALL_STEPS}
    extra = {path.name for path in (ROOT / "steps").iterdir() if path.is_file()}
    assert extra - modules - set(GIVEN) == set()


@pytest.mark.parametrize("other", [o for s in STEPS for o in course.BY_ID[s].also])
def test_a_steps_other_files_have_solutions_and_todos(other):
    skeleton, solution = (
        (ROOT / "steps" / other).read_text(),
        (ROOT / "solutions" / other).read_text(),
    )
    assert drift.todo_count(skeleton) > 0 and drift.todo_count(solution) == 0
    package = (ROOT / "steps" / other).parent / "__init__.mojo"
    assert not other.endswith(".mojo") or package.exists(), "a Mojo source package needs it"
