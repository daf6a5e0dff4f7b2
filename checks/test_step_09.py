"""Step 9: tokenize_text and decode_tokens agree with the tokenizer's own encode and decode."""

import numpy as np
import pytest

from checks import harness
from checks.compare import Slip
from checks.tensors import as_numpy
from checks.harness import call, learner_attr, not_none
from checks.tokenizer import local_tokenizer
from checks.tensors import max_tensor

TEXTS = {
    "plain English": "Hello world! The quick brown fox jumps over the lazy dog.",
    "accents and CJK": "naïve café in Zürich — 東京",
    "emoji": "Language models 🙂🚀",
    "whitespace runs, tabs and newlines": "  spaced\n\n\ttabs  and   runs  ",
    "empty text": "",
}
LONG = "Language models predict the next token from the tokens before it."


NO_BATCH_AXIS = "the ids need a batch axis: return shape [1, n], not [n]."
MAX_LENGTH_IGNORED = "max_length is ignored: pass max_length and truncation=True to encode."
KEEPS_THE_LAST = "it keeps the last max_length tokens: truncation keeps the first ones."
EXTRA_ID = (  # where: start or end; name: the id's token, as " ('...')"
    "the ids {where} with an extra id, {extra}{name}: GPT-2 adds no start or end "
    "token, so tokenize_text returns exactly tokenizer.encode(text)."
)
SPECIAL_TOKENS_KEPT = "Skip special tokens: tokenizer.decode(ids, skip_special_tokens=True)."


def expect_ids(record, what, got, ids, slips=()):
    return record.expect_close(
        what,
        got,
        np.array([ids], dtype=np.int64).reshape(1, -1),
        atol=0,
        rtol=0,
        dtype=np.int64,
        slips=list(slips) + [Slip(NO_BATCH_AXIS, np.array(ids, dtype=np.int64))],
    )


# GPT-2's one special token; the checks' own tokenizer gives it another id.
GPT2_END_OF_TEXT = 50256


def extra_id_slips(got, ids, tokenizer) -> list[Slip]:
    """The ids with one extra id at the start or the end (a start token, an end token), named."""
    got = np.asarray(got)
    if got.ndim != 2 or got.shape[1] != len(ids) + 1:
        return []
    slips = []
    for where, extra, rest in (("start", got[0, 0], got[0, 1:]), ("end", got[0, -1], got[0, :-1])):
        if list(rest) != list(ids):
            continue
        extra = int(extra)
        name = (
            " (<|endoftext|>)"
            if extra in (tokenizer.eos_token_id, GPT2_END_OF_TEXT)
            else f" ({tokenizer.convert_ids_to_tokens(extra)!r})"
            if 0 <= extra < len(tokenizer)
            else ""
        )
        slips.append(
            Slip(
                EXTRA_ID.format(where=where, extra=extra, name=name),
                np.array([[extra, *ids]] if where == "start" else [[*ids, extra]], dtype=np.int64),
            )
        )
        break  # with no ids, the start and the end are the same place
    return slips


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_tokenize_text_matches_encode(record, text):
    """tokenize_text gives the tokenizer's ids as a [1, n] int64 Tensor on the device"""
    tokenizer = local_tokenizer()
    device = harness.device()
    what = f"tokenize_text({text!r})"
    got = call(what, learner_attr(9, "tokenize_text"), text, tokenizer, device)
    ids = tokenizer.encode(text)
    if expect_ids(record, what, got, ids, extra_id_slips(as_numpy(got, what), ids, tokenizer)):
        record.expect(
            getattr(got, "device", None) == device,
            "tokenize_text should return a MAX Tensor on `device` (Tensor(..., device=device)).",
        )


def test_tokenize_text_truncates_to_max_length(record):
    """tokenize_text(..., max_length=5) keeps the first 5 tokens"""
    tokenizer = local_tokenizer()
    ids = tokenizer.encode(LONG)
    got = call(
        "tokenize_text(text, max_length=5)",
        learner_attr(9, "tokenize_text"),
        LONG,
        tokenizer,
        harness.device(),
        max_length=5,
    )
    expect_ids(
        record,
        "tokenize_text(text, max_length=5)",
        got,
        ids[:5],
        slips=[
            Slip(MAX_LENGTH_IGNORED, np.array([ids], dtype=np.int64)),
            Slip(KEEPS_THE_LAST, np.array([ids[-5:]], dtype=np.int64)),
        ],
    )


@pytest.mark.parametrize("batched", [True, False], ids=["a [1, n] Tensor", "a [n] Tensor"])
def test_decode_tokens_matches_decode(record, batched):
    """decode_tokens gives the tokenizer's text and skips special tokens"""
    tokenizer = local_tokenizer()
    decode_tokens = learner_attr(9, "decode_tokens")
    for text in TEXTS.values():
        ids = tokenizer.encode(text) + [tokenizer.eos_token_id]
        array = np.array([ids] if batched else ids, dtype=np.int64)
        what = f"decode_tokens({'[1, n]' if batched else '[n]'} ids of {text!r} + <|endoftext|>)"
        got = not_none(what, call(what, decode_tokens, max_tensor(array), tokenizer))
        expected = tokenizer.decode(ids, skip_special_tokens=True)
        if got == expected:
            continue
        hint = ""
        if isinstance(got, str) and tokenizer.eos_token in got:
            hint = f" {SPECIAL_TOKENS_KEPT}"
        elif not isinstance(got, str):
            hint = f" It returned a {type(got).__name__}; return the decoded str."
        record.expect(False, f"{what} gave {got!r}, expected {expected!r}.{hint}")
        break
