"""python -m checks.scaffold writes every file course.needs names, trivial but passing the guards.

(The whole round trip, an entry added then scaffolded with the fast tier green after, is the
acceptance run of issue 34; these hold its pieces.)"""

import ast
import tomllib

import pytest

from checks import course, drift, scaffold

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("step", [course.KV_CACHE, course.MOJO], ids=["uses", "also"])
def test_it_writes_each_needed_file(step):
    written = {*scaffold.contents(step), f"docs/{course.BY_ID[step].page}"}
    assert written == set(course.needs(step).values())


@pytest.mark.parametrize("step", [course.KV_CACHE, course.MOJO], ids=["uses", "also"])
def test_its_skeleton_and_solution_pass_the_drift_guard(step):
    entry = course.BY_ID[step]
    texts = scaffold.contents(step)
    skeleton, solution = texts[f"steps/{entry.module}.py"], texts[f"solutions/{entry.module}.py"]
    assert drift.drift_problems(skeleton, solution) == []
    imported = {n.module for n in ast.parse(solution).body if isinstance(n, ast.ImportFrom)}
    assert imported == set(entry.uses)
    todos = drift.todo_count(skeleton) + sum(
        drift.todo_count(texts[f"steps/{other}"]) for other in entry.also
    )
    assert todos == 1 + len(entry.also) and f"pixi run {entry.task}\n" in skeleton
    assert len(tomllib.loads(scaffold.hints(step))["hints"]) >= 3
