"""`max serve` on the reference solution, end to end: a small GPT-2 folder made offline, the server
started as the README says (pixi run serve), called with the `openai` client; the texts must be
HuggingFace's greedy ones. The server is always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from checks import serving
from checks.harness import child_env
from tests.conftest import ROOT, run_command

PROMPTS = ["Hello there", "The cat sat on", "x", "one two three"]
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    from checks.reference import save_small_model

    return save_small_model(tmp_path_factory.mktemp("served") / "tiny-gpt2", readable=True)


@pytest.fixture(scope="module")
def started(model_folder):
    """The URL and the gpt2_serve.py process of the module's one server."""
    with serving.started(model_folder, ROOT / "solutions") as running:
        yield running


@pytest.fixture(scope="module")
def server(started):
    return started[0]


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="not needed", timeout=300)


@pytest.fixture(scope="module")
def huggingface(model_folder):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    import torch

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


def test_on_a_gpu_the_command_turns_off_what_the_courses_model_can_not_use():
    """As Modular's GPT-2 book does on a GPU; the CPU never turns them on."""
    sys.path.insert(0, str(ROOT / "steps"))
    try:
        import gpt2_serve
    finally:
        sys.path.remove(str(ROOT / "steps"))
    flags = ["--no-enable-overlap-scheduler", "--no-device-graph-capture"]
    gpu = gpt2_serve.serve_command(ROOT / "steps", "gpt2", 8000, "gpu")
    assert gpu[-2:] == flags
    assert not set(flags) & set(gpt2_serve.serve_command(ROOT / "steps", "gpt2", 8000))


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


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_the_server_and_its_workers(started):
    """Last in this file: it stops the module's server. `kill` (SIGTERM) on gpt2_serve.py once
    the server answers: within 20 s nothing listens on its port and no process is left."""
    url, process = started
    port = int(url.rsplit(":", 1)[1])
    assert listening(port) and len(serving.session_processes(process.pid)) > 1
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    while (listening(port) or serving.session_processes(process.pid)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not listening(port), f"port {port} still answers 20 s after SIGTERM"
    assert serving.session_processes(process.pid) == [], "processes left after SIGTERM"


# A stand-in for max serve: a worker of its own, and Ctrl+C ends it but not its worker.
FAKE_SERVER = """
import signal, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(worker.pid, flush=True)
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_sighup_or_ctrl_c_stops_the_server_and_what_it_left(signum):
    """gpt2_serve.run_until_stopped on a stand-in server whose worker outlives it."""
    runner = (
        "import os, sys; sys.path.insert(0, 'steps'); import gpt2_serve; "
        f"sys.exit(gpt2_serve.run_until_stopped([sys.executable, '-c', {FAKE_SERVER!r}], "
        "dict(os.environ)))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", runner],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=child_env(),
    )
    try:
        worker = int(process.stdout.readline())
        process.send_signal(signum)
        assert process.wait(20) == 128 + signum
        time.sleep(0.5)
        assert serving.session_processes(process.pid) == [], f"worker {worker} left"
    finally:
        serving.stop(process)


STAND_IN_SERVER = """
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])


class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_bench_stopped_by_a_signal_stops_the_server_it_started(
    tmp_path, terminal_signals, signum
):
    """The server runs in a session of its own, so no signal to the bench reaches it: the bench's
    stop handlers turn SIGTERM and SIGHUP into KeyboardInterrupt, and `started` stops it."""
    from checks import runtime

    (tmp_path / "gpt2_serve.py").write_text(STAND_IN_SERVER)
    runtime.install_stop_handlers()
    with pytest.raises(KeyboardInterrupt):
        with serving.started(tmp_path / "model", tmp_path) as (url, process):
            assert serving.ready(url)
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises before this ends
    assert process.poll() is not None and serving.session_processes(process.pid) == []
