"""Step 3: the causal mask.

A language model predicts each token from the tokens before it, so when position i attends, it
must not see positions after i. Attention adds this mask to its scores before the softmax: 0 where
a query may look, -inf where it may not (exp(-inf) = 0, so those keys get no weight).

`num_tokens` is the number of keys that come before the queries (earlier tokens kept in a cache,
used in the KV-cache chapter): the mask is [sequence_length, sequence_length + num_tokens], and
query i sees keys 0 ... i + num_tokens.

Check your work: pixi run s3
"""

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
    """An additive mask: 0 where query i may see key j (j <= i + num_tokens), -inf elsewhere."""
    # TODO 1: the number of keys is sequence_length + num_tokens.
    # Hint: Dim(sequence_length) + num_tokens works for numbers and for symbolic sizes alike.

    # TODO 2: make a [sequence_length, total_length] tensor filled with -inf.
    # Hint: Tensor(float("-inf"), dtype=dtype, device=device), then F.broadcast_to.

    # TODO 3: set the visible part (on and below diagonal num_tokens) to 0.
    # Hint: F.band_part(x, num_lower=None, num_upper=num_tokens, exclude=True) zeroes that band
    #   and keeps the rest. It stays right inside compiled graphs, where comparisons built on
    #   Tensor.arange can go wrong.
    return None
