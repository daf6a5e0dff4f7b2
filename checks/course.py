"""The course's steps, read from course.toml: the one place that names them.

A step is known inside the checker by its number (`id`, the extensions are 12-14); learners name
it as `python -m checks` takes it (`cli`: "4", "kv") and by its pixi task (`task`: "s4",
"check-kv"; `aliases`: older task names that still work, "kv").
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "course.toml"


@dataclass(frozen=True)
class Step:
    id: int
    name: str  # "Step 4", "The KV-cache extension"
    task: str  # "s4", "check-kv"
    cli: str  # "4", "kv"
    module: str  # "step_04", "ext_kv_cache"
    title: str
    uses: tuple[int, ...]
    page: str
    nav: str
    compiles: bool
    extension: bool = False
    also: tuple[str, ...] = ()  # the step's other files in steps/ ("kernels/gemv.mojo")
    cold_seconds: float = 0.0  # its check's time on an empty MAX cache (warm's estimate)
    bench: bool = False  # `pixi run bench` runs this step's code
    aliases: tuple[str, ...] = ()  # older pixi task names for `task` ("kv")


def _load() -> dict[int, Step]:
    entries = tomllib.loads(MANIFEST.read_text())["step"]
    return {
        entry["id"]: Step(
            **{
                **entry,
                "uses": tuple(entry["uses"]),
                "also": tuple(entry.get("also", ())),
                "aliases": tuple(entry.get("aliases", ())),
            }
        )
        for entry in entries
    }


BY_ID = _load()
PIXI_TASKS: dict[str, str] = tomllib.loads((ROOT / "pixi.toml").read_text())["tasks"]
ALL_STEPS = tuple(BY_ID)  # the steps, then the extension chapters, in order
STEPS = tuple(step for step in ALL_STEPS if not BY_ID[step].extension)  # the numbered steps
EXTENSIONS = tuple(step for step in ALL_STEPS if BY_ID[step].extension)
STEP_TITLES = {step: BY_ID[step].title for step in ALL_STEPS}
STEP_USES = {step: list(BY_ID[step].uses) for step in ALL_STEPS if BY_ID[step].uses}
COMPILING_STEPS = frozenset(step for step in ALL_STEPS if BY_ID[step].compiles)
COLD_SECONDS = {step: BY_ID[step].cold_seconds for step in ALL_STEPS if BY_ID[step].compiles}
# The steps whose code `pixi run bench` runs, in course order (each must be done first).
BENCH_NEEDS = tuple(step for step in ALL_STEPS if BY_ID[step].bench)


def module_name(step: int) -> str:
    return BY_ID[step].module


def step_name(step: int) -> str:
    """How reports name a step: "Step 4", or "The KV-cache extension"."""
    return BY_ID[step].name


def step_argument(step: int) -> str:
    """The step as `python -m checks` takes it: "4", or "kv"."""
    return BY_ID[step].cli


def command(task: str, *args: str) -> str:
    """How the learner runs pixi task `task`: `pixi run s4` under pixi, else the line the task
    runs (`python -m checks 4`), read from pixi.toml, so that both forms always agree."""
    from checks.runtime import launched_by_pixi

    words = [f"pixi run {task}" if launched_by_pixi() else PIXI_TASKS[task], *args]
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
