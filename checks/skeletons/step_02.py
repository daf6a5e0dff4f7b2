"""Step 2: the feed-forward network (MLP) of a transformer block.

After attention has mixed information between positions, each position is transformed on its own
by a small two-layer network: widen to `intermediate_size` (4 * n_embd in GPT-2), apply GELU,
project back to `n_embd`. Name the layers as HuggingFace does (`c_fc`, `c_proj`) so the pretrained
weights load into them by name in step 11.

Check your work: pixi run s2
"""

from max.experimental import functional as F
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config


class GPT2MLP(Module):
    """Expand to `intermediate_size`, apply GELU, project back to `n_embd`."""

    def __init__(self, intermediate_size: int, config: GPT2Config):
        # TODO 1: create the expanding layer, n_embd -> intermediate_size, with a bias.
        # Hint: Linear(in_features, out_features, bias=True)
        self.c_fc = None

        # TODO 2: create the projecting layer, intermediate_size -> n_embd, with a bias.
        self.c_proj = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        # TODO 3: c_fc, then GELU, then c_proj.
        # Hint: GPT-2 was trained with the tanh approximation of GELU:
        #   F.gelu(x, approximate="tanh")
        return None
