"""Step 9: text to token ids and back.

GPT-2 reads and writes token ids, not characters. Its tokenizer (byte-level BPE) maps any text,
accents and emoji included, to ids from its 50257-token vocabulary, and maps ids back to text.
These two functions connect the tokenizer (a HuggingFace object) to your MAX model: ids go in as
a [1, n] int64 Tensor (a batch of one sequence), and generated ids come back as text.

Check your work: pixi run s9
"""

import numpy as np
from max.driver import CPU, Device
from max.experimental.tensor import Tensor


def tokenize_text(text: str, tokenizer, device: Device, max_length: int | None = None) -> Tensor:
    """`text` as a [1, n] int64 Tensor of token ids on `device` (at most `max_length` of them)."""
    # TODO 1: encode the text into a list of ids, keeping only the first max_length when given.
    # Hint: tokenizer.encode(text, max_length=max_length, truncation=max_length is not None)

    # TODO 2: return the ids as a [1, n] int64 Tensor on `device`.
    # Hint: np.array([ids], dtype=np.int64).reshape(1, -1) keeps the shape [1, 0] for empty text;
    #   Tensor.from_dlpack(array).to(device) wraps it without running a graph (Tensor(array) runs one)
    return None


def decode_tokens(token_ids: Tensor, tokenizer) -> str:
    """A [1, n] or [n] Tensor of token ids as text, without special tokens such as <|endoftext|>."""
    # TODO 3: bring the ids to the CPU as a flat Python list.
    # Hint: token_ids.to(CPU()).to_numpy().reshape(-1).tolist()

    # TODO 4: decode them, skipping special tokens.
    # Hint: tokenizer.decode(ids, skip_special_tokens=True)
    return None
