"""Step 9 solution: text to token ids and back."""

import numpy as np
from max.driver import CPU, Device
from max.experimental.tensor import Tensor


def tokenize_text(text: str, tokenizer, device: Device, max_length: int | None = None) -> Tensor:
    """`text` as a [1, n] int64 Tensor of token ids on `device` (at most `max_length` of them)."""
    ids = tokenizer.encode(text, max_length=max_length, truncation=max_length is not None)
    array = np.array([ids], dtype=np.int64).reshape(1, -1)  # [1, n], also for n = 0
    # from_dlpack wraps the numpy array as it is; Tensor(array) would run a graph to copy it.
    return Tensor.from_dlpack(array).to(device)


def decode_tokens(token_ids: Tensor, tokenizer) -> str:
    """A [1, n] or [n] Tensor of token ids as text, without special tokens such as <|endoftext|>."""
    ids = token_ids.to(CPU()).to_numpy().reshape(-1).tolist()  # [n]
    return tokenizer.decode(ids, skip_special_tokens=True)
