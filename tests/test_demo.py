"""The reference demo (`pixi run gpt2-reference`) end to end on a small local model, and the learner's."""

import sys

import pytest

from tests.conftest import ROOT, run_command
from tests.test_pixi_tasks import command


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from checks.reference import save_small_model

    # Readable: its greedy text is printable ASCII, so a wrong token shows in the text.
    return str(save_small_model(tmp_path_factory.mktemp("demo") / "model", readable=True))


def huggingface_greedy_text(model_folder: str, prompt: str, new_tokens: int) -> str:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_folder)
    model = transformers.GPT2LMHeadModel.from_pretrained(model_folder).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            do_sample=False,
            max_new_tokens=new_tokens,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,  # the demo stops there too
        )
    return prompt + tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_the_readme_demo_prints_huggingfaces_greedy_text(small_model):
    """The README's offline command: `python3 solutions/step_11.py --model DIR ... --greedy`."""
    prompt, new_tokens = "Hello world", 6
    args = ["--model", small_model, "--prompt", prompt, "--greedy"]
    run = run_command(
        [sys.executable, str(ROOT / "solutions" / "step_11.py"), *args, "--max-new-tokens", "6"]
    )
    assert run.code == 0 and "Traceback" not in run.output, run.output
    expected = huggingface_greedy_text(small_model, prompt, new_tokens)
    assert len(expected) > len(prompt), "the model generated nothing: the test would be vacuous"
    assert run.stdout.splitlines()[-1] == expected, run.output


def test_interactive_and_awkward_input(small_model):
    long_prompt = (
        "Language models predict the next token. " * 20
    )  # longer than the 24-token context
    stdin = f"hello\n\nnaïve café 🙂\n{long_prompt}\nquit\n"
    run = run_command(
        command("gpt2-reference", "--model", small_model, "--max-new-tokens", "4", "--seed", "1"),
        stdin=stdin,
    )
    assert run.code == 0, run.output
    assert "Please type a prompt" in run.output and "Traceback" not in run.output
    run = run_command(command("gpt2-reference", "--model", small_model), stdin="")  # end of input
    assert run.code == 0 and "Traceback" not in run.output, run.output


def test_offline_without_a_cached_model_says_so_in_a_paragraph(tmp_path):
    run = run_command(
        command("gpt2-reference", "--prompt", "Hi"), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path)
    )
    assert run.code == 1, run.output
    assert "can't be reached" in run.output and "--model" in run.output
    assert "Traceback" not in run.output


def test_learner_demo_names_the_step_to_finish(small_model):
    run = run_command(command("gpt2", "--model", small_model, "--prompt", "Hi"))
    assert run.code == 1, run.output
    assert "Finish step" in run.output and "Traceback" not in run.output


def test_kv_cache_demo_gives_the_simple_models_text(small_model):
    """gpt2-reference runs the KV-cache model; --no-cache runs step 11's; greedy text is the same."""
    args = ["--model", small_model, "--prompt", "Hello world", "--greedy", "--max-new-tokens", "8"]
    cached = run_command(command("gpt2-reference", *args))
    simple = run_command(command("gpt2-reference", *args, "--no-cache"))
    assert cached.code == 0 and simple.code == 0, cached.output + simple.output
    # build_model names the class it compiles: the cache's, or step 8's
    assert "Compiling CachedGPT2LMHeadModel (" in cached.output, cached.output
    assert "Compiling MaxGPT2LMHeadModel (" in simple.output, simple.output
    assert cached.stdout.splitlines()[-1] == simple.stdout.splitlines()[-1]
    assert cached.stdout.splitlines()[-1].startswith("Hello world")
