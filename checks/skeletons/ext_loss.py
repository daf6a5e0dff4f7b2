"""The loss chapter: how well does a model predict a text?

Training GPT-2 lowered one number: the next-token loss. At every position t the model's logits
give a probability to each possible next token; the loss is -log p of the token that actually
came next, averaged over the text. Perplexity, e^loss, says how many tokens the model hesitates
between. You compute both here, on your own step-8 model's logits, exactly as HuggingFace's
GPT2LMHeadModel(ids, labels=ids).loss does.

Check your work: pixi run check-loss. Then score a text with GPT-2:
python steps/step_11.py --score "The quick brown fox"
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
    # TODO 1: pair each position with the token after it: the logits of positions 0..S-2 and the
    #   ids of positions 1..S-1.
    # Hint: slice the sequence axis: logits[:, :-1] and ids[:, 1:].

    # TODO 2: the log-probabilities of every vocabulary token, in float32.
    # Hint: F.logsoftmax(x, axis=-1), not F.log(F.softmax(x)): a probability below 1e-45
    #   rounds to 0 in float32 and its log is -inf. Cast the logits first with
    #   .cast(DType.float32): on a GPU they are bfloat16, which keeps 8 significant bits.

    # TODO 3: at each position, pick the log-probability of the token that came next.
    # Hint: F.gather_nd(log_probs, F.unsqueeze(next_ids, -1), batch_dims=2) gives [B, S - 1].
    return None


def mean_loss(log_probs: Tensor, attention_mask: np.ndarray | None = None) -> float:
    """The mean next-token cross-entropy, in nats: -mean(log p) over the predicted tokens.

    `attention_mask` ([B, S], 1 for a real token, 0 for padding): a pair counts only when both
    the predicting and the predicted token are real."""
    # TODO 4: -mean of the log-probabilities (natural log: the loss is in nats) as a Python float.
    # Hint: log_probs.to(CPU()).to_numpy() is a [B, S - 1] numpy array.

    # TODO 5: with a mask, count position t only when token t and token t + 1 are both real.
    # Hint: counted = mask[:, :-1] * mask[:, 1:]; divide by counted.sum(), not by the size.
    return None


def perplexity(loss: float) -> float:
    """e^loss: as unsure as a uniform choice among this many tokens."""
    # TODO 6: perplexity is e to the loss (the loss is a natural log).
    # Hint: math.exp(loss)
    return None


def most_surprising(log_probs: Tensor, k: int) -> list[tuple[int, float]]:
    """The k tokens of the first text the model expected least: (its index in the text, its
    surprise -log p in nats), most surprising first."""
    # TODO 7: surprise = -log p; entry t of log_probs[0] scores token t + 1 of the text.
    # Hint: np.argsort(-surprise, kind="stable")[:k]; return (int(t) + 1, float(surprise[t])).
    return None


def score_text(model, tokenizer, device: Device, text: str, k: int = 5):
    """(loss, perplexity, most surprising tokens as (token text, surprise)) of `text` under
    `model`, which maps [1, S] ids to [1, S, V] logits."""
    # TODO 8: tokenize (step 9's tokenize_text, at most tokenizer.model_max_length tokens), run
    #   the model, then use the functions above. A text needs two tokens for one prediction:
    #   raise ValueError for fewer.
    # Hint: most_surprising gives indices in the text; the token there is ids[0, index], and
    #   the text of id i is tokenizer.decode([i]).
    return None
