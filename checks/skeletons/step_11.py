"""Step 11: load GPT-2's pretrained weights, compile the model, and generate text.

Your model has HuggingFace's parameter names, so OpenAI's weights load into it by name, with one
twist: HuggingFace's GPT-2 stores c_attn, c_proj and c_fc as Conv1D layers, whose weights are
[in, out], where a Linear's are [out, in]. Then compile the model once with symbolic
("batch", "seqlen") sizes, so the same compiled graph serves every prompt length.

Check your work: pixi run s11. Then talk to your model: pixi run gpt2.

    python steps/step_11.py                         # interactive, real GPT-2 (downloads ~550 MB once)
    python steps/step_11.py --prompt "Hello" --greedy --max-new-tokens 20
    python steps/step_11.py --model path/to/a/saved/model --prompt "Hello"
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
    # TODO 1: the names of the Conv1D weights: for each (name, child) in max_model.descendants,
    #   a Linear whose last name part is in CONV1D_LAYERS has the weight f"{name}.weight".

    # TODO 2: hf_model.state_dict() with exactly those weights transposed (value.T), every value
    #   made contiguous (.contiguous()).
    # Hint: transpose before loading. load_state_dict checks shapes, so "load, then transpose
    #   child.weight" fails on every non-square one (all but the square attn.c_proj).

    # TODO 3: load it: max_model.load_state_dict(state, auto_cast=True)
    #   (auto_cast lets float32 weights load into a bfloat16 model on a GPU).
    return None

def build_model(model_name_or_path: str = "gpt2", model_class=None, input_types=None):
    """(compiled model, tokenizer, device, config) for a hub name or a local folder.

    `model_class` (default: step 8's MaxGPT2LMHeadModel) and `input_types(config, device)`
    (default: int64 ids of any batch and length) let the extension chapters compile their own
    models on the same loading.
    """
    hf_model, tokenizer = load_huggingface(model_name_or_path)
    # TODO 4: GPT-2 has no padding token: reuse the end-of-text one. Let the tokenizer know the
    #   model's context: tokenizer.model_max_length = hf_model.config.n_positions.

    # TODO 5: a GPT2Config with the loaded model's sizes (hf_model.config has the same field
    #   names), so a small local model works as well as GPT-2 small.

    # TODO 6: the default device, the model built without random weights, the weights moved in.
    # Hint: _, mesh = defaults(); device = mesh.devices[0]
    # Hint: with F.lazy(): max_model = (model_class or MaxGPT2LMHeadModel)(config)
    # Hint: transfer_weights(hf_model, max_model); max_model.to(device)

    # TODO 7: compile for input_types(config, device) when given, else for int64 ids of any batch
    #   and length: TensorType(DType.int64, ("batch", "seqlen"), device=DeviceRef.from_device(device))
    #   (max_model.compile(*types)), and return (compiled model, tokenizer, device, config).
    return None

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

    # TODO 8: with a prompt, generate once and return.

    # TODO 9: otherwise ask for prompts in a loop: input("\nPrompt: ").strip(); quit, exit or q
    #   end it; an empty line asks again; end of input (EOFError) ends it too.
    return None

def main(argv: list[str] | None = None, build=None) -> int:
    """The command line (gpt2_demo.py): `build` replaces build_model (the KV-cache chapter's)."""
    return command_line(run_model, build or build_model, argv)


if __name__ == "__main__":
    sys.exit(main())
