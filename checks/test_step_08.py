"""Step 8: MaxGPT2LMHeadModel against HuggingFace's GPT2LMHeadModel (the logits)."""

import pytest

from checks.compare import Slip, mismatch, names_a_mistake
from checks.harness import call
from checks.reference import SMALL, causal_mask_4d, hf_lm_model, max_state_dict, token_ids
from checks.reference_cache import cached, cached_slips
from checks.modules import learner_module
from checks.tensors import max_tensor, softmax, torch_no_grad

SHAPES = ((2, 7), (1, SMALL.n_positions))
TOLERANCE = 2e-4


def reference(cfg):
    def build():
        model = hf_lm_model(cfg, seed=12)
        data = {"state": max_state_dict(model)}
        for batch, seq_len in SHAPES + ((3, 13),):
            ids = token_ids(batch, seq_len, cfg.vocab_size, seed=13)
            out = model(ids, output_hidden_states=True)
            data[batch, seq_len] = (ids.numpy(), out.hidden_states[-1].numpy(), out.logits.numpy())
        return data

    return cached("lm_head", (cfg, SHAPES), build)


LOGITS_BEFORE_LN_F = (
    "the logits are taken before the final layer norm: lm_head(ln_f(...)), which "
    "your MaxGPT2Model already applies."
)


@cached_slips
def slips(cfg, ids):
    with torch_no_grad() as torch:
        model = hf_lm_model(cfg, seed=12)
        ids = torch.from_numpy(ids)
        hidden = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1]))
        for block in model.transformer.h:
            hidden = block(hidden, attention_mask=causal_mask_4d(ids.shape[1]))
        return [Slip(LOGITS_BEFORE_LN_F, model.lm_head(hidden))]


PROBABILITIES = (
    "the output looks like probabilities (softmax applied): return the logits, the raw lm_head "
    "output; generation takes the softmax itself."
)


def learner_model(cfg, state):
    return learner_module(8, "MaxGPT2LMHeadModel", state, cfg)


def check_logits(record, what, got, model, cfg, ids, hidden, logits):
    problem = mismatch(
        what,
        got,
        logits,
        atol=TOLERANCE,
        rtol=TOLERANCE,
        slips=lambda: [Slip(PROBABILITIES, softmax(logits)), *slips(cfg, ids)],
        precision=record.precision,
    )
    record.expect(problem is None, problem or "")
    # A named mistake says what to fix; where the difference lies would only be a vaguer guess.
    if problem and not names_a_mistake(problem):
        body = call("MaxGPT2LMHeadModel.transformer", model.transformer, max_tensor(ids))
        close = {"atol": TOLERANCE, "rtol": TOLERANCE, "precision": record.precision}
        if mismatch("", body, hidden, **close) is not None:
            record.expect(
                False,
                "The body (self.transformer, your MaxGPT2Model of step 7) already "
                "differs from HuggingFace's: fix step 7 first.",
            )
        else:
            record.expect(
                False,
                "The body's hidden states match; the difference is in the head: "
                "lm_head is Linear(n_embd, vocab_size, bias=False) applied to them.",
            )
    return problem is None


def test_parameter_names_match_huggingface(record):
    """Parameter names and shapes equal GPT2LMHeadModel's state dict, so weights load by name"""
    ref = reference(SMALL)
    model = learner_model(SMALL, ref["state"])  # names every missing, extra or misshaped one
    names = sorted(name for name, _ in model.parameters)
    record.expect(
        names == sorted(ref["state"]),
        f"MaxGPT2LMHeadModel's parameters are {names[:4]}...; "
        f"GPT-2's are {sorted(ref['state'])[:4]}...",
    )


@pytest.mark.parametrize("shape", SHAPES, ids=[f"eager, batch {b}, {s} tokens" for b, s in SHAPES])
def test_eager_logits_match_huggingface(record, shape):
    """Logits match HuggingFace's GPT2LMHeadModel"""
    ref = reference(SMALL)
    model = learner_model(SMALL, ref["state"])
    ids, hidden, logits = ref[shape]
    got = call("MaxGPT2LMHeadModel.forward", model, max_tensor(ids))
    check_logits(record, "Logits (eager)", got, model, SMALL, ids, hidden, logits)


@pytest.mark.compiled
def test_compiled_model_matches_eager_and_huggingface(record):
    """model.compile(TensorType(int64, ("batch", "seqlen"))) gives the same logits for two lengths (compiled)"""
    ref = reference(SMALL)
    model = learner_model(SMALL, ref["state"])
    cases = [(ids, logits, hidden) for ids, hidden, logits in (ref[s] for s in ((2, 7), (3, 13)))]
    record.expect_compiled_matches(
        "MaxGPT2LMHeadModel",
        model,
        cases,
        lambda label, got, ids, logits, hidden: check_logits(
            record, f"Logits ({label})", got, model, SMALL, ids, hidden, logits
        ),
        TOLERANCE,
    )
