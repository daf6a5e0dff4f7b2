"""The checks' GPT-2 style tokenizer, trained here on a small corpus (no hub needed)."""

from __future__ import annotations

from typing import Any

from checks.options import ROOT

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
    folder = ROOT / "build" / "tokenizer"
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


def quiet_transformers() -> None:
    """No progress bars or warnings from transformers and the hub in a learner's report."""
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.set_verbosity_error()  # e.g. step 10 feeds prompts over the context
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
