"""The reference cache: values round-trip without pickle, writes are atomic, two builders both win."""

import multiprocessing
import zipfile
from pathlib import Path

import numpy as np
import pytest

from checks import reference_cache

pytestmark = pytest.mark.fast


@pytest.fixture(autouse=True)
def cache_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(reference_cache, "CACHE_DIR", tmp_path)
    return tmp_path


def nested() -> dict:
    return {
        "state": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
        (2, 5): (np.ones(3), np.zeros((1, 1), dtype=np.int64)),
        "ids": [1, 2, 3],
        "greedy": {(4, 5): ([6, 7], [6, 7])},
        "eps": 1e-5,
        "none": None,
        "flag": True,
        "scalar": np.float32(0.5),
    }


def test_a_nested_value_comes_back_equal(cache_in: Path):
    calls = []

    def build():
        calls.append(1)
        return nested()

    first = reference_cache.cached("x", (1,), build)
    second = reference_cache.cached("x", (1,), build)
    assert len(calls) == 1, "the second call should read the stored entry"
    assert [p.suffix for p in cache_in.iterdir()] == [".npz"]
    assert second.keys() == first.keys()
    np.testing.assert_array_equal(second["state"]["w"], first["state"]["w"])
    assert second["state"]["w"].dtype == np.float32
    assert isinstance(second[2, 5], tuple) and second[2, 5][1].dtype == np.int64
    assert second["greedy"] == {(4, 5): ([6, 7], [6, 7])}
    assert (second["eps"], second["none"], second["flag"], second["scalar"]) == (
        1e-5,
        None,
        True,
        0.5,
    )


def test_the_key_and_the_builders_file_name_the_entry():
    assert reference_cache.cached("x", (1,), lambda: {"v": 1}) == {"v": 1}
    assert reference_cache.cached("x", (2,), lambda: {"v": 2}) == {"v": 2}
    assert reference_cache.cached("x", (1,), lambda: {"v": 3}) == {"v": 1}


def test_objects_are_refused_and_a_broken_entry_is_rebuilt(cache_in: Path):
    with pytest.raises(TypeError):
        reference_cache.cached("bad", (), lambda: {"o": object()})
    with pytest.raises(TypeError):
        reference_cache.cached("bad", (), lambda: {"o": np.array([object()])})
    reference_cache.cached("ok", (), lambda: {"v": 1})
    (entry,) = cache_in.glob("ok-*.npz")
    entry.write_bytes(b"not a zip")
    assert reference_cache.cached("ok", (), lambda: {"v": 2}) == {"v": 2}
    assert zipfile.is_zipfile(entry)
    assert not list(cache_in.glob("*.tmp")), "a temporary file was left behind"


def build_slowly() -> dict:
    import time

    time.sleep(0.3)
    return {"a": np.arange(1000)}


def build_in_a_process(folder: str) -> int:
    reference_cache.CACHE_DIR = Path(folder)
    return int(reference_cache.cached("race", (), build_slowly)["a"].sum())


def test_two_processes_building_one_entry_both_succeed(cache_in: Path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        sums = pool.map(build_in_a_process, [str(cache_in)] * 2)
    assert sums == [499500, 499500]
    assert len(list(cache_in.glob("race-*.npz"))) == 1
    assert not list(cache_in.glob("*.tmp"))


def make_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text("{}")


def test_a_folder_is_made_once_and_a_failure_leaves_nothing(cache_in: Path):
    made = reference_cache.cached_folder("model", make_folder)
    assert (made / "config.json").exists()
    assert reference_cache.cached_folder("model", make_folder) == made

    def fail(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        reference_cache.cached_folder("broken", fail)
    assert [p.name for p in cache_in.iterdir()] == [made.name], "a partial folder was left"


def test_a_folder_finished_first_by_another_process_is_taken(cache_in: Path):
    def finished_meanwhile(folder: Path) -> None:
        make_folder(folder)
        other = cache_in / reference_cache.fingerprint(
            "model", (), (reference_cache.source_of(finished_meanwhile),)
        )
        make_folder(other)

    made = reference_cache.cached_folder("model", finished_meanwhile)
    assert (made / "config.json").exists()
    assert [p.name for p in cache_in.iterdir()] == [made.name]


def test_the_small_config_has_the_tokenizers_vocabulary():
    """The saved small model (step 11, the demos, the server) and the checks' models then share
    their compiled graphs: a cold test run compiles each model class once."""
    from checks.reference import SMALL
    from checks.tokenizer import local_tokenizer

    assert len(local_tokenizer()) == SMALL.vocab_size


def test_slips_are_built_once_per_argument_values():
    """A failing check's second run reads its slips; an input that differs in one number (repr
    would elide it in a big array) builds them again."""
    from checks.compare import Slip, mismatch

    calls = []

    @reference_cache.cached_slips
    def slips(cfg, x):
        calls.append(1)
        return [Slip("the bias is missing", x + cfg["bias"]), Slip("doubled", 2 * x)]

    x = np.arange(2000, dtype=np.float32)
    first = slips({"bias": 1.0}, x)
    again = slips({"bias": 1.0}, x.copy())
    assert len(calls) == 1, "the same arguments should read the stored slips"
    assert [s.hint for s in again] == [s.hint for s in first]
    np.testing.assert_array_equal(again[1].output, 2 * x)
    message = mismatch("out", x + 1.0, x, slips=lambda: again)
    assert message.endswith("Hint: the bias is missing"), message
    changed = x.copy()
    changed[1000] = -1
    slips({"bias": 1.0}, changed)
    slips({"bias": 2.0}, x)
    assert len(calls) == 3


def test_slips_refuse_an_argument_they_cannot_tell_apart():
    @reference_cache.cached_slips
    def slips(module):
        return []

    with pytest.raises(TypeError, match="an argument of type object"):
        slips(object())
