"""Step 4: causal multi-head self-attention.

Attention lets every position gather information from the positions before it. One projection,
`c_attn`, produces queries, keys and values at once; they are split into `n_head` heads that
attend independently (each over head_dim = n_embd / n_head features), then merged and projected by
`c_proj`:

    attention(Q, K, V) = softmax(Q K^T / sqrt(head_dim) + mask) V

Check your work: pixi run s4
"""

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

        # TODO 1: create c_attn, one Linear from n_embd to 3 * n_embd (queries, keys, values).
        self.c_attn = None

        # TODO 2: create c_proj, a Linear from n_embd to n_embd.
        self.c_proj = None

    def _split_heads(self, x: Tensor) -> Tensor:
        # TODO 3: [B, S, E] -> [B, n_head, S, head_dim].
        # Hint: reshape to [B, S, n_head, head_dim] (x.shape[0], x.shape[1] give B and S),
        #   then x.transpose(1, 2).
        return None

    def _merge_heads(self, x: Tensor) -> Tensor:
        # TODO 4: [B, n_head, S, head_dim] -> [B, S, E], the inverse of _split_heads.
        return None

    def forward(self, hidden_states: Tensor) -> Tensor:
        # TODO 5: project with c_attn and split the result into query, key and value, in that
        #   order, along the last axis.
        # Hint: F.split(x, [self.embed_dim] * 3, axis=-1)

        # TODO 6: split each of them into heads.

        # TODO 7: scores = query @ key^T / sqrt(head_dim), shape [B, n_head, S, S].
        # Hint: key.transpose(-1, -2); multiply by the Python float 1.0 / math.sqrt(self.head_dim)
        #   (dividing gives the same numbers, but MAX compiles `tensor / float` as an extra
        #   small graph: about 7 s more on every compile)

        # TODO 8: add the causal mask of step 3 to the scores, then softmax over the keys.
        # Hint: causal_mask(hidden_states.shape[1], 0, dtype=scores.dtype, device=scores.device)
        # Hint: F.softmax(scores, axis=-1)

        # TODO 9: weights @ value, merge the heads, project with c_proj.
        return None
