"""`pixi run bench`: greedy generation speed of HuggingFace and of the course's MAX models.

    python -m checks.bench                       # GPT-2 124M sizes, seeded random weights
    python -m checks.bench --model gpt2          # OpenAI's weights (from the HuggingFace cache)
    python -m checks.bench --tiny                # a 2-layer model: a quick run of the same code

One process times the same greedy generation (same prompt ids, same number of new tokens) for
HuggingFace generate() with its KV cache, HuggingFace without a cache, step 10's loop on the
compiled step-11 model, and the KV-cache extension; it prints tokens/s (median and best of the
repeats, the warm-up run reported apart), the ratio to HuggingFace generate(), compile times and
peak memory, and exits 1 unless all four produced the same tokens. The MAX models are the ones in
solutions/.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from checks import harness


class IdTokenizer:
    """Text is space-separated token ids: lets step 10's generate_text run on any vocabulary."""

    def __init__(self, model_max_length: int):
        self.model_max_length = model_max_length
        self.eos_token_id = -1  # never generated: every run makes exactly max_new_tokens

    def encode(self, text: str, max_length: int | None = None, truncation: bool = False) -> list[int]:
        ids = [int(word) for word in text.split()]
        return ids[:max_length] if truncation and max_length else ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f" {i}" for i in ids)


@dataclass
class Result:
    name: str
    tokens: list[int]
    warmup_s: float
    runs_s: list[float] = field(default_factory=list)
    compile_s: float | None = None
    peak_rss_mb: float = 0.0

    def rate(self, seconds: float) -> float:
        return len(self.tokens) / seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(run: Callable[[], list[int]], repeats: int) -> tuple[list[int], float, list[float]]:
    start = time.perf_counter()
    tokens = run()
    warmup = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        again = run()
        runs.append(time.perf_counter() - start)
        assert again == tokens, "greedy generation gave different tokens on a repeat"
    return tokens, warmup, runs


def huggingface_model(args: argparse.Namespace):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_grad_enabled(False)
    if args.model:
        return GPT2LMHeadModel.from_pretrained(args.model).eval(), f"{args.model} weights"
    sizes = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128) if args.tiny else {}
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**sizes)).eval(), "random weights, seed 0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a HuggingFace name or folder (default: random 124M weights)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model instead of 124M")
    parser.add_argument("--tokens", type=int, default=50, help="new tokens per run (50)")
    parser.add_argument("--prompt-tokens", type=int, default=8, help="prompt length (8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model (3)")
    args = parser.parse_args(argv)
    harness.install_sigint_handler()
    harness.interpret_eager_ops()
    harness.use_steps_dir(harness.ROOT / "solutions")

    import torch

    hf, weights = huggingface_model(args)
    config = hf.config
    prompt_ids = np.random.default_rng(0).integers(0, config.vocab_size, args.prompt_tokens).tolist()
    prompt = " ".join(map(str, prompt_ids))
    tokenizer = IdTokenizer(config.n_positions)
    results: list[Result] = []
    print(f"Greedy generation: GPT-2 {config.n_layer} layers x {config.n_embd} wide ({weights}), "
          f"{args.prompt_tokens}-token prompt, {args.tokens} new tokens, {args.repeats} timed runs "
          f"after a warm-up; torch uses {torch.get_num_threads()} threads.", flush=True)

    def hf_run(use_cache: bool) -> Callable[[], list[int]]:
        def run() -> list[int]:
            out = hf.generate(torch.tensor([prompt_ids]), do_sample=False, use_cache=use_cache,
                              max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                              pad_token_id=0, eos_token_id=None)
            return out[0, len(prompt_ids):].tolist()
        return run

    def record(name: str, run: Callable[[], list[int]], compile_s: float | None = None) -> None:
        print(f"  timing {name} ...", flush=True)
        tokens, warmup, runs = timed(run, args.repeats)
        results.append(Result(name, tokens, warmup, runs, compile_s, peak_rss_mb()))

    record("HuggingFace generate(), KV cache", hf_run(True))
    record("HuggingFace generate(), no cache", hf_run(False))

    from max.dtype import DType
    from max.experimental import functional as F
    from max.experimental.tensor import TensorType, defaults
    from max.graph import DeviceRef

    step_01, step_08, step_10, step_11, kv = (
        harness.load_step(n) for n in (1, 8, 10, 11, harness.EXTENSION))
    max_config = step_01.GPT2Config(
        **{name: getattr(config, name) for name in step_01.GPT2Config.__dataclass_fields__})
    device = defaults()[1].devices[0]

    def build(model_class, *input_types):
        with F.lazy():
            model = model_class(max_config)
        step_11.transfer_weights(hf, model)
        model.to(device)
        start = time.perf_counter()
        compiled = model.compile(*input_types)
        return compiled, time.perf_counter() - start

    print("  compiling the MAX models (minutes the first time, seconds once cached) ...", flush=True)
    simple, simple_compile = build(step_08.MaxGPT2LMHeadModel, TensorType(
        DType.int64, ("batch", "seqlen"), device=DeviceRef.from_device(device)))
    cached, cached_compile = build(kv.CachedGPT2LMHeadModel, *kv.cache_input_types(max_config, device))

    def ids_of(text: str) -> list[int]:
        return tokenizer.encode(text)[len(prompt_ids):]

    record("MAX, step 10 loop, no cache", lambda: ids_of(step_10.generate_text(
        simple, tokenizer, device, prompt, max_new_tokens=args.tokens, do_sample=False)),
        simple_compile)
    record("MAX, KV cache (extension)", lambda: ids_of(kv.generate_with_cache(
        cached, max_config, tokenizer, device, prompt, max_new_tokens=args.tokens,
        do_sample=False)), cached_compile)
    return report(results, args.tokens)


def report(results: list[Result], tokens: int) -> int:
    baseline = statistics.median(results[0].runs_s)
    print(f"\n| {'model':<34} | tok/s median | tok/s best | vs HF generate() | warm-up s | compile s | peak RSS MB |")
    print(f"|{'-' * 36}|-------------:|-----------:|-----------------:|----------:|----------:|------------:|")
    for r in results:
        median = statistics.median(r.runs_s)
        compile_s = f"{r.compile_s:.1f}" if r.compile_s is not None else "-"
        print(f"| {r.name:<34} | {r.rate(median):12.1f} | {r.rate(min(r.runs_s)):10.1f} | "
              f"{baseline / median:15.2f}x | {r.warmup_s:9.2f} | {compile_s:>9} | {r.peak_rss_mb:11.0f} |")
    print("\nPeak RSS is the process's peak so far, after each row (the models stay loaded).")
    same = all(r.tokens == results[0].tokens and len(r.tokens) == tokens for r in results)
    if same:
        print(f"All {len(results)} produced the same {tokens} tokens.")
        return 0
    for r in results:
        print(f"  {r.name}: {r.tokens[:12]}...")
    print("The models disagree on the tokens: the comparison above is not valid.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
