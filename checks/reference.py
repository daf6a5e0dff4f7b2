"""The one place that builds HuggingFace references and hands the same weights to the learner's code.

Everything is offline: configs are made here, weights are seeded random numbers. Weights are drawn
at scales where the usual slips change the output well beyond float32 noise (biases are not zero,
layer-norm gains are not one, attention scores are of order one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from checks import harness, options
from checks.harness import LearnerError
from checks.reference_cache import cached, cached_folder  # noqa: F401  (the checks' import point)


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


# Small enough to run in milliseconds, odd enough that a confused axis shows in the shape.
SMALL = CheckConfig(vocab_size=101, n_positions=24, n_embd=32, n_layer=2, n_head=4)
# GPT-2 small's widths, for the pieces that stay fast at that size.
GPT2_SIZES = CheckConfig()
# An MLP width set in the config (GPT-2 small leaves it None, meaning 4 * n_embd).
SMALL_WITH_N_INNER = CheckConfig(**{**asdict(SMALL), "n_inner": 40})


def torch_no_grad() -> Any:
    import torch

    torch.set_grad_enabled(False)
    return torch


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
    """Seeded weights at scales that keep activations of order one; returns `module` in eval mode."""
    torch = torch_no_grad()
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
    return module.eval()


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


def build_learner_module(what: str, factory: Any, *args: Any) -> Any:
    """Construct the learner's module without random initialisation (fast; weights come next)."""
    from max.experimental import functional as F

    with F.lazy():
        return harness.not_none(what, harness.call(f"Creating {what}", factory, *args))


def learner_module(step: int, class_name: str, state: dict[str, np.ndarray], *args: Any) -> Any:
    """The learner's `class_name(*args)` from step `step`, holding the weights in `state`."""
    module = build_learner_module(class_name, harness.learner_attr(step, class_name), *args)
    return load_weights(class_name, module, state)


def load_weights(what: str, module: Any, state: dict[str, np.ndarray]) -> Any:
    """Load `state` into the learner's module, first naming any missing, extra or misshaped weight."""
    try:
        params = {name: [int(d) for d in t.shape] for name, t in module.parameters}
    except Exception as error:
        raise LearnerError(
            harness.describe_exception(f"Listing the parameters of {what}", error)
        ) from error
    expected = {name: list(value.shape) for name, value in state.items()}
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    problems = []
    if not params:
        raise LearnerError(
            f"{what} has no parameters yet: create its layers in __init__ (are they still None?)."
        )
    if missing:
        problems.append(
            f"it has no parameter {', '.join(missing)} (HuggingFace's names; is a layer still None "
            "or named differently?)"
        )
    if extra:
        problems.append(f"it has parameters HuggingFace's module does not: {', '.join(extra)}")
    for name in sorted(set(params) & set(expected)):
        if params[name] != expected[name]:
            width = (
                "the MLP's width is config.n_inner, or 4 * n_embd when that is None; "
                if ".mlp." in f".{name}"
                else ""
            )
            problems.append(
                f"{name} has shape {params[name]}, expected {expected[name]} ({width}a MAX Linear "
                "stores its weight as [out_features, in_features])"
            )
    if problems:
        raise LearnerError(f"{what} does not have GPT-2's parameters: " + "; ".join(problems) + ".")
    if harness.low_precision():  # cast here: a MAX cast would compile a graph per shape
        state = {name: bfloat16(value) for name, value in state.items()}
    harness.call(f"Loading weights into {what}", module.load_state_dict, state, auto_cast=True)
    if options.current().device != "cpu":
        harness.call(f"Moving {what} to the GPU", module.to, harness.device())
    return module


def bfloat16(array: np.ndarray) -> Any:
    """A float array as a bfloat16 torch tensor: numpy has no bfloat16, and torch's cast, unlike
    MAX's eager one on a CPU, compiles nothing."""
    return torch_no_grad().tensor(array).bfloat16()


def max_tensor(array: Any, float32: bool = False) -> Any:
    """A numpy or torch array as a MAX Tensor on the checks' device, floats in the checks' dtype
    (or kept in float32).

    bfloat16 goes through torch, which has it (numpy has none): a MAX cast would compile a graph.
    """
    from max.experimental.tensor import Tensor

    if hasattr(array, "detach") and str(array.dtype) != "torch.bfloat16":
        array = array.numpy()
    if (
        isinstance(array, np.ndarray)
        and harness.low_precision()
        and not float32
        and np.issubdtype(array.dtype, np.floating)
    ):
        array = bfloat16(array)
    tensor = Tensor.from_dlpack(
        np.ascontiguousarray(array) if isinstance(array, np.ndarray) else array.contiguous()
    )
    return tensor.to(harness.device()) if options.current().device != "cpu" else tensor


def hidden_states(batch: int, seq_len: int, width: int, seed: int) -> Any:
    torch = torch_no_grad()
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, seq_len, width), generator=generator)


def causal_mask_4d(seq_len: int) -> Any:
    """HuggingFace's additive causal mask for one sequence, `[1, 1, S, S]`."""
    torch = torch_no_grad()
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
    torch = torch_no_grad()
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
    torch = torch_no_grad()
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)


# Text the checks' tokenizer learns from: English, accents, CJK, emoji and odd whitespace, so that
# every case the checks encode is made of real merges, not only single bytes.
TOKENIZER_CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Language models predict the next token from the tokens before it.",
    "naïve café in Zürich — 東京 and Ελληνικά 🙂🚀",
    "  spaced\n\n\ttabs  and   runs of spaces  ",
] * 20


def local_tokenizer(model_max_length: int = 1024) -> Any:
    """A GPT-2 style byte-level BPE tokenizer trained here on TOKENIZER_CORPUS: no hub needed."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer

    quiet_transformers()
    folder = harness.ROOT / "build" / "tokenizer"
    if not (folder / "vocab.json").exists() or not (folder / "merges.txt").exists():
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            TOKENIZER_CORPUS,
            vocab_size=400,
            min_frequency=1,
            show_progress=False,
            special_tokens=["<|endoftext|>"],
        )
        folder.mkdir(parents=True, exist_ok=True)
        bpe.save_model(str(folder))
    tokenizer = GPT2Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    # transformers 5 builds an empty tokenizer instead of raising when it can't read the files.
    if len(tokenizer) <= 1:
        raise RuntimeError(f"the tokenizer built from {folder} is empty: delete the folder")
    tokenizer.model_max_length = model_max_length  # from vocab + merges alone it is ~1e30
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class IdTokenizer:
    """Text is space-separated token ids ("3 14 15"): step 10's generate_text runs on any
    vocabulary, with no trained tokenizer. `eos_token_id` -1 never ends a text."""

    def __init__(self, model_max_length: int, eos_token_id: int = -1):
        self.model_max_length = model_max_length
        self.eos_token_id = eos_token_id

    def encode(
        self, text: str, max_length: int | None = None, truncation: bool = False
    ) -> list[int]:
        ids = [int(word) for word in text.split()]
        return ids[:max_length] if truncation and max_length else ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f" {i}" for i in ids if not (skip_special_tokens and i == self.eos_token_id))


class HFLogits:
    """A HuggingFace GPT2LMHeadModel as the callable step 10 expects: MAX ids [1, S] -> MAX logits.

    It refuses more tokens than the model has positions, in a sentence, as GPT-2 itself would fail.
    """

    def __init__(self, model: Any):
        self.model = model
        self.n_positions = model.config.n_positions
        self.calls = 0
        self.last_ids: list[int] = []  # the ids of the latest call

    def __call__(self, input_ids: Any) -> Any:
        torch = torch_no_grad()
        from checks.compare import as_numpy

        ids = as_numpy(input_ids, "The ids given to the model")
        if ids.ndim != 2 or ids.shape[0] != 1:
            raise LearnerError(
                f"the model was given ids of shape {list(ids.shape)}; it takes [1, S]."
            )
        if ids.shape[1] > self.n_positions:
            raise LearnerError(
                f"the model was given {ids.shape[1]} tokens but has only {self.n_positions} "
                "positions: keep only the last tokenizer.model_max_length tokens."
            )
        if ids.shape[1] == 0:
            raise LearnerError("the model was given no tokens at all.")
        self.calls += 1
        self.last_ids = ids[0].tolist()
        logits = self.model(torch.from_numpy(ids.astype(np.int64))).logits
        if harness.low_precision():  # a bfloat16 model's logits, cast to float32 as step 8 does
            logits = logits.bfloat16().float()
        return max_tensor(logits.numpy(), float32=True)


def near_greedy_problem(hf_model: Any, ids: list[int], prompt_length: int) -> str | None:
    """For bfloat16, where greedy text may part from float32's wherever two tokens score within
    rounding: each generated id must score, in HuggingFace's float32 model, no further below the
    best than 5% of the row's largest magnitude (at least 0.05). None when all do, else what is wrong, in a sentence."""
    torch = torch_no_grad()
    logits = hf_model(torch.tensor([ids[:-1]])).logits[0].double().numpy()  # row i predicts i + 1
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


def quiet_transformers() -> None:
    """No progress bars or warnings from transformers and the hub in a learner's report."""
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.set_verbosity_error()  # e.g. step 10 feeds prompts over the context
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def save_small_model(folder: Path, seed: int = 15, readable: bool = False) -> Path:
    """A seeded small GPT-2 and the local tokenizer, saved as `from_pretrained` expects them.

    `readable`: its greedy text is printable ASCII, so served and HuggingFace texts can be compared
    as text (a random model's next token is often a lone byte of a UTF-8 character)."""
    quiet_transformers()
    # Saved without a context length (as bare vocab + merges files come): build_model must set it.
    tokenizer = local_tokenizer(model_max_length=int(1e30))
    cfg = CheckConfig(**{**asdict(SMALL), "vocab_size": len(tokenizer)})
    model = hf_lm_model(cfg, seed=seed, eos_token_id=tokenizer.eos_token_id)
    if readable:  # the other tokens' embeddings (tied to the head) are 0: their logits are 0
        torch = torch_no_grad()
        keep = torch.zeros(cfg.vocab_size, dtype=torch.bool)
        for token in range(cfg.vocab_size):
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
