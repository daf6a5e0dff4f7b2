"""`pixi run bench` on a tiny model: it runs every generator, the served one included, and checks
that their tokens agree."""

import pytest

from checks import bench
from tests.conftest import run_command
from tests.test_pixi_tasks import command


def test_bench_runs_and_all_six_agree():
    run = run_command(
        command("bench", "--solutions", "--tiny", "--tokens", "6", "--repeats", "1", "--serve")
    )
    assert run.code == 0, run.output
    for row in (
        "HuggingFace generate(), KV cache",
        "HuggingFace generate(), no cache",
        "MAX, step 10 loop, no cache",
        "MAX, KV cache (extension)",
        "MAX, KV cache + Mojo kernel",
        "max serve, KV cache, streamed",
    ):
        assert f"| {row}" in run.output, run.output
    assert "All 6 produced the same 6 tokens." in run.output


@pytest.mark.fast
def test_bench_fails_when_tokens_differ(capsys):
    same = bench.Timing("a", [1, 2], 0.1, [0.1])
    other = bench.Timing("b", [1, 3], 0.1, [0.1])
    assert bench.report([same, other], tokens=2) == 1
    assert "disagree" in capsys.readouterr().out
