"""`pixi run bench`: greedy generation speed of HuggingFace and of the course's MAX models.

    python -m checks.bench                       # GPT-2 124M sizes, seeded random weights
    python -m checks.bench --model gpt2          # OpenAI's weights (from the HuggingFace cache)
    python -m checks.bench --tiny                # a 2-layer model: a quick run of the same code
    python -m checks.bench --serve               # also the serving chapter's model, max serve

One process times the same greedy generation (same prompt ids, same number of new tokens) for
HuggingFace generate() with its KV cache, HuggingFace without a cache, step 10's loop on the
compiled step-11 model, the KV-cache extension and, once it is written, the Mojo extension. The
rows are timed in turns (one run of each, then again), so a machine that gets busy for a while
slows every row alike; it prints tokens/s (median of the repeats and their spread, the warm-up run
reported apart), the time to the first token, the ratio to HuggingFace generate(), compile times
and peak memory, this machine's memory read speed with the ceiling it puts on tokens/s (each token
reads every weight once) and each row's share of it, and exits 1 unless all of them produced the
same tokens. With --serve the same model is also saved to a folder, served
with the serving chapter's code and timed through the API. The MAX models are the learner's own,
from steps/ (`--solutions` times the reference answers, `--dir` any folder); the steps they need
are tried on a tiny model first, so an unfinished one is named in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from checks import course, harness, options
from checks.doubles import IdTokenizer
from checks.reference import SMALL


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


def huggingface_model(args: argparse.Namespace):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_grad_enabled(False)
    if args.model:
        return GPT2LMHeadModel.from_pretrained(args.model).eval(), f"{args.model} weights"
    sizes = {}
    if args.tiny:  # the checks' small GPT-2: the graphs the checks compile, so cached for both
        sizes = {name: getattr(SMALL, name) for name in ("n_layer", "n_embd", "n_head")}
        sizes.update(vocab_size=SMALL.vocab_size, n_positions=SMALL.n_positions)
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**sizes)).eval(), "random weights, seed 0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checks.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model", help="a HuggingFace name or folder (default: random 124M weights)"
    )
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model instead of 124M")
    parser.add_argument("--tokens", type=int, default=50, help="new tokens per run (50)")
    parser.add_argument("--prompt-tokens", type=int, default=8, help="prompt length (8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (5)")
    parser.add_argument(
        "--long-prompt",
        type=int,
        help="also time the first token of a prompt this long, for every row (512, --tiny 16; "
        "0: not)",
    )
    parser.add_argument(
        "--no-bfloat16",
        action="store_true",
        help="leave out the bfloat16 rows (HuggingFace's and the Mojo model's)",
    )
    parser.add_argument("--plot", metavar="FILE", help="also draw the table to this PNG file")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="also time the serving chapter's model behind max serve, streamed (starts a server)",
    )
    harness.add_folder_options(parser, "time")
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where the MAX models run (gpu: in bfloat16)",
    )
    args = parser.parse_args(argv)
    if args.long_prompt is None:
        args.long_prompt = 16 if args.tiny else 512  # the tiny model has 24 positions
    options.use(
        options.Options(device=args.device, dtype="bfloat16" if args.device == "gpu" else "float32")
    )
    harness.use_steps_dir(harness.chosen_folder(args))
    harness.prepare_max()
    try:
        with harness.pinned_defaults():
            return time_all(args, ready_steps())
    except (harness.LearnerError, harness.NoDevice) as error:
        print(error)
        return 1
    except KeyboardInterrupt:  # Ctrl+C, SIGTERM or SIGHUP: a server it started is stopped
        print("\nStopped.")
        return 130


def time_all(args: argparse.Namespace, steps: list) -> int:
    """Times each way of generating the same greedy tokens and prints the table."""
    import torch

    from checks.memory import decode_bytes_per_token, read_bandwidth_gbs

    hf, weights = huggingface_model(args)
    config = hf.config
    before = read_bandwidth_gbs()  # and again after the rows: the faster is the machine's
    prompt_ids = (
        np.random.default_rng(0).integers(0, config.vocab_size, args.prompt_tokens).tolist()
    )
    long_ids = np.random.default_rng(1).integers(0, config.vocab_size, args.long_prompt).tolist()
    if len(long_ids) + 1 > config.n_positions:
        raise SystemExit(
            f"--long-prompt {args.long_prompt} does not fit the model's {config.n_positions} "
            "positions with a new token: give a shorter one."
        )
    tokenizer = IdTokenizer(config.n_positions)
    print(
        f"Greedy generation: GPT-2 {config.n_layer} layers x {config.n_embd} wide ({weights}), "
        f"{args.prompt_tokens}-token prompt, {args.tokens} new tokens, {args.repeats} timed runs "
        f"of each row, in turns, after a warm-up; torch uses {torch.get_num_threads()} threads.",
        flush=True,
    )

    def hf_run(use_cache: bool, model=hf, ids=prompt_ids) -> Callable[[int], list[int]]:
        def run(tokens: int) -> list[int]:
            out = model.generate(
                torch.tensor([ids]),
                do_sample=False,
                use_cache=use_cache,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                pad_token_id=0,
                eos_token_id=None,
            )
            return out[0, len(ids) :].tolist()

        return run

    def long_first(run: Callable[..., list[int]]) -> Callable[[], object] | None:
        return (lambda: run(1, long_ids)) if long_ids else None

    rows = [
        Row(
            "HuggingFace generate(), KV cache",
            hf_run(True),
            None,
            long_first(lambda n, ids: hf_run(True, hf, ids)(n)),
        ),
        Row(
            "HuggingFace generate(), no cache",
            hf_run(False),
            None,
            long_first(lambda n, ids: hf_run(False, hf, ids)(n)),
        ),
    ]
    if not args.no_bfloat16:
        hf16 = copy.deepcopy(hf).bfloat16()  # PyTorch runs bfloat16 on the CPU
        rows.append(
            Row(
                "HuggingFace generate(), bfloat16",
                hf_run(True, hf16),
                None,
                long_first(lambda n, ids: hf_run(True, hf16, ids)(n)),
                bfloat16=True,
            )
        )

    from max.dtype import DType
    from max.experimental.tensor import default_dtype, defaults

    from checks.tokenizer import local_tokenizer, quiet_transformers

    step_01, step_08, step_10, step_11, kv = steps
    max_config = step_01.GPT2Config(
        **{name: getattr(config, name) for name in step_01.GPT2Config.__dataclass_fields__}
    )
    device = defaults()[1].devices[0]
    saved = tempfile.TemporaryDirectory(prefix="bench-model-")  # gone after the builds
    quiet_transformers()  # no "Writing model shards" bar
    hf.save_pretrained(saved.name)  # with a tokenizer, as build_model loads a model (the bench's
    local_tokenizer().save_pretrained(saved.name)  # ids go through IdTokenizer, not this one)

    def build(model_class=None, input_types=None):
        """Your step 11's build_model on the bench's model: (compiled model, seconds it took)."""
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its "Compiling ..." line
            compiled = step_11.build_model(saved.name, model_class, input_types)[0]
        return compiled, time.perf_counter() - start

    def text_of(ids: list[int]) -> str:
        return " ".join(map(str, ids))

    def ids_of(text: str, prompt: list[int] = prompt_ids) -> list[int]:
        return tokenizer.encode(text)[len(prompt) :]

    def cached(model, n: int, ids: list[int] = prompt_ids) -> list[int]:
        """Greedy generation of n tokens with the KV-cache chapter's loop on `model`."""
        return ids_of(
            kv.generate_with_cache(
                model,
                max_config,
                tokenizer,
                device,
                text_of(ids),
                max_new_tokens=n,
                do_sample=False,
            ),
            ids,
        )

    def cached_row(name: str, model, compile_s: float) -> Row:
        return Row(
            name,
            lambda n: cached(model, n),
            compile_s,
            long_first(lambda n, ids: cached(model, n, ids)),
        )

    def uncached(n: int, ids: list[int] = prompt_ids) -> list[int]:
        return ids_of(
            step_10.generate_text(
                simple, tokenizer, device, text_of(ids), max_new_tokens=n, do_sample=False
            ),
            ids,
        )

    mojo = finished_mojo_chapter()
    print(
        "  compiling the MAX models (minutes the first time, seconds once cached) ...", flush=True
    )
    with saved, harness.waiting.announce("compiling the MAX models"):
        simple, simple_compile = build()  # step 8's model
        rows.append(
            Row("MAX, step 10 loop, no cache", uncached, simple_compile, long_first(uncached))
        )
        rows.append(
            cached_row(
                "MAX, KV cache (extension)",
                *build(kv.CachedGPT2LMHeadModel, kv.cache_input_types),
            )
        )
        on_the_cpu = options.current().device == "cpu"

        def kernel_speed(dtype: str) -> Callable[[], float] | None:
            """Times the row's kernel alone on the LM head (on the CPU: its share of a token)."""
            if not on_the_cpu:
                return None
            from checks.kernel_graphs import kernel_read_gbs

            return lambda: kernel_read_gbs(dtype, config.n_embd, config.vocab_size)

        if mojo is not None:
            row = cached_row(
                "MAX, KV cache + Mojo kernel",
                *build(mojo.MojoCachedGPT2LMHeadModel, kv.cache_input_types),
            )
            rows.append(replace(row, kernel_gbs=kernel_speed("float32")))
        if mojo is not None and not args.no_bfloat16 and on_the_cpu:
            with default_dtype(DType.bfloat16):  # the model's weights, caches and kernel
                row = cached_row(
                    "MAX, KV cache + Mojo kernel, bfloat16",
                    *build(mojo.MojoCachedGPT2LMHeadModel, kv.cache_input_types),
                )
            rows.append(in_bfloat16(replace(row, kernel_gbs=kernel_speed("bfloat16"))))
    results = time_in_turns(rows, args.tokens, args.repeats)
    timed_alone = [
        (row, result) for row, result in zip(rows, results, strict=True) if row.kernel_gbs
    ]
    if timed_alone:
        print("  timing the Mojo kernel alone on the LM head ...", flush=True)
        for row, result in timed_alone:
            result.kernel_gbs = row.kernel_gbs()
    judge_bfloat16_rows(results, hf, prompt_ids)
    memory = None
    if options.current().device == "cpu":
        print("  measuring how fast this machine reads memory ...", flush=True)
        time.sleep(SETTLE_S)
        memory = Memory(max(before, read_bandwidth_gbs()), decode_bytes_per_token(hf))
    code = report(results, args.tokens, memory, args.long_prompt)
    if args.plot:
        draw(results, memory, args.long_prompt, Path(args.plot))
        print(f"Drew the table to {args.plot}")
    if args.serve:
        code = max(code, time_served(hf, prompt_ids, args.tokens, args.repeats))
    return code


STREAMS = 4  # concurrent requests in the served bench
SERVED_PROMPT_TOKENS = (3, 13, 6)  # the other streams' prompt lengths: rows of different lengths


def time_served(hf, prompt_ids: list[int], tokens: int, repeats: int) -> int:
    """`--serve`: the serving chapter's model behind max serve, timed in turns with one stream
    (the bench's prompt) and with STREAMS concurrent ones (prompts of different lengths); prints
    the total tokens/s of each. 1 unless every stream's tokens are HuggingFace's greedy ones."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from checks import serving

    rng = np.random.default_rng(1)
    prompts = [prompt_ids] + [
        rng.integers(0, hf.config.vocab_size, length).tolist()
        for length in SERVED_PROMPT_TOKENS[: STREAMS - 1]
    ]
    expected = []
    for ids in prompts:
        out = hf.generate(
            torch.tensor([ids]),
            do_sample=False,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            pad_token_id=0,
            eos_token_id=None,
        )
        expected.append(out[0, len(ids) :].tolist())
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
    single = one.rate(statistics.median(one.runs_s))
    print(
        f"\nServed (the serving chapter's model behind max serve, streamed; the server started in "
        f"{server.start_s:.0f} s):\n"
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
    # the one stream's run, then the concurrent ones: each stream's prompt, tokens and greedy's
    streamed = [(prompts[0], one.tokens[:tokens], expected[0])] + [
        (prompts[i], many.tokens[i * tokens : (i + 1) * tokens], expected[i])
        for i in range(STREAMS)
    ]
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


def in_bfloat16(row: Row) -> Row:
    """`row`, run with MAX's default dtype bfloat16 (its KV cache is made in it)."""
    from max.dtype import DType
    from max.experimental.tensor import default_dtype

    def wrapped(run):
        def call(*args):
            with default_dtype(DType.bfloat16):
                return run(*args)

        return call

    long_first = wrapped(row.long_first) if row.long_first else None
    return Row(row.name, wrapped(row.run), row.compile_s, long_first, True, row.kernel_gbs)


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


@dataclass
class Memory:
    """The machine's memory read speed and the bytes of weights one decoded token reads."""

    gbs: float
    bytes_per_token: int

    def ceiling(self, bfloat16: bool = False) -> float:
        """Tokens/s if a token took only the time to read its weights once (float32's
        bytes_per_token, half of them in bfloat16)."""
        return self.gbs * 1e9 / (self.bytes_per_token / (2 if bfloat16 else 1))


def finished_mojo_chapter():
    """ext_mojo, when its Python side is written (its row is then timed too), else None."""
    from checks import tools

    if tools.untouched(harness.steps_dir(), harness.MOJO):
        print("  (the Mojo extension is not started: no row for it)", flush=True)
        return None
    try:
        return harness.load_step(harness.MOJO)
    except harness.LearnerError as error:
        print(f"  (no row for the Mojo extension: {error})", flush=True)
        return None


def ready_steps() -> list:
    """The modules the bench runs, after a quick try of each on a tiny model; a step that is not
    done yet raises a LearnerError of one sentence, before anything is timed."""
    from checks import tools

    folder = harness.steps_dir()
    modules = []
    for step in course.BENCH_NEEDS:  # course.toml's `bench = true` steps
        if tools.untouched(folder, step):
            raise not_ready(step, "is still the untouched skeleton")
        try:
            modules.append(harness.load_step(step))
        except harness.LearnerError as error:
            raise not_ready(step, f"does not load ({error})") from None
    step_01, step_08, step_10, step_11, kv = modules
    try:
        try_on_a_tiny_model(step_01, step_08, step_11, kv)
    except harness.LearnerError as error:
        raise not_ready(None, str(error)) from None
    return modules


def not_ready(step: int | None, problem: str) -> harness.LearnerError:
    folder = os.path.relpath(harness.steps_dir())
    if step is None:
        what = f"your models in {folder}/ do not run yet: {problem}"
        fix = f"{harness.command('progress')} shows which step fails"
    else:
        what = f"{harness.module_name(step)}.py in {folder}/ {problem}"
        fix = f"finish it ({harness.step_command(step)})"
    return harness.LearnerError(
        f"The bench times your own models, and {what}. Then run the bench again: {fix}, or time "
        f"the reference answers with {harness.command('bench', '--solutions')}."
    )


def try_on_a_tiny_model(step_01, step_08, step_11, kv) -> None:
    """One eager forward of the simple and the cached model on a 1-layer GPT-2, against
    HuggingFace's logits: a None, an exception or wrong numbers show in seconds."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from checks.compare import mismatch
    from checks.modules import build_learner_module
    from checks.tensors import max_tensor

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=32, n_head=4, vocab_size=64, n_positions=16)
    ).eval()
    config = harness.call(
        "GPT2Config(...)",
        step_01.GPT2Config,
        **{name: getattr(hf.config, name) for name in step_01.GPT2Config.__dataclass_fields__},
    )
    ids = torch.tensor([[1, 5, 9, 2]])
    expected = hf(ids).logits.numpy()
    close = {"atol": 1e-3, "rtol": 1e-3, "precision": options.current().dtype}
    simple = build_learner_module("MaxGPT2LMHeadModel", step_08.MaxGPT2LMHeadModel, config)
    harness.call("transfer_weights", step_11.transfer_weights, hf, simple)
    problem = mismatch(
        "MaxGPT2LMHeadModel's logits (step 8)",
        harness.call("MaxGPT2LMHeadModel", simple, max_tensor(ids)),
        expected,
        **close,
    )
    cached = build_learner_module("CachedGPT2LMHeadModel", kv.CachedGPT2LMHeadModel, config)
    harness.call("transfer_weights", step_11.transfer_weights, hf, cached)
    empty = harness.call("empty_cache", kv.empty_cache, config, harness.device())
    out = harness.call("CachedGPT2LMHeadModel", cached, max_tensor(ids), *empty)
    if problem is None and isinstance(out, (tuple, list)) and out:
        problem = mismatch(
            "CachedGPT2LMHeadModel's logits (the KV-cache extension)",
            out[0],
            expected[:, -1:],
            **close,
        )
    if problem is not None:
        raise harness.LearnerError(problem.split("\n")[0])


def report(
    results: list[Timing], tokens: int, memory: Memory | None = None, long_prompt: int = 0
) -> int:
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
    print(
        "\nSpread: (third quartile - first quartile) / median of a row's timed runs. Compile s: "
        "your step 11's build_model, loading and compiling. Peak RSS is the process's peak so far, "
        "after each row's warm-up (the models stay loaded; the server's memory is its own)."
    )
    if memory:
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
    busiest = max(results, key=Timing.spread)
    if len(busiest.runs_s) > 1 and busiest.spread() > BUSY_SPREAD:
        print(
            f"The machine was busy: the runs of {busiest.name} differ by "
            f"{100 * busiest.spread():.0f} % (over {100 * BUSY_SPREAD:.0f} %), so the figures are "
            "not to be trusted; close what else runs and time again."
        )
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


if __name__ == "__main__":
    sys.exit(main())
