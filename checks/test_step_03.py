"""Step 3: causal_mask gives 0 where a query may look and -inf where it may not."""

import numpy as np
import pytest

from checks import harness
from checks.compare import Slip, expect_close, expect_eager_only_failure
from checks.harness import LearnerError, call, compile_module, eager_only, learner_attr
from checks.reference import max_tensor


def expected_mask(seq_len: int, num_tokens: int) -> np.ndarray:
    """Query i sees keys 0 ... i + num_tokens."""
    keys = np.arange(seq_len + num_tokens)[None, :]
    queries = np.arange(seq_len)[:, None]
    return np.where(keys <= queries + num_tokens, 0.0, -np.inf).astype(np.float32)


IGNORES_NUM_TOKENS = ("the mask ignores num_tokens: the num_tokens cached keys come first and every "
                      "query sees them all, so the mask is [S, num_tokens + S].")


SYMBOLIC_NUM_TOKENS = (
    "inside a compiled graph num_tokens is a symbolic size, and F.band_part needs a Python int: "
    "keep num_upper=0 on the [S, S] triangle and give the num_tokens cached keys a block of zeros "
    "of their own, joined with F.concat."
)


def slips(seq_len: int, num_tokens: int):
    right = expected_mask(seq_len, num_tokens)
    visible = right == 0
    return [
        Slip(
            "your mask uses 1 and 0 (or True/False): attention adds it to the scores, so use 0 "
            "where a key is visible and -inf where it is hidden.",
            np.where(visible, 0.0, 1.0),
        ),
        Slip("visible and hidden are swapped: 0 on and below the diagonal, -inf above.",
             np.where(visible, -np.inf, 0.0)),
        Slip("the diagonal is shifted by one: query i must see key i + num_tokens itself.",
             expected_mask(seq_len, num_tokens - 1) if num_tokens else np.triu(
                 np.full((seq_len, seq_len), -np.inf, np.float32), 0)),
        Slip("the diagonal is shifted by one: query i sees one key too many.",
             expected_mask(seq_len, num_tokens + 1)[:, : seq_len + num_tokens]),
        Slip(IGNORES_NUM_TOKENS,
             np.pad(expected_mask(seq_len, 0), ((0, 0), (0, num_tokens)), constant_values=-np.inf)),
        Slip(IGNORES_NUM_TOKENS, expected_mask(seq_len, 0)),
    ]


CASES = {"1 query, no cache": (1, 0), "6 queries, no cache": (6, 0),
         "5 queries after 3 cached keys": (5, 3), "2 queries after 9 cached keys": (2, 9)}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_mask_values(case):
    """causal_mask(sequence_length, num_tokens) hides exactly the future keys (eager)"""
    seq_len, num_tokens = case
    causal_mask = learner_attr(3, "causal_mask")
    what = f"causal_mask({seq_len}, {num_tokens})"
    got = call(what, causal_mask, seq_len, num_tokens, dtype=harness.dtype(),
               device=harness.device())
    expect_close(what, got, expected_mask(seq_len, num_tokens), atol=0, rtol=0,
                 slips=slips(seq_len, num_tokens))


class MaskInGraph:
    """A module whose compiled graph calls the learner's mask with symbolic sizes: the length of
    its first input is sequence_length, the length of its second is num_tokens."""

    def __new__(cls, causal_mask):
        from max.experimental.nn import Module

        class _Probe(Module):
            def forward(self, queries, cached_keys):
                return causal_mask(queries.shape[0], cached_keys.shape[0], dtype=queries.dtype,
                                   device=queries.device)

        return _Probe()


def test_mask_in_compiled_graph():
    """causal_mask is right inside a graph compiled with symbolic sequence_length and num_tokens"""
    if eager_only():
        pytest.skip("compiled checks skipped (--eager-only)")
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    probe = MaskInGraph(learner_attr(3, "causal_mask"))
    device = DeviceRef.from_device(harness.device())
    try:
        graph = compile_module("causal_mask", probe,
                               TensorType(harness.dtype(), ("seqlen",), device=device),
                               TensorType(harness.dtype(), ("cached",), device=device))
    except LearnerError as error:
        if "Dim" not in str(error):
            raise
        raise LearnerError(f"{error}\n  Hint: {SYMBOLIC_NUM_TOKENS}") from None
    for seq_len, num_tokens in ((6, 0), (11, 0), (5, 3), (1, 7)):
        what = f"causal_mask(seqlen, cached) compiled, with seqlen = {seq_len}, cached = {num_tokens}"
        inputs = [max_tensor(np.zeros(n, np.float32)) for n in (seq_len, num_tokens)]
        expected = expected_mask(seq_len, num_tokens)
        got = call(what, graph, *inputs)
        if not expect_close(what, got, expected, atol=0, rtol=0, slips=slips(seq_len, num_tokens)):
            eager = call(f"causal_mask({seq_len}, {num_tokens})", probe, *inputs)
            expect_eager_only_failure(eager, expected)
            break
