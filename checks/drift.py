"""Keeps each skeleton in step with its solution: solving a step only ever adds code.

A skeleton, without its module docstring, its TODO and Hint comments and its placeholders
(`return None`, `x = None`, `pass`), must be a subsequence of its solution's lines; both must define
the same public names with the same signatures; and the step's page lists as many tasks as the
skeleton has TODOs.
"""

from __future__ import annotations

import ast
import re

PLACEHOLDER = re.compile(r"^(return None|pass|[\w.\[\]]+(: [\w\[\], |.]+)? = None)$")
TODO = re.compile(r"#\s*TODO (\d+)")


def given_lines(skeleton: str) -> list[str]:
    """The skeleton's code as the learner is given it: what solving must keep, line by line."""
    lines, in_comment_block = [], False
    for line in without_docstring(skeleton).splitlines():
        text = line.strip()
        if text.startswith("# TODO") or text.startswith("# Hint"):
            in_comment_block = True
            continue
        if in_comment_block and text.startswith("#   "):
            continue  # a TODO or Hint that goes on over several lines
        in_comment_block = False
        if text and not PLACEHOLDER.match(text):
            lines.append(text)
    return lines


def without_docstring(source: str) -> str:
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines = source.splitlines()
        return "\n".join(lines[: first.lineno - 1] + lines[first.end_lineno :])
    return source


def missing_from(given: list[str], solution: str) -> list[str]:
    """The given lines that do not appear, in order, in the solution (empty when none)."""
    solution_lines = [line.strip() for line in without_docstring(solution).splitlines()]
    position, missing = 0, []
    for line in given:
        try:
            position = solution_lines.index(line, position) + 1
        except ValueError:
            missing.append(line)
    return missing


def public_signatures(source: str) -> dict[str, str]:
    """`name` or `Class.method` -> its parameters, for every public function, class and method."""
    found: dict[str, str] = {}

    def visit(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not node.name.startswith("_") or node.name == "__init__":
                    found[prefix + node.name] = ast.unparse(node.args)
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[prefix + node.name] = ", ".join(ast.unparse(base) for base in node.bases)
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return found


def todo_count(skeleton: str) -> int:
    return len(set(TODO.findall(skeleton)))


def drift_problems(skeleton: str, solution: str) -> list[str]:
    """Every way the skeleton has drifted from its solution, in a sentence each."""
    problems = [
        f"the skeleton's line {line!r} is not in the solution"
        for line in missing_from(given_lines(skeleton), solution)
    ]
    ours, theirs = public_signatures(skeleton), public_signatures(solution)
    for name in sorted(set(ours) | set(theirs)):
        if name not in theirs:
            problems.append(f"the skeleton defines {name}, the solution does not")
        elif name not in ours:
            problems.append(f"the solution defines {name}, the skeleton does not")
        elif ours[name] != theirs[name]:
            problems.append(
                f"{name} takes ({ours[name]}) in the skeleton, ({theirs[name]}) in the solution"
            )
    return problems
