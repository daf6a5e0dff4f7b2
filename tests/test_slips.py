"""Each plausible mistake, made in a copy of the solutions, fails its step's check with its hint.

The hint's words are read from the check that keeps them (its constant for that mistake, never a
copy: tests/test_hint_copies.py holds that); a hint made from a template with runtime values is
asserted on its fixed parts, or on the template filled in with the values the mutant gives.
Mutants run with --eager-only (compiling a graph per mutant would cost minutes on a cold cache),
except where compilation is the point.
"""

import string

import pytest

from checks import harness
from checks import kv_reference as kv
from checks import serve_align as align
from checks import test_ext_kv_cache as kv_cache
from checks import loss_judging as loss
from checks import test_ext_mojo as mojo
from checks import test_ext_serve as serve
from checks import test_step_02 as step_02
from checks import test_step_03 as step_03
from checks import test_step_04 as step_04
from checks import test_step_05 as step_05
from checks import test_step_06 as step_06
from checks import test_step_07 as step_07
from checks import test_step_08 as step_08
from checks import test_step_09 as step_09
from checks import test_step_10 as step_10
from checks import test_step_11 as step_11
from tests.conftest import ROOT, mutate, run_checks, run_checks_here, run_slip


def fixed_parts(template: str) -> tuple[str, ...]:
    """The words of a hint's format template between its runtime values ("{name}")."""
    return tuple(text for text, *_ in string.Formatter().parse(template) if text.strip())


GELU = 'F.gelu(hidden_states, approximate="tanh")'
SOFTMAX = "weights = F.softmax(scores, axis=-1)"
SPLIT = "query, key, value = F.split(qkv, [self.embed_dim] * 3, axis=-1)"

SLIPS = {
    # step 1
    "n_embd wrong": (
        1,
        [("n_embd: int = 768", "n_embd: int = 512")],
        "n_embd is 512; HuggingFace's gpt2 uses 768",
    ),
    "epsilon wrong": (
        1,
        [("layer_norm_epsilon: float = 1e-5", "layer_norm_epsilon: float = 1e-6")],
        "layer_norm_epsilon is 1e-06",
    ),
    "n_inner set": (
        1,
        [("n_inner: int | None = None", "n_inner: int | None = 3072")],
        "n_inner is 3072; HuggingFace's gpt2 uses None",
    ),
    "vocab as float": (
        1,
        [("vocab_size: int = 50257", "vocab_size: float = 50257.0")],
        "vocab_size is 50257.0",
    ),
    "not a dataclass": (1, [("@dataclass\n", "")], "not a dataclass"),
    # step 2
    "no activation": (2, [(GELU, "hidden_states")], step_02.NO_ACTIVATION),
    "GELU after c_proj": (
        2,
        [
            (GELU, "hidden_states"),
            (
                "return self.c_proj(hidden_states)",
                'return F.gelu(self.c_proj(hidden_states), approximate="tanh")',
            ),
        ],
        step_02.GELU_AFTER_C_PROJ,
    ),
    "c_fc without bias": (
        2,
        [("intermediate_size, bias=True)", "intermediate_size, bias=False)")],
        "no parameter c_fc.bias",
    ),
    "c_fc in/out swapped": (
        2,
        [("Linear(config.n_embd, intermediate_size", "Linear(intermediate_size, config.n_embd")],
        "c_fc.weight has shape",
    ),
    # step 3
    "mask of ones": (
        3,
        [('Tensor(float("-inf"),', "Tensor(1.0,")],
        step_03.ONES_AND_ZEROS,
    ),
    "mask shifted": (3, [("num_upper=0,", "num_upper=1,")], step_03.ONE_KEY_TOO_MANY),
    "mask ignores num_tokens": (
        3,
        [("return F.concat([cached, causal], axis=-1)", "return causal")],
        step_03.IGNORES_NUM_TOKENS,
    ),
    "mask swapped": (
        3,
        [
            (
                "num_lower=None, num_upper=0, exclude=True",
                "num_lower=None, num_upper=0, exclude=False",
            )
        ],
        step_03.SWAPPED,
    ),
    "mask transposed": (
        3,
        [
            (
                "num_lower=None, num_upper=0, exclude=True",
                "num_lower=0, num_upper=None, exclude=True",
            )
        ],
        step_03.TRANSPOSED,
    ),
    "mask hides the diagonal": (
        3,
        [
            (
                "causal = F.band_part(hidden, num_lower=None, num_upper=0, exclude=True)",
                "causal = F.band_part(hidden, num_lower=None, num_upper=0, exclude=True) + "
                "F.band_part(hidden, num_lower=0, num_upper=0)",
            )
        ],
        # The first failure (one query) names both slips that give [[-inf]], this one included.
        f"two known mistakes give exactly these numbers:\n        - {step_03.SWAPPED}\n"
        f"        - {step_03.DIAGONAL_HIDDEN}",
    ),
    # step 4
    "no scale": (4, [(" / math.sqrt(self.head_dim)", "")], step_04.NO_SCALE),
    "scale by sqrt(n_embd)": (
        4,
        [("math.sqrt(self.head_dim)", "math.sqrt(self.embed_dim)")],
        step_04.SCALED_BY_N_EMBD,
    ),
    "scale by head_dim": (
        4,
        [("math.sqrt(self.head_dim)", "self.head_dim")],
        step_04.DIVIDED_BY_HEAD_DIM,
    ),
    "no mask": (
        4,
        [("scores = scores + causal_mask", "_ = scores + causal_mask")],
        step_04.NO_MASK,
    ),
    "mask after softmax": (
        4,
        [
            ("scores = scores + causal_mask", "mask = causal_mask"),
            (SOFTMAX, "weights = F.softmax(scores, axis=-1) + mask"),
        ],
        "NaN",
    ),
    "softmax over queries": (
        4,
        [(SOFTMAX, "weights = F.softmax(scores, axis=-2)")],
        step_04.SOFTMAX_OVER_QUERIES,
    ),
    "k, q, v order": (
        4,
        [(SPLIT, "key, query, value = F.split(qkv, [self.embed_dim] * 3, axis=-1)")],
        step_04.QKV_ORDER,
    ),
    "q, v, k order": (
        4,
        [(SPLIT, "query, value, key = F.split(qkv, [self.embed_dim] * 3, axis=-1)")],
        step_04.QKV_ORDER,
    ),
    "heads from the wrong axis": (
        4,
        [
            (
                "x = x.reshape([batch, seq_len, self.num_heads, self.head_dim])  # [B, S, H, D]\n"
                "        return x.transpose(1, 2)",
                "x = x.reshape([batch, seq_len, self.head_dim, self.num_heads])\n"
                "        return x.permute([0, 3, 1, 2])",
            )
        ],
        step_04.HEADS_FROM_WRONG_AXIS,
    ),
    "heads reshaped without transpose": (
        4,
        [
            (
                "x = x.reshape([batch, seq_len, self.num_heads, self.head_dim])  # [B, S, H, D]\n"
                "        return x.transpose(1, 2)",
                "return x.reshape([batch, self.num_heads, seq_len, self.head_dim])",
            )
        ],
        step_04.HEADS_RESHAPED_STRAIGHT,
    ),
    "merge without transpose": (
        4,
        [
            (
                "x = x.transpose(1, 2)  # [B, S, H, D]\n        return x.reshape([x.shape[0], x.shape[1], self.embed_dim])",
                "return x.reshape([x.shape[0], x.shape[2], self.embed_dim])",
            )
        ],
        step_04.HEADS_MERGED_WITHOUT_TRANSPOSE,
    ),
}


def assert_caught(
    folder, step: int, replacements, message: str | tuple[str, ...], *flags: str
) -> None:
    """Make the slip in the copy of the solutions; its check must fail plainly, with `message`
    (or every message of a tuple)."""
    messages = message if isinstance(message, tuple) else (message,)
    run_slip(folder, step, replacements, *flags).assert_plain_failure(*messages)


@pytest.mark.parametrize("slip", SLIPS.values(), ids=SLIPS.keys())
def test_slip_fails_with_its_hint(learner_copy, slip):
    step, replacements, message = slip
    assert_caught(learner_copy, step, replacements, message, "--eager-only")


def test_mask_shifted_in_step_3_is_named_from_step_4(learner_copy):
    mutate(learner_copy, 3, [("num_upper=0,", "num_upper=1,")])
    run = run_checks_here("4", "--dir", str(learner_copy), "--eager-only")
    run.assert_plain_failure(step_04.MASK_SHIFTED, "fix step 3 first")


BAND_PART_WITH_NUM_TOKENS = """
    total_length = Dim(sequence_length) + num_tokens
    mask = Tensor(float("-inf"), dtype=dtype, device=device)
    mask = F.broadcast_to(mask, shape=(sequence_length, total_length))
    return F.band_part(mask, num_lower=None, num_upper=num_tokens, exclude=True)
"""


def test_band_part_with_symbolic_num_tokens_gets_its_hint(learner_copy):
    """Right eagerly for int sizes, but F.band_part can't take a symbolic num_tokens when compiled."""
    solution = (learner_copy / "step_03.py").read_text()
    body = solution[solution.index('    hidden = Tensor(float("-inf")') :]
    mutate(
        learner_copy,
        3,
        [
            (body, BAND_PART_WITH_NUM_TOKENS),
            ("from max.graph import DimLike", "from max.graph import Dim, DimLike"),
        ],
    )
    run = run_checks_here("3", "--dir", str(learner_copy))
    run.assert_plain_failure(step_03.SYMBOLIC_NUM_TOKENS, "Step 3 is not done yet")
    assert run.output.count("FAIL") == 1, run.output  # the eager values are right


ATTN_RESIDUAL = "hidden_states = hidden_states + self.attn(self.ln_1(hidden_states))  # [B, S, E]"
MLP_RESIDUAL = "return hidden_states + self.mlp(self.ln_2(hidden_states))  # [B, S, E]"
POSITIONS = "positions = Tensor.arange(seq_len, dtype=DType.int64, device=input_ids.device)  # [S]"

SLIPS_5_TO_8 = {
    "eps ignored": (
        5,
        [("F.rsqrt(var + self.eps)", "F.rsqrt(var + 1e-12)")],
        step_05.OTHER_EPSILON,
    ),
    "eps outside sqrt": (
        5,
        [("(x32 - mean) * F.rsqrt(var + self.eps)", "(x32 - mean) / (F.sqrt(var) + self.eps)")],
        step_05.EPSILON_OUTSIDE_ROOT,
    ),
    "no bias": (
        5,
        [("+ self.bias.cast(DType.float32)", "+ 0 * self.bias.cast(DType.float32)")],
        step_05.NO_BIAS,
    ),
    "wrong axis": (
        5,
        [
            ("mean = x32.mean(axis=-1)", "mean = x32.mean(axis=-2)"),
            ("** 2).mean(axis=-1)", "** 2).mean(axis=-2)"),
        ],
        step_05.WRONG_AXIS,
    ),
    "post-norm": (
        6,
        [
            (ATTN_RESIDUAL, "hidden_states = self.ln_1(hidden_states + self.attn(hidden_states))"),
            (MLP_RESIDUAL, "return self.ln_2(hidden_states + self.mlp(hidden_states))"),
        ],
        step_06.POST_NORM,
    ),
    "missing attention residual": (
        6,
        [(ATTN_RESIDUAL, "hidden_states = self.attn(self.ln_1(hidden_states))")],
        step_06.NO_ATTENTION_RESIDUAL,
    ),
    "missing MLP residual": (
        6,
        [(MLP_RESIDUAL, "return self.mlp(self.ln_2(hidden_states))")],
        step_06.NO_MLP_RESIDUAL,
    ),
    "ln_1 used twice": (
        6,
        [(MLP_RESIDUAL, "return hidden_states + self.mlp(self.ln_1(hidden_states))")],
        step_06.LN_1_BEFORE_THE_MLP,
    ),
    "positions from 1": (
        7,
        [(POSITIONS, POSITIONS.replace("arange(seq_len,", "arange(1, seq_len + 1,"))],
        step_07.POSITIONS_FROM_1,
    ),
    "no positions": (
        7,
        [("self.wte(input_ids) + self.wpe(positions)", "self.wte(input_ids)")],
        step_07.NO_POSITIONS,
    ),
    "one block repeated": (
        7,
        [
            (
                "Sequential(*(GPT2Block(config) for _ in range(config.n_layer)))",
                "Sequential(*[GPT2Block(config)] * config.n_layer)",
            )
        ],
        f"h[0] and h[1] are the same GPT2Block object: {step_07.ONE_BLOCK_REPEATED}",
    ),
    "no ln_f": (
        7,
        [("return self.ln_f(hidden_states)", "return hidden_states")],
        step_07.NO_LN_F,
    ),
    "block slip named from step 7": (
        6,
        [(MLP_RESIDUAL, "return self.mlp(self.ln_2(hidden_states))")],
        None,
    ),
    "lm_head with bias": (
        8,
        [("config.vocab_size, bias=False)", "config.vocab_size, bias=True)")],
        "parameters HuggingFace's module does not: lm_head.bias",
    ),
    "logits before ln_f": (
        8,
        [
            (
                "hidden_states = self.transformer(input_ids)  # [B, S, E]",
                "hidden_states = self.transformer.h(self.transformer.wte(input_ids) + "
                "self.transformer.wpe(Tensor.arange(input_ids.shape[1], dtype=DType.int64, "
                "device=input_ids.device)))",
            ),
            (
                "from max.experimental.tensor import Tensor",
                "from max.dtype import DType\nfrom max.experimental.tensor import Tensor",
            ),
        ],
        step_08.LOGITS_BEFORE_LN_F,
    ),
    "probabilities returned": (
        8,
        [
            (
                "logits = self.lm_head(hidden_states)  # [B, S, V]",
                "logits = F.softmax(self.lm_head(hidden_states), axis=-1)",
            ),
            (
                "from max.experimental.nn import",
                "from max.experimental import functional as F\nfrom max.experimental.nn import",
            ),
        ],
        step_08.PROBABILITIES,
    ),
}


@pytest.mark.parametrize("slip", SLIPS_5_TO_8.values(), ids=SLIPS_5_TO_8.keys())
def test_slip_in_steps_5_to_8_fails_with_its_hint(learner_copy, slip):
    step, replacements, message = slip
    mutate(learner_copy, step, replacements)
    if message is None:  # a broken block, checked from step 7: the report names block h[0]
        run = run_checks_here("7", "--dir", str(learner_copy), "--eager-only")
        run.assert_plain_failure("first difference is in block h[0]", "fix step 6 first")
        return
    run = run_checks_here(str(step), "--dir", str(learner_copy), "--eager-only")
    run.assert_plain_failure(message, f"Step {step} is not done yet")


ENCODE = "ids = tokenizer.encode(text, max_length=max_length, truncation=max_length is not None)"
ARRAY = "np.array([ids], dtype=np.int64).reshape(1, -1)"
DECODE = "return tokenizer.decode(ids, skip_special_tokens=True)"

SLIPS_9 = {
    "no batch axis": ([(ARRAY, "np.array(ids, dtype=np.int64)")], step_09.NO_BATCH_AXIS),
    "max_length ignored": ([(ENCODE, "ids = tokenizer.encode(text)")], step_09.MAX_LENGTH_IGNORED),
    "keeps the last tokens": (
        [
            (
                ENCODE,
                "ids = tokenizer.encode(text)\n    ids = ids[-max_length:] if max_length else ids",
            )
        ],
        step_09.KEEPS_THE_LAST,
    ),
    "end of text prepended": (
        [(ENCODE, ENCODE.replace("ids = tokenizer.encode(", "ids = [50256] + tokenizer.encode("))],
        step_09.EXTRA_ID.format(where="start", extra=50256, name=" (<|endoftext|>)"),
    ),
    "int32 ids": ([(ARRAY, ARRAY.replace("int64", "int32"))], "expected dtype int64, got int32"),
    "special tokens kept": (
        [(DECODE, "return tokenizer.decode(ids)")],
        step_09.SPECIAL_TOKENS_KEPT,
    ),
    "only [1, n] decoded": (
        [
            (
                "ids = token_ids.to(CPU()).to_numpy().reshape(-1).tolist()",
                "ids = token_ids.to(CPU()).to_numpy()[0].tolist()",
            )
        ],
        "decode_tokens([n] ids",
    ),
}


@pytest.mark.parametrize("slip", SLIPS_9.values(), ids=SLIPS_9.keys())
def test_slip_in_step_9_fails_with_its_message(learner_copy, slip):
    assert_caught(learner_copy, 9, *slip)


RETURN = "return prompt + decode_tokens(Tensor.from_dlpack(np.array(generated, dtype=np.int64)), tokenizer)"
SCALE = "scaled = logits.astype(np.float64) / temperature"
PROBS = "probs = np.exp(scaled - scaled.max())  # subtract the max so exp can't overflow"

SLIPS_10 = {
    # The prompt left out: tests/test_messages.py runs it, and asserts it is the only message.
    "prompt twice": (
        [(RETURN, RETURN.replace("np.array(generated", "np.array(ids + generated"))],
        step_10.PROMPT_TWICE,
    ),
    "temperature multiplied": (
        [(SCALE, SCALE.replace("/ temperature", "* temperature"))],
        step_10.TEMPERATURE_NOT_DIVIDED,
    ),
    "temperature ignored": (
        [(SCALE, "scaled = logits.astype(np.float64)")],
        "softmax(logits / 1.6)",
    ),
    "sampling from logits": (
        [("p=probs / probs.sum()", "p=scaled / scaled.sum()")],
        "raised ValueError",
    ),
    "context overflow": (
        [("(ids + generated)[-tokenizer.model_max_length:]", "(ids + generated)")],
        "has only 24 positions",
    ),
    "no stop at end of text": (
        [("        if generated[-1] == tokenizer.eos_token_id:\n            break\n", "")],
        step_10.NO_STOP_AT_END_OF_TEXT,
    ),
    "on_text ignored": (
        [("        if on_text is not None:\n", "        if False:\n")],
        "passed [] to on_text",
    ),
    "on_text at the end": (
        [
            ("        if on_text is not None:\n", "        if False:\n"),
            (
                "    return prompt + decode_tokens(",
                "    if on_text is not None:\n        on_text(decode_tokens(Tensor.from_dlpack("
                "np.array(generated, dtype=np.int64)), tokenizer))\n"
                "    return prompt + decode_tokens(",
            ),
        ],
        "on_text was called after model calls [3]",
    ),
    "seed ignored": (
        [("np.random.default_rng(seed)", "np.random.default_rng()")],
        "Two runs with seed=7",
    ),
    "temperature on the probabilities": (
        [
            (SCALE, "scaled = logits.astype(np.float64)"),
            (PROBS, PROBS + "\n    probs = (probs / probs.sum()) ** (1 / temperature)"),
        ],
        step_10.POWER_UNDERFLOWS,
    ),
    "top-k keeps k + 1": (
        [("np.sort(logits)[-min(k, len(logits))]", "np.sort(logits)[-min(k + 1, len(logits))]")],
        step_10.TOP_K_OFF_BY_ONE.format(finite=41, k=40, more="one more"),
    ),
    "top-k after the softmax": (
        [
            (
                "    if top_k is not None:\n        scaled = top_k_filter(scaled, top_k)\n",
                "",
            ),
            (
                "    return int(rng.choice(len(probs), p=probs / probs.sum()))",
                "    probs = probs / probs.sum()\n    if top_k is not None:\n"
                "        probs[np.argsort(probs)[:-top_k]] = 0\n"
                "    return int(rng.choice(len(probs), p=probs))",
            ),
        ],
        step_10.TOP_K_AFTER_SOFTMAX,
    ),
}


@pytest.mark.parametrize("slip", SLIPS_10.values(), ids=SLIPS_10.keys())
def test_slip_in_step_10_fails_with_its_message(learner_copy, slip):
    assert_caught(learner_copy, 10, *slip)


TRANSPOSE = "key: (value.T if key in conv1d else value).contiguous()"

SLIPS_11 = {
    "no transpose": ([(TRANSPOSE, "key: value.contiguous()")], step_11.SHAPE_DOES_NOT_FIT),
    "lm_head transposed too": (
        [("    state = {\n", '    conv1d.add("lm_head.weight")\n    state = {\n')],
        "lm_head.weight",
    ),
    "square attn.c_proj forgotten": (
        [
            (
                "    state = {\n",
                '    conv1d = {k for k in conv1d if not k.endswith("attn.c_proj.weight")}\n'
                "    state = {\n",
            )
        ],
        step_11.NOT_TRANSPOSED.format(name="transformer.h.0.attn.c_proj.weight", layer="c_proj"),
    ),
    "c_fc forgotten": (
        [('CONV1D_LAYERS = ("c_attn", "c_proj", "c_fc")', 'CONV1D_LAYERS = ("c_attn", "c_proj")')],
        "c_fc.weight",
    ),
    "load, then transpose": (
        [
            (TRANSPOSE, "key: value.contiguous()"),
            (
                "    max_model.load_state_dict(state, auto_cast=True)",
                "    max_model.load_state_dict(state, auto_cast=True)\n"
                "    for name, child in max_model.descendants:\n"
                "        if f'{name}.weight' in conv1d:\n"
                "            child.weight = child.weight.T",
            ),
        ],
        "c_attn.weight",
    ),
    "own command line in __main__": (
        [
            (
                'if __name__ == "__main__":\n    sys.exit(main())',
                'if __name__ == "__main__":\n    run_model(sys.argv[1], None, 20, 0.8, False, None)',
            )
        ],
        fixed_parts(step_11.MAIN_NOT_CALLED),
    ),
    "context not set": (
        [("    tokenizer.model_max_length = hf.n_positions\n", "")],
        fixed_parts(step_11.CONTEXT_NOT_SET),
    ),
    "config not returned": (  # the extensions build through build_model and need it
        [("tokenizer, device, config\n", "tokenizer, device\n")],
        fixed_parts(step_11.BUILD_MODEL_RETURNS),
    ),
}


@pytest.mark.parametrize("slip", SLIPS_11.values(), ids=SLIPS_11.keys())
def test_slip_in_step_11_fails_with_its_message(learner_copy, slip):
    assert_caught(learner_copy, 11, *slip)


SLIPS_KV = {
    "cache not appended": (
        [
            (
                "        key = F.concat([past_key, key], axis=2)  # [B, H, N + S, D]\n"
                "        value = F.concat([past_value, value], axis=2)\n",
                "",
            )
        ],
        kv.FIRST_CALL_FAILED,
    ),
    "new keys before the cached ones": (
        [
            (
                "        key = F.concat([past_key, key], axis=2)  # [B, H, N + S, D]\n"
                "        value = F.concat([past_value, value], axis=2)\n",
                "        key = F.concat([key, past_key], axis=2)\n"
                "        value = F.concat([value, past_value], axis=2)\n",
            )
        ],
        kv.NEW_BEFORE_CACHED,
    ),
    "mask ignores the cached length": (
        [("causal_mask(seq_len, cached,", "causal_mask(seq_len, 0,")],
        (
            kv.SEVERAL_AFTER_A_CACHE_FAILED,
            # MAX's error, cut after its cause, not at "Failed to create op 'AddOp': Inputs:"
            "Failed to create op 'AddOp': Input lhs (shape [2, 4, 3, 10])",
            "are neither equivalent nor broadcastable",
        ),
    ),
    "whole window every call": (
        [
            (
                "        if ids[: len(self.seen)] != self.seen or len(ids) <= len(self.seen):",
                "        if True:",
            )
        ],
        fixed_parts(kv_cache.WHOLE_WINDOW_FED),
    ),
    # positions restarting at 0: tests/test_messages.py, which also holds the text check's hint
}


@pytest.mark.parametrize("slip", SLIPS_KV.values(), ids=SLIPS_KV.keys())
def test_slip_in_the_kv_cache_fails_with_its_message(learner_copy, slip):
    assert_caught(learner_copy, harness.KV_CACHE, *slip, "--eager-only")


# The loss chapter: each mistake, made in the solution's code, through the real check (eagerly).
# Every named mistake is also made in numpy against the check's words: tests/test_loss_slips.py
# (the bfloat16 result of an uncast log-softmax too, with MAX's own dtype: no compile needed).
SLIPS_LOSS = {
    "log of softmax": (
        [("F.logsoftmax(predictions, axis=-1)", "F.log(F.softmax(predictions, axis=-1))")],
        loss.UNDERFLOW,
    ),
    "padding counted": (
        [("counted = mask[:, :-1] * mask[:, 1:]", "counted = np.ones_like(values)")],
        loss.PADDING_COUNTED,
    ),
}


@pytest.mark.parametrize("slip", SLIPS_LOSS.values(), ids=SLIPS_LOSS.keys())
def test_slip_in_the_loss_chapter_fails_with_its_message(learner_copy, slip):
    assert_caught(learner_copy, harness.parse_step("loss"), *slip, "--eager-only")


SLIPS_SERVE = {
    "every step replays the request": (
        [
            (
                "if cache is None or ids[:len(ids_seen)] != ids_seen or len(ids) <= len(ids_seen):",
                "if True:",
            )
        ],
        serve.PROMPT_FED_ONCE,
    ),
    "one cache for every request": (
        [
            ("self.caches.get(request_id, ([], None))", "self.caches.get(0, ([], None))"),
            ("self.caches[request_id] = (ids, ", "self.caches[0] = (ids, "),
        ],
        serve.CACHE_LOST,
    ),
    "the grown cache kept with its padding": (
        [("[grown[row][:, slots] for grown in present]", "[grown[row] for grown in present]")],
        serve.OWN_SLOTS_KEPT,
    ),
    "only the first request's row": (
        [("Buffer.from_numpy(rows)", "Buffer.from_numpy(rows[:1])")],
        serve.ONE_ROW_PER_REQUEST,
    ),
    "release keeps the cache": (
        [("        self.caches.pop(request_id, None)\n", "        pass\n")],
        serve.RELEASE_KEEPS_THE_CACHE,
    ),
}


@pytest.mark.parametrize("slip", SLIPS_SERVE.values(), ids=SLIPS_SERVE.keys())
def test_slip_in_serving_fails_with_its_message(learner_copy, slip):
    # Not --eager-only: these slips leave the batched model's graph as it is, so it comes from
    # MAX's cache, and the compiled model runs the check in a third of the eager one's time.
    assert_caught(learner_copy, harness.SERVING, *slip)


# Slips in align(), the serving chapter's numpy part: its check runs in-process on the mutated
# function alone (no MAX, no subprocess), as `pixi run check-serve` reports it.
SLIPS_ALIGN = {
    "positions not per row": (
        [
            (
                "np.maximum(np.array(cached)[:, None] + step, 0)",
                "np.maximum(longest_cache + step, 0)",
            )
        ],
        align.POSITIONS_NOT_PER_ROW,
    ),
    "padding counted as positions": (
        [
            (
                "step = np.arange(longest_new)[None, :] - padding[:, None]",
                "step = np.arange(longest_new)[None, :]",
            )
        ],
        align.PADDING_COUNTED,
    ),
    "one mask for every row": (
        [
            ("keys >= longest_cache - cached[row]", "keys >= longest_cache - cached[0]"),
            ("new_key >= padding[row]", "new_key >= padding[0]"),
        ],
        align.ONE_MASK_FOR_EVERY_ROW,
    ),
    "padding attended to": (
        [
            (
                "its_cache = (keys >= longest_cache - cached[row]) & (keys < longest_cache)",
                "its_cache = keys < longest_cache",
            )
        ],
        align.PADDING_ATTENDED_TO,
    ),
    "a padded query sees nothing": (
        [(" | (new_key == query)", "")],
        align.PADDED_QUERY_SEES_NOTHING,
    ),
}


def from_solution(name: str, replacements: list[tuple[str, str]], *imports: str):
    """`name` (a function or class) from solutions/ext_serve.py with `replacements` made, defined
    on its own with the module's imports from `imports` (module names): nothing else runs."""
    import ast

    text = (ROOT / "solutions" / "ext_serve.py").read_text()
    for old, new in replacements:
        assert old in text, f"{old!r} is no longer in solutions/ext_serve.py: update the test"
        text = text.replace(old, new)
    tree = ast.parse(text)
    nodes = [
        node
        for node in tree.body
        if getattr(node, "name", None) == name
        or (isinstance(node, ast.Import) and {a.name for a in node.names} & set(imports))
        or (isinstance(node, ast.ImportFrom) and node.module in imports)
    ]
    namespace: dict = {}
    exec(compile(ast.Module(nodes, []), "ext_serve.py", "exec"), namespace)
    return namespace[name]


def solution_align(replacements: list[tuple[str, str]]):
    return from_solution("align", replacements, "numpy")


@pytest.mark.fast
def test_the_solutions_align_passes_its_check():
    from checks.serve_align import align_problem

    assert align_problem(solution_align([])) is None


@pytest.mark.fast
@pytest.mark.parametrize("slip", SLIPS_ALIGN.values(), ids=SLIPS_ALIGN.keys())
def test_slip_in_align_is_named(slip):
    from checks.serve_align import align_problem

    replacements, message = slip
    problem = align_problem(solution_align(replacements))
    assert problem is not None and message in problem, problem


# Slips in GPT2ArchConfig, checked in-process on the mutated class alone (it imports MAX's
# pipeline interfaces, but nothing runs MAX).
SLIPS_ARCH_CONFIG = {
    "head width is n_embd": (
        [
            (
                "return self.huggingface_config.n_embd // self.huggingface_config.n_head",
                "return self.huggingface_config.n_embd",
            )
        ],
        "GPT2ArchConfig.head_dim is 48",
    ),
    "--max-length not capped": (
        [
            (
                "return min(model_config.max_length or limit, limit)",
                "return model_config.max_length or limit",
            )
        ],
        serve.MAX_LENGTH_NOT_CAPPED,
    ),
}
ARCH_CONFIG_IMPORTS = ("dataclasses", "typing", "max.pipelines.lib.interfaces.arch_config")


@pytest.mark.parametrize("slip", SLIPS_ARCH_CONFIG.values(), ids=SLIPS_ARCH_CONFIG.keys())
def test_slip_in_the_arch_config_is_named(slip):
    from checks.test_ext_serve import MAX_LENGTHS, max_seq_len_problem, sizes_problems

    replacements, message = slip
    config_class = from_solution("GPT2ArchConfig", replacements, *ARCH_CONFIG_IMPORTS)
    problems = sizes_problems(config_class) + [
        max_seq_len_problem(config_class, *case) for case in MAX_LENGTHS.values()
    ]
    named = [problem for problem in problems if problem and message in problem]
    assert named, problems
    solution = from_solution("GPT2ArchConfig", [], *ARCH_CONFIG_IMPORTS)
    assert sizes_problems(solution) == []
    assert [max_seq_len_problem(solution, *case) for case in MAX_LENGTHS.values()] == [None] * 3


SLIPS_MOJO = {
    "no scalar loop for the leftover": (
        [("    while i < k:\n        total += a[i] * b[i]\n        i += 1\n", "")],
        fixed_parts(mojo.LEFTOVER_MISSING),
    ),
    "the leftover loop starts at 0": (
        [
            (
                "    var total = (acc0 + acc1).reduce_add()\n",
                "    var total = (acc0 + acc1).reduce_add()\n    i = 0\n",
            )
        ],
        fixed_parts(mojo.LEFTOVER_TWICE),
    ),
    "the rows split with n // blocks": (
        [
            (
                "range(worker * n // blocks, (worker + 1) * n // blocks)",
                "range(worker * (n // blocks), (worker + 1) * (n // blocks))",
            )
        ],
        "n // blocks leaves",
    ),
    "the kernel does not compile": (
        [("    var total = (acc0 + acc1).reduce_add()", "    total = (acc0 + acc1).reduce_add(")],
        "kernels/gemv.mojo does not compile: gemv.mojo line",
    ),
}


@pytest.mark.parametrize("slip", SLIPS_MOJO.values(), ids=SLIPS_MOJO.keys())
def test_slip_in_the_mojo_kernel_fails_with_its_message(learner_copy, slip):
    replacements, message = slip
    mutate(learner_copy, "kernels/gemv.mojo", replacements)
    run = run_checks("mojo", "--dir", str(learner_copy), "--eager-only")
    messages = message if isinstance(message, tuple) else (message,)
    run.assert_plain_failure("The Mojo extension is not done yet", *messages)


def test_the_untouched_kernel_under_a_finished_ext_mojo_py_is_named(learner_copy):
    (learner_copy / "kernels" / "gemv.mojo").write_text(
        (ROOT / "steps" / "kernels" / "gemv.mojo").read_text()
    )
    run = run_checks("mojo", "--dir", str(learner_copy), "--eager-only")
    run.assert_plain_failure(mojo.SKELETON_ZEROS.format(simd=3, split=5))


# The bfloat16 kernel's slips (TODOs 7-9): accumulating in bfloat16, and a file of the kernels
# folder that does not compile (every file is one package). Its other slips are the float32
# kernel's, found by the same code (slips(), tested above).
SLIPS_MOJO_BF16 = {
    "bfloat16 accumulators": (
        [
            (
                "    var acc0 = SIMD[DType.float32, width](0)\n"
                "    var acc1 = SIMD[DType.float32, width](0)\n",
                "    var acc0 = SIMD[DType.bfloat16, width](0)\n"
                "    var acc1 = SIMD[DType.bfloat16, width](0)\n",
            ),
            (".cast[DType.float32]()\n        var b0", "\n        var b0"),
            (".cast[DType.float32]()\n        var a1", "\n        var a1"),
            (".cast[DType.float32]()\n        var b1", "\n        var b1"),
            (".cast[DType.float32]()\n        acc0", "\n        acc0"),
            (
                "    var total = (acc0 + acc1).reduce_add()\n",
                "    var sum = (acc0 + acc1).reduce_add()\n",
            ),
            (
                "    while i < k:\n        total += a[i].cast[DType.float32]() * b[i].cast[DType.float32]()\n"
                "        i += 1\n    return total\n",
                "    while i < k:\n        sum += a[i] * b[i]\n        i += 1\n"
                "    return sum.cast[DType.float32]()\n",
            ),
        ],
        mojo.BFLOAT16_ACCUMULATORS,
    ),
    "the bfloat16 kernel does not compile": (
        [("    var total = (acc0 + acc1).reduce_add()", "    total = (acc0 + acc1).reduce_add(")],
        "kernels/gemv_bf16.mojo does not compile: gemv_bf16.mojo line",
    ),
}


@pytest.mark.parametrize("slip", SLIPS_MOJO_BF16.values(), ids=SLIPS_MOJO_BF16.keys())
def test_slip_in_the_bfloat16_kernel_fails_with_its_message(learner_copy, slip):
    replacements, message = slip
    mutate(learner_copy, "kernels/gemv_bf16.mojo", replacements)
    run = run_checks("mojo", "--dir", str(learner_copy), "--eager-only")
    run.assert_plain_failure("The Mojo extension is not done yet", message)


def test_the_optional_bfloat16_part_not_started_passes_with_its_checks_skipped(learner_copy):
    """The bfloat16 kernel is the chapter's optional second page: with gemv_bf16() and its kernel
    file still the skeleton's, the float32 part passes on its own and says what it skipped."""
    from checks.test_ext_mojo import BF16_NOT_STARTED

    skeleton = (ROOT / "steps" / "ext_mojo.py").read_text()
    untouched = skeleton[skeleton.index("def gemv_bf16():") : skeleton.index("def product(")]
    solution = (learner_copy / "ext_mojo.py").read_text()
    finished = solution[solution.index("def gemv_bf16():") : solution.index("def product(")]
    mutate(learner_copy, "ext_mojo", [(finished, untouched)])
    kernel = "kernels/gemv_bf16.mojo"
    (learner_copy / kernel).write_text((ROOT / "steps" / kernel).read_text())
    run = run_checks("mojo", "--dir", str(learner_copy), "--eager-only")
    assert run.code == 0 and "The Mojo extension passes" in run.output, run.output
    assert run.output.count(BF16_NOT_STARTED) == 4, run.output  # the 4 shapes; the rest compile
