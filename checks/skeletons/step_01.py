"""Step 1: the GPT-2 configuration.

Every later step reads its sizes from one object: how many tokens the vocabulary has, how wide
the hidden states are, how many blocks and heads there are. Build it as a dataclass whose defaults
are GPT-2 small's, the values in HuggingFace's `gpt2` config.json, so that the pretrained weights
you load in step 11 fit the model you build.

Check your work: pixi run s1
"""

from dataclasses import dataclass


# TODO 1: make GPT2Config a dataclass (decorate it with @dataclass).
class GPT2Config:
    """The hyperparameters of GPT-2 small, as in HuggingFace's `gpt2` config.json."""

    # TODO 2: declare each field with its type and GPT-2 small's default value.
    # Hint: a field is `name: type = default`. The names are HuggingFace's: vocab_size,
    #   n_positions, n_embd, n_layer, n_head, n_inner, layer_norm_epsilon.
    # Hint: n_inner is `int | None`; None means "4 * n_embd".
    # Hint: the values are in https://huggingface.co/openai-community/gpt2/blob/main/config.json
    #   (layer_norm_epsilon there is 1e-05).
    vocab_size = None
