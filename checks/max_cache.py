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
    """MAX's cache folder: $MODULAR_CACHE_DIR when set (MAX 26.7 and `mojo` use it as is), else
    $XDG_CACHE_HOME/modular, ~/.cache/modular by default."""
    if os.environ.get("MODULAR_CACHE_DIR"):
        return Path(os.environ["MODULAR_CACHE_DIR"])
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


def transform_dir() -> Path:
    """Where compiled Mojo code lives, one folder per compiler build: MAX's own compiler and the
    `mojo` command's (mojo-compiler, another build) each keep theirs here, and each deletes the
    other's when it starts compiling (MAX 26.7 logs "pruning old cache dir")."""
    return max_cache_dir() / ".mojo_cache" / "mojo" / "transform"


# Another MAX process may be writing the cache right now (`pixi run warm` in a second terminal, a
# server starting). MAX writes a kernel's object before its index entry (its cache log shows the
# order; polled while two compiles ran at once, no entry ever lacked its object), and the entries
# are read before the objects, so an entry whose object is missing has lost it. A second guard: an
# entry is judged only once it is older than this, or than the last change of the compilers'
# folders (one made or deleted: the `mojo` command ran), which took the objects written before.
SETTLED_S = 15 * 60


def stale_kernel_cache_entries(settled_s: float = SETTLED_S) -> list[Path]:
    """The index entries whose compiled kernel is verifiably gone from `transform_dir()`.

    An entry is kept when its object is in any compiler's folder (MAX looks only in its own, but
    never removing an entry MAX could still hit matters more), when it is not a whole entry, when
    the folders cannot be read, and when it is newer than `settled_s` and than the last change of
    the folders.
    """
    judged = []  # (entry, when it was written, its object's name), read before the objects
    for entry in kernel_cache_entries():
        with contextlib.suppress(OSError):
            written, key = entry.stat().st_mtime, entry.read_bytes()[:32]
            if len(key) == 32:  # the object's name, base64-encoded without padding
                judged.append((entry, written, base64.b64encode(key).decode().rstrip("=")))
    objects: set[str] = set()
    try:
        folders_changed = transform_dir().stat().st_mtime  # a compiler's folder made or deleted
        folders = [folder for folder in transform_dir().iterdir() if folder.is_dir()]
    except FileNotFoundError:  # no compiled code at all: only settled entries are judged
        folders_changed, folders = 0.0, []
    except OSError:
        return []  # unreadable: nothing is verifiably missing
    for folder in folders:
        try:
            objects.update(os.listdir(folder))
        except FileNotFoundError:
            continue  # deleted while we looked (the `mojo` command starting): its objects are gone
        except OSError:
            return []
    settled = time.time() - settled_s
    return [
        entry
        for entry, written, name in judged
        if name not in objects and (written <= settled or written < folders_changed)
    ]


def repair_kernel_cache() -> int:
    """Forget MAX's kernel-cache entries whose compiled kernel is gone; returns how many.

    MAX 26.7 keeps a compiled kernel in two places: `.mogg_cache` maps the kernel to the name of
    an object in `.mojo_cache/mojo/transform/<its compiler's build>` that holds its machine code.
    When that object is gone (the `mojo` command ran: it deletes MAX's folder there; or a cache
    folder deleted to free disk space, a partly restored cache), MAX logs "MOGG hit but Mojo
    miss", compiles the kernel again in every graph and never rewrites the entry, so every edit
    costs a cold compile. Measured here: the GPT-2 graph after a one-line edit compiled in 72 s
    with 682 such entries and in 56 s once they were removed (MAX then records the kernels it
    compiles).
    """
    stale = stale_kernel_cache_entries()
    for entry in stale:
        entry.unlink(missing_ok=True)
    if stale:  # graphs whose kernels are gone may be too: the checks compile them again
        shutil.rmtree(passed_checks_dir(), ignore_errors=True)
    return len(stale)


def repair_note(forgotten: int) -> str:
    """What the checker says after `repair_kernel_cache` forgot `forgotten` entries."""
    kernels = "1 compiled kernel" if forgotten == 1 else f"{forgotten} compiled kernels"
    return (
        f"Note: MAX's kernel cache listed {kernels} whose machine code is gone, as happens when "
        "the `mojo` command runs (its compiler, another build than MAX's, shares the cache folder "
        "and clears MAX's code from it; `MODULAR_CACHE_DIR=~/.cache/mojo mojo run ...` gives it a "
        "folder of its own). The list is mended: MAX compiles each of them again once, when a "
        "graph next needs it, instead of in every graph."
    )


def passed_checks_dir() -> Path:
    """Where the checker records the compiled checks that passed (see report.PassedBefore): in
    MAX's cache folder, so that deleting the cache deletes the record of what it held."""
    return max_cache_dir() / "course-passed-compiled"
