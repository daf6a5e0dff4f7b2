"""Step 11 solution: load GPT-2's pretrained weights, compile the model, and generate text.

    python solutions/step_11.py                         # interactive, real GPT-2 (downloads ~550 MB once)
    python solutions/step_11.py --prompt "Hello" --greedy --max-new-tokens 20
    python solutions/step_11.py --model path/to/a/saved/model --prompt "Hello"
"""

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Linear
from max.experimental.tensor import TensorType, default_dtype, defaults
from max.graph import DeviceRef

from step_01 import GPT2Config
from step_08 import MaxGPT2LMHeadModel
from step_10 import generate_text

# HuggingFace's GPT-2 uses Conv1D for these layers: weights stored [in, out], where Linear is [out, in].
CONV1D_LAYERS = ("c_attn", "c_proj", "c_fc")


def transfer_weights(hf_model, max_model) -> None:
    """Load `hf_model`'s weights into `max_model`, transposing exactly the Conv1D weights.

    load_state_dict checks shapes, so transpose in the state dict before loading: loading first
    and transposing afterwards fails for the non-square c_attn and c_fc.
    """
    conv1d = {
        f"{name}.weight"
        for name, child in max_model.descendants
        if isinstance(child, Linear) and name.rsplit(".", 1)[-1] in CONV1D_LAYERS
    }
    state = {
        key: (value.T if key in conv1d else value).contiguous()
        for key, value in hf_model.state_dict().items()
    }
    max_model.load_state_dict(state, auto_cast=True)  # float32 weights into bfloat16 on a GPU


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
            "--model at a folder saved with save_pretrained (config.json, model.safetensors, "
            "vocab.json, merges.txt)."
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
            f"The tokenizer of '{model_name_or_path}' is empty: vocab.json and merges.txt were "
            "not found or could not be read. Check the folder, or load 'gpt2' while online."
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


def build_model(model_name_or_path: str = "gpt2"):
    """(compiled model, tokenizer, device) for a hub name or a local folder."""
    hf_model, tokenizer = load_huggingface(model_name_or_path)
    tokenizer.pad_token = tokenizer.eos_token
    hf = hf_model.config
    tokenizer.model_max_length = hf.n_positions
    config = GPT2Config(
        vocab_size=hf.vocab_size,
        n_positions=hf.n_positions,
        n_embd=hf.n_embd,
        n_layer=hf.n_layer,
        n_head=hf.n_head,
        n_inner=hf.n_inner,
        layer_norm_epsilon=hf.layer_norm_epsilon,
    )
    _, mesh = defaults()
    device = mesh.devices[0]
    with F.lazy():  # skip the random initialisation: the weights come next
        max_model = MaxGPT2LMHeadModel(config)
    transfer_weights(hf_model, max_model)
    max_model.to(device)
    print(f"Compiling GPT-2 ({config.n_layer} layers, {config.n_embd} wide) for {device}...")
    token_type = TensorType(DType.int64, ("batch", "seqlen"), device=DeviceRef.from_device(device))
    return max_model.compile(token_type), tokenizer, device


def run_model(
    model_name_or_path: str = "gpt2",
    prompt: str | None = None,
    max_new_tokens: int = 50,
    temperature: float = 0.8,
    greedy: bool = False,
    seed: int | None = None,
    build=None,
) -> None:
    """Generate once for `prompt`, or ask for prompts until quit/exit/q, Ctrl+C or end of input.

    `build` replaces build_model (the KV-cache chapter passes its faster model this way).
    """
    model, tokenizer, device = (build or build_model)(model_name_or_path)

    def generate(text: str) -> None:
        print(text, end="", flush=True)
        generate_text(
            model, tokenizer, device, text, max_new_tokens=max_new_tokens,
            temperature=temperature, do_sample=not greedy, seed=seed,
            on_text=lambda piece: print(piece, end="", flush=True),  # stream as it comes
        )
        print()

    if prompt is not None:
        generate(prompt)
        return
    print("Model ready. Type a prompt and press Enter; quit, exit, q or Ctrl+D to leave.")
    while True:
        try:
            text = input("\nPrompt: ").strip()
        except EOFError:
            print()
            return
        if text.lower() in ("quit", "exit", "q"):
            return
        if not text:
            print("Please type a prompt (or quit).")
            continue
        generate(text)


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, build=None) -> int:
    parser = argparse.ArgumentParser(description="Generate text with your GPT-2 on MAX.")
    parser.add_argument("--model", default="gpt2", help="a HuggingFace name or a local folder")
    parser.add_argument("--prompt", help="generate once for this prompt (default: interactive)")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    parser.add_argument("--seed", type=int, help="make sampling reproducible")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                        help="the model's dtype (default: MAX's, float32 on a CPU, bfloat16 on a GPU)")
    args = parser.parse_args(argv)
    if args.temperature <= 0:
        parser.error("--temperature must be above 0 (use --greedy for deterministic text)")
    # Python 3.11 runs MAX's eager ops ~100x slower under the default SIGINT handler.
    signal.signal(signal.SIGINT, interrupt)
    dtype = default_dtype(getattr(DType, args.dtype)) if args.dtype else contextlib.nullcontext()
    try:
        with dtype:
            run_model(args.model, args.prompt, args.max_new_tokens, args.temperature, args.greedy,
                      args.seed, announced(build or build_model))
    except KeyboardInterrupt:
        print("\nStopped.")
    except Exception as error:  # most often a step that is not finished yet
        print(unfinished_step_message(error), file=sys.stderr)
        return 1
    return 0


def announced(build):
    """`build`, saying every 15 s that it is still at work: loading GPT-2 and compiling it takes
    minutes the first time, and a graph is compiled again whenever the model's code changes."""

    def build_and_announce(*args):
        done, start = threading.Event(), time.monotonic()

        def heartbeat() -> None:
            while not done.wait(15):
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
    import traceback

    folder = Path(__file__).resolve().parent
    steps = [Path(frame.filename).stem for frame in traceback.extract_tb(error.__traceback__)
             if Path(frame.filename).resolve().parent == folder
             and Path(frame.filename).stem.startswith("step_")]
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    if not steps:
        return f"GPT-2 could not run ({detail})."
    step = int(steps[-1].removeprefix("step_"))
    return (f"GPT-2 can't run yet: your step {step} raised {detail}. Finish step {step} and check "
            f"it with `pixi run s{step}` (`pixi run check-all` shows every step).")


if __name__ == "__main__":
    sys.exit(main())
