"""The hints the checks choose, tested in-process on plain arrays and objects (no MAX, no
subprocess): each slip that issue 23 found misnamed or unnamed, with its learner's output written
out here independently of the check's own slip list."""

import numpy as np
import pytest

from checks import test_step_03 as step_03
from checks.compare import Slip, mismatch
from checks.learner import error_summary

pytestmark = pytest.mark.fast

SWAPPED = "visible and hidden are swapped"
DIAGONAL_HIDDEN = "query i must see key i + num_tokens itself"


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
        step_3_expected(seq_len, num_tokens),
        atol=0,
        rtol=0,
        slips=step_03.slips(seq_len, num_tokens, got),
    )
    assert message is not None
    return message


def step_3_expected(seq_len: int, num_tokens: int) -> np.ndarray:
    visible = np.tril(np.ones((seq_len, seq_len + num_tokens), bool), num_tokens)
    return np.where(visible, 0.0, -np.inf).astype(np.float32)


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


def test_step_3_first_failure_names_both_slips_that_give_its_numbers():
    """One query: [[-inf]] for both slips, so the first failure must not pick one of them."""
    first = next(iter(step_03.CASES.values()))
    assert first == (1, 0)
    assert np.array_equal(diagonal_hidden(*first), swapped(*first))
    message = step_3_message(diagonal_hidden(*first), *first)
    assert "two known mistakes give exactly these numbers" in message, message
    assert SWAPPED in message and DIAGONAL_HIDDEN in message, message


def test_a_closer_slip_still_wins_over_a_looser_one():
    expected = np.zeros(4, np.float32)
    got = np.full(4, 1.0, np.float32)
    slips = [Slip("loose", np.full(4, 1.00001, np.float32)), Slip("exact", got.copy())]
    message = mismatch("x", got, expected, atol=1e-5, rtol=1e-5, slips=slips)
    assert message.endswith("Hint: exact"), message


class _Tokenizer:
    """What extra_id_slips asks of a tokenizer (the real one imports torch: seconds)."""

    eos_token_id = 0

    def __len__(self):
        return 400

    def convert_ids_to_tokens(self, index):
        return f"tok{index}"


def test_step_9_extra_leading_end_of_text_is_named():
    from checks.test_step_09 import extra_id_slips

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
            slips=extra_id_slips(got, ids, tokenizer),
        )
        assert f"expected shape [1, {len(ids)}], got [1, {len(ids) + 1}]" in message, message
        assert f"the ids start with an extra id, {extra} (<|endoftext|>)" in message, message


def test_step_9_extra_id_at_the_end_and_the_empty_text():
    from checks.test_step_09 import extra_id_slips

    tokenizer = _Tokenizer()
    ids = [31, 7]
    (slip,) = extra_id_slips(np.array([[*ids, 8]]), ids, tokenizer)
    assert "the ids end with an extra id, 8 ('tok8')" in slip.hint
    (slip,) = extra_id_slips(np.array([[50256]]), [], tokenizer)
    assert "start with an extra id, 50256" in slip.hint
    assert extra_id_slips(np.array([ids]), ids, tokenizer) == []


class _Block:
    def __init__(self, layer=None):
        self.layer = layer or _Layer()

    @property
    def descendants(self):
        return [("mlp", self.layer)]


class _Layer:
    parameters = [("weight", object())]


def test_step_7_one_block_repeated_is_named():
    from checks.test_step_07 import shared_blocks

    block = _Block()
    message = shared_blocks([block] * 3)
    assert message.startswith("h[0] and h[1] are the same GPT2Block object"), message
    assert "[GPT2Block(config)] * n_layer" in message
    assert "last layer's weights" in message


def test_step_7_a_shared_layer_is_named_and_distinct_blocks_pass():
    from checks.test_step_07 import shared_blocks

    layer = _Layer()
    message = shared_blocks([_Block(layer), _Block(layer)])
    assert "h[0] and h[1] share one mlp layer" in message, message
    assert shared_blocks([_Block(), _Block(), _Block()]) is None


SOURCE = "import sys\n\n\ndef main(argv=None):\n    return 0\n\n\n{ending}"


@pytest.mark.parametrize(
    "ending, expected",
    [
        ('if __name__ == "__main__":\n    sys.exit(main())\n', None),
        ('if __name__ == "__main__":\n    main()\n', None),
        ("", 'has no `if __name__ == "__main__":` block'),
        (
            'if __name__ == "__main__":\n    import argparse\n    argparse.ArgumentParser()'
            ".parse_args()\n    run_main = 1\n",
            "block does not call main(): the check runs the command line through the given "
            "main(argv)",
        ),
    ],
)
def test_step_11_says_what_the_check_needs_of_the_script_ending(ending, expected):
    from checks.test_step_11 import script_ending_problem

    problem = script_ending_problem("step_11.py", SOURCE.format(ending=ending))
    if expected is None:
        assert problem is None
    else:
        assert expected in problem, problem
        assert "does nothing" not in problem or "has no" in problem


# The shape of MAX 26.7's op errors (max/graph/graph.py, _add_op_generated), with a long input.
ADD_OP_ERROR = (
    "Failed to create op 'AddOp':\nInputs:\n"
    "    args[0] = TensorValue(dtype=float32, shape=[Dim('batch'), 4, Dim('seqlen'), "
    "Dim('seqlen') + Dim('cached')], device=cpu:0)" + " " * 200 + "\n"
    "    args[1] = TensorValue(dtype=float32, shape=[Dim('seqlen'), Dim('seqlen')], device=cpu:0)\n"
    "\nDiagnostics:\n    error: [ShapeInferenceError] input shapes are not broadcast-compatible\n"
)


def test_a_max_op_error_keeps_its_cause_when_cut():
    summary = error_summary(ADD_OP_ERROR, limit=300)
    assert summary.startswith(
        "Failed to create op 'AddOp': error: [ShapeInferenceError] input shapes are not "
        "broadcast-compatible Inputs: args[0] = TensorValue("
    ), summary
    assert len(summary) <= 300
    assert summary.endswith(" …")
    assert not summary[:-2].endswith(("TensorValue(dty", "Inputs:"))


def test_a_short_error_is_kept_whole_and_a_long_one_cut_between_words():
    assert error_summary("boom\n  at line 3\n") == "boom at line 3"
    long = " ".join(["word"] * 200)
    summary = error_summary(long, limit=50)
    assert summary == " ".join(["word"] * 9) + " …", summary


def test_an_error_holding_a_traceback_keeps_its_words_only():
    text = "server failed to start\nTraceback (most recent call last):\n  File x\nValueError: y"
    assert error_summary(text) == "server failed to start"
    assert error_summary("Traceback (most recent call last):\n  File x\nValueError: y") == (
        "ValueError: y"
    )
