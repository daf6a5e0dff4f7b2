"""Step 10's top-k check names each way a top_k_filter goes wrong, judged in-process on numpy
logits against HuggingFace's TopKLogitsWarper (no MAX: the slips of tests/test_slips.py run the
whole check; these cover the rest of the messages in a fraction of a second each)."""

import numpy as np
import pytest

pytestmark = pytest.mark.fast

LOGITS = np.random.default_rng(0).normal(0, 2, size=100)
TIES = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.5, -1.0, 2.0])


def problem(got, logits, k):
    from checks.test_step_10 import hf_top_k, top_k_problem

    return top_k_problem(np.asarray(got, dtype=np.float64), logits, k, hf_top_k(logits, k))


def kept_largest(logits, count):
    """The logits with all but the `count` largest set to -inf, counted by position."""
    out = np.full_like(logits, -np.inf)
    largest = np.argsort(-logits)[:count]
    out[largest] = logits[largest]
    return out


def test_a_right_filter_has_no_problem():
    assert problem(kept_largest(LOGITS, 10), LOGITS, 10) is None
    assert problem(TIES, TIES, len(TIES)) is None
    assert problem(np.where(TIES < 3, -np.inf, TIES), TIES, 2) is None  # all three ties kept


@pytest.mark.parametrize("kept, words", [(11, "one more"), (9, "one fewer")])
def test_k_off_by_one(kept, words):
    message = problem(kept_largest(LOGITS, kept), LOGITS, 10)
    assert f"keeps {kept} tokens for k=10, {words} than HuggingFace: k off by one" in message


def test_dropped_logits_set_to_zero():
    zeroed = np.where(np.isfinite(kept_largest(LOGITS, 10)), LOGITS, 0.0)
    assert "set the dropped logits to 0, not -inf" in problem(zeroed, LOGITS, 10)


def test_probabilities_returned():
    kept = kept_largest(LOGITS, 10)
    probs = np.exp(kept - kept.max())
    assert "returned probabilities (they sum to 1)" in problem(probs / probs.sum(), LOGITS, 10)


def test_ties_cut_at_k():
    message = problem(kept_largest(TIES, 2), TIES, 2)
    assert "3 logits tie at the k-th largest value and all of them stay" in message


def test_kept_logits_changed():
    kept = kept_largest(LOGITS, 10)
    assert "changed the logits it keeps" in problem(kept / 2, LOGITS, 10)
