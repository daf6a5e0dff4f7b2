"""MAX's kernel cache: entries that point at compiled kernels that are gone are forgotten."""

import base64
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from checks import max_cache, options
from checks.harness import child_env
from tests.conftest import ROOT, run_checks, run_command


# The folders of .mojo_cache/mojo/transform seen with max==26.7.0 from pip: MAX's own compiler
# and the `mojo` command's (the mojo-compiler wheel, another build) each keep one there and delete
# the other's when they start compiling.
MAX_BUILD = "1.2.0ab913634c29c3beca6715d5abd4f387a-production"
MOJO_COMMAND_BUILD = "1.2.05871cbfed81a950c5c3a2b8244af52f2-production"


def fake_cache(root, kept_objects, entries, build=MAX_BUILD):
    """A MAX cache folder: `kept_objects` compiled by `build`, `entries` {path under .mogg_cache:
    key}; the compiler's folder made an hour ago, before the entries (20 minutes old)."""
    transform = root / "modular" / ".mojo_cache" / "mojo" / "transform"
    (transform / build).mkdir(parents=True)
    for key in kept_objects:
        (transform / build / object_name(key)).write_bytes(b"machine code")
    settle(transform, minutes=60)
    for path, key in entries.items():
        entry = root / "modular" / ".mogg_cache" / path
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(key + b"\x00checksum")
        settle(entry)
    return root / "modular" / ".mogg_cache"


def settle(path, minutes: float = 20):
    """Date a file or folder `minutes` back (an index entry: older than any compile writing it)."""
    old = time.time() - 60 * minutes
    os.utime(path, (old, old))


def refuse(folder):
    raise PermissionError(13, "Permission denied", str(folder))


def object_name(key: bytes) -> str:
    """The name of the object an index entry starting with `key` points at."""
    return base64.b64encode(key).decode().rstrip("=")


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
def test_what_the_mojo_command_deletes_is_forgotten_at_once_and_nothing_before(
    tmp_path, monkeypatch
):
    """As observed: MAX's compiler keeps its kernels' objects in its own folder; `mojo run` then
    deletes that folder and makes its own. Before, every entry points at an object MAX would hit:
    nothing is forgotten. After, every entry older than that change is, however young."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    keys = [bytes(f"{i:032x}", "ascii") for i in range(5)]
    index = fake_cache(tmp_path, keys, {f"h/{version('max')}/{i}": k for i, k in enumerate(keys)})
    for entry in index.rglob("*"):
        settle(entry, minutes=1)  # written a minute ago by a compile beside us
    assert max_cache.repair_kernel_cache() == 0

    transform = max_cache.transform_dir()
    shutil.rmtree(transform / MAX_BUILD)  # `mojo run docs/examples/mojo_tour.mojo`
    (transform / MOJO_COMMAND_BUILD).mkdir()
    (transform / MOJO_COMMAND_BUILD / object_name(b"f" * 32)).write_bytes(b"the tour's code")
    assert max_cache.repair_kernel_cache() == 5
    assert not [p for p in index.rglob("*") if p.is_file()]
    assert max_cache.repair_kernel_cache() == 0


@pytest.mark.fast
def test_no_entry_is_forgotten_unless_its_object_is_verifiably_gone(tmp_path, monkeypatch):
    """A cache a check, `warm` and a tour fill at once: only an entry whose object is in no
    compiler's folder, and that is older than any compile writing beside us or than the last
    change of those folders, is forgotten; an unreadable folder judges nothing."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here, elsewhere, gone = b"a" * 32, b"b" * 32, b"c" * 32
    index = fake_cache(
        tmp_path,
        [here],
        {
            f"h/{version('max')}/kept": here,
            f"h/{version('max')}/in-the-other-folder": elsewhere,
            f"h/{version('max')}/being-written": gone,
            f"h/{version('max')}/cut-short": gone[:20],  # not a whole entry: not judged
        },
    )
    other = max_cache.transform_dir() / MOJO_COMMAND_BUILD
    other.mkdir()
    (other / object_name(elsewhere)).write_bytes(b"machine code")
    settle(max_cache.transform_dir(), minutes=60)
    settle(index / "h" / version("max") / "being-written", minutes=1)
    assert max_cache.stale_kernel_cache_entries() == []
    assert max_cache.repair_kernel_cache() == 0

    (index / "h" / version("max") / "lost").write_bytes(gone + b"\x00checksum")
    settle(index / "h" / version("max") / "lost")
    with monkeypatch.context() as unreadable:
        unreadable.setattr(max_cache.os, "listdir", refuse)
        assert max_cache.repair_kernel_cache() == 0  # the folders could not be read
    assert max_cache.repair_kernel_cache() == 1
    assert sorted(p.name for p in index.rglob("*") if p.is_file()) == [
        "being-written",
        "cut-short",
        "in-the-other-folder",
        "kept",
    ]


@pytest.mark.fast
def test_modular_cache_dir_moves_the_cache_the_repair_reads(tmp_path, monkeypatch):
    """MAX 26.7 and `mojo` keep their cache in $MODULAR_CACHE_DIR itself when it is set."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("MODULAR_CACHE_DIR", str(tmp_path / "modular"))
    fake_cache(tmp_path, [], {f"h/{version('max')}/stale": b"fedcba9876543210" * 2})
    assert max_cache.max_cache_dir() == tmp_path / "modular"
    assert max_cache.repair_kernel_cache() == 1


@pytest.mark.fast
def test_the_repair_note_names_the_usual_cause_and_the_cost():
    assert "listed 1 compiled kernel whose machine code is gone" in max_cache.repair_note(1)
    note = max_cache.repair_note(106)
    assert "106 compiled kernels" in note and "the `mojo` command runs" in note
    assert "again once" in note and "MODULAR_CACHE_DIR=" in note  # how to keep them apart


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
    assert max_cache.repair_note(3) in first.output, first.output
    assert "machine code is gone" not in first.stdout, first.output  # a note, beside the report
    again = run_checks("1", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    assert "machine code is gone" not in again.output, again.output


def test_the_mojo_command_deletes_maxs_compiled_code_unless_given_its_own_folder(tmp_path):
    """What the repair note says, and why tests/test_tours.py gives `mojo` its own cache: the
    `mojo` command deletes the other compiler folders of the cache it uses (~4 s a run)."""
    mojo = shutil.which("mojo") or shutil.which("mojo", path=str(ROOT / ".venv" / "bin"))
    if mojo is None:
        pytest.skip("mojo is not on PATH (it comes with the max package)")
    fake_cache(tmp_path, [b"a" * 32], {})
    maxs = tmp_path / "modular" / ".mojo_cache" / "mojo" / "transform" / MAX_BUILD
    program = tmp_path / "hi.mojo"
    program.write_text('def main():\n    print("hi")\n')
    own = run_command([mojo, "run", str(program)], MODULAR_CACHE_DIR=str(tmp_path / "mojo"))
    assert own.code == 0 and own.stdout == "hi\n", own.output
    assert (maxs / object_name(b"a" * 32)).exists()
    shared = run_command([mojo, "run", str(program)], XDG_CACHE_HOME=str(tmp_path))
    assert shared.code == 0, shared.output
    assert not maxs.exists(), "mojo left MAX's compiled code alone: the repair note is wrong"


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
    assert "machine code is gone" not in check.output + warmed  # no repair of a healthy cache
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
    run = options.Options()
    check, warm = ReportPlugin(run), ReportPlugin(run, trust_passed=False)
    assert check.pytest_pyfunc_call(item) is None  # not passed yet: it runs
    check.passed_before.add(item)
    assert (tmp_path / "modular" / "course-passed-compiled").is_dir()
    assert check.pytest_pyfunc_call(item) is True  # passed before: skipped
    assert warm.pytest_pyfunc_call(item) is None  # warm runs it anyway
