"""The serving extension's checks: the learner's code driven as `max serve` drives it.

What `max serve` asks of the learner's code, driven as the server drives it (real TextContexts, a batch whose requests start and end at different times, one forward per
step), without starting a server. The server itself is tested end to end in tests/test_serve.py."""

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from checks import harness
from checks import kv_reference as kv
from checks.tensors import as_numpy
from checks.harness import SERVING, LearnerError, call, compile_module, learner_attr, not_none
from checks.reference import SMALL
from checks.reference_cache import cached
from checks.modules import learner_module
from checks.tensors import torch_no_grad
from checks.report import may_compile
from checks.serve_align import align_problem

# Sizes that differ from each other, so a property that reads the wrong one shows.
SIZES = dict(n_layer=3, n_head=4, n_embd=48, n_positions=40, vocab_size=101)
# Requests as the server sees them: (the step at which it arrives, its prompt). The third arrives
# while the others decode: its prompt and their single tokens share a step, padded to one length.
ARRIVALS = ((0, (3, 14, 15, 92, 65)), (0, (35, 89)), (3, (7, 7, 21)))
BATCHED = "BatchedGPT2LMHeadModel"

# The words of the known mistakes; the checks below decide which one the learner's code made.
MAX_LENGTH_NOT_CAPPED = (
    "the user's --max-length when given, but never more than n_positions (wpe has no row for a "
    "later position)."
)
ONE_ROW_PER_REQUEST = "one row, the next token's, per request."
OWN_SLOTS_KEPT = (
    "it keeps only its own slots of the grown cache, the ones its mask let it see (the grown "
    "caches are padded to the batch's longest)."
)
PROMPT_FED_ONCE = (
    "with the request's cache kept in self.caches it feeds the prompt once, then one new id per "
    "step"
)
CACHE_LOST = (
    "more ids than the requests' caches have not seen: a request's cache was lost between steps. "
    "Keep one cache per request in self.caches, keyed by its request_id, and feed only the ids "
    "after it."
)
RELEASE_KEEPS_THE_CACHE = (
    "release(request_id) should drop the request's cache, or the server's memory grows with "
    "every request."
)


def gpt2_config(**sizes):
    from transformers import GPT2Config

    return GPT2Config(**{**SIZES, **sizes})


def arch_config(config_class):
    from max.dtype import DType

    return call(
        "GPT2ArchConfig(dtype=..., max_seq_len=..., huggingface_config=...)",
        config_class,
        dtype=DType.float32,
        max_seq_len=SIZES["n_positions"],
        huggingface_config=gpt2_config(),
    )


def sizes_problems(config_class) -> list[str]:
    """What GPT2ArchConfig gets wrong about the sizes, a sentence each (raises on a placeholder)."""
    config = arch_config(config_class)
    wanted = {
        "num_key_value_heads": (SIZES["n_head"], "n_head: each GPT-2 head has its own keys"),
        "head_dim": (SIZES["n_embd"] // SIZES["n_head"], "n_embd // n_head"),
        "num_layers": (SIZES["n_layer"], "n_layer"),
    }
    problems = []
    for name, (value, source) in wanted.items():
        what = f"GPT2ArchConfig.{name}"
        got = not_none(what, call(what, lambda name=name: getattr(config, name)))
        if got != value:
            problems.append(
                f"{what} is {got!r} for a GPT-2 with {SIZES}; it should be {value} ({source})."
            )
    return problems


def test_arch_config_reads_the_sizes(record):
    """GPT2ArchConfig gives MAX the heads with keys and values, the head width and the layers"""
    for problem in sizes_problems(learner_attr(SERVING, "GPT2ArchConfig")):
        record.expect(False, problem)


MAX_LENGTHS = {
    "no --max-length": (None, 40),
    "--max-length 16": (16, 16),
    "--max-length 100": (100, 40),
}


def max_seq_len_problem(config_class, max_length: int | None, expected: int) -> str | None:
    what = f"GPT2ArchConfig.calculate_max_seq_len(config with n_positions=40, {max_length=})"
    got = call(
        what,
        config_class.calculate_max_seq_len,
        gpt2_config(),
        SimpleNamespace(max_length=max_length),
    )
    not_none(what, got)
    if got == expected:
        return None
    return f"{what} gave {got!r}; it should be {expected}: {MAX_LENGTH_NOT_CAPPED}"


@pytest.mark.parametrize("max_length, expected", MAX_LENGTHS.values(), ids=MAX_LENGTHS.keys())
def test_max_seq_len_is_bounded_by_the_positions(record, max_length, expected):
    """calculate_max_seq_len keeps --max-length within n_positions (40 here)"""
    problem = max_seq_len_problem(learner_attr(SERVING, "GPT2ArchConfig"), max_length, expected)
    record.expect(problem is None, problem or "")


def test_align_lines_up_rows_of_different_lengths(record):
    """align() gives each row of a padded batch its own positions and mask (no MAX run)"""
    problem = align_problem(learner_attr(SERVING, "align"))
    record.expect(problem is None, problem or "")


def greedy_ids(prompt: tuple[int, ...]) -> list[int]:
    """HuggingFace generate()'s greedy ids on the KV check's model (the same weights)."""

    def build():
        with torch_no_grad() as torch:
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
    """The model as the pipeline model sees it, keeping the [B, S] of the ids of each call."""

    def __init__(self, model):
        self.model, self.shapes = model, []

    @property
    def fed(self) -> list[int]:
        """The ids fed per call, padding included."""
        return [rows * length for rows, length in self.shapes]

    def __call__(self, input_ids, *inputs):
        self.shapes.append(tuple(int(d) for d in input_ids.shape))
        return self.model(input_ids, *inputs)


@functools.cache
def learner_batched_model():
    return learner_module(SERVING, BATCHED, kv.reference()["state"], SMALL)


def batched_input_types():
    """As gpt2_serve.batched_input_types: ids, positions, mask [B, 1, S, N + S], caches."""
    from max.dtype import DType
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    ids, *caches = kv.input_types()
    device = DeviceRef.from_device(harness.device())
    positions = TensorType(DType.int64, ("batch", "seqlen"), device=device)
    mask = TensorType(harness.dtype(), ("batch", 1, "seqlen", "keys"), device=device)
    return [ids, positions, mask, *caches]


@functools.cache
def compiled_batched_model():
    return compile_module(BATCHED, learner_batched_model(), *batched_input_types())


def pipeline_model(request: pytest.FixtureRequest):
    """The learner's GPT2PipelineModel with its batched model on the KV check's weights in place
    of a served folder."""
    if harness.low_precision():
        pytest.skip("the serving chapter runs in float32, the encoding its architecture declares")
    from max.driver import CPU

    batched = (
        compiled_batched_model()
        if may_compile(request, compiled_batched_model)
        else learner_batched_model()
    )
    served = Spy(batched)
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
            f"[B, V] = [{len(contexts)}, {SMALL.vocab_size}]: {ONE_ROW_PER_REQUEST}"
        )
    return logits


def kept_problem(model, context, ids: int) -> None:
    """Raises when the cache kept for a request (in the skeleton's form: self.caches[request_id]
    = (ids, per-layer [n_head, length, head_dim] arrays)) holds other than its `ids` positions."""
    kept = getattr(model, "caches", {}).get(context.request_id)
    if not (isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[1], list) and kept[1]):
        return
    length = getattr(kept[1][0], "shape", (None, None))
    if len(length) == 3 and length[1] != ids:
        raise LearnerError(
            f"After a step, the cache kept for a request of {ids} ids holds {length[1]} positions "
            f"([n_head, {length[1]}, head_dim]): {OWN_SLOTS_KEPT}"
        )


def serve(model, arrivals) -> tuple[dict[tuple[int, ...], list[int]], list[tuple[int, int]]]:
    """Greedy decoding of requests that arrive at their step and leave at EOS or NEW_TOKENS, as
    the server schedules them; each finished request is released. Returns each prompt's new ids
    and, per step, the [B, S] one forward should take: every running request, and its ids not yet
    seen (the prompt of a request that just arrived, else one)."""
    from max.pipelines.context import TextContext, TokenBuffer

    running, generated, steps, number = [], {}, [], 0
    waiting = list(arrivals)
    while waiting or running:
        while waiting and waiting[0][0] <= number:
            prompt = waiting.pop(0)[1]
            tokens = TokenBuffer(np.array(prompt, np.int64))
            running.append((prompt, TextContext(max_length=SMALL.n_positions, tokens=tokens)))
            generated[prompt] = []
        if running:
            unseen = [1 if generated[prompt] else len(prompt) for prompt, _ in running]
            steps.append((len(running), max(unseen)))
            logits = step(model, [context for _, context in running])
            for prompt, context in running:
                kept_problem(model, context, len(prompt) + len(generated[prompt]))
            for (prompt, context), row in zip(list(running), logits, strict=True):
                token = int(row.argmax())
                generated[prompt].append(token)
                context.update(token)
                if token == kv.EOS or len(generated[prompt]) == kv.NEW_TOKENS:
                    running.remove((prompt, context))
                    call("GPT2PipelineModel.release", model.release, context.request_id)
        number += 1
    return generated, steps


def test_one_request_decodes_huggingface_greedy_tokens(record, request):
    """One request, decoded step by step: HuggingFace generate()'s greedy tokens, with the cache"""
    model, served = pipeline_model(request)
    prompt = ARRIVALS[0][1]
    got = serve(model, [(0, prompt)])[0][prompt]
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
        f"execute fed the model {served.fed} ids per step; {PROMPT_FED_ONCE} ({once}).",
    )


def test_requests_of_different_lengths_share_one_forward_per_step(record, request):
    """Requests of different lengths arriving at different times: one forward a step, each its greedy tokens"""
    model, served = pipeline_model(request)
    got, steps = serve(model, ARRIVALS)
    shapes = served.shapes
    if len(shapes) > len(steps):
        record.expect(
            False,
            f"Serving three requests took {len(shapes)} calls of the model in {len(steps)} steps: "
            "execute calls it once per request. Make one step one forward: the running requests' "
            "ids, positions, masks and caches lined up in one batch of B rows (left_pad, align).",
        )
    elif len(shapes) < len(steps):
        record.expect(
            False,
            f"Serving three requests called the model {len(shapes)} times in {len(steps)} steps: "
            "execute should run one forward every step, for every running request.",
        )
    elif shapes != steps:
        wrong = next(
            i for i, pair in enumerate(zip(shapes, steps, strict=True)) if len(set(pair)) > 1
        )
        if shapes[wrong][0] == steps[wrong][0] and shapes[wrong][1] > steps[wrong][1]:
            why = CACHE_LOST
        else:
            why = "one row per running request, padded to the longest run of new ids."
        record.expect(
            False,
            f"At step {wrong} execute gave the model ids of shape {list(shapes[wrong])}; with "
            f"{steps[wrong][0]} requests running it should be [B, S] = {list(steps[wrong])}: "
            f"{why}",
        )
    for _, prompt in ARRIVALS:
        expected = greedy_ids(prompt)
        record.expect(
            got[prompt] == expected,
            f"In a batch of requests of different lengths, the one with prompt ids {list(prompt)} "
            f"decoded to {got[prompt]}; alone, HuggingFace generate() gives {expected}. Row i of "
            "the batch is request i's: its ids, positions and mask from align(), its cache "
            "left-padded to the others', and afterwards it keeps only its own slots of the grown "
            "cache (the ones its mask lets it see).",
        )


def test_release_forgets_the_request(record, request):
    """release(request_id) forgets a finished request's cache"""
    model, _ = pipeline_model(request)
    serve(model, ARRIVALS[:2])
    left = len(model.caches)
    record.expect(
        left == 0,
        f"After two requests were served and released, self.caches still holds {left}: "
        f"{RELEASE_KEEPS_THE_CACHE}",
    )
