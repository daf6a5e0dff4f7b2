"""Step 4: GPT2MultiHeadAttention against HuggingFace's GPT2Attention (with GPT-2's causal mask)."""

import math

import pytest

from checks.compare import Slip
from checks.harness import call
from checks.reference import GPT2_SIZES, SMALL, hf_attention, hidden_state_outputs, run_hf_attention
from checks.reference_cache import cached_slips
from checks.modules import learner_module
from checks.tensors import max_tensor


def attention_variant(
    hf,
    x,
    *,
    order=(0, 1, 2),
    scale="sqrt",
    mask="causal",
    split="right",
    merge="right",
    softmax_axis=-1,
):
    """GPT-2 attention written out in torch, with one mistake switched on at a time."""
    import torch

    batch, seq_len, width = x.shape
    heads = hf.num_heads
    head_dim = width // heads
    parts = hf.c_attn(x).split(width, dim=2)
    q, k, v = (parts[i] for i in order)

    def split_heads(t):
        if split == "interleaved":  # [B, S, D, H]: heads taken from the wrong axis
            return t.view(batch, seq_len, head_dim, heads).permute(0, 3, 1, 2)
        if split == "no_transpose":  # reshaped straight to [B, H, S, D]
            return t.reshape(batch, heads, seq_len, head_dim)
        return t.view(batch, seq_len, heads, head_dim).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    scores = q @ k.transpose(-1, -2)
    divisor = {"sqrt": math.sqrt(head_dim), "dim": head_dim, "embd": math.sqrt(width), "none": 1}
    scores = scores / divisor[scale]
    future = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    if mask == "causal":
        scores = scores.masked_fill(future, float("-inf"))
    elif mask == "shifted":  # each query also sees the next key
        scores = scores.masked_fill(torch.ones_like(future).triu(2), float("-inf"))
    weights = scores.softmax(dim=softmax_axis)
    if mask == "after_softmax":
        weights = weights.masked_fill(future, 0.0)
    out = weights @ v  # [B, H, S, D]
    if merge == "no_transpose":
        out = out.reshape(batch, seq_len, width)
    else:
        out = out.transpose(1, 2).reshape(batch, seq_len, width)
    return hf.c_proj(out)


NO_SCALE = (
    "the output matches attention without the 1/sqrt(head_dim) scale: divide the scores by "
    "sqrt(head_dim)."
)
DIVIDED_BY_HEAD_DIM = "the scores are divided by head_dim: divide by sqrt(head_dim)."
SCALED_BY_N_EMBD = (
    "the scores are scaled by 1/sqrt(n_embd), the width of the whole model: scale by "
    "1/sqrt(head_dim), the width of one head (n_embd // n_head)."
)
NO_MASK = (
    "the output matches attention with no causal mask: add causal_mask(...) to the scores "
    "before the softmax."
)
MASK_SHIFTED = (
    "the mask is shifted by one: each query may see itself and earlier keys, not the next one."
)
MASK_AFTER_SOFTMAX = (
    "the mask is applied after the softmax: add it to the scores before the softmax, so each "
    "row of weights still sums to 1."
)
SOFTMAX_OVER_QUERIES = (
    "the softmax runs over the wrong axis: normalize over the keys (the last axis)."
)
QKV_ORDER = "q, k and v are taken in the wrong order: c_attn's output is [query | key | value]."
HEADS_FROM_WRONG_AXIS = (
    "the heads are split along the wrong axis: reshape [B, S, E] to [B, S, n_head, head_dim], "
    "then transpose to [B, n_head, S, head_dim]."
)
HEADS_RESHAPED_STRAIGHT = (
    "the heads are reshaped straight to [B, n_head, S, head_dim]: reshape to [B, S, n_head, "
    "head_dim] first, then transpose axes 1 and 2."
)
HEADS_MERGED_WITHOUT_TRANSPOSE = (
    "the heads are merged without transposing back: transpose [B, n_head, S, head_dim] to "
    "[B, S, n_head, head_dim] before reshaping to [B, S, E]."
)
HEADS_RESHAPED_STRAIGHT_BOTH_WAYS = (
    "the heads are reshaped straight to [B, n_head, S, head_dim] and straight back, without "
    "the transposes: split with reshape to [B, S, n_head, head_dim] then transpose(1, 2), and "
    "merge with transpose(1, 2) then reshape to [B, S, E]."
)

SLIPS = [
    (NO_SCALE, dict(scale="none")),
    (DIVIDED_BY_HEAD_DIM, dict(scale="dim")),
    (SCALED_BY_N_EMBD, dict(scale="embd")),
    (NO_MASK, dict(mask="none")),
    (MASK_SHIFTED, dict(mask="shifted")),
    (MASK_AFTER_SOFTMAX, dict(mask="after_softmax")),
    (SOFTMAX_OVER_QUERIES, dict(softmax_axis=-2)),
    (QKV_ORDER, dict(order=(1, 0, 2))),
    (QKV_ORDER, dict(order=(0, 2, 1))),
    (QKV_ORDER, dict(order=(2, 1, 0))),
    (HEADS_FROM_WRONG_AXIS, dict(split="interleaved")),
    (HEADS_RESHAPED_STRAIGHT, dict(split="no_transpose")),
    (HEADS_MERGED_WITHOUT_TRANSPOSE, dict(merge="no_transpose")),
    (HEADS_RESHAPED_STRAIGHT_BOTH_WAYS, dict(split="no_transpose", merge="no_transpose")),
]

EAGER_CASES = {
    "eager, small config, batch 2, 7 tokens": (SMALL, 2, 7),
    "eager, small config, batch 3, 13 tokens": (SMALL, 3, 13),
    "eager, GPT-2 sizes 768 wide with 12 heads, batch 1, 6 tokens": (GPT2_SIZES, 1, 6),
}


def reference(cfg, shapes):
    """Weights, inputs and HuggingFace's outputs for each (batch, seq_len) in `shapes`."""
    return hidden_state_outputs("attention", cfg, shapes, hf_attention, run_hf_attention, seed=4)


def learner_attention(cfg, state):
    return learner_module(4, "GPT2MultiHeadAttention", state, cfg)


@cached_slips
def slips(cfg, x):
    import torch

    hf, x = hf_attention(cfg, seed=4), torch.from_numpy(x)
    return [Slip(hint, attention_variant(hf, x, **kw)) for hint, kw in SLIPS]


def tolerance(cfg) -> float:
    """Float32 rounding in the scores grows with the width they sum over."""
    return 2e-5 * math.sqrt(cfg.n_embd / SMALL.n_embd)


def expect_matches(record, what, got, cfg, x, expected):
    return record.expect_close(
        what, got, expected, atol=tolerance(cfg), rtol=tolerance(cfg), slips=lambda: slips(cfg, x)
    )


@pytest.mark.parametrize("case", EAGER_CASES.values(), ids=EAGER_CASES.keys())
def test_eager_output_matches_huggingface(record, case):
    """Attention output matches HuggingFace's GPT2Attention"""
    cfg, batch, seq_len = case
    ref = reference(cfg, ((batch, seq_len),))
    attention = learner_attention(cfg, ref["state"])
    x, expected = ref[batch, seq_len]
    got = call("GPT2MultiHeadAttention.forward", attention, max_tensor(x))
    expect_matches(record, "Attention output (eager)", got, cfg, x, expected)


@pytest.mark.compiled
def test_compiled_output_matches_huggingface(record):
    """Attention output matches HuggingFace's inside a graph compiled with symbolic batch and length (compiled)"""
    shapes = ((2, 7), (3, 13))
    ref = reference(SMALL, shapes)
    attention = learner_attention(SMALL, ref["state"])
    record.expect_compiled_matches(
        "GPT2MultiHeadAttention",
        attention,
        [ref[shape] for shape in shapes],
        lambda label, got, x, expected: expect_matches(
            record, f"Attention output ({label})", got, SMALL, x, expected
        ),
    )
