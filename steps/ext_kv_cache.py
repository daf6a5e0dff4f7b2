"""Extension: a KV cache, so each new token costs one position's work, not the whole sequence's.

Step 10 re-runs the whole sequence for every new token. But a causal model's keys and values of
earlier positions never change, so keep them: run the prompt once, then feed only the newest
token, with the keys and values of everything before it (the cache). Greedy output stays exactly
the same, token for token.

The layers and their names are those of steps 4, 6, 7 and 8 (given below), so the same weights
load. What changes is each forward: it takes the cache and returns it grown by the new tokens.

Check your work: pixi run check-kv. Then compare the speeds: pixi run bench. Talk to it:
python steps/ext_kv_cache.py (step 11's options; --no-cache runs step 11's model instead).
"""

import math
import sys
from typing import Callable

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Embedding, Linear, Module, ModuleList
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_02 import GPT2MLP
from step_03 import causal_mask
from step_05 import LayerNorm
from step_10 import generate_text

from gpt2_demo import cache_input_types, empty_cache


class CachedAttention(Module):
    """Step 4's attention, over the cached keys and values followed by the new ones."""

    def __init__(self, config: GPT2Config):
        self.embed_dim = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = self.embed_dim // self.num_heads
        self.c_attn = Linear(self.embed_dim, 3 * self.embed_dim, bias=True)
        self.c_proj = Linear(self.embed_dim, self.embed_dim, bias=True)

    def _split_heads(self, x: Tensor) -> Tensor:
        x = x.reshape([x.shape[0], x.shape[1], self.num_heads, self.head_dim])
        return x.transpose(1, 2)  # [B, H, S, D]

    def _merge_heads(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # [B, S, H, D]
        return x.reshape([x.shape[0], x.shape[1], self.embed_dim])

    def forward(self, hidden_states: Tensor, past_key: Tensor, past_value: Tensor):
        # TODO 1: as in step 4: project with c_attn, split into query, key and value, split heads.
        #   They are [B, H, S, D]: S new positions.

        # TODO 2: append the new keys and values to the cached ones along the sequence axis, so
        #   the queries see every earlier token: [B, H, N, D] + [B, H, S, D] -> [B, H, N + S, D].
        # Hint: F.concat([past_key, key], axis=2)

        # TODO 3: scores = query @ key^T / sqrt(head_dim), now [B, H, S, N + S]. Add step 3's mask
        #   for S queries after N cached keys, softmax, weights @ value, merge heads, c_proj.
        # Hint: causal_mask(hidden_states.shape[1], past_key.shape[2], dtype=..., device=...)
        # Hint: multiply by 1.0 / math.sqrt(self.head_dim), as in step 4
        # Hint: scores and weights @ value in float32 (query.cast(DType.float32), ...; the result
        #   cast back to query.dtype): MAX 26.7's bfloat16 batched matmul can be 60x slower on a CPU.

        # TODO 4: return the output and the grown key and value: (output, key, value).
        return None


class CachedBlock(Module):
    """Step 6's block, passing each layer's cache through its attention."""

    def __init__(self, config: GPT2Config):
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CachedAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config.n_inner or 4 * config.n_embd, config)

    def forward(self, hidden_states: Tensor, past_key: Tensor, past_value: Tensor):
        # TODO 5: step 6's two residual steps, passing the cache through attention; return
        #   (hidden_states, key, value).
        return None


class CachedGPT2Model(Module):
    """Step 7's body; the new tokens' positions continue after the cached ones."""

    def __init__(self, config: GPT2Config):
        self.wte = Embedding(config.vocab_size, dim=config.n_embd)
        self.wpe = Embedding(config.n_positions, dim=config.n_embd)
        self.h = ModuleList([CachedBlock(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: Tensor, *past: Tensor):
        # TODO 6: the new tokens' positions continue after the N cached ones: N, N + 1, ...
        # Hint: N is past[0].shape[2]; Tensor.arange(start, stop, dtype=DType.int64, device=...)

        # TODO 7: embeddings, then each block h[i] with its cache past[2 * i] (keys) and
        #   past[2 * i + 1] (values), collecting the grown caches in that same order; then ln_f.
        #   Return (hidden_states, list of 2 * n_layer caches).
        return None


class CachedGPT2LMHeadModel(Module):
    """(ids [B, S], cache) -> (the last position's logits [B, 1, V], the cache grown by S)."""

    def __init__(self, config: GPT2Config):
        self.transformer = CachedGPT2Model(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, input_ids: Tensor, *past: Tensor):
        # TODO 8: the body, then lm_head on the last position only: [B, S, E] -> [B, 1, E] -> [B, 1, V].
        #   Return (logits, *caches).
        # Hint: hidden_states[:, -1:] is the last position, keeping its axis.
        # Hint: as in step 8, cast bfloat16 logits to float32 (logits.cast(DType.float32)).
        return None


class CachedLM:
    """Step 10's model, `[1, S]` ids -> logits, on the KV-cache model: each call feeds only the ids
    the cache has not seen, so generate_text runs the prompt once, then one token at a time."""

    def __init__(self, model: Callable, config: GPT2Config, device: Device):
        self.model, self.config, self.device = model, config, device
        self.reset()

    def reset(self) -> None:
        self.seen: list[int] = []
        self.cache = empty_cache(self.config, self.device)

    def __call__(self, input_ids: Tensor) -> Tensor:
        # TODO 9: the ids as a list; when they don't continue self.seen (a new text, or a window
        #   that slid past n_positions), start over with self.reset().
        # Hint: input_ids.to(CPU()).to_numpy()[0].tolist(); ids[:len(self.seen)] != self.seen

        # TODO 10: feed only the ids the cache has not seen, with the cache; keep the grown cache
        #   and remember the ids; return the logits.
        # Hint: logits, *self.cache = self.model(new_ids_tensor, *self.cache)
        return None


def generate_with_cache(
    model: Callable,
    config: GPT2Config,
    tokenizer,
    device: Device,
    prompt: str,
    **options,
) -> str:
    """Step 10's generate_text (same options) on the compiled KV-cache model."""
    return generate_text(CachedLM(model, config, device), tokenizer, device, prompt, **options)


def build_cached_model(model_name_or_path: str = "gpt2"):
    """Step 11's build_model on the KV-cache model: (a CachedLM, tokenizer, device, config)."""
    import step_11  # only the demo needs step 11

    model, tokenizer, device, config = step_11.build_model(
        model_name_or_path, model_class=CachedGPT2LMHeadModel, input_types=cache_input_types)
    return CachedLM(model, config, device), tokenizer, device, config


def main(argv: list[str] | None = None) -> int:
    """Step 11's command line on the KV-cache model; --no-cache runs step 11's model instead."""
    import step_11

    argv = sys.argv[1:] if argv is None else argv
    if "--no-cache" in argv:
        return step_11.main([a for a in argv if a != "--no-cache"])
    return step_11.main(argv, build=build_cached_model)


if __name__ == "__main__":
    sys.exit(main())
