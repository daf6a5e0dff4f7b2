"""The learner's Mojo gemv kernels and MAX's matmul, each compiled alone in a graph, and timed.

The Mojo chapter's checks run these graphs, and so do `python -m checks.bench` (a Mojo row's
kernel alone on the LM head) and `python -m checks.kernel_rows`. What is built from the learner's
code is a learner_cache: a new run of other code builds it again.
"""

import functools
import re
import statistics
import time

import numpy as np

from checks import runtime
from checks.learner import LearnerError, call, compile_module, learner_attr, learner_cache, not_none
from checks.course import MOJO
from checks.tensors import max_tensor
from checks.waiting import waiting

# One row of x by GPT-2 small's LM head, [1, K] by [N, K]: a weight too large for any cache.
LM_HEAD = (1, 768, 50257)


def mojo_error(error: BaseException) -> str | None:
    """`kernels/gemv.mojo does not compile: gemv.mojo line 19: <the compiler's error>` when Mojo
    did not compile (every file of the kernels folder is one package: either file can stop it)."""
    while error is not None and type(error).__name__ != "MojoCompilationError":
        error = error.__cause__
    if error is None:
        return None
    found = re.search(r"(\w+\.mojo):(\d+):\d+: error: (.*)", str(error))
    where = f"{found[1]} line {found[2]}: {found[3]}" if found else str(error).splitlines()[0]
    return f"kernels/{found[1] if found else 'gemv.mojo'} does not compile: {where}"


def learner_op(name: str):
    """The custom op the learner's `name()` in ext_mojo.py returns; a kernel that does not
    compile is named by its file and line."""
    try:
        return not_none(f"{name}()", call(f"{name}()", learner_attr(MOJO, name)))
    except LearnerError as error:
        raise type(error)(mojo_error(error) or str(error)) from None


@learner_cache
def learner_gemv():
    return learner_op("gemv")


def compiled_product(what: str, product, rows, dtype: str = "float32") -> object:
    """`product(x, weight)` compiled for x [rows, k] and weight [n, k], with symbolic sizes."""
    from max.dtype import DType
    from max.experimental.nn import Module
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    class Product(Module):
        def forward(self, x, weight):
            return product(x, weight)

    device = DeviceRef.from_device(runtime.device())
    return compile_module(
        what,
        Product(),
        TensorType(getattr(DType, dtype), [rows, "k"], device=device),
        TensorType(getattr(DType, dtype), ["n", "k"], device=device),
    )


@learner_cache
def kernel_graph(workers: int = 0, width: int = 0):
    """The learner's op alone in a graph: one compile serves every shape. With `workers` or
    `width`, the kernel as another machine would run it (its `execute` parameters)."""
    op = learner_gemv()
    if workers or width:
        op = call(
            "gemv() with other parameters",
            lambda: op[{"workers": workers, "width": width}],
        )
        what = f"gemv custom op for {workers} worker{'s' * (workers > 1)} and a width of {width}"
    else:
        what = "gemv custom op"
    return compiled_product(what, op, "rows")


@functools.cache
def matmul_graph(rows=1, dtype: str = "float32"):
    """MAX's own product, x @ weight^T (what Linear runs), for the speed comparison."""
    with waiting.announce("compiling MAX's own matmul, to time your kernel beside it"):
        return compiled_product("MAX's matmul", lambda x, weight: x @ weight.T, rows, dtype)


def operands(rows: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = rng.standard_normal((rows, k), dtype=np.float32)
    return x, rng.standard_normal((n, k), dtype=np.float32)


def seconds_per_call(run, repeats: int = 10) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_gbs(product, nbytes: int, repeats: int = 10) -> float:
    """GB/s at which `product()` reads its weight of `nbytes` (the median call's)."""
    return nbytes / 1e9 / seconds_per_call(product, repeats)


def kernel_read_gbs(
    dtype: str = "float32", k: int = LM_HEAD[1], n: int = LM_HEAD[2], repeats: int = 21
) -> float:
    """GB/s at which the learner's kernel alone, in its own graph, reads an [n, k] weight for one
    row of x: by default the LM head's, too large for any cache. The bench splits a token's time
    with it."""
    import torch

    graph = kernel_graph() if dtype == "float32" else kernel_graph_bf16()
    x, weight = (torch.from_numpy(a).to(getattr(torch, dtype)) for a in operands(1, k, n))
    mx, mw = max_tensor(x), max_tensor(weight)
    return read_gbs(lambda: graph(mx, mw), weight.numel() * weight.element_size(), repeats)


@learner_cache
def learner_gemv_bf16():
    return learner_op("gemv_bf16")


@learner_cache
def kernel_graph_bf16(workers: int = 0, width: int = 0):
    """The learner's bfloat16 op alone in a graph, as kernel_graph() is the float32 one's."""
    op = learner_gemv_bf16()
    what = "gemv_bf16 custom op"
    if workers or width:
        op = call(
            "gemv_bf16() with other parameters",
            lambda: op[{"workers": workers, "width": width}],
        )
        what += f" for {workers} workers and a width of {width}"
    return compiled_product(what, op, "rows", "bfloat16")
