"""Question-answer pairs and captions from scene metadata (no pixels needed).

Each builder first draws what it asks about uniformly (object, moment, yes/no, mention order),
so answers are balanced by construction: colours, shapes and directions are uniform and
independent of one another, "yes"/"no" and the mention order of temporal pairs are 50/50.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from heron.data.synthetic.config import DIRECTIONS, MOMENTS, NUMBER_WORDS
from heron.data.synthetic.scene import ClipMetadata, moment_frames, temporal_pairs

Question = dict[str, object]  # {"question", "answer", "category", "choices"}


def make_questions(meta: ClipMetadata, rng: np.random.Generator) -> list[Question]:
    """One question per category the clip supports, in CATEGORIES order.

    Every category is always supported except "temporal_order" for one-object clips.
    Each item: {"question": str, "answer": str, "category": str, "choices": [str, ...]}
    with the answer one of the choices.
    """
    builders: dict[str, Callable[[ClipMetadata, np.random.Generator], Question | None]] = {
        "attribute": _attribute,
        "counting": _counting,
        "motion": _motion,
        "temporal_order": _temporal_order,
        "presence": _presence,
    }
    questions = []
    for category, build in builders.items():
        item = build(meta, rng)
        if item is not None:
            questions.append({**item, "category": category})
    return questions


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _qa(question: str, answer: str, choices) -> Question:
    return {"question": question, "answer": answer, "choices": list(choices)}


def _attribute(meta: ClipMetadata, rng: np.random.Generator) -> Question:
    # Colours and shapes are unique within a clip, so either one names the object unambiguously.
    obj = _pick(rng, list(meta.objects))
    if rng.random() < 0.5:
        return _qa(f"What color is the {obj.shape}?", obj.color, meta.config.colors)
    return _qa(f"What shape is the {obj.color} object?", obj.shape, meta.config.shapes)


def _counting(meta: ClipMetadata, rng: np.random.Generator) -> Question:
    count = NUMBER_WORDS[len(meta.objects)]
    return _qa("How many objects appear in the video?", count, meta.config.count_words)


def _motion(meta: ClipMetadata, rng: np.random.Generator) -> Question:
    obj = _pick(rng, list(meta.objects))
    return _qa(f"Which direction does the {obj.name} move?", obj.direction, DIRECTIONS)


def _temporal_order(meta: ClipMetadata, rng: np.random.Generator) -> Question | None:
    pairs = temporal_pairs(meta)
    if not pairs:
        return None
    earlier, later = (meta.objects[i] for i in _pick(rng, pairs))
    # Mention order is a coin flip, so "the first one named" is right exactly half the time.
    named = [earlier, later] if rng.random() < 0.5 else [later, earlier]
    choices = [named[0].shape, named[1].shape]
    question = f"Which appeared first, the {choices[0]} or the {choices[1]}?"
    return _qa(question, earlier.shape, choices)


def _presence(meta: ClipMetadata, rng: np.random.Generator) -> Question:
    """ "Is there a <color> <shape> at the start|end of the video?" (first | last frame)."""
    # Ask only about moments with something on screen, so "yes" is possible and the moment word
    # says nothing about the answer: P(yes | start) = P(yes | end) = 1/2.
    frames = {
        moment: frame for moment, frame in moment_frames(meta).items() if any(o.visible(frame) for o in meta.objects)
    }
    moment = _pick(rng, sorted(frames, key=MOMENTS.index))
    frame = frames[moment]
    if rng.random() < 0.5:
        color, shape = _pick(rng, [(o.color, o.shape) for o in meta.objects if o.visible(frame)])
        answer = "yes"
    else:
        color, shape = _pick(rng, _negatives(meta, frame, rng))
        answer = "no"
    return _qa(f"Is there a {color} {shape} at the {moment} of the video?", answer, ("yes", "no"))


def _negatives(meta: ClipMetadata, frame: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(color, shape) pairs not on screen at ``frame``, from one kind chosen uniformly among:
    objects of this clip that are off screen then (needs timing), one object's colour with
    another's shape (needs binding), and any pair absent from the clip."""
    in_clip = {(o.color, o.shape) for o in meta.objects}
    hidden = [(o.color, o.shape) for o in meta.objects if not o.visible(frame)]
    swapped = [(a.color, b.shape) for a in meta.objects for b in meta.objects]
    swapped = [pair for pair in swapped if pair not in in_clip]
    absent = [(c, s) for c in meta.config.colors for s in meta.config.shapes]
    absent = [pair for pair in absent if pair not in in_clip]
    kinds = [kind for kind in (hidden, swapped, absent) if kind]
    return _pick(rng, kinds)


def make_caption(meta: ClipMetadata) -> str:
    """Short event-ordered description, e.g. "a red square moves left. then a blue circle appears
    and moves up. then the red square disappears." — for contrastive pretraining."""
    events: dict[int, list[str]] = {}
    for obj in meta.objects:
        enters = "" if obj.appear_frame == 0 else "appears and "
        entry = f"a {obj.name} {enters}moves {obj.direction}"
        events.setdefault(obj.appear_frame, []).append(entry)
        if obj.disappear_frame < meta.config.num_frames:
            events.setdefault(obj.disappear_frame, []).append(f"the {obj.name} disappears")
    sentences = [" and ".join(events[frame]) for frame in sorted(events)]
    return ". ".join(s if i == 0 else f"then {s}" for i, s in enumerate(sentences)) + "."


def make_dense_questions(meta: ClipMetadata, rng: np.random.Generator) -> list[Question]:
    """Every question the clip supports, for training (test sets use ``make_questions``).

    Colour and shape of every object, the motion of every object, every temporal-order pair (mention
    order a coin flip), counting, and presence at each moment with something on screen: "yes" for
    every visible object and as many "no" pairs (drawn as in ``make_questions``), so yes/no stay even.
    """
    out: list[Question] = []
    for obj in meta.objects:
        out.append({**_qa(f"What color is the {obj.shape}?", obj.color, meta.config.colors), "category": "attribute"})
        out.append(
            {**_qa(f"What shape is the {obj.color} object?", obj.shape, meta.config.shapes), "category": "attribute"}
        )
        out.append(
            {**_qa(f"Which direction does the {obj.name} move?", obj.direction, DIRECTIONS), "category": "motion"}
        )
    out.append({**_counting(meta, rng), "category": "counting"})
    for i, j in temporal_pairs(meta):
        earlier, later = meta.objects[i], meta.objects[j]
        named = [earlier, later] if rng.random() < 0.5 else [later, earlier]
        question = f"Which appeared first, the {named[0].shape} or the {named[1].shape}?"
        out.append({**_qa(question, earlier.shape, [named[0].shape, named[1].shape]), "category": "temporal_order"})
    for moment, frame in moment_frames(meta).items():
        shown = [(o.color, o.shape) for o in meta.objects if o.visible(frame)]
        if not shown:
            continue
        negatives = []
        for _ in range(4 * len(shown)):
            pair = _pick(rng, _negatives(meta, frame, rng))
            if pair not in negatives:
                negatives.append(pair)
            if len(negatives) == len(shown):
                break
        for (color, shape), answer in [(p, "yes") for p in shown] + [(p, "no") for p in negatives]:
            question = f"Is there a {color} {shape} at the {moment} of the video?"
            out.append({**_qa(question, answer, ("yes", "no")), "category": "presence"})
    return out


# Words for the cells of a frame-caption grid, by grid size: (rows top to bottom, columns left to right).
GRID_WORDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    3: (("top", "middle", "bottom"), ("left", "center", "right")),
    5: (("topmost", "top", "middle", "bottom", "bottommost"), ("leftmost", "left", "center", "right", "rightmost")),
}


def make_frame_caption(meta: ClipMetadata, frame: int, *, grid: int = 3) -> str:
    """What one frame shows, for contrastive pretraining of a vision tower on frame/caption pairs:
    each visible object with its cell of a ``grid`` x ``grid`` grid (3 or 5), left to right, e.g.
    "red square top left and blue circle middle center"; "nothing" for an empty frame."""
    rows, cols = GRID_WORDS[grid]
    cell = meta.config.size / grid
    visible = sorted((o for o in meta.objects if o.visible(frame)), key=lambda o: o.center(frame))
    parts = [
        f"{o.name} {rows[min(grid - 1, int(y // cell))]} {cols[min(grid - 1, int(x // cell))]}"
        for o in visible
        for x, y in [o.center(frame)]
    ]
    return " and ".join(parts) or "nothing"
