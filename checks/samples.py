"""Write the sample reports the docs pages show, by running the checker as a learner would.

    python -m checks.samples            # rewrite docs/reports/<module>_{skeleton,solution}.txt
                                        # and checks/skeletons/ (what `reset` restores)
    python -m checks.samples ext_loss   # only these modules' reports (each run takes seconds)

Each step page includes two reports: the untouched skeleton's (what a learner sees first) and the
solution's (what passing looks like). tests/test_solutions_and_skeletons.py runs the same commands
and fails when a page's sample no longer matches what the checker prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from checks import harness, tools
from checks.harness import ROOT

REPORTS = ROOT / "docs" / "reports"
STEPS = harness.ALL_STEPS
# Lines that depend on the machine's state rather than on the learner's code.
PROGRESS = re.compile(r"^  (…|First MAX run|`(pixi run|python -m checks) warm` does it ahead)")
TEMPORARY = re.compile(re.escape(tempfile.gettempdir()) + r"/[\w.-]+")
SMALL_MODEL = re.compile(r"/\S*/build/reference-cache/small-model-[0-9a-f]+")
SECONDS = re.compile(r"\d+(\.\d+)? s\)")
SPEEDS = re.compile(r"\d+(\.\d+)? (ms|GB/s|%)")


def report_path(step: int, solution: bool) -> Path:
    return REPORTS / f"{harness.module_name(step)}_{'solution' if solution else 'skeleton'}.txt"


def command(step: int, solution: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "checks",
        harness.step_argument(step),
        *(["--solutions"] if solution else []),
    ]


def as_sample(stdout: str) -> str:
    """The report as a learner would see it for their own steps/ file, minus progress lines."""
    lines = [line for line in stdout.splitlines() if not PROGRESS.match(line)]
    text = "\n".join(lines).strip() + "\n"
    text = text.replace("[solutions/", "[steps/")
    return TEMPORARY.sub("/tmp/gpt2-small", SMALL_MODEL.sub("/tmp/gpt2-small", text))


def comparable(sample: str) -> str:
    """Two samples that differ only in timings compare equal."""
    return SPEEDS.sub(r"N \2", SECONDS.sub("N s)", sample))


def main(modules: list[str]) -> int:
    tools.write_skeletons()
    REPORTS.mkdir(parents=True, exist_ok=True)
    unknown = set(modules) - {harness.module_name(step) for step in STEPS}
    if unknown:
        print(f"No course entry has the module {', '.join(sorted(unknown))} (course.toml).")
        return 2
    for step in [step for step in STEPS if not modules or harness.module_name(step) in modules]:
        for solution in (False, True):
            run = subprocess.run(
                command(step, solution),
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=harness.child_env(),
            )
            path, sample = report_path(step, solution), as_sample(run.stdout)
            # Timings vary from run to run: keep a page's sample unless its words changed.
            changed = not path.exists() or comparable(path.read_text()) != comparable(sample)
            if changed:
                path.write_text(sample)
            print(
                f"{harness.module_name(step)} {'solution' if solution else 'skeleton'}: exit {run.returncode}"
                f"{', rewritten' if changed else ''}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
