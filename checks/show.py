"""Pictures of what the numbers mean, drawn to PNG files with matplotlib.

    python -m checks show mask                    # your step 3 causal_mask, with and without a cache
    python -m checks show sampling                # one next-token distribution: T, then top-k
                                                  #   (--all-tokens: bytes and marks too)
    python -m checks show attention --model DIR   # your model's attention weights, layers x heads
    python -m checks show loss --model DIR        # each token's surprise under your model

Each command prints the file it wrote (--out changes it). The course's pages show these pictures,
made by the same commands.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from checks import harness
from checks.figures import PixelOf, pyplot as _pyplot, save as _save

FIGURES = harness.ROOT / "build" / "figures"
VISIBLE, HIDDEN = "#cfe8c8", "#3b3b4f"  # mask cells: 0 (may look) and -inf (may not)
BARS = "#7e56c2"  # the site's purple
# --- the mask -----------------------------------------------------------------------------------


def draw_masks(masks: list[tuple[str, np.ndarray]], path: Path, dpi: int = 100) -> list[PixelOf]:
    """Each (title, additive mask [S, N + S]) as a grid: rows are queries, columns keys; light
    where the mask is 0, dark where it is -inf. Cell (i, j) is centred on data point (j, i)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    widths = [mask.shape[1] for _, mask in masks]
    fig, axes = plt.subplots(
        1, len(masks), figsize=(7.5, 3.4), dpi=dpi, gridspec_kw={"width_ratios": widths}
    )
    axes = list(np.atleast_1d(axes))
    for ax, (title, mask) in zip(axes, masks, strict=True):
        ax.imshow(
            np.isfinite(mask).astype(float),
            cmap=ListedColormap([HIDDEN, VISIBLE]),
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        rows, cols = mask.shape
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.set_xticks(np.arange(-0.5, cols), minor=True)
        ax.set_yticks(np.arange(-0.5, rows), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
        ax.set_title(title, fontsize=10)
    fig.legend(
        handles=[Patch(color=VISIBLE, label="0: may look"), Patch(color=HIDDEN, label="-inf")],
        loc="lower center",
        ncol=2,
        frameon=False,
    )
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.25, wspace=0.25)
    return _save(fig, path, axes)


MASK_SHAPES = ((6, 0), (2, 4))  # (sequence_length, num_tokens): no cache, then 2 new after 4


def learner_masks() -> list[tuple[str, np.ndarray]]:
    """The learner's step 3 causal_mask at MASK_SHAPES, as numpy arrays (it runs MAX eagerly)."""
    from max.driver import CPU
    from max.dtype import DType

    from checks.tensors import as_numpy

    causal_mask = harness.learner_attr(3, "causal_mask")
    found = []
    for length, cached in MASK_SHAPES:
        what = f"causal_mask({length}, {cached}, dtype=DType.float32, device=CPU())"
        mask = harness.call(what, causal_mask, length, cached, dtype=DType.float32, device=CPU())
        found.append((what.split(", dtype")[0] + ")", as_numpy(harness.not_none(what, mask), what)))
    return found


# --- sampling -----------------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def sampling_panels(
    logits: np.ndarray, temperatures: tuple[float, ...], top_k: int
) -> list[tuple[str, np.ndarray]]:
    """(title, probabilities [V]): softmax(z / T) at each temperature, then top-k at T = 1."""
    kth = np.sort(logits)[-top_k]
    kept = np.where(logits < kth, -np.inf, logits)
    return [
        *((f"softmax(z / {t})", softmax(logits / t)) for t in temperatures),
        (f"top-k, k = {top_k} (T = 1)", softmax(kept)),
    ]


def draw_sampling(
    panels: list[tuple[str, np.ndarray]],
    labels: dict[int, str],
    order: np.ndarray,
    path: Path,
    dpi: int = 100,
) -> list[PixelOf]:
    """One bar chart per (title, probabilities), the tokens `order` (by index) on the x axis,
    named by `labels`. Bar b (token order[b]) stands at x = b, up to its probability."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(10, 2.9), dpi=dpi, sharey=True)
    axes = list(np.atleast_1d(axes))
    top = max(float(probs[order].max()) for _, probs in panels)
    for ax, (title, probs) in zip(axes, panels, strict=True):
        ax.bar(range(len(order)), probs[order], color=BARS, width=0.7)
        ax.set_ylim(0, top * 1.1)
        ax.set_xticks(
            range(len(order)),
            [labels[i] for i in order],
            rotation=60,
            ha="right",
            rotation_mode="anchor",
            fontsize=8,
        )
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("probability")
    fig.subplots_adjust(left=0.07, right=0.99, top=0.9, bottom=0.24, wspace=0.06)
    return _save(fig, path, axes)


def word_tokens(tokenizer, vocab_size: int) -> np.ndarray:
    """[V] bools: the tokens that are a word or a piece of one (two or more ASCII letters, after
    an optional space). A random model ranks single bytes such as '\\x06' as high as words; the
    sampling picture leaves them out so that its labels can be read."""
    texts = (tokenizer.decode([token]) for token in range(vocab_size))
    return np.array([bool(re.fullmatch(r" ?[A-Za-z]{2,}", text)) for text in texts])


def quoted_label(tokenizer, token: int) -> str:
    """The token's text as Python writes a string: the quotes show a leading space."""
    text = tokenizer.decode([token])
    if "\ufffd" in text:  # a lone byte of a longer character: show the byte token itself
        text = tokenizer.convert_ids_to_tokens(token)
    return repr(text)


def token_label(tokenizer, token: int) -> str:
    text = tokenizer.decode([token])
    if "\ufffd" in text:  # a lone byte of a longer character: show the byte token itself
        text = tokenizer.convert_ids_to_tokens(token)
    return repr(text)[1:-1].replace(" ", "\u2423") or "''"  # ␣ shows a leading space


# --- attention ----------------------------------------------------------------------------------


def attention_weights(
    params: dict[str, np.ndarray], n_head: int, ids: list[int], eps: float = 1e-5
) -> np.ndarray:
    """GPT-2's attention weights `[n_layer, n_head, S, S]` for `ids`, from a model's parameters
    named as HuggingFace names them, with Linear weights `[out, in]` (MAX's layout)."""
    n_layer = 1 + max(int(k.split(".")[2]) for k in params if k.startswith("transformer.h."))

    def layer_norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * params[f"{name}.weight"] + params[f"{name}.bias"]

    def linear(x, name):
        return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    seq = len(ids)
    x = params["transformer.wte.weight"][ids] + params["transformer.wpe.weight"][:seq]
    hidden = np.triu(np.ones((seq, seq), dtype=bool), k=1)
    found = []
    for layer in range(n_layer):
        h = f"transformer.h.{layer}"
        q, k, v = np.split(linear(layer_norm(x, f"{h}.ln_1"), f"{h}.attn.c_attn"), 3, axis=-1)
        heads = [t.reshape(seq, n_head, -1).transpose(1, 0, 2) for t in (q, k, v)]  # [H, S, D]
        scores = heads[0] @ heads[1].transpose(0, 2, 1) / np.sqrt(heads[0].shape[-1])
        weights = np.stack([softmax_rows(np.where(hidden, -np.inf, s)) for s in scores])
        found.append(weights)
        merged = (weights @ heads[2]).transpose(1, 0, 2).reshape(seq, -1)
        x = x + linear(merged, f"{h}.attn.c_proj")
        y = linear(layer_norm(x, f"{h}.ln_2"), f"{h}.mlp.c_fc")
        y = 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y**3)))  # GELU (tanh)
        x = x + linear(y, f"{h}.mlp.c_proj")
    return np.stack(found)


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def draw_attention(
    weights: np.ndarray, tokens: list[str], title: str, path: Path, dpi: int = 100
) -> list[PixelOf]:
    """A heatmap per (layer, head) of weights `[L, H, S, S]` (viridis, 0 to 1): row i is the query,
    column j the key it reads. Panels go layer by layer, heads left to right; cell (i, j) is
    centred on data point (j, i)."""
    plt = _pyplot()
    layers, heads, seq, _ = weights.shape
    size = min(2.2, 12 / heads)
    fig, axes = plt.subplots(
        layers, heads, figsize=(size * heads + 1.2, size * layers + 1.0), dpi=dpi, squeeze=False
    )
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            image = ax.imshow(
                weights[layer, head], cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
                if seq <= 16:
                    ax.set_yticks(range(seq), tokens, fontsize=6)
            if layer == layers - 1 and seq <= 16:
                ax.set_xticks(range(seq), tokens, fontsize=6, rotation=90)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.88, top=0.9, bottom=0.16, wspace=0.08, hspace=0.12)
    fig.colorbar(image, cax=fig.add_axes([0.9, 0.16, 0.02, 0.74]), label="weight")
    return _save(fig, path, [ax for row in axes for ax in row])


def learner_attention(model: str, prompt: str) -> tuple[np.ndarray, list[str], str]:
    """(weights [L, H, S, S], token labels, what was drawn) for `prompt`: the learner's step 8
    model, loaded by the learner's step 11 transfer_weights, its parameters run through GPT-2's
    attention in numpy (step 4's attention returns only its output, not its weights)."""
    from max.experimental import functional as F

    from checks.tensors import as_numpy

    hf_model, tokenizer = harness.learner_attr(11, "load_huggingface")(model)
    config_class = harness.learner_attr(1, "GPT2Config")
    fields = config_class.__dataclass_fields__  # the same names as HuggingFace's config
    config = config_class(**{name: getattr(hf_model.config, name) for name in fields})
    with F.lazy():  # the weights come next: skip the random initialisation
        max_model = harness.learner_attr(8, "MaxGPT2LMHeadModel")(config)
    harness.call(
        "transfer_weights(hf_model, max_model)",
        harness.learner_attr(11, "transfer_weights"),
        hf_model,
        max_model,
    )
    params = harness.call(
        "reading your model's parameters after transfer_weights",
        lambda: {
            name: as_numpy(value, name).astype(np.float64) for name, value in max_model.parameters
        },
    )
    ids = tokenizer.encode(prompt)[: config.n_positions]
    if not ids:
        raise harness.LearnerError("The prompt has no tokens: give a sentence with --prompt.")
    tokens = [token_label(tokenizer, i) for i in ids]
    weights = attention_weights(params, config.n_head, ids, config.layer_norm_epsilon)
    return weights, tokens, f"{model}: {prompt!r}"


# --- the command line ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m checks show", description=__doc__.split("\n")[0]
    )
    parser.add_argument("picture", choices=("mask", "sampling", "attention", "loss"))
    harness.add_folder_options(parser, "draw")
    parser.add_argument("--out", type=Path, help="the PNG to write (build/figures/NAME.png)")
    parser.add_argument("--model", help="attention, loss, sampling: a model folder or hub name")
    parser.add_argument("--prompt", help="the text (sampling: Hello world; others: a sentence)")
    parser.add_argument("--top-k", type=int, default=5, help="sampling: k (5)")
    parser.add_argument(
        "--all-tokens",
        action="store_true",
        help="sampling: every token, also single bytes and marks (default: words and word pieces)",
    )
    args = parser.parse_args(argv)
    if args.picture in ("attention", "loss") and not args.model:
        parser.error(
            f"{args.picture} needs --model: a folder (python -m checks save-model DIR makes a small "
            "one) or gpt2 (online)"
        )
    return args


def sampling_logits(model: str | None, prompt: str):
    """(next-token logits [V], tokenizer): HuggingFace's model `model`, or step 10's check model."""
    from checks.tensors import torch_no_grad

    with torch_no_grad() as torch:
        if model is None:
            from checks.reference import sampling_model

            tokenizer, hf_model = sampling_model()
        else:
            hf_model, tokenizer = harness.learner_attr(11, "load_huggingface")(model)
        ids = torch.tensor([tokenizer.encode(prompt)[-hf_model.config.n_positions :]])
        return hf_model(ids).logits[0, -1].double().numpy(), tokenizer


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    path = args.out or FIGURES / f"{args.picture}.png"
    harness.use_steps_dir(harness.chosen_folder(args))
    try:
        if args.picture == "mask":
            harness.prepare_max()
            with harness.pinned_defaults():
                draw_masks(learner_masks(), path)
        elif args.picture == "sampling":
            logits, tokenizer = sampling_logits(args.model, args.prompt or "Hello world")
            if not args.all_tokens:
                logits = np.where(word_tokens(tokenizer, len(logits)), logits, -np.inf)
            panels = sampling_panels(logits, (0.7, 1.0, 1.6), args.top_k)
            order = np.argsort(-logits)[:12]
            labels = {int(i): quoted_label(tokenizer, int(i)) for i in order}
            draw_sampling(panels, labels, order, path)
        elif args.picture == "loss":
            from checks import show_loss

            harness.prepare_max()
            with harness.pinned_defaults():
                tokens, surprise, title = show_loss.learner_surprise(
                    args.model, args.prompt or show_loss.TEXT
                )
            show_loss.draw_surprise(tokens, surprise, title, path)
        else:
            harness.prepare_max()
            with harness.pinned_defaults():
                prompt = args.prompt or "The model reads the tokens before it."
                weights, tokens, title = learner_attention(args.model, prompt)
            draw_attention(weights, tokens, title, path)
    except harness.LearnerError as error:
        print(error)
        return 1
    print(f"Wrote {path}")
    return 0
