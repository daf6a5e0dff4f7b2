"""`pixi run bench` on a tiny model: it runs every generator and checks that their tokens agree;
its served table on a stand-in server (tests/test_serve.py serves the real one)."""

import contextlib
from types import SimpleNamespace

import pytest

from checks import bench_rows, bench_served, bench_table, bench_timing
from tests.conftest import run_command
from tests.test_pixi_tasks import command


@pytest.mark.timeout(2400)  # five models compiled cold (the bfloat16 one twice)
def test_bench_runs_and_every_row_agrees(tmp_path):
    run = run_command(
        command(
            "bench",
            "--solutions",
            "--tiny",
            "--tokens",
            "6",
            "--repeats",
            "1",
            "--plot",
            str(tmp_path / "bench.png"),
        ),
        timeout=1800,  # the first MAX run of a cold test run: it compiles the five models
    )
    assert run.code == 0, run.output
    for row in (
        "HuggingFace generate(), KV cache",
        "HuggingFace generate(), no cache",
        "HuggingFace generate(), bfloat16",
        "MAX, step 10 loop, no cache",
        "MAX, KV cache (extension)",
        "MAX, KV cache + Mojo kernel",
        "MAX, KV cache + Mojo kernel, bfloat16",
    ):
        assert f"| {row}" in run.output, run.output
    assert "All 5 produced the same 6 tokens." in run.output
    assert "The 2 bfloat16 rows' tokens are each within bfloat16 rounding" in run.output
    assert "16-token prompt, first token ms" in run.output  # --tiny's long prompt
    for row in ("MAX, KV cache + Mojo kernel", "MAX, KV cache + Mojo kernel, bfloat16"):
        assert f"\n{row}: " in run.output and "Its kernel alone reads the LM head" in run.output
    assert (tmp_path / "bench.png").stat().st_size > 10_000


@pytest.mark.fast
def test_bench_fails_when_tokens_differ(capsys):
    same = bench_timing.Timing("a", [1, 2], 0.1, [0.1])
    other = bench_timing.Timing("b", [1, 3], 0.1, [0.1])
    assert bench_table.report([same, other], tokens=2) == 1
    assert "disagree" in capsys.readouterr().out


@pytest.mark.fast
def test_rows_are_timed_in_turns_after_a_warm_up_of_each(monkeypatch):
    monkeypatch.setattr(bench_timing, "SETTLE_S", 0)
    calls = []

    def row(name):
        def run(tokens):
            calls.append((name, tokens))
            return list(range(tokens))

        return bench_timing.Row(name, run)

    results = bench_timing.time_in_turns([row("a"), row("b")], tokens=3, repeats=2)
    warm_ups, rounds = calls[:2], calls[2:]
    assert warm_ups == [("a", 3), ("b", 3)]
    # each round: every row for 3 tokens and for 1 (the first token), before the next round
    assert rounds == [("a", 3), ("a", 1), ("b", 3), ("b", 1)] * 2
    assert [len(r.runs_s) for r in results] == [2, 2]


@pytest.mark.fast
def test_the_report_gives_the_ceiling_each_rows_share_and_the_spread(capsys):
    # 2 tok/s; quartiles 1.0 and 1.1 of 5 runs: spread 10 %; the one slow round does not count
    steady = bench_timing.Timing("steady", [1, 2], 0.1, [1.0, 1.1, 1.0, 3.0, 1.0])
    memory = bench_table.Memory(gbs=40.0, bytes_per_token=500_000_000)  # ceiling 80 tok/s
    assert memory.ceiling() == pytest.approx(80)
    assert bench_table.report([steady], tokens=2, memory=memory) == 0
    out = capsys.readouterr().out
    assert "| steady" in out and "10 %" in out and "2 %" in out  # spread, and 2 of 80 tok/s
    assert "40.0 GB/s" in out and "500 MB" in out and "80 tok/s" in out
    assert "busy" not in out


@pytest.mark.fast
def test_a_mojo_rows_token_is_split_into_reading_at_its_kernels_speed_and_the_rest(capsys):
    memory = bench_table.Memory(gbs=40.0, bytes_per_token=500_000_000)
    # 50 tok/s: 20 ms a token; 250 MB in bfloat16 at 25 GB/s: 10 ms reading, 10 ms the rest
    mojo16 = bench_timing.Timing("mojo16", [1] * 50, 0.1, [1.0], bfloat16=True, kernel_gbs=25.0)
    plain = bench_timing.Timing("plain", [1] * 50, 0.1, [1.0])
    assert bench_table.report([plain, mojo16], tokens=50, memory=memory) == 0
    out = capsys.readouterr().out
    split = [line for line in out.splitlines() if line.startswith("mojo16: ")]
    assert len(split) == 1 and not any(line.startswith("plain: ") for line in out.splitlines())
    assert "20.0 ms a token" in split[0] and "reads the LM head at 25.0 GB/s;" in split[0]
    assert "250 MB take 10.0 ms, and the other 10.0 ms (50 %) go to the rest" in split[0]
    # timed apart, the kernel alone can come out slower than in the model: no negative rest
    slow = bench_timing.Timing("slow", [1] * 50, 0.1, [1.0], kernel_gbs=20.0)  # 500 MB: 25 ms
    assert bench_table.time_split(slow, memory).endswith("take 25.0 ms, the whole token.")


@pytest.mark.fast
def test_a_busy_machine_is_said_in_one_line(capsys):
    jumpy = bench_timing.Timing("jumpy", [1, 2], 0.1, [1.0, 1.5, 1.0, 1.5, 1.0])  # spread 50 %
    assert bench_table.report([jumpy], tokens=2) == 0
    busy = [line for line in capsys.readouterr().out.splitlines() if "busy" in line]
    assert len(busy) == 1 and "jumpy" in busy[0] and "50 %" in busy[0], busy


def test_a_decoded_token_reads_every_weight_once_but_the_position_table():
    """1 layer, 8 wide, 10 words: wte 80 floats (also the LM head), the block 872 (c_attn 216,
    c_proj 72, c_fc 288, mlp.c_proj 264, two LayerNorms 32), ln_f 16; wpe is not read whole."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from checks.memory import decode_bytes_per_token

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10, n_positions=4))
    assert decode_bytes_per_token(model) == 4 * (80 + 872 + 16)


@pytest.mark.fast
def test_bfloat16_rows_are_judged_apart_and_against_their_own_ceiling(capsys):
    exact = bench_timing.Timing("f32", [1, 2], 0.1, [1.0])
    rounded = bench_timing.Timing("b16", [1, 3], 0.1, [0.5], bfloat16=True)  # 4 tok/s, other tokens
    memory = bench_table.Memory(gbs=40.0, bytes_per_token=500_000_000)  # ceilings 80 and 160 tok/s
    assert memory.ceiling(bfloat16=True) == pytest.approx(160)
    assert bench_table.report([exact, rounded], tokens=2, memory=memory) == 0
    out = capsys.readouterr().out
    assert "| b16" in out and " 2 % |" in out.split("| b16")[1]  # 4 of 160 tok/s, not of 80
    assert "bfloat16 ceiling is 160 tok/s" in out
    rounded.near_greedy = "generated token 2 (id 3) scores 0.1 where the best scores 9."
    assert bench_table.report([exact, rounded], tokens=2, memory=memory) == 1
    assert "b16: generated token 2" in capsys.readouterr().out


@pytest.mark.fast
def test_the_long_prompt_column_shows_each_rows_first_token(capsys):
    timed = bench_timing.Timing("a", [1, 2], 0.1, [1.0], long_first_token_s=0.6416)
    untimed = bench_timing.Timing("served", [1, 2], 0.1, [1.0])
    bench_table.report([timed, untimed], tokens=2, long_prompt=512)
    out = capsys.readouterr().out
    assert "512-token prompt, first token ms" in out
    columns = {
        line.split("|")[1].strip(): line.split("|")[7].strip()
        for line in out.splitlines()
        if line.startswith("| ")
    }
    assert columns["a"] == "642" and columns["served"] == "-"  # the served row has no long run


@pytest.mark.fast
def test_the_plot_draws_each_row_in_its_dtypes_colour_up_to_its_rate(tmp_path):
    from tests.test_show import pixels, rgb

    from checks import show

    rows = [
        bench_timing.Timing("f32", [1, 2], 0.1, [0.1], first_token_s=0.05, long_first_token_s=0.6),
        bench_timing.Timing("b16", [1, 2], 0.1, [0.05], first_token_s=0.04, bfloat16=True),
    ]  # 20 and 40 tok/s
    memory = bench_table.Memory(gbs=25.0, bytes_per_token=500_000_000)  # ceilings 50 and 100
    path = tmp_path / "bench.png"
    speed, _ = bench_table.draw(rows, memory, 512, path, dpi=50)
    image = pixels(path)
    for y, rate, colour in ((1, 20, show.BARS), (0, 40, bench_table.BFLOAT16_BARS)):
        x, row = speed(rate - 3, y)
        assert image[row][x] == rgb(colour), (rate, colour)
        x, row = speed(rate + 3, y)
        assert image[row][x] != rgb(colour), (rate, colour)


class GreedyStandIn:
    """HuggingFace's model as time_served uses it: generate() appends the ids after the prompt's
    last id, one up each (its greedy text); a stand-in server streams the same, or not."""

    class config:
        vocab_size = 50

    @staticmethod
    def continuation(prompt_ids: list[int], tokens: int) -> list[int]:
        return [(prompt_ids[-1] + 1 + i) % 50 for i in range(tokens)]

    def generate(self, ids, max_new_tokens: int, **_):
        import torch

        prompt = ids[0].tolist()
        return torch.tensor([prompt + self.continuation(prompt, max_new_tokens)])


def stand_in_server(monkeypatch, wrong_after: int | None = None):
    """serving.served replaced by a server that streams GreedyStandIn's ids, with a different
    last id for prompts longer than `wrong_after` tokens."""
    from checks import serving

    class Server:
        url, model, start_s = "http://stand-in", "stand-in", 1.5

        @staticmethod
        def stream(prompt_ids: list[int], tokens: int) -> list[int]:
            ids = GreedyStandIn.continuation(prompt_ids, tokens)
            if wrong_after is not None and len(prompt_ids) > wrong_after:
                ids[-1] += 1
            return ids

    monkeypatch.setattr(serving, "served", lambda hf, folder: contextlib.nullcontext(Server()))
    monkeypatch.setattr(bench_timing, "SETTLE_S", 0)


@pytest.mark.fast
def test_the_served_table_gives_one_and_four_streams_and_checks_each_against_greedy(
    monkeypatch, capsys
):
    stand_in_server(monkeypatch)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    assert bench_served.time_served(GreedyStandIn(), prompt, tokens=5, repeats=2) == 0
    out = capsys.readouterr().out
    assert "the server started in 2 s" in out
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:]
        for line in out.splitlines()
        if "| max" in line
    }
    assert set(rows) == {"max serve, 1 stream", "max serve, 4 concurrent streams"}, out
    four = rows["max serve, 4 concurrent streams"]
    assert float(four[0]) == pytest.approx(4 * float(four[1]), rel=0.01)  # total = 4 x per stream
    assert (
        "Every stream's 5 tokens equal HuggingFace generate()'s greedy ones (prompts of 8, 3, 13, 6 tokens)"
        in out
    )


@pytest.mark.fast
def test_a_served_stream_that_differs_from_greedy_is_named(monkeypatch, capsys):
    stand_in_server(monkeypatch, wrong_after=10)  # only the 13-token prompt's stream is wrong
    assert bench_served.time_served(GreedyStandIn(), [7] * 8, tokens=4, repeats=1) == 1
    out = capsys.readouterr().out
    wrong = out.split("Served streams differ from HuggingFace's greedy tokens:")[1].strip()
    # stream 1 is the one-stream row; streams 2-5 ran at once, the 13-token prompt third
    assert wrong.splitlines()[0].startswith("stream 4 (a 13-token prompt)"), out
    assert len(wrong.splitlines()) == 1, out


def test_the_served_model_reads_ids_as_words_and_back(tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from checks import serving

    model = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=30, n_positions=16)
    )
    folder = serving.save_ids_as_words_model(model, tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.encode("t3 t14 t0") == [3, 14, 0]
    assert tokenizer.eos_token_id == 29
    assert serving.ids_in(tokenizer.decode([5, 17, 2])) == [5, 17, 2]


@pytest.mark.fast
def test_the_kernel_rows_table_has_a_row_per_op_and_dtype_and_a_column_per_row_count():
    from checks import kernel_rows

    count = len(kernel_rows.ROWS)
    results = {
        "float32": ([0.5] * count, [0.25] * count),
        "bfloat16": ([1.0] * count, [2.0] * count),
    }
    lines = kernel_rows.table(results, repeats=9).splitlines()
    assert "3072 x 768 weight, median of 9 calls" in lines[0]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:-1] for line in lines if line.startswith("| ")
    }
    assert rows["rows of x"] == [f" {r} " for r in kernel_rows.ROWS]
    assert [cell.strip() for cell in rows["MAX's matmul, float32"]] == ["0.25"] * count
    assert [cell.strip() for cell in rows["your kernel, bfloat16"]] == ["1.00"] * count
    assert len(rows) == 6  # the header, its rule and 2 ops x 2 dtypes


@pytest.mark.fast
def test_a_bfloat16_rows_long_prompt_is_set_beside_huggingface_bfloat16s(capsys):
    hf16 = bench_timing.Timing("HF16", [1, 2], 0.1, [1.0], long_first_token_s=0.5, bfloat16=True)
    mojo16 = bench_timing.Timing("m16", [1, 2], 0.1, [1.0], long_first_token_s=0.6, bfloat16=True)
    slow = bench_timing.Timing("slow16", [1, 2], 0.1, [1.0], long_first_token_s=1.5, bfloat16=True)
    hf16.name = "HuggingFace generate(), bfloat16"
    bench_table.report([hf16, mojo16, slow], tokens=2, long_prompt=512)
    out = capsys.readouterr().out
    assert (
        "m16: a 512-token prompt's first token in 600 ms, 1.20x HuggingFace generate(), "
        "bfloat16's 500 ms (within 2x)." in out
    )
    assert (
        "slow16: a 512-token prompt's first token in 1500 ms, 3.00x" in out and "(over 2x)" in out
    )
    assert bench_table.long_prompt_ratios([mojo16], 512) == []  # no HuggingFace bfloat16 row


@pytest.mark.fast
def test_a_mojo_chapter_from_before_compile_mojo_model_is_timed_as_built_then_and_told(capsys):
    models = object.__new__(bench_rows.LearnerModels)  # its builds and loop stood in for
    built = []

    def build(model_class=None, input_types=None):
        built.append((model_class, input_types, None))
        return "compiled", 1.0

    def timed_build(build_model):
        built.append((None, None, build_model))
        return "compiled", 1.0

    models.build, models.timed_build, models.config = build, timed_build, "config"
    models.kv = SimpleNamespace(cache_input_types="cache types", generate_with_cache="loop")
    models.loop_row = lambda name, generate, model, compile_s, *config: (name, model, generate)
    current = SimpleNamespace(MojoCachedGPT2LMHeadModel="model", compile_mojo_model="compile")
    assert models.mojo_row("row", current) == ("row", "compiled", "loop")
    assert built == [(None, None, "compile")] and capsys.readouterr().out == ""
    built.clear()
    older = SimpleNamespace(MojoCachedGPT2LMHeadModel="model")
    assert models.mojo_row("row", older) == ("row", "compiled", "loop")
    assert built == [("model", "cache types", None)]
    assert "your ext_mojo.py has no compile_mojo_model" in capsys.readouterr().out
