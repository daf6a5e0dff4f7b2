"""Step 7: MaxGPT2Model against HuggingFace's GPT2Model (the last hidden state)."""

import pytest

from checks.compare import Slip, mismatch
from checks.harness import LearnerError, call, learner_attr
from checks.reference import SMALL, causal_mask_4d, hf_lm_model, max_state_dict, token_ids
from checks.modules import build_learner_module, learner_module
from checks.reference_cache import cached, cached_slips
from checks.tensors import max_tensor, torch_no_grad

SHAPES = ((2, 7), (3, 13), (2, SMALL.n_positions))
TOLERANCE = 1e-4


def reference(cfg):
    """Weights, ids, HuggingFace's output and every intermediate stage, for each shape."""

    def build():
        with torch_no_grad() as torch:
            body = hf_lm_model(cfg, seed=10).transformer
            data = {"state": max_state_dict(body)}
            for batch, seq_len in SHAPES:
                ids = token_ids(batch, seq_len, cfg.vocab_size, seed=11)
                stages = [body.wte(ids) + body.wpe(torch.arange(seq_len))]  # embeddings
                for block in body.h:
                    stages.append(block(stages[-1], attention_mask=causal_mask_4d(seq_len)))
                output = body(ids).last_hidden_state
                data[batch, seq_len] = (ids.numpy(), [s.numpy() for s in stages], output.numpy())
            return data

    return cached("model", (cfg, SHAPES), build)


POSITIONS_FROM_1 = "the position ids start at 1: they are 0, 1, ..., S-1."
NO_LN_F = "the final layer norm ln_f is missing: apply it after the last block."
NO_POSITIONS = "the position embeddings are missing: add wpe(positions) to wte(input_ids)."
ONE_BLOCK_REPEATED = (
    "a list like [GPT2Block(config)] * n_layer, or one block appended in a loop, repeats one "
    "block, so every layer ends up with the last layer's weights. Create a new GPT2Block(config) "
    "for each layer."
)


@cached_slips
def slips(cfg, ids, stages):
    with torch_no_grad() as torch:
        body = hf_lm_model(cfg, seed=10).transformer
        ids = torch.from_numpy(ids)
        seq_len = ids.shape[1]
        shifted = []
        if seq_len < cfg.n_positions:  # position S does not exist when S is the full context
            shifted = [
                Slip(
                    POSITIONS_FROM_1,
                    body(ids, position_ids=torch.arange(1, seq_len + 1)[None]).last_hidden_state,
                )
            ]
        return shifted + [
            Slip(NO_LN_F, stages[-1]),
            Slip(NO_POSITIONS, _without_positions(body, ids)),
        ]


def _without_positions(body, ids):
    h = body.wte(ids)
    for block in body.h:
        h = block(h, attention_mask=causal_mask_4d(ids.shape[1]))
    return body.ln_f(h)


def learner_model(cfg, state):
    model = learner_module(7, "MaxGPT2Model", state, cfg)
    problem = shared_blocks(blocks_of(model, cfg))
    if problem:
        raise LearnerError(problem)
    return model


def blocks_of(model, cfg) -> list:
    """The model's blocks h[0] ... h[n_layer - 1], or [] when h can't be indexed (its own check
    says so)."""
    try:
        return [call(f"MaxGPT2Model.h[{i}]", lambda i=i: model.h[i]) for i in range(cfg.n_layer)]
    except LearnerError:
        return []


def shared_blocks(blocks) -> str | None:
    """What two blocks share (one object, or a layer inside), in a sentence; None if nothing.

    Loading weights into a shared block leaves every layer holding the last layer's weights, so
    the numbers only say "block h[0] differs" while the block itself (step 6) is right."""
    owner: dict[int, tuple[int, str]] = {}
    for index, block in enumerate(blocks):
        parts = [("", block), *getattr(block, "descendants", ())]
        for name, part in parts:
            if name and not any(True for _ in getattr(part, "parameters", ())):
                continue  # a layer without weights (an activation) may well be shared
            first = owner.setdefault(id(part), (index, name))
            if first[0] == index:
                continue
            shared = (
                "are the same GPT2Block object"
                if not name
                else f"share one {name} layer (h[{first[0]}].{first[1]} is h[{index}].{name})"
            )
            return f"h[{first[0]}] and h[{index}] {shared}: {ONE_BLOCK_REPEATED}"
    return None


def where_it_diverges(model, cfg, stages, expected, precision: str):
    """Run the learner's parts one at a time on HuggingFace's inputs; name the first that differs
    (compared in the run's `precision`)."""
    close = {"atol": TOLERANCE, "rtol": TOLERANCE, "precision": precision}
    for index in range(cfg.n_layer):
        block = call(f"MaxGPT2Model.h[{index}]", lambda i=index: model.h[i])
        got = call(f"block h[{index}]", block, max_tensor(stages[index]))
        if mismatch("", got, stages[index + 1], **close) is not None:
            return (
                f"The first difference is in block h[{index}]: on HuggingFace's input it "
                "gives another output, so look at your GPT2Block (step 6)."
            )
    got = call("ln_f", model.ln_f, max_tensor(stages[-1]))
    if mismatch("", got, expected, **close) is not None:
        return "Every block matches, but ln_f does not: look at ln_f (your LayerNorm of step 5)."
    return (
        "Embeddings, every block and ln_f match on their own, so the difference is in how "
        "forward connects them: positions 0..S-1, wte + wpe, the blocks in order, then ln_f."
    )


def check_output(record, what, got, model, cfg, ids, stages, expected):
    ok = record.expect_close(
        what, got, expected, atol=TOLERANCE, rtol=TOLERANCE, slips=lambda: slips(cfg, ids, stages)
    )
    if not ok:
        try:
            record.expect(False, where_it_diverges(model, cfg, stages, expected, record.precision))
        except LearnerError as error:
            record.expect(False, str(error))
    return ok


@pytest.mark.parametrize("shape", SHAPES, ids=[f"eager, batch {b}, {s} tokens" for b, s in SHAPES])
def test_eager_output_matches_huggingface(record, shape):
    """Final hidden states match HuggingFace's GPT2Model"""
    ref = reference(SMALL)
    model = learner_model(SMALL, ref["state"])
    ids, stages, expected = ref[shape]
    got = call("MaxGPT2Model.forward", model, max_tensor(ids))
    check_output(record, "Hidden states (eager)", got, model, SMALL, ids, stages, expected)


def test_blocks_are_indexable(record):
    """h holds n_layer blocks that can be indexed, h[0] ... h[n_layer - 1]"""
    model = build_learner_module("MaxGPT2Model", learner_attr(7, "MaxGPT2Model"), SMALL)
    blocks = call("MaxGPT2Model.h", lambda: model.h)
    count = call("len(MaxGPT2Model.h)", len, blocks)
    record.expect(
        count == SMALL.n_layer, f"h holds {count} blocks; config.n_layer is {SMALL.n_layer}."
    )


@pytest.mark.compiled
def test_compiled_output_matches_huggingface(record):
    """Final hidden states match inside a graph compiled with symbolic batch and length (compiled)"""
    ref = reference(SMALL)
    model = learner_model(SMALL, ref["state"])
    record.expect_compiled_matches(
        "MaxGPT2Model",
        model,
        [(ids, expected, stages) for ids, stages, expected in (ref[s] for s in SHAPES[:2])],
        lambda label, got, ids, expected, stages: check_output(
            record, f"Hidden states ({label})", got, model, SMALL, ids, stages, expected
        ),
        TOLERANCE,
    )
