"""`python -m checks show ...` draws the numbers it is given: each PNG is written, is not blank, and
has the expected colour where each computed number is drawn (decoded with test_docs' decoder, in
pure Python: the tests draw at a lower dpi than the pages' pictures to stay fast)."""

from pathlib import Path

import numpy as np
import pytest

from checks import show
from tests.test_docs import png_top_rows


def pixels(path: Path) -> list[list[tuple[int, int, int]]]:
    """Every RGB pixel of the PNG at `path`, rows from the top."""
    from PIL import Image

    with Image.open(path) as image:
        height = image.height
    return png_top_rows(path, height)[1]


def rgb(colour: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    return tuple(round(255 * c) for c in to_rgb(colour))


def additive_mask(length: int, cached: int) -> np.ndarray:
    """0 where key j <= query i + cached, -inf elsewhere: the step 3 page's formula."""
    i, j = np.arange(length)[:, None], np.arange(cached + length)[None, :]
    return np.where(j <= i + cached, 0.0, -np.inf)


@pytest.mark.fast
def test_mask_picture_colours_each_cell_by_the_mask(tmp_path):
    masks = [(f"{s}, {n}", additive_mask(s, n)) for s, n in show.MASK_SHAPES]
    path = tmp_path / "mask.png"
    where = show.draw_masks(masks, path, dpi=60)
    image = pixels(path)
    for (_, mask), pixel_of in zip(masks, where, strict=True):
        for (i, j), value in np.ndenumerate(mask):
            x, y = pixel_of(j, i)
            expected = show.VISIBLE if np.isfinite(value) else show.HIDDEN
            assert image[y][x] == rgb(expected), (i, j, value, image[y][x])
    assert any(np.isinf(m).any() for _, m in masks) and any((m == 0).any() for _, m in masks)


@pytest.mark.fast
def test_sampling_picture_draws_each_probability_as_a_bar(tmp_path):
    logits = np.random.default_rng(3).normal(0, 1.5, size=30)
    order = np.argsort(-logits)[:12]
    panels = show.sampling_panels(logits, (0.7, 1.6), top_k=4)
    # The expected heights, computed here: softmax(z / T), and softmax over the 4 largest.
    expected = [np.exp(logits / t) / np.exp(logits / t).sum() for t in (0.7, 1.6)]
    top4 = np.exp(logits[order[:4]]) / np.exp(logits[order[:4]]).sum()
    expected.append(np.zeros(30))
    expected[-1][order[:4]] = top4
    for (_, got), want in zip(panels, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)
    path = tmp_path / "sampling.png"
    where = show.draw_sampling(panels, {int(i): str(i) for i in order}, order, path, dpi=60)
    image = pixels(path)
    tallest = max(float(p[order].max()) for p in expected)
    for probs, pixel_of in zip(expected, where, strict=True):
        for bar, token in enumerate(order):
            # The bar's colour just below its top, the background just above it.
            x, y_below = pixel_of(bar, probs[token] - 0.04 * tallest)
            _, y_above = pixel_of(bar, probs[token] + 0.04 * tallest)
            if probs[token] > 0.08 * tallest:  # tall enough to look inside
                assert image[y_below][x] == rgb(show.BARS), (bar, probs[token])
            assert image[y_above][x] != rgb(show.BARS), (bar, probs[token])


def test_attention_weights_are_huggingfaces_and_drawn_cell_by_cell(tmp_path):
    from matplotlib import colormaps

    import torch

    from checks.reference import SMALL, hf_lm_model

    model = hf_lm_model(SMALL, seed=4)
    model.set_attn_implementation("eager")  # the implementation that returns its weights
    ids = [5, 17, 3, 42, 8, 99]
    expected = model(torch.tensor([ids]), output_attentions=True).attentions
    expected = np.stack([a[0].double().numpy() for a in expected])  # [L, H, S, S]
    # MAX's Linear layout [out, in]: HuggingFace's Conv1D weights transposed, as step 11 loads.
    conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    params = {
        k: (v.T if k.endswith(conv1d) else v).double().numpy()
        for k, v in model.state_dict().items()
    }
    got = show.attention_weights(params, SMALL.n_head, ids)
    np.testing.assert_allclose(got, expected, atol=1e-6)

    path = tmp_path / "attention.png"
    where = show.draw_attention(got, [str(i) for i in ids], "test", path, dpi=40)
    image = pixels(path)
    viridis = colormaps["viridis"]
    for panel, pixel_of in enumerate(where):
        layer, head = divmod(panel, SMALL.n_head)
        for (i, j), weight in np.ndenumerate(expected[layer, head]):
            x, y = pixel_of(j, i)
            want = np.array(rgb(viridis(weight)[:3]))
            assert np.abs(np.array(image[y][x]) - want).max() <= 3, (layer, head, i, j, weight)
    assert expected[:, :, 0, 1].max() == 0  # the masked cells really are drawn at weight 0


@pytest.mark.fast
def test_attention_without_a_model_says_how_to_get_one(capsys):
    with pytest.raises(SystemExit):
        show.parse_args(["attention"])
    assert "save-model DIR" in capsys.readouterr().err


def test_sampling_command_writes_its_picture(tmp_path, capsys):
    """The whole command (no MAX, but HuggingFace's model: not in the fast tier): the PNG is
    written and has bars in it."""
    path = tmp_path / "sampling.png"
    assert show.main(["sampling", "--out", str(path)]) == 0
    assert f"Wrote {path}" in capsys.readouterr().out
    image = pixels(path)
    assert sum(row.count(rgb(show.BARS)) for row in image) > 1000


@pytest.mark.fast
def test_sampling_picture_labels_are_words_and_word_pieces():
    """The picture leaves out single bytes (a random model ranks '\\x06' as high as ' world') and
    labels each bar with its token's text in quotes, which show a leading space."""
    from checks.reference import SMALL, local_tokenizer

    tokenizer = local_tokenizer(model_max_length=SMALL.n_positions)
    kept = show.word_tokens(tokenizer, SMALL.vocab_size)
    texts = [tokenizer.decode([token]) for token in range(SMALL.vocab_size)]
    assert kept[texts.index(" world")] and kept[texts.index("oken")]
    assert not kept[6] and not kept[texts.index("/")] and not kept[tokenizer.eos_token_id]
    assert all(
        text.strip().isalpha() and text.isascii() for text, k in zip(texts, kept, strict=True) if k
    )
    assert 20 <= kept.sum() < SMALL.vocab_size / 2, kept.sum()
    assert show.quoted_label(tokenizer, texts.index(" world")) == "' world'"


@pytest.mark.fast
def test_loss_picture_shades_each_token_by_its_surprise(tmp_path):
    from checks import show_loss

    tokens = [
        "The",
        " quick",
        " brown",
        " fox",
        " jumps",
        " over",
        " the",
        " lazy",
        " dog",
        ".",
    ] * 2
    surprise = list(np.random.default_rng(5).uniform(0, 12, size=len(tokens) - 1))
    path = tmp_path / "loss.png"
    where = show_loss.draw_surprise(tokens, surprise, "test", path, dpi=60)
    image = pixels(path)
    top = max(surprise)
    assert image[where[0][1]][where[0][0]] == rgb(show_loss.UNPREDICTED)
    for (x, y), value in zip(where[1:], surprise, strict=True):
        expected = tuple(round(255 * c) for c in show_loss.colour_of(value, top)[:3])
        assert max(abs(a - b) for a, b in zip(image[y][x], expected, strict=True)) <= 1, value
    assert len({y for _, y in where}) == 2, "twenty tokens wrap onto a second line"


def test_loss_command_scores_with_the_learners_code_as_huggingface_does(tmp_path, monkeypatch):
    """`show loss --model DIR --solutions` (MAX, eagerly): the surprises it draws are HuggingFace's
    for that model, and the picture is written."""
    import torch
    import transformers

    from checks import show_loss
    from checks.reference import save_small_model

    folder = str(save_small_model(tmp_path / "model"))
    drawn = {}
    draw = show_loss.draw_surprise
    monkeypatch.setattr(
        show_loss,
        "draw_surprise",
        lambda tokens, surprise, title, path: (
            drawn.update(surprise=surprise, title=title)
            or draw(tokens, surprise, title, path, dpi=40)
        ),
    )
    path = tmp_path / "loss.png"
    assert show.main(["loss", "--model", folder, "--solutions", "--out", str(path)]) == 0
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor([transformers.AutoTokenizer.from_pretrained(folder).encode(show_loss.TEXT)])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    expected = -log_probs[torch.arange(ids.shape[1] - 1), ids[0, 1:]].numpy()
    np.testing.assert_allclose(drawn["surprise"], expected, rtol=1e-4, atol=1e-3)
    assert f"loss {expected.mean():.2f} nats" in drawn["title"] and path.exists()
