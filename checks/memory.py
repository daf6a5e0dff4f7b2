"""How fast this machine reads memory: the bound of decoding, which reads every weight per token.

The bench prints it with the ceiling it puts on tokens/s; the Mojo check compares the kernel's
speed with it."""

from __future__ import annotations

import time

# Larger than any CPU cache, so the sum reads main memory (the note in README: 512 MiB).
SUM_MIB = 512


def read_bandwidth_gbs(mib: int = SUM_MIB, repeats: int = 5) -> float:
    """GB/s of the fastest of `repeats` float32 sums over `mib` MiB, on PyTorch's threads (one per
    core): the most this machine's cores read together, the same reading a decoder does."""
    import torch

    data = torch.ones(mib * 2**20 // 4, dtype=torch.float32)  # written once, so the pages exist
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            data.sum()
            best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best / 1e9


def decode_bytes_per_token(model) -> int:
    """Bytes of weights a HuggingFace GPT-2 reads to decode one token: every parameter once (the
    tied embedding as the LM head), except the position table, of which it reads one row."""
    seen, total = set(), 0
    for name, parameter in model.named_parameters():
        if id(parameter) in seen or name.endswith("wpe.weight"):
            continue
        seen.add(id(parameter))
        total += parameter.numel() * parameter.element_size()
    return total
