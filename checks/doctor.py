"""`python -m checks doctor`: one status line per thing a learner's setup needs, each with its fix."""

from __future__ import annotations

import importlib.metadata as metadata
import sys
import tomllib

from checks import harness


def _line(ok: bool | None, text: str, fix: str = "") -> bool:
    mark = {True: " ok ", False: "FIX ", None: "note"}[ok]
    print(f"  [{mark}] {text}" + (f"\n           {fix}" if fix and ok is not True else ""))
    return ok is not False


def _pins() -> dict[str, str]:
    project = tomllib.loads((harness.ROOT / "pyproject.toml").read_text())["project"]
    pins = (req.split("==") for req in project["dependencies"] if "==" in req)
    return {name.split("[")[0]: version for name, version in pins}  # max[serve] is max


def doctor() -> bool:
    """One plain status line per thing a learner's setup needs, each with its fix."""
    print("Checking your setup:")
    ok = _line(
        sys.version_info[:2] in {(3, 11), (3, 12), (3, 13)},
        f"Python {sys.version.split()[0]}",
        "The course supports Python 3.11-3.13.",
    )
    for name, pinned in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        ok &= _line(
            installed is not None and installed.split("+")[0] == pinned,
            f"{name} {installed or 'is not installed'} (the course pins {pinned})",
            "Install the pinned versions: pixi install, or python3 -m pip install -e .",
        )
    cold = harness.max_cache_is_cold()
    _line(
        None if cold else True,
        "MAX kernel cache: "
        + (
            "empty, so the first check compiles kernels (minutes)"
            if cold
            else "warm (checks answer in seconds)"
        ),
        f"Warm it once with `{harness.command('warm')}` in a second terminal "
        "while you read the setup page, or just start: each check says when it compiles.",
    )
    ok &= _device_line()
    ok &= _weights_line()
    print(
        "\nAll set."
        if ok
        else f"\nFix the lines marked FIX, then run {harness.command('doctor')} again."
    )
    return ok


def _device_line() -> bool:
    try:
        from max.driver import accelerator_count
        from max.experimental.tensor import defaults

        dtype, mesh = defaults()
        gpus = accelerator_count()
    except Exception as error:  # a broken MAX install is exactly what doctor is for
        return _line(
            False,
            f"MAX could not start: {type(error).__name__}: {error}",
            "Reinstall: pixi install, or python3 -m pip install -e .",
        )
    device = mesh.devices[0]
    return _line(
        True,
        f"MAX would use {type(device).__name__} with {dtype.name} ({gpus} GPU(s) found); "
        "the checks use the CPU in float32 unless you add --device gpu",
    )


def _weights_line() -> bool:
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache("gpt2", "model.safetensors"), str)
    if cached:
        return _line(
            True,
            f"GPT-2 weights are in the HuggingFace cache ({harness.command('gpt2')} works offline)",
        )
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        reachable = True
    except OSError:
        reachable = False
    return _line(
        None,
        "GPT-2 weights: not cached; "
        + (
            f"huggingface.co is reachable, so the first {harness.command('gpt2')} downloads them "
            "(about 550 MB)"
            if reachable
            else "huggingface.co can't be reached"
        ),
        "Connect once to download them, or make a small model folder with "
        f"`{harness.command('save-model', 'DIR')}` and run the demo with --model DIR. The checks "
        "never need them.",
    )
