"""The loss chapter's picture: a text with each token shaded by its surprise, -ln p.

    python -m checks show loss --model DIR [--prompt TEXT]

The learner's own code computes every number: step 8's model with the weights their step 11's
transfer_weights loads, and the loss chapter's token_log_probs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from checks import harness
from checks.figures import pyplot, save

TEXT = "The quick brown fox jumps over the lazy dog."
UNPREDICTED = "#c8c8c8"  # the first token: nothing before it predicts it
COLOURS = "Purples"  # light: expected; dark: a surprise
CHARS_PER_LINE = 48


def colour_of(surprise: float, top: float) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    return colormaps[COLOURS](0.1 + 0.9 * min(surprise / top, 1.0))


def layout(tokens: list[str]) -> list[tuple[int, int, int]]:
    """(line, first column, width in characters) of each token, wrapped at CHARS_PER_LINE."""
    places, line, column = [], 0, 0
    for token in tokens:
        width = max(len(token), 2)  # a lone character still gets a box to see
        if column and column + width > CHARS_PER_LINE:
            line, column = line + 1, 0
        places.append((line, column, width))
        column += width
    return places


def draw_surprise(
    tokens: list[str], surprise: list[float], title: str, path: Path, dpi: int = 100
) -> list[tuple[int, int]]:
    """`tokens` as text, each on a box shaded by its surprise (`surprise[i]` is token i + 1's;
    token 0 is grey). Returns a point of each box, clear of its text, in the PNG's pixels
    (column, row from the top)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    plt = pyplot()
    places = layout(tokens)
    lines = places[-1][0] + 1
    top = max(max(surprise, default=1.0), 1e-9)
    fig = plt.figure(figsize=(7.5, 1.2 + 0.45 * lines), dpi=dpi)
    ax = fig.add_axes([0.02, 0.3, 0.8, 0.55])
    ax.set_xlim(0, CHARS_PER_LINE)
    ax.set_ylim(lines, 0)
    ax.axis("off")
    corners = []
    for index, (token, (line, column, width)) in enumerate(zip(tokens, places, strict=True)):
        colour = UNPREDICTED if index == 0 else colour_of(surprise[index - 1], top)
        ax.add_patch(Rectangle((column, line + 0.1), width, 0.8, color=colour, linewidth=0))
        dark = index > 0 and surprise[index - 1] > 0.6 * top
        ax.text(
            column + width / 2,
            line + 0.5,
            token.replace(" ", "\u2423"),
            ha="center",
            va="center",
            family="monospace",
            fontsize=9,
            color="white" if dark else "black",
        )
        corners.append((column + 0.25, line + 0.2))
    scale = ScalarMappable(Normalize(0, top), plt.get_cmap(COLOURS))
    bar = fig.colorbar(scale, cax=fig.add_axes([0.85, 0.3, 0.02, 0.55]))
    bar.set_label("surprise −ln p (nats)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    pixel_of = save(fig, path, [ax])[0]
    return [pixel_of(x, y) for x, y in corners]


def learner_surprise(model: str, text: str) -> tuple[list[str], list[float], str]:
    """(token texts, surprise of each token after the first, title): the learner's step 8 model
    with the weights their step 11 loads, scored by their token_log_probs, all eagerly."""
    from max.experimental import functional as F

    from checks.tensors import as_numpy, max_tensor

    hf_model, tokenizer = harness.learner_attr(11, "load_huggingface")(model)
    config_class = harness.learner_attr(1, "GPT2Config")
    config = config_class(
        **{name: getattr(hf_model.config, name) for name in config_class.__dataclass_fields__}
    )
    with F.lazy():  # the weights come next: skip the random initialisation
        max_model = harness.learner_attr(8, "MaxGPT2LMHeadModel")(config)
    transfer = harness.learner_attr(11, "transfer_weights")
    harness.call("transfer_weights(hf_model, max_model)", transfer, hf_model, max_model)
    ids = tokenizer.encode(text)[: config.n_positions]
    if len(ids) < 2:
        raise harness.LearnerError("The text needs two tokens or more: give one with --prompt.")
    ids_tensor = max_tensor(np.array([ids], dtype=np.int64))
    logits = harness.call("MaxGPT2LMHeadModel.forward", max_model, ids_tensor)
    token_log_probs = harness.learner_attr(harness.parse_step("loss"), "token_log_probs")
    what = "token_log_probs(logits, ids)"
    log_probs = harness.call(what, token_log_probs, logits, ids_tensor)
    surprise = -as_numpy(harness.not_none(what, log_probs), what).astype(np.float64)[0]
    loss = float(surprise.mean())
    title = f"{model}: loss {loss:.2f} nats, perplexity {np.exp(loss):.3g}"
    return [tokenizer.decode([i]) for i in ids], surprise.tolist(), title
