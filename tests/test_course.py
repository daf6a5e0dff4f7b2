"""course.toml is the one list of the course: everything that names a step agrees with it."""

import ast
import re
import tomllib

import pytest

from checks import course
from tests.conftest import ROOT

pytestmark = pytest.mark.fast
STEPS = [course.BY_ID[step] for step in course.ALL_STEPS]
# The entries that lack nothing; the other tests hold only these, this file's first test the rest.
COMPLETE = [course.BY_ID[step] for step in course.complete()]


def test_every_entry_has_everything_it_needs():
    """One failure that lists, entry by entry, every file, task and nav entry still missing."""
    lacking = [
        f"{step.module} ({step.name}) lacks:\n" + "\n".join(f"  {line}" for line in lines)
        for step in STEPS
        if (lines := course.missing(step.id))
    ]
    assert not lacking, "\n".join(
        [*lacking, "python -m checks.scaffold MODULE writes a trivial one of each."]
    )


def test_the_numbered_steps_come_first_then_the_extensions():
    """A step's number is its place in course.toml: the command line's 1..N are the steps."""
    assert [step.id for step in STEPS] == list(range(1, len(STEPS) + 1))
    kinds = [step.extension for step in STEPS]
    assert kinds == sorted(kinds), "an extension comes before a numbered step"
    numbered = [step.cli for step in STEPS if not step.extension]
    assert numbered == [str(number) for number in range(1, len(numbered) + 1)]
    assert all(not step.cli.isdigit() for step in STEPS if step.extension)


def test_a_step_uses_only_earlier_steps_by_their_module():
    for step in STEPS:
        earlier = [other.module for other in STEPS[: step.id - 1]]
        assert set(step.uses) <= set(earlier), f"{step.module} uses {step.uses}"


def test_no_file_names_a_step_the_manifest_lacks():
    modules = {step.module for step in STEPS}
    for folder, pattern, strip in (
        ("steps", "*.py", ""),
        ("solutions", "*.py", ""),
        ("checks/hints", "*.toml", ""),
        ("checks", "test_*.py", "test_"),
    ):
        found = {
            path.stem.removeprefix(strip)
            for path in (ROOT / folder).glob(pattern)
            if re.fullmatch(r"(test_)?(step_\d\d|ext_\w+)", path.stem)
        }
        assert found <= modules, f"{folder}: {found - modules} not in course.toml"
    pages = {
        str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs" / "steps").glob("*.md")
    }
    assert pages <= {step.page for step in STEPS}


def test_pixi_tasks_are_the_manifests():
    tasks = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]
    for step in COMPLETE:
        for task in (step.task, *step.aliases):
            assert tasks[task] == f"python -m checks {step.cli}", (step.name, task)


def test_the_extensions_tasks_follow_one_scheme():
    """check-NAME for every chapter (`serve` is the server); an older name only as an alias."""
    for step in STEPS:
        expected = f"check-{step.cli}" if step.extension else f"s{step.cli}"
        assert step.task == expected, step.name
    assert course.BY_ID[course.KV_CACHE].aliases == ("kv",)


def test_the_pages_pip_forms_know_every_task_and_alias():
    from checks.pip_forms import tasks

    known = tasks()
    for step in COMPLETE:
        for task in (step.task, *step.aliases):
            assert known[task] == f"python -m checks {step.cli}", task


def test_warm_and_bench_read_the_manifest():
    """Each compiling check has a cold-time estimate for warm; the bench's steps are marked."""
    assert set(course.COLD_SECONDS) == set(course.COMPILING_STEPS)
    assert all(seconds > 0 for seconds in course.COLD_SECONDS.values())
    bench = [course.module_name(step) for step in course.BENCH_NEEDS]
    assert bench == ["step_01", "step_08", "step_10", "step_11", "ext_kv_cache"]


def test_the_sites_navigation_lists_the_steps_in_course_order():
    nav = re.findall(r"^\s+- (.+): (steps/[\w.-]+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    in_course_order = [(step.nav, step.page) for step in STEPS]
    assert nav == [entry for entry in in_course_order if entry in nav]


@pytest.mark.parametrize("folder", ["steps", "solutions"])
def test_each_step_uses_what_it_imports(folder):
    for step in COMPLETE:
        tree = ast.parse((ROOT / folder / f"{step.module}.py").read_text())
        imported = {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module in course.BY_MODULE
        }
        assert imported == set(step.uses), f"{folder}/{step.module}.py imports {sorted(imported)}"


def test_the_cli_names_each_step_once():
    assert [course.parse_step(step.cli) for step in STEPS] == list(course.ALL_STEPS)
    assert [course.parse_step(step.task) for step in STEPS] == list(course.ALL_STEPS)
    after_the_last = str(len(course.STEPS) + 1)
    assert course.parse_step(after_the_last) is None and course.parse_step("0") is None
    assert course.parse_step("watch") is None and course.parse_step(None) is None


def test_the_cli_help_lists_every_step_of_the_manifest(capsys):
    from checks.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    listed = course.steps_in_words()
    assert listed in shown, shown
    numbers = [step.cli for step in STEPS if not step.extension]
    assert listed.startswith(f"{numbers[0]}-{numbers[-1]}, ")
    for step in STEPS:
        assert step.extension is False or f" {step.cli}" in listed, step.cli


def test_messages_name_the_command_the_learner_runs(monkeypatch):
    """Under pixi the checker names pixi tasks; anywhere else the line the task runs."""
    monkeypatch.delenv("PIXI_PROJECT_ROOT", raising=False)
    assert course.command("hint", "4") == "python -m checks hint 4"
    assert course.step_command(course.KV_CACHE) == "python -m checks kv"
    assert course.command("gpt2") == "python steps/step_11.py"
    monkeypatch.setenv("PIXI_PROJECT_ROOT", str(ROOT))
    assert course.command("hint", "4") == "pixi run hint 4"
    assert course.step_command(4) == "pixi run s4"


PIXI_RUN = re.compile(r"pixi run ([\w{}-]+)")


def test_each_skeleton_names_its_own_check_task():
    """The skeleton's "Check your work: pixi run s5" is course.toml's task for its module."""
    for step in COMPLETE:
        docstring = ast.get_docstring(ast.parse((ROOT / "steps" / f"{step.module}.py").read_text()))
        named = re.search(r"Check your work: pixi run ([\w-]+)", docstring or "")
        assert named, f"steps/{step.module}.py names no check task"
        assert named[1] == step.task, f"steps/{step.module}.py: {named[0]}"


def test_every_pixi_run_in_the_learners_files_is_a_task():
    """The given files' `pixi run s{step}` is each numbered step's task; the rest are pixi.toml's."""
    tasks = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]
    named = [
        (path.name, task)
        for path in sorted((ROOT / "steps").glob("*.py"))
        for task in PIXI_RUN.findall(path.read_text())
    ]
    assert len(named) >= len(STEPS)
    for name, task in named:
        if "{step}" in task:
            numbered = [step for step in STEPS if not step.extension]
            assert [task.format(step=step.cli) for step in numbered] == [s.task for s in numbered]
        else:
            assert task in tasks, f"steps/{name} runs `pixi run {task}`, which pixi.toml lacks"
