"""Step 6: the transformer block.

A GPT-2 block is attention followed by the MLP, each wrapped the same way: normalize the input
first (pre-norm), run the layer, and add the result back to the input (a residual connection):

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x))

Check your work: pixi run s6
"""

from max.experimental.nn import Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_02 import GPT2MLP
from step_04 import GPT2MultiHeadAttention
from step_05 import LayerNorm


class GPT2Block(Module):
    """Pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPT2Config):
        # TODO 1: the MLP's inner width is config.n_inner, or 4 * n_embd when that is None.

        # TODO 2: create ln_1, attn, ln_2 and mlp (HuggingFace's names, in that order).
        # Hint: LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.ln_1 = None
        self.attn = None
        self.ln_2 = None
        self.mlp = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        # TODO 3: attention with its residual: x + attn(ln_1(x)).

        # TODO 4: the MLP with its residual: x + mlp(ln_2(x)).
        return None
