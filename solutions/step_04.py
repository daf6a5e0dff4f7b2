"""Step 4 solution: causal multi-head self-attention."""

import math

from max.experimental import functional as F
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_03 import causal_mask


class GPT2MultiHeadAttention(Module):
    """Every position attends to itself and the positions before it, in `n_head` heads at once."""

    def __init__(self, config: GPT2Config):
        self.embed_dim = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = self.embed_dim // self.num_heads
        self.c_attn = Linear(self.embed_dim, 3 * self.embed_dim, bias=True)  # q, k, v fused
        self.c_proj = Linear(self.embed_dim, self.embed_dim, bias=True)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, seq_len = x.shape[0], x.shape[1]
        x = x.reshape([batch, seq_len, self.num_heads, self.head_dim])  # [B, S, H, D]
        return x.transpose(1, 2)  # [B, H, S, D]

    def _merge_heads(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # [B, S, H, D]
        return x.reshape([x.shape[0], x.shape[1], self.embed_dim])  # [B, S, E]

    def forward(self, hidden_states: Tensor) -> Tensor:
        qkv = self.c_attn(hidden_states)  # [B, S, 3E]
        query, key, value = F.split(qkv, [self.embed_dim] * 3, axis=-1)
        query, key, value = (self._split_heads(t) for t in (query, key, value))

        # Multiplied, not divided: MAX 26.7 compiles `tensor / float` as an extra graph (~7 s).
        scores = query @ key.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))  # [B, H, S, S]
        seq_len = hidden_states.shape[1]
        scores = scores + causal_mask(seq_len, 0, dtype=scores.dtype, device=scores.device)
        weights = F.softmax(scores, axis=-1)
        attended = weights @ value  # [B, H, S, D]

        return self.c_proj(self._merge_heads(attended))  # [B, S, E]
