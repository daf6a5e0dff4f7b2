"""`python -m checks.bench --serve`: the serving chapter's model behind max serve, timed streamed.

One stream (the bench's prompt) and STREAMS concurrent ones (prompts of different lengths) are
timed in turns, as the bench's rows are; every stream's tokens must be HuggingFace's greedy ones.
"""

from __future__ import annotations

import statistics
from typing import Callable

import numpy as np

from checks import harness
from checks.bench_rows import hf_run
from checks.bench_timing import Row, Timing, time_in_turns

STREAMS = 4  # concurrent requests in the served bench
SERVED_PROMPT_TOKENS = (3, 13, 6)  # the other streams' prompt lengths: rows of different lengths


def time_served(hf, prompt_ids: list[int], tokens: int, repeats: int) -> int:
    """`--serve`: the serving chapter's model behind max serve, timed in turns with one stream
    (the bench's prompt) and with STREAMS concurrent ones (prompts of different lengths); prints
    the total tokens/s of each. 1 unless every stream's tokens are HuggingFace's greedy ones."""
    from concurrent.futures import ThreadPoolExecutor

    from checks import serving

    rng = np.random.default_rng(1)
    prompts = [prompt_ids] + [
        rng.integers(0, hf.config.vocab_size, length).tolist()
        for length in SERVED_PROMPT_TOKENS[: STREAMS - 1]
    ]
    expected = [hf_run(hf, ids, use_cache=True)(tokens) for ids in prompts]  # greedy's ids
    with (
        serving.served(hf, harness.steps_dir()) as server,
        ThreadPoolExecutor(STREAMS) as pool,
    ):

        def streams(count: int) -> Callable[[int], list[int]]:
            """`count` requests at once; their ids one after the other (for the total rate)."""

            def run(n: int) -> list[int]:
                texts = list(pool.map(lambda ids: server.stream(ids, n), prompts[:count]))
                return [token for ids in texts for token in ids]

            return run

        rows = [
            Row("max serve, 1 stream", streams(1), server.start_s),
            Row(f"max serve, {STREAMS} concurrent streams", streams(STREAMS)),
        ]
        one, many = time_in_turns(rows, tokens, repeats)
    print_served(one, many, server.start_s)
    # the one stream's run, then the concurrent ones: each stream's prompt, tokens and greedy's
    streamed = [(prompts[0], one.tokens[:tokens], expected[0])] + [
        (prompts[i], many.tokens[i * tokens : (i + 1) * tokens], expected[i])
        for i in range(STREAMS)
    ]
    return judge_streams(streamed, prompts, tokens)


def print_served(one: Timing, many: Timing, start_s: float) -> None:
    single = one.rate(statistics.median(one.runs_s))
    print(
        f"\nServed (the serving chapter's model behind max serve, streamed; the server started in "
        f"{start_s:.0f} s):\n"
        f"| {'requests':<34} | total tok/s | per stream | vs 1 stream | spread | first token ms |\n"
        f"|{'-' * 36}|------------:|-----------:|------------:|-------:|---------------:|"
    )
    for result, count in ((one, 1), (many, STREAMS)):
        total = result.rate(statistics.median(result.runs_s))
        print(
            f"| {result.name:<34} | {total:11.1f} | {total / count:10.1f} | "
            f"{total / single:10.2f}x | {100 * result.spread():4.0f} % | "
            f"{1000 * result.first_token_s:14.0f} |"
        )


def judge_streams(streamed: list[tuple], prompts: list[list[int]], tokens: int) -> int:
    """0 when every stream's (prompt, tokens, greedy tokens) agree; else names those that differ."""
    wrong = [
        f"  stream {number} (a {len(prompt)}-token prompt): {got[:8]}..., "
        f"HuggingFace: {want[:8]}..."
        for number, (prompt, got, want) in enumerate(streamed, start=1)
        if got != want
    ]
    if wrong:
        print("Served streams differ from HuggingFace's greedy tokens:\n" + "\n".join(wrong))
        return 1
    print(
        f"Every stream's {tokens} tokens equal HuggingFace generate()'s greedy ones (prompts of "
        f"{', '.join(str(len(ids)) for ids in prompts)} tokens)."
    )
    return 0
