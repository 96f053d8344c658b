"""DialogueStore against a real server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_dialogue_keeps_order_and_last_n(dialogue):
    for i in range(5):
        dialogue.append_turn("session-1", "user" if i % 2 == 0 else "assistant", f"turn {i}", {"i": i})
    dialogue.append_turn("session-2", "user", "elsewhere")
    turns = dialogue.get_dialogue("session-1")
    assert [t.text for t in turns] == [f"turn {i}" for i in range(5)]
    assert [t.role for t in turns[:2]] == ["user", "assistant"] and turns[4].meta == {"i": 4}
    assert turns[0].at <= turns[-1].at
    assert [t.text for t in dialogue.get_dialogue("session-1", last_n=2)] == ["turn 3", "turn 4"]
    assert dialogue.get_dialogue("session-1", last_n=0) == []
    assert dialogue.clear_session("session-1") and not dialogue.clear_session("session-1")
    assert dialogue.get_dialogue("session-1") == []
    assert len(dialogue.get_dialogue("session-2")) == 1


def test_a_question_and_its_answer_are_appended_together(dialogue):
    made = dialogue.append_turns(
        "s", [("user", "what?", {"source_id": "a"}), ("assistant", "a dog", {"spans": [[0, 1]]})]
    )
    assert [t.role for t in made] == ["user", "assistant"]
    assert [(t.text, t.meta) for t in dialogue.get_dialogue("s")] == [
        ("what?", {"source_id": "a"}),
        ("a dog", {"spans": [[0, 1]]}),
    ]


def test_unreadable_turns_are_skipped(dialogue):
    dialogue.append_turn("s", "user", "fine")
    dialogue.db.client.rpush(dialogue._key("s"), b"{not json")
    assert [t.text for t in dialogue.get_dialogue("s")] == ["fine"]
