"""course.toml is the one list of the course: everything that names a step agrees with it."""

import ast
import re
import tomllib

import pytest

from checks import course
from tests.conftest import ROOT

pytestmark = pytest.mark.fast
STEPS = [course.BY_ID[step] for step in course.ALL_STEPS]


def test_steps_are_numbered_in_order_with_the_extensions_last():
    assert [step.id for step in STEPS] == list(range(1, len(STEPS) + 1))
    assert [step.extension for step in STEPS] == [False] * 11 + [True] * (len(STEPS) - 11)


def test_every_step_has_its_files():
    for step in STEPS:
        for path in (
            ROOT / "steps" / f"{step.module}.py",
            ROOT / "solutions" / f"{step.module}.py",
            ROOT / "checks" / f"test_{step.module}.py",
            ROOT / "checks" / "hints" / f"{step.module}.toml",
            ROOT / "docs" / step.page,
        ):
            assert path.exists(), f"{step.name}: {path} is missing"


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
    assert pages == {step.page for step in STEPS}


def test_pixi_tasks_are_the_manifests():
    tasks = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]
    for step in STEPS:
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
    for step in STEPS:
        for task in (step.task, *step.aliases):
            assert known[task] == f"python -m checks {step.cli}", task


def test_warm_and_bench_read_the_manifest():
    """Each compiling check has a cold-time estimate for warm; the bench's steps are marked."""
    assert set(course.COLD_SECONDS) == set(course.COMPILING_STEPS)
    assert all(seconds > 0 for seconds in course.COLD_SECONDS.values())
    assert course.BENCH_NEEDS == (1, 8, 10, 11, course.KV_CACHE)


def test_the_sites_navigation_lists_the_steps_in_order():
    nav = re.findall(r"^\s+- (.+): (steps/[\w.-]+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert nav == [(step.nav, step.page) for step in STEPS]


@pytest.mark.parametrize("folder", ["steps", "solutions"])
def test_each_step_uses_what_it_imports(folder):
    for step in STEPS:
        tree = ast.parse((ROOT / folder / f"{step.module}.py").read_text())
        by_module = {other.module: other.id for other in STEPS}
        imported = {
            by_module[node.module]
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module in by_module
        }
        assert imported == set(step.uses), (
            f"{folder}/{step.module}.py imports steps {sorted(imported)}"
        )


def test_the_cli_names_each_step_once():
    assert [course.parse_step(step.cli) for step in STEPS] == list(course.ALL_STEPS)
    assert [course.parse_step(step.task) for step in STEPS] == list(course.ALL_STEPS)
    assert course.parse_step("12") is None and course.parse_step("0") is None
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
