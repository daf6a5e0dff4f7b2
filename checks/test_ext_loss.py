"""The loss chapter's checks: log-probabilities, loss and perplexity equal HuggingFace's.

HuggingFace's GPT2LMHeadModel(ids, labels=ids).loss is the mean next-token cross-entropy; padded
positions carry the label -100 and count neither as predictors nor as predicted tokens. Every
check feeds the learner's functions the logits of the checks' seeded small model, so a mistake
here is named here; the last one scores a text with the learner's own step-8 model.
"""

import math

import numpy as np
import pytest

from checks import harness
from checks.compare import Slip, mismatch
from checks.doubles import HFLogits
from checks.harness import LearnerError, call, compile_module, learner_attr, not_none, parse_step
from checks.loss_judging import (
    K,
    TOLERANCE,
    UNCAST,
    expected_log_probs,
    log_probs_problem,
    loss_problem,
    number,
    perplexity_problem,
    surprising_problem,
    text_surprises_problem,
)
from checks.modules import learner_module
from checks.reference import SMALL, hf_lm_model, max_state_dict, token_ids
from checks.reference_cache import cached
from checks.tensors import as_numpy, bfloat16, max_tensor, torch_no_grad
from checks.tokenizer import local_tokenizer

STEP = parse_step("loss")
BATCH, SEQ_LEN = 2, 12
LENGTHS = (12, 7)  # the padded batch: the second text is 7 real tokens, then padding
CONFIDENT = 60.0  # logits this many times larger: most probabilities underflow float32
TEXT = "The quick brown fox jumps over the lazy dog."


def reference():
    def build():
        with torch_no_grad():
            return build_reference()

    return cached("loss", (SMALL, BATCH, SEQ_LEN, LENGTHS, TEXT), build)


def build_reference():
    """The seeded model's weights, logits and losses (run with gradients off)."""
    import torch

    tokenizer = local_tokenizer(model_max_length=SMALL.n_positions)
    model = hf_lm_model(SMALL, seed=31, eos_token_id=tokenizer.eos_token_id)
    ids = token_ids(BATCH, SEQ_LEN, SMALL.vocab_size, seed=32)
    mask = torch.tensor([[1] * n + [0] * (SEQ_LEN - n) for n in LENGTHS])
    padded = torch.where(mask.bool(), ids, tokenizer.eos_token_id)
    text_ids = torch.tensor([tokenizer.encode(TEXT)])
    return {
        "state": max_state_dict(model),
        "ids": ids.numpy(),
        "logits": model(ids).logits.numpy(),
        "loss": float(model(ids, labels=ids).loss),
        "padded": padded.numpy(),
        "mask": mask.numpy(),
        "padded logits": model(padded, attention_mask=mask).logits.numpy(),
        "padded loss": float(
            model(padded, attention_mask=mask, labels=torch.where(mask.bool(), padded, -100)).loss
        ),
        "text ids": text_ids.numpy(),
        "text logits": model(text_ids).logits.numpy(),
        "text loss": float(model(text_ids, labels=text_ids).loss),
    }


def as_given(logits: np.ndarray) -> np.ndarray:
    """The logits as the learner's function receives them: rounded to bfloat16 in a bfloat16 run
    (its numbers are judged on those)."""
    return bfloat16(logits).float().numpy() if harness.low_precision() else logits


def function(name: str):
    return learner_attr(STEP, name)


def expect_log_probs(record, what, logits, ids, inputs=None, extra=()):
    logits_in, ids_in = inputs or (max_tensor(logits), max_tensor(ids))
    got = call(f"token_log_probs ({what})", function("token_log_probs"), logits_in, ids_in)
    problem = log_probs_problem(
        f"token_log_probs ({what})",
        not_none("token_log_probs(...)", got),
        logits,
        ids,
        extra,
        record.precision,
    )
    record.expect(problem is None, problem or "")


def test_log_probs_match_huggingface(record):
    """token_log_probs(logits, ids) gives HuggingFace's log p of each next token, [B, S - 1]"""
    ref = reference()
    expect_log_probs(record, "eager", as_given(ref["logits"]), ref["ids"])


def test_confident_logits_stay_finite(record):
    """Confident logits (probabilities below float32's smallest) give finite log-probabilities"""
    ref = reference()
    logits = ref["logits"] * CONFIDENT
    inputs = (max_tensor(logits, float32=True), max_tensor(ref["ids"]))
    expect_log_probs(record, f"logits x {CONFIDENT:g}", logits, ref["ids"], inputs)


def test_bfloat16_logits_are_scored_in_float32(record):
    """bfloat16 logits (a model on a GPU) give float32 log-probabilities, computed in float32"""
    ref = reference()
    rounded = bfloat16(ref["logits"])  # MAX's dtype on a GPU
    logits = rounded.float().numpy()
    inputs = (max_tensor(rounded), max_tensor(ref["ids"]))
    in_bfloat16 = bfloat16(expected_log_probs(logits, ref["ids"])).float().numpy()
    expect_log_probs(
        record, "bfloat16 logits", logits, ref["ids"], inputs, extra=[Slip(UNCAST, in_bfloat16)]
    )


@pytest.mark.parametrize("padded", [False, True], ids=["no padding", "padded batch"])
def test_mean_loss_matches_huggingface(record, padded):
    """mean_loss gives HuggingFace's GPT2LMHeadModel(ids, labels=...).loss, padding left out"""
    ref = reference()
    logits, ids, mask, expected = (
        (ref["padded logits"], ref["padded"], ref["mask"], ref["padded loss"])
        if padded
        else (ref["logits"], ref["ids"], None, ref["loss"])
    )
    log_probs = expected_log_probs(logits, ids)
    what = f"mean_loss ({'padded batch' if padded else 'no padding'})"
    got = call(what, function("mean_loss"), max_tensor(log_probs, float32=True), mask)
    problem = loss_problem(what, number(what, got), log_probs, mask, expected, record.precision)
    record.expect(problem is None, problem or "")


def test_perplexity_is_e_to_the_loss(record):
    """perplexity(loss) = e^loss"""
    loss = reference()["loss"]
    got = number("perplexity", call("perplexity", function("perplexity"), loss))
    problem = perplexity_problem(got, loss, record.precision)
    record.expect(problem is None, problem or "")


def test_most_surprising_tokens(record):
    """most_surprising(log_probs, k): the k least expected tokens, index and -log p"""
    ref = reference()
    log_probs = expected_log_probs(ref["logits"], ref["ids"])
    got = call(
        "most_surprising", function("most_surprising"), max_tensor(log_probs, float32=True), K
    )
    problem = surprising_problem(f"most_surprising(log_probs, k={K})", got, log_probs, K)
    record.expect(problem is None, problem or "")


def your_model(state):
    """The learner's step-8 model with the reference's weights. In a bfloat16 run, HuggingFace's
    logits as a bfloat16 model gives them (checks 8 and 11 hold the learner's model in bfloat16;
    running it eagerly here would compile its every operation again: minutes)."""
    if harness.low_precision():
        doubled = HFLogits(hf_lm_model(SMALL, seed=31))
        return lambda ids: max_tensor(as_numpy(doubled(ids), "the logits"))  # bfloat16 again
    try:
        return learner_module(8, "MaxGPT2LMHeadModel", state, SMALL)
    except LearnerError as error:
        raise LearnerError(
            f"score_text is checked on your step-8 model, which does not build yet: {error}"
        ) from None


def test_score_text_on_your_model(record):
    """score_text with your step-8 model and step-9 tokenize_text gives HuggingFace's loss"""
    ref = reference()
    model = your_model(ref["state"])
    tokenizer = local_tokenizer(model_max_length=SMALL.n_positions)
    got = call("score_text", function("score_text"), model, tokenizer, harness.device(), TEXT, K)
    not_none("score_text(...)", got)
    if not isinstance(got, tuple) or len(got) != 3:
        raise LearnerError(
            f"score_text returned {got!r:.60}; it should return (loss, perplexity, surprising)."
        )
    loss = number("score_text's loss", got[0])
    problem = mismatch(
        f"score_text's loss of {TEXT!r} on your step-8 model",
        np.array(loss, dtype=np.float64),
        np.array(ref["text loss"], dtype=np.float64),
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=record.precision,
        dtype=None,
    )
    if problem:
        problem += (
            " The functions above pass their checks, so look at score_text itself: "
            "step 9's tokenize_text, your model's logits, then token_log_probs and mean_loss "
            "(and check 8, if you changed step 8 since)."
        )
    record.expect(problem is None, problem or "")
    perplexity = number("score_text's perplexity", got[1])
    record.expect(
        math.isclose(perplexity, math.exp(loss), rel_tol=1e-4),
        f"score_text's perplexity is {perplexity:.5g}, not e^loss = {math.exp(loss):.5g}.",
    )
    what = f"score_text's most surprising tokens of {TEXT!r}"
    logits = as_given(ref["text logits"])  # in bfloat16, the stand-in model's rounded ones
    problem = text_surprises_problem(what, got[2], ref["text ids"], logits, tokenizer)
    record.expect(problem is None, problem or "")


def test_score_text_refuses_a_text_of_one_token(record):
    """score_text raises ValueError for a text of one token: no next token to predict"""
    tokenizer = local_tokenizer(model_max_length=SMALL.n_positions)
    one_token = "The"
    score_text = function("score_text")
    try:
        call(
            "score_text", score_text, model_never_called, tokenizer, harness.device(), one_token, K
        )
    except LearnerError as error:
        record.expect(
            "ValueError" in str(error),
            "score_text of a one-token text should raise ValueError before running the model "
            f"(a loss needs two tokens); instead: {error}",
        )
        return
    record.expect(False, "score_text of a one-token text returned; it should raise ValueError.")


def model_never_called(ids):
    raise RuntimeError("score_text ran the model on a text of one token")


@pytest.mark.compiled
def test_compiled_log_probs_match_huggingface(record):
    """token_log_probs inside a compiled graph (logits of any batch and length) (compiled)"""
    from max.dtype import DType
    from max.experimental.nn import Module
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    token_log_probs = function("token_log_probs")

    class Scores(Module):
        def forward(self, logits, ids):
            return token_log_probs(logits, ids)

    device = DeviceRef.from_device(harness.device())
    graph = compile_module(
        "token_log_probs",
        Scores(),
        TensorType(harness.dtype(), ("batch", "seqlen", SMALL.vocab_size), device=device),
        TensorType(DType.int64, ("batch", "seqlen"), device=device),
    )
    ref = reference()
    for name, logits, ids in (
        ("batch 2", ref["logits"], ref["ids"]),
        ("padded batch", ref["padded logits"], ref["padded"]),
    ):
        logits = as_given(logits)
        what = f"the compiled token_log_probs ({name})"
        got = call(what, graph, max_tensor(logits), max_tensor(ids))
        problem = log_probs_problem(what, got, logits, ids, precision=record.precision)
        if not record.expect(problem is None, problem or ""):
            break
