"""Step 9 solution: text to token ids and back."""

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental.tensor import Tensor


def tokenize_text(text: str, tokenizer, device: Device, max_length: int | None = None) -> Tensor:
    """`text` as a [1, n] int64 Tensor of token ids on `device` (at most `max_length` of them)."""
    ids = tokenizer.encode(text, max_length=max_length, truncation=max_length is not None)
    return Tensor(np.array([ids], dtype=np.int64).reshape(1, -1), dtype=DType.int64, device=device)


def decode_tokens(token_ids: Tensor, tokenizer) -> str:
    """A [1, n] or [n] Tensor of token ids as text, without special tokens such as <|endoftext|>."""
    ids = token_ids.to(CPU()).to_numpy().reshape(-1).tolist()  # [n]
    return tokenizer.decode(ids, skip_special_tokens=True)
