"""MAX's on-disk compile cache: where it is, whether it is cold or changed, its kernel index repair."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import shutil
import time
from pathlib import Path


def max_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modular"


def max_cache_is_cold() -> bool:
    """Whether MAX has compiled nothing on this machine yet (its first run takes minutes)."""
    base = max_cache_dir()
    return not base.exists() or len(list(itertools.islice(base.rglob("*"), 20))) < 20


def max_cache_changed_since(moment: float) -> bool:
    """Whether MAX wrote to its on-disk cache after `moment` (time.time()): it compiled something."""
    for folder, _, files in os.walk(max_cache_dir()):
        for name in files:
            with contextlib.suppress(OSError):
                if os.stat(os.path.join(folder, name)).st_mtime > moment:
                    return True
    return False


def compiled_file_counts() -> tuple[int, int]:
    """How many compiled graphs and how many kernel files MAX's cache holds (the test suite's
    ledger of which tests compile what)."""
    graphs = kernels = 0
    for folder, _, files in os.walk(max_cache_dir()):
        if ".max_cache" in folder:
            graphs += len(files)
        elif ".mogg_cache" in folder or ".mojo_cache" in folder:
            kernels += len(files)
    return graphs, kernels


def kernel_cache_entries() -> list[Path]:
    """MAX's index of compiled kernels (`.mogg_cache`), for the pinned MAX version only."""
    from importlib.metadata import version

    return list((max_cache_dir() / ".mogg_cache").glob(f"*/{version('max')}/*"))


# Another MAX process may be writing the cache right now (`pixi run warm` in a second terminal, a
# server starting): an index entry newer than this may be one whose kernel is still being written,
# or was written after the list of kernels below was read. Only older entries are judged; a
# compile takes minutes at most.
SETTLED_S = 15 * 60


def stale_kernel_cache_entries(settled_s: float = SETTLED_S) -> list[Path]:
    """The index entries, older than `settled_s`, whose compiled kernel is gone from
    `.mojo_cache/mojo/transform`."""
    objects: set[str] = set()
    for folder in (max_cache_dir() / ".mojo_cache" / "mojo" / "transform").glob("*"):
        with contextlib.suppress(OSError):
            objects.update(os.listdir(folder))
    settled = time.time() - settled_s
    stale = []
    for entry in kernel_cache_entries():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime > settled:
                continue
            key = entry.read_bytes()[:32]  # the object's name, base64-encoded without padding
            if base64.b64encode(key).decode().rstrip("=") not in objects:
                stale.append(entry)
    return stale


def repair_kernel_cache() -> int:
    """Forget MAX's kernel-cache entries whose compiled kernel is gone; returns how many.

    MAX 26.7 keeps a compiled kernel in two places: `.mogg_cache` maps the kernel to the name of
    an object in `.mojo_cache/mojo/transform` that holds its machine code. When that object is
    gone (a cache folder deleted to free disk space, a copied or partly restored cache), MAX
    compiles the kernel again in every graph and never rewrites the entry, so every edit costs a
    cold compile. Measured here: the GPT-2 graph after a one-line edit compiled in 72 s with 682
    such entries and in 56 s once they were removed (MAX then records the kernels it compiles).
    """
    stale = stale_kernel_cache_entries()
    for entry in stale:
        entry.unlink(missing_ok=True)
    if stale:  # graphs whose kernels are gone may be too: the checks compile them again
        shutil.rmtree(passed_checks_dir(), ignore_errors=True)
    return len(stale)


def passed_checks_dir() -> Path:
    """Where the checker records the compiled checks that passed (see report.PassedBefore): in
    MAX's cache folder, so that deleting the cache deletes the record of what it held."""
    return max_cache_dir() / "course-passed-compiled"
