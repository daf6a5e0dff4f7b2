"""Step 8 solution: the language-model head on top of the GPT-2 body."""

from max.dtype import DType
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_07 import MaxGPT2Model


class MaxGPT2LMHeadModel(Module):
    """Hidden states -> one score (logit) per vocabulary token, at every position."""

    def __init__(self, config: GPT2Config):
        self.transformer = MaxGPT2Model(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        hidden_states = self.transformer(input_ids)  # [B, S, E]
        logits = self.lm_head(hidden_states)  # [B, S, V]
        # On a GPU the model computes in bfloat16; sampling (and numpy) want float32. Inside the
        # compiled graph this cast is free; outside it, each cast would compile a graph of its own.
        return logits if logits.dtype == DType.float32 else logits.cast(DType.float32)
