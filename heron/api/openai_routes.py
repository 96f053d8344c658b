"""OpenAI-compatible chat with video (the vLLM convention): ``POST /v1/chat/completions``, ``GET /v1/models``.

Content parts ``text``, ``video_url`` and ``image_url``; several media parts, in one message or
across turns, become one Flamingo interleaved prompt in their order. Heron's own options go in an
extra body field ``heron`` (``{"from", "to", "session", "prompt": "qa" | "interleaved"}``); the
answer's cited time spans come back in ``heron.spans``. ``stream: true`` sends Server-Sent Events
of ``chat.completion.chunk`` objects as tokens are generated, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from heron.api.errors import NotAllowed
from heron.api.service import ApiService
from heron.models.sampling import SamplingConfig
from heron.pipeline.answer import Answer, AnswerRequest, MediaRef
from heron.pipeline.prompts import MEDIA, chat_prompt
from heron.pipeline.windows import check_time_range

router = APIRouter(tags=["OpenAI-compatible"])


class _URL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class VideoPart(BaseModel):
    type: Literal["video_url"]
    video_url: _URL


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: _URL


Part = Annotated[TextPart | VideoPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[Part] | None = None
    name: str | None = None


class HeronOptions(BaseModel):
    """Heron's own options (the ``heron`` extra body field)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: float | None = Field(None, alias="from", description="start of the time range of every video, s")
    end: float | None = Field(None, alias="to", description="end of the time range, s")
    session: str | None = Field(None, description="also keep this exchange in a Heron dialogue session")
    prompt: Literal["qa", "interleaved"] = Field("qa", description="how messages become a Flamingo prompt")


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields (user, logprobs, ...) are ignored
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    heron: HeronOptions = Field(default_factory=HeronOptions)


@router.get("/v1/models")
def models(request: Request) -> dict[str, Any]:
    """The one model this service answers with."""
    service: ApiService = request.app.state.service
    return {"object": "list", "data": [{"id": service.model_id, "object": "model", "created": 0, "owned_by": "heron"}]}


@router.post("/v1/chat/completions", response_model=None)
def chat_completions(body: ChatRequest, request: Request):
    """Chat about videos and images; ``stream: true`` for Server-Sent Events."""
    service: ApiService = request.app.state.service
    answer_request = _answer_request(body, service)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        return StreamingResponse(
            _stream(service, answer_request, body, completion_id, created),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    answer = service.heron.answer(answer_request)
    _finished(service, body, answer)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": service.model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
        "heron": _heron_fields(answer),
    }


def _answer_request(body: ChatRequest, service: ApiService) -> AnswerRequest:
    start, end = check_time_range(body.heron.start, body.heron.end)
    turns, media = [], []
    for message in body.messages:
        parts: list[str | None] = []
        for part in [message.content] if isinstance(message.content, str) else message.content or []:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, TextPart):
                parts.append(part.text)
            else:
                url = part.video_url.url if isinstance(part, VideoPart) else part.image_url.url
                if message.role != "user":
                    raise NotAllowed("media parts belong in user messages")
                report = service.heron.ingest(service.media.resolve(url), start=start, end=end)
                service.metrics.observe_ingest(report)
                media.append(MediaRef(report.source_id, start or 0.0, end if end is not None else math.inf))
                parts.append(MEDIA)
        turns.append(("system" if message.role == "developer" else message.role, parts))
    prompt = chat_prompt(turns, body.heron.prompt)
    service.check_text(prompt, "the prompt")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    limit = service.max_tokens(body.max_completion_tokens or body.max_tokens)
    return AnswerRequest(
        prompt=prompt,
        media=media,
        max_new_tokens=limit,
        sampling=_sampling(body),
        stop=stop,
        session_id=body.heron.session,
    )


def _sampling(body: ChatRequest) -> SamplingConfig:
    temperature = 1.0 if body.temperature is None else body.temperature
    top_p = 1.0 if body.top_p is None else body.top_p
    if temperature == 0 or (body.temperature is None and body.top_p is None):
        return SamplingConfig(seed=body.seed)  # greedy: OpenAI's temperature 0, and Heron's default
    return SamplingConfig(do_sample=True, temperature=temperature, top_p=top_p, seed=body.seed)


def _stream(
    service: ApiService, answer_request: AnswerRequest, body: ChatRequest, completion_id: str, created: int
) -> Iterator[bytes]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": service.model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    clock = time.perf_counter()
    first = True
    yield chunk({"role": "assistant", "content": ""})
    try:
        for item in service.heron.answer_stream(answer_request):
            if isinstance(item, str):
                if first:
                    service.metrics.ttft.observe(time.perf_counter() - clock)
                    first = False
                yield chunk({"content": item})
                continue
            answer: Answer = item
            _finished(service, body, answer)
            yield chunk({}, answer.finish_reason, heron=_heron_fields(answer))
            if body.stream_options is not None and body.stream_options.include_usage:
                usage = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": service.model_id,
                    "choices": [],
                    "usage": _usage(answer),
                }
                yield f"data: {json.dumps(usage)}\n\n".encode()
    except Exception as error:  # the status line is sent already: the error travels as an event
        from heron.api.errors import status_of

        payload = {"error": {"type": type(error).__name__, "message": str(error), "status": status_of(error)}}
        yield f"data: {json.dumps(payload)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _finished(service: ApiService, body: ChatRequest, answer: Answer) -> None:
    """Metrics, and the exchange kept in the Heron session the request named (if any)."""
    service.metrics.observe_answer(answer)
    if body.heron.session:
        user = next(m for m in reversed(body.messages) if m.role == "user")
        texts = (
            [user.content]
            if isinstance(user.content, str)
            else [p.text for p in user.content or [] if isinstance(p, TextPart)]
        )
        service.heron.dialogue.append_turns(
            body.heron.session,
            [
                ("user", " ".join(texts), {"source_ids": [s for s in answer.source_ids]}),
                ("assistant", answer.text, {"spans": answer.spans}),
            ],
        )


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def _heron_fields(answer: Answer) -> dict[str, Any]:
    return {
        "spans": [[[round(a, 3), round(b, 3)] for a, b in item] for item in answer.media_spans],
        "windows_used": answer.windows_used,
        "evidence": [[round(a, 3), round(b, 3)] for a, b in answer.evidence],
        "warnings": answer.warnings,
        "session": answer.session_id,
    }
