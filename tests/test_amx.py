"""The given AMX kernel (steps/amx/matmul_amx.mojo) that multiplies a prompt's many rows in
bfloat16 on a CPU with AMX: right for any number of rows, columns and workers, on this machine's
tiles."""

import numpy as np
import pytest

from tests.conftest import ROOT


def test_the_amx_op_multiplies_like_numpy_for_any_rows_columns_and_workers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "steps"))
    import gpt2_demo

    if not gpt2_demo.amx_usable():
        pytest.skip("this CPU has no AMX (or Linux did not grant the tiles): the op is not used")
    from checks.kernel_graphs import compiled_product
    from checks.tensors import as_numpy, bfloat16, max_tensor

    op = gpt2_demo.matmul_amx()
    rng = np.random.default_rng(0)
    # rows: fewer than a 32-row block, one and a half blocks, two; columns: not a multiple of 16
    # or of 32, and a multiple of both; K: 32 and more than one step of 32. One worker on 1100
    # columns packs several chunks of 256; seven workers on 100 columns leave some without work.
    for workers, shapes in [
        (0, [(5, 40, 32), (37, 100, 96), (64, 64, 64)]),
        (1, [(33, 1100, 64)]),
        (7, [(37, 100, 96)]),
    ]:
        graph = compiled_product(
            f"matmul_amx, {workers or 'default'} workers",
            op[{"workers": workers}] if workers else op,
            "rows",
            "bfloat16",
        )
        for rows, n, k in shapes:
            x = bfloat16(rng.standard_normal((rows, k), dtype=np.float32))
            weight = bfloat16(rng.standard_normal((n, k), dtype=np.float32))
            expected = x.float().numpy() @ weight.float().numpy().T  # products exact, sums close
            got = as_numpy(graph(max_tensor(x), max_tensor(weight)), "matmul_amx")
            # the sums in float32, rounded to the nearest bfloat16 once: within half a step, 2^-8
            np.testing.assert_allclose(
                got,
                expected,
                rtol=2**-8 + 1e-5,
                atol=1e-4,
                err_msg=f"{rows} x {k} by {n} x {k}, {workers or 'default'} workers",
            )
