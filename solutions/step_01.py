"""Step 1 solution: the GPT-2 configuration."""

from dataclasses import dataclass


@dataclass
class GPT2Config:
    """The hyperparameters of GPT-2 small, as in HuggingFace's `gpt2` config.json."""

    vocab_size: int = 50257  # byte-level BPE tokens
    n_positions: int = 1024  # longest context the model can see
    n_embd: int = 768  # width of every hidden state
    n_layer: int = 12  # transformer blocks
    n_head: int = 12  # attention heads per block
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    layer_norm_epsilon: float = 1e-5  # keeps layer norm away from division by zero
