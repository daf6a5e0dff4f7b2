"""The loss chapter's known mistakes, each made in numpy, get their hint from the check's own
judging functions (the words are the check's constants, not copies)."""

import math

import numpy as np
import pytest

from checks import loss_judging as check
from checks import test_ext_loss
from checks.tensors import bfloat16

pytestmark = pytest.mark.fast

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(2, 6, 11)).astype(np.float32)
IDS = RNG.integers(0, 11, size=(2, 6))
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])


def log_softmax(x):
    return check.log_softmax(x)


def pick(log_probs, ids):
    return check.gathered(log_probs, ids).astype(np.float32)


def log_probs_of(mistake: str, logits=LOGITS, ids=IDS):
    if mistake == "no shift":
        return pick(log_softmax(logits), ids)
    if mistake == "last position included":  # the last position scores the first token again
        return pick(log_softmax(logits), np.roll(ids, -1, axis=1))
    if mistake == "shifted the wrong way":
        return pick(log_softmax(logits[:, 1:]), ids[:, :-1])
    if mistake == "log of softmax":
        with np.errstate(divide="ignore"):
            return pick(np.log(check.softmax32(logits[:, :-1])), ids[:, 1:])
    if mistake == "log base 2":
        return pick(log_softmax(logits[:, :-1]), ids[:, 1:]) / np.float32(math.log(2))
    raise ValueError(mistake)


LOG_PROB_SLIPS = {
    "no shift": check.NO_SHIFT,
    "last position included": check.LAST_INCLUDED,
    "shifted the wrong way": check.SHIFTED_BACK,
    "log base 2": check.IN_BITS,
}


@pytest.mark.parametrize("mistake", LOG_PROB_SLIPS)
def test_log_prob_mistakes_are_named(mistake):
    problem = check.log_probs_problem("token_log_probs", log_probs_of(mistake), LOGITS, IDS)
    assert problem is not None and LOG_PROB_SLIPS[mistake] in problem, problem


def test_log_of_softmax_is_named_on_confident_logits_and_passes_on_calm_ones():
    confident = LOGITS * test_ext_loss.CONFIDENT
    got = log_probs_of("log of softmax", confident)
    assert np.isinf(got).any(), "the confident logits no longer underflow: the test tests nothing"
    problem = check.log_probs_problem("token_log_probs", got, confident, IDS)
    assert problem is not None and check.UNDERFLOW in problem, problem
    assert (
        check.log_probs_problem("token_log_probs", log_probs_of("log of softmax"), LOGITS, IDS)
        is None
    )


def test_the_right_log_probs_pass():
    right = pick(log_softmax(LOGITS[:, :-1]), IDS[:, 1:])
    assert check.log_probs_problem("token_log_probs", right, LOGITS, IDS) is None


class BFloat16Result:
    """What an uncast token_log_probs returns for bfloat16 logits: a bfloat16 MAX tensor."""

    dtype = "DType.bfloat16"


def test_a_max_bfloat16_result_is_named():
    """MAX's own dtype, as an uncast token_log_probs returns it (the real mutant compiled two
    bfloat16 graphs, 32 s of a cold CI, for the same sentence)."""
    from max.dtype import DType

    class MaxResult:
        dtype = DType.bfloat16

    problem = check.log_probs_problem("token_log_probs", MaxResult(), LOGITS, IDS)
    assert problem is not None and check.UNCAST in problem, problem


def test_bfloat16_result_is_named():
    problem = check.log_probs_problem("token_log_probs", BFloat16Result(), LOGITS, IDS)
    assert problem is not None and check.UNCAST in problem, problem


def test_log_softmax_in_bfloat16_then_cast_is_named():
    """The log-softmax of bfloat16 logits computed in bfloat16 and cast afterwards: float32, but
    rounded to bfloat16's 8 bits."""
    logits = bfloat16(LOGITS * 4).float().numpy()
    right = pick(log_softmax(logits[:, :-1]), IDS[:, 1:])
    rounded = bfloat16(right).float().numpy()
    slip = check.Slip(check.UNCAST, rounded)  # what the check adds for bfloat16 logits
    problem = check.log_probs_problem("token_log_probs", rounded, logits, IDS, extra=[slip])
    assert problem is not None and check.UNCAST in problem, problem


def loss_of(mistake: str, log_probs: np.ndarray, mask) -> float:
    counted = np.ones_like(log_probs) if mask is None else mask[:, :-1] * mask[:, 1:]
    if mistake == "padding counted":
        return float(-log_probs.mean())
    if mistake == "probabilities averaged":
        return float(-np.log((np.exp(log_probs) * counted).sum() / counted.sum()))
    if mistake == "log base 2":
        return float(-(log_probs * counted).sum() / counted.sum() / math.log(2))
    if mistake == "divided by every position":
        return float(-(log_probs * counted).sum() / log_probs.size)
    return float(-(log_probs * counted).sum() / counted.sum())


LOSS_SLIPS = {
    "padding counted": check.PADDING_COUNTED,
    "probabilities averaged": check.PROBABILITIES_AVERAGED,
    "log base 2": check.IN_BITS,
    "divided by every position": check.DIVIDED_BY_ALL,
}


@pytest.mark.parametrize("mistake", LOSS_SLIPS)
def test_loss_mistakes_are_named(mistake):
    log_probs = pick(log_softmax(LOGITS[:, :-1]), IDS[:, 1:])
    expected = loss_of("", log_probs, MASK)
    problem = check.loss_problem(
        "mean_loss", loss_of(mistake, log_probs, MASK), log_probs, MASK, expected
    )
    assert problem is not None and LOSS_SLIPS[mistake] in problem, problem
    assert check.loss_problem("mean_loss", expected, log_probs, MASK, expected) is None


def test_surprise_mistakes_are_named():
    log_probs = pick(log_softmax(LOGITS[:, :-1]), IDS[:, 1:])
    surprise = -log_probs[0].astype(np.float64)
    most = np.argsort(-surprise, kind="stable")[:3]
    right = [(int(t) + 1, float(surprise[t])) for t in most]
    assert check.surprising_problem("most_surprising", right, log_probs, 3) is None
    off_by_one = [(index - 1, value) for index, value in right]
    assert check.OFF_BY_ONE in check.surprising_problem("most_surprising", off_by_one, log_probs, 3)
    least = [(int(t) + 1, float(surprise[t])) for t in np.argsort(surprise, kind="stable")[:3]]
    assert check.LEAST_FIRST in check.surprising_problem("most_surprising", least, log_probs, 3)


def test_perplexity_in_bits_is_named():
    loss = 2.5
    assert check.perplexity_problem(math.exp(loss), loss) is None
    assert check.BITS_PERPLEXITY in check.perplexity_problem(2.0**loss, loss)


def test_an_index_axis_left_in_is_named():
    right = pick(log_softmax(LOGITS[:, :-1]), IDS[:, 1:])
    problem = check.log_probs_problem("token_log_probs", right[..., None], LOGITS, IDS)
    assert problem is not None and check.EXTRA_AXIS in problem, problem


def test_log_p_for_surprise_is_named():
    log_probs = pick(log_softmax(LOGITS[:, :-1]), IDS[:, 1:])
    surprise = -log_probs[0].astype(np.float64)
    most = np.argsort(-surprise, kind="stable")[:3]
    negative = [(int(t) + 1, -float(surprise[t])) for t in most]
    problem = check.surprising_problem("most_surprising", negative, log_probs, 3)
    assert check.NEGATIVE_SURPRISE in problem, problem


class Tokenizer:
    def decode(self, ids):
        return f"<{ids[0]}>"


def test_decoded_positions_for_tokens_are_named():
    """score_text's most surprising tokens decoded from their positions, not their ids."""
    logits, ids = LOGITS[:1], (IDS[:1] + 7) % 11  # ids that differ from the positions
    assert (ids[0, 1:] != np.arange(1, ids.shape[1])).any()
    log_probs = pick(log_softmax(logits[:, :-1]), ids[:, 1:])[0]
    order = np.argsort(log_probs, kind="stable")[: check.K]
    right = [(f"<{ids[0, t + 1]}>", float(-log_probs[t])) for t in order]
    assert check.text_surprises_problem("score_text", right, ids, logits, Tokenizer()) is None
    positions = [(f"<{t + 1}>", value) for t, (_, value) in zip(order, right, strict=True)]
    assert positions != right
    problem = check.text_surprises_problem("score_text", positions, ids, logits, Tokenizer())
    assert problem is not None and check.POSITIONS_DECODED in problem, problem
