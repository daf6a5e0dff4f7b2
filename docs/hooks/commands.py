"""A mkdocs hook: every `pixi run TASK ARGS` on a page shows its pip form beside it.

The pip form comes from pixi.toml's [tasks] at build time (`pixi run s4` is `python -m checks 4`),
so the two cannot drift. Code blocks become two content tabs, "pixi" and "pip"; a command in a code
span gets "(pip: `...`)" after it, unless the pip form already follows within the sentence. A
page's own `=== "pixi"` tab (beside a pip tab of its own) is left alone. A task pixi.toml does
not have fails the build.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
# How the pages name a step in general: `pixi run sN` is `python -m checks N`.
PLACEHOLDERS = {"sN": "python -m checks N"}
COMMAND = re.compile(r"pixi run ([A-Za-z0-9][\w-]*)((?: [^\s`#|&;]+)*)")
FENCE = re.compile(r"^( *)(`{3,}|~{3,})")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PIXI_TAB = re.compile(r'^( *)=== "pixi')
# How far after a code span the page may already give the pip form itself.
NEARBY = 80


def tasks() -> dict[str, str]:
    return {**tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"], **PLACEHOLDERS}


def pip_form(match: re.Match, where: str, known: dict[str, str]) -> str:
    task, args = match.group(1), match.group(2)
    if task not in known:
        raise PluginError(f"{where}: `pixi run {task}` is not a task of pixi.toml")
    return known[task] + args


def pip_line(line: str, where: str, known: dict[str, str]) -> str:
    """A code line with each pixi command replaced by its pip form; a trailing comment that only
    gave the pip form goes."""
    code, hash_, comment = line.partition("#")
    if "pixi run" not in code:
        return line
    replaced = COMMAND.sub(lambda m: pip_form(m, where, known), code)
    if hash_ and replaced.strip() in comment:
        return replaced.rstrip()
    return replaced + hash_ + comment


def on_page_markdown(markdown: str, page, config, files) -> str:
    where = page.file.src_uri
    known = tasks()
    lines = markdown.split("\n")
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


def tabbed(block: list[str], indent: str, where: str, known: dict[str, str]) -> list[str]:
    """A fenced block as a "pixi" tab (as written) and a "pip" tab (each command's pip form)."""
    pip = [block[0], *(pip_line(b, where, known) for b in block[1:-1]), block[-1]]
    out = [""]
    for label, body in (("pixi", block), ("pip", pip)):
        out += [f'{indent}=== "{label}"', ""]
        out += [f"    {b}" if b.strip() else b for b in body]
        out.append("")
    return out


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
