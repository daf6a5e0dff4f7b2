"""Step 11 solution: load GPT-2's pretrained weights, compile the model, and generate text.

    python solutions/step_11.py                         # interactive, real GPT-2 (downloads ~550 MB once)
    python solutions/step_11.py --prompt "Hello" --greedy --max-new-tokens 20
    python solutions/step_11.py --model path/to/a/saved/model --prompt "Hello"
"""

import sys

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Linear
from max.experimental.tensor import TensorType, defaults
from max.graph import DeviceRef

from step_01 import GPT2Config
from step_08 import MaxGPT2LMHeadModel
from step_10 import generate_text

from gpt2_demo import command_line, load_huggingface

# HuggingFace's GPT-2 uses Conv1D for these layers: weights stored [in, out], where Linear is [out, in].
CONV1D_LAYERS = ("c_attn", "c_proj", "c_fc")


def transfer_weights(hf_model, max_model) -> None:
    """Load `hf_model`'s weights into `max_model`, transposing exactly the Conv1D weights.

    load_state_dict checks shapes, so transpose in the state dict before loading: loading first
    and transposing afterwards fails on every non-square one: c_attn, c_fc and mlp.c_proj
    (only attn.c_proj is square).
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


def build_model(model_name_or_path: str = "gpt2", model_class=None, input_types=None):
    """(compiled model, tokenizer, device, config) for a hub name or a local folder.

    `model_class` (default: step 8's MaxGPT2LMHeadModel) and `input_types(config, device)`
    (default: int64 ids of any batch and length) let the extension chapters compile their own
    models on the same loading.
    """
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
        max_model = (model_class or MaxGPT2LMHeadModel)(config)
    transfer_weights(hf_model, max_model)
    max_model.to(device)
    if input_types is None:
        types = [TensorType(DType.int64, ("batch", "seqlen"), device=DeviceRef.from_device(device))]
    else:
        types = input_types(config, device)
    print(f"Compiling {type(max_model).__name__} ({config.n_layer} layers, {config.n_embd} wide) "
          f"for {device}...")
    return max_model.compile(*types), tokenizer, device, config


def run_model(
    model_name_or_path: str = "gpt2",
    prompt: str | None = None,
    max_new_tokens: int = 50,
    temperature: float = 0.8,
    greedy: bool = False,
    seed: int | None = None,
    build=None,
    top_k: int | None = None,
) -> None:
    """Generate once for `prompt`, or ask for prompts until quit/exit/q, Ctrl+C or end of input.

    `build` replaces build_model (the KV-cache chapter passes its faster model this way);
    `top_k` samples among the k likeliest tokens only (step 10's top_k_filter).
    """
    model, tokenizer, device, _ = (build or build_model)(model_name_or_path)

    def generate(text: str) -> None:
        print(text, end="", flush=True)
        generate_text(
            model, tokenizer, device, text, max_new_tokens=max_new_tokens,
            temperature=temperature, do_sample=not greedy, top_k=top_k, seed=seed,
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


def main(argv: list[str] | None = None, build=None) -> int:
    """The command line (gpt2_demo.py): `build` replaces build_model (the KV-cache chapter's)."""
    return command_line(run_model, build or build_model, argv)


if __name__ == "__main__":
    sys.exit(main())
