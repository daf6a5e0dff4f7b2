"""The command line: `python -m checks ARGS` parsed into one Options and run (a check or a tool).

`python -m checks N` checks step N of steps/ against HuggingFace GPT-2 and prints a plain report.

    python -m checks 4                 # your steps/step_04.py
    python -m checks 4 --solutions     # the reference solution
    python -m checks 4 --dir DIR       # any folder holding step_01.py ... step_11.py
    python -m checks progress          # every step: passed, failing or not started; what next
    python -m checks watch             # check each step again whenever you save its file
    python -m checks hint 4            # step 4's hints, one at a time
    python -m checks reset 4           # steps/step_04.py back to the skeleton (asks first)
    python -m checks doctor            # versions, caches, device, GPT-2 weights
    python -m checks warm              # compile ahead, once, what the checks compile
    python -m checks warm 4            # only what step 4's check compiles
    python -m checks save-model DIR    # a small GPT-2 in DIR, for step_11.py --model DIR
    python -m checks show mask         # pictures: mask, sampling, attention --model DIR
    python -m checks 4 --device gpu    # the same check on the GPU, in bfloat16
    python -m checks 10 --dtype bfloat16  # in bfloat16 on the CPU (what a GPU runs)

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Callable

from checks import harness, options, summary, tools, verdicts
from checks.options import ROOT, Options


# `show` has its own options and is handled before these are parsed (checks/show.py).
COMMANDS = ("all", "progress", "watch", "hint", "reset", "doctor", "warm", "save-model", "show")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m checks",
        description="Check step N of steps/ against HuggingFace GPT-2 and print a plain report, "
        "or run one of the course's tools.",
    )
    parser.add_argument(
        "command",
        help=f"a step: {harness.steps_in_words()} (the last ones are the extension chapters); "
        "or all, progress, watch, hint N, reset N, doctor, warm [N], save-model DIR, "
        "show mask|sampling|attention",
    )
    parser.add_argument(
        "step", nargs="?", help="the step, for hint and reset; the folder, for save-model"
    )
    harness.add_folder_options(parser, "check")
    parser.add_argument(
        "--eager-only",
        action="store_true",
        help="skip the compiled-graph checks (faster; the full check runs both)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where the checks run MAX code (cpu, float32: the default; gpu: bfloat16)",
    )
    parser.add_argument(
        "--dtype",
        choices=harness.DTYPES,
        help="the float dtype of the checks (default: float32 on the CPU, bfloat16 on a GPU); "
        "bfloat16 widens the tolerances",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help=f"seconds per call into your code ({Options().time_limit_s:.0f})",
    )
    parser.add_argument("--yes", action="store_true", help="reset without asking")
    parser.add_argument(
        "--poll",
        action="store_true",
        default=None,
        help="watch: look for saves every second instead of waiting for file events (automatic "
        "on WSL's /mnt drives and network folders)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's full output")
    args = parser.parse_args(argv)
    if harness.parse_step(args.command) is not None or args.command.isdigit():
        args.command, args.step = "check", args.command
    elif args.command not in COMMANDS:
        parser.error(
            f"the first argument must be a step ({harness.steps_in_words()}) or one of "
            f"{', '.join(COMMANDS)}, "
            f"not {args.command!r}"
        )
    needs_step = args.command in ("check", "hint", "reset")
    if needs_step and harness.parse_step(args.step) is None:
        what = "the step must be" if args.command == "check" else f"{args.command} needs a step"
        parser.error(
            f"{what} {harness.steps_in_words()}" + (f", not {args.step!r}" if args.step else "")
        )
    if args.command == "save-model":
        if not args.step:
            parser.error("save-model needs a folder: python -m checks save-model FOLDER")
    elif args.command == "warm" and args.step and harness.parse_step(args.step) is None:
        parser.error(
            f"warm takes a step ({harness.steps_in_words()}) or nothing for every step, "
            f"not {args.step!r}"
        )
    elif not needs_step and args.step and args.command != "warm":
        parser.error(f"{args.command} takes no step number")
    return args


def pytest_arguments(test_file: str, verbose: bool) -> list[str]:
    """How the checker runs one check file in this process: only the plugins the checks use
    (autoloading every installed plugin costs seconds), no assertion rewriting (the checks report
    through pytest-check and plain messages), no hunt for unraisable exceptions at the end (five
    gc.collect() calls: 0.6 s of every check), and no rootdir config but the repository's."""
    arguments = [
        test_file,
        "-s",
        "--disable-plugin-autoload",
        "-p",
        "pytest_check.plugin",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:unraisableexception",
        "--assert=plain",
        f"--rootdir={harness.ROOT}",
        "-c",
        os.devnull,
    ]
    return arguments + (["-v", "--tb=long"] if verbose else ["-q", "--tb=no", "--no-header"])


def run_step(step: int, *, verbose: bool, quiet: bool = False, trust_passed: bool = True) -> "list":
    """Run the pytest checks of one step; returns the report's results. `trust_passed=False`
    compiles even the checks this exact code passed before (warm's job is to compile)."""
    import pytest

    from checks.report import ReportPlugin

    plugin = ReportPlugin(options.current(), trust_passed)
    test_file = str(harness.ROOT / "checks" / f"test_{harness.module_name(step)}.py")
    loud = verbose and not quiet
    with contextlib.nullcontext() if loud else contextlib.redirect_stdout(io.StringIO()):
        status = pytest.main(pytest_arguments(test_file, loud), plugins=[plugin])
    if status == pytest.ExitCode.INTERRUPTED:  # pytest ends its session on Ctrl+C; we end too
        raise KeyboardInterrupt
    if plugin.results:  # for `progress`, which answers from the last verdict of the same code
        failed = [r for r in plugin.results if not r.passed]
        verdicts.record(step, not failed, verdicts.first_failure(plugin.results))
    return plugin.results


def step_passes(step: int) -> bool:
    """Whether a step passes its own check (used to tell the learner which step to fix first):
    from its kept verdict when this exact code was checked before, else by running the check."""
    known = verdicts.still_holds(step)
    if known is not None:
        return known
    try:
        harness.load_step(step)
    except harness.LearnerError:
        return False
    results = run_step(step, verbose=False, quiet=True)
    return bool(results) and all(r.passed for r in results)


FIRST_RUN_NOTE = (
    "First MAX run on this machine: MAX compiles its kernels once (a few minutes on 2 cores;\n"
    "  `{warm}` does it ahead). Later runs reuse them and answer in seconds."
)


def check_one(step: int, verbose: bool) -> bool:
    name = harness.module_name(step)
    shown = os.path.relpath(harness.steps_dir() / f"{name}.py")
    print(f"{harness.step_name(step)}: {harness.STEP_TITLES[step]}  [{shown}]")
    cold = step in harness.COMPILING_STEPS and harness.max_cache_is_cold()
    note = FIRST_RUN_NOTE.format(warm=harness.command("warm"))
    with harness.waiting.noting(note) if cold else contextlib.nullcontext():
        start = time.perf_counter()
        try:
            harness.load_step(step)
        except harness.LearnerError as error:
            verdicts.record(step, False, str(error))
            print(summary.not_loaded(step, error))
            return False
        results = run_step(step, verbose=verbose)
    summary.print_report(results, verbose)
    passed = bool(results) and all(r.passed for r in results)
    failing_earlier = None
    # A compile failure's message names its cause: no earlier step's check (minutes, eagerly in
    # bfloat16) is run to name another.
    if results and not passed and not any(r.compile_failed for r in results):
        failing_earlier = next(
            (earlier for earlier in harness.STEP_USES.get(step, []) if not step_passes(earlier)),
            None,
        )
    elapsed = time.perf_counter() - start  # the run's wall time, the earlier steps' checks included
    print(summary.verdict(step, results, elapsed, failing_earlier))
    return passed


def exit_status(run: Callable[[], bool]) -> int:
    """0 when `run()` says all passed, else 1; a learner's error is one line, Ctrl+C says so."""
    try:
        ok = run()
    except (harness.LearnerError, harness.NoDevice) as error:
        print(error)
        return 1
    except KeyboardInterrupt:
        print("\nStopped.")
        return 130
    except BrokenPipeError:  # the output went to `head` or a closed pager
        return 1
    sys.stdout.flush()
    return 0 if ok else 1


def progress() -> int:
    """`progress` answers from the last verdicts without importing MAX (seconds saved); MAX is
    prepared only when a step changed since its last check and its checks must run now."""
    with contextlib.ExitStack() as stack:

        def prepare() -> None:
            harness.prepare_max()
            stack.enter_context(harness.pinned_defaults())

        return exit_status(
            lambda: tools.progress(
                lambda step: run_step(step, verbose=False, quiet=True), prepare=prepare
            )
        )


def options_from(args: argparse.Namespace) -> Options:
    """What the command line asked for, as the run's one `Options` (warm checks the solutions)."""
    folder = ROOT / "solutions" if args.command == "warm" else harness.chosen_folder(args)
    asked = Options(
        steps_dir=folder,
        device=args.device,
        dtype=args.dtype or ("bfloat16" if args.device == "gpu" else "float32"),
        eager_only=args.eager_only,
    )
    return asked.but(time_limit_s=args.time_limit) if args.time_limit else asked


def check_arguments(run: Options) -> list[str]:
    """The options of a check that `watch` starts as a child: the same as this run's."""
    arguments = ["--eager-only"] if run.eager_only else []
    arguments += ["--device", run.device, "--dtype", run.dtype]
    if run.time_limit_s != Options().time_limit_s:
        arguments += ["--time-limit", str(run.time_limit_s)]
    return arguments


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["show"]:  # its own options (--model, --prompt, --out): see checks/show.py
        from checks import show

        return show.main(argv[1:])
    args = parse_args(argv)
    run_options = options_from(args)
    options.use(run_options)
    harness.use_steps_dir(run_options.steps_dir)
    if args.command == "warm" and not tools.can_warm():
        return 1
    if args.command == "hint":
        return 0 if tools.hint(harness.parse_step(args.step)) else 1
    if args.command == "reset":
        return 0 if tools.reset(harness.parse_step(args.step), yes=args.yes) else 1
    if args.command == "save-model":
        return 0 if tools.save_model(Path(args.step)) else 1
    if args.command == "progress":
        return progress()
    if args.command == "watch":
        from checks import watch

        return watch.watch(run_options.steps_dir, args.poll, check_arguments(run_options))
    harness.prepare_max()
    if args.command == "doctor":
        from checks.doctor import doctor

        return exit_status(doctor)

    def run() -> bool:
        with harness.pinned_defaults():
            if args.command == "check":
                return check_one(harness.parse_step(args.step), args.verbose)
            if args.command == "warm":
                return tools.warm(
                    lambda step: run_step(step, verbose=False, quiet=True, trust_passed=False),
                    harness.parse_step(args.step) if args.step else None,
                )
            return tools.progress(  # all
                lambda step: run_step(step, verbose=False, quiet=True), fresh=True
            )

    return exit_status(run)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # MAX's and torch's teardown takes seconds after the report is out and changes nothing.
    os._exit(status)
