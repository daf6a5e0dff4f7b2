"""The bench's table and picture: tokens/s, spread, ceilings, and whether the tokens agree.

Every row's figures beside HuggingFace generate()'s, the machine's memory speed and the ceiling
it puts on tokens/s, where a Mojo row's time per token goes, the float32 rows' tokens against each
other and the bfloat16 rows' within rounding of HuggingFace's float32 logits; the same drawn to a
PNG with matplotlib.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from checks.bench_timing import BUSY_SPREAD, Timing


@dataclass
class Memory:
    """The machine's memory read speed and the bytes of weights one decoded token reads."""

    gbs: float
    bytes_per_token: int

    def ceiling(self, bfloat16: bool = False) -> float:
        """Tokens/s if a token took only the time to read its weights once (float32's
        bytes_per_token, half of them in bfloat16)."""
        return self.gbs * 1e9 / (self.bytes_per_token / (2 if bfloat16 else 1))


def judge_bfloat16_rows(results: list[Timing], hf, prompt_ids: list[int]) -> None:
    """A bfloat16 row may part from float32's greedy tokens wherever two tokens score within
    rounding: its tokens are judged as step 11's bfloat16 check judges them, against HuggingFace's
    float32 logits."""
    from checks.reference import near_greedy_problem

    for result in results:
        if result.bfloat16:
            result.near_greedy = near_greedy_problem(
                hf, prompt_ids + result.tokens, len(prompt_ids)
            )


def report(
    results: list[Timing], tokens: int, memory: Memory | None = None, long_prompt: int = 0
) -> int:
    """Prints the table and what it means; 0 when every row produced the tokens it should."""
    print_table(results, memory, long_prompt)
    print(
        "\nSpread: (third quartile - first quartile) / median of a row's timed runs. Compile s: "
        "your step 11's build_model, loading and compiling. Peak RSS is the process's peak so far, "
        "after each row's warm-up (the models stay loaded; the server's memory is its own)."
    )
    if memory:
        print_ceilings(results, memory)
    if long_prompt:
        for line in long_prompt_ratios(results, long_prompt):
            print(line)
    busiest = max(results, key=Timing.spread)
    if len(busiest.runs_s) > 1 and busiest.spread() > BUSY_SPREAD:
        print(
            f"The machine was busy: the runs of {busiest.name} differ by "
            f"{100 * busiest.spread():.0f} % (over {100 * BUSY_SPREAD:.0f} %), so the figures are "
            "not to be trusted; close what else runs and time again."
        )
    return judge_tokens(results, tokens)


def print_table(results: list[Timing], memory: Memory | None, long_prompt: int) -> None:
    baseline = statistics.median(results[0].runs_s)
    long_head = f" {long_prompt}-token prompt, first token ms |" if long_prompt else ""
    print(
        f"\n| {'model':<38} | tok/s median | spread | vs HF generate() | of ceiling | first token ms "
        f"|{long_head} warm-up s | compile s | peak RSS MB |"
    )
    print(
        f"|{'-' * 40}|-------------:|-------:|-----------------:|-----------:|---------------:"
        + ("|" + "-" * (len(long_head) - 2) + ":" if long_prompt else "")
        + "|----------:|----------:|------------:|"
    )
    for r in results:
        median = statistics.median(r.runs_s)
        compile_s = f"{r.compile_s:.1f}" if r.compile_s is not None else "-"
        share = f"{100 * r.rate(median) / memory.ceiling(r.bfloat16):.0f} %" if memory else "-"
        long_ms = ""
        if long_prompt:
            value = f"{1000 * r.long_first_token_s:.0f}" if r.long_first_token_s else "-"
            long_ms = f" {value:>{len(long_head) - 3}} |"
        print(
            f"| {r.name:<38} | {r.rate(median):12.1f} | {100 * r.spread():4.0f} % | "
            f"{baseline / median:15.2f}x | {share:>10} | {1000 * r.first_token_s:14.0f} |{long_ms} "
            f"{r.warmup_s:9.2f} | {compile_s:>9} | {r.peak_rss_mb:11.0f} |"
        )


def print_ceilings(results: list[Timing], memory: Memory) -> None:
    """The machine's memory speed, the ceiling it puts on tokens/s, and where a Mojo row's time
    per token goes."""
    print(
        f"This machine reads memory at {memory.gbs:.1f} GB/s (the fastest of ten sums over "
        f"512 MiB, before and after the rows); one token reads {memory.bytes_per_token / 1e6:.3g} MB of weights, so no "
        f"model here can decode faster than {memory.ceiling():.0f} tok/s: the ceiling."
    )
    if any(r.bfloat16 for r in results):
        print(
            f"In bfloat16 a token reads {memory.bytes_per_token / 2e6:.3g} MB: the bfloat16 "
            f"ceiling is {memory.ceiling(bfloat16=True):.0f} tok/s (their rows' share is of it)."
        )
    for r in results:
        if r.kernel_gbs:
            print(time_split(r, memory))


def long_prompt_ratios(results: list[Timing], long_prompt: int) -> list[str]:
    """Each MAX bfloat16 row's long-prompt first token beside HuggingFace's in bfloat16 (issue
    #32: within 2x), one line each."""
    hf = next((r for r in results if r.bfloat16 and r.name.startswith("HuggingFace")), None)
    if hf is None or not hf.long_first_token_s:
        return []
    lines = []
    for r in results:
        if r.bfloat16 and r is not hf and r.long_first_token_s:
            ratio = r.long_first_token_s / hf.long_first_token_s
            lines.append(
                f"{r.name}: a {long_prompt}-token prompt's first token in "
                f"{1000 * r.long_first_token_s:.0f} ms, {ratio:.2f}x {hf.name}'s "
                f"{1000 * hf.long_first_token_s:.0f} ms ({'within' if ratio <= 2 else 'over'} 2x)."
            )
    return lines


def judge_tokens(results: list[Timing], tokens: int) -> int:
    """0 when the float32 rows produced the same tokens and each bfloat16 row's are within
    rounding of HuggingFace's float32 logits (judge_bfloat16_rows); says which differ."""
    exact = [r for r in results if not r.bfloat16]
    rounded = [r for r in results if r.bfloat16]
    same = all(r.tokens == exact[0].tokens and len(r.tokens) == tokens for r in exact)
    near = all(r.near_greedy is None and len(r.tokens) == tokens for r in rounded)
    if same:
        print(f"All {len(exact)} produced the same {tokens} tokens.")
    else:
        for r in exact:
            print(f"  {r.name}: {r.tokens[:12]}...")
        print("The models disagree on the tokens: the comparison above is not valid.")
    if rounded and near:
        print(
            f"The {len(rounded)} bfloat16 rows' tokens are each within bfloat16 rounding of the "
            "best in HuggingFace's float32 logits (as step 11's bfloat16 check judges)."
        )
    for r in rounded:
        if r.near_greedy is not None:
            print(f"  {r.name}: {r.near_greedy}")
    if not near:
        print("A bfloat16 row's tokens part from float32's further than rounding explains.")
    return 0 if same and near else 1


def time_split(row: Timing, memory: Memory) -> str:
    """Where a Mojo row's time per token goes: reading the weights at its kernel's own speed (on
    the LM head, alone in a graph), and the rest of the model's graph."""
    token_ms = 1000 / row.rate(statistics.median(row.runs_s))
    token_bytes = memory.bytes_per_token / (2 if row.bfloat16 else 1)
    read_ms = 1000 * token_bytes / 1e9 / row.kernel_gbs
    said = (
        f"{row.name}: {token_ms:.1f} ms a token. Its kernel alone reads the LM head at "
        f"{row.kernel_gbs:.1f} GB/s; at that speed the token's {token_bytes / 1e6:.3g} MB take "
        f"{read_ms:.1f} ms"
    )
    if read_ms >= token_ms:  # the two timings were taken apart; the machine's speed moved
        return said + ", the whole token."
    return said + (
        f", and the other {token_ms - read_ms:.1f} ms ({100 * (1 - read_ms / token_ms):.0f} %) "
        "go to the rest of the graph: attention over the cache, layer norms, GELU, residual "
        "additions, and starting each of those ops and each kernel call, one after another."
    )


BFLOAT16_BARS = "#e08a2c"  # beside show.BARS, the site's purple, for the float32 rows


def draw(results: list[Timing], memory: Memory | None, long_prompt: int, path: Path, dpi=100):
    """The table as a picture: tokens/s of each row as a bar (bfloat16 rows in orange) with the
    float32 and bfloat16 ceilings as lines, and beside it the time to the first token, for the
    short prompt and the long one. Returns where data points land in the PNG, per panel."""
    from checks import show

    plt = show._pyplot()
    fig, (speed, first) = plt.subplots(
        1,
        2,
        figsize=(12, 0.5 * len(results) + 1.8),
        dpi=dpi,
        sharey=True,
        gridspec_kw={"width_ratios": (3, 2)},
    )
    names = [r.name for r in results]
    where = np.arange(len(results))[::-1]  # the table's first row at the top
    rates = [r.rate(statistics.median(r.runs_s)) for r in results]
    colours = [BFLOAT16_BARS if r.bfloat16 else show.BARS for r in results]
    speed.barh(where, rates, color=colours)
    for y, rate in zip(where, rates, strict=True):
        speed.text(rate, y, f" {rate:.1f}", va="center", fontsize=8)
    if memory is not None:
        for bfloat16, style in ((False, "-"), (True, "--")):
            if bfloat16 and not any(r.bfloat16 for r in results):
                continue
            ceiling = memory.ceiling(bfloat16)
            speed.axvline(ceiling, color="#3b3b4f", linestyle=style, linewidth=1)
            speed.text(
                ceiling,
                where[0] + 0.6,
                f"{'bfloat16' if bfloat16 else 'float32'} ceiling {ceiling:.0f}",
                ha="right",
                va="bottom",
                fontsize=8,
            )
    speed.set_yticks(where, names)
    speed.set_xlabel("tokens/s (median of the timed runs)")
    speed.set_ylim(-0.6, len(results) + 0.4)
    first.barh(
        where + 0.2,
        [1000 * r.first_token_s for r in results],
        height=0.4,
        color="#9fb7d9",
        label="short prompt",
    )
    if long_prompt:
        first.barh(
            where - 0.2,
            [1000 * (r.long_first_token_s or 0) for r in results],
            height=0.4,
            color="#3b6fb6",
            label=f"{long_prompt}-token prompt",
        )
    first.set_xlabel("time to the first token, ms")
    first.legend(loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return show._save(fig, path, [speed, first])
