"""Step 6: GPT2Block against HuggingFace's GPT2Block (pre-norm, two residual additions)."""

import math

import pytest

from checks.compare import Slip
from checks.harness import call
from checks.reference import (
    GPT2_SIZES,
    SMALL,
    SMALL_WITH_N_INNER,
    hf_block,
    hidden_state_outputs,
    run_hf_block,
)
from checks.reference_cache import cached_slips
from checks.modules import learner_module
from checks.tensors import max_tensor, torch_no_grad

EAGER_CASES = {
    "eager, small config, batch 2, 7 tokens": (SMALL, 2, 7),
    "eager, small config, batch 2, the full 24 positions": (SMALL, 2, SMALL.n_positions),
    "eager, GPT-2 sizes, batch 1, 5 tokens": (GPT2_SIZES, 1, 5),
    "eager, small config with n_inner = 40, batch 2, 7 tokens": (SMALL_WITH_N_INNER, 2, 7),
}


def reference(cfg, shapes):
    return hidden_state_outputs("block", cfg, shapes, hf_block, run_hf_block, seed=8)


@cached_slips
def slips(cfg, x):
    from checks.reference import causal_mask_4d

    with torch_no_grad() as torch:
        block, x = hf_block(cfg, seed=8), torch.from_numpy(x)
        mask = causal_mask_4d(x.shape[1])

        def attn(h):
            return block.attn(h, attention_mask=mask)[0]

        after_attn = x + attn(block.ln_1(x))
        post_norm = block.ln_1(x + attn(x))
        attn_normed = residual_after_norm(block.ln_1, attn, x)
        return [
            Slip(NORMALIZED_RESIDUAL, residual_after_norm(block.ln_2, block.mlp, attn_normed)),
            Slip(NORMALIZED_RESIDUAL, attn_normed + block.mlp(block.ln_2(attn_normed))),
            Slip(NORMALIZED_RESIDUAL, residual_after_norm(block.ln_2, block.mlp, after_attn)),
            Slip(
                POST_NORM,
                block.ln_2(post_norm + block.mlp(post_norm)),
            ),
            Slip(
                NO_ATTENTION_RESIDUAL,
                attn(block.ln_1(x)) + block.mlp(block.ln_2(attn(block.ln_1(x)))),
            ),
            Slip(NO_MLP_RESIDUAL, block.mlp(block.ln_2(after_attn))),
            Slip(LN_1_BEFORE_THE_MLP, after_attn + block.mlp(block.ln_1(after_attn))),
            Slip(NO_MLP_NORM, after_attn + block.mlp(after_attn)),
            Slip(NO_ATTENTION_NORM, (x + attn(x)) + block.mlp(block.ln_2(x + attn(x)))),
        ]


NORMALIZED_RESIDUAL = (
    "the residual adds the normalized input: keep the block's input x for the residual and "
    "normalize only what goes into the layer, x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)) "
    "(not h = ln_1(x); h = h + attn(h))."
)
POST_NORM = (
    "the block normalizes after the residual (post-norm): GPT-2 is pre-norm, "
    "x + attn(ln_1(x)), then x + mlp(ln_2(x))."
)
NO_ATTENTION_RESIDUAL = (
    "the residual around attention is missing: add the block's input back, x = x + attn(ln_1(x))."
)
NO_MLP_RESIDUAL = "the residual around the MLP is missing: x = x + mlp(ln_2(x))."
LN_1_BEFORE_THE_MLP = "ln_1 is used before the MLP too: the MLP's input goes through ln_2."
NO_MLP_NORM = "the MLP's layer norm is missing: x + mlp(ln_2(x))."
NO_ATTENTION_NORM = "the attention's layer norm is missing: x + attn(ln_1(x))."


def residual_after_norm(norm, layer, x):
    """The slip: h = norm(x); h + layer(h), where GPT-2 computes x + layer(norm(x))."""
    normed = norm(x)
    return normed + layer(normed)


def learner_block(cfg, state):
    return learner_module(6, "GPT2Block", state, cfg)


def tolerance(cfg) -> float:
    """Float32 rounding grows with the width the block's sums run over."""
    return 5e-5 * math.sqrt(cfg.n_embd / SMALL.n_embd)


def expect_matches(record, what, got, cfg, x, expected):
    return record.expect_close(
        what, got, expected, atol=tolerance(cfg), rtol=tolerance(cfg), slips=lambda: slips(cfg, x)
    )


@pytest.mark.parametrize("case", EAGER_CASES.values(), ids=EAGER_CASES.keys())
def test_eager_output_matches_huggingface(record, case):
    """Block output matches HuggingFace's GPT2Block"""
    cfg, batch, seq_len = case
    ref = reference(cfg, ((batch, seq_len),))
    block = learner_block(cfg, ref["state"])
    x, expected = ref[batch, seq_len]
    got = call("GPT2Block.forward", block, max_tensor(x))
    expect_matches(record, "Block output (eager)", got, cfg, x, expected)


@pytest.mark.compiled
def test_compiled_output_matches_huggingface(record):
    """Block output matches HuggingFace's inside a graph compiled with symbolic batch and length (compiled)"""
    shapes = ((2, 7), (3, 13))
    ref = reference(SMALL, shapes)
    block = learner_block(SMALL, ref["state"])
    record.expect_compiled_matches(
        "GPT2Block",
        block,
        [ref[shape] for shape in shapes],
        lambda label, got, x, expected: expect_matches(
            record, f"Block output ({label})", got, SMALL, x, expected
        ),
    )
