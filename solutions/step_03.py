"""Step 3 solution: the causal mask."""

from max.driver import Device
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.tensor import Tensor
from max.graph import Dim, DimLike


def causal_mask(
    sequence_length: DimLike,
    num_tokens: DimLike,
    *,
    dtype: DType,
    device: Device,
) -> Tensor:
    """An additive mask: 0 where query i may see key j (j <= i + num_tokens), -inf elsewhere.

    `num_tokens` counts keys that come before the queries (a cache of earlier tokens), so the
    mask is `[sequence_length, sequence_length + num_tokens]`.
    """
    total_length = Dim(sequence_length) + num_tokens
    mask = Tensor(float("-inf"), dtype=dtype, device=device)
    mask = F.broadcast_to(mask, shape=(sequence_length, total_length))  # [S, S+N], all -inf
    # Zero the band on and below diagonal `num_tokens`: those keys are in the past.
    return F.band_part(mask, num_lower=None, num_upper=num_tokens, exclude=True)
