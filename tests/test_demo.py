"""The reference demo (`pixi run gpt2-reference`) end to end on a small local model, and the learner's."""

import re
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, run_command
from tests.test_pixi_tasks import command


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from checks.reference import save_small_model

    # Readable: its greedy text is printable ASCII, so a wrong token shows in the text.
    return str(save_small_model(tmp_path_factory.mktemp("demo") / "model", readable=True))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """What `python -m checks save-model DIR` saves, as step 11's page runs it."""
    from checks.reference import save_small_model

    return str(save_small_model(tmp_path_factory.mktemp("saved") / "model"))


def huggingface(model_folder: str):
    import transformers

    from checks.reference import quiet_transformers

    quiet_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_folder)
    return tokenizer, transformers.GPT2LMHeadModel.from_pretrained(model_folder).eval()


def next_token_logits(model, ids: list[int]):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1]


def huggingface_greedy_text(model_folder: str, prompt: str, new_tokens: int) -> str:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_folder)
    model = transformers.GPT2LMHeadModel.from_pretrained(model_folder).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            do_sample=False,
            max_new_tokens=new_tokens,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,  # the demo stops there too
        )
    return prompt + tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_the_readme_demo_prints_huggingfaces_greedy_text(small_model):
    """The README's offline command: `python3 solutions/step_11.py --model DIR ... --greedy`."""
    prompt, new_tokens = "Hello world", 6
    args = ["--model", small_model, "--prompt", prompt, "--greedy"]
    run = run_command(
        [sys.executable, str(ROOT / "solutions" / "step_11.py"), *args, "--max-new-tokens", "6"]
    )
    assert run.code == 0 and "Traceback" not in run.output, run.output
    expected = huggingface_greedy_text(small_model, prompt, new_tokens)
    assert len(expected) > len(prompt), "the model generated nothing: the test would be vacuous"
    assert run.stdout.splitlines()[-1] == expected, run.output


def test_interactive_and_awkward_input(small_model):
    long_prompt = (
        "Language models predict the next token. " * 20
    )  # longer than the 24-token context
    stdin = f"hello\n\nnaïve café 🙂\n{long_prompt}\nquit\n"
    run = run_command(
        command("gpt2-reference", "--model", small_model, "--max-new-tokens", "4", "--seed", "1"),
        stdin=stdin,
    )
    assert run.code == 0, run.output
    assert "Please type a prompt" in run.output and "Traceback" not in run.output
    run = run_command(command("gpt2-reference", "--model", small_model), stdin="")  # end of input
    assert run.code == 0 and "Traceback" not in run.output, run.output


def test_offline_without_a_cached_model_says_so_in_a_paragraph(tmp_path):
    run = run_command(
        command("gpt2-reference", "--prompt", "Hi"), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path)
    )
    assert run.code == 1, run.output
    assert "can't be reached" in run.output and "--model" in run.output
    assert "Traceback" not in run.output


def test_learner_demo_names_the_step_to_finish(small_model):
    run = run_command(command("gpt2", "--model", small_model, "--prompt", "Hi"))
    assert run.code == 1, run.output
    assert "Finish step" in run.output and "Traceback" not in run.output


def test_kv_cache_demo_gives_the_simple_models_text(small_model):
    """gpt2-reference runs the KV-cache model; --no-cache runs step 11's; greedy text is the same."""
    args = ["--model", small_model, "--prompt", "Hello world", "--greedy", "--max-new-tokens", "8"]
    cached = run_command(command("gpt2-reference", *args))
    simple = run_command(command("gpt2-reference", *args, "--no-cache"))
    assert cached.code == 0 and simple.code == 0, cached.output + simple.output
    # build_model names the class it compiles: the cache's, or step 8's
    assert "Compiling CachedGPT2LMHeadModel (" in cached.output, cached.output
    assert "Compiling MaxGPT2LMHeadModel (" in simple.output, simple.output
    assert cached.stdout.splitlines()[-1] == simple.stdout.splitlines()[-1]
    assert cached.stdout.splitlines()[-1].startswith("Hello world")


def top_k_paths(tokenizer, model, ids: list[int], text: str, k: int, depth: int) -> bool:
    """Whether `text` is, token by token, a sequence of at most `depth` tokens each of which
    HuggingFace's TopKLogitsWarper(k) keeps after the ids before it (decoded text can split into
    tokens in more than one way, so every way is tried)."""
    from transformers.generation.logits_process import TopKLogitsWarper

    if not text:
        return True
    if depth == 0:
        return False
    scores = TopKLogitsWarper(top_k=k)(None, next_token_logits(model, ids)[None])[0]
    for token in scores.isfinite().nonzero().flatten().tolist():
        piece = tokenizer.decode([token])
        if piece and text.startswith(piece):
            if top_k_paths(tokenizer, model, ids + [token], text[len(piece) :], k, depth - 1):
                return True
    return False


def test_top_k_draws_only_tokens_huggingfaces_top_k_warper_keeps(small_model):
    """`--top-k 3`: every sampled token is among the three HuggingFace's warper keeps; `--top-k 1`
    is greedy. At temperature 4 the small model's distribution is flat enough that a draw from
    all of it leaves the top 3."""
    tokenizer, model = huggingface(small_model)
    prompt, new_tokens = "Hello world", 8
    args = ["--model", small_model, "--prompt", prompt, "--max-new-tokens", str(new_tokens)]
    args += ["--temperature", "4"]
    run = run_command(command("gpt2-reference", *args, "--top-k", "3", "--seed", "2"))
    assert run.code == 0 and "Traceback" not in run.output, run.output
    text = run.stdout.splitlines()[-1]
    assert text.startswith(prompt) and len(text) > len(prompt), run.output
    ids = tokenizer(prompt).input_ids
    assert top_k_paths(tokenizer, model, ids, text[len(prompt) :], 3, new_tokens), (
        f"{text!r} has a token outside HuggingFace's top 3"
    )
    # The check can fail: the same seed with no top-k draws tokens outside the top 3.
    unfiltered = run_command(command("gpt2-reference", *args, "--seed", "2")).stdout.splitlines()
    assert not top_k_paths(tokenizer, model, ids, unfiltered[-1][len(prompt) :], 3, new_tokens)
    greedy = run_command(command("gpt2-reference", *args, "--top-k", "1", "--seed", "2"))
    assert greedy.stdout.splitlines()[-1] == huggingface_greedy_text(
        small_model, prompt, new_tokens
    )


CANDIDATES = ROOT / "docs" / "examples" / "gpt2_candidates.txt"
CANDIDATES_PROMPT = "Hello world"  # step 11's page shows this prompt's block


def expected_candidates(model_folder: str, prompt: str, count: int) -> list[tuple[str, float]]:
    """(token as Python writes it, probability) of the `count` likeliest next tokens, by
    HuggingFace: softmax of the last position's logits."""
    tokenizer, model = huggingface(model_folder)
    probs = next_token_logits(model, tokenizer(prompt).input_ids).double().softmax(-1).numpy()
    found = []
    for token in np.argsort(-probs, kind="stable")[:count]:
        text = tokenizer.decode([int(token)])
        if "\ufffd" in text:
            text = tokenizer.convert_ids_to_tokens(int(token))
        found.append((repr(text), float(probs[token])))
    return found


def printed_candidates(output: str) -> list[tuple[str, float]]:
    rows = re.findall(r"^ +\d+\. ('.*?'|\".*?\") +([\d.]+)%$", output, re.M)
    return [(token, float(percent) / 100) for token, percent in rows]


def same_candidates(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [t for t, _ in got] == [t for t, _ in want], (got, want)
    np.testing.assert_allclose([p for _, p in got], [p for _, p in want], atol=0.00006)


@pytest.mark.fast
def test_the_pages_candidates_are_huggingfaces_for_the_saved_model(tmp_path):
    """docs/examples/gpt2_candidates.txt, on step 11's page, is the model `save-model` writes, as
    HuggingFace computes it (the demo printing the same is the next test's)."""
    from checks.reference import save_small_model

    folder = str(save_small_model(tmp_path / "model"))
    shown = CANDIDATES.read_text()
    assert shown.splitlines()[0] == f"The 5 likeliest next tokens after {CANDIDATES_PROMPT!r}:"
    same_candidates(printed_candidates(shown), expected_candidates(folder, CANDIDATES_PROMPT, 5))


def test_candidates_print_huggingfaces_probabilities(saved_model):
    """`--candidates 5` prints HuggingFace's five likeliest next tokens and their probabilities,
    and exactly the block step 11's page shows."""
    args = ["--model", saved_model, "--prompt", CANDIDATES_PROMPT, "--candidates", "5"]
    run = run_command(command("gpt2-reference", *args))
    assert run.code == 0 and "Traceback" not in run.output, run.output
    got = printed_candidates(run.stdout)
    same_candidates(got, expected_candidates(saved_model, CANDIDATES_PROMPT, 5))
    assert run.stdout.endswith(CANDIDATES.read_text()), (
        f"docs/examples/gpt2_candidates.txt is stale: the demo now prints\n{run.stdout}"
    )


SCORED_TEXT = "The quick brown fox jumps over the lazy dog."


def test_score_prints_huggingfaces_loss(saved_model):
    """`--score TEXT` prints the loss chapter's score of TEXT under the saved small model: the loss
    HuggingFace computes with labels=ids, its perplexity, and the most surprising tokens."""
    import math

    import torch

    # MAX's default eager executor also compiles each eager op in the background (8 graphs, 90 s
    # on a cold cache here); its interpreter computes the same numbers at once.
    args = command("gpt2-reference", "--model", saved_model, "--score", SCORED_TEXT)
    run = run_command(args, MAX_EAGER_EXECUTOR="interpreter")
    assert run.code == 0 and "Traceback" not in run.output, run.output
    found = re.search(r"Loss (\S+) nats per token, perplexity (\S+),", run.stdout)
    assert found, run.stdout
    tokenizer, model = huggingface(saved_model)
    ids = torch.tensor([tokenizer.encode(SCORED_TEXT)])
    with torch.no_grad():
        expected = float(model(ids, labels=ids).loss)
    assert abs(float(found[1]) - expected) < 1e-3, (found[1], expected)
    assert math.isclose(float(found[2]), math.exp(expected), rel_tol=1e-3), (found[2], expected)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    surprise = -log_probs[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
    most = int(surprise.argmax())
    first = re.search(r"\n   1\. (.+?)\s+(\S+)\n", run.stdout)
    assert first and first[1] == repr(tokenizer.decode([int(ids[0, most + 1])])), run.stdout
    assert abs(float(first[2]) - float(surprise[most])) < 1e-3, run.stdout


@pytest.mark.fast
def test_bfloat16_on_a_cpu_without_amx_sends_only_prompts_to_a_float32_copy(monkeypatch):
    """The Mojo chapter's model in bfloat16 on a CPU without AMX: a second build in float32
    answers calls of more than `few` new tokens, with the cache; decoding stays on the bfloat16
    model; float32, bfloat16 on a GPU, and bfloat16 on a CPU with AMX build once."""
    from types import SimpleNamespace

    from max.driver import CPU
    from max.dtype import DType
    from max.experimental.tensor import default_dtype, defaults

    monkeypatch.syspath_prepend(str(ROOT / "steps"))
    import gpt2_demo

    monkeypatch.setattr(gpt2_demo, "amx_usable", lambda: False)
    builds, classes, config = [], [], SimpleNamespace(n_head=2, n_embd=4, n_layer=1)

    def builder(device):
        def build_model(name, model_class, input_types):
            cache_dtype = input_types(config, CPU())[1].dtype
            builds.append((model_class.__name__, defaults()[0], cache_dtype))
            classes.append(model_class)
            built = len(builds)
            return (lambda ids, *cache: (built, cache)), "tokenizer", device, config

        return build_model

    class Model:  # the model that decodes
        pass

    class Plain:  # the one the prompts run on
        pass

    def ids(count: int):
        return SimpleNamespace(shape=[1, count])

    with default_dtype(DType.bfloat16):
        model = gpt2_demo.with_float32_prompts(builder(CPU()), "folder", Model, Plain, few=4)[0]
    assert builds == [
        ("Model", DType.bfloat16, DType.bfloat16),
        ("Float32Prompts", DType.float32, DType.bfloat16),  # float32 weights, bfloat16 caches
    ]
    assert issubclass(classes[1], Plain) and not issubclass(classes[1], Model)
    assert [model(ids(n), "cache")[0] for n in (1, 4, 5, 512)] == [1, 1, 2, 2]
    assert model(ids(512), "k", "v")[1] == model(ids(1), "k", "v")[1] == ("k", "v")
    for dtype, device in [(DType.float32, CPU()), (DType.bfloat16, SimpleNamespace(is_host=False))]:
        builds.clear()
        with default_dtype(dtype):
            model, *_ = gpt2_demo.with_float32_prompts(builder(device), "folder", Model, Plain, 4)
        assert builds == [("Model", dtype, dtype)] and model(ids(512))[0] == 1
    monkeypatch.setattr(gpt2_demo, "amx_usable", lambda: True)
    for amx_prompts, expected in [(True, 1), (False, 2)]:  # only a model that uses many_rows
        builds.clear()
        with default_dtype(DType.bfloat16):
            model, *_ = gpt2_demo.with_float32_prompts(
                builder(CPU()), "folder", Model, Plain, 4, amx_prompts=amx_prompts
            )
        assert len(builds) == expected and model(ids(512))[0] == expected


@pytest.mark.fast
def test_amx_is_used_where_the_cpu_lists_it_and_linux_grants_the_tiles(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "steps"))
    import gpt2_demo

    granted, answers = [], []

    class Syscall:
        restype = None

        def __call__(self, *args):
            granted.append(args)
            return answers[-1]

    class Libc:
        syscall = Syscall()

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(gpt2_demo, "CPUINFO", cpuinfo)
    monkeypatch.setattr(gpt2_demo.ctypes, "CDLL", lambda _: Libc())
    monkeypatch.setattr(gpt2_demo.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(gpt2_demo.sys, "platform", "linux")
    for flags, answer, usable in [
        ("fpu avx512f amx_bf16 amx_tile avx512_bf16", 0, True),
        ("fpu avx512f amx_bf16 amx_tile", -1, False),  # Linux refused the tiles
        ("fpu avx512f avx512_bf16", 0, False),  # no AMX
    ]:
        answers.append(answer)
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        gpt2_demo.amx_usable.cache_clear()
        granted.clear()
        assert gpt2_demo.amx_usable() is usable
        assert granted == ([(158, 0x1023, 18)] if "amx_tile" in flags else [])
    cpuinfo.unlink()  # no /proc/cpuinfo
    gpt2_demo.amx_usable.cache_clear()
    assert gpt2_demo.amx_usable() is False
    monkeypatch.setattr(gpt2_demo.platform, "machine", lambda: "arm64")
    gpt2_demo.amx_usable.cache_clear()
    assert gpt2_demo.amx_usable() is False
    gpt2_demo.amx_usable.cache_clear()


@pytest.mark.fast
def test_many_rows_go_to_the_amx_op_only_in_bfloat16_on_a_cpu_with_amx(monkeypatch):
    from types import SimpleNamespace

    from max.dtype import DType
    from max.graph import StaticDim, SymbolicDim

    monkeypatch.syspath_prepend(str(ROOT / "steps"))
    import gpt2_demo

    class Rows:
        def __matmul__(self, other):
            return "matmul"

    monkeypatch.setattr(gpt2_demo, "matmul_amx", lambda: lambda rows, weight: "amx")

    def weight(dtype=DType.bfloat16, host=True, k=768):
        k = StaticDim(k) if isinstance(k, int) else k
        return SimpleNamespace(
            dtype=dtype, device=SimpleNamespace(is_host=host), shape=[3072, k], T="weight.T"
        )

    for has_amx, w, expected in [
        (True, weight(), "amx"),
        (True, weight(DType.float32), "matmul"),
        (True, weight(host=False), "matmul"),  # a GPU's bfloat16 matmul is the fast one
        (True, weight(k=100), "matmul"),  # the op takes K in steps of 32
        (True, weight(k=SymbolicDim("k")), "matmul"),  # K known only when the graph runs
        (False, weight(), "matmul"),
    ]:
        monkeypatch.setattr(gpt2_demo, "amx_usable", lambda has_amx=has_amx: has_amx)
        assert gpt2_demo.many_rows(Rows(), w) == expected


@pytest.mark.fast
def test_the_float32_copy_computes_in_float32_and_gives_the_caches_back_as_they_came(monkeypatch):
    from max.dtype import DType

    monkeypatch.syspath_prepend(str(ROOT / "steps"))
    import gpt2_demo

    class Cast:  # a tensor that remembers its dtype
        def __init__(self, dtype):
            self.dtype = dtype

        def cast(self, dtype):
            return Cast(dtype)

    seen = []

    class Model:
        def forward(self, input_ids, *past):
            seen.extend(p.dtype for p in past)
            return ("logits", *(Cast(p.dtype) for p in past))  # the caches, grown

    past = [Cast(DType.bfloat16), Cast(DType.bfloat16)]
    logits, *present = gpt2_demo.float32_prompts(Model)().forward("ids", *past)
    assert logits == "logits" and seen == [DType.float32, DType.float32]
    assert [p.dtype for p in present] == [DType.bfloat16, DType.bfloat16]
