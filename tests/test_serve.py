"""`max serve` on the reference solution, end to end: a small GPT-2 folder made offline, the server
started as the README says (pixi run serve), called with the `openai` client; the texts must be
HuggingFace's greedy ones. The server is always stopped."""

from __future__ import annotations

import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from checks import serving
from tests.conftest import ROOT, run_command

PROMPTS = ["Hello there", "The cat sat on", "x", "one two three"]
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    from checks.reference import save_small_model

    return save_small_model(tmp_path_factory.mktemp("served") / "tiny-gpt2", readable=True)


@pytest.fixture(scope="module")
def server(model_folder):
    with serving.server(model_folder, ROOT / "solutions") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="not needed", timeout=300)


@pytest.fixture(scope="module")
def huggingface(model_folder):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from checks.reference import torch_no_grad

    torch = torch_no_grad()
    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    model = GPT2LMHeadModel.from_pretrained(model_folder).eval()

    def greedy(prompt: str, tokens: int = NEW_TOKENS) -> str:
        ids = torch.tensor([tokenizer.encode(prompt)])
        out = model.generate(ids, do_sample=False, max_new_tokens=tokens, pad_token_id=0)
        return tokenizer.decode(out[0, ids.shape[1] :]).replace("\ufffd", "")

    greedy.tokenizer = tokenizer
    return greedy


def complete(client, model_folder, prompt: str, **options) -> str:
    return client.completions.create(
        model=str(model_folder), prompt=prompt, max_tokens=NEW_TOKENS, temperature=0, **options
    )


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_completions_equal_huggingface_greedy(client, model_folder, huggingface, prompt):
    expected = huggingface(prompt)
    assert expected.strip(), "the test model should generate printable text"
    plain = complete(client, model_folder, prompt).choices[0].text
    streamed = "".join(
        chunk.choices[0].text for chunk in complete(client, model_folder, prompt, stream=True)
    )
    assert plain == expected, (prompt, plain, expected)
    assert streamed == expected, (prompt, streamed, expected)


def test_chat_uses_the_courses_template(client, model_folder, huggingface):
    messages = [{"role": "user", "content": "Hi"}]
    template = (ROOT / "steps" / "gpt2_chat.jinja").read_text()
    rendered = huggingface.tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    assert rendered == "User: Hi\nAssistant:"
    room = 24 - len(huggingface.tokenizer.encode(rendered))  # the small model has 24 positions
    assert room >= 3
    reply = client.chat.completions.create(
        model=str(model_folder), messages=messages, max_tokens=room, temperature=0
    )
    assert reply.choices[0].message.content == huggingface(rendered, room)


def test_concurrent_requests_equal_greedy_ones(client, model_folder, huggingface):
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        texts = list(pool.map(lambda p: complete(client, model_folder, p).choices[0].text, PROMPTS))
    assert texts == [huggingface(prompt) for prompt in PROMPTS]


def test_a_busy_port_or_a_missing_folder_is_one_sentence(model_folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        run = run_command(
            [sys.executable, "steps/gpt2_serve.py", "--model", str(model_folder)]
            + ["--port", str(port)],
            timeout=120,
        )
    run.assert_plain_failure(f"Port {port} is in use")
    assert len(run.output.strip().splitlines()) == 1, run.output
    run = run_command(
        [sys.executable, "steps/gpt2_serve.py", "--model", "./no-such-folder"], timeout=120
    )
    run.assert_plain_failure("There is no folder ./no-such-folder")


def test_the_untouched_skeleton_is_named_before_a_server_starts(model_folder):
    run = run_command(
        [sys.executable, "steps/gpt2_serve.py", "--model", str(model_folder)]
        + ["--port", str(serving.free_port())],
        timeout=120,
    )
    run.assert_plain_failure("steps/ext_serve.py can't serve yet", "pixi run check-serve")


def test_the_pages_client_example_prints_the_greedy_text(server, model_folder, huggingface):
    port = server.rsplit(":", 1)[1]
    run = run_command(
        [sys.executable, "steps/gpt2_client.py", "--model", str(model_folder), "--port", port]
        + ["--prompt", "Hello there"],
        timeout=300,
    )
    assert run.code == 0, run.output
    expected = huggingface("Hello there", 20)
    assert run.stdout.splitlines() == [expected, expected], run.output
