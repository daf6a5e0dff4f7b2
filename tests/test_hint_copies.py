"""The tests of the checks' hints read each hint's words from the check that keeps them: a string
in them that is also in checks/ is a copy, which would have to be changed by hand with the hint
(and could drift from it). Short strings (25 characters or fewer: a word, a name, a number) are
not counted."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
# The tests that hold which hint each known mistake gets.
HINT_TESTS = (
    "test_slip_hints.py",
    "test_slips.py",
    "test_messages.py",
    "test_top_k_messages.py",
    "test_loss_slips.py",
)
LONGEST_ALLOWED = 25


def strings(tree: ast.AST) -> list[ast.Constant]:
    """The string constants of `tree` (an f-string's fixed parts included), but not docstrings,
    keys (CASES["..."]) nor the code of a mutation (the pairs of a list of replacements)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            if isinstance(node.body[0], ast.Expr):
                skipped.add(id(node.body[0].value))
        elif isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
        elif isinstance(node, ast.List):
            pairs = [e for e in node.elts if isinstance(e, ast.Tuple) and len(e.elts) == 2]
            skipped.update(id(part) for pair in pairs for part in pair.elts)
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
    ]


def checks_words() -> list[str]:
    return [
        node.value
        for path in sorted((ROOT / "checks").glob("*.py"))
        for node in strings(ast.parse(path.read_text()))
    ]


def copies(source: str, words: list[str]) -> list[str]:
    """`line: string` for each string of `source` longer than LONGEST_ALLOWED that a string of
    `words` contains."""
    return [
        f"{node.lineno}: {node.value!r}"
        for node in strings(ast.parse(source))
        if len(node.value) > LONGEST_ALLOWED and any(node.value in word for word in words)
    ]


@pytest.mark.parametrize("name", HINT_TESTS)
def test_no_hint_is_copied_into_its_test(name):
    found = copies((ROOT / "tests" / name).read_text(), checks_words())
    assert not found, (
        f"tests/{name} writes out words the checks keep (take them from the check's constant, "
        "e.g. step_02.GELU_AFTER_C_PROJ, or a format template's .format(...)):\n" + "\n".join(found)
    )


def test_a_copied_hint_is_found():
    """The guard itself: a hint written out again (even split over lines, or in an f-string) is
    named; the constant's name and a short fragment are not."""
    words = ["the values match ReLU: GPT-2 uses GELU (tanh approximation)."]
    copied = 'HINT = (\n    "the values match ReLU: "\n    "GPT-2 uses GELU"\n)\nNAME = "ReLU"\n'
    assert copies(copied, words) == ["2: 'the values match ReLU: GPT-2 uses GELU'"]
    assert copies('f"the values match ReLU: GPT-2 uses {x}"', words) != []
    assert copies("HINT = step_02.RELU\nPART = 'match ReLU'\n", words) == []
