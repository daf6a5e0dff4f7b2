"""What a learner reaches for between checks: progress, hint, reset, warm and save-model.

python -m checks progress      # pixi run progress: every step passed / failing / not started
python -m checks hint 4        # pixi run hint 4: the hints of step 4, one at a time
python -m checks reset 4       # pixi run reset 4: steps/step_04.py back to the skeleton
python -m checks warm          # pixi run warm: compile ahead what the checks compile
python -m checks save-model D  # pixi run save-model D: a small GPT-2 folder for --model
"""

from __future__ import annotations

import functools
import os
import time
import tomllib
from pathlib import Path
from typing import Callable

from checks import harness
from checks.course import BY_ID, COLD_SECONDS

ALL_STEPS = harness.ALL_STEPS  # the eleven steps and the extensions
HINTS = harness.ROOT / "checks" / "hints"
# The skeletons as shipped, so `reset` can restore one and `progress` can tell an untouched one:
# plain copies of steps/, readable and diffable (a test keeps them equal to steps/).
SKELETONS = harness.ROOT / "checks" / "skeletons"


# --- skeletons ----------------------------------------------------------------------------------


def step_files(step: int) -> list[str]:
    """The learner's files of a step, relative to steps/: its module and any others (a kernel)."""
    return [f"{harness.module_name(step)}.py", *BY_ID[step].also]


@functools.cache
def skeletons() -> dict[int, str]:
    """The shipped skeletons by step; a chapter not yet snapshot has none (never "untouched")."""
    paths = {step: SKELETONS / f"{harness.module_name(step)}.py" for step in ALL_STEPS}
    return {step: path.read_text() for step, path in paths.items() if path.exists()}


def write_skeletons() -> None:
    """Maintainers: snapshot steps/ after changing a skeleton (python -m checks.samples does it)."""
    for step in ALL_STEPS:
        for name in step_files(step):
            (SKELETONS / name).parent.mkdir(parents=True, exist_ok=True)
            (SKELETONS / name).write_text((harness.ROOT / "steps" / name).read_text())
    skeletons.cache_clear()


def untouched(folder: Path, step: int) -> bool:
    """The learner's file is the shipped skeleton; or neither exists (a chapter still being written)."""
    path = folder / f"{harness.module_name(step)}.py"
    return (path.read_text() if path.exists() else None) == skeletons().get(step)


# --- progress -----------------------------------------------------------------------------------


def progress(
    run_step: Callable[[int], list], fresh: bool = False, prepare: Callable[[], None] = lambda: None
) -> bool:
    """One line per step: passed, failing (with the first failure) or not started; then what next.

    A step's verdict comes from its last check when the code is the same (`python -m checks N`
    keeps it: see checks/verdicts.py); otherwise its eager checks run now (a second or two each,
    warm), and their verdict is kept too. `fresh` (`python -m checks all`) runs every check."""
    from checks import options, verdicts

    folder = harness.steps_dir()
    print(f"Your progress ({os.path.relpath(folder)}):")
    passed, next_step, from_records, ran_now, stale = 0, None, 0, 0, 0
    for step in ALL_STEPS:
        title = harness.STEP_TITLES[step]
        verdict = None if fresh or untouched(folder, step) else verdicts.recorded(step)
        source = ""
        if untouched(folder, step):
            status, detail = "not started", ""
        elif verdict is not None:
            status = "passed" if verdict.passed else "failing"
            detail = verdict.detail
            changed = ", ".join(str(used) for used in verdict.changed_uses())
            stale += bool(changed)
            source = (
                f"  [checked at {verdict.clock()}"
                + (", eager checks only" if verdict.eager_only else "")
                + (f", before you changed step {changed}" if changed else "")
                + "]"
            )
            from_records += 1
        else:
            if not ran_now:
                prepare()  # MAX, only now that a check must run
            eager_only = not fresh or options.current().eager_only
            try:
                with options.changed(eager_only=eager_only):  # this step's run only
                    harness.load_step(step)
                    results = run_step(step)
                failed = [r for r in results if not r.passed]
                status = "passed" if results and not failed else "failing"
                detail = verdicts.first_failure(results)
            except harness.LearnerError as error:
                status, detail = "failing", str(error)
            verdicts.record(step, status == "passed", detail, eager_only=eager_only)
            ran_now += 1
            source = "  [checked now, eager checks only]" if not fresh else ""
        passed += status == "passed" and step in harness.STEPS
        if status != "passed" and next_step is None:
            next_step = step
        print(f"  step {harness.step_argument(step):>2}  {status:<11}  {title}{source}", flush=True)
        for line in (
            detail.splitlines()[:1] + [line for line in detail.splitlines() if "Hint:" in line][:1]
        ):
            print(f"{'':27}{shorten(line.strip(), 150)}", flush=True)
    legend = [
        "[checked at HH:MM]: the verdict of your last check of the same code." * bool(from_records),
        "Before you changed step N: the step's own code is the same, but a step it imports "
        "changed since; its own check runs on the new one." * bool(stale),
        "[checked now]: the code changed since its last check, so its eager checks ran now (the "
        "step's own check runs the compiled ones too)." * bool(ran_now and not fresh),
    ]
    if any(legend):
        print("\n" + "\n".join(line for line in legend if line))
    print(f"\n{passed} of {len(harness.STEPS)} steps pass.", end=" ")
    return say_what_next(next_step)


def say_what_next(next_step: int | str | None) -> bool:
    """The end of progress's last line: what to do next; True when every step passes."""
    if next_step is None:
        print(
            f"Every step and extension passes. Compare the speeds: {harness.command('bench')}; "
            f"serve your model: {harness.command('serve')}."
        )
        return True
    if next_step in harness.EXTENSIONS:
        done = (
            f"Every step passes: run your model with {harness.command('gpt2')}."
            if next_step == harness.KV_CACHE
            else "Every step and the KV cache pass."
        )
        print(
            f"{done} Next: {harness.step_name(next_step).lower().removeprefix('the ')} "
            f"({harness.step_command(next_step)} shows the details, "
            f"{harness.command('hint', harness.step_argument(next_step))} helps)."
        )
        return True
    print(
        f"Next: step {next_step} ({harness.step_command(next_step)} shows the details, "
        f"{harness.command('hint', harness.step_argument(next_step))} helps)."
    )
    return False


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- hint ---------------------------------------------------------------------------------------


def hints(step: int) -> list[str]:
    return tomllib.loads((HINTS / f"{harness.module_name(step)}.toml").read_text())["hints"]


def hint(step: int, ask: Callable[[str], str] = input) -> bool:
    """The step's hints in increasing detail, each after the learner asks for it."""
    all_hints = hints(step)
    name = harness.step_name(step)
    print(f"Hints for {name[0].lower()}{name[1:]}: {harness.STEP_TITLES[step]}")
    for number, text in enumerate(all_hints, 1):
        print(f"\n  {number}/{len(all_hints)}  {text}")
        if number == len(all_hints):
            break
        try:
            answer = ask("\nEnter for a more detailed hint, q to stop: ")
        except EOFError:
            print()
            break
        if answer.strip().lower() in {"q", "quit", "exit"}:
            break
    print(
        f"\nCheck your work: {harness.step_command(step)}. The whole answer: "
        f"solutions/{harness.module_name(step)}.py."
    )
    return True


# --- reset --------------------------------------------------------------------------------------


def reset(step: int, yes: bool = False, ask: Callable[[str], str] = input) -> bool:
    """Put the skeleton back in place of the step's files, keeping the learner's versions as
    backups."""
    folder = harness.steps_dir()
    changed = [
        folder / name
        for name in step_files(step)
        if not (folder / name).exists()
        or (folder / name).read_text() != (SKELETONS / name).read_text()
    ]
    shown = " and ".join(os.path.relpath(path) for path in changed)
    if not changed:
        print(
            f"{os.path.relpath(folder / step_files(step)[0])} is already the untouched skeleton: nothing to do."
        )
        return True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backups = [path.with_name(f"{path.name}.bak-{stamp}") for path in changed]
    if not yes:
        kept = [os.path.relpath(b) for b, p in zip(backups, changed, strict=True) if p.exists()]
        keep = f" Your version is kept as {' and '.join(kept)}." if kept else ""
        try:
            answer = ask(f"Replace {shown} with the untouched skeleton?{keep} [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in {"y", "yes"}:
            print("Nothing changed.")
            return False
    for path, backup in zip(changed, backups, strict=True):
        if path.exists():
            path.rename(backup)
            print(f"Your version is now {os.path.relpath(backup)}.")
        path.write_text((SKELETONS / path.relative_to(folder)).read_text())
    print(
        f"{shown} is the skeleton again. Start with its TODO 1; {harness.step_command(step)} "
        "checks it."
    )
    return True


# --- warm ---------------------------------------------------------------------------------------


def can_warm() -> bool:
    """Whether the reference solutions warm runs are here; else one sentence, and False."""
    folder = harness.steps_dir()
    missing = [
        step
        for step in harness.COMPILING_STEPS
        if not (folder / f"{harness.module_name(step)}.py").exists()
    ]
    if missing:
        print(
            f"Nothing was warmed: warm compiles what the checks compile by checking the reference "
            f"answers in {os.path.relpath(folder)}/, and this copy has "
            + ("no such folder" if not folder.is_dir() else f"{len(missing)} of them missing")
            + "; without it your first checks compile as they go (each says so)."
        )
        return False
    return True


def warm(run_step: Callable[[int], list], only: int | None = None) -> bool:
    """Run every compiling check (or step `only`'s) on the reference solutions, so MAX compiles
    its kernels, the checks' graphs and HuggingFace's reference outputs once, ahead of the
    learner's first checks. Checks that passed before compile too: warming is compiling."""
    steps = [step for step in ALL_STEPS if step in harness.COMPILING_STEPS and only in (None, step)]
    if not steps:
        print(f"Step {harness.step_argument(only)}'s check compiles nothing: nothing to warm.")
        return True
    total = sum(COLD_SECONDS[step] for step in steps)
    print(
        "Warming the caches: MAX's kernels, the checks' graphs and HuggingFace's reference "
        "outputs.\nOn an empty cache this takes several minutes on 2 cores; read the setup page "
        "meanwhile.",
        flush=True,
    )
    start, expected_so_far, failed = time.monotonic(), 0, []
    for number, step in enumerate(steps):
        elapsed = time.monotonic() - start
        pace = elapsed / expected_so_far if expected_so_far else 1.0
        left = (total - expected_so_far) * pace
        filled = round(20 * expected_so_far / total)
        print(
            f"  [{'#' * filled}{'.' * (20 - filled)}] {number}/{len(steps)}  step "
            f"{harness.step_argument(step):>2}: {harness.STEP_TITLES[step]}  "
            f"({minutes(elapsed)} so far, about {minutes(left)} left)",
            flush=True,
        )
        results = run_step(step)
        if not results or not all(r.passed for r in results):
            failed.append(harness.step_argument(step))
            print(
                f"      the reference solution of step {harness.step_argument(step)} did not pass "
                "its check here: run python -m checks "
                f"{harness.step_argument(step)} --solutions to see why."
            )
        expected_so_far += COLD_SECONDS[step]
    took = minutes(time.monotonic() - start)
    if failed:
        print(
            f"  {len(steps) - len(failed)} of {len(steps)} steps warmed in {took}; steps "
            f"{', '.join(map(str, failed))} did not (see above), so their checks will compile."
        )
        return False
    print(
        f"  [{'#' * 20}] {len(steps)}/{len(steps)}  done in {took}. "
        "A check whose code matches the reference now skips its compiles; your own graphs "
        "compile once each (10-60 s), on MAX's warm kernels."
    )
    return True


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


# --- save-model ---------------------------------------------------------------------------------


def save_model(folder: Path) -> bool:
    """A small random GPT-2 and a working tokenizer, saved as `--model` and from_pretrained expect."""
    from checks.reference import save_small_model

    if folder.exists() and any(folder.iterdir()):
        print(f"{folder} is not empty: give a new folder, so nothing of yours is overwritten.")
        return False
    save_small_model(folder)
    print(
        f"Saved a small GPT-2 (2 layers, 32 wide, random weights; the checks' tokenizer) in "
        f'{folder}.\nTry it: python steps/step_11.py --model {folder} --prompt "Hello" --greedy'
    )
    return True
