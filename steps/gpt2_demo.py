"""The given part of step 11 and of the KV-cache chapter: loading GPT-2 from HuggingFace, and the
command line around your model. Nothing here is yours to write; step_11.py and ext_kv_cache.py
import it. (solutions/gpt2_demo.py is a link to this file.)
"""

import argparse
import contextlib
import ctypes
import functools
import logging
import os
import platform
import re
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental.tensor import Tensor, TensorType, default_dtype, defaults
from max.graph import DeviceRef, StaticDim


def load_huggingface(model_name_or_path: str):
    """GPT2LMHeadModel and GPT2Tokenizer from a local folder, the cache, or the hub."""
    import torch
    from transformers import GPT2LMHeadModel, GPT2Tokenizer

    path = Path(model_name_or_path)
    if not path.is_dir() and (path.is_absolute() or model_name_or_path.startswith(".")):
        raise SystemExit(f"There is no folder {model_name_or_path}: check the --model path.")
    local = path.is_dir() or is_cached(model_name_or_path)
    if not local and not hub_reachable():
        raise SystemExit(
            f"Can't load '{model_name_or_path}': it is not a local folder, it is not in the "
            "HuggingFace cache, and huggingface.co can't be reached from this machine. Connect to "
            "the internet once (GPT-2 small is about 550 MB and is cached afterwards), or point "
            "--model at a folder saved with save_pretrained: config.json and model.safetensors, "
            "and the tokenizer as tokenizer.json or as vocab.json and merges.txt (`python -m "
            "checks save-model DIR` makes a small one)."
        )
    if not local:
        print(f"Downloading {model_name_or_path} from HuggingFace (GPT-2 small: about 550 MB)...")
    # In MAX's default dtype (bfloat16 on a GPU), so loading the weights casts nothing.
    dtype = torch.bfloat16 if defaults()[0] == DType.bfloat16 else torch.float32
    hf_model = GPT2LMHeadModel.from_pretrained(model_name_or_path, local_files_only=local, dtype=dtype)
    tokenizer = GPT2Tokenizer.from_pretrained(model_name_or_path, local_files_only=local)
    # transformers 5 can return an empty tokenizer instead of raising when files are missing.
    if len(tokenizer) <= 1:
        raise SystemExit(
            f"The tokenizer of '{model_name_or_path}' is empty: neither tokenizer.json nor "
            "vocab.json and merges.txt were found or could be read. Check the folder, or load "
            "'gpt2' while online."
        )
    return hf_model.eval(), tokenizer


def is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid hub name either
        return False


def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def empty_cache(config, device: Device, batch: int = 1) -> list[Tensor]:
    """Keys and values of no tokens yet: 2 * n_layer tensors of shape [batch, n_head, 0, head_dim],
    in MAX's default dtype, the model's (float32 on a CPU, bfloat16 on a GPU)."""
    shape = (batch, config.n_head, 0, config.n_embd // config.n_head)
    empty = Tensor.zeros(shape, dtype=defaults()[0], device=device)
    return [empty] * (2 * config.n_layer)


def cache_input_types(config, device: Device) -> list[TensorType]:
    """The compiled KV-cache model's inputs: ids of any batch and length, caches of any cached
    length."""
    where = DeviceRef.from_device(device)
    cache = TensorType(defaults()[0], ("batch", config.n_head, "cached", config.n_embd // config.n_head),
                       device=where)
    return [TensorType(DType.int64, ("batch", "seqlen"), device=where)] + [cache] * (2 * config.n_layer)


AMX = Path(__file__).resolve().parent / "amx"  # a Mojo package: amx/matmul_amx.mojo
CPUINFO = Path("/proc/cpuinfo")
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18  # Linux, x86-64


@functools.cache
def amx_usable() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles and Linux lets this process use them: Linux
    hands a process the tiles' 8 KB of state only when it asks (arch_prctl ARCH_REQ_XCOMP_PERM)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    with contextlib.suppress(OSError, IndexError):  # no such file, or no flags in it
        flags = set(re.findall(r"^flags\s*:(.*)$", CPUINFO.read_text(), re.M)[0].split())
        if {"amx_tile", "amx_bf16"} <= flags:
            libc = ctypes.CDLL(None)
            libc.syscall.restype = ctypes.c_long
            return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    return False


@functools.cache
def matmul_amx():
    """The given custom op "matmul_amx": x [rows, K] by weight [N, K] in bfloat16 on AMX."""
    from max.experimental import custom

    rows, n, k = custom.Symbol("rows"), custom.Symbol("n"), custom.Symbol("k")
    return custom.declare(
        "matmul_amx",
        inputs={"x": custom.TemplateType(DType.bfloat16, [rows, k]),
                "weight": custom.TemplateType(DType.bfloat16, [n, k])},
        outputs=[custom.TemplateType(DType.bfloat16, [rows, n])],
        custom_extensions=[AMX],
    )


def many_rows(rows: Tensor, weight: Tensor) -> Tensor:
    """rows @ weight.T for many rows (a prompt): MAX's matmul, or in bfloat16 on a CPU with AMX,
    amx/matmul_amx.mojo. On the course's test CPU MAX 26.7's bfloat16 matmul did not use AMX and
    ran three times slower than its float32 one (docs/mojo-bfloat16.md)."""
    bfloat16_on_a_cpu = weight.dtype == DType.bfloat16 and weight.device.is_host
    k = weight.shape[1]
    if bfloat16_on_a_cpu and isinstance(k, StaticDim) and int(k) % 32 == 0 and amx_usable():
        return matmul_amx()(rows, weight)
    return rows @ weight.T


class PromptsInFloat32:
    """A compiled KV-cache model in bfloat16 on the CPU for decoding (up to `few` new tokens a
    call, batch 1 as CachedLM calls it), and for a prompt the same model in float32, which takes
    and gives bfloat16 caches: on a CPU without AMX (with it, many_rows serves prompts).
    MAX 26.7's bfloat16 matmul is about three times slower than its float32 one on a CPU, and
    a prompt is mostly matmul (docs/mojo-bfloat16.md); decoding is reading weights, where
    bfloat16's half-size bytes win."""

    def __init__(self, model: Callable, prompts: Callable, few: int):
        self.model, self.prompts, self.few = model, prompts, few

    def __call__(self, input_ids: Tensor, *cache: Tensor):
        model = self.model if int(input_ids.shape[1]) <= self.few else self.prompts
        return model(input_ids, *cache)


def float32_prompts(model_class: type) -> type:
    """`model_class` (a KV-cache model) for PromptsInFloat32's prompts: float32 inside, the
    caches in and out in the dtype they come in (the bfloat16 model's)."""

    class Float32Prompts(model_class):
        def forward(self, input_ids: Tensor, *past: Tensor):
            logits, *present = super().forward(input_ids, *(p.cast(DType.float32) for p in past))
            return (logits, *(new.cast(old.dtype) for new, old in zip(present, past, strict=True)))

    return Float32Prompts


def with_float32_prompts(build_model: Callable, model_name_or_path: str, model_class: type,
                         prompts_class: type, few: int, amx_prompts: bool = False):
    """`build_model(model_name_or_path, model_class, cache_input_types)`, step 11's, as it returns
    it; in bfloat16 on a CPU, with the model a PromptsInFloat32 whose prompts run on
    `prompts_class` (same weight names) in float32: a second compile, and the weights in float32
    too. Not where `amx_prompts` (model_class multiplies a prompt's rows with many_rows) and this
    CPU has AMX."""
    model, tokenizer, device, config = build_model(model_name_or_path, model_class, cache_input_types)
    on_amx = amx_prompts and amx_usable()
    if defaults()[0] == DType.bfloat16 and device.is_host and not on_amx:
        bfloat16_cache = cache_input_types(config, device)
        with default_dtype(DType.float32):
            prompts = build_model(model_name_or_path, float32_prompts(prompts_class),
                                  lambda *_: bfloat16_cache)[0]
        model = PromptsInFloat32(model, prompts, few)
    return model, tokenizer, device, config


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def command_line(run_model: Callable, build: Callable, argv: list[str] | None = None) -> int:
    """`python step_11.py [--model M] [--prompt P] ...`: parse the options, then run_model with
    `build` (your build_model, or the KV-cache chapter's), naming an unfinished step, if any."""
    parser = argparse.ArgumentParser(description="Generate text with your GPT-2 on MAX.")
    parser.add_argument("--model", default="gpt2", help="a HuggingFace name or a local folder")
    parser.add_argument("--prompt", help="generate once for this prompt (default: interactive)")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="sample among the K likeliest tokens only (default: all of them)")
    parser.add_argument("--candidates", type=int, metavar="N",
                        help="print the N likeliest next tokens after --prompt, with their "
                             "probabilities, instead of generating")
    parser.add_argument("--score", metavar="TEXT",
                        help="print TEXT's loss, perplexity and most surprising tokens under the "
                             "model (the loss chapter's score_text) instead of generating")
    parser.add_argument("--seed", type=int, help="make sampling reproducible")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                        help="the model's dtype (default: MAX's, float32 on a CPU, bfloat16 on a GPU)")
    args = parser.parse_args(argv)
    if args.temperature <= 0:
        parser.error("--temperature must be above 0 (use --greedy for deterministic text)")
    if args.top_k is not None and args.top_k < 1:
        parser.error("--top-k must be 1 or more (1 is the same as --greedy)")
    if args.candidates is not None and (args.candidates < 1 or args.prompt is None):
        parser.error("--candidates N needs N of 1 or more and a --prompt")
    logging.getLogger("max").setLevel(logging.ERROR)  # "compiled ... on the fly" notes
    # Python 3.11 runs MAX's eager ops ~100x slower under the default SIGINT handler.
    signal.signal(signal.SIGINT, interrupt)
    dtype = default_dtype(getattr(DType, args.dtype)) if args.dtype else contextlib.nullcontext()
    try:
        with dtype:
            if args.score is not None:
                show_score(args.model, args.score)
            elif args.candidates:
                show_candidates(announced(build), args.model, args.prompt, args.candidates)
            else:
                # top_k only when asked for: a run_model written before it had the option still runs
                top_k = {} if args.top_k is None else {"top_k": args.top_k}
                run_model(args.model, args.prompt, args.max_new_tokens, args.temperature,
                          args.greedy, args.seed, announced(build), **top_k)
    except KeyboardInterrupt:
        print("\nStopped.")
    except Exception as error:  # most often a step that is not finished yet
        print(unfinished_step_message(error), file=sys.stderr)
        return 1
    return 0


def show_candidates(build: Callable, model_name_or_path: str, prompt: str, count: int) -> None:
    """Print the `count` likeliest next tokens after `prompt` and their probabilities: the
    softmax of the last position's logits (temperature 1, nothing filtered)."""
    model, tokenizer, device, _ = build(model_name_or_path)
    ids = tokenizer.encode(prompt)[-tokenizer.model_max_length:] or [tokenizer.eos_token_id]
    logits = model(Tensor.from_dlpack(np.array([ids], dtype=np.int64)).to(device))
    if logits.dtype != DType.float32:  # bfloat16 on a GPU: numpy has no bfloat16
        logits = logits.cast(DType.float32)
    last = logits.to(CPU()).to_numpy()[0, -1].astype(np.float64)  # [V]
    print("\n".join(candidate_lines(tokenizer, prompt, last, count)))


def show_score(model_name_or_path: str, text: str, count: int = 5) -> None:
    """Print `text`'s loss, perplexity and `count` most surprising tokens: the loss chapter's
    score_text (ext_loss.py) on step 11's model (the KV-cache model returns only the last
    position's logits; a loss needs every position's)."""
    from ext_loss import score_text
    from step_11 import build_model

    model, tokenizer, device, _ = announced(build_model)(model_name_or_path)
    scored = score_text(model, tokenizer, device, text, count)
    if scored is None:
        raise NotImplementedError("score_text returns None: finish the loss chapter (ext_loss.py)")
    loss, perplexity, surprising = scored
    print(f"Loss {loss:.4f} nats per token, perplexity {perplexity:.4g}, for {text!r}.")
    print("The most surprising tokens (surprise = -ln p, in nats):")
    for rank, (token, surprise) in enumerate(surprising, start=1):
        print(f"{rank:>4}. {token!r:<16} {surprise:7.3f}")


def candidate_lines(tokenizer, prompt: str, logits: np.ndarray, count: int) -> list[str]:
    """The table show_candidates prints: rank, token (as Python writes the string, so a leading
    space shows), probability."""
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    lines = [f"The {count} likeliest next tokens after {prompt!r}:"]
    for rank, token in enumerate(np.argsort(-probs, kind="stable")[:count], start=1):
        text = tokenizer.decode([int(token)])
        if "\ufffd" in text:  # one byte of a longer character: show the byte token itself
            text = tokenizer.convert_ids_to_tokens(int(token))
        lines.append(f"{rank:>4}. {text!r:<16} {probs[token]:7.2%}")
    return lines


def announced(build):
    """`build`, saying every 12 s that it is still at work: loading GPT-2 and compiling it takes
    minutes the first time, and a graph is compiled again whenever the model's code changes."""

    def build_and_announce(*args):
        done, start = threading.Event(), time.monotonic()

        def heartbeat() -> None:
            while not done.wait(12):
                print(f"  … still loading and compiling ({time.monotonic() - start:.0f} s)",
                      file=sys.stderr, flush=True)

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            return build(*args)
        finally:
            done.set()

    return build_and_announce


def unfinished_step_message(error: Exception) -> str:
    """Name the step whose code raised, so the learner knows what to finish (no traceback)."""
    steps = [Path(frame.filename).stem for frame in traceback.extract_tb(error.__traceback__)
             if re.fullmatch(r"step_\d\d", Path(frame.filename).stem)]
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    if not steps:
        return f"GPT-2 could not run ({detail})."
    step = int(steps[-1].removeprefix("step_"))
    return (f"GPT-2 can't run yet: your step {step} raised {detail}. Finish step {step} and check "
            f"it with `pixi run s{step}` (`pixi run check-all` shows every step).")
