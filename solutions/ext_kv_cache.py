"""Extension solution: a KV cache, so each new token costs one position's work, not the sequence's.

    python solutions/ext_kv_cache.py --prompt "Hello" --greedy    # step 11's demo, with the cache
    python solutions/ext_kv_cache.py --no-cache ...               # step 11's model, for comparison
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
        query, key, value = F.split(self.c_attn(hidden_states), [self.embed_dim] * 3, axis=-1)
        query, key, value = (self._split_heads(t) for t in (query, key, value))  # [B, H, S, D]
        key = F.concat([past_key, key], axis=2)  # [B, H, N + S, D]
        value = F.concat([past_value, value], axis=2)

        # Multiplied, not divided: MAX 26.7 compiles `tensor / float` as an extra graph (~7 s).
        scale = 1.0 / math.sqrt(self.head_dim)
        # In float32 (no-op casts in float32): on our test CPU, MAX 26.7's bfloat16 batched matmul
        # is over 60x slower than its float32 one, seconds on a long prompt (the bfloat16 page).
        q, k, v = (t.cast(DType.float32) for t in (query, key, value))
        scores = q @ k.transpose(-1, -2) * scale  # [B, H, S, N + S]
        seq_len, cached = hidden_states.shape[1], past_key.shape[2]
        scores = scores + causal_mask(seq_len, cached, dtype=scores.dtype, device=scores.device)
        attended = (F.softmax(scores, axis=-1) @ v).cast(query.dtype)  # [B, H, S, D]
        return self.c_proj(self._merge_heads(attended)), key, value


class CachedBlock(Module):
    """Step 6's block, passing each layer's cache through its attention."""

    def __init__(self, config: GPT2Config):
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CachedAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config.n_inner or 4 * config.n_embd, config)

    def forward(self, hidden_states: Tensor, past_key: Tensor, past_value: Tensor):
        attended, key, value = self.attn(self.ln_1(hidden_states), past_key, past_value)
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.ln_2(hidden_states)), key, value


class CachedGPT2Model(Module):
    """Step 7's body; the new tokens' positions continue after the cached ones."""

    def __init__(self, config: GPT2Config):
        self.wte = Embedding(config.vocab_size, dim=config.n_embd)
        self.wpe = Embedding(config.n_positions, dim=config.n_embd)
        self.h = ModuleList([CachedBlock(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: Tensor, *past: Tensor):
        seq_len, cached = input_ids.shape[1], past[0].shape[2]
        positions = Tensor.arange(cached, cached + seq_len, dtype=DType.int64,
                                  device=input_ids.device)  # [S]: N, N + 1, ...
        hidden_states = self.wte(input_ids) + self.wpe(positions)  # [B, S, E]
        present = []
        for layer, block in enumerate(self.h):
            hidden_states, key, value = block(hidden_states, past[2 * layer], past[2 * layer + 1])
            present += [key, value]
        return self.ln_f(hidden_states), present


class CachedGPT2LMHeadModel(Module):
    """(ids [B, S], cache) -> (the last position's logits [B, 1, V], the cache grown by S)."""

    def __init__(self, config: GPT2Config):
        self.transformer = CachedGPT2Model(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, input_ids: Tensor, *past: Tensor):
        hidden_states, present = self.transformer(input_ids, *past)
        # Only the next token's logits are needed: skip the head for the other positions.
        last = hidden_states[:, -1:]  # [B, 1, E]
        logits = self.lm_head(last)  # [B, 1, V]
        logits = logits if logits.dtype == DType.float32 else logits.cast(DType.float32)  # as step 8
        return (logits, *present)  # 2 * n_layer caches


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
        ids = input_ids.to(CPU()).to_numpy()[0].tolist()
        # A new text, or a window that slid past n_positions: the cache no longer fits.
        if ids[: len(self.seen)] != self.seen or len(ids) <= len(self.seen):
            self.reset()
        new = Tensor.from_dlpack(np.array([ids[len(self.seen):]], dtype=np.int64)).to(self.device)
        logits, *self.cache = self.model(new, *self.cache)  # [1, 1, V]; the cache grows
        self.seen = ids
        return logits


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
