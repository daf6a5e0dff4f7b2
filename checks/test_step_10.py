"""Step 10: generate_text against HuggingFace's generate() and against softmax(logits / T)."""

import numpy as np
import pytest

from checks import harness
from checks.harness import LearnerError, call, learner_attr, not_none
from checks.doubles import HFLogits, StandInModel, scripted
from checks.reference import sampling_model
from checks.tensors import torch_no_grad

PROMPTS = ["Hello world", "naïve café"]
LONG_PROMPT = "Language models predict the next token from the tokens before it. " * 3

# The words of the known mistakes; text_hint, low_temperature_advice and top_k_problem decide which
# one the learner's code made (the others follow an error's words).
PROMPT_MISSING = "The prompt is missing: return the prompt followed by the generated text."
PROMPT_TWICE = "The prompt appears twice: return it once, followed by the generated text."
CONTINUATION_DIFFERS = (
    "The continuation differs: take the next token from the last position's logits (logits[0, -1]) "
    "and append it before predicting the next one."
)
POWER_UNDERFLOWS = (
    "at temperature 0.001 the probabilities were NaN. Raising probabilities to the power 1/T (p ** "
    "1000) gives the same distribution on paper, but every p below 1 underflows to 0 in floating "
    "point (0.2 ** 1000 = 0), and 0 / 0 is NaN. Divide the logits by the temperature before the "
    "softmax: after subtracting the max the largest term is e^0 = 1, so the sum never reaches 0."
)
GREEDY_DIFFERS_TOO = (
    "Your greedy generation (do_sample=False) adds the same, so the temperature is not what "
    "differs: the greedy check above says what does."
)
TEMPERATURE_NOT_DIVIDED = "Divide the logits by the temperature."
TOP_K_PROBABILITIES = (
    "returned probabilities (they sum to 1). Filter before the softmax: keep the k largest logits, "
    "set the others to -inf, and let next_token take the softmax."
)
TOP_K_ZEROS = (
    "set the dropped logits to 0, not -inf: zeroing works for probabilities, but a logit of 0 "
    "still gets the probability e^0 / sum after the softmax, often more than a kept one. Set them "
    "to -np.inf (e^-inf = 0)."
)
TOP_K_OFF_BY_ONE = (  # more: "one more" or "one fewer"
    "keeps {finite} tokens for k={k}, {more} than HuggingFace: k off by one. "
    "np.sort(logits) is ascending, so the k-th largest is np.sort(logits)[-k]; keep "
    "every logit at least that large."
)
TOP_K_TIES_CUT = (
    "keeps {finite} tokens; HuggingFace keeps {n}: {tied} logits tie at the k-th largest value and "
    "all of them stay (drop only logits below the k-th largest)."
)
TOP_K_OTHER_TOKENS = (
    "keeps other tokens than the k largest logits; HuggingFace keeps the k largest."
)
TOP_K_CHANGED = (
    "changed the logits it keeps; leave them as they are and set only the others to -inf."
)
TOP_K_AFTER_SOFTMAX = (
    "probabilities zeroed outside the top k no longer sum to 1. Filter the logits before the "
    "softmax instead (top_k_filter sets them to -inf), so the softmax normalises what is kept."
)
NO_STOP_AT_END_OF_TEXT = (
    "the third token is <|endoftext|>, so generation should stop right after it (3 calls)."
)
HALF_CHARACTERS = (
    "A character's bytes can be split across tokens, and one token decoded alone gives '\\ufffd': "
    "decode all the new tokens, wait while the text ends with '\\ufffd', and pass on only the "
    "part not shown yet."
)
BFLOAT16_TO_NUMPY = (
    "numpy has no bfloat16: cast the logits to float32 before to_numpy(), "
    "logits.cast(DType.float32), when logits.dtype is not DType.float32."
)


def new_text(got, prompt):
    """What generate_text added after the prompt, however it handled the prompt: only the greedy
    check words a prompt mistake, so the other checks judge the new tokens alone."""
    for head in (prompt + prompt, prompt):
        if head and got.startswith(head):
            return got[len(head) :]
    return got


def generate(tokenizer, model, prompt, **kwargs):
    shown = ", ".join(f"{k}={'<callback>' if callable(v) else repr(v)}" for k, v in kwargs.items())
    what = f"generate_text(prompt={prompt!r}, {shown})"
    text = call(
        what,
        learner_attr(10, "generate_text"),
        model,
        tokenizer,
        harness.device(),
        prompt,
        **kwargs,
    )
    if not isinstance(not_none(what, text), str):
        raise LearnerError(f"{what} returned a {type(text).__name__}; it should return the text.")
    return what, text


def hf_greedy(tokenizer, model, prompt, max_new_tokens):
    """HuggingFace generate()'s greedy text; in bfloat16 it picks from the logits rounded to
    bfloat16 (what the learner's loop receives), the first of equal ones as argmax does."""
    with torch_no_grad() as torch:
        ids = torch.tensor([tokenizer.encode(prompt)])
        rounding = [lambda _, scores: scores.bfloat16().float()] if harness.low_precision() else []
        out = model.generate(
            ids,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
            logits_processor=rounding,
        )
        return tokenizer.decode(out[0], skip_special_tokens=True)


def text_hint(got, prompt, expected):
    """The known mistake the greedy text `got` shows, as " WORDS", or ''."""
    continuation = expected[len(prompt) :]
    if got == continuation and prompt:
        return f" {PROMPT_MISSING}"
    if got == prompt + expected:
        return f" {PROMPT_TWICE}"
    if got.startswith(prompt) and got != expected:
        return f" {CONTINUATION_DIFFERS}"
    return ""


@pytest.mark.parametrize("prompt", PROMPTS, ids=["plain prompt", "accented prompt"])
def test_greedy_matches_huggingface_generate(record, prompt):
    """Greedy generation (do_sample=False) gives HuggingFace generate()'s text, token for token"""
    tokenizer, model = sampling_model()
    expected = hf_greedy(tokenizer, model, prompt, 8)
    what, got = generate(tokenizer, HFLogits(model), prompt, max_new_tokens=8, do_sample=False)
    record.expect(
        got == expected,
        f"{what} gave {got!r}, expected {expected!r}." + text_hint(got, prompt, expected),
    )


def test_low_temperature_gives_the_greedy_tokens(record):
    """Sampling at temperature 0.001 gives the greedy tokens (temperature divides the logits)"""
    tokenizer, model = sampling_model()
    expected = hf_greedy(tokenizer, model, PROMPTS[0], 8)
    try:
        what, got = generate(
            tokenizer,
            HFLogits(model),
            PROMPTS[0],
            max_new_tokens=8,
            temperature=1e-3,
            do_sample=True,
            seed=0,
        )
    except LearnerError as error:
        if "nan" not in str(error).lower():
            raise
        raise LearnerError(f"{error}\n  Hint: {POWER_UNDERFLOWS}") from None
    added, greedy = new_text(got, PROMPTS[0]), expected[len(PROMPTS[0]) :]
    if added == greedy:
        return
    _, own = generate(tokenizer, HFLogits(model), PROMPTS[0], max_new_tokens=8, do_sample=False)
    record.expect(
        False,
        f"{what} added {added!r}; at so low a temperature sampling must pick "
        f"the greedy tokens, {greedy!r}. "
        + low_temperature_advice(added, new_text(own, PROMPTS[0])),
    )


def low_temperature_advice(sampled: str, own_greedy: str) -> str:
    """What to fix when sampling at temperature 0.001 missed HuggingFace's greedy tokens, from
    what the learner's greedy generation (do_sample=False) adds."""
    if sampled == own_greedy:  # the temperature works; the tokens differ before it applies
        return GREEDY_DIFFERS_TOO
    return TEMPERATURE_NOT_DIVIDED


def prompt_logits(tokenizer, model, prompt):
    """HuggingFace's float64 logits `[V]` of the token after `prompt`."""
    with torch_no_grad() as torch:
        return model(torch.tensor([tokenizer.encode(prompt)])).logits[0, -1].double().numpy()


def first_draws(tokenizer, logits, prompt, draws, **kwargs):
    """The first token generate_text samples after `prompt` with seeds 0..draws-1, when the model
    gives `logits` at every call."""
    firsts = []
    for seed in range(draws):
        # Two tokens: the second call shows the model the first sampled one (an id, where text
        # could hold half a character). The stand-in gives HuggingFace's logits for the prompt.
        model_logits = StandInModel([logits])
        generate(
            tokenizer, model_logits, prompt, max_new_tokens=2, do_sample=True, seed=seed, **kwargs
        )
        firsts.append(
            model_logits.last_ids[-1] if model_logits.calls > 1 else tokenizer.eos_token_id
        )
    return firsts


@pytest.mark.parametrize("temperature", [0.7, 1.6])
def test_first_token_frequencies_follow_softmax(record, temperature):
    """The first sampled token follows softmax(logits / temperature) over 400 seeded draws"""
    tokenizer, model = sampling_model()
    prompt, draws = PROMPTS[0], 400
    logits = prompt_logits(tokenizer, model, prompt)
    probs = np.exp((logits - logits.max()) / temperature)
    probs /= probs.sum()
    counts = np.zeros_like(probs)
    for first in first_draws(tokenizer, logits, prompt, draws, temperature=temperature):
        counts[first] += 1
    share = counts / draws
    # Each frequent token's share stays within 5 standard errors of its probability.
    frequent = probs > 0.02
    bound = 5 * np.sqrt(probs * (1 - probs) / draws) + 1 / draws
    worst = int(np.argmax(np.where(frequent, np.abs(share - probs) / bound, 0)))
    record.expect(
        abs(share[worst] - probs[worst]) <= bound[worst],
        f"Over {draws} draws at temperature {temperature}, token {worst} came first "
        f"{share[worst]:.1%} of the time; softmax(logits / {temperature}) gives it "
        f"{probs[worst]:.1%}. Sample from the probabilities softmax(logits / temperature) of the "
        "last position (divide by the temperature, don't multiply).",
    )


def hf_top_k(logits, k):
    """HuggingFace's TopKLogitsWarper (what generate(top_k=k) applies) on float64 logits `[V]`."""
    from transformers.generation.logits_process import TopKLogitsWarper

    with torch_no_grad() as torch:
        scores = torch.from_numpy(np.array(logits, dtype=np.float64))[None]
        return TopKLogitsWarper(top_k=k)(None, scores)[0].numpy()


def top_k_cases():
    """(label, logits, k): the checks' model's next-token logits at GPT-2's k = 40 and the edges,
    then ties at the k-th largest logit (HuggingFace keeps every tied one)."""
    tokenizer, model = sampling_model()
    logits = prompt_logits(tokenizer, model, PROMPTS[0])
    ties = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.5, -1.0, 2.0])
    return [
        ("the model's logits", logits, 40),
        ("the model's logits", logits, 1),
        ("the model's logits", logits, len(logits)),
        ("logits [1, 3, 3, 2, 3, 0.5, -1, 2] (three tied at 3)", ties, 2),
        ("logits [1, 3, 3, 2, 3, 0.5, -1, 2] (three tied at 3)", ties, 4),
    ]


def top_k_problem(got, logits, k, expected):
    """What is wrong with the learner's top_k_filter(logits, k), in a sentence; None if right."""
    kept, n = np.isfinite(expected), int(np.isfinite(expected).sum())
    if got.shape != logits.shape:
        return f"returned shape {list(got.shape)}; it should keep the logits' shape {list(logits.shape)}."
    if np.all(got >= 0) and abs(got.sum() - 1) < 1e-6:
        return TOP_K_PROBABILITIES
    if np.all(got[~kept] == 0) and np.allclose(got[kept], logits[kept]) and n < len(logits):
        return TOP_K_ZEROS
    finite = int(np.isfinite(got).sum())
    if finite != n:
        tied = int((logits == np.sort(logits)[-k]).sum()) if k <= len(logits) else 1
        if abs(finite - k) == 1 and tied == 1:
            more = "one more" if finite > k else "one fewer"
            return TOP_K_OFF_BY_ONE.format(finite=finite, k=k, more=more)
        if tied > 1:
            return TOP_K_TIES_CUT.format(finite=finite, n=n, tied=tied)
        return f"keeps {finite} tokens (finite logits); HuggingFace keeps {n}."
    if not np.array_equal(np.isfinite(got), kept):
        return TOP_K_OTHER_TOKENS
    if not np.allclose(got[kept], logits[kept]):
        return TOP_K_CHANGED
    return None


def test_top_k_filter_matches_huggingface(record):
    """top_k_filter(logits, k) keeps what HuggingFace's TopKLogitsWarper keeps (k = 40, 1, V, ties)"""
    filter_ = learner_attr(10, "top_k_filter")
    for label, logits, k in top_k_cases():
        what = f"top_k_filter({label}, k={k})"
        got = not_none(what, call(what, filter_, logits.copy(), k))
        got = np.asarray(got, dtype=np.float64)
        problem = top_k_problem(got, logits, k, hf_top_k(logits, k))
        if problem is not None:
            record.expect(False, f"{what} {problem}")
            return


def test_top_k_sampling_draws_among_the_top_k(record):
    """generate_text(top_k=3) draws its first token among the 3 largest logits, and not only the largest"""
    tokenizer, model = sampling_model()
    prompt, draws = PROMPTS[0], 60
    logits = prompt_logits(tokenizer, model, prompt)
    allowed = set(np.flatnonzero(np.isfinite(hf_top_k(logits, 3))).tolist())
    try:
        firsts = first_draws(tokenizer, logits, prompt, draws, temperature=1.0, top_k=3)
    except LearnerError as error:
        hint = f"\n  Hint: {TOP_K_AFTER_SOFTMAX}"
        raise LearnerError(f"{error}{hint if 'sum to 1' in str(error) else ''}") from None
    outside = sorted(set(firsts) - allowed)
    record.expect(
        not outside,
        f"generate_text(..., temperature=1.0, top_k=3) drew tokens {outside} outside the 3 "
        f"largest logits {sorted(allowed)} over {draws} seeds: pass top_k from generate_text to "
        "next_token, and filter the logits with top_k_filter before the softmax.",
    )
    record.expect(
        len(set(firsts)) > 1,
        f"generate_text(..., temperature=1.0, top_k=3) drew only token {firsts[0]} over {draws} "
        "seeds: top-k keeps 3 tokens to sample among, not just the largest.",
    )


def test_same_seed_same_text(record):
    """The same seed gives the same text"""
    tokenizer, model = sampling_model()
    runs = [
        generate(
            tokenizer, HFLogits(model), PROMPTS[0], max_new_tokens=10, temperature=1.0, seed=7
        )[1]
        for _ in range(2)
    ]
    record.expect(
        runs[0] == runs[1],
        f"Two runs with seed=7 gave {runs[0]!r} and {runs[1]!r}: seed "
        "the random generator with `seed` (np.random.default_rng(seed)).",
    )


def test_long_prompt_keeps_to_the_context(record):
    """A prompt longer than the context plus 30 new tokens never feeds the model more than n_positions"""
    tokenizer, model = sampling_model()
    logits = HFLogits(model)  # refuses more than n_positions ids, in a sentence
    what, _ = generate(tokenizer, logits, LONG_PROMPT, max_new_tokens=30, temperature=1.0, seed=1)
    record.expect(
        len(logits.last_ids) == logits.n_positions,
        f"{what} gave the model {len(logits.last_ids)} ids at its last call; with a prompt "
        f"longer than the context it should see the last {logits.n_positions} "
        "(tokenizer.model_max_length) ids.",
    )


def test_stops_after_end_of_text_and_at_max_new_tokens(record):
    """Generation stops after <|endoftext|>, and otherwise after max_new_tokens"""
    tokenizer, _ = sampling_model()
    word = tokenizer.encode(" the")[0]
    model = scripted([word, word, tokenizer.eos_token_id, word], len(tokenizer))
    what, got = generate(tokenizer, model, "Hello", max_new_tokens=10, do_sample=False)
    record.expect(
        model.calls == 3,
        f"{what} called the model {model.calls} times; {NO_STOP_AT_END_OF_TEXT}",
    )
    model = scripted([word], len(tokenizer))
    what, got = generate(tokenizer, model, "Hello", max_new_tokens=4, do_sample=False)
    added = new_text(got, "Hello")
    record.expect(
        model.calls == 4 and added == tokenizer.decode([word] * 4),
        f"{what} called the model {model.calls} times and added {added!r}: it should add "
        "exactly 4 tokens.",
    )


def streamed(tokenizer, words):
    """Greedy generation of `words` from "Hello": (what, the pieces on_text got, and after which
    model call each came)."""
    model = scripted(words, len(tokenizer))
    pieces, calls_so_far = [], []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        calls_so_far.append(model.calls)

    what, _ = generate(
        tokenizer, model, "Hello", max_new_tokens=len(words), do_sample=False, on_text=on_text
    )
    return what, pieces, calls_so_far


def test_streams_each_new_piece_to_on_text(record):
    """on_text receives the new text piece by piece, as it is generated (streaming)"""
    tokenizer, _ = sampling_model()
    words = [tokenizer.encode(w)[0] for w in (" the", " model", " the")]
    what, pieces, calls_so_far = streamed(tokenizer, words)
    expected = tokenizer.decode(words)
    record.expect(
        "".join(pieces) == expected,
        f"{what} passed {pieces!r} to on_text; the pieces should add up to the new text, "
        f"{expected!r}, without the prompt.",
    )
    record.expect(
        calls_so_far == [1, 2, 3],
        f"on_text was called after model calls {calls_so_far}; call it once per new token, "
        "as soon as it is generated ([1, 2, 3]), so the text streams.",
    )


def test_streams_whole_characters_when_a_character_spans_two_tokens(record):
    """on_text never receives half a character: "é" made of two byte tokens arrives whole"""
    tokenizer, _ = sampling_model()
    # GPT-2's tokens are bytes: "é" is the bytes C3 A9, here two tokens of one byte each.
    halves = tokenizer.convert_tokens_to_ids(["\u00c3", "\u00a9"])
    words = [*halves, tokenizer.encode(" the")[0]]
    what, pieces, calls_so_far = streamed(tokenizer, words)
    expected = tokenizer.decode(words)
    record.expect(
        "".join(pieces) == expected and not any("\ufffd" in piece for piece in pieces),
        f"{what} passed {pieces!r} to on_text; the new text is {expected!r}. {HALF_CHARACTERS}",
    )
    record.expect(
        calls_so_far == [2, 3],
        f'on_text was called after model calls {calls_so_far}; "é" is complete after call '
        '2 and " the" after call 3, so [2, 3]: pass each piece on as soon as it is whole.',
    )


@pytest.mark.compiled
def test_bfloat16_logits_as_on_a_gpu_compiled(record):
    """generate_text works when the model returns bfloat16 logits, as on a GPU (the cast to float32 is a compiled graph on the CPU)"""
    tokenizer, _ = sampling_model()
    word = tokenizer.encode(" the")[0]
    model = scripted([word], len(tokenizer), bfloat16=True)
    try:
        what, got = generate(tokenizer, model, "Hello", max_new_tokens=1, do_sample=False)
    except LearnerError as error:
        hint = f"\n  Hint: {BFLOAT16_TO_NUMPY}"
        raise LearnerError(f"{error}{hint if 'dtype' in str(error).lower() else ''}") from None
    added = new_text(got, "Hello")
    record.expect(
        added == tokenizer.decode([word]),
        f"{what} with bfloat16 logits added {added!r}, expected {tokenizer.decode([word])!r}.",
    )
