"""The OpenAI-compatible routes, through the official ``openai`` client against a real server."""

from __future__ import annotations

import base64

import openai
import pytest

from .conftest import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def _video(server, name="square.mp4") -> dict:
    return {"type": "video_url", "video_url": {"url": str(server.videos / name)}}


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_a_chat_completion_parses_with_the_clients_own_types(client, server):
    completion = client.chat.completions.create(
        model="tiny",
        max_tokens=6,
        messages=[{"role": "user", "content": [_video(server), {"type": "text", "text": "What moves?"}]}],
    )
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 6 and completion.usage.prompt_tokens > 0
    heron = completion.model_extra["heron"]
    assert heron["spans"] == [[[0.0, 3.0], [4.0, 7.0]]]  # the cited windows of the one video


def test_streaming_sends_token_chunks_then_done_and_usage(client, server):
    messages = [{"role": "user", "content": [_video(server), {"type": "text", "text": "What moves?"}]}]
    whole = client.chat.completions.create(model="tiny", max_tokens=8, messages=messages)
    stream = client.chat.completions.create(
        model="tiny", max_tokens=8, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) >= 2  # token by token, not the finished text in one piece
    assert "".join(deltas) == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_several_videos_and_turns_become_one_interleaved_prompt(client, server):
    few_shot = [
        _video(server),
        {"type": "text", "text": "this clip: a red square moves right."},
        _video(server, "short.mp4"),
        {"type": "text", "text": "this clip: a blue square moves right."},
        _video(server),
        {"type": "text", "text": "this clip:"},
    ]
    completion = client.chat.completions.create(
        model="tiny",
        max_tokens=4,
        messages=[{"role": "user", "content": few_shot}],
        extra_body={"heron": {"prompt": "interleaved"}},
    )
    assert len(completion.model_extra["heron"]["spans"]) == 3  # three media items, in order
    dialogue = [
        {"role": "user", "content": [_video(server), {"type": "text", "text": "What moves?"}]},
        {"role": "assistant", "content": "a square"},
        {"role": "user", "content": [_video(server, "short.mp4"), {"type": "text", "text": "And here?"}]},
    ]
    completion = client.chat.completions.create(model="tiny", max_tokens=4, messages=dialogue)
    assert len(completion.model_extra["heron"]["spans"]) == 2


def test_uploads_images_time_ranges_and_sessions(client, server):
    data = base64.b64encode((server.videos / "short.mp4").read_bytes()).decode()
    completion = client.chat.completions.create(
        model="tiny",
        max_tokens=4,
        extra_body={"heron": {"from": 0, "to": 2, "session": "s-openai"}},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}},
                    {"type": "text", "text": "What?"},
                ],
            }
        ],
    )
    assert completion.model_extra["heron"]["spans"] == [[[0.0, 2.0]]]
    turns = server.service.heron.dialogue.get_dialogue("s-openai")
    assert [t.role for t in turns] == ["user", "assistant"] and turns[0].text == "What?"

    import numpy as np
    from PIL import Image  # Pillow comes with torchvision

    image = server.videos / "still.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(image)
    completion = client.chat.completions.create(
        model="tiny",
        max_tokens=3,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": str(image)}},
                    {"type": "text", "text": "What colour?"},
                ],
            }
        ],
    )
    assert completion.model_extra["heron"]["spans"] == [[[0.0, 0.0]]]  # one frame


@pytest.mark.parametrize(
    "bad, status",
    [
        ({"messages": []}, 422),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 422),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000}, 413),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 422),
    ],
)
def test_bad_requests_are_typed_errors(client, bad, status):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", **bad)
    assert caught.value.status_code == status
    body = caught.value.body  # the client unwraps {"error": ...}
    assert isinstance(body, dict) and {"type", "message"} <= set(body.get("error", body))
