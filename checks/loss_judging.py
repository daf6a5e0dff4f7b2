"""The loss chapter's judging, in numpy: the right numbers, and the words for each known mistake.

checks/test_ext_loss.py runs the learner's functions and hands their output here;
tests/test_loss_slips.py makes each mistake in numpy and expects exactly these words.
"""

import math

import numpy as np

from checks.compare import Slip, mismatch
from checks.learner import LearnerError
from checks.tensors import as_numpy

TOLERANCE = 1e-4
K = 3  # how many surprising tokens the checks ask for

NO_SHIFT = (
    "each position scores its own token: position t predicts token t + 1, so pair logits[:, :-1] "
    "with ids[:, 1:]."
)
LAST_INCLUDED = (
    "one value per position, but the last position has no next token in the text to score: "
    "drop it (logits[:, :-1] with ids[:, 1:]), which leaves S - 1 values."
)
SHIFTED_BACK = (
    "shifted the wrong way: each position scores the token before it. Position t predicts "
    "token t + 1: logits[:, :-1] with ids[:, 1:]."
)
UNDERFLOW = (
    "log(softmax(x)) underflows: a probability below about 1e-45 is 0 in float32 and its log "
    "-inf. F.logsoftmax computes x - max - log(sum(exp(x - max))) and stays finite."
)
IN_BITS = (
    "these are in bits (log base 2); the loss is in nats, with the natural log: F.logsoftmax, "
    "np.log, math.exp. (Bits are the loss divided by ln 2.)"
)
UNCAST = (
    "the log-softmax ran in bfloat16, which keeps 8 significant bits (about 2.4 decimal "
    "digits): cast the logits to float32 first, logits.cast(DType.float32), then F.logsoftmax."
)
PADDING_COUNTED = (
    "padded positions are counted: a pair counts only when both tokens are real, "
    "counted = mask[:, :-1] * mask[:, 1:], and the mean divides by counted.sum()."
)
PROBABILITIES_AVERAGED = (
    "this is -log(mean(p)), the log of the averaged probabilities; the loss is the mean of "
    "-log(p), the average surprise."
)
BITS_PERPLEXITY = (
    "2^loss is the perplexity of a loss in bits; this loss is in nats: math.exp(loss)."
)
OFF_BY_ONE = (
    "the indices are one too small: entry t of log_probs scores token t + 1 of the text, "
    "so return t + 1."
)
LEAST_FIRST = "the order is reversed: the most surprising token (largest -log p) comes first."
NEGATIVE_SURPRISE = (
    "these are log p; the surprise is -log p, which is positive (0 for a sure token)."
)
DIVIDED_BY_ALL = (
    "the sum is right but it is divided by every position, padded ones too: divide by "
    "counted.sum(), the number of pairs counted."
)
EXTRA_AXIS = (
    "one axis too many, of size 1: the gather keeps the index axis; drop it (F.squeeze(x, -1)), or "
    "use F.gather_nd(log_probs, F.unsqueeze(ids[:, 1:], -1), batch_dims=2), which gives [B, S - 1]."
)
POSITIONS_DECODED = (
    "these tokens are the decoded positions: most_surprising gives each token's index in the "
    "text; its id is ids[0, index], its text tokenizer.decode([that id])."
)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def gathered(log_probs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """log_probs [B, T, V] at ids [B, T] -> [B, T]."""
    return np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]


def expected_log_probs(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return gathered(log_softmax(logits[:, :-1]), ids[:, 1:]).astype(np.float32)


def log_probs_slips(logits: np.ndarray, ids: np.ndarray) -> list[Slip]:
    all_positions = log_softmax(logits)
    with np.errstate(divide="ignore"):
        through_softmax = np.log(softmax32(logits[:, :-1]))
    right = expected_log_probs(logits, ids)
    return [
        Slip(NO_SHIFT, gathered(all_positions, ids)),
        Slip(SHIFTED_BACK, gathered(log_softmax(logits[:, 1:]), ids[:, :-1])),
        Slip(UNDERFLOW, gathered(through_softmax, ids[:, 1:])),
        Slip(IN_BITS, right / math.log(2)),
    ]


def softmax32(logits: np.ndarray) -> np.ndarray:
    """Softmax in float32, as F.softmax computes it: tiny probabilities become 0."""
    x = logits.astype(np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_probs_problem(
    what: str, got, logits: np.ndarray, ids: np.ndarray, extra=(), precision: str = "float32"
) -> str | None:
    """None when `got` (the learner's token_log_probs) matches; else what is wrong, in words."""
    if getattr(got, "dtype", None) is not None and "bfloat16" in str(got.dtype).lower():
        return f"{what}: the result is bfloat16; it should be float32: {UNCAST}"
    got_np = as_numpy(got, what)
    right = expected_log_probs(logits, ids)
    shapes = f"{what}: expected shape {list(right.shape)}, got {list(got_np.shape)}."
    if got_np.shape == (*right.shape, 1):
        return f"{shapes} {EXTRA_AXIS}"
    if got_np.shape == ids.shape:  # one value per position: the last one, or all, shifted wrong
        self_scored = gathered(log_softmax(logits), ids)
        close = {"atol": TOLERANCE, "rtol": TOLERANCE, "precision": precision}
        own_token = mismatch("", got_np, self_scored, **close) is None
        return f"{shapes} {NO_SHIFT if own_token else LAST_INCLUDED}"
    return mismatch(
        what,
        got_np,
        right,
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=lambda: [*log_probs_slips(logits, ids), *extra],
    )


def number(what: str, got) -> float:
    """A Python number (or one-element array) the learner returned, as a float."""
    if isinstance(got, (int, float, np.number)) and not isinstance(got, bool):
        return float(got)
    if got is None:
        raise LearnerError(f"{what} returned None: it is still the skeleton's placeholder.")
    array = as_numpy(got, what)
    if array.size != 1:
        raise LearnerError(
            f"{what} returned {array.size} numbers (shape {list(array.shape)}); it should return "
            "one: the mean over every counted position."
        )
    return float(array.reshape(()))


def loss_problem(
    what: str, got: float, log_probs: np.ndarray, mask, expected: float, precision: str = "float32"
) -> str | None:
    log_probs = log_probs.astype(np.float64)
    all_positions = -log_probs.mean()
    counted = np.ones_like(log_probs) if mask is None else mask[:, :-1] * mask[:, 1:]
    averaged = -np.log((np.exp(log_probs) * counted).sum() / counted.sum())
    divided_by_all = -(log_probs * counted).sum() / log_probs.size
    slips = [
        *([Slip(DIVIDED_BY_ALL, divided_by_all)] if mask is not None else []),
        Slip(IN_BITS, expected / math.log(2)),
        Slip(PROBABILITIES_AVERAGED, averaged),
        *([Slip(PADDING_COUNTED, all_positions)] if mask is not None else []),
    ]
    return mismatch(
        what,
        np.array(got, dtype=np.float64),
        np.array(expected, dtype=np.float64),
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=slips,
        dtype=None,
    )


def surprising_problem(what: str, got, log_probs: np.ndarray, k: int) -> str | None:
    if got is None:
        return f"{what} returned None: it is still the skeleton's placeholder."
    if not isinstance(got, (list, tuple)):
        return (
            f"{what} returned a {type(got).__name__}; it should return a list of (index, surprise)."
        )
    surprise = -log_probs[0].astype(np.float64)
    order = np.argsort(-surprise, kind="stable")[:k]
    expected = [(int(t) + 1, float(surprise[t])) for t in order]
    try:
        indices = [int(index) for index, _ in got]
        values = [float(value) for _, value in got]
    except (TypeError, ValueError):
        return f"{what} returned {got!r:.80}; it should return (index, surprise) pairs."
    if indices == [index for index, _ in expected] and np.allclose(
        values, [value for _, value in expected], atol=TOLERANCE, rtol=TOLERANCE
    ):
        return None

    def pairs(found):
        return [(index, round(value, 3)) for index, value in found]

    message = f"{what}: expected {pairs(expected)}, got {pairs(zip(indices, values, strict=True))}."
    negated = [-value for _, value in expected]
    if indices == [index for index, _ in expected] and np.allclose(values, negated, atol=1e-3):
        return f"{message}\n  Hint: {NEGATIVE_SURPRISE}"
    if indices == [index - 1 for index, _ in expected]:
        return f"{message}\n  Hint: {OFF_BY_ONE}"
    least_first = [int(t) + 1 for t in np.argsort(surprise, kind="stable")[:k]]
    if indices == least_first:
        return f"{message}\n  Hint: {LEAST_FIRST}"
    return message


def perplexity_problem(got: float, loss: float, precision: str = "float32") -> str | None:
    return mismatch(
        f"perplexity({loss:.4g})",
        np.array(got, dtype=np.float64),
        np.array(math.exp(loss), dtype=np.float64),
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=[Slip(BITS_PERPLEXITY, np.array(2.0**loss))],
        dtype=None,
    )


def text_surprises_problem(
    what: str, got, ids: np.ndarray, logits: np.ndarray, tokenizer
) -> str | None:
    """None when `got` is the text's K most surprising (token text, surprise), most first."""
    log_probs = expected_log_probs(logits, ids)[0]
    order = np.argsort(log_probs, kind="stable")[:K]  # the least likely first
    expected = [(tokenizer.decode([int(ids[0, t + 1])]), float(-log_probs[t])) for t in order]
    try:
        tokens = [token for token, _ in got]
        values = [float(value) for _, value in got]
    except (TypeError, ValueError):
        return f"{what} should be (token text, surprise) pairs; they are {got!r:.80}."
    if tokens == [token for token, _ in expected] and np.allclose(
        values, [value for _, value in expected], atol=1e-3, rtol=1e-3
    ):
        return None
    message = (
        f"{what}: expected {expected!r:.160}, got {list(zip(tokens, values, strict=True))!r:.160}."
    )
    positions = [tokenizer.decode([int(t) + 1]) for t in order]
    if tokens == positions:
        return f"{message}\n  Hint: {POSITIONS_DECODED}"
    return message
