"""Step 7 solution: the GPT-2 body, from token ids to final hidden states."""

from max.dtype import DType
from max.experimental.nn import Embedding, Module, Sequential
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_05 import LayerNorm
from step_06 import GPT2Block


class MaxGPT2Model(Module):
    """Token + position embeddings, `n_layer` blocks, a final layer norm."""

    def __init__(self, config: GPT2Config):
        self.wte = Embedding(config.vocab_size, dim=config.n_embd)  # token embeddings
        self.wpe = Embedding(config.n_positions, dim=config.n_embd)  # position embeddings
        self.h = Sequential(*(GPT2Block(config) for _ in range(config.n_layer)))
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: Tensor) -> Tensor:
        seq_len = input_ids.shape[1]
        positions = Tensor.arange(seq_len, dtype=DType.int64, device=input_ids.device)  # [S]
        hidden_states = self.wte(input_ids) + self.wpe(positions)  # [B, S, E]
        hidden_states = self.h(hidden_states)
        return self.ln_f(hidden_states)  # [B, S, E]
