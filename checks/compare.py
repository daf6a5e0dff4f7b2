"""Comparing the learner's tensors with HuggingFace's, and wording what differs.

`expect_close` records every mismatch through pytest-check (so one run reports them all) and keeps
the plain message for the report. A mismatch names what was compared, the shapes and dtypes, the
largest difference and where, the tolerance, the share of elements that differ, NaN/Inf, and a hint
when the output matches a known mistake (a "slip") better than the right answer.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from pytest_check import check

from checks import harness
from checks.harness import LearnerError

# Where the running test's mismatch messages go: a list the report plugin hands in per test.
_sink: contextvars.ContextVar[list[str]] = contextvars.ContextVar("mismatches")


def collect_messages() -> tuple[list[str], list[str]]:
    """New lists that receive the mismatch messages and the notes from now on (one per test)."""
    messages: list[str] = []
    notes: list[str] = []
    _sink.set(messages)
    _notes.set(notes)
    return messages, notes


# Where the running test's notes go: figures a check reports whether it passes or not (speeds).
_notes: contextvars.ContextVar[list[str]] = contextvars.ContextVar("notes")


def note(text: str) -> None:
    """A line the report shows under the check, passed or failed."""
    _notes.get([]).append(text)


@dataclass(frozen=True)
class Slip:
    """A plausible mistake: what its output looks like and what to tell the learner who made it."""

    hint: str
    output: Any


def as_numpy(value: Any, what: str) -> np.ndarray:
    """A MAX Tensor, torch tensor or numpy array as a numpy array; anything else is a learner error."""
    if value is None:
        raise LearnerError(
            f"{what} returned None: return the result (is it still the skeleton's placeholder?)."
        )
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch
        return value.detach().cpu().numpy()
    if hasattr(value, "to_numpy"):  # MAX Tensor
        from max.driver import CPU

        from max.dtype import DType

        try:
            if not isinstance(value.device, CPU):
                value = value.to(CPU())
            if value.dtype == DType.bfloat16:  # numpy has none; torch reads it without a MAX cast
                import torch

                return torch.from_dlpack(value).float().numpy()
            return value.to_numpy()
        except Exception as error:
            raise LearnerError(
                f"{what} returned a tensor that could not be computed: {type(error).__name__}: "
                f"{harness.error_summary(str(error))}"
            ) from error
    if isinstance(value, (tuple, list)):
        raise LearnerError(
            f"{what} returned a {type(value).__name__} of {len(value)} items; it should return one "
            "Tensor."
        )
    raise LearnerError(f"{what} returned a {type(value).__name__}; it should return a MAX Tensor.")


def _fmt_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def abs_difference(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|got - expected| elementwise; 0 where both are the same infinity, inf where either is NaN."""
    got64, exp64 = got.astype(np.float64), expected.astype(np.float64)
    both_inf = np.isinf(got64) & np.isinf(exp64) & (np.sign(got64) == np.sign(exp64))
    diff = np.where(both_inf, 0.0, np.abs(got64 - exp64))
    return np.where(np.isnan(diff), np.inf, diff)


def difference(got: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> tuple[bool, str]:
    """(close?, description) for two arrays of the same shape."""
    got64, exp64 = got.astype(np.float64), expected.astype(np.float64)
    diff = abs_difference(got64, exp64)
    bad = diff > atol + rtol * np.where(np.isinf(exp64), 0.0, np.abs(exp64))
    if not bad.any():
        return True, ""
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    share = bad.mean() * 100
    return False, (
        f"largest difference {diff[worst]:.3g} at {_fmt_index(worst)} (expected "
        f"{exp64[worst]:.5g}, got {got64[worst]:.5g}; tolerance {atol:g} + {rtol:g}·|expected|); "
        f"{share:.3g}% of {bad.size} elements differ"
    )


def mismatch(
    what: str,
    got: Any,
    expected: Any,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    slips: Sequence[Slip] | Callable[[], Sequence[Slip]] = (),
    dtype: Any = np.float32,
) -> str | None:
    """None when `got` matches `expected`; otherwise the learner-facing description.

    `slips` may be a function, called only on a mismatch (building them can import torch).
    """
    got_np = as_numpy(got, what)
    exp_np = np.asarray(expected)
    finite = np.abs(exp_np[np.isfinite(exp_np)]) if exp_np.size else np.zeros(1)
    atol, rtol = harness.tolerances(atol, rtol, scale=float(finite.max(initial=1.0)))
    head = f"{what}:"
    if got_np.shape != exp_np.shape:
        return (
            f"{head} expected shape {list(exp_np.shape)}, got {list(got_np.shape)}. "
            + _shape_hint(got_np.shape, exp_np.shape)
        ).strip() + _slip_hint(got_np, slips, atol, rtol)
    if dtype is not None and got_np.dtype != np.dtype(dtype):
        return f"{head} expected dtype {np.dtype(dtype)}, got {got_np.dtype}."
    if np.isnan(got_np).any() and not np.isnan(exp_np).any():
        nans = np.isnan(got_np)
        first = _fmt_index(np.argwhere(nans)[0])
        return (
            f"{head} the output holds NaN ({nans.mean() * 100:.3g}% of elements, first at {first}). "
            "NaN comes from 0/0, inf - inf, or a softmax row that is masked entirely."
        )
    close, description = difference(got_np, exp_np, atol, rtol)
    if close:
        return None
    if np.isinf(got_np).any() and not np.isinf(exp_np).any():
        description += "; the output holds Inf"
    return f"{head} {description}." + _slip_hint(got_np, slips, atol, rtol)


def _slip_hint(got: np.ndarray, slips: Any, atol: float, rtol: float) -> str:
    """`\n  Hint: ...` for the known mistake whose output `got` matches most closely, else ''.

    Closest, not first: two slips can both fall within the loose tolerance (dividing the variance
    by n - 1 at width 768 looks like a different epsilon), and only one is exact. When several
    different mistakes give these very numbers (one query's mask is [[-inf]] whether visible and
    hidden are swapped or the diagonal is hidden), the hint names them all: picking one could send
    the learner to the wrong fix.
    """
    matches: list[tuple[float, str]] = []
    for slip in slips() if callable(slips) else slips:
        slip_np = np.asarray(slip.output)
        if slip_np.shape != got.shape or not difference(got, slip_np, atol * 10, rtol * 10)[0]:
            continue
        matches.append((float(abs_difference(got, slip_np).max(initial=0.0)), slip.hint))
    if not matches:
        return ""
    best = min(gap for gap, _ in matches)
    hints = list(dict.fromkeys(hint for gap, hint in matches if gap == best))
    if len(hints) == 1:
        return f"\n  Hint: {hints[0]}"
    count = {2: "two", 3: "three"}.get(len(hints), str(len(hints)))
    return f"\n  Hint: {count} known mistakes give exactly these numbers:" + "".join(
        f"\n  - {hint}" for hint in hints
    )


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if sorted(got) == sorted(expected):
        return "Same sizes in another order: check transposes and which axes you reshape."
    if len(got) != len(expected):
        return "A different number of axes: check where you reshape, split or merge."
    return ""


def expect_close(what: str, got: Any, expected: Any, **kwargs: Any) -> bool:
    """Record a failure (and keep going) when `got` differs from `expected`; True when it matches."""
    message = mismatch(what, got, expected, **kwargs)
    return expect(message is None, message or "")


def expect(ok: bool, message: str) -> bool:
    """Record a plain failure message unless `ok`."""
    if not ok:
        _sink.get([]).append(message)
        check.fail(message)
    return ok


def expect_eager_only_failure(eager_output: Any, expected: Any, tolerance: float = 1e-4) -> None:
    """After a compiled mismatch: say so plainly when the same code is right eagerly."""
    if mismatch("eager", eager_output, expected, atol=tolerance, rtol=tolerance) is None:
        expect(
            False,
            (
                "Your code is right eagerly but wrong inside the compiled graph. With max 26.7 a "
                "causal mask built from Tensor.arange comparisons and F.where, once a softmax "
                "follows it in a compiled graph, hides nothing: build it with F.band_part in step 3, "
                "as its page shows."
            ),
        )


def expect_compiled_matches(
    what: str,
    module: Any,
    cases: Sequence[tuple[Any, ...]],
    compare_case: Callable[..., bool],
    tolerance: float = 1e-4,
) -> None:
    """Compile `module` once with symbolic ("batch", "seqlen") and check it on every case.

    Each case is `(input, expected, *extra)`; `compare_case(label, got, input, expected, *extra)`
    records any mismatch and returns True on a match. After the first compiled mismatch the module
    also runs eagerly on that input, so a learner whose code is only wrong when compiled is told so.
    """

    from checks.harness import call, compile_module
    from checks.reference import max_tensor

    from max.dtype import DType
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    first = np.asarray(cases[0][0])
    dtype = (
        harness.dtype()
        if np.issubdtype(first.dtype, np.floating)
        else DType.from_numpy(first.dtype)
    )
    input_type = TensorType(
        dtype, ("batch", "seqlen", *first.shape[2:]), device=DeviceRef.from_device(harness.device())
    )
    graph = compile_module(what, module, input_type)
    for x, expected, *extra in cases:
        label = f"compiled, batch {x.shape[0]}, {x.shape[1]} tokens"
        got = call(f"the compiled {what}", graph, max_tensor(x))
        if not compare_case(label, got, x, expected, *extra):
            eager = call(f"{what}.forward", module, max_tensor(x))
            expect_eager_only_failure(eager, expected, tolerance)
            break
