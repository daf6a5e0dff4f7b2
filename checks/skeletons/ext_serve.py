"""Extension: serve your KV-cache GPT-2 with MAX's own server, behind an OpenAI-compatible API.

`max serve` does everything a server does around a model: HTTP, tokenizing, batching requests
that arrive at different times, sampling, detokenizing, streaming. It needs two things from you:

- the model's sizes, to plan memory (`GPT2ArchConfig`), read from the served folder's config.json;
- one step of a batch (`GPT2PipelineModel`): the server hands you the requests that are running,
  each with every token it has so far; you return the next token's logits of each, `[B, V]`.

Requests start and end at different times, so each keeps its own KV cache (your extension's),
from its first step until the server releases it. The loading, the registration and the command
line are given in gpt2_serve.py.

Check your work: pixi run check-serve. Then serve it: pixi run serve --model DIR.
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

    # TODO 1: three sizes from self.huggingface_config (a transformers GPT2Config): how many heads
    #   have their own keys and values, each head's width, and the number of layers.
    # Hint: GPT2Config names them n_head, n_embd and n_layer.
    @property
    def num_key_value_heads(self) -> int:
        return None

    @property
    def head_dim(self) -> int:
        return None

    @property
    def num_layers(self) -> int:
        return None

    @classmethod
    def calculate_max_seq_len(cls, huggingface_config, model_config) -> int:
        # TODO 2: the longest sequence the server may build: the user's --max-length
        #   (model_config.max_length, None when not given), but never more positions than wpe has.
        # Hint: huggingface_config.n_positions; min(...)
        return None


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
        # TODO 3: replica_batches is a list of lists of contexts (one list per replica; one here).
        #   Return GPT2Inputs with each context's request_id and its tokens as a list of ints,
        #   in the batch's order, and kv_cache_inputs passed along.
        # Hint: context.request_id; context.tokens.all is a numpy array of every token so far.
        return None

    def execute(self, model_inputs: GPT2Inputs) -> ModelOutputs:
        # TODO 4: for each request: its (ids seen, cache) from self.caches, or an empty cache
        #   (self.empty_cache()) when it is new or its ids do not continue the ones seen.
        # Hint: self.caches.get(request_id, ([], None)); ids[:len(seen)] != seen

        # TODO 5: run self.model on the ids the cache has not seen, as a [1, S] int64 tensor;
        #   keep (ids, the grown cache) in self.caches; keep the last position's logits [V].
        # Hint: self.tensor(np.array([ids[len(seen):]], dtype=np.int64));
        #   logits, *cache = self.model(new, *cache); self.to_numpy(logits)[0, -1]

        # TODO 6: the rows stacked into one [B, V] float32 Buffer on self.devices[0], returned as
        #   ModelOutputs(logits=..., next_token_logits=...) (the same Buffer for both).
        # Hint: Buffer.from_numpy(np.stack(rows)).to(self.devices[0])
        return None

    def release(self, request_id) -> None:
        # TODO 7: the server is done with this request: forget its cache, or memory grows with
        #   every request ever served.
        # Hint: self.caches.pop(request_id, None)
        pass


ARCHITECTURES = [architecture(GPT2PipelineModel, GPT2ArchConfig)]
