"""MAX's kernel cache: entries that point at compiled kernels that are gone are forgotten."""

import base64
from importlib.metadata import version

import pytest

from checks import runtime
from tests.conftest import run_checks


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
    return root / "modular" / ".mogg_cache"


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
    assert runtime.repair_kernel_cache() == 1
    assert sorted(p.name for p in index.rglob("*") if p.is_file()) == ["another-max", "kept"]
    assert runtime.repair_kernel_cache() == 0


def test_the_checker_repairs_the_cache_and_says_so_once(tmp_path):
    gone = b"fedcba9876543210" * 2
    fake_cache(tmp_path, [], {f"h/{version('max')}/{i}": gone for i in range(3)})
    first = run_checks("1", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    assert "listed 3 compiled kernels whose code is gone" in first.output, first.output
    again = run_checks("1", "--solutions", XDG_CACHE_HOME=str(tmp_path))
    assert "compiled kernels whose code is gone" not in again.output, again.output


def test_every_entry_of_a_real_compile_points_at_its_kernel():
    """The key format the repair reads is MAX's own: after a check compiled its graph, the
    index has entries and none of them counts as stale."""
    assert run_checks("4", "--solutions").code == 0
    assert runtime.kernel_cache_entries()
    assert runtime.stale_kernel_cache_entries() == []
