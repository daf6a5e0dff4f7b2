"""Step 8: the language-model head.

The body gives one hidden vector per position; the head turns each into one score (logit) per
vocabulary token, the model's guess for the next token. GPT-2's head is a Linear layer without a
bias; HuggingFace ties its weight to `wte` and saves it as `lm_head.weight`, which is why the names
must match: in step 11 the pretrained weights load by name.

Check your work: pixi run s8
"""

from max.dtype import DType
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor

from step_01 import GPT2Config
from step_07 import MaxGPT2Model


class MaxGPT2LMHeadModel(Module):
    """Hidden states -> one score (logit) per vocabulary token, at every position."""

    def __init__(self, config: GPT2Config):
        # TODO 1: the body, named `transformer` as in HuggingFace.
        self.transformer = None

        # TODO 2: lm_head, a Linear from n_embd to vocab_size without a bias.
        self.lm_head = None

    def forward(self, input_ids: Tensor) -> Tensor:
        # TODO 3: the body's hidden states, then lm_head: [B, S] -> [B, S, E] -> [B, S, V].
        # Hint: on a GPU MAX computes in bfloat16, which numpy can't read: return
        #   logits.cast(DType.float32) when logits.dtype is not DType.float32 (free inside the
        #   compiled graph; step 10 then reads the logits directly).
        return None
