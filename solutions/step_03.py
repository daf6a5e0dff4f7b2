"""Step 3 solution: the causal mask."""

from max.driver import Device
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.tensor import Tensor
from max.graph import DimLike


def causal_mask(
    sequence_length: DimLike,
    num_tokens: DimLike,
    *,
    dtype: DType,
    device: Device,
) -> Tensor:
    """An additive mask: 0 where query i may see key j (j <= i + num_tokens), -inf elsewhere.

    `num_tokens` counts keys that come before the queries (a cache of earlier tokens), so the
    mask is `[sequence_length, num_tokens + sequence_length]`.
    """
    hidden = Tensor(float("-inf"), dtype=dtype, device=device)
    hidden = F.broadcast_to(hidden, shape=(sequence_length, sequence_length))  # [S, S], all -inf
    # Zero the diagonal and below: query i sees the new keys 0 ... i.
    causal = F.band_part(hidden, num_lower=None, num_upper=0, exclude=True)
    # The cached keys come first and every query sees them all. A block of its own keeps this
    # right when num_tokens is symbolic (band_part's num_upper must be a Python int).
    cached = Tensor(0.0, dtype=dtype, device=device)
    cached = F.broadcast_to(cached, shape=(sequence_length, num_tokens))  # [S, N]
    return F.concat([cached, causal], axis=-1)  # [S, N + S]
