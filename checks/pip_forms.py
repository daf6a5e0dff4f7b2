"""Write the pip form of every `pixi run` command into the docs pages, from pixi.toml's [tasks].

    python -m checks.pip_forms    # rewrite the pip forms on every page of docs/

The forms are in the pages' source, not added at build time, so mkdocs and Zensical (which runs
no mkdocs hook) render the same pages. A fenced block with pixi commands becomes two content tabs,
"pixi" (as written) and "pip" (each command's pip form); a command in a code span gets
"(pip: `...`)" after it, unless the page's own words give the pip form within the sentence. A
page's own `=== "pixi"` tab (beside a pip tab of its own) is left alone. A task pixi.toml does not
have is an error; tests/test_docs.py fails on it and on a page whose forms are not these.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from checks.course import ROOT

DOCS = ROOT / "docs"
# How the pages name a step in general: `pixi run sN` is `python -m checks N`.
PLACEHOLDERS = {"sN": "python -m checks N"}
COMMAND = re.compile(r"pixi run ([A-Za-z0-9][\w-]*)((?: [^\s`#|&;]+)*)")
FENCE = re.compile(r"^( *)(`{3,}|~{3,})")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PIXI_TAB = re.compile(r'^( *)=== "pixi')
# How far after a code span the page may already give the pip form itself.
NEARBY = 80
# What with_pip_forms writes, matched to take it out again.
WRITTEN_SPAN = re.compile(r"(`pixi run [^`\n]+`) \(pip: `[^`\n]+`\)")
WRITTEN_TABS = re.compile(
    r'^(?P<indent> *)=== "pixi"\n\n'
    r"(?P<block>(?P=indent)    (?P<fence>`{3,}|~{3,}).*\n(?:.*\n)*?(?P=indent)    (?P=fence)\n)"
    r'\n(?P=indent)=== "pip"\n\n'
    r"(?P=indent)    (?P=fence).*\n(?:.*\n)*?(?P=indent)    (?P=fence)\n",
    re.M,
)


def tasks() -> dict[str, str]:
    return {**tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"], **PLACEHOLDERS}


def pages() -> list[Path]:
    return sorted([*DOCS.glob("*.md"), *DOCS.glob("steps/*.md")])


def without_pip_forms(markdown: str) -> str:
    """The page as its author wrote it: what with_pip_forms added taken out."""

    def pixi_block(tabs: re.Match) -> str:
        return "\n".join(line[4:] for line in tabs.group("block").split("\n"))

    return WRITTEN_SPAN.sub(r"\1", WRITTEN_TABS.sub(pixi_block, markdown))


def with_pip_forms(markdown: str, where: str = "the page") -> str:
    """The page with the pip form of each of its pixi commands; the same text for a page that
    has them already (older forms are replaced)."""
    known = tasks()
    lines = without_pip_forms(markdown).split("\n")
    out: list[str] = []
    pixi_tab: int | None = None  # the indent of a page's own pixi tab we are inside
    index = 0
    while index < len(lines):
        line = lines[index]
        indent = len(line) - len(line.lstrip(" "))
        if pixi_tab is not None and line.strip() and indent <= pixi_tab:
            pixi_tab = None
        tab = PIXI_TAB.match(line)
        if tab:
            pixi_tab = len(tab.group(1))
        fence = FENCE.match(line)
        if fence:
            end = index + 1
            while end < len(lines) and not lines[end].strip().startswith(fence.group(2)):
                end += 1
            block = lines[index : end + 1]
            index = end + 1
            if pixi_tab is None and any(COMMAND.search(b) for b in block[1:-1]):
                out.extend(tabbed(block, fence.group(1), where, known))
            else:
                out.extend(block)
            continue
        if pixi_tab is None and "pixi run" in line:
            line = with_pip_spans(line, where, known)
        out.append(line)
        index += 1
    return "\n".join(out)


def pip_form(match: re.Match, where: str, known: dict[str, str]) -> str:
    task, args = match.group(1), match.group(2)
    if task not in known:
        raise ValueError(f"{where}: `pixi run {task}` is not a task of pixi.toml")
    return known[task] + args


def pip_line(line: str, where: str, known: dict[str, str]) -> str:
    """A code line with each pixi command replaced by its pip form, its comment kept in its
    column where the line leaves room."""
    code, hash_, comment = line.partition("#")
    if "pixi run" not in code:
        return line
    replaced = COMMAND.sub(lambda m: pip_form(m, where, known), code)
    if hash_:
        replaced = replaced.rstrip().ljust(len(code) - 2) + "  "
    return replaced + hash_ + comment


def tabbed(block: list[str], indent: str, where: str, known: dict[str, str]) -> list[str]:
    """A fenced block as a "pixi" tab (as written) and a "pip" tab (each command's pip form)."""
    pip = [block[0], *(pip_line(b, where, known) for b in block[1:-1]), block[-1]]
    out: list[str] = []
    for label, body in (("pixi", block), ("pip", pip)):
        out += ["", f'{indent}=== "{label}"', ""]
        out += [f"    {b}" if b.strip() else b for b in body]
    return out[1:]


def with_pip_spans(line: str, where: str, known: dict[str, str]) -> str:
    def add(span: re.Match) -> str:
        command = COMMAND.fullmatch(span.group(1).strip())
        if not command:
            return span.group(0)
        form = pip_form(command, where, known)
        after = line[span.end() : span.end() + NEARBY]
        if f"`{form}`" in after or f"`{form.removeprefix('python ')}`" in after:
            return span.group(0)
        return f"{span.group(0)} (pip: `{form}`)"

    return SPAN.sub(add, line)


def main() -> int:
    for page in pages():
        source = page.read_text()
        written = with_pip_forms(source, page.relative_to(DOCS).as_posix())
        if written != source:
            page.write_text(written)
            print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
