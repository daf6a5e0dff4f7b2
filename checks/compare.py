"""Comparing the learner's numbers with HuggingFace's, and wording what differs (numpy only).

A mismatch names what was compared, the shapes and dtypes, the largest difference and where, the
tolerance, the share of elements that differ, NaN/Inf, and a hint when the output matches a known
mistake (a "slip") better than the right answer. `checks.recorder` records what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from checks.tensors import as_numpy

# A float32 check's default tolerance: |got - expected| <= ATOL + RTOL * |expected| everywhere.
ATOL = RTOL = 1e-5
# bfloat16 keeps 8 significant bits (about 2.4 decimal digits): its checks get at least this,
# absolute and relative.
BFLOAT16_TOLERANCE = 3e-2
# A slip's output may differ from the learner's by this many times the check's tolerance.
SLIP_SLACK = 10


def tolerances(atol: float, rtol: float, precision: str, scale: float = 1.0) -> tuple[float, float]:
    """A check's float32 tolerances, widened when the run's dtype (`precision`) is bfloat16: its
    rounding errors grow with the size of the values they pass through (`scale`, the largest
    expected magnitude), so near-zero outputs of a whole model get an absolute margin."""
    if precision == "float32":
        return atol, rtol
    return max(atol, BFLOAT16_TOLERANCE * max(1.0, scale)), max(rtol, BFLOAT16_TOLERANCE)


@dataclass(frozen=True)
class Slip:
    """A plausible mistake: what its output looks like and what to tell the learner who made it."""

    hint: str
    output: Any


def _fmt_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def abs_difference(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|got - expected| elementwise; 0 where both are the same infinity, inf where either is NaN."""
    got64, exp64 = got.astype(np.float64), expected.astype(np.float64)
    both_inf = np.isinf(got64) & np.isinf(exp64) & (np.sign(got64) == np.sign(exp64))
    with np.errstate(invalid="ignore"):  # inf - inf is NaN here, and 0 or inf just below
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
    tolerance = (
        "the check is exact" if atol == rtol == 0 else f"tolerance {atol:g} + {rtol:g}·|expected|"
    )
    return False, (
        f"largest difference {diff[worst]:.3g} at {_fmt_index(worst)} (expected "
        f"{exp64[worst]:.5g}, got {got64[worst]:.5g}; {tolerance}); "
        f"{share:.3g}% of {bad.size} elements differ"
    )


def mismatch(
    what: str,
    got: Any,
    expected: Any,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    slips: Sequence[Slip] | Callable[[], Sequence[Slip]] = (),
    dtype: Any = np.float32,
    precision: str = "float32",
) -> str | None:
    """None when `got` matches `expected`; otherwise the learner-facing description.

    `slips` may be a function, called only on a mismatch (building them can import torch).
    `dtype` is the numpy dtype `got` must have (None: any); `precision` the dtype the run computes
    in (its options' `dtype`, given by the caller: this module reads no options), whose bfloat16
    widens the tolerances.
    """
    got_np = as_numpy(got, what)
    exp_np = np.asarray(expected)
    finite = np.abs(exp_np[np.isfinite(exp_np)]) if exp_np.size else np.zeros(1)
    atol, rtol = tolerances(atol, rtol, precision, scale=float(finite.max(initial=1.0)))
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


def names_a_mistake(message: str | None) -> bool:
    """Whether `mismatch`'s description ends with a known mistake's hint."""
    return message is not None and "\n  Hint: " in message


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
        if (
            slip_np.shape != got.shape
            or not difference(got, slip_np, atol * SLIP_SLACK, rtol * SLIP_SLACK)[0]
        ):
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
