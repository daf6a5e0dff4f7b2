"""The Mojo extension: the learner's gemv kernel against numpy on odd shapes, its speed beside
MAX's built-in matmul and PyTorch's on the LM head's shape, and the KV-cache model built on it
against HuggingFace at every step."""

import functools
import re
import statistics
import time

import numpy as np
import pytest

from checks import harness, options
from checks import test_ext_kv_cache as kv
from checks.compare import Slip, expect, expect_close, note
from checks.harness import MOJO, LearnerError, call, compile_module, learner_attr, not_none
from checks.reference import SMALL, learner_module, max_tensor

# (rows of x, K, N): sizes that are not multiples of any SIMD width, one output row, one input
# column, a prompt of 3 rows, and the LM head of GPT-2 small.
SHAPES = {
    "1 x 13 by 7 x 13": (1, 13, 7),
    "3 x 5 by 1 x 5": (3, 5, 1),
    "2 x 100 by 33 x 100": (2, 100, 33),
    "the LM head, 1 x 768 by 50257 x 768": (1, 768, 50257),
}
LM_HEAD = SHAPES["the LM head, 1 x 768 by 50257 x 768"]
# Below this share of MAX's own matmul's speed a kernel is missing SIMD or the second core.
SLOWEST_SHARE = 0.4


def skip_unless_cpu_float32() -> None:
    if harness.low_precision() or options.current().device != "cpu":
        pytest.skip("the kernel is written for the CPU, in float32")


def mojo_error(error: BaseException) -> str | None:
    """`kernels/gemv.mojo line 19: <the compiler's error>` when Mojo did not compile."""
    while error is not None and type(error).__name__ != "MojoCompilationError":
        error = error.__cause__
    if error is None:
        return None
    found = re.search(r"(\w+\.mojo):(\d+):\d+: error: (.*)", str(error))
    where = f"{found[1]} line {found[2]}: {found[3]}" if found else str(error).splitlines()[0]
    return f"kernels/gemv.mojo does not compile: {where}"


@functools.cache
def learner_gemv():
    try:
        return not_none("gemv()", call("gemv()", learner_attr(MOJO, "gemv")))
    except LearnerError as error:
        raise LearnerError(mojo_error(error) or str(error)) from None


def compiled_product(what: str, product, rows) -> object:
    """`product(x, weight)` compiled for x [rows, k] and weight [n, k], with symbolic sizes."""
    from max.dtype import DType
    from max.experimental.nn import Module
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    class Product(Module):
        def forward(self, x, weight):
            return product(x, weight)

    device = DeviceRef.from_device(harness.device())
    return compile_module(
        what,
        Product(),
        TensorType(DType.float32, [rows, "k"], device=device),
        TensorType(DType.float32, ["n", "k"], device=device),
    )


@functools.cache
def kernel_graph():
    """The learner's op alone in a graph: one compile serves every shape."""
    return compiled_product("gemv custom op", learner_gemv(), "rows")


@functools.cache
def matmul_graph():
    """MAX's own product, x @ weight^T (what Linear runs), for the speed comparison."""
    return compiled_product("MAX's matmul", lambda x, weight: x @ weight.T, 1)


def operands(rows: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = rng.standard_normal((rows, k), dtype=np.float32)
    return x, rng.standard_normal((n, k), dtype=np.float32)


def slips(x: np.ndarray, weight: np.ndarray) -> list[Slip]:
    k, n = x.shape[1], weight.shape[0]
    found = [
        Slip(
            "the kernel writes only zeros: it is still the skeleton's (TODOs 3-5).",
            0 * (x @ weight.T),
        )
    ]
    for width in (4, 8, 16, 32):
        cut = k - k % width
        if 0 < cut < k:
            found.append(
                Slip(
                    f"the last {k - cut} of {k} products are missing (K is not a multiple of the "
                    "SIMD width): add them one float at a time after the SIMD loop (TODO 4).",
                    x[:, :cut] @ weight[:, :cut].T,
                )
            )
    half = x @ weight.T
    half[:, n // 2 :] = 0
    found.append(
        Slip(
            "the second half of the output rows is missing: each worker takes its own block, "
            "worker * n // WORKERS up to (worker + 1) * n // WORKERS (TODO 5).",
            half,
        )
    )
    return found


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_kernel_matches_numpy(shape):
    """gemv(x, weight) equals numpy's x @ weight.T, inside a compiled graph"""
    skip_unless_cpu_float32()
    rows, k, n = shape
    x, weight = operands(rows, k, n)
    got = call("the gemv op", kernel_graph(), max_tensor(x), max_tensor(weight))
    expect_close(
        f"gemv of {rows} x {k} by {n} x {k}",
        got,
        x @ weight.T,
        atol=2e-6 * k,
        rtol=1e-4,
        slips=lambda: slips(x, weight),
    )


def seconds_per_call(run, repeats: int = 10) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_kernel_reads_the_weights_fast():
    """On the LM head's shape, the kernel reads the weights about as fast as MAX's own matmul"""
    skip_unless_cpu_float32()
    import torch

    rows, k, n = LM_HEAD
    x, weight = operands(rows, k, n)
    mx, mw = max_tensor(x), max_tensor(weight)
    tx, tw = torch.from_numpy(x), torch.from_numpy(weight)
    seconds = {
        "your kernel": seconds_per_call(lambda: kernel_graph()(mx, mw)),
        "MAX's matmul": seconds_per_call(lambda: matmul_graph()(mx, mw)),
        "PyTorch": seconds_per_call(lambda: torch.nn.functional.linear(tx, tw)),
    }
    rate = {name: weight.nbytes / 1e9 / s for name, s in seconds.items()}
    note(
        "; ".join(f"{name} {1000 * seconds[name]:.1f} ms = {rate[name]:.1f} GB/s" for name in rate)
    )
    yours, max_own = rate["your kernel"], rate["MAX's matmul"]
    expect(
        yours >= SLOWEST_SHARE * max_own,
        f"Your kernel reads the LM head's weights at {yours:.1f} GB/s, MAX's matmul at "
        f"{max_own:.1f}: load SIMD_WIDTH floats at a time (TODO 3) and split the output rows "
        "between the workers (TODO 5).",
    )


def test_kv_cache_model_on_the_kernel_matches_at_every_step_compiled():
    """MojoCachedGPT2LMHeadModel's logits equal HuggingFace's after every call (compiled)"""
    skip_unless_cpu_float32()
    learner_gemv()
    model = learner_module(MOJO, "MojoCachedGPT2LMHeadModel", kv.reference()["state"], SMALL)
    compiled = compile_module("MojoCachedGPT2LMHeadModel", model, *kv.input_types())
    kv.check_chunks(compiled, "compiled")
