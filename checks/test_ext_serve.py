"""The serving extension's checks: the learner's code driven as `max serve` drives it.

What `max serve` asks of the learner's code, driven as the server drives
it (real TextContexts, a batch whose requests start and end at different times), without starting
a server. The server itself is tested end to end in tests/test_serve.py."""

from types import SimpleNamespace

import numpy as np
import pytest

from checks import harness
from checks import test_ext_kv_cache as kv
from checks.tensors import as_numpy
from checks.harness import SERVING, LearnerError, call, learner_attr, not_none
from checks.reference import SMALL
from checks.reference_cache import cached
from checks.tensors import torch_no_grad
from checks.report import may_compile

# Sizes that differ from each other, so a property that reads the wrong one shows.
SIZES = dict(n_layer=3, n_head=4, n_embd=48, n_positions=40, vocab_size=101)
# Requests as the server sees them: (the step at which it arrives, its prompt).
ARRIVALS = ((0, (3, 14, 15, 92, 65)), (0, (35, 89)), (3, (7, 7, 21)))


def gpt2_config(**sizes):
    from transformers import GPT2Config

    return GPT2Config(**{**SIZES, **sizes})


def arch_config():
    from max.dtype import DType

    return call(
        "GPT2ArchConfig(dtype=..., max_seq_len=..., huggingface_config=...)",
        learner_attr(SERVING, "GPT2ArchConfig"),
        dtype=DType.float32,
        max_seq_len=SIZES["n_positions"],
        huggingface_config=gpt2_config(),
    )


def test_arch_config_reads_the_sizes(record):
    """GPT2ArchConfig gives MAX the heads with keys and values, the head width and the layers"""
    config = arch_config()
    wanted = {
        "num_key_value_heads": (SIZES["n_head"], "n_head: each GPT-2 head has its own keys"),
        "head_dim": (SIZES["n_embd"] // SIZES["n_head"], "n_embd // n_head"),
        "num_layers": (SIZES["n_layer"], "n_layer"),
    }
    for name, (value, source) in wanted.items():
        what = f"GPT2ArchConfig.{name}"
        got = not_none(what, call(what, lambda name=name: getattr(config, name)))
        record.expect(
            got == value,
            f"{what} is {got!r} for a GPT-2 with {SIZES}; it should be {value} ({source}).",
        )


@pytest.mark.parametrize(
    "max_length, expected",
    [(None, 40), (16, 16), (100, 40)],
    ids=["no --max-length", "--max-length 16", "--max-length 100"],
)
def test_max_seq_len_is_bounded_by_the_positions(record, max_length, expected):
    """calculate_max_seq_len keeps --max-length within n_positions (40 here)"""
    what = f"GPT2ArchConfig.calculate_max_seq_len(config with n_positions=40, {max_length=})"
    got = call(
        what,
        learner_attr(SERVING, "GPT2ArchConfig").calculate_max_seq_len,
        gpt2_config(),
        SimpleNamespace(max_length=max_length),
    )
    not_none(what, got)
    record.expect(
        got == expected,
        f"{what} gave {got!r}; it should be {expected}: the user's --max-length when given, but "
        "never more than n_positions (wpe has no row for a later position).",
    )


def greedy_ids(prompt: tuple[int, ...]) -> list[int]:
    """HuggingFace generate()'s greedy ids on the KV check's model (the same weights)."""

    def build():
        torch = torch_no_grad()
        out = kv.hf_model_of_reference().generate(
            torch.tensor([prompt]),
            do_sample=False,
            max_new_tokens=kv.NEW_TOKENS,
            eos_token_id=kv.EOS,
            pad_token_id=kv.EOS,
        )
        return {"ids": out[0, len(prompt) :].tolist()}

    return cached("serve_greedy", (SMALL, prompt, kv.NEW_TOKENS), build)["ids"]


class Spy:
    """The model as the pipeline model sees it, counting the ids fed at each call."""

    def __init__(self, model):
        self.model, self.fed = model, []

    def __call__(self, input_ids, *cache):
        self.fed.append(int(input_ids.shape[1]))
        return self.model(input_ids, *cache)


def pipeline_model(request: pytest.FixtureRequest):
    """The learner's GPT2PipelineModel with the KV check's model in place of a served folder."""
    if harness.low_precision():
        pytest.skip("the serving chapter runs in float32, the encoding its architecture declares")
    from max.driver import CPU

    served = Spy(kv.compiled_model() if may_compile(request) else kv.learner_model())
    model = object.__new__(learner_attr(SERVING, "GPT2PipelineModel"))
    model.model, model.config, model.device = served, SMALL, harness.device()
    model.devices, model.caches = [CPU()], {}
    return model, served


def step(model, contexts) -> np.ndarray:
    """One step of the batch as the server runs it: prepare, execute, the [B, V] logits."""
    ids = ", ".join(str(len(context.tokens.all)) for context in contexts)
    what = f"GPT2PipelineModel.prepare_initial_token_inputs (requests of {ids} tokens)"
    inputs = not_none(what, call(what, model.prepare_initial_token_inputs, [list(contexts)]))
    what = f"GPT2PipelineModel.execute (requests of {ids} tokens)"
    outputs = not_none(what, call(what, model.execute, inputs))
    from max.driver import Buffer

    logits = getattr(outputs, "logits", None)
    if not isinstance(logits, Buffer):
        raise LearnerError(
            f"{what} returned {type(outputs).__name__} whose logits are {type(logits).__name__}: "
            "return ModelOutputs(logits=buffer, next_token_logits=buffer) with a max.driver "
            "Buffer (Buffer.from_numpy(...).to(self.devices[0]))."
        )
    logits = as_numpy(np.from_dlpack(logits), what)
    if logits.shape != (len(contexts), SMALL.vocab_size):
        raise LearnerError(
            f"{what} returned logits of shape {list(logits.shape)}; the server samples from "
            f"[B, V] = [{len(contexts)}, {SMALL.vocab_size}]: one row, the next token's, per "
            "request."
        )
    return logits


def serve(model, arrivals) -> dict[tuple[int, ...], list[int]]:
    """Greedy decoding of requests that arrive at their step and leave at EOS or NEW_TOKENS, as
    the server schedules them; each finished request is released."""
    from max.pipelines.context import TextContext, TokenBuffer

    running, generated, number = [], {}, 0
    waiting = list(arrivals)
    while waiting or running:
        while waiting and waiting[0][0] <= number:
            prompt = waiting.pop(0)[1]
            tokens = TokenBuffer(np.array(prompt, np.int64))
            running.append((prompt, TextContext(max_length=SMALL.n_positions, tokens=tokens)))
            generated[prompt] = []
        if running:
            logits = step(model, [context for _, context in running])
            for (prompt, context), row in zip(list(running), logits, strict=True):
                token = int(row.argmax())
                generated[prompt].append(token)
                context.update(token)
                if token == kv.EOS or len(generated[prompt]) == kv.NEW_TOKENS:
                    running.remove((prompt, context))
                    call("GPT2PipelineModel.release", model.release, context.request_id)
        number += 1
    return generated


def test_one_request_decodes_huggingface_greedy_tokens(record, request):
    """One request, decoded step by step: HuggingFace generate()'s greedy tokens, with the cache"""
    model, served = pipeline_model(request)
    prompt = ARRIVALS[0][1]
    got = serve(model, [(0, prompt)])[prompt]
    expected = greedy_ids(prompt)
    record.expect(
        got == expected,
        f"A request with prompt ids {list(prompt)} decoded greedily to {got}; HuggingFace "
        f"generate() gives {expected}. Check execute: the ids fed are those the request's "
        "cache has not seen, and the logits kept are the last position's.",
    )
    once = [len(prompt)] + [1] * (len(served.fed) - 1)
    record.expect(
        served.fed == once,
        f"execute fed the model {served.fed} ids per step; with the request's cache kept in "
        f"self.caches it feeds the prompt once, then one new id per step ({once}).",
    )


def test_requests_in_one_batch_keep_their_own_caches(record, request):
    """Three requests in one batch, one arriving later: each gets its own greedy tokens"""
    model, served = pipeline_model(request)
    got = serve(model, ARRIVALS)
    needed = sum(len(prompt) + len(got[prompt]) - 1 for _, prompt in ARRIVALS)
    record.expect(
        sum(served.fed) == needed,
        f"Serving three requests together, execute fed the model {sum(served.fed)} ids in all; "
        f"each request's prompt once and then its newest token are {needed}: a request's cache "
        "was lost between steps. Keep one cache per request in self.caches, keyed by its "
        "request_id.",
    )
    for _, prompt in ARRIVALS:
        expected = greedy_ids(prompt)
        record.expect(
            got[prompt] == expected,
            f"In a batch of requests, the one with prompt ids {list(prompt)} decoded to "
            f"{got[prompt]}; alone, HuggingFace generate() gives {expected}. Each request needs "
            "its own cache, found by its request_id, and row i of the logits is request i's.",
        )


def test_release_forgets_the_request(record, request):
    """release(request_id) forgets a finished request's cache"""
    model, _ = pipeline_model(request)
    serve(model, ARRIVALS[:2])
    left = len(model.caches)
    record.expect(
        left == 0,
        f"After two requests were served and released, self.caches still holds {left}: "
        "release(request_id) should drop the request's cache, or the server's memory grows "
        "with every request.",
    )
