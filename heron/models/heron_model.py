"""The top-level Heron model: frames → visual tokens → a frozen LM conditioned on them.

    encode(frames)                      uint8 [B, T, H, W, 3] → latents [B, R, d_visual]
    forward(input_ids, media=latents)   interleaved text + media → logits (training, scoring)
    generate(prompt, media=[...])       text answers, with the LM's KV cache for text and each
                                        cross-attention layer's media keys/values computed once
                                        per request (OpenFlamingo and Idefics recompute them per step)

Build one with ``heron.load_model`` (presets, YAML, directories and OpenFlamingo checkpoints) or,
as transformers users expect, ``HeronModel.from_pretrained(dir)`` / ``model.save_pretrained(dir)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from heron.config import ModelConfig
from heron.encoders.inference import eval_mode
from heron.encoders.visual_encoder import VisualEncoder
from heron.errors import FrameFormatError, MediaCountMismatchError, PromptTooLongError
from heron.models import building, graphs
from heron.models.connector import LinearPrefixConnector, splice_media
from heron.models.lm import insert_cross_attention
from heron.models.media_state import MediaRequest, MediaState
from heron.models.sampling import SamplingConfig, next_tokens_per_row
from heron.models.tokenizer import END_OF_CHUNK_TOKEN, IMAGE_TOKEN, add_media_tokens, load_tokenizer

# uint8 frames [T, H, W, 3] / an image [H, W, 3], or latents [n, d]: one window's R tokens, or
# several windows' tokens concatenated in time order (n = k * R).
MediaItem = torch.Tensor | np.ndarray


@dataclass
class Prompts:
    """A tokenised, left-padded batch of prompts with its media.

    input_ids, attention_mask: [B, L]; media: [B, M, N, d_visual] where N is the longest item's
    token count; media_mask: bool [B, M, N], False on padding (absent items, short items).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    media: torch.Tensor
    media_mask: torch.Tensor


class HeronModel(nn.Module):
    def __init__(self, config: ModelConfig, encoder: VisualEncoder, lm: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.lm = lm
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.end_of_chunk_token_id = tokenizer.convert_tokens_to_ids(END_OF_CHUNK_TOKEN)
        self.media_state = MediaState()
        # [W, d_visual]: which window of its media item a latent came from (zero: no effect at start)
        self.window_order = nn.Parameter(torch.zeros(config.window_order, encoder.dim)) if config.window_order else None
        self.projector: LinearPrefixConnector | None = None
        self.xattn_layer_indices: list[int] = []
        if config.connector == "gated_xattn":
            self.xattn_layer_indices = insert_cross_attention(
                lm,
                config.xattn,
                dim_visual=encoder.dim,
                media=self.media_state,
                layers_attr=config.lm.decoder_layers_attr,
            )
        else:
            self.projector = LinearPrefixConnector(dim_visual=encoder.dim, dim_text=lm.config.hidden_size)
        parameters = inspect.signature(lm.forward).parameters
        self._lm_takes_position_ids = "position_ids" in parameters
        # transformers 5.24 renamed past_key_values to cache (argument and output); older 5.x
        # releases, as found on GPU images, still use the old name
        self._lm_cache_name = "cache" if "cache" in parameters else "past_key_values"

    # --- building, loading and saving -------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> HeronModel:
        """Build every part from config (random init of Heron's own weights, seeded by ``cfg.seed``)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            encoder = building.new_encoder(cfg)  # first after seeding: build_encoder repeats it exactly
            lm = building.build_lm(cfg.lm)
            tokenizer = load_tokenizer(cfg.lm)
            add_media_tokens(tokenizer)
            building.resize_embeddings(lm, len(tokenizer))
            return cls(cfg, encoder, lm, tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        path_or_config,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trainable: building.Trainable = "connector",
    ) -> HeronModel:
        """A model from a directory written by ``save_pretrained``, a preset name, a YAML file or a
        ModelConfig, in eval mode (call ``.train()`` to train). ``trainable`` applies the freezing
        policy; ``device``/``dtype`` override the config's (auto = CUDA + bf16 when present)."""
        cfg, weights = building.resolve(path_or_config)
        model = cls.from_config(cfg)
        if weights is not None:
            building.load_heron_weights(model, weights)
        building.apply_freezing(model, trainable)
        return building.place(model, cfg, device, dtype).eval()

    def save_pretrained(self, directory, *, save_backbones: bool | None = None):
        """Write this model so that ``from_pretrained(directory)`` rebuilds it exactly; returns the path.

        ``save_backbones``: True saves the vision tower and LM into the directory; False references
        them by hub id / path; None (default) saves only those with no id/path (random init). A model
        whose LM was trained end to end must be saved with ``save_backbones=True``."""
        return building.write_model_dir(self, directory, save_backbones=save_backbones)

    # --- properties -------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.lm.parameters()).dtype

    @property
    def max_context(self) -> int | None:
        """The LM's context length in tokens, if its config states one."""
        cfg = self.lm.config
        for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the tokenizer has no token for (they become its unknown token), in order.

        Empty for byte-level and BPE tokenizers, which can spell anything; a word-level tokenizer
        (the demo model's) says which words of a question the model has never seen."""
        unk = self.tokenizer.unk_token_id
        if unk is None or not getattr(self.tokenizer, "is_fast", False):
            return []
        encoded = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        words = [text[a:b] for token, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"]) if token == unk]
        return list(dict.fromkeys(words))

    # --- vision -----------------------------------------------------------------------------

    def encode(self, frames: torch.Tensor | np.ndarray, pts: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Visual latents for windows of frames: uint8 [B, T, H, W, 3] (or [T, H, W, 3]) →
        [B, R, d_visual] (or [R, d_visual]). See ``VisualEncoder.encode``."""
        return self.encoder.encode(frames, pts)

    def _media_latents(self, items: list[MediaItem]) -> list[torch.Tensor]:
        """Media items of one prompt → a list of latents [n_i, d]; frames are encoded."""
        num_latents, dim = self.encoder.num_latents, self.encoder.dim
        out = []
        for i, item in enumerate(items):
            item = torch.as_tensor(item)
            if item.dtype == torch.uint8:
                window = item[None] if item.ndim == 3 else item  # an image is a 1-frame window
                out.append(self.encode(window))
            elif item.is_floating_point() and item.ndim == 2 and item.shape[1] == dim and item.shape[0] > 0:
                out.append(item.to(self.device, self.dtype))
            else:
                raise FrameFormatError(
                    f"media item {i} must be uint8 frames [T, H, W, 3] / [H, W, 3] or latents "
                    f"[{num_latents}, {dim}] (or k windows concatenated, [k*{num_latents}, {dim}]); "
                    f"got {item.dtype} {tuple(item.shape)}"
                )
        return out

    def _window_order(self, num_tokens: int) -> torch.Tensor:
        """[num_tokens, d]: each token's window rank embedding (an item is k windows of R latents)."""
        rank = torch.arange(num_tokens, device=self.device) // self.encoder.num_latents
        return self.window_order[rank.clamp(max=self.window_order.shape[0] - 1)]

    def pad_media(self, per_prompt: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents per prompt → media [B, M, N, d] zero-padded, and media_mask bool [B, M, N]; with
        ``window_order``, each window's rank embedding is added to its latents here, the one place
        every media item (training, answers, evaluation) passes through."""
        num_media = max((len(items) for items in per_prompt), default=0)
        num_tokens = max((lat.shape[0] for items in per_prompt for lat in items), default=self.encoder.num_latents)
        media = torch.zeros(
            len(per_prompt), num_media, num_tokens, self.encoder.dim, device=self.device, dtype=self.dtype
        )
        mask = torch.zeros(len(per_prompt), num_media, num_tokens, dtype=torch.bool, device=self.device)
        for row, items in enumerate(per_prompt):
            for m, lat in enumerate(items):
                media[row, m, : lat.shape[0]] = (
                    lat if self.window_order is None else lat + self._window_order(lat.shape[0])
                )
                mask[row, m, : lat.shape[0]] = True
        return media, mask

    # --- prompts ----------------------------------------------------------------------------

    def prepare(self, prompts: list[str], media: list[list[MediaItem]], *, max_new_tokens: int = 0) -> Prompts:
        """Tokenise (left-padded), check markers against media and length, encode the media."""
        if len(prompts) != len(media):
            raise MediaCountMismatchError(len(prompts), len(media))
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        markers = (input_ids == self.image_token_id).sum(-1).tolist()
        for row, (count, items) in enumerate(zip(markers, media)):
            if count != len(items):
                raise MediaCountMismatchError(count, len(items), row=row if len(prompts) > 1 else None)
        padded, media_mask = self.pad_media([self._media_latents(items) for items in media])
        limit = self.max_context
        if limit is not None:
            longest = attention_mask.sum(-1)  # [B]
            if self.projector is not None:  # each marker becomes its item's tokens
                longest = longest + media_mask.sum(dim=(1, 2)).cpu() - torch.tensor(markers)
            longest = int(longest.max())
            if longest + max_new_tokens > limit:
                raise PromptTooLongError(longest, limit, max_new_tokens=max_new_tokens)
        return Prompts(input_ids.to(self.device), attention_mask.to(self.device), padded, media_mask)

    # --- language model -------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        media: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        media_mask: torch.Tensor | None = None,
        media_rows: torch.Tensor | None = None,
    ):
        """Logits for an interleaved batch (teacher forcing).

        input_ids [B, L] with one <image> per media item; media: latents [B, M, N, d_visual]
        with media_mask bool [B, M, N] (None = every token is real). media_rows long [B]: rows
        share media: media is [U, M, N, d] and row b reads media[media_rows[b]] (its keys/values
        are computed once per entry).
        With the linear_prefix connector the sequence grows by R - 1 per marker and the
        returned ``labels`` (if given) are aligned to it. Returns the LM's output (``.logits``
        [B, L', V]) with ``.labels`` set to the labels aligned to the logits.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if media is None:
            media = torch.zeros(
                input_ids.shape[0],
                0,
                self.encoder.num_latents,
                self.encoder.dim,
                device=input_ids.device,
                dtype=self.dtype,
            )
        if media_mask is None:
            media_mask = torch.ones(media.shape[:3], dtype=torch.bool, device=media.device)
        if media_rows is not None and self.projector is not None:  # spliced per row: expand the shared media
            media, media_mask, media_rows = media[media_rows], media_mask[media_rows], None
        request = self._request(media, media_mask, media_rows)
        with self._using(request):
            inputs = self._first_inputs(
                input_ids, attention_mask, media, media_mask, request, labels=labels, pad_left=False
            )
            out = self._lm(**inputs["lm"])
        out["labels"] = inputs["labels"]
        return out

    def _request(
        self, media: torch.Tensor, media_mask: torch.Tensor, rows: torch.Tensor | None = None
    ) -> MediaRequest | None:
        if self.projector is not None:
            return None
        return MediaRequest(
            media=media.to(self.dtype),
            media_mask=media_mask,
            mode=self.config.xattn.media_attention,
            rows=None if rows is None else rows.to(media.device),
        )

    def _using(self, request: MediaRequest | None):
        return self.media_state.use(request) if request is not None else nullcontext()

    def _first_inputs(
        self, input_ids, attention_mask, media, media_mask, request, *, labels=None, pad_left=True
    ) -> dict:
        """LM inputs for a whole prompt: token ids (xattn), or spliced embeddings (linear_prefix)."""
        if request is not None:
            request.set_text_time((input_ids == self.image_token_id).cumsum(-1))  # [B, L]
            lm_inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
        else:
            embeds = self.lm.get_input_embeddings()(input_ids)  # [B, L, D]
            embeds, attention_mask, labels = splice_media(
                embeds,
                input_ids,
                attention_mask,
                self.projector(media),
                media_mask,
                self.image_token_id,
                labels=labels,
                pad_left=pad_left,
            )
            lm_inputs = dict(inputs_embeds=embeds, attention_mask=attention_mask)
        lm_inputs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {"lm": lm_inputs, "labels": labels}

    def _lm(self, **inputs):
        if not self._lm_takes_position_ids:
            inputs.pop("position_ids")
        return self.lm(**inputs)

    # --- generation -------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompt: str | list[str],
        media: list[MediaItem] | list[list[MediaItem]] | None = None,
        *,
        max_new_tokens: int = 32,
        sampling: SamplingConfig | None = None,
        stop_at_end_of_chunk: bool = True,
    ) -> str | list[str]:
        """Answer one prompt (``str`` → ``str``) or a batch (``list[str]`` → ``list[str]``).

        ``media`` holds, per prompt, one item per ``<image>`` in order: uint8 frames
        [T, H, W, 3], an image [H, W, 3], or cached latents [R, d_visual]. Generation stops at
        EOS, at ``<|endofchunk|>`` (unless told not to) or after ``max_new_tokens``.
        """
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt)
        per_prompt = [list(media or [])] if single else [list(m) for m in (media or [[] for _ in prompts])]
        batch = self.prepare(prompts, per_prompt, max_new_tokens=max_new_tokens)
        tokens = self.generate_ids(
            batch, max_new_tokens=max_new_tokens, sampling=sampling, stop_at_end_of_chunk=stop_at_end_of_chunk
        )
        texts = [
            self.tokenizer.decode(self._until_stop(row, stop_at_end_of_chunk), skip_special_tokens=True)
            for row in tokens.tolist()
        ]
        return texts[0] if single else texts

    @torch.no_grad()
    def choice_logprobs(self, prompts: list[str], media: list[list[MediaItem]], choices: list[str]) -> torch.Tensor:
        """log p(" <choice><|endofchunk|>" | prompt, media) of every choice after every prompt: [B, C].

        A closed-choice decision from the model's likelihoods (a watch's yes/no, a multiple-choice
        question) instead of parsing free text. Each prompt's media items go with it, one per
        ``<image>``; all B x C continuations are scored in one forward pass, in eval mode."""
        if len(prompts) != len(media):
            raise MediaCountMismatchError(len(prompts), len(media))
        if not choices:
            raise ValueError("choice_logprobs needs at least one choice")
        encode = functools.partial(self.tokenizer, add_special_tokens=False)
        heads = [encode(p)["input_ids"] for p in prompts]
        tails = [encode(f" {c}{END_OF_CHUNK_TOKEN}")["input_ids"] for c in choices]
        for row, (ids, items) in enumerate(zip(heads, media)):
            markers = ids.count(self.image_token_id)
            if markers != len(items):
                raise MediaCountMismatchError(markers, len(items), row=row if len(prompts) > 1 else None)
        rows = [(h, t) for h in heads for t in tails]  # prompt-major: row b * C + c
        width = max(len(h) + len(t) for h, t in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        scored = torch.zeros_like(input_ids, dtype=torch.bool)
        for r, (head, tail) in enumerate(rows):
            input_ids[r, : len(head) + len(tail)] = torch.tensor(head + tail)
            mask[r, : len(head) + len(tail)] = 1
            scored[r, len(head) : len(head) + len(tail)] = True
        # Prompts with the very same media items (the watches of one window) share one media entry,
        # whose keys/values are then computed once for all of their rows.
        unique: dict[tuple[int, ...], int] = {}
        owner = [unique.setdefault(tuple(map(id, items)), len(unique)) for items in media]  # prompt -> entry
        first = {entry: b for b, entry in reversed(list(enumerate(owner)))}
        padded, media_mask = self.pad_media([self._media_latents(media[first[e]]) for e in range(len(unique))])
        rows_media = torch.tensor([owner[r // len(choices)] for r in range(len(rows))])  # [B*C]
        limit = self.max_context
        if limit is not None and width > limit:
            raise PromptTooLongError(width, limit)
        with self.inference():
            logits = self(
                input_ids.to(self.device), mask.to(self.device), padded, media_mask=media_mask, media_rows=rows_media
            ).logits
        logp = logits[:, :-1].float().log_softmax(-1)  # [B*C, L-1, V]: token t+1 given tokens <= t
        target = input_ids[:, 1:].to(logp.device)
        token_logp = logp.gather(-1, target[..., None])[..., 0] * scored[:, 1:].to(logp.device)
        return token_logp.sum(-1).view(len(prompts), len(choices))  # [B, C]

    def stop_token_ids(self, stop_at_end_of_chunk: bool = True) -> list[int]:
        """The tokens that end an answer: EOS, and ``<|endofchunk|>`` unless told not to."""
        ids = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return ids + ([self.end_of_chunk_token_id] if stop_at_end_of_chunk else [])

    def _until_stop(self, row: list[int], stop_at_end_of_chunk: bool) -> list[int]:
        stops = set(self.stop_token_ids(stop_at_end_of_chunk))
        for i, token in enumerate(row):
            if token in stops:
                return row[:i]
        return row

    @torch.no_grad()
    def generate_ids(
        self,
        batch: Prompts,
        *,
        max_new_tokens: int | list[int],
        sampling: SamplingConfig | list[SamplingConfig] | None = None,
        stop_at_end_of_chunk: bool = True,
    ) -> torch.Tensor:
        """New token ids [B, N] (N ≤ max_new_tokens; finished rows padded with pad_token_id).

        See ``decode_steps``; this collects its steps."""
        steps = list(
            self.decode_steps(
                batch, max_new_tokens=max_new_tokens, sampling=sampling, stop_at_end_of_chunk=stop_at_end_of_chunk
            )
        )
        if not steps:
            return batch.input_ids.new_zeros(batch.input_ids.shape[0], 0)
        return torch.stack(steps, dim=1)

    @torch.no_grad()
    def decode_steps(
        self,
        batch: Prompts,
        *,
        max_new_tokens: int | list[int],
        sampling: SamplingConfig | list[SamplingConfig] | None = None,
        stop_at_end_of_chunk: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Yield each step's new token ids [B] as they are generated (finished rows: pad_token_id).

        Per row: its own ``max_new_tokens`` and ``sampling`` (lists), or one for all. The prompt is
        prefilled once; each step feeds one token through the LM's KV cache. The media keys/values
        of every cross-attention layer are computed on the first step and reused from the request
        (``MediaRequest.keys_values``) at every later one. Runs in eval mode whatever mode the
        caller left the model in (dropout would make answers random).
        """
        rows = batch.input_ids.shape[0]
        limits = [max_new_tokens] * rows if isinstance(max_new_tokens, int) else list(max_new_tokens)
        configs = sampling if isinstance(sampling, list) else [sampling or SamplingConfig()] * rows
        if len(limits) != rows or len(configs) != rows:
            raise ValueError(
                f"{rows} prompts need {rows} max_new_tokens and samplings, got {len(limits)}, {len(configs)}"
            )
        if max(limits, default=0) <= 0:
            return
        if graphs.graphs_wanted(self):  # CUDA: each step replayed from a captured graph (docs/gpu.md)
            yield from graphs.decode_steps(
                self, batch, max_new_tokens=limits, sampling=configs, stop_at_end_of_chunk=stop_at_end_of_chunk
            )
            return
        generators = [self._generator(c) for c in configs]
        stop_ids = torch.tensor(self.stop_token_ids(stop_at_end_of_chunk), device=self.device)
        banned = [self.image_token_id, self.tokenizer.pad_token_id]  # a generated <image> would have no media
        last_step = torch.tensor(limits, device=self.device) - 1  # [B]
        request = self._request(batch.media, batch.media_mask)
        media_count = (batch.input_ids == self.image_token_id).sum(-1, keepdim=True)  # [B, 1]
        with self._using(request), self.inference():
            first = self._first_inputs(batch.input_ids, batch.attention_mask, batch.media, batch.media_mask, request)
            inputs = first["lm"]
            attention_mask, position_ids = inputs["attention_mask"], inputs["position_ids"]
            out = self._lm(**inputs, use_cache=True)
            finished = last_step < 0
            for step in range(max(limits)):
                logits = out.logits[:, -1].float()  # [B, V]
                logits[:, banned] = -float("inf")
                token = next_tokens_per_row(logits, configs, generators)
                token = token.masked_fill(finished, self.tokenizer.pad_token_id)
                yield token
                finished = finished | torch.isin(token, stop_ids) | (last_step <= step)
                if finished.all():
                    return  # no forward pass for a token nobody will read
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(rows, 1)], dim=-1)
                position_ids = position_ids[:, -1:] + 1
                if request is not None:
                    request.set_text_time(media_count)  # new tokens follow all of the prompt's media
                cache = {self._lm_cache_name: getattr(out, self._lm_cache_name)}
                out = self._lm(
                    input_ids=token[:, None],
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    use_cache=True,
                    **cache,
                )

    def _generator(self, sampling: SamplingConfig) -> torch.Generator | None:
        if sampling.seed is None:
            return None
        return torch.Generator(device=self.device).manual_seed(sampling.seed)

    def inference(self):
        """Eval mode inside the block (dropout off), the caller's modes restored after."""
        return eval_mode(self)
