"""How the checker words a learner's errors, in-process (no MAX, no subprocess): MAX's op errors
cut after their cause, tracebacks dropped, step 11's script ending named."""

import pytest

from checks.learner import error_summary

pytestmark = pytest.mark.fast


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


# What MAX 26.7's compiler wrote to fd 2 for step 5's formula with bfloat16 statistics (the
# exception itself only says "Failed to compile the model").
BFLOAT16_LAYER_NORM_OUTPUT = (
    "error: invalid call to 'execute': value passed to 'epsilon' cannot be converted from "
    "'BFloat16' to 'Float32'\n"
    '            builtin_kernels.reductions.LayerNorm.execute[target = "cpu"](var___25, ...)\n'
)
COMPILE_FAILED = RuntimeError(
    "Failed to compile the model. Please file an issue, all models should be correct by "
    "construction and this error should have been caught during construction."
)


def test_a_failed_compile_is_named_from_the_compilers_own_words():
    from checks.learner import describe_compile_failure

    message = describe_compile_failure(
        "Compiling LayerNorm", COMPILE_FAILED, [BFLOAT16_LAYER_NORM_OUTPUT]
    )
    assert message.startswith("LayerNorm does not compile in bfloat16"), message
    assert "compute in float32 as step 5's page shows" in message
    other = describe_compile_failure(
        "Compiling GPT2Block", COMPILE_FAILED, ["note: x\nerror: something else broke\n"]
    )
    assert other == "Compiling GPT2Block failed in MAX's compiler: error: something else broke"
    silent = describe_compile_failure("Compiling GPT2Block", COMPILE_FAILED, [""])
    assert silent.startswith("Compiling GPT2Block failed in MAX's compiler: Failed to compile")


def test_what_native_code_writes_to_stderr_is_kept_and_passed_on_unless_a_compile_failed(capfd):
    import os

    from checks.learner import compiler_output_kept

    with compiler_output_kept() as kept:
        os.write(2, b"a warning\n")
    assert kept == ["a warning\n"] and capfd.readouterr().err == "a warning\n"
    with pytest.raises(RuntimeError), compiler_output_kept() as kept:
        os.write(2, BFLOAT16_LAYER_NORM_OUTPUT.encode())
        raise COMPILE_FAILED
    assert kept == [BFLOAT16_LAYER_NORM_OUTPUT] and capfd.readouterr().err == ""
