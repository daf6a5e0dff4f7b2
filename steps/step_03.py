"""Step 3: the causal mask.

A language model predicts each token from the tokens before it, so when position i attends, it
must not see positions after i. Attention adds this mask to its scores before the softmax: 0 where
a query may look, -inf where it may not (exp(-inf) = 0, so those keys get no weight).

`num_tokens` is the number of keys that come before the queries (earlier tokens kept in a cache,
used in the KV-cache chapter): the mask is [sequence_length, num_tokens + sequence_length], and
query i sees keys 0 ... i + num_tokens.

Check your work: pixi run s3
"""

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
    # TODO 1: make a [sequence_length, sequence_length] tensor filled with -inf.
    # Hint: Tensor(float("-inf"), dtype=dtype, device=device), then F.broadcast_to(x, shape=...).

    # TODO 2: set the diagonal and everything below it to 0: query i sees the new keys 0 ... i.
    # Hint: F.band_part(x, num_lower=None, num_upper=0, exclude=True) zeroes that band and keeps
    #   the rest. It stays right inside compiled graphs, where comparisons built on Tensor.arange
    #   can go wrong.

    # TODO 3: put a [sequence_length, num_tokens] block of zeros in front: every query sees all
    #   the cached keys. Join the two along the last axis.
    # Hint: F.concat([zeros, triangle], axis=-1). num_tokens may be a symbolic size inside a
    #   compiled graph, which is why it gets a block of its own: band_part needs a Python int.
    return None
