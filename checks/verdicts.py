"""The last verdict of each step's check, kept for the exact code it judged, a few per step.

Every check run writes one; `progress` reads them, so it answers in a second instead of
running every check again (20-40 s on 2 cores), and runs a check only where the step's own code
changed. A verdict is keyed by the step's own files, the checker's code, MAX's version, the
device and dtype; it remembers the files of the steps it imports, so `progress` can say "checked
before you changed step 5" instead of checking every later step again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from checks import harness, options
from checks.course import BY_ID, STEP_USES

FOLDER = harness.ROOT / "build" / "verdicts"
# Verdicts kept per step: one per version of its code, and `progress` only ever reads the newest;
# a few more let an undo find its verdict again. The oldest go first (see keep_newest).
KEEP_PER_STEP = 8


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str  # the first failure's message, "" when it passed
    eager_only: bool  # only the eager checks ran
    when: float  # time.time() of the check
    uses: dict[str, str] = field(default_factory=dict)  # imported step -> its files' digest

    def clock(self) -> str:
        return time.strftime("%H:%M", time.localtime(self.when))

    def changed_uses(self) -> list[int]:
        """The imported steps whose files changed since this check."""
        return sorted(
            int(step) for step, digest in self.uses.items() if files_digest(int(step)) != digest
        )


def _steps_with_uses(step: int) -> list[int]:
    """The step and, transitively, every step its files import."""
    seen: list[int] = []
    todo = [step]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.append(current)
            todo.extend(STEP_USES.get(current, []))
    return sorted(seen)


def files_digest(step: int) -> str:
    """The step's own files in the learner's folder, as one hash."""
    digest = hashlib.sha256()
    folder = harness.steps_dir()
    for name in [f"{harness.module_name(step)}.py", *BY_ID[step].also]:
        path = folder / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"<missing>"))
    return digest.hexdigest()


def checker_digest() -> str:
    """What judges the code, as one hash: the checker's files, MAX's version, the device, dtype."""
    digest = hashlib.sha256()
    for path in sorted((harness.ROOT / "checks").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    current = options.current()
    digest.update(repr((importlib.metadata.version("max"), current.device, current.dtype)).encode())
    return digest.hexdigest()


def code_digest(step: int) -> str:
    """What a verdict of `step` is keyed by (see the module's docstring), as one hash."""
    return hashlib.sha256((files_digest(step) + checker_digest()).encode()).hexdigest()


def _path(step: int, eager_only: bool) -> Path:
    key = f"{step}\n{eager_only}\n{code_digest(step)}"
    return FOLDER / f"{step}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def keep_newest(folder: Path, pattern: str, keep: int, written: Path | None = None) -> None:
    """Delete all but the `keep` newest files of `folder` matching `pattern` (by modification
    time; `written`, the one just written, always stays): every record the checker keeps is keyed
    by code, so each edit adds one, and without a bound the folders grow as long as the learner
    works. report.PassedBefore's record of passed compiled checks is bounded the same way."""
    with contextlib.suppress(OSError):  # a record removed meanwhile, or a read-only checkout
        paths = sorted(
            folder.glob(pattern), key=lambda path: (path == written, _mtime(path)), reverse=True
        )
        for path in paths[keep:]:
            path.unlink(missing_ok=True)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed by another process meanwhile: oldest, so it is skipped anyway
        return 0


def record(step: int, passed: bool, detail: str, eager_only: bool | None = None) -> None:
    """Keep the verdict of a check that just ran on the code as it is now."""
    eager_only = options.current().eager_only if eager_only is None else eager_only
    uses = {str(used): files_digest(used) for used in _steps_with_uses(step) if used != step}
    verdict = Verdict(passed, detail, eager_only, time.time(), uses)
    with contextlib.suppress(OSError):  # a read-only checkout still checks, it just can't keep
        FOLDER.mkdir(parents=True, exist_ok=True)
        path = _path(step, eager_only)
        path.write_text(json.dumps(asdict(verdict)))
        keep_newest(FOLDER, f"{step}-*.json", KEEP_PER_STEP, written=path)


def recorded(step: int, kinds: tuple[bool, ...] = (False, True)) -> Verdict | None:
    """The verdict of the full check of this exact code, else of its eager checks, else None
    (`kinds`: which of them, as eager_only values, in that order)."""
    for eager_only in kinds:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return Verdict(**json.loads(_path(step, eager_only).read_text()))
    return None


def still_holds(step: int) -> bool | None:
    """Whether `step` passes, from a verdict kept for this exact code (its files and those of the
    steps it imports unchanged) at least as thorough as this run; None when there is none."""
    verdict = recorded(step, (False, True) if options.current().eager_only else (False,))
    return None if verdict is None or verdict.changed_uses() else verdict.passed


def first_failure(results: list) -> str:
    failed = [r for r in results if not r.passed]
    return failed[0].messages[0] if failed and failed[0].messages else ""
