"""CUDA-graph token decoding: one decode step over a static KV cache, recorded once, replayed per token.

An eager decode step of a 1B LM launches hundreds of small kernels, so on a GPU it costs ~35x its
weight-read floor (bench/RESULTS.md). Here every tensor a step reads or writes has a fixed shape
and address for the life of a ``DecodeGraph``: transformers' ``StaticCache`` (allocated up front),
the last token ``[B, 1]``, its positions ``[B, 1]``, the attention mask ``[B, cache_len]``, each
cross-attention layer's media keys/values ``[B, h, media_len, dh]`` and their mask
``[B, 1, 1, media_len]``. The step advances that state itself (marks the new cache slot visible,
bumps the positions), so a replay needs no Python. The prompt is prefilled eagerly (any length);
sampling stays outside the graph, so greedy, seeded sampling and stopping are ``decode_steps``'.

One graph per bucket of (rows, cache_len, media_len), kept per model and reused by every request
that fits (rows are padded with dummy rows, the media with masked slots). On CPU — or with
``model.cuda_graphs: off`` — the same static step runs eagerly (tests check it against the
dynamic loop); if capture fails the step runs eagerly too, with a warning.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from transformers import StaticCache

from heron.models.media_state import MediaRequest
from heron.models.sampling import SamplingConfig, next_tokens_per_row

if TYPE_CHECKING:
    from heron.models.heron_model import HeronModel, Prompts

logger = logging.getLogger(__name__)

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # batch sizes a graph is recorded for; larger batches run eagerly
CACHE_STEP = 256  # cache_len and media_len are rounded up to a multiple of this (tokens)
WARMUP_STEPS = 2  # eager steps on a side stream before capture (cuBLAS handles, allocator)


# Set while ``decode_steps`` runs the model's eager loop for a batch it cannot graph, so a hook in
# ``HeronModel.decode_steps`` that calls back here does not recurse.
_EAGER = contextvars.ContextVar("heron_graphs_eager", default=False)


def graphs_wanted(model: HeronModel) -> bool:
    """Whether generation should use CUDA graphs: ``cuda_graphs: auto``, on CUDA, gated cross-attention."""
    if _EAGER.get():
        return False
    return model.config.cuda_graphs == "auto" and model.device.type == "cuda" and model.projector is None


class StaticMediaRequest(MediaRequest):
    """Decode-step media whose keys/values and mask live in preallocated, fixed-shape buffers."""

    def __init__(self, keys_values: dict[int, tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor):
        device = mask.device  # media only non-empty, so the wrapped layers take the xattn path
        super().__init__(
            media=torch.zeros(1, 1, 1, 1, device=device),
            media_mask=torch.zeros(1, 1, 1, dtype=torch.bool, device=device),
            mode="all_previous",
        )
        self._static_keys_values, self._static_mask = keys_values, mask

    def set_text_time(self, text_time: torch.Tensor) -> None:  # decode: every new token follows all media
        pass

    def mask(self) -> torch.Tensor:
        return self._static_mask  # bool [B, 1, 1, media_len]

    def keys_values(self, layer: int, attention) -> tuple[torch.Tensor, torch.Tensor]:
        return self._static_keys_values[layer]  # [B, h, media_len, dh] each


def _round_up(n: int, step: int = CACHE_STEP) -> int:
    return max(step, -(-n // step) * step)


class DecodeGraph:
    """Static buffers, a StaticCache and (on CUDA) one recorded decode step for one bucket."""

    def __init__(self, model: HeronModel, *, rows: int, cache_len: int, media_len: int, capture: bool):
        self.model, self.rows, self.cache_len, self.media_len = model, rows, cache_len, media_len
        self.lock = threading.Lock()  # one request at a time through these buffers
        lm, device, dtype = model.lm, model.device, model.dtype
        cfg = lm.config
        heads = cfg.num_attention_heads
        self.cache = StaticCache(config=cfg, max_cache_len=cache_len)
        self.cache.early_initialization(  # allocated now: a graph must see the final addresses
            rows,
            getattr(cfg, "num_key_value_heads", None) or heads,
            getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
            dtype,
            device,
        )
        self.input_ids = torch.zeros(rows, 1, dtype=torch.long, device=device)  # [B, 1] the last token
        self.position_ids = torch.zeros(rows, 1, dtype=torch.long, device=device)  # [B, 1]
        self.attention_mask = torch.zeros(rows, cache_len, dtype=torch.long, device=device)  # [B, cache_len]
        self.slot = torch.zeros(1, dtype=torch.long, device=device)  # [1] the cache slot of the next token
        keys_values = {}
        for index in model.xattn_layer_indices:
            attention = _attention(model, index)
            shape = (rows, attention.heads, media_len, attention.to_q.out_features // attention.heads)
            keys_values[index] = (
                torch.zeros(shape, dtype=dtype, device=device),
                torch.zeros(shape, dtype=dtype, device=device),
            )  # [B, h, media_len, dh] each
        self.media_mask = torch.zeros(rows, 1, 1, media_len, dtype=torch.bool, device=device)  # [B, 1, 1, N]
        self.media = StaticMediaRequest(keys_values, self.media_mask)
        vocab = lm.get_output_embeddings().out_features
        self.logits = torch.zeros(rows, vocab, dtype=dtype, device=device)  # [B, V]
        self.graph: torch.cuda.CUDAGraph | None = None
        if capture:
            self._capture()

    # --- the recorded part ----------------------------------------------------------------------

    def _eager_step(self) -> None:
        """Feed ``input_ids`` at ``slot``: logits [B, V] into ``self.logits``, state advanced in place."""
        self.attention_mask.index_fill_(1, self.slot, 1)  # the new token sees itself
        with self.model.media_state.use(self.media):
            out = self.model._lm(
                input_ids=self.input_ids,
                attention_mask=self.attention_mask,
                position_ids=self.position_ids,
                use_cache=True,
                **{self.model._lm_cache_name: self.cache},
            )
        self.logits.copy_(out.logits[:, -1])  # [B, V]
        self.position_ids.add_(1)
        self.slot.add_(1)

    def _capture(self) -> None:
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self._eager_step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._eager_step()  # recorded, not run
            self.graph = graph
        except Exception as exc:  # a host sync or an allocation the LM makes inside its step
            logger.warning("CUDA graph capture failed (%s); decoding eagerly over the static cache", exc)
            torch.cuda.synchronize()

    def step(self) -> torch.Tensor:
        """One decode step: logits [B, V] (the static buffer: read it before the next step)."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager_step()
        return self.logits

    # --- per request -----------------------------------------------------------------------------

    def prefill(self, batch: Prompts) -> torch.Tensor:
        """Eager prefill of a batch padded to ``rows``; media K/V copied into the buffers. → logits [B, V]."""
        model, rows = self.model, self.rows
        ids, mask, media, media_mask = _pad_rows(batch, rows, model.tokenizer.pad_token_id)  # [rows, ...]
        length = ids.shape[1]
        self.cache.reset()  # in place: addresses kept, so the graph stays valid
        self.attention_mask.zero_()
        self.attention_mask[:, :length] = mask
        request = model._request(media, media_mask)
        with model._using(request):
            inputs = model._first_inputs(ids, mask, media, media_mask, request)["lm"]
            out = model._lm(**inputs, use_cache=True, **{model._lm_cache_name: self.cache})
            request.set_text_time((ids == model.image_token_id).sum(-1, keepdim=True))  # [rows, 1]
            visible = request.mask()  # [rows, 1, 1, M*N]
            n = visible.shape[-1]
            for layer, (keys, values) in self.media._static_keys_values.items():
                fresh = request.keys_values(layer, _attention(model, layer))  # [rows, h, M*N, dh] each
                keys[:, :, :n].copy_(fresh[0])
                values[:, :, :n].copy_(fresh[1])
        self.media_mask.zero_()
        self.media_mask[..., :n] = visible
        self.position_ids.copy_(inputs["position_ids"][:, -1:] + 1)
        self.slot.fill_(length)
        return out.logits[:, -1]

    def feed(self, token: torch.Tensor) -> None:
        """token [b] (b <= rows): the next step's input; dummy rows keep feeding pads."""
        self.input_ids[: token.shape[0], 0].copy_(token)


def _attention(model: HeronModel, layer: int):
    for module in model.lm.modules():
        if getattr(module, "index", None) == layer and hasattr(module, "gated_cross_attn_layer"):
            return module.gated_cross_attn_layer.attn
    raise KeyError(layer)


def _pad_rows(batch: Prompts, rows: int, pad_id: int) -> tuple[torch.Tensor, ...]:
    """input_ids, attention_mask [rows, L], media [rows, M, N, d], media_mask [rows, M, N]; dummy
    rows hold one visible pad token and no media."""
    extra = rows - batch.input_ids.shape[0]
    ids, mask, media, media_mask = batch.input_ids, batch.attention_mask, batch.media, batch.media_mask
    if extra:
        pad_ids = ids.new_full((extra, ids.shape[1]), pad_id)
        pad_mask = mask.new_zeros(extra, mask.shape[1])
        pad_mask[:, -1] = 1
        ids, mask = torch.cat([ids, pad_ids]), torch.cat([mask, pad_mask])
        media = torch.cat([media, media.new_zeros(extra, *media.shape[1:])])
        media_mask = torch.cat([media_mask, media_mask.new_zeros(extra, *media_mask.shape[1:])])
    return ids, mask, media, media_mask


class GraphPool:
    """A model's DecodeGraphs by bucket (rows, cache_len, media_len), built on first use."""

    def __init__(self, model: HeronModel):
        self._model = weakref.ref(model)
        self._graphs: dict[tuple[int, int, int], DecodeGraph] = {}
        self._lock = threading.Lock()

    def get(self, rows: int, cache_len: int, media_len: int, *, capture: bool) -> DecodeGraph | None:
        bucket_rows = next((r for r in ROW_BUCKETS if r >= rows), None)
        if bucket_rows is None:
            return None
        key = (bucket_rows, _round_up(cache_len), _round_up(media_len))
        with self._lock:
            if key not in self._graphs:
                model = self._model()
                self._graphs[key] = DecodeGraph(model, rows=key[0], cache_len=key[1], media_len=key[2], capture=capture)
            return self._graphs[key]


_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> GraphPool


def graph_pool(model: HeronModel) -> GraphPool:
    if model not in _POOLS:
        _POOLS[model] = GraphPool(model)
    return _POOLS[model]


@torch.no_grad()
def decode_steps(
    model: HeronModel,
    batch: Prompts,
    *,
    max_new_tokens: int | list[int],
    sampling: SamplingConfig | list[SamplingConfig] | None = None,
    stop_at_end_of_chunk: bool = True,
    capture: bool | None = None,
) -> Iterator[torch.Tensor]:
    """``HeronModel.decode_steps`` over a static cache: the same tokens [B] per step.

    capture: record a CUDA graph (None: when the model is on CUDA). A batch larger than the
    largest row bucket, or a model with the linear-prefix connector, runs the eager loop.
    """
    rows, length = batch.input_ids.shape
    limits = [max_new_tokens] * rows if isinstance(max_new_tokens, int) else list(max_new_tokens)
    configs = sampling if isinstance(sampling, list) else [sampling or SamplingConfig()] * rows
    media_len = batch.media.shape[1] * batch.media.shape[2]
    graph = None
    if model.projector is None and len(limits) == rows and len(configs) == rows and max(limits, default=0) > 0:
        capture = model.device.type == "cuda" if capture is None else capture
        graph = graph_pool(model).get(rows, length + max(limits), media_len, capture=capture)
    if graph is None:
        eager = _EAGER.set(True)
        try:
            yield from model.decode_steps(
                batch, max_new_tokens=max_new_tokens, sampling=sampling, stop_at_end_of_chunk=stop_at_end_of_chunk
            )
        finally:
            _EAGER.reset(eager)
        return
    generators = [model._generator(c) for c in configs]
    stop_ids = torch.tensor(model.stop_token_ids(stop_at_end_of_chunk), device=model.device)
    banned = [model.image_token_id, model.tokenizer.pad_token_id]  # a generated <image> would have no media
    last_step = torch.tensor(limits, device=model.device) - 1  # [B]
    with graph.lock, model.inference():
        logits = graph.prefill(batch)[:rows]  # [B, V]
        finished = last_step < 0
        for step in range(max(limits)):
            logits = logits.float()
            logits[:, banned] = -float("inf")
            token = next_tokens_per_row(logits, configs, generators)
            token = token.masked_fill(finished, model.tokenizer.pad_token_id)
            yield token
            finished = finished | torch.isin(token, stop_ids) | (last_step <= step)
            if finished.all():
                return
            graph.feed(token)
            logits = graph.step()[:rows]
