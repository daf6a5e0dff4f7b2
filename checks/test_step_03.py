"""Step 3: causal_mask gives 0 where a query may look and -inf where it may not."""

import numpy as np
import pytest

from checks import harness
from checks.compare import Slip, expect_close, expect_eager_only_failure
from checks.harness import call, compile_module, eager_only, learner_attr
from checks.reference import max_tensor


def expected_mask(seq_len: int, num_tokens: int) -> np.ndarray:
    """Query i sees keys 0 ... i + num_tokens."""
    keys = np.arange(seq_len + num_tokens)[None, :]
    queries = np.arange(seq_len)[:, None]
    return np.where(keys <= queries + num_tokens, 0.0, -np.inf).astype(np.float32)


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
        Slip("the mask ignores num_tokens: the diagonal moves right by num_tokens (the cached keys "
             "come first and are all visible).",
             np.pad(expected_mask(seq_len, 0), ((0, 0), (0, num_tokens)), constant_values=-np.inf)),
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
    """A module whose compiled graph calls the learner's mask with a symbolic sequence length."""

    def __new__(cls, causal_mask):
        from max.experimental.nn import Module

        class _Probe(Module):
            def forward(self, positions):
                return causal_mask(positions.shape[0], 0, dtype=positions.dtype,
                                   device=positions.device)

        return _Probe()


def test_mask_in_compiled_graph():
    """causal_mask is right inside a graph compiled with a symbolic ("seqlen") length"""
    if eager_only():
        pytest.skip("compiled checks skipped (--eager-only)")
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    probe = MaskInGraph(learner_attr(3, "causal_mask"))
    graph = compile_module(
        "causal_mask", probe, TensorType(harness.dtype(), ("seqlen",), device=DeviceRef.from_device(harness.device()))
    )
    for seq_len in (6, 11):
        what = f"causal_mask(seqlen, 0) compiled, with seqlen = {seq_len}"
        got = call(what, graph, max_tensor(np.zeros(seq_len, np.float32)))
        if not expect_close(what, got, expected_mask(seq_len, 0), atol=0, rtol=0,
                            slips=slips(seq_len, 0)):
            eager = call(f"causal_mask({seq_len}, 0)", probe, max_tensor(np.zeros(seq_len, np.float32)))
            expect_eager_only_failure(eager, expected_mask(seq_len, 0))
            break
