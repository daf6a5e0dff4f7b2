"""Stand-ins the checks give the learner's code: an id tokenizer, HuggingFace's model as logits."""

from __future__ import annotations

from typing import Any

import numpy as np

from checks.learner import LearnerError
from checks.runtime import low_precision
from checks.tensors import as_numpy, max_tensor, torch_no_grad


class IdTokenizer:
    """Text is space-separated token ids ("3 14 15"): step 10's generate_text runs on any
    vocabulary, with no trained tokenizer. `eos_token_id` -1 never ends a text."""

    def __init__(self, model_max_length: int, eos_token_id: int = -1):
        self.model_max_length = model_max_length
        self.eos_token_id = eos_token_id

    def encode(
        self, text: str, max_length: int | None = None, truncation: bool = False
    ) -> list[int]:
        ids = [int(word) for word in text.split()]
        return ids[:max_length] if truncation and max_length else ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f" {i}" for i in ids if not (skip_special_tokens and i == self.eos_token_id))


class HFLogits:
    """A HuggingFace GPT2LMHeadModel as the callable step 10 expects: MAX ids [1, S] -> MAX logits.

    It refuses more tokens than the model has positions, in a sentence, as GPT-2 itself would fail.
    """

    def __init__(self, model: Any):
        self.model = model
        self.n_positions = model.config.n_positions
        self.calls = 0
        self.last_ids: list[int] = []  # the ids of the latest call

    def __call__(self, input_ids: Any) -> Any:
        with torch_no_grad() as torch:
            ids = as_numpy(input_ids, "The ids given to the model")
            if ids.ndim != 2 or ids.shape[0] != 1:
                raise LearnerError(
                    f"the model was given ids of shape {list(ids.shape)}; it takes [1, S]."
                )
            if ids.shape[1] > self.n_positions:
                raise LearnerError(
                    f"the model was given {ids.shape[1]} tokens but has only {self.n_positions} "
                    "positions: keep only the last tokenizer.model_max_length tokens."
                )
            if ids.shape[1] == 0:
                raise LearnerError("the model was given no tokens at all.")
            self.calls += 1
            self.last_ids = ids[0].tolist()
            logits = self.model(torch.from_numpy(ids.astype(np.int64))).logits
            if low_precision():  # a bfloat16 model's logits, cast to float32 as step 8 does
                logits = logits.bfloat16().float()
            return max_tensor(logits.numpy(), float32=True)


class StandInModel:
    """A model whose logits are given: call k returns rows[k] (the last row again after the end)
    at every position, and the ids it was given are kept. Checks the loop, not the network.
    `bfloat16` returns them in bfloat16, as a model on a GPU does."""

    def __init__(self, rows, bfloat16=False):
        self.rows, self.calls, self.last_ids = [np.asarray(r, np.float32) for r in rows], 0, []
        self.bfloat16 = bfloat16

    def __call__(self, input_ids):
        ids = as_numpy(input_ids, "The ids given to the model")
        self.last_ids = ids[0].tolist()
        row = self.rows[min(self.calls, len(self.rows) - 1)]
        self.calls += 1
        logits = np.broadcast_to(row, (1, ids.shape[1], row.shape[0])).copy()
        if self.bfloat16:  # through torch, which has bfloat16 (numpy has none)
            with torch_no_grad() as torch:
                return max_tensor(torch.from_numpy(logits).bfloat16())
        return max_tensor(logits)


def scripted(next_ids, vocab_size, bfloat16=False):
    """A stand-in model whose greedy choice at call k is next_ids[k]."""
    return StandInModel([10.0 * np.eye(vocab_size)[i] for i in next_ids], bfloat16)
