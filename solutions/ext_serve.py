"""Extension solution: serve your KV-cache GPT-2 with MAX's own server, behind an OpenAI API.

    pixi run serve --model DIR        # max serve --custom-architectures steps:ext_serve ...
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from max.driver import Buffer
from max.pipelines.lib import ModelInputs, ModelOutputs
from max.pipelines.lib.interfaces.arch_config import ArchConfigWithAttentionKVCache

from ext_kv_cache import CachedGPT2LMHeadModel

from gpt2_serve import GivenPipelineModel, architecture


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


@dataclass
class GPT2Inputs(ModelInputs):
    """One step of a batch: each request's id and every token it has so far."""

    request_ids: list = field(default_factory=list)
    token_ids: list = field(default_factory=list)


class GPT2PipelineModel(GivenPipelineModel):
    """One step of a batch of requests on your KV-cache model, a cache per request."""

    model_class = CachedGPT2LMHeadModel

    def prepare_initial_token_inputs(self, replica_batches, kv_cache_inputs=None,
                                     return_n_logits=1) -> GPT2Inputs:
        contexts = [context for batch in replica_batches for context in batch]
        return GPT2Inputs(request_ids=[context.request_id for context in contexts],
                          token_ids=[context.tokens.all.tolist() for context in contexts],
                          kv_cache_inputs=kv_cache_inputs)

    def execute(self, model_inputs: GPT2Inputs) -> ModelOutputs:
        rows = []
        for request_id, ids in zip(model_inputs.request_ids, model_inputs.token_ids, strict=True):
            seen, cache = self.caches.get(request_id, ([], None))
            if cache is None or ids[:len(seen)] != seen or len(ids) <= len(seen):
                seen, cache = [], self.empty_cache()  # a new request: nothing cached yet
            new = self.tensor(np.array([ids[len(seen):]], dtype=np.int64))  # [1, S]: unseen ids
            logits, *cache = self.model(new, *cache)  # [1, 1, V]; the cache grows by S
            self.caches[request_id] = (ids, cache)
            rows.append(self.to_numpy(logits)[0, -1])  # [V]
        logits = Buffer.from_numpy(np.stack(rows)).to(self.devices[0])  # [B, V]
        return ModelOutputs(logits=logits, next_token_logits=logits)

    def release(self, request_id) -> None:
        self.caches.pop(request_id, None)


ARCHITECTURES = [architecture(GPT2PipelineModel, GPT2ArchConfig)]
