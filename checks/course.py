"""The course's steps, read from course.toml: the one place that names them, and orders them.

course.toml knows a step by its `module` ("step_04", "ext_kv_cache"). Inside the checker a step is
its number, its place in course.toml's order (the extensions, last, are 12-15 today); learners name
it as `python -m checks` takes it (`cli`: "4", "kv") and by its pixi task (`task`: "s4",
"check-kv"; `aliases`: older task names that still work, "kv"). `needs` lists every file an entry
needs, and `missing` what it still lacks (a new chapter: python -m checks.scaffold MODULE).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "course.toml"


@dataclass(frozen=True)
class Step:
    id: int  # its place in course.toml, from 1 (derived, not written there)
    name: str  # "Step 4", "The KV-cache extension"
    task: str  # "s4", "check-kv"
    cli: str  # "4", "kv"
    module: str  # "step_04", "ext_kv_cache"
    title: str
    uses: tuple[str, ...]  # the modules of the earlier steps it imports ("step_01")
    page: str
    nav: str
    compiles: bool
    extension: bool = False
    also: tuple[str, ...] = ()  # the step's other files in steps/ ("kernels/gemv.mojo")
    cold_seconds: float = 0.0  # its check's time on an empty MAX cache (warm's estimate)
    bench: bool = False  # `pixi run bench` runs this step's code
    aliases: tuple[str, ...] = ()  # older pixi task names for `task` ("kv")


def _load() -> dict[int, Step]:
    """The entries by their number: their place in course.toml, from 1."""
    entries = tomllib.loads(MANIFEST.read_text())["step"]
    return {
        number: Step(
            **{
                **entry,
                "id": number,
                "uses": tuple(entry["uses"]),
                "also": tuple(entry.get("also", ())),
                "aliases": tuple(entry.get("aliases", ())),
            }
        )
        for number, entry in enumerate(entries, start=1)
    }


BY_ID = _load()
BY_MODULE = {step.module: step.id for step in BY_ID.values()}
ALL_STEPS = tuple(BY_ID)  # the steps, then the extension chapters, in order
STEPS = tuple(step for step in ALL_STEPS if not BY_ID[step].extension)  # the numbered steps
EXTENSIONS = tuple(step for step in ALL_STEPS if BY_ID[step].extension)
STEP_TITLES = {step: BY_ID[step].title for step in ALL_STEPS}
# A name `uses` gets wrong is left out here (tests/test_course.py names it), not a crash on import.
STEP_USES = {
    step: [BY_MODULE[name] for name in BY_ID[step].uses if name in BY_MODULE]
    for step in ALL_STEPS
    if BY_ID[step].uses
}
COMPILING_STEPS = frozenset(step for step in ALL_STEPS if BY_ID[step].compiles)
COLD_SECONDS = {step: BY_ID[step].cold_seconds for step in ALL_STEPS if BY_ID[step].compiles}
# The steps whose code `pixi run bench` runs, in course order (each must be done first).
BENCH_NEEDS = tuple(step for step in ALL_STEPS if BY_ID[step].bench)


def module_name(step: int) -> str:
    return BY_ID[step].module


def next_step(step: int) -> int | None:
    """The entry after `step` in course order (None after the last)."""
    return step + 1 if step + 1 in BY_ID else None


def step_name(step: int) -> str:
    """How reports name a step: "Step 4", or "The KV-cache extension"."""
    return BY_ID[step].name


def step_argument(step: int) -> str:
    """The step as `python -m checks` takes it: "4", or "kv"."""
    return BY_ID[step].cli


@functools.cache
def pixi_tasks() -> dict[str, str]:
    """pixi.toml's [tasks], read when a message first names one (not when the checker starts)."""
    return tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]


def command(task: str, *args: str) -> str:
    """How the learner runs pixi task `task`: `pixi run s4` under pixi, else the line the task
    runs (`python -m checks 4`), read from pixi.toml, so that both forms always agree."""
    from checks.runtime import launched_by_pixi

    words = [f"pixi run {task}" if launched_by_pixi() else pixi_tasks()[task], *args]
    return " ".join(words)


def step_command(step: int) -> str:
    return command(BY_ID[step].task)


def parse_step(text: str | None) -> int | None:
    """The step that `python -m checks TEXT` names ("1"-"11", "kv"), also by its pixi task or an
    alias of it ("s4", "check-kv"); None for anything else."""
    return next(
        (
            step
            for step in ALL_STEPS
            if text in (BY_ID[step].cli, BY_ID[step].task, *BY_ID[step].aliases)
        ),
        None,
    )


def steps_in_words() -> str:
    """The steps as the command line takes them, for its help and errors: "1-11, kv, serve or mojo"."""
    numbers = [BY_ID[step].cli for step in STEPS]
    names = [f"{numbers[0]}-{numbers[-1]}", *(BY_ID[step].cli for step in EXTENSIONS)]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


KV_CACHE = parse_step("kv")
SERVING = parse_step("serve")
MOJO = parse_step("mojo")


def needs(step: int) -> dict[str, str]:
    """Every file a course entry needs, what it is -> its path from the repository's root."""
    entry, module = BY_ID[step], BY_ID[step].module
    files = {
        "skeleton": f"steps/{module}.py",
        "solution": f"solutions/{module}.py",
        "skeleton copy (python -m checks.samples writes it)": f"checks/skeletons/{module}.py",
        "check": f"checks/test_{module}.py",
        "hints": f"checks/hints/{module}.toml",
        "page": f"docs/{entry.page}",
        "skeleton's sample report (python -m checks.samples)": f"docs/reports/{module}_skeleton.txt",
        "solution's sample report (python -m checks.samples)": f"docs/reports/{module}_solution.txt",
    }
    for other in entry.also:
        files |= {
            f"skeleton's {other}": f"steps/{other}",
            f"solution's {other}": f"solutions/{other}",
            f"skeleton copy of {other}": f"checks/skeletons/{other}",
        }
    return files


def pixi_task_lines(step: int) -> list[str]:
    """The lines of pixi.toml's [tasks] that run the entry's check: its task and any alias."""
    entry = BY_ID[step]
    return [f'{task} = "python -m checks {entry.cli}"' for task in (entry.task, *entry.aliases)]


def nav_line(step: int) -> str:
    """The entry's line in mkdocs.yml's nav."""
    return f"- {BY_ID[step].nav}: {BY_ID[step].page}"


def missing(step: int) -> list[str]:
    """What the entry still lacks, one line each: its files, its pixi task, its nav entry."""
    tasks = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]
    nav = {line.strip() for line in (ROOT / "mkdocs.yml").read_text().splitlines()}
    lacking = [
        f"{path}: its {what}" for what, path in needs(step).items() if not (ROOT / path).exists()
    ]
    for line in pixi_task_lines(step):
        task, command = line.split(" = ")
        if tasks.get(task) != command.strip('"'):
            lacking.append(f"pixi.toml: the task {line} under [tasks]")
    if nav_line(step) not in nav:
        lacking.append(f"mkdocs.yml: the nav entry {nav_line(step)}")
    return lacking


def complete() -> tuple[int, ...]:
    """The entries that lack nothing: the ones the repository's tests hold to their files' words
    (an incomplete one fails one test instead, tests/test_course.py, which names what it lacks)."""
    return tuple(step for step in ALL_STEPS if not missing(step))
