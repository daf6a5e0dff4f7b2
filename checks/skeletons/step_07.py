"""Step 7: the GPT-2 body, from token ids to final hidden states.

Token ids become vectors through a learned table (`wte`), and each position adds a learned
position vector (`wpe`), because attention by itself does not know the order of tokens. The sum
runs through `n_layer` blocks and a final layer norm (`ln_f`).

Check your work: pixi run s7
"""

from max.dtype import DType
from max.experimental.nn import Embedding, Module, Sequential
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_05 import LayerNorm
from step_06 import GPT2Block


class MaxGPT2Model(Module):
    """Token + position embeddings, `n_layer` blocks, a final layer norm."""

    def __init__(self, config: GPT2Config):
        # TODO 1: token embeddings wte (vocab_size rows) and position embeddings wpe
        #   (n_positions rows), each n_embd wide.
        # Hint: Embedding(num_embeddings, dim=config.n_embd) (dim is keyword-only)
        self.wte = None
        self.wpe = None

        # TODO 2: h, the n_layer blocks, in a container that can be indexed (h[0], h[1], ...).
        # Hint: Sequential(*(GPT2Block(config) for _ in range(config.n_layer)))
        self.h = None

        # TODO 3: ln_f, the final layer norm.
        self.ln_f = None

    def forward(self, input_ids: Tensor) -> Tensor:
        # TODO 4: positions 0, 1, ..., S-1 where S = input_ids.shape[1].
        # Hint: Tensor.arange(S, dtype=DType.int64, device=input_ids.device)

        # TODO 5: wte(input_ids) + wpe(positions), then the blocks, then ln_f.
        return None
