"""The bench's rows: HuggingFace generate() and the learner's MAX models, on one greedy prompt.

HuggingFace generate() with its KV cache, without it and in bfloat16; step 10's loop on the model
the learner's step 11 builds, the KV-cache extension's loop on its model, and, once written, the
Mojo extension's model (float32, and bfloat16 on the CPU), each also timed on a long prompt's
first token.
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from checks import harness, options
from checks.bench_timing import Row
from checks.doubles import IdTokenizer


@dataclass
class Prompts:
    """The bench's prompt and long prompt (its first token is timed too), as ids, and the
    tokenizer that writes ids as text for the learner's generation loops."""

    ids: list[int]
    long_ids: list[int]
    tokenizer: IdTokenizer

    def long_first(self, run: Callable[[int, list[int]], list[int]]) -> Callable[[], object] | None:
        """The first new token of the long prompt with `run(n, ids)`; None with no long prompt."""
        return (lambda: run(1, self.long_ids)) if self.long_ids else None


def prompts(config, prompt_tokens: int, long_prompt: int) -> Prompts:
    """Seeded prompts of the model's vocabulary; the long one must leave room for a new token."""
    ids = np.random.default_rng(0).integers(0, config.vocab_size, prompt_tokens).tolist()
    long_ids = np.random.default_rng(1).integers(0, config.vocab_size, long_prompt).tolist()
    if len(long_ids) + 1 > config.n_positions:
        raise SystemExit(
            f"--long-prompt {long_prompt} does not fit the model's {config.n_positions} "
            "positions with a new token: give a shorter one."
        )
    return Prompts(ids, long_ids, IdTokenizer(config.n_positions))


def hf_run(model, ids: list[int], use_cache: bool) -> Callable[[int], list[int]]:
    """`run(n)`: HuggingFace generate()'s n greedy ids after `ids`."""
    import torch

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


def huggingface_rows(hf, prompts: Prompts, bfloat16: bool) -> list[Row]:
    """generate() with its KV cache, without, and (with `bfloat16`) in bfloat16."""
    models = [("HuggingFace generate(), KV cache", hf, True, False)]
    models.append(("HuggingFace generate(), no cache", hf, False, False))
    if bfloat16:  # PyTorch runs bfloat16 on the CPU
        models.append(
            ("HuggingFace generate(), bfloat16", copy.deepcopy(hf).bfloat16(), True, True)
        )
    return [
        Row(
            name,
            hf_run(model, prompts.ids, use_cache),
            None,
            prompts.long_first(
                lambda n, ids, model=model, use_cache=use_cache: hf_run(model, ids, use_cache)(n)
            ),
            bfloat16=in_bf16,
        )
        for name, model, use_cache, in_bf16 in models
    ]


class LearnerModels:
    """The learner's models on the bench's weights, each built by their step 11's build_model
    from a saved copy of HuggingFace's model, and run by their own generation loops."""

    def __init__(self, hf, steps: list, prompts: Prompts, folder: str) -> None:
        from max.experimental.tensor import defaults

        step_01, _, self.step_10, self.step_11, self.kv = steps
        self.config = step_01.GPT2Config(
            **{name: getattr(hf.config, name) for name in step_01.GPT2Config.__dataclass_fields__}
        )
        self.device = defaults()[1].devices[0]
        self.prompts = prompts
        self.folder = folder

    def build(self, model_class=None, input_types=None):
        """Your step 11's build_model on the bench's model: (compiled model, seconds it took)."""
        return self.timed_build(
            lambda folder: self.step_11.build_model(folder, model_class, input_types)
        )

    def timed_build(self, build_model):
        """`build_model(folder)` (step 11's, or a chapter's built on it) on the bench's model:
        (compiled model, seconds it took)."""
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its "Compiling ..." lines
            compiled = build_model(self.folder)[0]
        return compiled, time.perf_counter() - start

    def new_ids(self, text: str, prompt: list[int]) -> list[int]:
        return self.prompts.tokenizer.encode(text)[len(prompt) :]

    def uncached_row(self) -> Row:
        """Step 10's loop on step 11's model of step 8: the whole sequence again for each token."""
        simple, compile_s = self.build()
        generate = self.step_10.generate_text
        return self.loop_row("MAX, step 10 loop, no cache", generate, simple, compile_s)

    def cached_row(self, name: str, model_class) -> Row:
        """The KV-cache extension's loop on `model_class`, built with the cache's input types."""
        model, compile_s = self.build(model_class, self.kv.cache_input_types)
        return self.loop_row(name, self.kv.generate_with_cache, model, compile_s, self.config)

    def mojo_row(self, name: str, mojo) -> Row:
        """The KV-cache extension's loop on the Mojo extension's model, as its compile_mojo_model
        builds it (in bfloat16 on a CPU: prompts on AMX, or a float32 copy); a copy of the chapter
        from before compile_mojo_model existed, as step 11's build_model builds it."""
        if not hasattr(mojo, "compile_mojo_model"):
            print(
                f"  ({name}: your ext_mojo.py has no compile_mojo_model, which the chapter's "
                "skeleton now gives; built without it, a bfloat16 model reads prompts in bfloat16 "
                "too)",
                flush=True,
            )
            return self.cached_row(name, mojo.MojoCachedGPT2LMHeadModel)
        model, compile_s = self.timed_build(mojo.compile_mojo_model)
        return self.loop_row(name, self.kv.generate_with_cache, model, compile_s, self.config)

    def loop_row(self, name: str, generate, model, compile_s: float, *config) -> Row:
        """The learner's generation loop `generate(model, *config, tokenizer, device, text, ...)`
        on `model`, greedy, as a row."""

        def run(n: int, ids: list[int] = self.prompts.ids) -> list[int]:
            text = generate(
                model,
                *config,
                self.prompts.tokenizer,
                self.device,
                text_of(ids),
                max_new_tokens=n,
                do_sample=False,
            )
            return self.new_ids(text, ids)

        return Row(name, run, compile_s, self.prompts.long_first(run))


def text_of(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def max_rows(hf, steps: list, mojo, prompts: Prompts, bfloat16: bool) -> list[Row]:
    """Step 10's loop, the KV-cache extension and, when `mojo` (ext_mojo) is given, the Mojo
    extension's model, in float32 and (with `bfloat16`, on the CPU) in bfloat16."""
    from max.dtype import DType
    from max.experimental.tensor import default_dtype

    from checks.tokenizer import local_tokenizer, quiet_transformers

    saved = tempfile.TemporaryDirectory(prefix="bench-model-")  # gone after the builds
    quiet_transformers()  # no "Writing model shards" bar
    hf.save_pretrained(saved.name)  # with a tokenizer, as build_model loads a model (the bench's
    local_tokenizer().save_pretrained(saved.name)  # ids go through IdTokenizer, not this one)
    models = LearnerModels(hf, steps, prompts, saved.name)
    on_the_cpu = options.current().device == "cpu"
    print(
        "  compiling the MAX models (minutes the first time, seconds once cached) ...", flush=True
    )
    with saved, harness.waiting.announce("compiling the MAX models"):
        rows = [models.uncached_row()]  # step 8's model
        rows.append(models.cached_row("MAX, KV cache (extension)", models.kv.CachedGPT2LMHeadModel))
        if mojo is not None:
            row = models.mojo_row("MAX, KV cache + Mojo kernel", mojo)
            rows.append(replace(row, kernel_gbs=kernel_speed("float32", hf.config, on_the_cpu)))
        if mojo is not None and bfloat16 and on_the_cpu:
            with default_dtype(DType.bfloat16):  # the model's weights, caches and kernel
                row = models.mojo_row("MAX, KV cache + Mojo kernel, bfloat16", mojo)
            row = replace(row, kernel_gbs=kernel_speed("bfloat16", hf.config, on_the_cpu))
            rows.append(in_bfloat16(row))
    return rows


def kernel_speed(dtype: str, config, on_the_cpu: bool) -> Callable[[], float] | None:
    """Times a Mojo row's kernel alone on the LM head (on the CPU: its share of a token)."""
    if not on_the_cpu:
        return None
    from checks.kernel_graphs import kernel_read_gbs

    return lambda: kernel_read_gbs(dtype, config.n_embd, config.vocab_size)


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
