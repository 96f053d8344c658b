"""Answer stage: requests (a prompt + the media it names) → answers, many in one batch, text streamed.

A request names its media by source and time range (``MediaRef``); the stage reads only the
windows that go into the prompt (at most ``answer.max_windows`` per media item) and gives each
media item to the model as those windows' visual tokens concatenated in time order. A native
question (``AnswerRequest.question``) gets its session's earlier turns put in the prompt and its
own turns written back; a chat request (the OpenAI API) brings its prompt and dialogue itself.

``run`` answers a batch in one generation (rows finish on their own: EOS, ``<|endofchunk|>``,
their own token limit or stop strings) and reports each row's new text as it is generated.
A request that cannot be answered (no windows cached) fails alone; the others go on.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from heron.config import AnswerConfig
from heron.errors import EmptyQuestionError, EmptyVideoError, HeronError
from heron.pipeline.moments import moment_of, moment_window
from heron.pipeline.prompts import question_prompt
from heron.pipeline.selection import evidence, select_windows
from heron.pipeline.when import is_when_question, resolve_when, when_text
from heron.state import DialogueStore, LatentStore
from heron.tokens import END_OF_CHUNK_TOKEN, IMAGE_TOKEN

if TYPE_CHECKING:  # the driver imports this module for Answer; only the actor needs torch
    from heron.models.heron_model import HeronModel
    from heron.models.sampling import SamplingConfig


@dataclass(frozen=True)
class MediaRef:
    """One media item of a prompt: the cached windows of a source within [start, end] seconds."""

    source_id: str
    start: float = 0.0
    end: float = math.inf
    newest: int = 0  # the range's last windows always given, whatever the selection (live streams)


@dataclass
class AnswerRequest:
    """What to answer. ``prompt`` holds one ``<image>`` per ``media`` item, in order.

    A native question sets ``question`` (and maybe ``session_id``): the prompt is then built from
    the session's history and the question, and both turns are written back to the dialogue.
    """

    prompt: str = ""
    media: list[MediaRef] = field(default_factory=list)
    question: str | None = None
    session_id: str | None = None
    max_new_tokens: int | None = None  # None: answer.max_new_tokens
    sampling: SamplingConfig | None = None  # None: greedy
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings

    @classmethod
    def about(
        cls,
        question: str,
        source_id: str,
        *,
        start: float = 0.0,
        end: float = math.inf,
        session_id: str | None = None,
        newest: int = 0,
        **options,
    ) -> AnswerRequest:
        """A question about one source's time range, in a (new or continued) dialogue session;
        ``newest``: its last windows always among those the model sees (a live stream's)."""
        return cls(
            question=check_question(question),
            media=[MediaRef(source_id, start, end, newest)],
            session_id=session_id or uuid.uuid4().hex[:12],
            **options,
        )


@dataclass(frozen=True)
class ScoreRequest:
    """A closed choice: how likely each of ``choices`` follows ``prompt`` (one ``<image>`` per media item)."""

    prompt: str
    media: tuple[MediaRef, ...]
    choices: tuple[str, ...] = ("yes", "no")


@dataclass
class Answer:
    text: str
    spans: list[tuple[float, float]]  # (start, end) seconds of each window the answer used, media in order
    session_id: str | None
    source_id: str  # the (first) media item's source
    windows_used: int
    seconds: float  # wall time to answer (batch wait and generation)
    warnings: list[str] = field(default_factory=list)  # e.g. words of the question the model does not know
    media_spans: list[list[tuple[float, float]]] = field(default_factory=list)  # per media item
    source_ids: list[str] = field(default_factory=list)  # per media item
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (EOS, end of chunk or a stop string) or "length"
    # The windows that hold the answer's evidence: those used that are most similar to the question
    # (all used, when the model has no retrieval embeddings), best first; a "when" answer's window.
    evidence: list[tuple[float, float]] = field(default_factory=list)
    when: tuple[float, float] | None = None  # a "when" question's answer as a span of the video (s)

    def to_dict(self) -> dict:
        return asdict(self)


def check_question(question: str) -> str:
    if not question or not question.strip():
        raise EmptyQuestionError("the question is empty; ask something about the video")
    return question.strip()


@dataclass
class _Prepared:
    request: AnswerRequest
    prompt: str
    media: list[np.ndarray]  # per item: latents [k*R, d]
    spans: list[list[tuple[float, float]]]
    evidence: list[tuple[float, float]]  # of the first media item, best first
    located: tuple[float, float] | None  # the first item's window most similar to the question
    history: list[tuple[str, str]]
    damaged: list[tuple[float, float]]  # spans of the media's range that decoding had to skip (s)


TextCallback = Callable[[int, str], None]  # (row of the batch, new text)


class AnswerStage:
    """Holds the gated LM; reads latents and dialogue from Redis, writes the new turns back.

    Stateless between calls (everything that matters is in Redis), so Ray may restart it or run
    several calls at once: each call's media lives only inside its own generation.
    """

    def __init__(self, model: HeronModel, latents: LatentStore, dialogue: DialogueStore, cfg: AnswerConfig):
        self.model, self.latents, self.dialogue, self.cfg = model.eval(), latents, dialogue, cfg

    def __call__(
        self, question: str, source_id: str, *, start: float = 0.0, end: float = math.inf, session_id: str | None = None
    ) -> Answer:
        """One native question (no batching); see ``run``."""
        result = self.run([AnswerRequest.about(question, source_id, start=start, end=end, session_id=session_id)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    # --- preparing ------------------------------------------------------------------------------

    def prepare(self, request: AnswerRequest) -> _Prepared:
        """Read the windows each media item needs (only those: cost stays flat in stream length)."""
        media, spans, cited, located = self._media(request.media, request.question or _text_of(request.prompt))
        damaged = [
            span for ref in request.media for span in self.latents.damaged_spans(ref.source_id, ref.start, ref.end)
        ]
        history: list[tuple[str, str]] = []
        prompt = request.prompt
        if request.question is not None:
            turns = self.dialogue.get_dialogue(request.session_id, last_n=2 * self.cfg.history_turns)
            history = [
                (q.text, a.text) for q, a in zip(turns[::2], turns[1::2]) if q.role == "user" and a.role == "assistant"
            ]
            prompt = question_prompt(request.question, history)
        return _Prepared(request, prompt, media, spans, cited, located, history, damaged)

    def _media(
        self, refs: list[MediaRef], query: str = ""
    ) -> tuple[
        list[np.ndarray], list[list[tuple[float, float]]], list[tuple[float, float]], tuple[float, float] | None
    ]:
        """Per media item: the chosen windows' latents concatenated [k*R, d] and their spans; the
        first item's evidence spans, and its window most similar to ``query`` (None without
        scores). Windows are chosen by ``answer.selection`` (heron.pipeline.selection) against
        ``query``, or the one window a moment question names (heron.pipeline.moments), reading only
        the chosen ones' latents."""
        media, spans, cited, located = [], [], [], None
        moment = moment_of(query) if self.cfg.moments else None
        for ref in refs:
            found, scores = self._windows(ref, query)
            if moment is not None:  # the question names where to look (heron.pipeline.moments)
                picked = moment_window(moment, len(found))
            else:
                picked = select_windows(scores, len(found), self.cfg.max_windows, self.cfg.selection, newest=ref.newest)
            chosen = self.latents.get_chunks(ref.source_id, [found[i][0] for i in picked])
            media.append(np.concatenate([c.latents for c in chosen]).astype(np.float32))  # [k*R, d]
            spans.append([(c.t_start, c.t_end) for c in chosen])
            if not cited:
                cited = [found[i][1:] for i in evidence(scores, picked, self.cfg.evidence_windows)]
                located = found[int(np.argmax(scores))][1:] if scores is not None else None
        return media, spans, cited, located

    def _windows(self, ref: MediaRef, query: str) -> tuple[list[tuple[int, float, float]], np.ndarray | None]:
        """(index, t_start, t_end) of the range's windows (times only, no latents) and, with a
        retrieval model and a query, each window's cosine similarity to it [n] (else None)."""
        retrieval = self.model.encoder.retrieval
        end = min(ref.end, 1e12)
        if retrieval is None or not query.strip():
            found, windows = self.latents.window_spans(ref.source_id, ref.start, end), None
        else:
            found, windows = self.latents.spans_and_embeddings(ref.source_id, ref.start, end)  # windows [n, p]
        if not found:
            raise EmptyVideoError(
                f"no encoded windows of source {ref.source_id} between {ref.start:g} s and {ref.end:g} s"
            )
        if windows is None:
            return found, None
        return found, windows @ retrieval.embed_texts([query])[0].cpu().numpy()

    # --- scoring --------------------------------------------------------------------------------

    def score(self, requests: list[ScoreRequest], on_text=None) -> list[list[float] | HeronError]:
        """Each request's choice log-likelihoods, all requests with the same choices in one forward
        pass; requests that read the same windows share their media (keys/values once). ``on_text``
        is unused (the batcher's signature)."""
        results: list[list[float] | HeronError | None] = [None] * len(requests)
        groups: dict[tuple[str, ...], list[tuple[int, str, list[np.ndarray]]]] = {}
        media_of: dict[tuple[MediaRef, ...], list[np.ndarray]] = {}
        for i, request in enumerate(requests):
            try:
                if request.media not in media_of:
                    media_of[request.media] = self._media(list(request.media), _text_of(request.prompt))[0]
                groups.setdefault(request.choices, []).append((i, request.prompt, media_of[request.media]))
            except HeronError as error:
                results[i] = error
        for choices, rows in groups.items():
            try:
                scores = self.model.choice_logprobs([p for _, p, _ in rows], [m for _, _, m in rows], list(choices))
                for (i, _, _), row in zip(rows, scores.tolist()):
                    results[i] = row
            except HeronError as error:
                for i, _, _ in rows:
                    results[i] = error
        return results

    # --- answering ------------------------------------------------------------------------------

    def run(self, requests: list[AnswerRequest], on_text: TextCallback | None = None) -> list[Answer | HeronError]:
        """Answer ``requests`` in one batch; ``on_text(i, delta)`` gets request i's new text as it comes."""
        from heron.models.sampling import SamplingConfig

        clock = time.perf_counter()
        results: list[Answer | HeronError | None] = [None] * len(requests)
        ready: list[tuple[int, _Prepared]] = []
        for i, request in enumerate(requests):
            try:
                prepared = self.prepare(request)
                # Checked alone (markers vs media, context length), so a bad request fails by itself.
                self.model.prepare([prepared.prompt], [prepared.media], max_new_tokens=self._limit(request))
                ready.append((i, prepared))
            except HeronError as error:
                results[i] = error
        if ready:
            batch = self.model.prepare(
                [p.prompt for _, p in ready],
                [p.media for _, p in ready],
                max_new_tokens=max(self._limit(p.request) for _, p in ready),
            )
            limits = [self._limit(p.request) for _, p in ready]
            rows = [_Row(self.model, p.request.stop, limit) for (_, p), limit in zip(ready, limits)]
            # a "when" answer is rewritten from the window it names to that window's time: sent whole
            held = [is_when_question(p.request.question) for _, p in ready]
            steps = self.model.decode_steps(
                batch, max_new_tokens=limits, sampling=[p.request.sampling or SamplingConfig() for _, p in ready]
            )
            for tokens in steps:
                for row, (i, _), hold, token in zip(rows, ready, held, tokens.tolist()):
                    delta = row.add(token)
                    if delta and on_text is not None and not hold:
                        on_text(i, delta)
                if all(row.done for row in rows):
                    break
            prompt_tokens = batch.attention_mask.sum(-1).tolist()
            for (i, prepared), row, used, hold in zip(ready, rows, prompt_tokens, held):
                results[i] = answer = self._finish(prepared, row, int(used), time.perf_counter() - clock)
                if hold and on_text is not None and answer.text:
                    on_text(i, answer.text)
        return results

    def _limit(self, request: AnswerRequest) -> int:
        return request.max_new_tokens if request.max_new_tokens is not None else self.cfg.max_new_tokens

    def _finish(self, prepared: _Prepared, row: _Row, prompt_tokens: int, seconds: float) -> Answer:
        request = prepared.request
        text, cited = row.text, prepared.evidence
        spans = [span for item in prepared.spans for span in item]
        when = None
        if is_when_question(request.question) and prepared.spans:
            by_retrieval = self.cfg.when == "retrieval" and prepared.located is not None
            when = prepared.located if by_retrieval else resolve_when(text, prepared.spans[0])
        if when is not None:
            text, cited = when_text(when), [when]
        if request.question is not None:
            ref = request.media[0]
            self.dialogue.append_turns(
                request.session_id,
                [
                    (
                        "user",
                        request.question,
                        {
                            "source_id": ref.source_id,
                            "start": ref.start,
                            "end": None if ref.end == math.inf else ref.end,
                        },
                    ),
                    ("assistant", text, {"spans": spans}),
                ],
            )
        unknown = self.model.unknown_words(request.question or prepared.prompt)
        warnings = (
            [f"the model does not know {', '.join(repr(w) for w in unknown)}: the answer may be a guess"]
            if unknown
            else []
        )
        if prepared.damaged:
            where = ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in prepared.damaged[:5])
            warnings.append(f"the video is damaged at {where} (undecodable data was skipped): the answer may miss it")
        return Answer(
            text=text,
            spans=spans,
            session_id=request.session_id,
            source_id=request.media[0].source_id if request.media else "",
            windows_used=len(spans),
            seconds=seconds,
            warnings=warnings,
            media_spans=prepared.spans,
            source_ids=[ref.source_id for ref in request.media],
            prompt_tokens=prompt_tokens,
            completion_tokens=len(row.tokens),
            finish_reason=row.finish_reason,
            evidence=cited,
            when=when,
        )


class _Row:
    """One answer being generated: its tokens, its text so far, whether (and why) it has stopped.

    The text handed out is the answer as ``run`` returns it, built up: leading spaces dropped, and
    trailing spaces and anything that may be the start of a stop string held back, so the deltas of
    a stream add up to exactly the final text."""

    def __init__(self, model: HeronModel, stop: tuple[str, ...], limit: int):
        self.model, self.stop, self.limit = model, tuple(s for s in stop if s), limit
        self.tokens: list[int] = []
        self.text = ""  # handed out so far
        self.done = False
        self.finish_reason = "length"
        self._stop_ids = set(model.stop_token_ids())

    def add(self, token: int) -> str:
        """Take the next token; returns the new text (nothing once the row has stopped)."""
        if self.done:
            return ""
        if token in self._stop_ids:
            return self._end("stop", self._decoded())
        self.tokens.append(token)
        text = self._decoded()
        cut = min((text.find(s) for s in self.stop if s in text), default=-1)
        if cut >= 0:  # a stop string: the answer ends before it
            return self._end("stop", text[:cut])
        if len(self.tokens) >= self.limit:
            return self._end("length", text)
        return self._hand_out(text[: len(text) - _partial_stop(text, self.stop)].rstrip())

    def _decoded(self) -> str:
        return self.model.tokenizer.decode(self.tokens, skip_special_tokens=True).lstrip()

    def _end(self, reason: str, text: str) -> str:
        self.done, self.finish_reason = True, reason
        return self._hand_out(text.rstrip())

    def _hand_out(self, text: str) -> str:
        if not text.startswith(self.text):  # a tokenizer that respells earlier text: keep what was sent
            return ""
        delta, self.text = text[len(self.text) :], text
        return delta


def _text_of(prompt: str) -> str:
    """What a chat prompt asks, for retrieval: its last question (the text after its last media)."""
    for marker in (END_OF_CHUNK_TOKEN, IMAGE_TOKEN):
        prompt = prompt.rsplit(marker, 1)[-1]
    return prompt.replace("Question:", "").replace("Answer:", "").strip()


def _partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    return max((n for s in stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
