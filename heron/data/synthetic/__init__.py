"""Deterministic synthetic video question answering: coloured shapes that move, appear and vanish.

    rng = np.random.default_rng(0)
    frames, meta = generate_clip(rng, ClipConfig())   # uint8 [T, H, W, 3], ClipMetadata
    questions = make_questions(meta, rng)             # [{"question", "answer", "category", ...}]
    caption = make_caption(meta)                      # "a red square moves left. then ..."
    manifest = generate_dataset("data/synth", n=1000, seed=0, split="train")

See docs/data.md for categories, the answer vocabulary, the seed rule and the file formats.
"""

from heron.data.synthetic.config import (
    CATEGORIES,
    DIRECTIONS,
    MOMENTS,
    NUMBER_WORDS,
    PALETTE,
    SHAPES,
    SPLITS,
    ClipConfig,
    SceneSamplingError,
    SyntheticConfigError,
)
from heron.data.synthetic.dataset import SPLIT_KEYS, generate_dataset, split_seeds
from heron.data.synthetic.questions import make_caption, make_dense_questions, make_frame_caption, make_questions
from heron.data.synthetic.render import generate_clip, render_clip
from heron.data.synthetic.scene import (
    ClipMetadata,
    ClipObject,
    reverse_in_time,
    sample_clip,
    temporal_pairs,
)

__all__ = [
    "CATEGORIES",
    "DIRECTIONS",
    "MOMENTS",
    "NUMBER_WORDS",
    "PALETTE",
    "SHAPES",
    "SPLITS",
    "SPLIT_KEYS",
    "ClipConfig",
    "ClipMetadata",
    "ClipObject",
    "SceneSamplingError",
    "SyntheticConfigError",
    "generate_clip",
    "generate_dataset",
    "make_caption",
    "make_dense_questions",
    "make_frame_caption",
    "make_questions",
    "render_clip",
    "reverse_in_time",
    "sample_clip",
    "split_seeds",
    "temporal_pairs",
]
