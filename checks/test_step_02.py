"""Step 2: GPT2MLP against HuggingFace's GPT2MLP on the same weights and inputs."""

import math

import pytest

from checks.compare import Slip
from checks.harness import call, learner_attr
from checks.reference import GPT2_SIZES, SMALL, hf_mlp, hidden_states, max_state_dict
from checks.modules import build_learner_module, load_weights
from checks.reference_cache import cached, cached_slips
from checks.tensors import max_tensor

CASES = {
    "small config, batch 2, 7 tokens": (SMALL, 2, 7),
    "GPT-2 sizes 768 -> 3072, batch 1, 5 tokens": (GPT2_SIZES, 1, 5),
}


def reference(cfg, batch, seq_len):
    def build():
        hf = hf_mlp(cfg, seed=2)
        x = 1.5 * hidden_states(
            batch, seq_len, cfg.n_embd, seed=3
        )  # wide enough for GELUs to differ
        return {"state": max_state_dict(hf), "x": x.numpy(), "expected": hf(x).numpy()}

    return cached("mlp", (cfg, batch, seq_len), build)


EXACT_GELU = (
    "the values match the exact (erf) GELU: GPT-2 uses the tanh approximation, "
    'F.gelu(x, approximate="tanh").'
)
NO_ACTIVATION = "the values match the MLP with no activation: apply GELU after c_fc."
RELU = "the values match ReLU: GPT-2 uses GELU (tanh approximation)."
GELU_AFTER_C_PROJ = "the values match GELU applied after c_proj: it goes between c_fc and c_proj."


@cached_slips
def slips(cfg, x):
    import torch

    hf = hf_mlp(cfg, seed=2)
    x = torch.from_numpy(x)
    pre = hf.c_fc(x)

    def project(activated):
        return hf.c_proj(activated)

    return [
        Slip(EXACT_GELU, project(torch.nn.functional.gelu(pre))),
        Slip(NO_ACTIVATION, project(pre)),
        Slip(RELU, project(pre.relu())),
        Slip(GELU_AFTER_C_PROJ, torch.nn.functional.gelu(hf.c_proj(pre), approximate="tanh")),
    ]


def tolerance(cfg) -> float:
    """Float32 rounding grows with the width the MLP's sums run over."""
    return 1e-5 * math.sqrt(cfg.n_embd / SMALL.n_embd)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_output_matches_huggingface(record, case):
    """GPT2MLP(4 * n_embd, config) gives HuggingFace's output"""
    cfg, batch, seq_len = case
    ref = reference(cfg, batch, seq_len)
    inner = cfg.n_inner or 4 * cfg.n_embd
    mlp = build_learner_module("GPT2MLP", learner_attr(2, "GPT2MLP"), inner, cfg)
    load_weights("GPT2MLP", mlp, ref["state"])
    got = call("GPT2MLP.forward", mlp, max_tensor(ref["x"]))
    record.expect_close(
        "GPT2MLP output",
        got,
        ref["expected"],
        atol=tolerance(cfg),
        rtol=tolerance(cfg),
        slips=lambda: slips(cfg, ref["x"]),
    )
