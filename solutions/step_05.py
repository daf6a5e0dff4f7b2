"""Step 5 solution: layer normalization."""

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor


class LayerNorm(Module):
    """Normalize each position's features to mean 0 and variance 1, then scale and shift."""

    def __init__(self, dim: int, *, eps: float = 1e-5):
        self.eps = eps
        self.weight = Tensor.ones([dim])  # gain, learned
        self.bias = Tensor.zeros([dim])  # shift, learned

    def forward(self, x: Tensor) -> Tensor:
        # In float32 whatever x's dtype, rounded back once at the end, as PyTorch does: in
        # bfloat16 (a GPU's default) MAX 26.7 can't compile the statistics, and float32 rounds less.
        x32 = x.cast(DType.float32)
        mean = x32.mean(axis=-1)  # [B, S, 1]
        var = ((x32 - mean) ** 2).mean(axis=-1)  # [B, S, 1], biased: divides by d
        normed = (x32 - mean) * F.rsqrt(var + self.eps)  # [B, S, E]
        y = normed * self.weight.cast(DType.float32) + self.bias.cast(DType.float32)
        return y.cast(x.dtype)
