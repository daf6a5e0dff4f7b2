"""The tours of MAX and Mojo that docs/max.md and docs/steps/14-mojo.md show run, and print what
the pages say they print (docs/examples/*.txt, included on the pages)."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from tests.conftest import ROOT, run_command

EXAMPLES = ROOT / "docs" / "examples"


def same_apart_from(line_pattern: str, fresh: str, saved: str) -> None:
    """Equal line for line, except lines matching `line_pattern` (a machine's own figure)."""
    varies = re.compile(line_pattern)
    fresh_lines, saved_lines = fresh.strip().splitlines(), saved.strip().splitlines()
    assert len(fresh_lines) == len(saved_lines), f"now prints:\n{fresh}\nthe page shows:\n{saved}"
    for now, shown in zip(fresh_lines, saved_lines, strict=True):
        if not (varies.search(now) and varies.search(shown)):
            assert now == shown, f"the page shows {shown!r}, the file now prints {now!r}"


@pytest.fixture(scope="module")
def max_tour() -> str:
    # MAX's default eager executor also compiles every eager graph in the background (5 graphs
    # here, 75 s of a cold run on 2 cores); the checks' own executor compiles only the graphs its
    # interpreter refuses. The tour prints the same either way.
    run = run_command(
        [sys.executable, str(EXAMPLES / "max_tour.py")],
        timeout=600,
        MAX_EAGER_EXECUTOR="fallback-internal",
    )
    assert run.code == 0, run.output
    return run.stdout


def test_max_tour_prints_what_the_page_shows(max_tour):
    same_apart_from(r"compiled in [\d.]+ s", max_tour, (EXAMPLES / "max_tour.txt").read_text())


def test_max_tour_shows_maxs_defaults_and_symbolic_shapes(max_tour):
    lines = max_tour.splitlines()
    assert "x: [Dim(2), Dim(3)] DType.float32 Device(type=cpu,id=0)" in lines
    assert "ids: [Dim(1), Dim(2)] DType.int64" in lines
    assert "a list of ints without dtype=: DType.float32" in lines
    assert "defaults: DType.float32 DeviceMesh -> Device(type=cpu,id=0)" in lines
    assert "device ref: cpu:0" in lines
    assert "scores: [[14.0, 32.0], [32.0, 77.0]]" in lines
    assert (
        "parameters: [('proj.weight', [Dim(2), Dim(3)]), ('proj.bias', [Dim(2)]), ('scale', [Dim(2)])]"
        in lines
    )
    eager, compiled = lines.index("eager call:"), lines.index("compiling:")
    assert lines[eager + 1] == "  forward sees shape [Dim(1), Dim(4), Dim(3)]"
    # softmax(([0.0, 0.1, 0.2] @ W.T + b) * scale) with the tour's W, b and scale, by hand
    assert lines[eager + 2] == "  eager output, first row: [0.3543, 0.6457]"
    assert lines[compiled + 1] == "  forward sees shape [Dim('batch'), Dim('seqlen'), Dim(3)]"
    assert "compiled call, 4 tokens: [Dim(1), Dim(4), Dim(2)]" in lines
    assert "compiled call, 7 tokens: [Dim(1), Dim(7), Dim(2)]" in lines
    assert max_tour.count("forward sees shape") == 2, "the compiled calls ran Python's forward"
    assert lines[-1] == "compiled equals eager: True"


def test_mojo_tour_prints_what_the_page_shows(tmp_path):
    mojo = shutil.which("mojo") or shutil.which("mojo", path=str(ROOT / ".venv" / "bin"))
    if mojo is None:
        pytest.skip("mojo is not on PATH (it comes with the max package)")
    # A cache of its own: `mojo`, a compiler of another build than MAX's, deletes MAX's compiled
    # kernels from a cache they share, and every later test would compile them again.
    run = run_command(
        [mojo, "run", str(EXAMPLES / "mojo_tour.mojo")],
        timeout=600,
        MODULAR_CACHE_DIR=str(tmp_path),
    )
    assert run.code == 0, run.output
    same_apart_from(r"lanes per register", run.stdout, (EXAMPLES / "mojo_tour.txt").read_text())
    lines = run.stdout.splitlines()
    assert "total of 37 halves: 18.5" in lines
    assert "captured by copy: 3.0 by reference: 15.0" in lines
    assert "calls: 2" in lines
    width = int(next(line for line in lines if "lanes per register" in line).split()[-1])
    assert width in (4, 8, 16), f"{width} float32 lanes"
