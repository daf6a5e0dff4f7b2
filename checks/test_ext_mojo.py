"""The Mojo extension's checks: the learner's gemv kernels, right on every machine, and speed.

The learner's gemv kernel (float32, then bfloat16) against numpy on odd shapes, with this machine's
worker count and SIMD width and with others (1, 3, 7 workers; NEON's width of 4), its speed beside
MAX's built-in matmul, PyTorch's and the machine's memory on the LM head's shape (reported, never
failed: a correct kernel passes on any machine), and the KV-cache model built on it against
HuggingFace at every step."""

import functools

import numpy as np
import pytest

from checks import harness, options
from checks import kv_reference as kv
from checks.compare import Slip
from checks.cpus import kernel_worker_counts
from checks.tensors import as_numpy
from checks.harness import MOJO, call, compile_module, learner_attr
from checks.kernel_graphs import (
    LM_HEAD,
    kernel_graph,
    kernel_graph_bf16,
    kernel_read_gbs,
    learner_gemv,
    learner_gemv_bf16,
    matmul_graph,
    operands,
    read_gbs,
)
from checks.reference import SMALL, near_greedy_problem
from checks.doubles import IdTokenizer
from checks.modules import learner_module
from checks.tensors import max_tensor
from checks.report import AFTER_FAILURE, earlier_failure

# (rows of x, K, N): sizes that are not multiples of any SIMD width, one output row, one input
# column, a prompt of 3 rows, and the LM head of GPT-2 small.
SHAPES = {
    "1 x 13 by 7 x 13": (1, 13, 7),
    "3 x 5 by 1 x 5": (3, 5, 1),
    "2 x 100 by 33 x 100": (2, 100, 33),
    "the LM head, 1 x 768 by 50257 x 768": LM_HEAD,
}
# Other machines: 13 output rows split over worker counts that do not divide them, and the
# SIMD width of Apple silicon's NEON (K = 37: four 8-float steps, then 5 leftover products).
SPLIT_SHAPE = (2, 37, 13)
OTHER_MACHINES = {
    f"{w} worker{'s' * (w > 1)}, width 4": {"workers": w, "width": 4} for w in (1, 3, 7)
}
# Under this share of MAX's own matmul, a kernel is slow enough to say where speed comes from.
SLOW_SHARE = 0.25


def skip_unless_cpu_float32() -> None:
    if harness.low_precision() or options.current().device != "cpu":
        pytest.skip("the kernel is written for the CPU, in float32")


# The words of the known mistakes (templates: the TODOs' numbers differ in the bfloat16 kernel);
# slips() and slips_bf16() give each its output.
SKELETON_ZEROS = "the kernel writes only zeros: it is still the skeleton's (TODOs {simd}-{split})."
LEFTOVER_MISSING = (
    "the last {missing} of {k} products are missing (K is not a multiple of the SIMD width): add "
    "them one float at a time after the SIMD loop (TODO {leftover})."
)
LEFTOVER_TWICE = (
    "the first {cut} of {k} products are counted twice (the result is near twice the right one): "
    "the scalar loop for the leftover starts again at 0; it should go on from the i where the "
    "SIMD loop stopped (TODO {leftover})."
)
SECOND_HALF_MISSING = (
    "the second half of the output rows is missing: each worker takes its own block, "
    "worker * n // blocks up to (worker + 1) * n // blocks (TODO {split})."
)
ROWS_LEFT_TO_NOBODY = (
    "the last {left} of {n} output rows are missing with {workers} workers: n // blocks leaves "
    "{left} rows to nobody when {workers} does not divide {n}; give each worker the rows "
    "worker * n // blocks up to (worker + 1) * n // blocks (TODO {split})."
)
BFLOAT16_ACCUMULATORS = (
    "the sums are rounded to bfloat16 as they grow: the accumulators must be float32 "
    "(SIMD[DType.float32, width]), the loaded bfloat16 converted with .cast[DType.float32]() "
    "before they are multiplied; only the result is rounded to bfloat16 (TODO 7)."
)


def slips(
    x: np.ndarray, weight: np.ndarray, counts: tuple[int, ...] = (), todos: tuple = (3, 4, 5)
) -> list[Slip]:
    """The float32 kernel's slips; `todos` renumbers them for the bfloat16 kernel's (7, 8, 9)."""
    k, n = x.shape[1], weight.shape[0]
    right = x @ weight.T
    simd, leftover, split = todos
    found = [Slip(SKELETON_ZEROS.format(simd=simd, split=split), 0 * right)]
    for step in (4, 8, 16, 32, 64):  # k % step products left after a SIMD loop of that step
        cut = k - k % step
        if 0 < cut < k:
            found.append(
                Slip(
                    LEFTOVER_MISSING.format(missing=k - cut, k=k, leftover=leftover),
                    x[:, :cut] @ weight[:, :cut].T,
                )
            )
    for step in (8, 16, 32, 64):  # two accumulators: the SIMD loop steps 2 * width floats
        cut = k - k % step
        if cut:
            found.append(
                Slip(
                    LEFTOVER_TWICE.format(cut=cut, k=k, leftover=leftover),
                    right + x[:, :cut] @ weight[:, :cut].T,
                )
            )
    half = right.copy()
    half[:, n // 2 :] = 0
    found.append(Slip(SECOND_HALF_MISSING.format(split=split), half))
    for workers in counts or kernel_worker_counts():
        if n % workers:
            floor = right.copy()
            floor[:, n - n % workers :] = 0
            found.append(
                Slip(
                    ROWS_LEFT_TO_NOBODY.format(left=n % workers, n=n, workers=workers, split=split),
                    floor,
                )
            )
    return found


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_kernel_matches_numpy(record, shape):
    """gemv(x, weight) equals numpy's x @ weight.T, inside a compiled graph"""
    skip_unless_cpu_float32()
    rows, k, n = shape
    x, weight = operands(rows, k, n)
    got = call("the gemv op", kernel_graph(), max_tensor(x), max_tensor(weight))
    record.expect_close(
        f"gemv of {rows} x {k} by {n} x {k}",
        got,
        x @ weight.T,
        atol=2e-6 * k,
        rtol=1e-4,
        slips=lambda: slips(x, weight),
    )


@pytest.mark.parametrize("machine", OTHER_MACHINES.values(), ids=OTHER_MACHINES.keys())
@pytest.mark.compiled
def test_kernel_matches_numpy_on_other_machines(record, machine):
    """gemv(x, weight) equals numpy's on 13 output rows as other machines run it"""
    skip_unless_cpu_float32()
    rows, k, n = SPLIT_SHAPE
    x, weight = operands(rows, k, n)
    graph = kernel_graph(**machine)
    got = call("the gemv op", graph, max_tensor(x), max_tensor(weight))
    record.expect_close(
        f"gemv of {rows} x {k} by {n} x {k} on {machine['workers']} workers with a SIMD width of "
        f"{machine['width']}",
        got,
        x @ weight.T,
        atol=2e-6 * k,
        rtol=1e-4,
        slips=lambda: slips(x, weight, (machine["workers"],)),
    )


def test_kernel_speed_on_the_lm_head(record, request):
    """The kernel's speed on the LM head, beside MAX's matmul, PyTorch and memory (reported)

    Not judged: speed depends on the machine, and a correct kernel passes on any."""
    skip_unless_cpu_float32()
    if earlier_failure(request):
        pytest.skip("not timed, because a check above failed: fix that first")
    import torch

    from checks.memory import read_bandwidth_gbs

    rows, k, n = LM_HEAD
    x, weight = operands(rows, k, n)
    mx, mw = max_tensor(x), max_tensor(weight)
    tx, tw = torch.from_numpy(x), torch.from_numpy(weight)
    matmul = matmul_graph()
    rate = {
        "your kernel": kernel_read_gbs(repeats=10),
        "MAX's matmul": read_gbs(lambda: matmul(mx, mw), weight.nbytes),
        "PyTorch": read_gbs(lambda: torch.nn.functional.linear(tx, tw), weight.nbytes),
    }
    memory = read_bandwidth_gbs()
    record.note(
        "; ".join(
            f"{name} {weight.nbytes / 1e6 / gbs:.1f} ms = {gbs:.1f} GB/s"
            for name, gbs in rate.items()
        )
    )
    yours, max_own = rate["your kernel"], rate["MAX's matmul"]
    record.note(
        f"This machine reads memory at {memory:.0f} GB/s (a 512 MiB sum on every core): your "
        f"kernel reads at {100 * yours / memory:.0f} % of that."
    )
    if yours < SLOW_SHARE * max_own:
        record.note(
            "Your kernel is under a quarter of MAX's matmul's speed here: a kernel that reads one "
            "float at a time, or runs on one core, is this slow. Check that dot loads `width` "
            "floats at a time (TODO 3) and that execute splits the rows over `blocks` workers "
            "(TODO 5)."
        )


@pytest.mark.compiled
def test_kv_cache_model_on_the_kernel_matches_at_every_step_compiled(record):
    """MojoCachedGPT2LMHeadModel's logits equal HuggingFace's after every call (compiled)"""
    skip_unless_cpu_float32()
    learner_gemv()
    model = learner_module(MOJO, "MojoCachedGPT2LMHeadModel", kv.reference()["state"], SMALL)
    compiled = compile_module("MojoCachedGPT2LMHeadModel", model, *kv.input_types())
    kv.check_chunks(record, compiled, "compiled")


# The bfloat16 kernel (TODOs 6-9): the same shapes, and other machines' widths and worker counts.
OTHER_MACHINES_BF16 = {
    "3 workers, width 4": {"workers": 3, "width": 4},
    "7 workers, width 8": {"workers": 7, "width": 8},
}
# A bfloat16 keeps 8 significant bits: rounding the float32 sum once moves it by at most 2^-9 of
# itself (4e-3 leaves room for a kernel that truncates instead).
BF16_ROUNDING = 4e-3


def operands_bf16(rows: int, k: int, n: int):
    """operands() rounded to bfloat16, as torch tensors (numpy has no bfloat16)."""
    import torch

    return tuple(torch.from_numpy(a).bfloat16() for a in operands(rows, k, n))


def bf16_accumulated(x, weight, width: int) -> np.ndarray:
    """x @ weight.T as a kernel that accumulates in bfloat16 gets it (a slip): two accumulators of
    `width` lanes, every product and sum rounded to bfloat16, the lanes added in halves (as
    reduce_add does), the leftover added one product at a time."""
    import torch

    k = x.shape[1]
    acc = torch.zeros(2, x.shape[0], weight.shape[0], width, dtype=torch.bfloat16)
    i = 0
    while i + 2 * width <= k:
        for half in range(2):
            lanes = slice(i + half * width, i + (half + 1) * width)
            acc[half] = acc[half] + x[:, None, lanes] * weight[None, :, lanes]
        i += 2 * width
    total = acc[0] + acc[1]
    while total.shape[-1] > 1:
        total = total[..., : total.shape[-1] // 2] + total[..., total.shape[-1] // 2 :]
    total = total[..., 0]
    for rest in range(i, k):
        total = total + x[:, None, rest] * weight[None, :, rest]
    return total.float().numpy()


def slips_bf16(x, weight, counts: tuple[int, ...] = ()) -> list[Slip]:
    """The float32 kernel's slips on the same bfloat16 numbers, and a bfloat16 accumulator."""
    found = slips(x.float().numpy(), weight.float().numpy(), counts, todos=(7, 8, 9))
    for width in (4, 8, 16, 32):
        if 2 * width <= x.shape[1]:
            found.append(
                Slip(
                    BFLOAT16_ACCUMULATORS,
                    bf16_accumulated(x, weight, width),
                )
            )
    return found


def skip_unless_cpu() -> None:
    if options.current().device != "cpu":
        pytest.skip("the kernel is written for the CPU")


BF16_NOT_STARTED = (
    "the bfloat16 kernel is the chapter's optional second part, not started here (gemv_bf16() "
    "still returns None)"
)


@functools.cache
def bf16_started() -> bool:
    """Whether the learner has begun the optional bfloat16 part: gemv_bf16() no longer returns the
    skeleton's None. Until then its checks are skipped, not failed."""
    return call("gemv_bf16()", learner_attr(MOJO, "gemv_bf16")) is not None


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_bfloat16_kernel_matches_numpy(record, shape, request):
    """gemv_bf16(x, weight) equals numpy's product of the same bfloat16 numbers, rounded once"""
    skip_unless_cpu()
    if earlier_failure(request):  # the second part builds on the first: no compile until it passes
        pytest.skip(AFTER_FAILURE)
    if not bf16_started():
        pytest.skip(BF16_NOT_STARTED)
    rows, k, n = shape
    x, weight = operands_bf16(rows, k, n)
    got = call("the gemv_bf16 op", kernel_graph_bf16(), max_tensor(x), max_tensor(weight))
    record.expect_close(
        f"gemv_bf16 of {rows} x {k} by {n} x {k}",
        got,
        x.float().numpy() @ weight.float().numpy().T,
        atol=2e-6 * k,
        rtol=BF16_ROUNDING,
        slips=lambda: slips_bf16(x, weight),
    )


@pytest.mark.parametrize("machine", OTHER_MACHINES_BF16.values(), ids=OTHER_MACHINES_BF16.keys())
@pytest.mark.compiled
def test_bfloat16_kernel_matches_numpy_on_other_machines(record, machine):
    """gemv_bf16(x, weight) equals numpy's on 13 output rows as other machines run it"""
    skip_unless_cpu()
    if not bf16_started():
        pytest.skip(BF16_NOT_STARTED)
    rows, k, n = SPLIT_SHAPE
    x, weight = operands_bf16(rows, k, n)
    got = call("the gemv_bf16 op", kernel_graph_bf16(**machine), max_tensor(x), max_tensor(weight))
    record.expect_close(
        f"gemv_bf16 of {rows} x {k} by {n} x {k} on {machine['workers']} workers with a SIMD "
        f"width of {machine['width']}",
        got,
        x.float().numpy() @ weight.float().numpy().T,
        atol=2e-6 * k,
        rtol=BF16_ROUNDING,
        slips=lambda: slips_bf16(x, weight, (machine["workers"],)),
    )


@pytest.mark.compiled
def test_kv_cache_model_on_the_bfloat16_kernel_compiled(record):
    """In bfloat16 (--dtype bfloat16), the model's logits after every call and its greedy text
    within bfloat16 rounding of HuggingFace's (compiled)"""
    if not kv.bfloat16_on_the_cpu():
        pytest.skip("the bfloat16 model is checked with --dtype bfloat16, on the CPU")
    learner_gemv_bf16()
    model = learner_module(MOJO, "MojoCachedGPT2LMHeadModel", kv.reference()["state"], SMALL)
    compiled = compile_module("MojoCachedGPT2LMHeadModel", model, *kv.input_types())
    if kv.check_chunks(record, compiled, "compiled") is not None:
        return
    prompt = kv.PROMPTS["5-token prompt"]
    seen: list[int] = []

    def spy(input_ids, *cache):
        seen.extend(as_numpy(input_ids, "The ids given to the model")[0].tolist())
        return compiled(input_ids, *cache)

    text = " ".join(map(str, prompt))
    got = call(
        "generate_with_cache on MojoCachedGPT2LMHeadModel",
        learner_attr(harness.KV_CACHE, "generate_with_cache"),
        spy,
        SMALL,
        IdTokenizer(SMALL.n_positions, eos_token_id=kv.EOS),
        harness.device(),
        text,
        max_new_tokens=kv.NEW_TOKENS,
        do_sample=False,
    )
    problem = near_greedy_problem(kv.hf_model_of_reference(), seen, len(prompt))
    record.expect(
        problem is None, f"Greedy text from your bfloat16 Mojo model is {got!r}: {problem}"
    )
