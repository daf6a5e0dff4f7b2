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
    """What to do once `step` passes."""
    return {
        11: f" Run your model: {harness.command('gpt2')}.",
        harness.KV_CACHE: f" Compare the speeds: {harness.command('bench')}. Next: serving it.",
        harness.SERVING: f" Serve it: {harness.command('serve', '--model', 'DIR')}.",
        harness.MOJO: f" Compare the speeds: {harness.command('bench')}.",
    }.get(step, f" Next: step {step + 1}.")


# What a step's checks compare the learner's code with, where it is not HuggingFace: step 3's mask
# is compared with its rule, value by value (HuggingFace has no such function to call).
COMPARED_WITH = {3: "the causal-mask rule"}


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
            f"{COMPARED_WITH.get(step, 'HuggingFace')} ({elapsed:.1f} s)." + next_after(step)
        )
    lines = []
    if failing_earlier is not None:
        earlier = harness.step_name(failing_earlier).replace("Step", "step").replace("The", "the")
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
