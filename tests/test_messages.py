"""Mistakes a learner made while trying the course, each named by its real cause (issue 13).

Most tests make one mistake in a copy of the solutions, run the check as a learner does, and
assert the message that names it and, where a misleading one was printed before, its absence.
Where only the hint's choice is in question, the learner's output is written out here in numpy
and judged in-process by the check's own comparison. The words are read from the checks' constants
(tests/test_hint_copies.py holds that no hint is copied here).
"""

import math

import numpy as np
import pytest

from checks import harness, modules, recorder
from checks import kv_reference as kv
from checks import test_step_02 as step_02
from checks import test_step_04 as step_04
from checks import test_step_05 as step_05
from checks import test_step_06 as step_06
from checks import test_step_10 as step_10
from tests.conftest import ROOT, run_slip

SPLIT_HEADS = (
    "x = x.reshape([batch, seq_len, self.num_heads, self.head_dim])  # [B, S, H, D]\n"
    "        return x.transpose(1, 2)"
)
MERGE_HEADS = (
    "x = x.transpose(1, 2)  # [B, S, H, D]\n"
    "        return x.reshape([x.shape[0], x.shape[1], self.embed_dim])"
)
ATTN_RESIDUAL = "hidden_states = hidden_states + self.attn(self.ln_1(hidden_states))  # [B, S, E]"
MLP_RESIDUAL = "return hidden_states + self.mlp(self.ln_2(hidden_states))  # [B, S, E]"
STREAMING = """            text = decode_tokens(Tensor.from_dlpack(np.array(generated, dtype=np.int64)), tokenizer)
            if not text.endswith("\\ufffd"):  # wait until a character's bytes are all there
                on_text(text[len(shown):])
                shown = text
"""


def test_prompt_left_out_is_the_only_thing_reported(learner_copy):
    """One mistake, one message: the other checks judge the new tokens, which are right."""
    run = run_slip(learner_copy, 10, [("return prompt + decode_tokens(", "return decode_tokens(")])
    assert step_10.PROMPT_MISSING in run.output, run.output
    assert step_10.TEMPERATURE_NOT_DIVIDED not in run.output, run.output
    assert "it should add exactly" not in run.output, run.output
    assert run.output.count("FAIL") == 2, run.output  # the two greedy prompts


def test_tokens_from_the_first_position_get_only_the_greedy_hint(learner_copy):
    """logits[0, 0] for logits[0, -1]: sampling at a low temperature misses as greedy does, and
    once told the learner to divide by the temperature, which the code does."""
    run = run_slip(learner_copy, 10, [("to_numpy()[0, -1]", "to_numpy()[0, 0]")])
    run.assert_plain_failure(step_10.CONTINUATION_DIFFERS)
    assert step_10.GREEDY_DIFFERS_TOO in run.output, run.output
    assert step_10.TEMPERATURE_NOT_DIVIDED not in run.output, run.output


def test_unbiased_variance_is_named_at_every_width():
    """Dividing by n - 1 is named in every case of step 5's check, width 768 too (it once read as
    "a different epsilon" there). In-process on the check's own inputs, with the learner's output
    written out here: the slip compiled a graph per width through the command line."""
    from checks.compare import mismatch

    for case in step_05.CASES.values():
        dim, eps = case[:2]
        ref = step_05.reference(*case)
        x = ref["x"].astype(np.float64)
        centered = x - x.mean(axis=-1, keepdims=True)
        unbiased = (centered * centered).sum(axis=-1, keepdims=True) / (dim - 1)
        got = centered / np.sqrt(unbiased + eps) * ref["state"]["weight"] + ref["state"]["bias"]
        message = mismatch(
            "LayerNorm output",
            got.astype(np.float32),
            ref["expected"],
            atol=1e-4,
            rtol=1e-4,
            slips=step_05.slips(ref, eps),
        )
        assert message is not None and message.endswith(f"Hint: {step_05.UNBIASED_VARIANCE}"), (
            case,
            message,
        )
        assert step_05.OTHER_EPSILON not in message, (case, message)


def gelu_exact(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


# Step 2's activations other than GPT-2's, each the MLP a learner writes with it, in numpy.
ACTIVATIONS = {
    "exact GELU": (gelu_exact, step_02.EXACT_GELU),
    "ReLU": (lambda x: np.maximum(x, 0.0), step_02.RELU),
}


@pytest.mark.parametrize("activation", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_step_2_other_activations_are_named_in_every_case(activation):
    """In-process on step 2's own inputs and weights (each slip compiled MAX's kernels for its
    activation through the command line, 30 s of a cold run, for a hint chosen in numpy)."""
    from checks.compare import mismatch

    function, hint = activation
    for cfg, batch, seq_len in step_02.CASES.values():
        ref = step_02.reference(cfg, batch, seq_len)
        state = {name: np.asarray(value, np.float64) for name, value in ref["state"].items()}
        inner = ref["x"] @ state["c_fc.weight"].T + state["c_fc.bias"]  # MAX's [out, in] layout
        got = function(inner) @ state["c_proj.weight"].T + state["c_proj.bias"]
        tolerance = 1e-5 * math.sqrt(cfg.n_embd / step_02.SMALL.n_embd)
        message = mismatch(
            "GPT2MLP output",
            got.astype(np.float32),
            ref["expected"],
            atol=tolerance,
            rtol=tolerance,
            slips=step_02.slips(cfg, ref["x"]),
        )
        assert message is not None and message.endswith(f"Hint: {hint}"), (cfg.n_embd, message)


def test_residual_added_to_the_normalized_input_is_named(learner_copy):
    run = run_slip(
        learner_copy,
        6,
        [
            (
                ATTN_RESIDUAL,
                "hidden_states = self.ln_1(hidden_states)\n"
                "        hidden_states = hidden_states + self.attn(hidden_states)",
            ),
            (
                MLP_RESIDUAL,
                "hidden_states = self.ln_2(hidden_states)\n"
                "        return hidden_states + self.mlp(hidden_states)",
            ),
        ],
        "--eager-only",
    )
    assert step_06.NORMALIZED_RESIDUAL in run.output, run.output


def test_heads_reshaped_straight_both_ways_are_named(learner_copy):
    run = run_slip(
        learner_copy,
        4,
        [
            (SPLIT_HEADS, "return x.reshape([batch, self.num_heads, seq_len, self.head_dim])"),
            (MERGE_HEADS, "return x.reshape([x.shape[0], x.shape[2], self.embed_dim])"),
        ],
        "--eager-only",
    )
    assert step_04.HEADS_RESHAPED_STRAIGHT_BOTH_WAYS in run.output, run.output


def test_positions_restarting_fail_the_text_check_too(learner_copy):
    run = run_slip(
        learner_copy,
        harness.KV_CACHE,
        [("Tensor.arange(cached, cached + seq_len,", "Tensor.arange(seq_len,")],
        "--eager-only",
    )
    assert "FAIL  generate_with_cache(do_sample=False) gives" in run.output, run.output
    text_failure = run.output[run.output.index("FAIL  generate_with_cache") :]
    assert kv.POSITIONS_RESTART in text_failure, run.output


def test_streaming_each_token_alone_splits_characters(learner_copy):
    run = run_slip(
        learner_copy,
        10,
        [
            (
                STREAMING,
                "            on_text(decode_tokens(Tensor.from_dlpack("
                "np.array(generated[-1:], dtype=np.int64)), tokenizer))\n",
            )
        ],
    )
    assert "on_text never receives half a character" in run.output, run.output
    assert step_10.HALF_CHARACTERS in run.output, run.output


def test_a_block_that_ignores_n_inner_fails(learner_copy):
    run = run_slip(
        learner_copy,
        6,
        [("inner_dim = config.n_inner or 4 * config.n_embd", "inner_dim = 4 * config.n_embd")],
        "--eager-only",
    )
    assert "n_inner = 40" in run.output and modules.MLP_WIDTH in run.output, run.output


ARANGE_MASK = """
    total_length = Dim(sequence_length) + num_tokens
    keys = Tensor.arange(total_length, dtype=DType.int64, device=device)
    queries = Tensor.arange(sequence_length, dtype=DType.int64, device=device)
    visible = F.unsqueeze(keys, 0) <= F.unsqueeze(queries, 1) + num_tokens  # [S, S+N]
    hidden = Tensor(float("-inf"), dtype=dtype, device=device)
    hidden = F.broadcast_to(hidden, shape=(sequence_length, total_length))
    zeros = Tensor(0.0, dtype=dtype, device=device)
    zeros = F.broadcast_to(zeros, shape=(sequence_length, total_length))
    return F.where(visible, zeros, hidden)
"""


def test_arange_where_mask_is_caught_at_step_3(learner_copy):
    """The trap measured on max 26.7: a mask from arange comparisons and F.where is right eagerly
    and wrong once a softmax follows it in a compiled graph. Caught where it is written; a later
    step's compiled check says the same (tests/test_recorder.py, on stand-ins)."""
    solution = (learner_copy / "step_03.py").read_text()
    body = solution[solution.index('    hidden = Tensor(float("-inf")') :]
    run = run_slip(
        learner_copy,
        3,
        [
            (body, ARANGE_MASK),
            ("from max.graph import DimLike", "from max.graph import Dim, DimLike"),
        ],
    )
    assert recorder.EAGER_ONLY_RIGHT in run.output, run.output
    assert run.output.count("FAIL") == 1, run.output  # the eager values are right


@pytest.mark.fast
def test_step_3_page_links_the_notes_on_broadcast_to_and_the_arange_mask():
    page = (ROOT / "docs" / "steps" / "03-causal-mask.md").read_text()
    assert "(../reference.md#broadcast-to)" in page and "(../reference.md#arange-where)" in page
    reference = (ROOT / "docs" / "reference.md").read_text()
    assert "a static shape (no dynamic" in reference and "does accept symbolic sizes" in reference
    assert "where a softmax follows it, as in attention" in reference
    assert "{ #broadcast-to }" in reference and "{ #arange-where }" in reference


@pytest.mark.fast
def test_step_11_page_shows_how_to_make_a_model_folder():
    page = (ROOT / "docs" / "steps" / "11-pretrained.md").read_text()
    assert "pixi run save-model my-small-gpt2" in page
    assert "python steps/step_11.py --model my-small-gpt2" in page
    tasks = (ROOT / "pixi.toml").read_text()
    assert 'save-model = "python -m checks save-model"' in tasks
