"""What one run of the checker was asked for: step folder, device, dtype, eager-only, time limit.

The command line builds one `Options`; everything else reads it through `current()`."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Options:
    steps_dir: Path = ROOT / "steps"  # where `import step_NN` finds the learner's files
    device: str = "cpu"  # "cpu" or "gpu"
    dtype: str = "float32"  # a name in DTYPES
    eager_only: bool = False  # skip the compiled-graph checks
    # On a cold cache one eager call can spend minutes compiling kernels (a first MLP forward:
    # 139 s here); a loop that never ends is still reported.
    time_limit_s: float = 300.0

    def but(self, **changes: Any) -> Options:
        return replace(self, **changes)


_current: contextvars.ContextVar[Options | None] = contextvars.ContextVar("options", default=None)


def current() -> Options:
    return _current.get() or Options()


def use(options: Options) -> None:
    """Make `options` the run's options (the entry points call this once, the tests per case)."""
    _current.set(options.but(steps_dir=Path(options.steps_dir).resolve()))


@contextlib.contextmanager
def changed(**changes: Any) -> Iterator[Options]:
    """The run's options with `changes` while the block runs (a check of another dtype)."""
    token = _current.set(current().but(**changes))
    try:
        yield current()
    finally:
        _current.reset(token)


def add_folder_options(parser: Any, verb: str) -> None:
    """--solutions / --dir DIR: which folder's step files a command `verb`s (steps/ by default)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--solutions", action="store_true", help=f"{verb} solutions/ instead")
    where.add_argument("--dir", type=Path, help=f"{verb} the step files in this folder")


def chosen_folder(args: Any) -> Path:
    return args.dir or ROOT / ("solutions" if args.solutions else "steps")
