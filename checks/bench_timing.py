"""The bench's timing: every row's greedy runs, in turns after a warm-up, and their spread.

A row is one way to generate the same greedy tokens. The rows are timed in turns (a warm-up of
each, then rounds that run every row once), so a spell of load lands on one round of every row,
not on every repeat of one row.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Timing:
    name: str
    tokens: list[int]
    warmup_s: float
    runs_s: list[float] = field(default_factory=list)
    compile_s: float | None = None
    peak_rss_mb: float = 0.0
    first_token_s: float = 0.0  # median time to the first new token (prompt included)
    long_first_token_s: float | None = None  # the same for the long prompt (--long-prompt)
    bfloat16: bool = False  # its weights are bfloat16: its tokens are judged within rounding
    near_greedy: str | None = None  # for a bfloat16 row, what is wrong with its tokens, if any
    kernel_gbs: float | None = None  # a Mojo row: its kernel's read speed alone, on the LM head

    def rate(self, seconds: float) -> float:
        return len(self.tokens) / seconds

    def spread(self) -> float:
        """How much the middle half of the repeats differ, 0.1 for 10 %: (third quartile - first
        quartile) / median. One slow round (a busy spell lands on one round of every row) does
        not count; this VM's quiet runs still differ by 20-50 % between slowest and fastest."""
        if len(self.runs_s) < 2:
            return 0.0
        first, _, third = statistics.quantiles(self.runs_s, n=4, method="inclusive")
        return (third - first) / statistics.median(self.runs_s)


# Above this spread between the repeats of a row, something else was using the machine.
BUSY_SPREAD = 0.15


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Row:
    """A way to generate: `run(n)` returns n new greedy token ids."""

    name: str
    run: Callable[[int], list[int]]
    compile_s: float | None = None
    long_first: Callable[[], object] | None = None  # the first new token of the long prompt
    bfloat16: bool = False
    kernel_gbs: Callable[[], float] | None = None  # a Mojo row: times its kernel alone


# A pause before each timed run: threads of the row before (MAX's or PyTorch's) that still spin
# for work would otherwise take the cores from the next row.
SETTLE_S = 0.3


def timed_run(run: Callable[[int], list[int]], tokens: int) -> tuple[list[int], float]:
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    ids = run(tokens)
    return ids, time.perf_counter() - start


def time_in_turns(rows: list[Row], tokens: int, repeats: int) -> list[Timing]:
    """A warm-up of each row, then `repeats` rounds that run every row once, in turn, for
    `tokens` tokens and for one (the first token's latency). A busy spell of the machine lands
    on one round of every row, not on every repeat of one row."""
    results = []
    for row in rows:
        print(f"  warming up {row.name} ...", flush=True)
        first, seconds = timed_run(row.run, tokens)
        results.append(Timing(row.name, first, seconds, [], row.compile_s, bfloat16=row.bfloat16))
        results[-1].peak_rss_mb = peak_rss_mb()
    first_token: dict[str, list[float]] = {row.name: [] for row in rows}
    long_first: dict[str, list[float]] = {row.name: [] for row in rows}
    for round_ in range(repeats):
        print(f"  round {round_ + 1}/{repeats}: every row in turn ...", flush=True)
        for row, result in zip(rows, results, strict=True):
            again, seconds = timed_run(row.run, tokens)
            result.runs_s.append(seconds)
            if again != result.tokens:
                raise AssertionError(f"{row.name}: greedy generation gave other tokens on a repeat")
            first_token[row.name].append(timed_run(row.run, 1)[1])
            if row.long_first is not None:
                long_first[row.name].append(timed_run(lambda _, go=row.long_first: go(), 1)[1])
    for result in results:
        result.first_token_s = statistics.median(first_token[result.name])
        if long_first[result.name]:
            result.long_first_token_s = statistics.median(long_first[result.name])
    return results
