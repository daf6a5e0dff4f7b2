"""Step 10's top-k check names each way a top_k_filter goes wrong, judged in-process on numpy
logits against HuggingFace's TopKLogitsWarper (no MAX: the slips of tests/test_slips.py run the
whole check; these cover the rest of the messages in a fraction of a second each). Each mistake
must get exactly the words the check keeps for it (its constants, not copies)."""

import numpy as np
import pytest

from checks import test_step_10 as step_10

pytestmark = pytest.mark.fast

LOGITS = np.random.default_rng(0).normal(0, 2, size=100)
TIES = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.5, -1.0, 2.0])


def problem(got, logits, k):
    got = np.asarray(got, dtype=np.float64)
    return step_10.top_k_problem(got, logits, k, step_10.hf_top_k(logits, k))


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
    assert message == step_10.TOP_K_OFF_BY_ONE.format(finite=kept, k=10, more=words)


def test_dropped_logits_set_to_zero():
    zeroed = np.where(np.isfinite(kept_largest(LOGITS, 10)), LOGITS, 0.0)
    assert problem(zeroed, LOGITS, 10) == step_10.TOP_K_ZEROS


def test_probabilities_returned():
    kept = kept_largest(LOGITS, 10)
    probs = np.exp(kept - kept.max())
    assert problem(probs / probs.sum(), LOGITS, 10) == step_10.TOP_K_PROBABILITIES


def test_ties_cut_at_k():
    message = problem(kept_largest(TIES, 2), TIES, 2)
    assert message == step_10.TOP_K_TIES_CUT.format(finite=2, n=3, tied=3)


def test_kept_logits_changed():
    kept = kept_largest(LOGITS, 10)
    assert problem(kept / 2, LOGITS, 10) == step_10.TOP_K_CHANGED
