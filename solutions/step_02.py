"""Step 2 solution: the feed-forward network (MLP) of a transformer block."""

from max.experimental import functional as F
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config


class GPT2MLP(Module):
    """Expand to `intermediate_size`, apply GELU, project back to `n_embd`."""

    def __init__(self, intermediate_size: int, config: GPT2Config):
        self.c_fc = Linear(config.n_embd, intermediate_size, bias=True)
        self.c_proj = Linear(intermediate_size, config.n_embd, bias=True)

    def forward(self, hidden_states: Tensor) -> Tensor:
        hidden_states = self.c_fc(hidden_states)  # [B, S, I]
        # GPT-2 was trained with the tanh approximation of GELU ("gelu_new").
        hidden_states = F.gelu(hidden_states, approximate="tanh")
        return self.c_proj(hidden_states)  # [B, S, E]
