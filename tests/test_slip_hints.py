"""Which hint each known mistake gets, steps 2 to 10 and the KV cache, on numpy arrays (no MAX,
no subprocess).

The learner's output is computed here by the mistake's own formula, in numpy, from the check's own
weights and inputs; the check's slips (HuggingFace's modules, kept in the reference cache) must
name it with exactly the words the check keeps in its constant for that mistake (read from
checks/, never copied: tests/test_hint_copies.py holds that). So a hint's wording changes in one
place, and a test here fails when a mistake gets another mistake's hint. The same formulas hold
each check's tolerance (steps 2, 4 and 6) near float32's rounding, so that loosening one is a
decision, not an accident.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from checks import kv_reference as kv
from checks import options, recorder
from checks import test_step_02 as step_02
from checks import test_step_03 as step_03
from checks import test_step_04 as step_04
from checks import test_step_05 as step_05
from checks import test_step_06 as step_06
from checks import test_step_07 as step_07
from checks import test_step_08 as step_08
from checks import test_step_09 as step_09
from checks import test_step_10 as step_10
from checks.compare import Slip, mismatch
from checks.reference import SMALL

pytestmark = pytest.mark.fast


def hint_for(check, what, got, cfg, x, expected):
    """What the step's check says of `got`, with its tolerance for `cfg` and its slips."""
    tolerance = check.tolerance(cfg)
    slips = lambda: check.slips(cfg, x)  # noqa: E731
    return mismatch(what, got, expected, atol=tolerance, rtol=tolerance, slips=slips)


def linear(x, state, name):
    """x @ W^T + b with the check's weights (MAX's layout: [out, in])."""
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_a_closer_slip_still_wins_over_a_looser_one():
    expected = np.zeros(4, np.float32)
    got = np.full(4, 1.0, np.float32)
    slips = [Slip("loose", np.full(4, 1.00001, np.float32)), Slip("exact", got.copy())]
    message = mismatch("x", got, expected, atol=1e-5, rtol=1e-5, slips=slips)
    assert message.endswith("Hint: exact"), message


# Step 2: the MLP.


def mlp(x, state, mistake="", prefix=""):
    """GPT-2's MLP in numpy (float64), with one named mistake."""
    hidden = linear(x.astype(np.float64), state, f"{prefix}c_fc")
    activation = {
        "exact GELU": np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2)))),
        "no activation": lambda v: v,
        "ReLU": lambda v: np.maximum(v, 0),
        "GELU after c_proj": lambda v: v,
    }.get(mistake, gelu_tanh)
    out = linear(activation(hidden), state, f"{prefix}c_proj")
    return gelu_tanh(out) if mistake == "GELU after c_proj" else out


MLP_SLIPS = {
    "exact GELU": step_02.EXACT_GELU,
    "no activation": step_02.NO_ACTIVATION,
    "ReLU": step_02.RELU,
    "GELU after c_proj": step_02.GELU_AFTER_C_PROJ,
}


@pytest.mark.parametrize("mistake", MLP_SLIPS)
def test_step_2_mlp_slips_get_their_hints(mistake):
    cfg, batch, seq_len = step_02.CASES["small config, batch 2, 7 tokens"]
    ref = step_02.reference(cfg, batch, seq_len)
    x, expected = ref["x"], ref["expected"]
    assert mismatch("the numpy MLP", mlp(x, ref["state"]).astype(np.float32), expected) is None
    got = mlp(x, ref["state"], mistake).astype(np.float32)
    message = hint_for(step_02, "GPT2MLP output", got, cfg, x, expected)
    assert message is not None and message.endswith(f"\n  Hint: {MLP_SLIPS[mistake]}"), message


# Step 3: the causal mask.


def mask(seq_len: int, num_tokens: int, fill: float = -np.inf, first_hidden: int = 1) -> np.ndarray:
    """A [S, num_tokens + S] mask as learner code builds one, with np.triu: `fill` from key
    i + num_tokens + `first_hidden` on, 0 before (GPT-2's: -inf from the key after i's own)."""
    square = np.full((seq_len, seq_len + num_tokens), fill, np.float32)
    return np.triu(square, num_tokens + first_hidden)


MASK_SLIPS = {
    "ones and zeros": (lambda s, n: mask(s, n, fill=1.0), step_03.ONES_AND_ZEROS),
    "ones where visible (np.tril of ones)": (
        lambda s, n: np.tril(np.ones((s, s + n), np.float32), n),
        step_03.ONES_AND_ZEROS,
    ),
    "shifted one key too far": (
        lambda s, n: mask(s, n, first_hidden=2),
        step_03.ONE_KEY_TOO_MANY,
    ),
    "num_tokens ignored": (
        lambda s, n: np.triu(np.full((s, s + n), -np.inf, np.float32), 1),
        step_03.IGNORES_NUM_TOKENS,
    ),
    "a large finite number for -inf": (
        lambda s, n: mask(s, n, fill=-1e9),
        step_03.FINITE_HIDDEN.format(value=-1e9),
    ),
}


@pytest.mark.parametrize("slip", MASK_SLIPS.values(), ids=MASK_SLIPS.keys())
def test_step_3_mask_slips_get_their_hints(slip):
    formula, phrase = slip
    seq_len, num_tokens = 5, 3  # a case of the check's, with a cache
    assert step_03.CASES["5 queries after 3 cached keys"] == (seq_len, num_tokens)
    message = step_3_message(formula(seq_len, num_tokens), seq_len, num_tokens)
    assert message.endswith(f"\n  Hint: {phrase}"), message


SWAPPED = step_03.SWAPPED
DIAGONAL_HIDDEN = step_03.DIAGONAL_HIDDEN


def diagonal_hidden(seq_len: int, num_tokens: int) -> np.ndarray:
    """The learner's mask when query i sees only the keys before i + num_tokens."""
    return np.triu(np.full((seq_len, seq_len + num_tokens), -np.inf, np.float32), num_tokens)


def swapped(seq_len: int, num_tokens: int) -> np.ndarray:
    """The learner's mask with 0 and -inf exchanged."""
    visible = np.tril(np.ones((seq_len, seq_len + num_tokens), bool), num_tokens)
    return np.where(visible, -np.inf, 0.0).astype(np.float32)


def step_3_message(got: np.ndarray, seq_len: int, num_tokens: int) -> str:
    message = mismatch(
        "causal_mask",
        got,
        mask(seq_len, num_tokens),
        atol=0,
        rtol=0,
        slips=step_03.slips(seq_len, num_tokens, got),
    )
    assert message is not None
    return message


@pytest.mark.parametrize("case", step_03.CASES.values(), ids=step_03.CASES.keys())
def test_step_3_diagonal_hidden_is_named_in_every_case(case):
    message = step_3_message(diagonal_hidden(*case), *case)
    assert DIAGONAL_HIDDEN in message, message
    if case[0] > 1:  # more than one query tells the two slips apart
        assert SWAPPED not in message, message


@pytest.mark.parametrize("case", step_03.CASES.values(), ids=step_03.CASES.keys())
def test_step_3_swapped_mask_is_named_in_every_case(case):
    message = step_3_message(swapped(*case), *case)
    assert SWAPPED in message, message
    if case[0] > 1:
        assert DIAGONAL_HIDDEN not in message, message


def transposed(seq_len: int, num_tokens: int) -> np.ndarray:
    """The learner's mask with np.tril for np.triu (band_part's num_lower and num_upper swapped):
    -inf below the diagonal of the new keys, behind the cached keys' zeros."""
    new_keys = np.tril(np.full((seq_len, seq_len), -np.inf, np.float32), -1)
    return np.concatenate([np.zeros((seq_len, num_tokens), np.float32), new_keys], axis=1)


@pytest.mark.parametrize("case", step_03.CASES.values(), ids=step_03.CASES.keys())
def test_step_3_transposed_mask_is_named_in_every_case_it_fails(case):
    if case[0] == 1:  # one query: the transposed mask is the right one
        assert np.array_equal(transposed(*case), mask(*case))
        return
    message = step_3_message(transposed(*case), *case)
    assert message.endswith(f"\n  Hint: {step_03.TRANSPOSED}"), message


def test_step_3_first_failure_names_both_slips_that_give_its_numbers():
    """One query: [[-inf]] for both slips, so the first failure must not pick one of them."""
    first = next(iter(step_03.CASES.values()))
    assert first == (1, 0)
    assert np.array_equal(diagonal_hidden(*first), swapped(*first))
    message = step_3_message(diagonal_hidden(*first), *first)
    assert message.endswith(
        f"Hint: two known mistakes give exactly these numbers:\n  - {SWAPPED}\n  - {DIAGONAL_HIDDEN}"
    ), message


# Step 4: attention.


def attention(x, state, heads, mistake=""):
    """GPT-2 attention in numpy (float64) from the check's weights, with one named mistake."""
    batch, seq_len, width = x.shape
    head_dim = width // heads
    x = x.astype(np.float64)
    qkv = x @ state["c_attn.weight"].T + state["c_attn.bias"]  # [B, S, 3E]
    q, k, v = np.split(qkv, 3, axis=-1)
    q, k, v = {"qkv as kqv": (k, q, v), "qkv as qvk": (q, v, k), "qkv as vkq": (v, k, q)}.get(
        mistake, (q, k, v)
    )

    def split(t):  # [B, S, E] -> [B, H, S, D]
        if mistake == "heads from the wrong axis":
            return t.reshape(batch, seq_len, head_dim, heads).transpose(0, 3, 1, 2)
        if mistake.startswith("heads reshaped straight"):
            return t.reshape(batch, heads, seq_len, head_dim)
        return t.reshape(batch, seq_len, heads, head_dim).transpose(0, 2, 1, 3)

    scores = split(q) @ split(k).transpose(0, 1, 3, 2)  # [B, H, S, S]
    scores /= {"no scale": 1, "divided by head_dim": head_dim, "scaled by n_embd": width**0.5}.get(
        mistake, head_dim**0.5
    )
    query, key = np.indices((seq_len, seq_len))
    hidden = {"no mask": key < 0, "mask shifted": key > query + 1}.get(mistake, key > query)
    if mistake != "mask after the softmax":
        scores = np.where(hidden, -np.inf, scores)
    axis = -2 if mistake == "softmax over the queries" else -1
    weights = np.exp(scores - scores.max(axis, keepdims=True))
    weights /= weights.sum(axis, keepdims=True)
    if mistake == "mask after the softmax":
        weights = np.where(hidden, 0.0, weights)
    out = weights @ split(v)  # [B, H, S, D]
    if mistake in ("heads merged without transposing", "heads reshaped straight both ways"):
        out = out.reshape(batch, seq_len, width)
    else:
        out = out.transpose(0, 2, 1, 3).reshape(batch, seq_len, width)
    return out @ state["c_proj.weight"].T + state["c_proj.bias"]


ATTENTION_SLIPS = {
    "no scale": step_04.NO_SCALE,
    "divided by head_dim": step_04.DIVIDED_BY_HEAD_DIM,
    "scaled by n_embd": step_04.SCALED_BY_N_EMBD,
    "no mask": step_04.NO_MASK,
    "mask shifted": step_04.MASK_SHIFTED,
    "mask after the softmax": step_04.MASK_AFTER_SOFTMAX,
    "softmax over the queries": step_04.SOFTMAX_OVER_QUERIES,
    "qkv as kqv": step_04.QKV_ORDER,
    "qkv as qvk": step_04.QKV_ORDER,
    "qkv as vkq": step_04.QKV_ORDER,
    "heads from the wrong axis": step_04.HEADS_FROM_WRONG_AXIS,
    "heads reshaped straight": step_04.HEADS_RESHAPED_STRAIGHT,
    "heads merged without transposing": step_04.HEADS_MERGED_WITHOUT_TRANSPOSE,
    "heads reshaped straight both ways": step_04.HEADS_RESHAPED_STRAIGHT_BOTH_WAYS,
}


@pytest.mark.parametrize("mistake", ATTENTION_SLIPS)
def test_step_4_attention_slips_get_their_hints(mistake):
    cfg, batch, seq_len = step_04.EAGER_CASES["eager, small config, batch 2, 7 tokens"]
    ref = step_04.reference(cfg, ((batch, seq_len),))
    x, expected = ref[batch, seq_len]
    right = attention(x, ref["state"], cfg.n_head).astype(np.float32)
    assert mismatch("the numpy attention", right, expected) is None  # the formula is GPT-2's
    got = attention(x, ref["state"], cfg.n_head, mistake).astype(np.float32)
    tolerance = step_04.tolerance(cfg)
    slips = lambda: step_04.slips(cfg, x)  # noqa: E731
    message = mismatch(
        "Attention output", got, expected, atol=tolerance, rtol=tolerance, slips=slips
    )
    assert message is not None and message.endswith(f"\n  Hint: {ATTENTION_SLIPS[mistake]}"), (
        message
    )


# Step 5: layer norm.


def layer_norm(x, w, b, eps, axis=-1, ddof=0, eps_outside=False):
    mean = x.mean(axis, keepdims=True)
    std = np.sqrt(x.var(axis, ddof=ddof, keepdims=True) + (0 if eps_outside else eps))
    return (x - mean) / (std + (eps if eps_outside else 0)) * w + b


LAYER_NORM_SLIPS = {
    "epsilon outside the root": (dict(eps_outside=True), step_05.EPSILON_OUTSIDE_ROOT),
    "unbiased variance": (dict(ddof=1), step_05.UNBIASED_VARIANCE),
    "a hard-coded epsilon": (dict(eps=1e-12), step_05.OTHER_EPSILON),
    "no bias": (dict(b=0.0), step_05.NO_BIAS),
    "no gain": (dict(w=1.0), step_05.NO_GAIN),
    "over the positions": (dict(axis=-2), step_05.WRONG_AXIS),
}


@pytest.mark.parametrize("slip", LAYER_NORM_SLIPS.values(), ids=LAYER_NORM_SLIPS.keys())
def test_step_5_layer_norm_slips_get_their_hints(slip):
    changes, phrase = slip
    width, eps, batch, seq_len, scale = step_05.CASES["width 32, eps 1e-5, rows of small variance"]
    generator = np.random.default_rng(5)
    x = (scale * generator.standard_normal((batch, seq_len, width)) + 0.5).astype(np.float32)
    w = (1 + 0.2 * generator.standard_normal(width)).astype(np.float32)
    b = (0.2 * generator.standard_normal(width)).astype(np.float32)
    right = dict(x=x.astype(np.float64), w=w, b=b, eps=eps)
    got = layer_norm(**{**right, **changes}).astype(np.float32)
    ref = {"x": x, "state": {"weight": w, "bias": b}}
    message = mismatch(
        "LayerNorm output",
        got,
        layer_norm(**right).astype(np.float32),
        atol=step_05.TOLERANCE,
        rtol=step_05.TOLERANCE,
        slips=lambda: step_05.slips(ref, eps),
    )
    assert message is not None and message.endswith(f"\n  Hint: {phrase}"), message


def bfloat16(a):
    """float32 values rounded to bfloat16's 8 significant bits (to nearest even), as float32."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def test_step_5_statistics_in_bfloat16_are_named_in_a_bfloat16_run():
    """Step 5's formula on bfloat16 values, every result rounded to bfloat16: rows of small
    variance lose it. Without its own hint the closest other slip (the unbiased variance) was
    named, which contradicts the learner's code."""
    width, eps, batch, seq_len, scale = step_05.CASES["width 32, eps 1e-5, rows of small variance"]
    generator = np.random.default_rng(5)
    x = bfloat16(scale * generator.standard_normal((batch, seq_len, width)) + 0.5)
    w = bfloat16(1 + 0.2 * generator.standard_normal(width))
    b = bfloat16(0.2 * generator.standard_normal(width))
    centered = bfloat16(x - bfloat16(x.mean(-1, keepdims=True)))
    var = bfloat16((centered * centered).mean(-1, keepdims=True))
    got = bfloat16(bfloat16(centered * bfloat16(1 / np.sqrt(bfloat16(var + eps)))) * w) + b
    ref = {"x": x, "state": {"weight": w, "bias": b}}
    with options.changed(dtype="bfloat16"):
        message = mismatch(
            "LayerNorm output",
            bfloat16(got),
            layer_norm(x.astype(np.float64), w, b, eps).astype(np.float32),
            atol=step_05.TOLERANCE,
            rtol=step_05.TOLERANCE,
            slips=lambda: step_05.slips(ref, eps),
            precision="bfloat16",
        )
    assert message is not None, "the bfloat16 statistics no longer differ: a weaker test"
    assert message.endswith(f"\n  Hint: {step_05.BFLOAT16_STATISTICS}"), message


# Step 6: the transformer block, from the pieces above.


def block(x, state, cfg, mistake=""):
    """GPT-2's pre-norm block in numpy (float64), with one named mistake."""
    x = x.astype(np.float64)

    def ln(h, name):
        w, b = state[f"{name}.weight"], state[f"{name}.bias"]
        return layer_norm(h, w, b, cfg.layer_norm_epsilon)

    def attn(h):
        return attention(
            h, {k[5:]: v for k, v in state.items() if k.startswith("attn.")}, cfg.n_head
        )

    def ff(h):
        return mlp(h, state, prefix="mlp.")

    if mistake == "post-norm":
        h = ln(x + attn(x), "ln_1")
        return ln(h + ff(h), "ln_2")
    if mistake in ("normalized residual, both", "normalized residual, attention"):
        h = ln(x, "ln_1") + attn(ln(x, "ln_1"))
    elif mistake == "no attention residual":
        h = attn(ln(x, "ln_1"))
    elif mistake == "no attention norm":
        h = x + attn(x)
    else:
        h = x + attn(ln(x, "ln_1"))
    if mistake in ("normalized residual, both", "normalized residual, MLP"):
        return ln(h, "ln_2") + ff(ln(h, "ln_2"))
    if mistake == "no MLP residual":
        return ff(ln(h, "ln_2"))
    norm = {"ln_1 before the MLP": "ln_1"}.get(mistake, "ln_2")
    return h + (ff(h) if mistake == "no MLP norm" else ff(ln(h, norm)))


BLOCK_SLIPS = {
    "normalized residual, both": step_06.NORMALIZED_RESIDUAL,
    "normalized residual, attention": step_06.NORMALIZED_RESIDUAL,
    "normalized residual, MLP": step_06.NORMALIZED_RESIDUAL,
    "post-norm": step_06.POST_NORM,
    "no attention residual": step_06.NO_ATTENTION_RESIDUAL,
    "no MLP residual": step_06.NO_MLP_RESIDUAL,
    "ln_1 before the MLP": step_06.LN_1_BEFORE_THE_MLP,
    "no MLP norm": step_06.NO_MLP_NORM,
    "no attention norm": step_06.NO_ATTENTION_NORM,
}


@pytest.mark.parametrize("mistake", BLOCK_SLIPS)
def test_step_6_block_slips_get_their_hints(mistake):
    cfg, batch, seq_len = step_06.EAGER_CASES["eager, small config, batch 2, 7 tokens"]
    ref = step_06.reference(cfg, ((batch, seq_len),))
    x, expected = ref[batch, seq_len]
    right = block(x, ref["state"], cfg).astype(np.float32)
    assert hint_for(step_06, "the numpy block", right, cfg, x, expected) is None
    got = block(x, ref["state"], cfg, mistake).astype(np.float32)
    message = hint_for(step_06, "Block output", got, cfg, x, expected)
    assert message is not None and message.endswith(f"\n  Hint: {BLOCK_SLIPS[mistake]}"), message


# Step 8: the head.


class RightBody:
    """A learner's model whose body (step 7) gives HuggingFace's hidden states."""

    def __init__(self, hidden):
        self.transformer = lambda ids: hidden


def test_step_8_probabilities_for_logits_are_named_and_nothing_else(monkeypatch):
    monkeypatch.setattr(recorder, "check", SimpleNamespace(fail=lambda message: None))
    monkeypatch.setattr(step_08, "max_tensor", lambda ids: ids)  # the body runs no MAX here
    ids, hidden, logits = step_08.reference(SMALL)[2, 7]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    record = recorder.Recorder("float32")
    args = (RightBody(hidden), SMALL, ids, hidden, logits)
    assert step_08.check_logits(record, "Logits", logits, *args) and not record.failures
    assert not step_08.check_logits(record, "Logits", probabilities, *args)
    (message,) = record.failures  # not also "the difference is in the head: lm_head is ..."
    assert message.endswith(f"\n  Hint: {step_08.PROBABILITIES}"), message


# The KV-cache chapter: the cache's order.


class CachedStandIn:
    """A cached model in numpy that appends each call's keys and values (the position's number)
    to the caches it is given, or puts them before (F.concat([key, past_key])). Its logits are
    HuggingFace's until several new tokens follow a cache, where that order shows, then wrong."""

    def __init__(self, expected, new_first):
        self.expected, self.new_first, self.calls = expected, new_first, 0

    def __call__(self, ids, *caches):
        cached, new = caches[0].shape[2], ids.shape[1]
        logits = self.expected[self.calls] + (1.0 if cached and new > 1 else 0.0)
        self.calls += 1
        shape = (*caches[0].shape[:2], new, caches[0].shape[3])
        fresh = np.broadcast_to(np.arange(cached, cached + new, dtype=np.float32)[:, None], shape)
        order = (lambda past: [fresh, past]) if self.new_first else (lambda past: [past, fresh])
        return (logits, *(np.concatenate(order(past), axis=2) for past in caches))


@pytest.mark.parametrize("new_first", [True, False], ids=["new keys first", "appended"])
def test_kv_new_keys_before_the_cached_ones_are_named(monkeypatch, new_first):
    monkeypatch.setattr(recorder, "check", SimpleNamespace(fail=lambda message: None))
    monkeypatch.setattr(kv, "max_tensor", lambda array: array)  # the stand-in takes numpy
    record = recorder.Recorder("float32")
    model = CachedStandIn(kv.reference()["expected"], new_first)
    assert kv.check_chunks(record, model, "eager") == 3  # 3 new tokens after 7 cached
    (message,) = record.failures
    assert message.endswith(f"\n  Hint: {kv.NEW_BEFORE_CACHED}") == new_first, message
    assert message.endswith(f"\n  Hint: {kv.CHANGES_WITH_A_CACHE}") != new_first, message


# Step 10: sampling at a low temperature.


def learner_generating(sampled: str, greedy: str):
    """generate_text (as the check calls it) that adds `greedy`, or `sampled` with do_sample."""

    def generate(tokenizer, model, prompt, do_sample=True, **kwargs):
        return "generate_text(...)", prompt + (sampled if do_sample else greedy)

    return generate


HF_GREEDY = " world world"


@pytest.mark.parametrize(
    "sampled, greedy, advice",
    [
        # logits[0, 0] for logits[0, -1]: greedy and sampling alike miss, the same way
        (" x x", " x x", step_10.GREEDY_DIFFERS_TOO),
        (" x x", HF_GREEDY, step_10.TEMPERATURE_NOT_DIVIDED),  # temperature multiplied
    ],
    ids=["tokens from the first position", "temperature multiplied"],
)
def test_step_10_low_temperature_advice_fits_the_code(monkeypatch, sampled, greedy, advice):
    monkeypatch.setattr(recorder, "check", SimpleNamespace(fail=lambda message: None))
    monkeypatch.setattr(step_10, "sampling_model", lambda: (None, None))  # no HuggingFace model
    monkeypatch.setattr(step_10, "HFLogits", lambda model: model)
    monkeypatch.setattr(step_10, "hf_greedy", lambda *args: step_10.PROMPTS[0] + HF_GREEDY)
    monkeypatch.setattr(step_10, "generate", learner_generating(sampled, greedy))
    record = recorder.Recorder("float32")
    step_10.test_low_temperature_gives_the_greedy_tokens(record)
    (message,) = record.failures  # one piece of advice, the one that fits
    assert message.endswith(f"the greedy tokens, {HF_GREEDY!r}. {advice}"), message


def test_kv_a_first_call_with_a_cache_that_fails_is_pointed_at(monkeypatch):
    from checks.learner import LearnerError

    def fails_with_a_cache(ids, *caches):
        if caches[0].shape[2]:
            raise ValueError("shapes do not match")
        return CachedStandIn(kv.reference()["expected"], new_first=False)(ids, *caches)

    monkeypatch.setattr(kv, "max_tensor", lambda array: array)
    with pytest.raises(LearnerError) as raised:
        kv.check_chunks(recorder.Recorder("float32"), fails_with_a_cache, "eager")
    assert str(raised.value).endswith(f"\n  Hint: {kv.FIRST_CALL_FAILED}"), raised.value


# Step 7: blocks that are one object, and step 9: an extra id.


class _Tokenizer:
    """What extra_id_slips asks of a tokenizer (the real one imports torch: seconds)."""

    eos_token_id = 0

    def __len__(self):
        return 400

    def convert_ids_to_tokens(self, index):
        return f"tok{index}"


def test_step_9_extra_leading_end_of_text_is_named():
    tokenizer = _Tokenizer()
    ids = [31, 7, 99, 250, 12]
    for extra in (50256, tokenizer.eos_token_id):
        got = np.array([[extra, *ids]], dtype=np.int64)
        message = mismatch(
            "tokenize_text",
            got,
            np.array([ids], dtype=np.int64),
            atol=0,
            rtol=0,
            dtype=np.int64,
            slips=step_09.extra_id_slips(got, ids, tokenizer),
        )
        assert f"expected shape [1, {len(ids)}], got [1, {len(ids) + 1}]" in message, message
        hint = step_09.EXTRA_ID.format(where="start", extra=extra, name=" (<|endoftext|>)")
        assert message.endswith(f"\n  Hint: {hint}"), message


def test_step_9_extra_id_at_the_end_and_the_empty_text():
    tokenizer = _Tokenizer()
    ids = [31, 7]
    (slip,) = step_09.extra_id_slips(np.array([[*ids, 8]]), ids, tokenizer)
    assert slip.hint == step_09.EXTRA_ID.format(where="end", extra=8, name=" ('tok8')")
    (slip,) = step_09.extra_id_slips(np.array([[50256]]), [], tokenizer)
    assert slip.hint == step_09.EXTRA_ID.format(where="start", extra=50256, name=" (<|endoftext|>)")
    assert step_09.extra_id_slips(np.array([ids]), ids, tokenizer) == []


class _Block:
    def __init__(self, layer=None):
        self.layer = layer or _Layer()

    @property
    def descendants(self):
        return [("mlp", self.layer)]


class _Layer:
    parameters = [("weight", object())]


def test_step_7_one_block_repeated_is_named():
    message = step_07.shared_blocks([_Block()] * 3)
    assert message == f"h[0] and h[1] are the same GPT2Block object: {step_07.ONE_BLOCK_REPEATED}"


def test_step_7_a_shared_layer_is_named_and_distinct_blocks_pass():
    layer = _Layer()
    message = step_07.shared_blocks([_Block(layer), _Block(layer)])
    shared = "share one mlp layer (h[0].mlp is h[1].mlp)"
    assert message == f"h[0] and h[1] {shared}: {step_07.ONE_BLOCK_REPEATED}", message
    assert step_07.shared_blocks([_Block(), _Block(), _Block()]) is None


# The checks' own tolerances: near float32's rounding of the right formula, so a small mistake fails.


def right_outputs(step):
    """(the check, its config, the numpy formula's output, the reference's) for steps 2, 4, 6."""
    if step == 2:
        cfg, batch, seq_len = step_02.CASES["small config, batch 2, 7 tokens"]
        ref = step_02.reference(cfg, batch, seq_len)
        return step_02, cfg, mlp(ref["x"], ref["state"]), ref["expected"]
    check = {4: step_04, 6: step_06}[step]
    cfg, batch, seq_len = check.EAGER_CASES["eager, small config, batch 2, 7 tokens"]
    ref = check.reference(cfg, ((batch, seq_len),))
    x, expected = ref[batch, seq_len]
    formula = attention(x, ref["state"], cfg.n_head) if step == 4 else block(x, ref["state"], cfg)
    return check, cfg, formula, expected


@pytest.mark.parametrize("step", [2, 4, 6])
def test_a_checks_tolerance_stays_within_200_times_float32_rounding(step):
    """HuggingFace's float32 output differs from the float64 formula by its rounding; MAX's
    kernels round differently, so the checks allow about 20-90 times that here (a machine's
    math library moves it), and no more than 200: ten times looser fails."""
    check, cfg, formula, expected = right_outputs(step)
    rounding = (np.abs(formula - expected) / (1 + np.abs(expected))).max()
    assert check.tolerance(cfg) <= 200 * rounding, (check.tolerance(cfg), rounding)
