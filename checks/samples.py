"""Write the sample reports the docs pages show, by running the checker as a learner would.

    python -m checks.samples            # rewrite docs/reports/<module>_{skeleton,solution}.txt
                                        # and checks/skeletons/ (what `reset` restores)
    python -m checks.samples ext_loss   # only these modules' reports (each run takes seconds)

Each step page includes two reports: the untouched skeleton's (what a learner sees first) and the
solution's (what passing looks like). A chapter after step 11 is met with steps 1-11 done, so its
skeleton's report is made with the solutions of every other file. tests/test_solutions_and_skeletons.py runs the same commands
and fails when a page's sample no longer matches what the checker prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from checks import course, harness, tools
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


def command(step: int, solution: bool, folder: Path | None = None) -> list[str]:
    where = ["--solutions"] if solution else ["--dir", str(folder)] if folder else []
    return [sys.executable, "-m", "checks", harness.step_argument(step), *where]


@contextlib.contextmanager
def learner_folder(step: int) -> Iterator[Path | None]:
    """Where a learner meeting `step`'s skeleton has their code: steps/ (None) for a numbered
    step; for a chapter after step 11, the solutions with the chapter's own files untouched."""
    entry = course.BY_ID[step]
    if not entry.extension:
        yield None
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "steps"
        shutil.copytree(ROOT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
        for name in (f"{entry.module}.py", *entry.also):
            shutil.copy(ROOT / "steps" / name, folder / name)
        yield folder


def as_sample(stdout: str, folder: Path | None = None) -> str:
    """The report as a learner would see it for their own steps/ file, minus progress lines."""
    lines = [line for line in stdout.splitlines() if not PROGRESS.match(line)]
    text = "\n".join(lines).strip() + "\n"
    text = text.replace("[solutions/", "[steps/")
    if folder is not None:  # the header names the folder relative to the repository
        text = text.replace(f"[{os.path.relpath(folder, ROOT)}/", "[steps/")
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
            with learner_folder(step) as folder:
                run = subprocess.run(
                    command(step, solution, folder),
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    env=harness.child_env(),
                )
            path, sample = report_path(step, solution), as_sample(run.stdout, folder)
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
