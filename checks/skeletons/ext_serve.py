"""Extension: serve your KV-cache GPT-2 with MAX's own server, behind an OpenAI-compatible API.

`max serve` does everything a server does around a model: HTTP, tokenizing, batching requests
that arrive at different times, sampling, detokenizing, streaming. It needs two things from you:

- the model's sizes, to plan memory (`GPT2ArchConfig`), read from the served folder's config.json;
- one step of a batch (`GPT2PipelineModel`): the server hands you the requests that are running,
  each with every token it has so far; you return the next token's logits of each, `[B, V]`.

Requests start and end at different times, so each keeps its own KV cache (your extension's),
from its first step until the server releases it. One step runs the model once for all of them:
decoding reads every weight once per forward, so B requests in one forward cost about what one
does. Their rows have different lengths: `align` lines them up (padding on the left, a mask and
positions per row) for `BatchedGPT2LMHeadModel`, your KV-cache model with those as inputs. The
loading, the registration and the command line are given in gpt2_serve.py.

Check your work: pixi run check-serve. Then serve it: pixi run serve --model DIR.
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
    # TODO 3: the positions [B, S]: row i's new ids are its last new[i] columns (padding comes
    #   first) and continue after its own cache: cached[i], cached[i] + 1, ... Padded columns may
    #   take any position wpe has (0 will do).
    # Hint: with S = max(new), np.arange(S) - (S - new[i]) counts row i's columns from its first
    #   real id; np.maximum(..., 0); int64.
    positions = None

    # TODO 4: the mask [B, 1, S, N + S] (0 visible, -inf hidden), each row its own. Key slots
    #   0..N-1 are the padded caches (row i's are the last cached[i] of them), N..N+S-1 the new
    #   ids (row i's are the last new[i]). A real query sees its row's cached keys and its row's
    #   new keys up to itself, never a padded slot. A padded query must see at least one key
    #   (itself), or softmax over only -inf gives NaN.
    # Hint: np.full((B, 1, S, N + S), -np.inf, np.float32) with N = max(cached);
    #   np.arange comparisons per row give boolean masks; mask[row, 0][visible] = 0.0
    mask = None
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
        # TODO 5: replica_batches is a list of lists of contexts (one list per replica; one here).
        #   Return GPT2Inputs with each context's request_id and its tokens as a list of ints,
        #   in the batch's order, and kv_cache_inputs passed along.
        # Hint: context.request_id; context.tokens.all is a numpy array of every token so far.
        return None

    def execute(self, model_inputs: GPT2Inputs) -> ModelOutputs:
        # TODO 6: for each request: how many of its ids its cache holds (seen) and the cache (a
        #   list of numpy arrays, [n_head, cached, head_dim] for each layer's keys and values),
        #   from self.caches; 0 and self.empty_cache() when it is new or its ids do not continue
        #   the ones seen. Then each request's new ids: those after the ones seen.
        # Hint: self.caches.get(request_id, ([], None)); ids[:len(ids_seen)] != ids_seen

        # TODO 7: one forward for the batch: align the rows, left_pad their new ids into [B, S]
        #   int64 and each layer's caches into [B, n_head, N, head_dim], and call self.model once.
        # Hint: left_pad(arrays, axis) pads at the front and stacks (gpt2_serve.py); the model
        #   takes (input_ids, positions, mask, *caches) as MAX tensors: self.tensor(array).

        # TODO 8: each request keeps its own slots of the grown caches [B, H, N + S, D], the ones
        #   its mask let it see, with its ids, in self.caches. Return the last position's logits
        #   of every row, [B, V] float32, as one Buffer on self.devices[0], in
        #   ModelOutputs(logits=..., next_token_logits=...) (the same Buffer for both).
        # Hint: self.to_numpy(tensor); np.r_[a:b, c:d] joins two ranges; grown[row][:, slots];
        #   Buffer.from_numpy(array).to(self.devices[0])
        return None

    def release(self, request_id) -> None:
        # TODO 9: the server is done with this request: forget its cache, or memory grows with
        #   every request ever served.
        # Hint: self.caches.pop(request_id, None)
        pass


ARCHITECTURES = [architecture(GPT2PipelineModel, GPT2ArchConfig)]
