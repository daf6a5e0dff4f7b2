"""Tensors between the checks and the learner's code: numpy out of MAX or torch, MAX in, bfloat16."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from checks import options
from checks.learner import LearnerError, error_summary
from checks.runtime import device, low_precision


@contextlib.contextmanager
def torch_no_grad() -> Iterator[Any]:
    """torch, with gradients off while the block runs (`with torch_no_grad() as torch:`): the
    checks only ever run HuggingFace forward. Only the block: torch's grad mode outside it, in
    this thread and any other, stays as it was."""
    import torch

    with torch.no_grad():
        yield torch


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
                f"{error_summary(str(error))}"
            ) from error
    if isinstance(value, (tuple, list)):
        raise LearnerError(
            f"{what} returned a {type(value).__name__} of {len(value)} items; it should return one "
            "Tensor."
        )
    raise LearnerError(f"{what} returned a {type(value).__name__}; it should return a MAX Tensor.")


def bfloat16(array: np.ndarray) -> Any:
    """A float array as a bfloat16 torch tensor: numpy has no bfloat16, and torch's cast, unlike
    MAX's eager one on a CPU, compiles nothing."""
    import torch

    return torch.tensor(array).bfloat16()


def max_tensor(array: Any, float32: bool = False) -> Any:
    """A numpy or torch array as a MAX Tensor on the checks' device, floats in the checks' dtype
    (or kept in float32).

    bfloat16 goes through torch, which has it (numpy has none): a MAX cast would compile a graph.
    """
    from max.experimental.tensor import Tensor

    if hasattr(array, "detach") and str(array.dtype) != "torch.bfloat16":
        array = array.numpy()
    if (
        isinstance(array, np.ndarray)
        and low_precision()
        and not float32
        and np.issubdtype(array.dtype, np.floating)
    ):
        array = bfloat16(array)
    tensor = Tensor.from_dlpack(
        np.ascontiguousarray(array) if isinstance(array, np.ndarray) else array.contiguous()
    )
    return tensor.to(device()) if options.current().device != "cpu" else tensor


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in numpy, for a check's expected numbers and slips."""
    with np.errstate(invalid="ignore"):  # a row hidden entirely is NaN, as in MAX and torch
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
