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
K = 3
TOLERANCE = 1e-4

NO_SHIFT = (
    "each position scores its own token: position t predicts token t + 1, so pair logits[:, :-1] "
    "with ids[:, 1:]."
)
LAST_INCLUDED = (
    "one value per position, but the last position has no next token in the text to score: "
    "drop it (logits[:, :-1] with ids[:, 1:]), which leaves S - 1 values."
)
SHIFTED_BACK = (
    "shifted the wrong way: each position scores the token before it. Position t predicts "
    "token t + 1: logits[:, :-1] with ids[:, 1:]."
)
UNDERFLOW = (
    "log(softmax(x)) underflows: a probability below about 1e-38 is 0 in float32 and its log "
    "-inf. F.logsoftmax computes x - max - log(sum(exp(x - max))) and stays finite."
)
IN_BITS = (
    "these are in bits (log base 2); the loss is in nats, with the natural log: F.logsoftmax, "
    "np.log, math.exp. (Bits are the loss divided by ln 2.)"
)
UNCAST = (
    "the log-softmax ran in bfloat16, which keeps 8 significant bits (about 2.4 decimal "
    "digits): cast the logits to float32 first, logits.cast(DType.float32), then F.logsoftmax."
)
PADDING_COUNTED = (
    "padded positions are counted: a pair counts only when both tokens are real, "
    "counted = mask[:, :-1] * mask[:, 1:], and the mean divides by counted.sum()."
)
PROBABILITIES_AVERAGED = (
    "this is -log(mean(p)), the log of the averaged probabilities; the loss is the mean of "
    "-log(p), the average surprise."
)
BITS_PERPLEXITY = (
    "2^loss is the perplexity of a loss in bits; this loss is in nats: math.exp(loss)."
)
OFF_BY_ONE = (
    "the indices are one too small: entry t of log_probs scores token t + 1 of the text, "
    "so return t + 1."
)
LEAST_FIRST = "the order is reversed: the most surprising token (largest -log p) comes first."


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
        "text loss": float(model(text_ids, labels=text_ids).loss),
    }


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def gathered(log_probs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """log_probs [B, T, V] at ids [B, T] -> [B, T]."""
    return np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]


def expected_log_probs(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return gathered(log_softmax(logits[:, :-1]), ids[:, 1:]).astype(np.float32)


def log_probs_slips(logits: np.ndarray, ids: np.ndarray) -> list[Slip]:
    all_positions = log_softmax(logits)
    with np.errstate(divide="ignore"):
        through_softmax = np.log(softmax32(logits[:, :-1]))
    right = expected_log_probs(logits, ids)
    return [
        Slip(NO_SHIFT, gathered(all_positions, ids)),
        Slip(SHIFTED_BACK, gathered(log_softmax(logits[:, 1:]), ids[:, :-1])),
        Slip(UNDERFLOW, gathered(through_softmax, ids[:, 1:])),
        Slip(IN_BITS, right / math.log(2)),
    ]


def softmax32(logits: np.ndarray) -> np.ndarray:
    """Softmax in float32, as F.softmax computes it: tiny probabilities become 0."""
    x = logits.astype(np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_probs_problem(
    what: str, got, logits: np.ndarray, ids: np.ndarray, extra=(), precision: str = "float32"
) -> str | None:
    """None when `got` (the learner's token_log_probs) matches; else what is wrong, in words."""
    if getattr(got, "dtype", None) is not None and "bfloat16" in str(got.dtype).lower():
        return f"{what}: the result is bfloat16; it should be float32: {UNCAST}"
    got_np = as_numpy(got, what)
    right = expected_log_probs(logits, ids)
    if got_np.shape == (ids.shape[0], ids.shape[1]):
        self_scored = gathered(log_softmax(logits), ids)
        close = {"atol": TOLERANCE, "rtol": TOLERANCE, "precision": precision}
        if mismatch("", got_np, self_scored, **close) is None:
            return (
                f"{what}: expected shape {list(right.shape)}, got {list(got_np.shape)}. {NO_SHIFT}"
            )
        return (
            f"{what}: expected shape {list(right.shape)}, got {list(got_np.shape)}. {LAST_INCLUDED}"
        )
    return mismatch(
        what,
        got_np,
        right,
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=lambda: [*log_probs_slips(logits, ids), *extra],
    )


def number(what: str, got) -> float:
    """A Python number (or one-element array) the learner returned, as a float."""
    if isinstance(got, (int, float, np.number)) and not isinstance(got, bool):
        return float(got)
    if got is None:
        raise LearnerError(f"{what} returned None: it is still the skeleton's placeholder.")
    array = as_numpy(got, what) if not isinstance(got, (int, float)) else np.asarray(got)
    if array.size != 1:
        raise LearnerError(
            f"{what} returned {array.size} numbers (shape {list(array.shape)}); it should return "
            "one: the mean over every counted position."
        )
    return float(array.reshape(()))


def loss_problem(
    what: str, got: float, log_probs: np.ndarray, mask, expected: float, precision: str = "float32"
) -> str | None:
    log_probs = log_probs.astype(np.float64)
    all_positions = -log_probs.mean()
    counted = np.ones_like(log_probs) if mask is None else mask[:, :-1] * mask[:, 1:]
    averaged = -np.log((np.exp(log_probs) * counted).sum() / counted.sum())
    slips = [
        Slip(IN_BITS, expected / math.log(2)),
        Slip(PROBABILITIES_AVERAGED, averaged),
        *([Slip(PADDING_COUNTED, all_positions)] if mask is not None else []),
    ]
    return mismatch(
        what,
        np.array(got, dtype=np.float64),
        np.array(expected, dtype=np.float64),
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=slips,
        dtype=None,
    )


def surprising_problem(what: str, got, log_probs: np.ndarray, k: int) -> str | None:
    if got is None:
        return f"{what} returned None: it is still the skeleton's placeholder."
    if not isinstance(got, (list, tuple)):
        return (
            f"{what} returned a {type(got).__name__}; it should return a list of (index, surprise)."
        )
    surprise = -log_probs[0].astype(np.float64)
    order = np.argsort(-surprise, kind="stable")[:k]
    expected = [(int(t) + 1, float(surprise[t])) for t in order]
    try:
        indices = [int(index) for index, _ in got]
        values = [float(value) for _, value in got]
    except (TypeError, ValueError):
        return f"{what} returned {got!r:.80}; it should return (index, surprise) pairs."
    if indices == [index for index, _ in expected] and np.allclose(
        values, [value for _, value in expected], atol=TOLERANCE, rtol=TOLERANCE
    ):
        return None

    def pairs(found):
        return [(index, round(value, 3)) for index, value in found]

    message = f"{what}: expected {pairs(expected)}, got {pairs(zip(indices, values, strict=True))}."
    if indices == [index - 1 for index, _ in expected]:
        return f"{message}\n  Hint: {OFF_BY_ONE}"
    least_first = [int(t) + 1 for t in np.argsort(surprise, kind="stable")[:k]]
    if indices == least_first:
        return f"{message}\n  Hint: {LEAST_FIRST}"
    return message


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
    logits = ref["logits"]
    if harness.low_precision():  # the learner's function gets bfloat16 logits: score those
        logits = bfloat16(logits).float().numpy()
    expect_log_probs(record, "eager", logits, ref["ids"])


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


def perplexity_problem(got: float, loss: float, precision: str = "float32") -> str | None:
    return mismatch(
        f"perplexity({loss:.4g})",
        np.array(got, dtype=np.float64),
        np.array(math.exp(loss), dtype=np.float64),
        atol=TOLERANCE,
        rtol=TOLERANCE,
        precision=precision,
        slips=[Slip(BITS_PERPLEXITY, np.array(2.0**loss))],
        dtype=None,
    )


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
    record.expect(
        isinstance(got[2], list)
        and len(got[2]) == K
        and all(isinstance(token, str) for token, _ in got[2]),
        f"score_text's third value should be the {K} most surprising tokens as "
        f"(token text, surprise) pairs; it is {got[2]!r:.80}.",
    )


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
        if harness.low_precision():
            logits = bfloat16(logits).float().numpy()
        what = f"the compiled token_log_probs ({name})"
        got = call(what, graph, max_tensor(logits), max_tensor(ids))
        problem = log_probs_problem(what, got, logits, ids, precision=record.precision)
        if not record.expect(problem is None, problem or ""):
            break
