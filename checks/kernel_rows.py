"""`python -m checks.kernel_rows`: the Mojo kernels beside MAX's matmul on 1 to 64 rows of x.

    python -m checks.kernel_rows --solutions     # the reference kernels (default: yours, steps/)

A prompt of R tokens is R rows of x. The table behind the Mojo page's "Long prompts" section, and
`KERNEL_ROWS` in ext_mojo.py: for each dtype, the median milliseconds of your op and of MAX's
`x @ weight.T` on GPT-2's MLP weight (3072 x 768), each compiled alone in a graph, as the check
compiles your op. Your kernels must pass `python -m checks mojo` first.
"""

from __future__ import annotations

import argparse

import numpy as np

from checks import harness, options

ROWS = (1, 2, 4, 8, 16, 32, 64)
WEIGHT = (3072, 768)  # [N, K]: c_fc of GPT-2 small


def timings(dtype: str, repeats: int) -> tuple[list[float], list[float]]:
    """Milliseconds per call of the learner's op and of MAX's matmul, for each of ROWS."""
    import torch

    from checks import kernel_graphs as mojo
    from checks.tensors import max_tensor

    kernel = mojo.kernel_graph() if dtype == "float32" else mojo.kernel_graph_bf16()
    matmul = mojo.matmul_graph("rows", dtype)
    rng = np.random.default_rng(0)
    weight = torch.from_numpy(rng.standard_normal(WEIGHT, dtype=np.float32)).to(
        getattr(torch, dtype)
    )
    w = max_tensor(weight)
    idle = max_tensor(torch.zeros(1, WEIGHT[1], dtype=weight.dtype))
    for _ in range(5):  # the first calls also start MAX's worker threads: not timed
        kernel(idle, w), matmul(idle, w)
    yours, max_own = [], []
    for rows in ROWS:
        x = torch.from_numpy(rng.standard_normal((rows, WEIGHT[1]), dtype=np.float32))
        mx = max_tensor(x.to(getattr(torch, dtype)))
        for graph, times in ((kernel, yours), (matmul, max_own)):
            times.append(1000 * mojo.seconds_per_call(lambda g=graph, x=mx: g(x, w), repeats))
    return yours, max_own


def table(results: dict[str, tuple[list[float], list[float]]], repeats: int) -> str:
    lines = [
        f"Milliseconds per call on a {WEIGHT[0]} x {WEIGHT[1]} weight, median of {repeats} calls:",
        "",
        "| rows of x | " + " | ".join(str(r) for r in ROWS) + " |",
        "| --- |" + " ---: |" * len(ROWS),
    ]
    for dtype, (yours, max_own) in results.items():
        for name, times in ((f"your kernel, {dtype}", yours), (f"MAX's matmul, {dtype}", max_own)):
            lines.append(f"| {name} | " + " | ".join(f"{t:.2f}" for t in times) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checks.kernel_rows", description=__doc__.split("\n")[0]
    )
    options.add_folder_options(parser, "time")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per cell (9)")
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16"), action="append", help="only this dtype"
    )
    args = parser.parse_args(argv)
    harness.use_steps_dir(options.chosen_folder(args))
    harness.prepare_max()
    try:
        with harness.pinned_defaults():
            results = {d: timings(d, args.repeats) for d in args.dtype or ("float32", "bfloat16")}
    except harness.LearnerError as error:
        print(f"{error}\nFinish the Mojo chapter first: {harness.command('check-mojo')}.")
        return 1
    print(table(results, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
