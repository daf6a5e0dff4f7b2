"""Step 1: GPT2Config holds the hyperparameters of HuggingFace's `gpt2`."""

import dataclasses

from checks.harness import call, learner_attr
from checks.reference_cache import cached

MEANING = {
    "vocab_size": "how many different tokens there are",
    "n_positions": "the longest context, in tokens",
    "n_embd": "the width of every hidden state",
    "n_layer": "how many transformer blocks are stacked",
    "n_head": "how many attention heads each block has",
    "n_inner": "the MLP's hidden width; None means 4 * n_embd",
    "layer_norm_epsilon": "the small number layer norm adds to the variance",
}


def huggingface_defaults() -> dict:
    import transformers  # ~3 s to import: cached after the first run

    config = transformers.GPT2Config()
    return {name: getattr(config, name) for name in MEANING}


def test_is_a_dataclass(record):
    """GPT2Config is a @dataclass that can be created with no arguments"""
    cls = learner_attr(1, "GPT2Config")
    record.expect(
        dataclasses.is_dataclass(cls),
        "GPT2Config is not a dataclass: put @dataclass on the line above `class GPT2Config`.",
    )
    call("GPT2Config()", cls)


def test_defaults_match_huggingface(record):
    """Every field has the value of HuggingFace's gpt2 config"""
    config = call("GPT2Config()", learner_attr(1, "GPT2Config"))
    reference = cached("gpt2-config", (), huggingface_defaults)
    for name, meaning in MEANING.items():
        expected = reference[name]
        if not hasattr(config, name):
            record.expect(False, f"GPT2Config has no field `{name}` ({meaning}).")
            continue
        got = getattr(config, name)
        same = got is None if expected is None else (got is not None and got == expected)
        record.expect(
            same and type(got) is type(expected),
            f"{name} is {got!r}; HuggingFace's gpt2 uses {expected!r} ({meaning}).",
        )


def test_fields_can_be_set(record):
    """Fields can be set by keyword, as later steps and the checks do"""
    cls = learner_attr(1, "GPT2Config")
    config = call("GPT2Config(n_embd=64, n_head=4)", cls, n_embd=64, n_head=4)
    record.expect(
        getattr(config, "n_embd", None) == 64 and getattr(config, "n_head", None) == 4,
        "GPT2Config(n_embd=64, n_head=4) did not keep those values: declare each field with a "
        "type annotation (`n_embd: int = 768`) so the dataclass turns it into an argument.",
    )
