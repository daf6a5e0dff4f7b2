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


@pytest.mark.fast
def test_rows_are_timed_in_turns_after_a_warm_up_of_each(monkeypatch):
    monkeypatch.setattr(bench, "SETTLE_S", 0)
    calls = []

    def row(name):
        def run(tokens):
            calls.append((name, tokens))
            return list(range(tokens))

        return bench.Row(name, run)

    results = bench.time_in_turns([row("a"), row("b")], tokens=3, repeats=2)
    warm_ups, rounds = calls[:2], calls[2:]
    assert warm_ups == [("a", 3), ("b", 3)]
    # each round: every row for 3 tokens and for 1 (the first token), before the next round
    assert rounds == [("a", 3), ("a", 1), ("b", 3), ("b", 1)] * 2
    assert [len(r.runs_s) for r in results] == [2, 2]


@pytest.mark.fast
def test_the_report_gives_the_ceiling_each_rows_share_and_the_spread(capsys):
    # 2 tok/s; quartiles 1.0 and 1.1 of 5 runs: spread 10 %; the one slow round does not count
    steady = bench.Timing("steady", [1, 2], 0.1, [1.0, 1.1, 1.0, 3.0, 1.0])
    memory = bench.Memory(gbs=40.0, bytes_per_token=500_000_000)  # ceiling 80 tok/s
    assert memory.ceiling() == pytest.approx(80)
    assert bench.report([steady], tokens=2, memory=memory) == 0
    out = capsys.readouterr().out
    assert "| steady" in out and "10 %" in out and "2 %" in out  # spread, and 2 of 80 tok/s
    assert "40.0 GB/s" in out and "500 MB" in out and "80 tok/s" in out
    assert "busy" not in out


@pytest.mark.fast
def test_a_busy_machine_is_said_in_one_line(capsys):
    jumpy = bench.Timing("jumpy", [1, 2], 0.1, [1.0, 1.5, 1.0, 1.5, 1.0])  # spread 50 %
    assert bench.report([jumpy], tokens=2) == 0
    busy = [line for line in capsys.readouterr().out.splitlines() if "busy" in line]
    assert len(busy) == 1 and "jumpy" in busy[0] and "50 %" in busy[0], busy


def test_a_decoded_token_reads_every_weight_once_but_the_position_table():
    """1 layer, 8 wide, 10 words: wte 80 floats (also the LM head), the block 872 (c_attn 216,
    c_proj 72, c_fc 288, mlp.c_proj 264, two LayerNorms 32), ln_f 16; wpe is not read whole."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from checks.memory import decode_bytes_per_token

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10, n_positions=4))
    assert decode_bytes_per_token(model) == 4 * (80 + 872 + 16)
