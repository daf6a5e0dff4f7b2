"""HuggingFace's GPT-2 pieces as references: seeded weights, their outputs, a small saved model.

Everything is offline: configs are made here, weights are seeded random numbers. Weights are drawn
at scales where the usual slips change the output well beyond float32 noise (biases are not zero,
layer-norm gains are not one, attention scores are of order one).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from checks.reference_cache import cached
from checks.tensors import torch_no_grad
from checks.tokenizer import local_tokenizer, quiet_transformers


@dataclass(frozen=True)
class CheckConfig:
    """The config object a check passes to the learner's code, with GPT2Config's field names."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    layer_norm_epsilon: float = 1e-5


# Small enough to run in milliseconds, odd enough that a confused axis shows in the shape. Its
# vocabulary is the checks' tokenizer's (tokenizer.py), so the small model saved for step 11, the
# demos and the server has its sizes too: one compiled graph per model class serves them all
# (MAX caches compiles by shapes, not weights), which keeps a cold test run short.
SMALL = CheckConfig(vocab_size=400, n_positions=24, n_embd=32, n_layer=2, n_head=4)
# GPT-2 small's widths, for the pieces that stay fast at that size.
GPT2_SIZES = CheckConfig()
# An MLP width set in the config (GPT-2 small leaves it None, meaning 4 * n_embd).
SMALL_WITH_N_INNER = CheckConfig(**{**asdict(SMALL), "n_inner": 40})


def hf_config(cfg: CheckConfig, eos_token_id: int | None = None) -> Any:
    import transformers

    # GPT-2's <|endoftext|> is 50256; a small vocabulary needs its own (also the start token).
    eos = eos_token_id if eos_token_id is not None else min(50256, cfg.vocab_size - 1)
    config = transformers.GPT2Config(
        **asdict(cfg),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    config._attn_implementation = "eager"
    return config


def randomize_(module: Any, seed: int) -> Any:
    """Seeded weights at scales that keep activations of order one; returns `module` in eval mode
    with its weights out of autograd (a reference is never trained: its outputs, wherever it runs,
    can go to numpy, and in-place edits of its weights need no torch.no_grad)."""
    with torch_no_grad() as torch:
        generator = torch.Generator().manual_seed(seed)
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            leaf = name.rsplit(".", 1)[-1]
            if (".ln" in f".{name}" or param.ndim == 1) and leaf == "weight":
                param.copy_(1.0 + 0.2 * noise)  # layer-norm gain
            elif leaf == "bias":
                param.copy_(0.2 * noise)
            elif param.ndim == 2 and "wte" not in name and "wpe" not in name:
                fan_in = param.shape[0]  # Conv1D weights are [in, out]
                param.copy_(noise / fan_in**0.5)
            else:
                param.copy_(noise)  # embeddings
        return module.eval().requires_grad_(False)


def max_state_dict(hf_module: Any) -> dict[str, np.ndarray]:
    """HuggingFace's state dict as a MAX module expects it: Conv1D weights transposed to [out, in]."""
    from transformers.pytorch_utils import Conv1D

    conv1d = {
        f"{name}.weight" if name else "weight"
        for name, child in hf_module.named_modules()
        if isinstance(child, Conv1D)
    }
    return {
        key: np.ascontiguousarray(
            value.float().numpy().T if key in conv1d else value.float().numpy()
        )
        for key, value in hf_module.state_dict().items()
    }


def hidden_states(batch: int, seq_len: int, width: int, seed: int) -> Any:
    with torch_no_grad() as torch:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((batch, seq_len, width), generator=generator)


def causal_mask_4d(seq_len: int) -> Any:
    """HuggingFace's additive causal mask for one sequence, `[1, 1, S, S]`."""
    with torch_no_grad() as torch:
        mask = torch.full((seq_len, seq_len), float("-inf")).triu(1)
        return mask[None, None]


def hf_mlp(cfg: CheckConfig, seed: int) -> Any:
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP

    return randomize_(GPT2MLP(cfg.n_inner or 4 * cfg.n_embd, hf_config(cfg)), seed)


def hf_attention(cfg: CheckConfig, seed: int) -> Any:
    from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

    return randomize_(GPT2Attention(hf_config(cfg), layer_idx=0), seed)


def run_hf_attention(attention: Any, x: Any) -> Any:
    # A standalone GPT2Attention is not causal: the mask comes from GPT2Model, so pass it here.
    return attention(x, attention_mask=causal_mask_4d(x.shape[1]))[0]


def hf_layer_norm(dim: int, eps: float, seed: int) -> Any:
    with torch_no_grad() as torch:
        return randomize_(torch.nn.Sequential(torch.nn.LayerNorm(dim, eps=eps)), seed)[0]


def hf_block(cfg: CheckConfig, seed: int) -> Any:
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    return randomize_(GPT2Block(hf_config(cfg), layer_idx=0), seed)


def run_hf_block(block: Any, x: Any) -> Any:
    return block(x, attention_mask=causal_mask_4d(x.shape[1]))


def hf_lm_model(cfg: CheckConfig, seed: int, eos_token_id: int | None = None) -> Any:
    """A seeded GPT2LMHeadModel; its `.transformer` is the GPT2Model of step 7."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(hf_config(cfg, eos_token_id))
    randomize_(model, seed)
    model.lm_head.weight = model.transformer.wte.weight  # keep GPT-2's tied head after re-seeding
    return model.eval()


def token_ids(batch: int, seq_len: int, vocab_size: int, seed: int) -> Any:
    with torch_no_grad() as torch:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)


def near_greedy_problem(hf_model: Any, ids: list[int], prompt_length: int) -> str | None:
    """For bfloat16, where greedy text may part from float32's wherever two tokens score within
    rounding: each generated id must score, in HuggingFace's float32 model, no further below the
    best than 5% of the row's largest magnitude (at least 0.05). None when all do, else what is wrong, in a sentence."""
    with torch_no_grad() as torch:
        logits = (
            hf_model(torch.tensor([ids[:-1]])).logits[0].double().numpy()
        )  # row i predicts i + 1
        for position in range(prompt_length - 1, len(ids) - 1):
            row, chosen = logits[position], ids[position + 1]
            margin = 0.05 * max(1.0, float(np.abs(row).max()))
            if row[chosen] < row.max() - margin:
                return (
                    f"generated token {position + 2 - prompt_length} (id {chosen}) scores "
                    f"{row[chosen]:.3g} where the best (id {int(row.argmax())}) scores "
                    f"{row.max():.3g}: further than bfloat16 rounding explains."
                )
        return None


def save_small_model(folder: Path, seed: int = 15, readable: bool = False) -> Path:
    """A seeded small GPT-2 and the local tokenizer, saved as `from_pretrained` expects them.

    `readable`: its greedy text is printable ASCII, so served and HuggingFace texts can be compared
    as text (a random model's next token is often a lone byte of a UTF-8 character)."""
    quiet_transformers()
    # Saved without a context length (as bare vocab + merges files come): build_model must set it.
    tokenizer = local_tokenizer(model_max_length=int(1e30))
    # SMALL has the tokenizer's vocabulary (tests/test_reference_cache.py checks)
    model = hf_lm_model(SMALL, seed=seed, eos_token_id=tokenizer.eos_token_id)
    if readable:  # the other tokens' embeddings (tied to the head) are 0: their logits are 0
        with torch_no_grad() as torch:
            keep = torch.zeros(SMALL.vocab_size, dtype=torch.bool)
            for token in range(SMALL.vocab_size):
                text = tokenizer.decode([token])
                keep[token] = bool(text.strip()) and text.isascii() and text.isprintable()
            keep[tokenizer.eos_token_id] = False
            model.transformer.wte.weight[~keep] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def hidden_state_outputs(
    name: str, cfg: CheckConfig, shapes: tuple, build_hf: Callable, run_hf: Callable, seed: int
) -> dict[Any, Any]:
    """Weights of `build_hf(cfg, seed)` and its outputs on seeded hidden states, per (batch, seq_len).

    `name` keys the cache, so it must name what `build_hf` and `run_hf` compute.
    """

    def build() -> dict[Any, Any]:
        hf = build_hf(cfg, seed)
        data: dict[Any, Any] = {"state": max_state_dict(hf)}
        for batch, seq_len in shapes:
            x = hidden_states(batch, seq_len, cfg.n_embd, seed=seed + 1)
            data[batch, seq_len] = (x.numpy(), run_hf(hf, x).numpy())
        return data

    return cached(name, (cfg, shapes, seed), build, also=(build_hf, run_hf))


@functools.cache
def sampling_model():
    """The checks' tokenizer and a seeded small model of its vocabulary with logits of order one:
    step 10's model, and the sampling picture's."""
    tokenizer = local_tokenizer(model_max_length=SMALL.n_positions)
    model = hf_lm_model(SMALL, seed=14, eos_token_id=tokenizer.eos_token_id)
    # Shrink the final layer norm so the next-token distribution is neither one-hot nor flat
    # (top probability about 0.2): then temperature visibly changes the draws.
    model.transformer.ln_f.weight.mul_(0.4)
    model.transformer.ln_f.bias.mul_(0.4)
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    return tokenizer, model
