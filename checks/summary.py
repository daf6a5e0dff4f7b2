"""The words of a step's report: each check's PASS/FAIL/SKIP line, then the verdict, what next."""

from __future__ import annotations

from checks import harness


def print_report(results: list, verbose: bool) -> None:
    """One line per check, each failure's messages under it (a message seen above only once)."""
    shown: set[str] = set()
    for result in results:
        if result.skipped:
            print(f"  SKIP  {result.title}: {result.messages[0]}")
            continue
        print(f"  {'PASS' if result.passed else 'FAIL'}  {result.title}")
        for line in result.notes:
            print(f"        {line}")
        if result.passed:
            continue
        for message in result.messages:
            if message in shown:
                print("        (the same problem as above)")
                continue
            shown.add(message)
            lines = message.splitlines()
            print(f"        {lines[0]}")
            for line in lines[1:]:
                print(f"        {line.strip()}")
        if verbose and result.traceback:
            print(result.traceback)


def next_after(step: int) -> str:
    """What to do once `step` passes: a chapter's own next move, or the next entry in course order."""
    own = {
        "step_11": f" Run your model: {harness.command('gpt2')}.",
        "ext_kv_cache": f" Compare the speeds: {harness.command('bench')}. Next: serving it.",
        "ext_serve": f" Serve it: {harness.command('serve', '--model', 'DIR')}.",
        "ext_mojo": f" Compare the speeds: {harness.command('bench')}.",
    }.get(harness.module_name(step))
    following = harness.next_step(step)
    if own is not None or following is None:
        return own or ""
    return f" Next: {in_a_sentence(harness.step_name(following))}."


def in_a_sentence(name: str) -> str:
    """A step's name inside a sentence: "step 4", "the KV-cache extension"."""
    return name.replace("Step", "step").replace("The", "the")


# What a step's checks compare the learner's code with, where it is not HuggingFace: step 3's mask
# is compared with its rule, value by value (HuggingFace has no such function to call).
COMPARED_WITH = {"step_03": "the causal-mask rule"}


def verdict(step: int, results: list, elapsed: float, failing_earlier: int | None = None) -> str:
    """The report's last paragraph: the step passes (and what next), or how much failed and,
    when a step it imports fails its own check, that one is to fix first."""
    name = harness.step_name(step)
    if not results:
        return "\nNo checks ran: the checker could not collect its tests (run with -v)."
    failed = [r for r in results if not r.passed]
    if not failed:
        return (
            f"\n{name} passes: all {len(results)} checks match "
            f"{COMPARED_WITH.get(harness.module_name(step), 'HuggingFace')} ({elapsed:.1f} s)."
            + next_after(step)
        )
    lines = []
    if failing_earlier is not None:
        earlier = in_a_sentence(harness.step_name(failing_earlier))
        lines.append(
            f"\n{name} runs on your {earlier.removeprefix('the ')}, which does not pass its own "
            f"check yet: fix {earlier} first ({harness.step_command(failing_earlier)})."
        )
    lines.append(
        f"\n{name} is not done yet: {len(failed)} of {len(results)} checks failed "
        f"({elapsed:.1f} s). Start with the first failure above."
    )
    return "\n".join(lines)


def not_loaded(step: int, error: Exception) -> str:
    """The report of a step whose file could not even be loaded."""
    return (
        f"  FAIL  {error}\n\n{harness.step_name(step)} is not done yet: fix the problem above, "
        "then run the check again."
    )
