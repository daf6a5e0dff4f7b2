"""Step 5: LayerNorm against torch.nn.LayerNorm (what HuggingFace's GPT-2 uses)."""

import pytest

from checks import options
from checks.compare import Slip
from checks.harness import call, learner_attr, low_precision, pinned_defaults
from checks.modules import build_learner_module, load_weights
from checks.reference_cache import cached, cached_slips
from checks.reference import hf_layer_norm, hidden_states
from checks.tensors import max_tensor, torch_no_grad

# The check's tolerance, absolute and relative.
TOLERANCE = 1e-4

# Rows of small variance make epsilon matter; a non-default eps catches a hard-coded one.
CASES = {
    "width 32, eps 1e-5, batch 2, 7 tokens": (32, 1e-5, 2, 7, 1.0),
    "width 32, eps 1e-5, rows of small variance": (32, 1e-5, 2, 5, 3e-3),
    "width 48, eps 1e-3, rows of small variance": (48, 1e-3, 3, 4, 3e-2),
    "width 768 (GPT-2), eps 1e-5, batch 1, 6 tokens": (768, 1e-5, 1, 6, 1.0),
}


def reference(dim, eps, batch, seq_len, scale):
    rounded = low_precision()  # torch normalizes the inputs the learner's LayerNorm gets

    def build():
        norm = hf_layer_norm(dim, eps, seed=6)
        x = scale * hidden_states(batch, seq_len, dim, seed=7) + 0.5
        if rounded:  # in bfloat16 a small variance is mostly rounding: compare on the same inputs
            x = x.bfloat16().float()
        return {
            "state": {"weight": norm.weight.numpy().copy(), "bias": norm.bias.numpy().copy()},
            "x": x.numpy(),
            "expected": norm(x).numpy(),
        }

    return cached("layer_norm", (dim, eps, batch, seq_len, scale, rounded), build)


OTHER_EPSILON = "the values match a different epsilon: use the eps passed to __init__."
EPSILON_OUTSIDE_ROOT = "epsilon is added outside the square root: divide by sqrt(var + eps)."
UNBIASED_VARIANCE = "the variance is the unbiased one (divides by n - 1): layer norm divides by n."
NO_BIAS = "the bias (shift) is missing: add self.bias after scaling."
NO_GAIN = "the weight (gain) is missing: multiply by self.weight."
WRONG_AXIS = (
    "it normalizes over the wrong axis: normalize each position over its features (the last axis)."
)
BFLOAT16_STATISTICS = (
    "the mean and variance are computed in bfloat16, which rounds rows of small variance "
    "away: compute in float32 (x.cast(DType.float32)), as step 5's page shows."
)


@cached_slips
def slips(ref, eps):
    with torch_no_grad() as torch:
        x = torch.from_numpy(ref["x"])
        w, b = (torch.from_numpy(ref["state"][k]) for k in ("weight", "bias"))
        mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)

        def norm(v, e=eps):
            return (x - mean) / torch.sqrt(v + e)

        return [
            *bfloat16_statistics(torch, x, w, b, eps),
            Slip(OTHER_EPSILON, norm(var, 1e-12) * w + b),
            Slip(OTHER_EPSILON, norm(var, 1e-5 if eps != 1e-5 else 1e-3) * w + b),
            Slip(EPSILON_OUTSIDE_ROOT, (x - mean) / (torch.sqrt(var) + eps) * w + b),
            Slip(UNBIASED_VARIANCE, norm(x.var(-1, unbiased=True, keepdim=True)) * w + b),
            Slip(NO_BIAS, norm(var) * w),
            Slip(NO_GAIN, norm(var) + b),
            Slip(
                WRONG_AXIS,
                (x - x.mean(-2, keepdim=True))
                / torch.sqrt(x.var(-2, unbiased=False, keepdim=True) + eps)
                * w
                + b,
            ),
        ]


def bfloat16_statistics(torch, x, w, b, eps) -> list[Slip]:
    """In a bfloat16 run: the formula computed in bfloat16 throughout, which rounds the variance of
    rows of small variance away (the check's inputs are bfloat16 values already)."""
    if not low_precision():
        return []
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    centered = xb - xb.mean(-1, keepdim=True)
    var = (centered * centered).mean(-1, keepdim=True)
    return [
        Slip(
            BFLOAT16_STATISTICS,
            (centered * torch.rsqrt(var + eps) * wb + bb).float(),
        )
    ]


def build_with_eps(cls, dim, eps):
    return cls(dim, eps=eps)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_eager_output_matches_torch(record, case):
    """LayerNorm(dim, eps=eps) matches torch.nn.LayerNorm (eager)"""
    dim, eps, batch, seq_len, scale = case
    ref = reference(*case)
    norm = build_learner_module(
        f"LayerNorm({dim}, eps={eps})", build_with_eps, learner_attr(5, "LayerNorm"), dim, eps
    )
    load_weights("LayerNorm", norm, ref["state"])
    got = call("LayerNorm.forward", norm, max_tensor(ref["x"]))
    record.expect_close(
        "LayerNorm output",
        got,
        ref["expected"],
        atol=TOLERANCE,
        rtol=TOLERANCE,
        slips=lambda: slips(ref, eps),
    )


def test_parameters_start_as_identity(record):
    """weight starts as ones and bias as zeros, of shape [dim]"""
    import numpy as np

    norm = call("LayerNorm(16)", learner_attr(5, "LayerNorm"), 16)
    params = dict(call("LayerNorm.parameters", lambda: list(norm.parameters)))
    for name, value in (("weight", 1.0), ("bias", 0.0)):
        if record.expect(
            name in params, f"LayerNorm has no parameter `{name}`: create self.{name}."
        ):
            record.expect_close(
                f"LayerNorm(16).{name} at creation",
                params[name],
                np.full(16, value, np.float32),
                atol=0,
                rtol=0,
            )


def expect_compiled_matches(record, refs, eps, dtype=""):
    """The learner's LayerNorm(32) compiled once with symbolic batch and length, on each ref."""
    norm = build_learner_module(
        "LayerNorm(32)", build_with_eps, learner_attr(5, "LayerNorm"), 32, eps
    )
    load_weights("LayerNorm", norm, refs[0]["state"])
    record.expect_compiled_matches(
        "LayerNorm",
        norm,
        [(ref["x"], ref["expected"], ref) for ref in refs],
        lambda label, got, x, expected, ref: record.expect_close(
            f"LayerNorm output ({dtype}{label})",
            got,
            expected,
            atol=TOLERANCE,
            rtol=TOLERANCE,
            slips=lambda: slips(ref, eps),
        ),
    )


@pytest.mark.compiled
def test_compiled_output_matches_torch(record):
    """LayerNorm matches torch inside a graph compiled with symbolic batch and length (compiled)"""
    refs = [reference(32, 1e-5, 2, 7, 1.0), reference(32, 1e-5, 2, 5, 3e-3)]
    expect_compiled_matches(record, refs, 1e-5)


@pytest.mark.compiled
def test_compiles_in_bfloat16(record):
    """LayerNorm compiles in bfloat16, MAX's default dtype on a GPU, and matches torch (compiled, bfloat16)"""
    with options.changed(dtype="bfloat16"), pinned_defaults(), record.comparing_in("bfloat16"):
        expect_compiled_matches(record, [reference(32, 1e-5, 2, 7, 1.0)], 1e-5, "bfloat16, ")
