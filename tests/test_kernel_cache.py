"""MAX's kernel cache: entries that point at compiled kernels that are gone are forgotten."""

import base64
import os
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from checks import max_cache
from checks.harness import child_env
from tests.conftest import ROOT, run_checks


def fake_cache(root, kept_objects, entries):
    """A MAX cache folder: `kept_objects` compiled, `entries` {path under .mogg_cache: key}."""
    transform = root / "modular" / ".mojo_cache" / "mojo" / "transform" / "1.2.0-production"
    transform.mkdir(parents=True)
    for key in kept_objects:
        (transform / base64.b64encode(key).decode().rstrip("=")).write_bytes(b"machine code")
    for path, key in entries.items():
        entry = root / "modular" / ".mogg_cache" / path
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(key + b"\x00checksum")
        settle(entry)
    return root / "modular" / ".mogg_cache"


def settle(entry, minutes: float = 20):
    """Date an index entry `minutes` back: older than any compile still writing it."""
    old = time.time() - 60 * minutes
    os.utime(entry, (old, old))


@pytest.mark.fast
def test_entries_whose_kernel_is_gone_are_removed_and_the_rest_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here, gone = b"0123456789abcdef" * 2, b"fedcba9876543210" * 2
    index = fake_cache(
        tmp_path,
        [here],
        {
            f"h/{version('max')}/kept": here,
            f"h/{version('max')}/stale": gone,
            "h/0.0.1/another-max": gone,  # another MAX version's layout: not ours to judge
        },
    )
    assert max_cache.repair_kernel_cache() == 1
    assert sorted(p.name for p in index.rglob("*") if p.is_file()) == ["another-max", "kept"]
    assert max_cache.repair_kernel_cache() == 0


@pytest.mark.fast
def test_an_entry_another_process_may_be_writing_is_left_alone(tmp_path, monkeypatch):
    """`warm` in a second terminal: an entry written minutes ago whose kernel is not (yet) in
    the cache is kept; the same entry once it is older than any compile is removed."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    gone = b"fedcba9876543210" * 2
    index = fake_cache(tmp_path, [], {f"h/{version('max')}/being-written": gone})
    entry = index / "h" / version("max") / "being-written"
    settle(entry, minutes=max_cache.SETTLED_S / 60 - 1)
    assert max_cache.repair_kernel_cache() == 0 and entry.exists()
    settle(entry, minutes=max_cache.SETTLED_S / 60 + 1)
    assert max_cache.repair_kernel_cache() == 1 and not entry.exists()


@pytest.mark.fast
def test_the_record_of_passed_checks_goes_with_the_cache(tmp_path, monkeypatch):
    """The record lives in MAX's cache folder, and a repair (kernels were deleted) clears it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    record = max_cache.passed_checks_dir()
    assert record.is_relative_to(tmp_path / "modular")
    fake_cache(tmp_path, [], {f"h/{version('max')}/stale": b"fedcba9876543210" * 2})
    record.mkdir(parents=True)
    (record / "a-passed-check").write_text("checks/test_step_04.py::test_compiled\n")
    assert max_cache.repair_kernel_cache() == 1
    assert not record.exists()


def test_the_checker_repairs_the_cache_and_says_so_once(tmp_path):
    gone = b"fedcba9876543210" * 2
    fake_cache(tmp_path, [], {f"h/{version('max')}/{i}": gone for i in range(3)})
    first = run_checks("1", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    assert "listed 3 compiled kernels whose code is gone" in first.output, first.output
    assert "whose code is gone" not in first.stdout, first.output  # a note, beside the report
    again = run_checks("1", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    assert "compiled kernels whose code is gone" not in again.output, again.output


@pytest.mark.timeout(2400)  # warm and a check, both compiling cold at once
def test_warm_and_a_check_at_once_on_one_empty_cache(tmp_path, monkeypatch):
    """`pixi run warm` in a second terminal while a check runs, as the README suggests: both
    compile into one empty cache and pass; afterwards every index entry points at its kernel,
    and a third compile of the same check logs no cache miss.

    It is also the test that the key format the repair reads is MAX's own: the entries are
    those of a real compile, in a cache no earlier run touched (the machine's own cache may
    hold only graphs, whose kernels a repair has forgotten, so a check there compiles none)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    warm = subprocess.Popen(
        [sys.executable, "-m", "checks", "warm", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(XDG_CACHE_HOME=str(tmp_path)),
    )
    check = run_checks("5", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    warmed = warm.communicate(timeout=1800)[0]
    assert check.code == 0, check.output
    assert warm.returncode == 0, warmed
    assert "whose code is gone" not in check.output + warmed  # no repair of a healthy cache
    assert max_cache.kernel_cache_entries()
    assert max_cache.stale_kernel_cache_entries(settled_s=0) == []
    again = run_checks("warm", "5", XDG_CACHE_HOME=str(tmp_path), MODULAR_ENABLE_CACHE_LOGGING="1")
    assert again.code == 0, again.output
    assert "miss" not in again.output.lower(), again.output


@pytest.mark.fast
def test_warm_compiles_what_a_check_would_skip_as_passed_before(tmp_path, monkeypatch):
    """A check skips a compiled comparison this exact code passed; warm (trust_passed=False)
    never does: its job is to fill the cache, whatever the record says."""
    from types import SimpleNamespace

    from checks.report import ReportPlugin

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    item = SimpleNamespace(  # a check marked @pytest.mark.compiled
        name="test_model",
        nodeid="checks/test_step_05.py::test_model",
        get_closest_marker=lambda name: object() if name == "compiled" else None,
    )
    check, warm = ReportPlugin(), ReportPlugin(trust_passed=False)
    assert check.pytest_pyfunc_call(item) is None  # not passed yet: it runs
    check.passed_before.add(item)
    assert (tmp_path / "modular" / "course-passed-compiled").is_dir()
    assert check.pytest_pyfunc_call(item) is True  # passed before: skipped
    assert warm.pytest_pyfunc_call(item) is None  # warm runs it anyway
