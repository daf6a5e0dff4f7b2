"""Keeps references and slips on disk as .npz plus JSON (never pickle), safe for two processes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from checks.compare import Slip
from checks.options import ROOT

# torch + transformers take ~4 s to import, so a warm check reads these instead of rebuilding them.
CACHE_DIR = ROOT / "build" / "reference-cache"
# Builders live in checks/reference.py: a change there changes every reference.
_BUILDERS = Path(__file__).with_name("reference.py")


def fingerprint(name: str, key: tuple, sources: tuple[Path, ...]) -> str:
    """A name for what (name, key) builds with the installed versions and these source files."""
    files = sorted({_BUILDERS, Path(__file__), *sources})
    text = repr(
        (
            name,
            key,
            metadata.version("torch"),
            metadata.version("transformers"),
            [path.read_bytes() if path.exists() else b"" for path in files],
        )
    )
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def source_of(function: Callable) -> Path:
    """The file that defines `function`: its code is part of what the cache entry stands for."""
    return Path(function.__code__.co_filename)


def cached(name: str, key: tuple, build: Callable[[], Any], also: tuple[Callable, ...] = ()) -> Any:
    """`build()`'s value, computed once per (name, key, versions, and the files of build and `also`).

    The value may nest dicts (any keys JSON or a tuple can hold), lists, tuples, numpy arrays and
    JSON scalars. Two processes building the same entry both succeed; the last write wins.
    """
    sources = tuple(source_of(function) for function in (build, *also))
    path = CACHE_DIR / f"{fingerprint(name, key, sources)}.npz"
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
    value = build()
    _store(path, value)
    return value


def cached_slips(build: Callable[..., list]) -> Callable[..., list]:
    """`build`, a check's slips for its arguments, with what it returns kept on disk like a
    reference: the second failing check needs no torch and no HuggingFace module (~4 s).

    `build(*args)` must depend on its arguments only (configs, arrays, numbers): never pass it the
    learner's output or module.
    """

    @functools.wraps(build)
    def with_cache(*args: Any) -> list:
        def outputs() -> list:
            # as compare._slip_hint reads a slip's output (numpy, or a torch tensor without grad)
            return [(slip.hint, np.asarray(slip.output)) for slip in build(*args)]

        name = f"slips-{source_of(build).stem}-{build.__name__}"
        stored = cached(name, (_identity(args),), outputs, also=(build,))
        return [Slip(hint, output) for hint, output in stored]

    return with_cache


def _identity(value: Any) -> str:
    """A short text that changes whenever any number in `value` does (repr elides big arrays)."""
    if hasattr(value, "detach"):  # torch
        return f"torch.{value.dtype}:" + _identity(value.detach().cpu().float().numpy())
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
        return f"array{value.dtype.str}{list(value.shape)}:{digest}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_identity(k)}:{_identity(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_identity(item) for item in value) + ")"
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return repr(value)
    raise TypeError(f"slips cannot be cached by an argument of type {type(value).__name__}")


def cached_folder(name: str, make: Callable[[Path], Any]) -> Path:
    """A folder under build/ that `make(folder)` fills once per version of the code making it."""
    folder = CACHE_DIR / fingerprint(name, (), (source_of(make),))
    if folder.exists():
        return folder
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=CACHE_DIR))
    try:
        make(staging / folder.name)
        (staging / folder.name).rename(folder)
    except OSError:
        if not folder.exists():  # not another process finishing first: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _store(path: Path, value: Any) -> None:
    arrays: dict[str, np.ndarray] = {}
    layout = json.dumps(_encode(value, arrays))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, __layout__=np.array(layout), **arrays)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _load(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return _decode(json.loads(str(arrays.pop("__layout__"))), arrays)


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """JSON for `value`, with each array moved into `arrays` and named in its place."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("a cached reference holds an object array: store numbers only")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, arrays) for item in value]}
    if isinstance(value, list):
        return [_encode(item, arrays) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a cached reference cannot hold a {type(value).__name__}")


def _decode(layout: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(layout, list):
        return [_decode(item, arrays) for item in layout]
    if not isinstance(layout, dict):
        return layout
    if "array" in layout:
        return arrays[layout["array"]]
    if "tuple" in layout:
        return tuple(_decode(item, arrays) for item in layout["tuple"])
    return {_decode(k, arrays): _decode(v, arrays) for k, v in layout["dict"]}
