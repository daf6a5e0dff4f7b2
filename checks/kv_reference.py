"""The KV-cache reference: HuggingFace's logits at every cached call, and a model checked on them.

What the KV-cache chapter's checks compare with, and what the Mojo chapter's (its model runs on
the learner's kernel) and the serving chapter's (the same weights, greedy text) reuse: the chunks
of ids fed one call after another, HuggingFace's logits and greedy text for them, the cache's
input types, and the step-by-step comparison with its hints.
"""

import functools

import numpy as np

from checks import options, runtime
from checks.compare import Slip, mismatch, names_a_mistake
from checks.learner import LearnerError, call
from checks.reference import SMALL, hf_lm_model, max_state_dict, token_ids
from checks.reference_cache import cached
from checks.tensors import as_numpy, max_tensor, torch_no_grad

# (start, end) of the ids fed at each call: the prompt, single tokens, then chunks of new tokens
# after cached ones (where a mask that ignores the cached length shows).
CHUNKS = ((0, 5), (5, 6), (6, 7), (7, 10), (10, 12))
BATCH = 2
TOLERANCE = 2e-4
MODEL = "CachedGPT2LMHeadModel"
# Greedy generation on the same model, its text written as token ids ("3 14 15").
PROMPTS = {"5-token prompt": [3, 14, 15, 92, 65], "2-token prompt": [35, 89]}
NEW_TOKENS = 10
EOS = SMALL.vocab_size - 1  # the checks' small GPT-2 ends texts with its last id


def reference():
    def build():
        with torch_no_grad() as torch:
            from transformers import DynamicCache

            model = hf_model_of_reference()
            ids = token_ids(BATCH, CHUNKS[-1][1], SMALL.vocab_size, seed=22)
            full = model(ids).logits.numpy()
            restarted, cache = [], DynamicCache()
            for (
                start,
                end,
            ) in CHUNKS:  # the positions-restart-at-0 slip, made with HuggingFace's cache
                out = model(
                    ids[:, start:end],
                    past_key_values=cache,
                    use_cache=True,
                    position_ids=torch.arange(end - start)[None].expand(BATCH, -1),
                )
                restarted.append(out.logits[:, -1].numpy())
            greedy = {}
            for prompt in PROMPTS.values():
                out = model.generate(
                    torch.tensor([prompt]),
                    do_sample=False,
                    max_new_tokens=NEW_TOKENS,
                    eos_token_id=EOS,
                    pad_token_id=EOS,
                )
                greedy[tuple(prompt)] = (
                    out[0, len(prompt) :].tolist(),
                    greedy_with_positions_restarting(model, prompt),
                )
            return {
                "state": max_state_dict(model),
                "ids": ids.numpy(),
                "expected": [full[:, end - 1 : end] for _, end in CHUNKS],
                "restarted": [logits[:, None] for logits in restarted],
                "greedy": greedy,
            }

    return cached("kv_cache", (SMALL, CHUNKS, PROMPTS, NEW_TOKENS), build)


def empty_cache():
    head_dim = SMALL.n_embd // SMALL.n_head
    empty = max_tensor(np.zeros((BATCH, SMALL.n_head, 0, head_dim), np.float32))
    return [empty] * (2 * SMALL.n_layer)


def input_types():
    from max.dtype import DType
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    device = DeviceRef.from_device(runtime.device())
    head_dim = SMALL.n_embd // SMALL.n_head
    cache = TensorType(runtime.dtype(), ("batch", SMALL.n_head, "cached", head_dim), device=device)
    return [TensorType(DType.int64, ("batch", "seqlen"), device=device)] + [cache] * (
        2 * SMALL.n_layer
    )


def run_chunks(model, mode: str):
    """Feed CHUNKS one after the other; yields (label, logits, expected, slips, order_hint) or
    raises. `order_hint` names a mistake seen in the caches so far, else it is ''."""
    ref = reference()
    cache = empty_cache()
    order_hint = ""
    for (start, end), expected, restarted in zip(
        CHUNKS, ref["expected"], ref["restarted"], strict=True
    ):
        new = f"{end - start} new token{'s' if end - start > 1 else ''}"
        label = (
            f"{new} after {start} cached ({mode})" if start else f"the {new} of the prompt ({mode})"
        )
        what = f"{MODEL} on {label}"
        try:
            out = call(what, model, max_tensor(ref["ids"][:, start:end]), *cache)
        except LearnerError as error:
            raise type(error)(f"{error}{cache_hint(start, end)}") from None  # CompileFailed too
        if not isinstance(out, (tuple, list)) or len(out) != 1 + 2 * SMALL.n_layer:
            raise LearnerError(
                f"{what} returned {type(out).__name__}; it should return (logits, *caches): the "
                f"last position's logits [B, 1, V] and 2 * n_layer = {2 * SMALL.n_layer} caches."
            )
        given, (logits, *cache) = cache, out
        grown = [list(map(int, c.shape)) for c in cache]
        want = [BATCH, SMALL.n_head, end, SMALL.n_embd // SMALL.n_head]
        if any(shape != want for shape in grown):
            raise LearnerError(
                f"After {label} the caches have shapes {grown[0]}, ...; expected {want}: "
                f"{CACHE_NOT_APPENDED}"
            )
        if any(
            new_before_cached(past, present) for past, present in zip(given, cache, strict=True)
        ):
            order_hint = NEW_BEFORE_CACHED
        slips = [Slip(POSITIONS_RESTART, restarted)]
        yield label, logits, expected, slips, order_hint


POSITIONS_RESTART = (
    "the positions restart at 0 for every call: the new tokens' positions "
    "continue after the cached ones (N, N + 1, ...)."
)

NEW_BEFORE_CACHED = (
    "the new keys and values are put before the cached ones: they go after them, in position "
    "order (F.concat([past_key, key], axis=2)), as causal_mask(S, N) expects."
)
CACHE_NOT_APPENDED = (
    "the cache is not appended to. Concatenate the new keys and values to the cached ones "
    "along the sequence axis (F.concat([past_key, key], axis=2)) and return them."
)
CHANGES_WITH_A_CACHE = (
    "the prompt matched and this step does not: check what changes once there is a cache (keys "
    "and values appended, the mask for N cached keys, positions from N)."
)
FIRST_CALL_FAILED = (
    "the prompt ran but the first call with a cache did not: append the new keys and values to "
    "the cached ones (F.concat([past_key, key], axis=2)), so the scores are [B, H, S, N + S], and "
    "return them grown."
)
SEVERAL_AFTER_A_CACHE_FAILED = (
    "single new tokens work, several after a cache do not: the mask for S queries after N cached "
    "keys is causal_mask(S, N, ...) with N = past_key.shape[2]."
)


def new_before_cached(past, present) -> bool:
    """Whether the cache a call returned (`present`) ends with the one it was given (`past`),
    the new entries first: F.concat([key, past_key]). A single query sees every key in either
    order, so the logits show it only once several new tokens follow a cache."""
    cached = int(past.shape[2])
    if not 0 < cached < int(present.shape[2]):
        return False
    past, present = as_numpy(past, "A cache"), as_numpy(present, "A cache")
    return np.array_equal(present[:, :, -cached:], past) and not np.array_equal(
        present[:, :, :cached], past
    )


def check_chunks(record, model, mode: str) -> int | None:
    """Compare every step's logits; stop at the first wrong one (later ones follow from it) and
    return its number, or None when all match."""
    for number, (label, logits, expected, slips, order_hint) in enumerate(run_chunks(model, mode)):
        problem = mismatch(
            f"The logits for {label}",
            logits,
            expected,
            atol=TOLERANCE,
            rtol=TOLERANCE,
            slips=slips,
            precision=record.precision,
        )
        if problem:
            if order_hint and not names_a_mistake(problem):
                problem += f"\n  Hint: {order_hint}"
            if number and not names_a_mistake(problem):
                problem += f"\n  Hint: {CHANGES_WITH_A_CACHE}"
            record.expect(False, problem)
            return number
    return None


def cache_hint(start: int, end: int) -> str:
    """Where a call fails says what to look at: the first call with a cache, or the first chunk."""
    if start == 0:
        return ""
    return f"\n  Hint: {FIRST_CALL_FAILED if end - start == 1 else SEVERAL_AFTER_A_CACHE_FAILED}"


def bfloat16_on_the_cpu() -> bool:
    return runtime.low_precision() and options.current().device == "cpu"


@functools.cache
def hf_model_of_reference():
    """The HuggingFace model of reference() (built again only when bfloat16 checks need it),
    with strong position embeddings, so a position mistake changes the greedy text too."""
    model = hf_lm_model(SMALL, seed=21)
    model.transformer.wpe.weight.mul_(3.0)
    return model


def greedy_with_positions_restarting(hf, prompt: list[int]) -> list[int]:
    """The greedy ids of a cached model whose every call numbers its new tokens from 0 (a slip)."""
    with torch_no_grad() as torch:
        from transformers import DynamicCache

        cache, fed, out = DynamicCache(), torch.tensor([prompt]), []
        for _ in range(NEW_TOKENS):
            logits = hf(
                fed,
                past_key_values=cache,
                use_cache=True,
                position_ids=torch.arange(fed.shape[1])[None],
            ).logits
            out.append(int(logits[0, -1].argmax()))
            if out[-1] == EOS:
                break
            fed = torch.tensor([[out[-1]]])
        return out
