"""Step 10 solution: generate text one token at a time."""

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
    if not do_sample:
        return int(logits.argmax())
    scaled = logits.astype(np.float64) / temperature
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    probs = np.exp(scaled - scaled.max())  # subtract the max so exp can't overflow
    return int(rng.choice(len(probs), p=probs / probs.sum()))


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """The logits `[V]` with all but the k largest set to -inf (ties with the k-th largest stay)."""
    kth = np.sort(logits)[-min(k, len(logits))]  # the k-th largest logit
    return np.where(logits < kth, -np.inf, logits)  # e^-inf = 0: the softmax skips them


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
    rng = np.random.default_rng(seed)
    prompt_ids = tokenize_text(prompt, tokenizer, CPU()).to_numpy()[0].tolist()
    ids = prompt_ids or [tokenizer.eos_token_id]  # GPT-2 starts a text from <|endoftext|>
    generated: list[int] = []
    shown = ""
    for _ in range(max_new_tokens):
        window = np.array([(ids + generated)[-tokenizer.model_max_length:]], dtype=np.int64)
        logits = model(Tensor.from_dlpack(window).to(device))  # [1, S, V]
        if logits.dtype != DType.float32:  # bfloat16 on a GPU: numpy has no bfloat16
            logits = logits.cast(DType.float32)
        last = logits.to(CPU()).to_numpy()[0, -1]  # [V], the prediction for the next token
        generated.append(next_token(last, temperature, do_sample, rng, top_k))
        if on_text is not None:
            text = decode_tokens(Tensor.from_dlpack(np.array(generated, dtype=np.int64)), tokenizer)
            if not text.endswith("\ufffd"):  # wait until a character's bytes are all there
                on_text(text[len(shown):])
                shown = text
        if generated[-1] == tokenizer.eos_token_id:
            break
    return prompt + decode_tokens(Tensor.from_dlpack(np.array(generated, dtype=np.int64)), tokenizer)
