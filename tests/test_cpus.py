"""The Mojo kernel's worker counts come from the CPUs this process may use, on any machine."""

import os

import pytest

from checks import cpus

pytestmark = pytest.mark.fast


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A stand-in machine: `machine(cpus, siblings)` gives the process that many CPUs (its
    affinity), each core's hardware threads listed as sysfs lists them ("0-1"), or no sysfs."""

    def make(count: int, siblings: str | None) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)), raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the whole host: never the answer
        monkeypatch.setattr(cpus, "SYSFS_CPUS", tmp_path)
        if siblings is not None:
            topology = tmp_path / "cpu0" / "topology"
            topology.mkdir(parents=True)
            (topology / "thread_siblings_list").write_text(siblings + "\n")

    return make


@pytest.mark.parametrize(
    "count, siblings, workers",
    [
        (8, "0-1", (8, 4)),  # two threads per core
        (8, "0,4", (8, 4)),  # the same, listed as Linux lists non-adjacent siblings
        (8, "0", (8,)),  # one thread per core: one worker per CPU
        (8, "0-3", (8, 2)),  # four threads per core
        (8, None, (8, 4)),  # no sysfs: one or two threads per core
        (1, "0", (1,)),  # taskset -c 0, or a container of one CPU
        (1, None, (1,)),
    ],
)
def test_the_kernels_workers_are_one_per_usable_core(machine, count, siblings, workers):
    machine(count, siblings)
    assert cpus.usable_cpus() == count
    assert cpus.kernel_worker_counts() == workers


def test_the_running_process_counts_what_it_may_use():
    assert 1 <= cpus.usable_cpus() <= (os.cpu_count() or 1)
    assert all(count >= 1 for count in cpus.kernel_worker_counts())
