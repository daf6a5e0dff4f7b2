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
import os
import sys
import time
from pathlib import Path

from checks import bench_rows, bench_timing, course, harness, options
from checks.bench_served import time_served
from checks.bench_table import Memory, draw, judge_bfloat16_rows, report
from checks.bench_timing import time_in_turns
from checks.reference import SMALL
from checks.tensors import torch_no_grad


def huggingface_model(args: argparse.Namespace):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if args.model:
        return GPT2LMHeadModel.from_pretrained(args.model).eval(), f"{args.model} weights"
    sizes = {}
    if args.tiny:  # the checks' small GPT-2: the graphs the checks compile, so cached for both
        sizes = {name: getattr(SMALL, name) for name in ("n_layer", "n_embd", "n_head")}
        sizes.update(vocab_size=SMALL.vocab_size, n_positions=SMALL.n_positions)
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**sizes)).eval(), "random weights, seed 0"


def parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.long_prompt is None:
        args.long_prompt = 16 if args.tiny else 512  # the tiny model has 24 positions
    options.use(
        options.Options(device=args.device, dtype="bfloat16" if args.device == "gpu" else "float32")
    )
    harness.use_steps_dir(harness.chosen_folder(args))
    harness.prepare_max()
    try:
        with harness.pinned_defaults(), torch_no_grad():  # the bench only runs forward
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
    prompts = bench_rows.prompts(config, args.prompt_tokens, args.long_prompt)
    print(
        f"Greedy generation: GPT-2 {config.n_layer} layers x {config.n_embd} wide ({weights}), "
        f"{args.prompt_tokens}-token prompt, {args.tokens} new tokens, {args.repeats} timed runs "
        f"of each row, in turns, after a warm-up; torch uses {torch.get_num_threads()} threads.",
        flush=True,
    )
    rows = bench_rows.huggingface_rows(hf, prompts, bfloat16=not args.no_bfloat16)
    mojo = finished_mojo_chapter()
    rows += bench_rows.max_rows(hf, steps, mojo, prompts, bfloat16=not args.no_bfloat16)
    results = time_in_turns(rows, args.tokens, args.repeats)
    timed_alone = [
        (row, result) for row, result in zip(rows, results, strict=True) if row.kernel_gbs
    ]
    if timed_alone:
        print("  timing the Mojo kernel alone on the LM head ...", flush=True)
        for row, result in timed_alone:
            result.kernel_gbs = row.kernel_gbs()
    judge_bfloat16_rows(results, hf, prompts.ids)
    memory = None
    if options.current().device == "cpu":
        print("  measuring how fast this machine reads memory ...", flush=True)
        time.sleep(bench_timing.SETTLE_S)
        memory = Memory(max(before, read_bandwidth_gbs()), decode_bytes_per_token(hf))
    code = report(results, args.tokens, memory, args.long_prompt)
    if args.plot:
        draw(results, memory, args.long_prompt, Path(args.plot))
        print(f"Drew the table to {args.plot}")
    if args.serve:
        code = max(code, time_served(hf, prompts.ids, args.tokens, args.repeats))
    return code


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


if __name__ == "__main__":
    sys.exit(main())
