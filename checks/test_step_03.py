"""Step 3: causal_mask gives 0 where a query may look and -inf where it may not."""

import numpy as np
import pytest

from checks import harness
from checks.compare import Slip
from checks.tensors import as_numpy
from checks.harness import LearnerError, call, compile_module, learner_attr
from checks.tensors import max_tensor, softmax


def expected_mask(seq_len: int, num_tokens: int, shift: int = 0) -> np.ndarray:
    """Query i sees keys 0 ... i + num_tokens (with a `shift`, the slip of seeing keys up to
    i + num_tokens + shift); the shape is [seq_len, num_tokens + seq_len] either way."""
    keys = np.arange(seq_len + num_tokens)[None, :]
    queries = np.arange(seq_len)[:, None]
    return np.where(keys <= queries + num_tokens + shift, 0.0, -np.inf).astype(np.float32)


IGNORES_NUM_TOKENS = (
    "the mask ignores num_tokens: the num_tokens cached keys come first and every "
    "query sees them all, so the mask is [S, num_tokens + S]."
)


SYMBOLIC_NUM_TOKENS = (
    "inside a compiled graph num_tokens is a symbolic size, and F.band_part needs a Python int: "
    "keep num_upper=0 on the [S, S] triangle and give the num_tokens cached keys a block of zeros "
    "of their own, joined with F.concat."
)


ONES_AND_ZEROS = (
    "your mask uses 1 and 0 (or True/False): attention adds it to the scores, so use 0 where a "
    "key is visible and -inf where it is hidden."
)


TRANSPOSED = (
    "the mask is transposed: each query sees the keys after it and not the ones before. Zero the "
    "diagonal and below, F.band_part(x, num_lower=None, num_upper=0, exclude=True), not the "
    "diagonal and above (num_lower=0, num_upper=None)."
)


SWAPPED = "visible and hidden are swapped: 0 on and below the diagonal, -inf above."
DIAGONAL_HIDDEN = "the diagonal is shifted by one: query i must see key i + num_tokens itself."
ONE_KEY_TOO_MANY = "the diagonal is shifted by one: query i sees one key too many."


def transposed_mask(seq_len: int, num_tokens: int) -> np.ndarray:
    """The mask of band_part with num_lower and num_upper swapped, behind the cached keys' zeros:
    query i sees the cached keys and the new keys from its own on."""
    keys = np.arange(seq_len + num_tokens)[None, :]
    queries = np.arange(seq_len)[:, None]
    visible = (keys < num_tokens) | (keys >= queries + num_tokens)
    return np.where(visible, 0.0, -np.inf).astype(np.float32)


FINITE_HIDDEN = (
    "hidden keys get a large finite number ({value:g}) instead of -inf. Use -inf: exp(-inf) is "
    "exactly 0, so a hidden key gets exactly zero weight whatever the scores (as in "
    "HuggingFace), where a finite number is only small, and can be outweighed by large scores "
    "or turn into a wrong answer when a whole row is hidden."
)


def slips(seq_len: int, num_tokens: int, got: np.ndarray | None = None):
    right = expected_mask(seq_len, num_tokens)
    visible = right == 0
    finite = []
    if got is not None and got.shape == right.shape and np.isfinite(got).all():
        value = float(got.min())  # the learner's stand-in for -inf, wherever it is hidden
        if value <= -1e3:
            finite = [Slip(FINITE_HIDDEN.format(value=value), np.where(visible, 0.0, value))]
    return finite + [
        Slip(ONES_AND_ZEROS, np.where(visible, 0.0, 1.0)),
        Slip(ONES_AND_ZEROS, np.where(visible, 1.0, 0.0)),  # np.tril(ones) or True where visible
        Slip(SWAPPED, np.where(visible, -np.inf, 0.0)),
        Slip(TRANSPOSED, transposed_mask(seq_len, num_tokens)),
        Slip(DIAGONAL_HIDDEN, expected_mask(seq_len, num_tokens, shift=-1)),
        Slip(ONE_KEY_TOO_MANY, expected_mask(seq_len, num_tokens, shift=1)),
        Slip(
            IGNORES_NUM_TOKENS,
            np.pad(expected_mask(seq_len, 0), ((0, 0), (0, num_tokens)), constant_values=-np.inf),
        ),
        Slip(IGNORES_NUM_TOKENS, expected_mask(seq_len, 0)),
    ]


CASES = {
    "1 query, no cache": (1, 0),
    "6 queries, no cache": (6, 0),
    "5 queries after 3 cached keys": (5, 3),
    "2 queries after 9 cached keys": (2, 9),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_mask_values(record, case):
    """causal_mask(sequence_length, num_tokens) hides exactly the future keys (eager)"""
    seq_len, num_tokens = case
    causal_mask = learner_attr(3, "causal_mask")
    what = f"causal_mask({seq_len}, {num_tokens})"
    got = as_numpy(
        call(
            what, causal_mask, seq_len, num_tokens, dtype=harness.dtype(), device=harness.device()
        ),
        what,
    )
    record.expect_close(
        what,
        got,
        expected_mask(seq_len, num_tokens),
        atol=0,
        rtol=0,
        slips=slips(seq_len, num_tokens, got),
    )


class MaskInGraph:
    """A module whose compiled graph uses the learner's mask the way attention does: added to
    [1, 1, S, N + S] scores and followed by a softmax. The length of its first input is
    sequence_length, the length of its second num_tokens, both symbolic."""

    def __new__(cls, causal_mask):
        from max.experimental import functional as F
        from max.experimental.nn import Module

        class _Probe(Module):
            def forward(self, queries, cached_keys):
                keys = F.concat([cached_keys, queries], axis=2)  # [B, H, N + S, D]
                scores = queries @ keys.transpose(-1, -2)  # [B, H, S, N + S]
                mask = causal_mask(
                    queries.shape[2],
                    cached_keys.shape[2],
                    dtype=queries.dtype,
                    device=queries.device,
                )
                return F.softmax(scores + mask, axis=-1)

        return _Probe()


MASK_NOT_APPLIED = "every key is visible: the mask was not applied in the compiled graph."

# Queries and cached keys shaped as in attention: [batch, heads, length, head_dim].
PROBE_SHAPE = (2, 2, 4)


def probe_inputs(seq_len: int, num_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    batch, heads, head_dim = PROBE_SHAPE
    rng = np.random.default_rng(seq_len * 31 + num_tokens)
    values = rng.uniform(-1.0, 1.0, (batch, heads, num_tokens + seq_len, head_dim))
    return (
        values[:, :, num_tokens:].astype(np.float32),
        values[:, :, :num_tokens].astype(np.float32),
    )


@pytest.mark.compiled
def test_mask_in_compiled_graph(record):
    """causal_mask is right inside a compiled graph, added to attention scores before a softmax, with symbolic sequence_length and num_tokens"""
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    probe = MaskInGraph(learner_attr(3, "causal_mask"))
    device = DeviceRef.from_device(harness.device())
    try:
        _, heads, head_dim = PROBE_SHAPE
        graph = compile_module(
            "causal_mask",
            probe,
            TensorType(harness.dtype(), ("batch", heads, "seqlen", head_dim), device=device),
            TensorType(harness.dtype(), ("batch", heads, "cached", head_dim), device=device),
        )
    except LearnerError as error:
        if "Dim" not in str(error):
            raise
        raise LearnerError(f"{error}\n  Hint: {SYMBOLIC_NUM_TOKENS}") from None
    for seq_len, num_tokens in ((6, 0), (11, 0), (5, 3), (1, 7)):
        what = (
            f"softmax(scores + causal_mask(seqlen, cached)) compiled, with seqlen = {seq_len}, "
            f"cached = {num_tokens}"
        )
        queries, cached_keys = probe_inputs(seq_len, num_tokens)
        scores = queries @ np.concatenate([cached_keys, queries], axis=2).swapaxes(-1, -2)
        expected = softmax(scores + expected_mask(seq_len, num_tokens))
        slips_here = [
            Slip(slip.hint, softmax(scores + slip.output))
            for slip in slips(seq_len, num_tokens)
            if slip.output.shape == scores.shape[2:]
        ]
        slips_here.append(Slip(MASK_NOT_APPLIED, softmax(scores)))
        inputs = [max_tensor(queries), max_tensor(cached_keys)]
        got = call(what, graph, *inputs)
        if not record.expect_close(what, got, expected, atol=1e-6, rtol=1e-5, slips=slips_here):
            eager = call("the same, run eagerly", probe, *inputs)
            record.expect_eager_only_failure(eager, expected)
            break
