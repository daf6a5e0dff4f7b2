"""Step 5: layer normalization.

Deep stacks of blocks train and run stably because each block normalizes its input: every
position's features are shifted to mean 0 and scaled to variance 1, then a learned gain (`weight`)
and shift (`bias`) are applied:

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias      (over the last axis)

computed in float32 whatever x's dtype and rounded back at the end, as PyTorch does.

Check your work: pixi run s5
"""

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor


class LayerNorm(Module):
    """Normalize each position's features to mean 0 and variance 1, then scale and shift."""

    def __init__(self, dim: int, *, eps: float = 1e-5):
        self.eps = eps
        # TODO 1: create the learned gain `weight` (ones) and shift `bias` (zeros), shape [dim].
        # Hint: Tensor.ones([dim]), Tensor.zeros([dim])
        self.weight = None
        self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        # TODO 2: normalize x over its last axis with self.eps, then scale and shift.
        # Hint: follow the formula in float32 (x.cast(DType.float32), see the page): .mean(axis=-1)
        #   keeps the axis, the biased variance is a mean of squares, F.rsqrt; weight and bias
        #   cast to float32 too; round the result back once with .cast(x.dtype).
        return None
