"""Every number the loss chapter's page states, recomputed: the worked example, float32's and
bfloat16's limits, the losses of a fresh and of the checks' seeded small GPT-2 (HuggingFace's
PyTorch model, no MAX), and the GPT-2 paper's table as this test pins it. The numbers are read
from the page, so a change on either side fails here."""

import math
import re

import numpy as np
import pytest

from checks import loss_judging, test_ext_loss
from checks.reference import SMALL, hf_config
from tests.conftest import ROOT

pytestmark = pytest.mark.fast
PAGE = ROOT / "docs" / "steps" / "loss.md"
NUMBER = r"(\d+(?:\.\d+)?)"


@pytest.fixture(scope="module")
def text() -> str:
    """The page's source on one line (the numbers may sit across a line break)."""
    return " ".join(PAGE.read_text().split())


def found(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    assert match, f"loss.md no longer says {pattern!r}: update the page or this test"
    return match.groups()


def numbers(group: str) -> np.ndarray:
    return np.array([float(x) for x in group.strip("()").split(",")])


def test_the_worked_example_is_right(text):
    vocabulary = ["the", "cat", "sat", "mat"]
    assert "four tokens, `the`, `cat`, `sat`, `mat`" in text
    rows = re.findall(
        r"\| (\d) \| [\w ]+ \| (\([\d., ]+\)) \| (\([\d., ]+\)) \| (\w+) \| ([\d.]+) \| ([\d.]+) \|",
        PAGE.read_text(),
    )
    assert len(rows) == 2, rows
    probabilities = []
    for position, logits, shown, after, p, surprise in rows:
        e = np.exp(numbers(logits))
        softmax = e / e.sum()
        assert [f"{q:.3f}" for q in softmax] == [f"{q:.3f}" for q in numbers(shown)], position
        assert f"{softmax[vocabulary.index(after)]:.2f}" == p, position
        assert f"{-math.log(float(p)):.3f}" == surprise, position
        probabilities.append(float(p))
    loss = -np.mean(np.log(probabilities))
    a, b, mean = found(rf"\\\(\({NUMBER} \+ {NUMBER}\) / 2 = {NUMBER}\\\) nats", text)
    assert (a, b) == tuple(row[5] for row in rows) and mean == f"{loss:.3f}"
    assert math.isclose(-math.log(probabilities[1]), -2 * math.log(probabilities[0]))
    assert "`sat` costs twice the first position's surprise" in text
    exponent, perplexity = found(rf"here \\\(e\^{{{NUMBER}}} = {NUMBER}\\\)", text)
    assert exponent == mean and perplexity == f"{math.exp(loss):.2f}"
    k, uniform, same_k = found(
        rf"a loss of \\\(\\ln (\d) = {NUMBER}\\\) and a perplexity of (\d)", text
    )
    assert (
        int(k) == int(same_k) == len(vocabulary) and uniform == f"{math.log(len(vocabulary)):.3f}"
    )
    assert f"this model, at {perplexity}, beats that guess" in text
    assert math.exp(loss) < len(vocabulary)


def test_the_checks_batches_are_counted_right(text):
    batch, length, predictions = found(r"batch of (\d+) texts of (\d+) tokens gives (\d+)\)", text)
    assert (int(batch), int(length)) == (test_ext_loss.BATCH, test_ext_loss.SEQ_LEN)
    assert int(predictions) == test_ext_loss.BATCH * (test_ext_loss.SEQ_LEN - 1)
    first, second, counted, of = found(
        r"texts of (\d+) and (\d+) tokens, (\d+) of the (\d+) pairs count", text
    )
    assert (int(first), int(second)) == test_ext_loss.LENGTHS
    mask = np.array([[1] * n + [0] * (test_ext_loss.SEQ_LEN - n) for n in test_ext_loss.LENGTHS])
    assert int(counted) == int((mask[:, :-1] * mask[:, 1:]).sum())
    assert int(of) == int(predictions)
    import torch

    assert f"the label −{-torch.nn.CrossEntropyLoss().ignore_index}, which its loss skips" in text
    assert f"from logits {test_ext_loss.CONFIDENT:g} times larger" in text


def test_float32_and_bfloat16_limits(text):
    gap, tiny_p = found(
        r"logit is (\d+) below the best one has probability "
        r"\\\(e\^\{-\d+\} \\approx ([\d.]+ \\cdot 10\^\{-\d+\})\\\)",
        text,
    )
    assert f"\\(e^{{-{gap}}}" in text

    def scientific(value: float) -> str:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa} \\cdot 10^{{{int(exponent)}}}"

    assert tiny_p == scientific(math.exp(-int(gap)))
    finfo = np.finfo(np.float32)
    assert f"loses digits below \\({scientific(finfo.tiny)}\\)" in text
    assert f"no positive number below \\({scientific(finfo.smallest_subnormal)}\\)" in text
    logits = np.array([0.0, -float(gap)], dtype=np.float32)
    e = np.exp(logits - logits.max())
    with np.errstate(divide="ignore"):
        assert np.log(e / e.sum())[1] == -np.inf  # the log of the softmax
    log_softmax = loss_judging.log_softmax(logits)
    assert round(float(log_softmax[1])) == -int(gap) and f"about −{gap} for that token" in text

    import torch

    assert "between 4 and 8 its numbers are 1/32 apart" in text
    assert 4 * torch.finfo(torch.bfloat16).eps == 1 / 32
    before, after = found(rf"log-probability of −{NUMBER} would be stored as −{NUMBER}", text)
    stored = float(torch.tensor(-float(before)).bfloat16().float())
    assert -stored == float(after)


@pytest.fixture(scope="module")
def reference() -> dict:
    """The checks' own reference for the loss chapter: their seeded model, its ids and loss."""
    return test_ext_loss.reference()


def test_a_fresh_model_spreads_its_bets_evenly(text, reference):
    import torch
    from transformers import GPT2LMHeadModel

    layers, width, vocabulary = found(
        r"\((\d+) layers, (\d+) wide, a vocabulary of (\d+) tokens; "
        r"`GPT2LMHeadModel\(config\)` after `torch.manual_seed\(0\)`\)",
        text,
    )
    assert (int(layers), int(width), int(vocabulary)) == (
        SMALL.n_layer,
        SMALL.n_embd,
        SMALL.vocab_size,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(hf_config(SMALL)).eval()
    ids = torch.tensor(reference["ids"])
    loss = float(model(ids, labels=ids).loss)
    shown_loss, shown_perplexity, n, uniform = found(
        rf"random ids at a loss of {NUMBER} nats, a perplexity of (\d+), next to "
        rf"\\\(\\ln (\d+) = {NUMBER}\\\)",
        text,
    )
    assert shown_loss == f"{loss:.3f}"
    assert shown_perplexity == f"{math.exp(loss):.0f}"
    assert int(n) == SMALL.vocab_size and uniform == f"{math.log(SMALL.vocab_size):.2f}"
    std = found(r"with a standard deviation of ([\d.]+)", text)[0]
    assert float(std) == hf_config(SMALL).initializer_range
    assert abs(loss - math.log(SMALL.vocab_size)) < 0.1  # "nearly even"


def test_the_checks_seeded_model_is_confidently_wrong(text, reference):
    loss = reference["loss"]
    shown_loss, mantissa, exponent = found(
        rf"a loss of {NUMBER} nats on the same ids, a perplexity of "
        r"\\\(([\d.]+) \\cdot 10\^\{(\d+)\}\\\)",
        text,
    )
    assert shown_loss == f"{loss:.1f}"
    assert f"{mantissa}e+{int(exponent):02d}" == f"{math.exp(loss):.1e}"
    assert loss > math.log(SMALL.vocab_size) + 10  # "far worse than the even spread"


# Radford et al., 2019, "Language Models are Unsupervised Multitask Learners", Table 3, the
# 117M model (GPT-2 small), zero-shot perplexities. Pinned here as read from the paper; the page
# must quote them as they are.
PAPER = "https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf"
TABLE_3 = {
    "WikiText-2": "29.41",
    "Penn Treebank": "65.85",
    "LAMBADA": "35.13",
    "WikiText-103": "37.50",
}


def test_the_papers_perplexities_are_quoted_as_published(text):
    rows = dict(re.findall(r"^\| ([\w-]+(?: \w+)?) \| (\d+\.\d+) \|$", PAGE.read_text(), re.M))
    assert rows == TABLE_3
    assert f"({PAPER})" in text and "Table 3" in text and '"117M"' in text
    assert (ROOT / "docs" / "next.md").read_text().count(PAPER) == 1, "the same link as next.md"


def test_the_figure_caption_is_the_saved_models(text, tmp_path):
    """The caption's numbers are HuggingFace's for the model `save-model` writes (the figure itself
    draws the learner's numbers for that model: tests/test_show.py holds its colours)."""
    import torch
    import transformers

    from checks.reference import save_small_model
    from checks.show_loss import TEXT

    folder = save_small_model(tmp_path / "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor([tokenizer.encode(TEXT)])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    surprise = -log_probs[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
    loss = float(surprise.mean())
    shown_loss, mantissa, exponent, token, most = found(
        rf"On this text its loss is {NUMBER} nats, a perplexity of "
        rf"\\\(([\d.]+) \\cdot 10\^\{{(\d+)\}}\\\), and `(.+?)` surprises it most, at {NUMBER} nats",
        text,
    )
    assert shown_loss == f"{loss:.2f}"
    assert f"{mantissa}e{int(exponent):+03d}" == f"{math.exp(loss):.1e}"
    top = int(surprise.argmax())
    assert (
        token == tokenizer.decode([int(ids[0, top + 1])]) and most == f"{float(surprise[top]):.1f}"
    )
