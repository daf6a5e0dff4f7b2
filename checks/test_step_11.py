"""Step 11: transfer_weights, build_model and run_model, on a small GPT-2 saved to a local folder."""

import ast
import contextlib
import copy
import functools
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from checks import harness
from checks.tensors import as_numpy
from checks.harness import LearnerError, call, learner_attr, not_none, steps_dir
from checks.reference import CheckConfig, max_state_dict, near_greedy_problem, save_small_model
from checks.modules import build_learner_module, load_weights
from checks.reference_cache import cached_folder
from checks.tensors import max_tensor, torch_no_grad
from checks.tokenizer import quiet_transformers

CONV1D = ("c_attn", "c_proj", "c_fc")

# The words of the known mistakes; the checks below decide which one the learner's code made.
SHAPE_DOES_NOT_FIT = (
    "that weight's shape does not fit. Transpose the Conv1D weights (c_attn, c_proj, c_fc) in the "
    "state dict before loading, and no other weight."
)
NOT_TRANSPOSED = (
    "{name} was not transposed: {layer} is a Conv1D layer in HuggingFace, whose weight is "
    "[in, out]; transpose it for Linear's [out, in]."
)
BUILD_MODEL_RETURNS = "{what} should return (compiled model, tokenizer, device, config)."
CONTEXT_NOT_SET = (
    "tokenizer.model_max_length is {got}; set it to the model's n_positions ({n_positions}) so "
    "generation keeps to the context."
)
MAIN_NOT_CALLED = (
    '{name}\'s `if __name__ == "__main__":` block does not call main(): the check runs the '
    "command line through the given main(argv), so keep your command line in main and end the "
    "file with {ending}, as given."
)


@functools.cache
def small_model_folder() -> Path:
    """The checks' small GPT-2, saved once per version of the code that makes it."""
    return cached_folder("small-model", save_small_model)


@functools.cache
def huggingface():
    from transformers import GPT2LMHeadModel, GPT2Tokenizer

    quiet_transformers()
    folder = small_model_folder()
    model = GPT2LMHeadModel.from_pretrained(folder).eval().requires_grad_(False)  # a reference
    return model, GPT2Tokenizer.from_pretrained(folder)


def test_transfer_weights_transposes_exactly_the_conv1d_weights(record):
    """transfer_weights loads every weight, transposing exactly the Conv1D ones (c_attn, c_proj, c_fc)"""
    hf_model, _ = huggingface()
    if harness.low_precision():  # weights already in the model's dtype, as build_model loads them
        hf_model = copy.deepcopy(hf_model).bfloat16()
    hf = hf_model.config
    cfg = CheckConfig(
        hf.vocab_size,
        hf.n_positions,
        hf.n_embd,
        hf.n_layer,
        hf.n_head,
        hf.n_inner,
        hf.layer_norm_epsilon,
    )
    model = build_learner_module("MaxGPT2LMHeadModel", learner_attr(8, "MaxGPT2LMHeadModel"), cfg)
    expected = max_state_dict(hf_model)
    # Start from zeros, so a weight transfer_weights never loads shows up as zeros.
    load_weights("MaxGPT2LMHeadModel", model, {k: np.zeros_like(v) for k, v in expected.items()})
    try:
        call(
            "transfer_weights(hf_model, max_model)",
            learner_attr(11, "transfer_weights"),
            hf_model,
            model,
        )
    except LearnerError as error:
        if "not assignable" not in str(error):
            raise
        raise LearnerError(f"{error}\n  Hint: {SHAPE_DOES_NOT_FIT}") from None
    params = {name: as_numpy(tensor, name) for name, tensor in model.parameters}
    if not any(params[name].any() for name in expected):
        record.expect(
            False,
            "Every weight is still zero after transfer_weights: load the state dict "
            "into the model (max_model.load_state_dict(state)).",
        )
        return
    for name, value in expected.items():
        got = params[name]
        if np.array_equal(got, value):
            continue
        layer = name.rsplit(".", 2)[-2]
        if not got.any():
            record.expect(
                False,
                f"{name} is still zeros: transfer_weights must load every weight of the "
                "state dict.",
            )
        elif layer in CONV1D and np.array_equal(got, value.T):
            record.expect(False, NOT_TRANSPOSED.format(name=name, layer=layer))
        elif got.shape == value.T.shape and np.array_equal(got, value.T):
            record.expect(
                False,
                f"{name} was transposed, but only the Conv1D layers (c_attn, c_proj, "
                "c_fc) need it.",
            )
        else:
            record.expect_close(f"{name} after transfer_weights", got, value, atol=0, rtol=0)


def build():
    what = f"build_model({str(small_model_folder())!r})"
    built = not_none(what, call(what, learner_attr(11, "build_model"), str(small_model_folder())))
    if not (isinstance(built, tuple) and len(built) == 4):
        raise LearnerError(BUILD_MODEL_RETURNS.format(what=what))
    # The extension chapters build through build_model and size their caches from its config.
    hf_config = huggingface()[0].config
    sizes = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
    wrong = [name for name in sizes if getattr(built[3], name, None) != getattr(hf_config, name)]
    if wrong:
        raise LearnerError(
            f"The config {what} returns has other sizes than the loaded model "
            f"({', '.join(wrong)}): build the GPT2Config from hf_model.config's fields."
        )
    return built


@pytest.mark.compiled
def test_build_model_gives_huggingface_logits_and_text_compiled(record):
    """build_model(folder) compiles a model whose logits and greedy text equal HuggingFace's"""
    with torch_no_grad() as torch:
        hf_model, hf_tokenizer = huggingface()
        model, tokenizer, device = built_model()
        record.expect(
            tokenizer.pad_token == tokenizer.eos_token,
            "Set tokenizer.pad_token = tokenizer.eos_token (GPT-2 has no padding token).",
        )
        record.expect(
            tokenizer.model_max_length == hf_model.config.n_positions,
            CONTEXT_NOT_SET.format(
                got=tokenizer.model_max_length, n_positions=hf_model.config.n_positions
            ),
        )
        for prompt in ("Hello world", "naïve café"):
            ids = hf_tokenizer.encode(prompt)
            got = call("the compiled model", model, max_tensor(np.array([ids], dtype=np.int64)))
            expected = hf_model(torch.tensor([ids])).logits.numpy()
            record.expect_close(f"Logits for {prompt!r}", got, expected, atol=2e-4, rtol=2e-4)
        generate_text = learner_attr(10, "generate_text")
        prompt = "Hello world"
        out = hf_model.generate(
            torch.tensor([hf_tokenizer.encode(prompt)]),
            do_sample=False,
            max_new_tokens=8,
            pad_token_id=hf_tokenizer.eos_token_id,
        )
        expected_text = hf_tokenizer.decode(out[0], skip_special_tokens=True)
        fed: list[list[int]] = []

        def spy(input_ids):
            fed.append(as_numpy(input_ids, "The ids given to the model")[0].tolist())
            return model(input_ids)

        text = call(
            "generate_text(build_model(...))",
            generate_text,
            spy,
            tokenizer,
            device,
            prompt,
            max_new_tokens=8,
            do_sample=False,
        )
        if harness.low_precision() and fed:  # the tokens up to the last call, within rounding
            problem = near_greedy_problem(hf_model, fed[-1], len(hf_tokenizer.encode(prompt)))
            record.expect(
                problem is None,
                f"Greedy text from your compiled bfloat16 model is {text!r}: {problem}",
            )
            return
        record.expect(
            text == expected_text,
            f"Greedy text from your compiled model is {text!r}; HuggingFace's is {expected_text!r}.",
        )


# What the checks after build_model's run on: they compile nothing of their own.
BUILT_MODEL = "the model build_model compiles, checked above"


@functools.cache
def built_in_full():
    return build()


def built_model():
    """(compiled model, tokenizer, device), built once for every check of this step."""
    return built_in_full()[:3]


@pytest.mark.compiled(runs_on=BUILT_MODEL)
def test_run_model_interactive_compiled(record):
    """run_model reads prompts: a prompt, an empty line and quit; and stops at end of input"""
    run_model = learner_attr(11, "run_model")
    step_11 = sys.modules["step_11"]
    built = built_in_full()
    original = step_11.build_model
    step_11.build_model = lambda *args, **kwargs: built  # compiled once, above
    try:
        for stdin, label in (
            ("hello\n\nquit\nnever\n", "hello, an empty line, quit, never"),
            ("", "end of input"),
        ):
            sys_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
            output = io.StringIO()
            try:
                with contextlib.redirect_stdout(output):
                    call(
                        f"run_model with `{label}` as input",
                        run_model,
                        str(small_model_folder()),
                        None,
                        3,
                        0.8,
                        True,
                        None,
                    )
            finally:
                sys.stdin = sys_stdin
            if stdin:
                record.expect(
                    "hello" in output.getvalue(),
                    f"run_model given `{label}` did not generate from 'hello': it printed "
                    f"{output.getvalue()[-200:]!r}.",
                )
                record.expect(
                    "never" not in output.getvalue(),
                    f"run_model given `{label}` went on after quit: it printed "
                    f"{output.getvalue()[-200:]!r}. Return when the prompt is quit, exit or q.",
                )
    finally:
        step_11.build_model = original


@pytest.mark.compiled(runs_on=BUILT_MODEL)
def test_demo_command_line_compiled(record):
    """python step_11.py --model FOLDER --prompt "Hello world" prints the prompt and its continuation"""
    script = steps_dir() / "step_11.py"
    argv = [
        "--model",
        str(small_model_folder()),
        "--greedy",
        "--max-new-tokens",
        "3",
        "--prompt",
        "Hello world",
    ]
    problem = script_ending_problem(script.name, script.read_text())
    if problem:
        raise LearnerError(problem)
    # main() in this process, on the model compiled above: the command line's code path without
    # a second Python importing MAX, torch and transformers and compiling again.
    step_11 = sys.modules["step_11"]
    built = built_in_full()  # compiled once, by the test above
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.stdin, step_11.build_model
    sys.stdin, step_11.build_model = io.StringIO(""), lambda *args, **kwargs: built
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = call(f"`python {script.name} --prompt ...`", learner_attr(11, "main"), argv)
    except SystemExit as exit:  # argparse, or a learner's sys.exit
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        sys.stdin, step_11.build_model = saved
    output = stdout.getvalue() + stderr.getvalue()
    record.expect(
        code == 0 and "Hello world" in stdout.getvalue() and "Traceback" not in output,
        f"`python {script.name} --prompt 'Hello world'` exited with {code} and "
        f"ended with {last_line(output)!r}; it should print the prompt and its continuation.",
    )


GIVEN_ENDING = '`if __name__ == "__main__": sys.exit(main())`'


def script_ending_problem(name: str, source: str) -> str | None:
    """What keeps `python NAME` from running the given main(argv), in words; None if nothing.

    The check runs the command line through main(argv), in this process, on the model it has
    compiled already: a `__main__` block with a command line of its own may work as a script,
    but it is not what the check can run."""
    blocks = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    ]
    if not blocks:
        return (
            f'{name} has no `if __name__ == "__main__":` block, so `python {name}` does '
            f"nothing: end the file with {GIVEN_ENDING}, as given."
        )
    if any(
        isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "main"
        for node in blocks
        for call in ast.walk(node)
    ):
        return None
    return MAIN_NOT_CALLED.format(name=name, ending=GIVEN_ENDING)


def last_line(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1] if lines else "(no output)"
