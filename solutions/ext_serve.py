"""Extension solution: serve your KV-cache GPT-2 with MAX's own server, behind an OpenAI API.

    pixi run serve --model DIR        # max serve --custom-architectures steps:ext_serve ...
"""

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from max.driver import Buffer
from max.experimental import functional as F
from max.experimental.nn import ModuleList
from max.experimental.tensor import Tensor
from max.pipelines.lib import ModelInputs, ModelOutputs
from max.pipelines.lib.interfaces.arch_config import ArchConfigWithAttentionKVCache

from ext_kv_cache import CachedAttention, CachedBlock, CachedGPT2LMHeadModel

from gpt2_serve import GivenPipelineModel, architecture, batched_input_types, left_pad


@dataclass
class GPT2ArchConfig(ArchConfigWithAttentionKVCache):
    """The sizes MAX plans memory with, read from the served folder's config.json."""

    DEFAULT_ENCODING: ClassVar[str] = "float32"
    SUPPORTED_ENCODINGS: ClassVar[set[str]] = {"float32"}

    @property
    def num_key_value_heads(self) -> int:
        return self.huggingface_config.n_head  # each of GPT-2's heads has its own keys and values

    @property
    def head_dim(self) -> int:
        return self.huggingface_config.n_embd // self.huggingface_config.n_head

    @property
    def num_layers(self) -> int:
        return self.huggingface_config.n_layer

    @classmethod
    def calculate_max_seq_len(cls, huggingface_config, model_config) -> int:
        limit = huggingface_config.n_positions  # wpe has a row per position, no more
        return min(model_config.max_length or limit, limit)


class BatchedAttention(CachedAttention):
    """CachedAttention whose mask is an input: each row of the batch has its own."""

    def forward(self, hidden_states: Tensor, past_key: Tensor, past_value: Tensor, mask: Tensor):
        query, key, value = F.split(self.c_attn(hidden_states), [self.embed_dim] * 3, axis=-1)
        query, key, value = (self._split_heads(t) for t in (query, key, value))  # [B, H, S, D]
        key = F.concat([past_key, key], axis=2)  # [B, H, N + S, D]
        value = F.concat([past_value, value], axis=2)
        scores = query @ key.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))
        # The mask's last axis is N + S too; rebind lets the compiled graph know it.
        mask = F.rebind(mask, [scores.shape[0], 1, scores.shape[2], scores.shape[3]])
        attended = F.softmax(scores + mask, axis=-1) @ value  # [B, H, S, D]
        return self.c_proj(self._merge_heads(attended)), key, value


class BatchedBlock(CachedBlock):
    def __init__(self, config):
        super().__init__(config)
        self.attn = BatchedAttention(config)

    def forward(self, hidden_states: Tensor, past_key: Tensor, past_value: Tensor, mask: Tensor):
        attended, key, value = self.attn(self.ln_1(hidden_states), past_key, past_value, mask)
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.ln_2(hidden_states)), key, value


class BatchedGPT2LMHeadModel(CachedGPT2LMHeadModel):
    """(ids [B, S], positions [B, S], mask [B, 1, S, N + S], cache) -> (logits [B, 1, V], cache
    grown by S): the KV-cache model with each row's positions and mask given."""

    def __init__(self, config):
        super().__init__(config)
        self.transformer.h = ModuleList([BatchedBlock(config) for _ in range(config.n_layer)])

    def forward(self, input_ids: Tensor, positions: Tensor, mask: Tensor, *past: Tensor):
        body = self.transformer
        hidden_states = body.wte(input_ids) + body.wpe(positions)  # [B, S, E]
        present = []
        for layer, block in enumerate(body.h):
            hidden_states, key, value = block(
                hidden_states, past[2 * layer], past[2 * layer + 1], mask)
            present += [key, value]
        logits = self.lm_head(body.ln_f(hidden_states)[:, -1:])  # [B, 1, V]: the last position
        return (logits, *present)


def align(cached: list[int], new: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `cached[i]` cached and `new[i]` new tokens, padded on the left to N = max(cached)
    and S = max(new): each row's positions [B, S] and attention mask [B, 1, S, N + S]."""
    batch, longest_cache, longest_new = len(cached), max(cached), max(new)
    padding = longest_new - np.array(new)  # padded ids before each row's new ones
    # Row i's new token j (after the padding) is at position cached[i] + j; padding at 0.
    step = np.arange(longest_new)[None, :] - padding[:, None]  # [B, S]
    positions = np.maximum(np.array(cached)[:, None] + step, 0).astype(np.int64)

    keys = np.arange(longest_cache + longest_new)  # the key slots: N cached, then S new
    query = np.arange(longest_new)[:, None]  # [S, 1]
    mask = np.full((batch, 1, longest_new, len(keys)), -np.inf, np.float32)
    for row in range(batch):
        its_cache = (keys >= longest_cache - cached[row]) & (keys < longest_cache)
        new_key = keys - longest_cache  # the new keys' index among the S
        its_new = (new_key >= padding[row]) & (new_key <= query)  # its own, up to the query
        # A padded query sees itself: no row of -inf only, so no NaN (its output is unused).
        mask[row, 0][its_cache | its_new | (new_key == query)] = 0.0
    return positions, mask


@dataclass
class GPT2Inputs(ModelInputs):
    """One step of a batch: each request's id and every token it has so far."""

    request_ids: list = field(default_factory=list)
    token_ids: list = field(default_factory=list)


class GPT2PipelineModel(GivenPipelineModel):
    """One step of a batch of requests, one forward of the model for all of them."""

    model_class = BatchedGPT2LMHeadModel
    input_types = staticmethod(batched_input_types)

    def prepare_initial_token_inputs(self, replica_batches, kv_cache_inputs=None,
                                     return_n_logits=1) -> GPT2Inputs:
        contexts = [context for batch in replica_batches for context in batch]
        return GPT2Inputs(request_ids=[context.request_id for context in contexts],
                          token_ids=[context.tokens.all.tolist() for context in contexts],
                          kv_cache_inputs=kv_cache_inputs)

    def execute(self, model_inputs: GPT2Inputs) -> ModelOutputs:
        requests = list(zip(model_inputs.request_ids, model_inputs.token_ids, strict=True))
        seen, caches = [], []
        for request_id, ids in requests:
            ids_seen, cache = self.caches.get(request_id, ([], None))
            if cache is None or ids[:len(ids_seen)] != ids_seen or len(ids) <= len(ids_seen):
                ids_seen, cache = [], self.empty_cache()  # a new request: nothing cached yet
            seen.append(len(ids_seen))
            caches.append(cache)
        new = [ids[cached:] for (_, ids), cached in zip(requests, seen, strict=True)]

        # One batch: every row padded on the left to the longest cache and the longest new ids.
        positions, mask = align(seen, [len(ids) for ids in new])
        input_ids = left_pad([np.array(ids, np.int64) for ids in new], axis=0)  # [B, S]
        past = [left_pad([cache[layer] for cache in caches], axis=1)  # [B, H, N, D]
                for layer in range(len(caches[0]))]
        logits, *present = self.model(*map(self.tensor, (input_ids, positions, mask, *past)))

        # Each request keeps its own keys and values: the slots its mask let it see.
        longest, total = max(seen), int(mask.shape[-1])  # N and N + S
        present = [self.to_numpy(grown) for grown in present]  # [B, H, N + S, D]
        for row, (request_id, ids) in enumerate(requests):
            slots = np.r_[longest - seen[row]:longest, total - len(new[row]):total]
            self.caches[request_id] = (ids, [grown[row][:, slots] for grown in present])
        rows = np.ascontiguousarray(self.to_numpy(logits)[:, -1])  # [B, V]
        logits = Buffer.from_numpy(rows).to(self.devices[0])
        return ModelOutputs(logits=logits, next_token_logits=logits)

    def release(self, request_id) -> None:
        self.caches.pop(request_id, None)


ARCHITECTURES = [architecture(GPT2PipelineModel, GPT2ArchConfig)]
