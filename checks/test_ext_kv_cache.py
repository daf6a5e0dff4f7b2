"""The KV-cache extension's checks: cached decoding gives HuggingFace's logits and text.

The cached model's logits equal HuggingFace's at every step, and its
greedy text equals HuggingFace generate()'s, token for token."""

import functools

import numpy as np
import pytest

from checks import harness
from checks.tensors import as_numpy
from checks.report import may_compile
from checks.harness import KV_CACHE, call, compile_module, learner_attr, not_none
from checks.reference import SMALL, near_greedy_problem
from checks.doubles import IdTokenizer
from checks.kv_reference import (
    EOS,
    MODEL,
    NEW_TOKENS,
    POSITIONS_RESTART,
    PROMPTS,
    TOLERANCE,
    bfloat16_on_the_cpu,
    check_chunks,
    hf_model_of_reference,
    input_types,
    reference,
    run_chunks,
)
from checks.modules import learner_module
from checks.tensors import max_tensor

WHOLE_WINDOW_FED = (  # once: the first ids fed per call, as they should be
    "it should feed the prompt once and then only the newest token ({once}...): in CachedLM, "
    "pass only the ids the cache has not seen."
)


@functools.cache
def learner_model():
    return learner_module(KV_CACHE, MODEL, reference()["state"], SMALL)


def test_logits_match_at_every_step_eager(record):
    """The last position's logits equal HuggingFace's after every call: the prompt, single tokens, chunks (eager)"""
    if bfloat16_on_the_cpu():
        pytest.skip(BFLOAT16_EAGER)
    check_chunks(record, learner_model(), "eager")


BFLOAT16_EAGER = (
    "bfloat16 on the CPU: MAX's interpreter runs no bfloat16, so each eager "
    "operation would compile a graph of its own (minutes); the compiled checks "
    "below cover bfloat16"
)


@functools.cache
def compiled_model():
    return compile_module(MODEL, learner_model(), *input_types())


@pytest.mark.compiled
def test_logits_match_at_every_step_compiled(record):
    """The same inside one graph compiled with symbolic batch, length and cached length (compiled)"""
    if not bfloat16_on_the_cpu():  # a forward that can't run eagerly: say so, don't compile
        next(run_chunks(learner_model(), "eager"))
    wrong = check_chunks(record, compiled_model(), "compiled")
    if wrong is not None:
        for number, (_, logits, expected, *_) in enumerate(run_chunks(learner_model(), "eager")):
            if number == wrong:
                record.expect_eager_only_failure(logits, expected, TOLERANCE)
                break


@pytest.mark.parametrize("prompt", PROMPTS.values(), ids=PROMPTS.keys())
def test_greedy_text_matches_huggingface_generate(record, prompt, request):
    """generate_with_cache(do_sample=False) gives HuggingFace generate()'s text, token for token"""
    expected_ids, restarted_ids = reference()["greedy"][tuple(prompt)]
    tokenizer = IdTokenizer(SMALL.n_positions, eos_token_id=EOS)
    text = " ".join(map(str, prompt))
    expected, restarted = (text + tokenizer.decode(ids) for ids in (expected_ids, restarted_ids))
    # The compiled model generates in milliseconds a token, the eager one in a third of a second;
    # after a failure above, or with --eager-only, nothing is compiled for this check.
    model = compiled_model() if may_compile(request, compiled_model) else learner_model()
    fed: list[int] = []
    seen: list[int] = []

    def spy(input_ids, *cache):
        fed.append(int(input_ids.shape[1]))
        seen.extend(as_numpy(input_ids, "The ids given to the model")[0].tolist())
        return model(input_ids, *cache)

    cached_lm = call(
        "CachedLM(model, config, device)",
        learner_attr(KV_CACHE, "CachedLM"),
        spy,
        SMALL,
        harness.device(),
    )
    not_none(
        "CachedLM(model, config, device)(prompt ids)",
        call(
            "CachedLM(model, config, device)(prompt ids)",
            cached_lm,
            max_tensor(np.array([prompt], np.int64)),
        ),
    )
    fed.clear()
    seen.clear()
    what = f"generate_with_cache(prompt={text!r}, max_new_tokens={NEW_TOKENS}, do_sample=False)"
    got = call(
        what,
        learner_attr(KV_CACHE, "generate_with_cache"),
        spy,
        SMALL,
        tokenizer,
        harness.device(),
        text,
        max_new_tokens=NEW_TOKENS,
        do_sample=False,
    )
    if harness.low_precision():  # the tokens up to the last call, within rounding
        problem = near_greedy_problem(hf_model_of_reference(), seen, len(prompt))
        record.expect(problem is None, f"{what} on your bfloat16 model gave {got!r}: {problem}")
        return
    hint = f"\n  Hint: {POSITIONS_RESTART}" if got == restarted != expected else ""
    record.expect(
        got == expected,
        f"{what} gave {got!r}; HuggingFace generate() (and the model without "
        f"a cache) gives {expected!r}.{hint}",
    )
    once = [len(prompt)] + [1] * (len(fed) - 1)
    record.expect(
        fed == once,
        f"{what} fed the model {fed} ids per call; {WHOLE_WINDOW_FED.format(once=once[:4])}",
    )
