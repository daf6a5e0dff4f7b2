"""Starting and stopping `max serve` on the serving chapter's code (steps/ or solutions/).

For the bench's served streams and the repository's end-to-end test. The server is always stopped."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from checks.runtime import child_env
from checks.waiting import waiting

# A cold start compiles the KV-cache model and MAX's sampler: 4-6.5 min measured on 2 cores.
START_LIMIT_S = 900


class ServerDidNotStart(Exception):
    """The server exited or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    """Ctrl+C to the server (gpt2_serve.py passes it on to max serve and its workers), then a
    kill of anything left in its session."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)
    for pid in session_processes(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


@contextlib.contextmanager
def server(model: Path, steps_folder: Path) -> Iterator[str]:
    """`python STEPS_FOLDER/gpt2_serve.py --model MODEL` on a free port, as `pixi run serve`
    starts it; yields its URL once it answers."""
    with started(model, steps_folder) as (url, _):
        yield url


@contextlib.contextmanager
def started(model: Path, steps_folder: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The same server: yields its URL and the `gpt2_serve.py` process, the leader of a session
    of its own that holds `max serve` and its workers."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, str(steps_folder / "gpt2_serve.py"), "--model", str(model)]
            + ["--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(HF_HUB_OFFLINE="1"),
            start_new_session=True,  # its workers are stopped with it
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with waiting.announce("starting max serve (compiles the model the first time)"):
                deadline = time.monotonic() + START_LIMIT_S
                while not ready(url):
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise ServerDidNotStart(
                            f"max serve did not start; its log ends:\n{log.read()[-3000:]}"
                        )
                    time.sleep(1)
            yield url, process
        finally:
            stop(process)


def session_processes(session: int) -> list[int]:
    """The processes still alive in a session (Linux: read from /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != "Z":  # session id; not a zombie
                alive.append(int(stat.parent.name))
    return alive


def save_ids_as_words_model(hf_model: Any, folder: Path) -> Path:
    """`hf_model` saved with a tokenizer whose token i is the word "t{i}": a prompt of known ids,
    and served text that reads back as ids, for any vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    size = hf_model.config.vocab_size
    words = Tokenizer(models.WordLevel({f"t{i}": i for i in range(size)}, unk_token="t0"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        eos_token=f"t{size - 1}",
        model_max_length=hf_model.config.n_positions,
    )
    hf_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def ids_in(text: str) -> list[int]:
    return [int(number) for number in re.findall(r"t(\d+)", text)]


@dataclass
class Served:
    """The bench's model behind a running server: `stream(ids, n)` -> the n new greedy ids."""

    url: str
    model: str
    start_s: float

    def stream(self, prompt_ids: list[int], tokens: int) -> list[int]:
        """The greedy ids after `prompt_ids`, sent as the words "t3 t14 ..." and streamed back."""
        from openai import OpenAI

        client = OpenAI(base_url=f"{self.url}/v1", api_key="not needed", timeout=600)
        stream = client.completions.create(
            model=self.model,
            prompt=" ".join(f"t{i}" for i in prompt_ids),
            max_tokens=tokens,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},  # as the other rows: exactly `tokens` new tokens
        )
        return ids_in("".join(chunk.choices[0].text for chunk in stream))


@contextlib.contextmanager
def served(hf_model: Any, steps_folder: Path) -> Iterator[Served]:
    """The bench's model behind max serve, served by the serving chapter in `steps_folder`."""
    with tempfile.TemporaryDirectory() as folder:
        model = save_ids_as_words_model(hf_model, Path(folder) / "model")
        start = time.perf_counter()
        with server(model, steps_folder) as url:
            yield Served(url, str(model), time.perf_counter() - start)
