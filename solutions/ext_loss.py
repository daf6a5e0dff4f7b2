"""The loss chapter's solution: how well does a model predict a text? (the reference answer)

Score a text with GPT-2: python solutions/step_11.py --score "The quick brown fox"
"""

import math

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.tensor import Tensor

from step_09 import tokenize_text


def token_log_probs(logits: Tensor, ids: Tensor) -> Tensor:
    """log p(next token) at every position: [B, S, V] logits of [B, S] ids -> [B, S - 1].

    Position t predicts token t + 1, so the last position has nothing to predict and the first
    token is never predicted."""
    predictions = logits[:, :-1].cast(DType.float32)  # [B, S-1, V]; bfloat16 keeps 8 bits
    log_probs = F.logsoftmax(predictions, axis=-1)  # [B, S-1, V]; log(softmax) underflows to -inf
    targets = F.unsqueeze(ids[:, 1:], -1)  # [B, S-1, 1]: the token that came next
    return F.gather_nd(log_probs, targets, batch_dims=2)  # [B, S-1]


def mean_loss(log_probs: Tensor, attention_mask: np.ndarray | None = None) -> float:
    """The mean next-token cross-entropy, in nats: -mean(log p) over the predicted tokens.

    `attention_mask` ([B, S], 1 for a real token, 0 for padding): a pair counts only when both
    the predicting and the predicted token are real."""
    values = log_probs.to(CPU()).to_numpy()  # [B, S-1]
    if attention_mask is None:
        return float(-values.mean())
    mask = np.asarray(attention_mask, dtype=np.float64)
    counted = mask[:, :-1] * mask[:, 1:]  # [B, S-1]
    return float(-(values * counted).sum() / counted.sum())


def perplexity(loss: float) -> float:
    """e^loss: as unsure as a uniform choice among this many tokens."""
    return math.exp(loss)


def most_surprising(log_probs: Tensor, k: int) -> list[tuple[int, float]]:
    """The k tokens of the first text the model expected least: (its index in the text, its
    surprise -log p in nats), most surprising first."""
    surprise = -log_probs.to(CPU()).to_numpy()[0]  # [S-1]; entry t is token t + 1's
    order = np.argsort(-surprise, kind="stable")[:k]
    return [(int(t) + 1, float(surprise[t])) for t in order]


def score_text(model, tokenizer, device: Device, text: str, k: int = 5):
    """(loss, perplexity, most surprising tokens as (token text, surprise)) of `text` under
    `model`, which maps [1, S] ids to [1, S, V] logits."""
    ids = tokenize_text(text, tokenizer, device, max_length=tokenizer.model_max_length)  # [1, S]
    if ids.shape[1] < 2:
        raise ValueError(f"{text!r} has {int(ids.shape[1])} token(s): a loss needs at least two.")
    log_probs = token_log_probs(model(ids), ids)  # [1, S-1]
    loss = mean_loss(log_probs)
    tokens = ids.to(CPU()).to_numpy()[0]
    surprising = [
        (tokenizer.decode([int(tokens[i])]), surprise)
        for i, surprise in most_surprising(log_probs, k)
    ]
    return loss, perplexity(loss), surprising

