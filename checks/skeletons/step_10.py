"""Step 10: generate text one token at a time.

A language model only predicts the next token. To write text, ask it for the next token, append
that token, and ask again. At each step the logits of the last position score every vocabulary
token; greedy decoding takes the best one, sampling draws one from

    p = softmax(logits / temperature)

where a low temperature sharpens the distribution (towards greedy) and a high one flattens it.
Top-k sampling draws only among the k largest logits (GPT-2's own samples used k = 40).

Check your work: pixi run s10
"""

from typing import Callable

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental.tensor import Tensor

from step_09 import decode_tokens, tokenize_text


def next_token(
    logits: np.ndarray,
    temperature: float,
    do_sample: bool,
    rng: np.random.Generator,
    top_k: int | None = None,
) -> int:
    """Pick the next id from the last position's logits `[V]`: argmax, or a draw from
    softmax(logits / T), among the `top_k` largest logits when top_k is given."""
    # TODO 1: greedy: the index of the largest logit.
    # Hint: int(logits.argmax())

    # TODO 2: sampling: divide the logits by the temperature, softmax them, draw one id.
    # Hint: divide the logits, not the probabilities: subtract the max before np.exp so it can't
    #   overflow; rng.choice(len(probs), p=probs)

    # TODO 3: top-k: when top_k is not None, pass the divided logits through top_k_filter
    #   (below) before the softmax.
    return None


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """The logits `[V]` with all but the k largest set to -inf (ties with the k-th largest stay)."""
    # TODO 3: find the k-th largest logit; every logit below it becomes -inf, the rest stay.
    # Hint: np.sort sorts ascending, so the k-th largest is np.sort(logits)[-k] (k at most len).
    # Hint: -inf, not 0: after the softmax e^-inf = 0, where a logit of 0 is still likely.
    return None


def generate_text(
    model: Callable[[Tensor], Tensor],
    tokenizer,
    device: Device,
    prompt: str,
    max_new_tokens: int = 50,
    temperature: float = 0.8,
    do_sample: bool = True,
    top_k: int | None = None,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """The prompt followed by up to `max_new_tokens` generated tokens.

    `model` maps `[1, S]` int64 ids to `[1, S, V]` logits. Generation stops after the end-of-text
    token. The model never sees more than `tokenizer.model_max_length` tokens: the oldest drop out.
    `top_k`, when given, samples among the k most likely tokens only. `on_text`, when given,
    receives each new piece of text as soon as it is generated.
    """
    # TODO 4: a random generator seeded with `seed`, and the prompt's ids as a list.
    # Hint: np.random.default_rng(seed); tokenize_text(prompt, tokenizer, CPU()).to_numpy()[0].tolist()
    # Hint: an empty prompt has no ids: start from [tokenizer.eos_token_id], as GPT-2 does.

    # TODO 5: up to max_new_tokens times: run the model on the last tokenizer.model_max_length
    #   ids, take the logits of the last position, pick the next id with next_token (passing
    #   top_k on), append it.
    # Hint: Tensor.from_dlpack(np.array([window], dtype=np.int64)).to(device) as the input;
    #   logits.to(CPU()).to_numpy()[0, -1] is the last position's [V] logits.
    # Hint: numpy has no bfloat16, the dtype MAX uses on a GPU: when logits.dtype is not
    #   DType.float32, cast first (logits.cast(DType.float32)).

    # TODO 6: stop right after the end-of-text token (tokenizer.eos_token_id).

    # TODO 7: when on_text is given, pass it each new piece of decoded text (for streaming).
    # Hint: a character can be split across two tokens ("\ufffd" when decoded alone): decode all
    #   the new tokens, wait while the text ends with "\ufffd", pass only the part not yet shown.

    # TODO 8: return the prompt followed by the decoded new tokens.
    # Hint: decode_tokens(Tensor.from_dlpack(np.array(generated, dtype=np.int64)), tokenizer)
    return None
