"""Writes a new chapter's missing files, with trivial contents, from its course.toml entry.

    python -m checks.scaffold ext_quant    # after adding the entry [[step]] module = "ext_quant"

It writes what `course.missing` names (skeleton, solution, skeleton copy, check, hints, page,
sample reports) and adds the chapter's pixi task and nav entry after the previous entry's; it
never overwrites a file. The contents pass the fast tests and hold one TODO, for the chapter's
author to replace (then `python -m checks.samples` writes the real sample reports).
"""

from __future__ import annotations

import ast
import sys

from checks import course, pip_forms
from checks.course import ROOT


def first_public_name(module: str) -> str:
    """A name the solution of `module` defines, for the import that `uses` asks for."""
    tree = ast.parse((ROOT / "solutions" / f"{module}.py").read_text())
    defined = (ast.FunctionDef, ast.ClassDef)
    return next(n.name for n in tree.body if isinstance(n, defined) and not n.name.startswith("_"))


def code(step: int, solved: bool) -> str:
    """The skeleton (one TODO) or its solution."""
    entry = course.BY_ID[step]
    docstring = (
        f'"""{entry.name}: {entry.title}. (the reference answer)"""'
        if solved
        else f'"""{entry.name}: {entry.title}.\n\nCheck your work: pixi run {entry.task}\n"""'
    )
    names = {used: first_public_name(used) for used in entry.uses}
    imports = [f"from {used} import {name}" for used, name in names.items()]
    result = f"({', '.join(names.values())},)" if names else '"done"'  # the solution uses them
    body = f"    return {result}" if solved else "    # TODO 1: write the chapter.\n    return None"
    return "\n".join([docstring, "", *imports, "", "", "def todo():", body, ""])


def check(step: int) -> str:
    entry = course.BY_ID[step]
    return f'''"""Checks {entry.module}.py's TODO (python -m checks.scaffold wrote it: replace it).

{entry.name}: {entry.title}.
"""

from checks.harness import call, learner_attr, parse_step

STEP = parse_step("{entry.cli}")


def test_todo_is_done(record):
    """todo() returns something"""
    done = call("todo()", learner_attr(STEP, "todo"))
    record.expect(done is not None, "todo() returns nothing yet: do TODO 1.")
'''


def hints(step: int) -> str:
    entry = course.BY_ID[step]
    return f"""# Hints for {entry.name.lower()}, from a nudge to the exact API (pixi run hint {entry.cli}).
hints = [
    "Write the chapter.",
    "todo is a function that returns its result.",
    "def todo(): return what TODO 1 asks for",
]
"""


def page(step: int) -> str:
    entry, module = course.BY_ID[step], course.BY_ID[step].module
    tasks = [f"{n}. Write `{other}`." for n, other in enumerate(entry.also, start=2)]
    markdown = "\n".join(
        [
            f"# {entry.nav}",
            "",
            f"**Goal:** {entry.title}.",
            "",
            "## Your tasks",
            "",
            "1. Write `todo()`.",
            *tasks,
            "",
            f'```python title="steps/{module}.py"',
            f'--8<-- "steps/{module}.py"',
            "```",
            "",
            "## Check your work",
            "",
            f"Run `pixi run {entry.task}`.",
            "",
            *tab("Untouched skeleton", "text", f"docs/reports/{module}_skeleton.txt"),
            *tab("Passing", "text", f"docs/reports/{module}_solution.txt"),
            '??? success "Show solution"',
            "",
            f'    ```python title="solutions/{module}.py"',
            f'    --8<-- "solutions/{module}.py"',
            "    ```",
            "",
        ]
    )
    return pip_forms.with_pip_forms(markdown, entry.page)


def tab(title: str, language: str, path: str) -> list[str]:
    return [f'=== "{title}"', "", f"    ```{language}", f'    --8<-- "{path}"', "    ```", ""]


def report(step: int, solved: bool) -> str:
    entry = course.BY_ID[step]
    verdict = f"{entry.name} passes." if solved else f"{entry.name} is not done yet."
    heading = f"{entry.name}: {entry.title}  [steps/{entry.module}.py]"
    return f"{heading}\n\n  (python -m checks.samples writes the real report)\n\n{verdict}\n"


def contents(step: int) -> dict[str, str]:
    """A trivial version of every file `course.needs` names, by path."""
    module = course.BY_ID[step].module
    texts = {
        f"steps/{module}.py": code(step, solved=False),
        f"solutions/{module}.py": code(step, solved=True),
        f"checks/skeletons/{module}.py": code(step, solved=False),
        f"checks/test_{module}.py": check(step),
        f"checks/hints/{module}.toml": hints(step),
        f"docs/reports/{module}_skeleton.txt": report(step, solved=False),
        f"docs/reports/{module}_solution.txt": report(step, solved=True),
    }
    for n, other in enumerate(course.BY_ID[step].also, start=2):
        texts |= {
            f"steps/{other}": f"# TODO {n}: write {other}.\n",
            f"solutions/{other}": f"# {other}, written.\n",
            f"checks/skeletons/{other}": f"# TODO {n}: write {other}.\n",
        }
    return texts


def insert_after(path: str, anchor: str, line: str) -> None:
    """Add `line` below the line of `path` that starts with `anchor` (stripped), indented alike."""
    lines = (ROOT / path).read_text().splitlines(keepends=True)
    at = next(i for i, text in enumerate(lines) if text.strip().startswith(anchor))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}{line}\n")
    (ROOT / path).write_text("".join(lines))


def scaffold(step: int) -> list[str]:
    """Write what the entry lacks; the paths written, and the lines added to pixi.toml and
    mkdocs.yml (after the previous entry's)."""
    done, previous = [], course.BY_ID.get(step - 1)
    for path, text in contents(step).items():
        if not (ROOT / path).exists():
            (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
            (ROOT / path).write_text(text)
            done.append(path)
    for line in reversed(course.pixi_task_lines(step)):
        if line not in (ROOT / "pixi.toml").read_text():
            insert_after("pixi.toml", f"{previous.task} =" if previous else "[tasks]", line)
            done.append(f"pixi.toml: {line}")
    if course.nav_line(step) not in (ROOT / "mkdocs.yml").read_text():
        insert_after(
            "mkdocs.yml",
            course.nav_line(previous.id) if previous else "nav:",
            course.nav_line(step),
        )
        done.append(f"mkdocs.yml: {course.nav_line(step)}")
    page_path = ROOT / "docs" / course.BY_ID[step].page
    if not page_path.exists():  # last: its pip forms come from the pixi task added above
        page_path.write_text(page(step))
        done.append(f"docs/{course.BY_ID[step].page}")
    return done


def main(argv: list[str]) -> int:
    step = course.BY_MODULE.get(argv[0]) if len(argv) == 1 else None
    if step is None:
        print("usage: python -m checks.scaffold MODULE (a module course.toml names)")
        return 2
    for written in scaffold(step):
        print(f"wrote {written}")
    for lacking in course.missing(step):
        print(f"still lacking: {lacking}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
