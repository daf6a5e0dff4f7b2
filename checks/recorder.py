"""What one check found: its failures (each handed to pytest-check once, here) and its notes.

The report plugin makes one `Recorder` per check and hands it to the check as the `record`
fixture; the check records every mismatch and keeps going, so one run reports them all.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from pytest_check import check

from checks.compare import mismatch
from checks.learner import call, compile_module
from checks.runtime import device, dtype
from checks.tensors import max_tensor

# Why a learner's code can be right eagerly and wrong compiled (max 26.7).
EAGER_ONLY_RIGHT = (
    "Your code is right eagerly but wrong inside the compiled graph. With max 26.7 a causal mask "
    "built from Tensor.arange comparisons and F.where, once a softmax follows it in a compiled "
    "graph, hides nothing: build it with F.band_part in step 3, as its page shows."
)


class Recorder:
    """One check's failures and notes. pytest-check fails the test at its end and lists every
    failure in a plain pytest run; the report shows `failures` and `notes` in the learner's words."""

    def __init__(self, precision: str) -> None:
        self.precision = precision  # the run's dtype: every comparison's tolerances follow it
        self.failures: list[str] = []
        self.notes: list[str] = []

    def expect(self, ok: bool, message: str) -> bool:
        """Record `message` as a failure unless `ok`; returns `ok`."""
        if not ok:
            self.failures.append(message)
            check.fail(message)
        return ok

    @contextlib.contextmanager
    def comparing_in(self, precision: str) -> Iterator[None]:
        """Compare with `precision`'s tolerances meanwhile: a check that runs part of a float32
        run in bfloat16 (with options.changed) says so here too."""
        before, self.precision = self.precision, precision
        try:
            yield
        finally:
            self.precision = before

    def note(self, text: str) -> None:
        """A line the report shows under the check, passed or failed (a speed, say)."""
        self.notes.append(text)

    def expect_close(self, what: str, got: Any, expected: Any, **kwargs: Any) -> bool:
        """Record a failure when `got` differs from `expected` (see compare.mismatch), with the
        tolerances of the run's precision."""
        message = mismatch(what, got, expected, precision=self.precision, **kwargs)
        return self.expect(message is None, message or "")

    def expect_eager_only_failure(
        self, eager_output: Any, expected: Any, tolerance: float = 1e-4
    ) -> None:
        """After a compiled mismatch: say so plainly when the same code is right eagerly."""
        if (
            mismatch(
                "eager",
                eager_output,
                expected,
                atol=tolerance,
                rtol=tolerance,
                precision=self.precision,
            )
            is None
        ):
            self.expect(False, EAGER_ONLY_RIGHT)

    def expect_compiled_matches(
        self,
        what: str,
        module: Any,
        cases: Sequence[tuple[Any, ...]],
        compare_case: Callable[..., bool],
        tolerance: float = 1e-4,
    ) -> None:
        """Compile `module` once with symbolic ("batch", "seqlen") and check it on every case.

        Each case is `(input, expected, *extra)`; `compare_case(label, got, input, expected,
        *extra)` records any mismatch and returns True on a match. After the first compiled
        mismatch the module also runs eagerly on that input, so a learner whose code is only
        wrong when compiled is told so.
        """
        from max.dtype import DType
        from max.experimental.tensor import TensorType
        from max.graph import DeviceRef

        first = np.asarray(cases[0][0])
        floats = np.issubdtype(first.dtype, np.floating)
        input_type = TensorType(
            dtype() if floats else DType.from_numpy(first.dtype),
            ("batch", "seqlen", *first.shape[2:]),
            device=DeviceRef.from_device(device()),
        )
        graph = compile_module(what, module, input_type)
        for x, expected, *extra in cases:
            label = f"compiled, batch {x.shape[0]}, {x.shape[1]} tokens"
            got = call(f"the compiled {what}", graph, max_tensor(x))
            if not compare_case(label, got, x, expected, *extra):
                eager = call(f"{what}.forward", module, max_tensor(x))
                self.expect_eager_only_failure(eager, expected, tolerance)
                break
