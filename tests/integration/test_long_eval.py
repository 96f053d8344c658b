"""Long videos through the whole pipeline: embeddings cached at ingest, questions asked and scored."""

from __future__ import annotations

import pytest

import heron as heron_lib
from heron.config import load_config, load_pipeline_config
from heron.data.synthetic import ClipConfig
from heron.data.synthetic.long import LONG_CATEGORIES, LongConfig, generate_long_dataset
from heron.service import Heron
from heron.service.evaluate import evaluate_pipeline
from heron.train.evaluate import read_questions
from tests.retrieval_model import tiny_retrieval_dir

pytestmark = pytest.mark.integration


def test_a_long_video_is_ingested_with_embeddings_and_every_category_is_scored(
    ray_session, redis_url, namespace, tmp_path
):
    cfg = load_config("tiny")
    cfg.retrieval.name_or_path = str(tiny_retrieval_dir(tmp_path / "retrieval"))
    cfg.window_order = 16
    model_dir = heron_lib.load_model(cfg, trainable="none").save_pretrained(tmp_path / "model")
    pipeline = load_pipeline_config("tiny")  # 1 fps, 4-frame windows
    pipeline.model = str(model_dir)
    pipeline.answer.max_windows = 6
    long = LongConfig(duration_s=(120.0, 120.0), events=(3, 3), window_s=4.0, clip=ClipConfig(size=48, fps=8.0))
    questions = read_questions(generate_long_dataset(tmp_path / "data", 1, seed=0, cfg=long))
    with Heron(pipeline, redis_url=redis_url, progress=False, namespace=namespace) as service:
        report = evaluate_pipeline(service, questions)
        source = service.ingest(questions[0].media.video).source_id
        indices = sorted(service.latents.cached_indices(source))
        embeddings = service.latents.embeddings(source, indices)
    assert len(indices) == 30 and embeddings is not None and embeddings.shape[0] == 30  # 120 s in 4-s windows
    assert report["questions"] == len(questions) and set(report["categories"]) <= set(LONG_CATEGORIES)
    assert {"long_presence", "long_when", "long_count"} <= set(report["categories"])
    for row in report["rows"]:
        assert 1 <= len(row["evidence"]) <= pipeline.answer.evidence_windows  # cited windows, best first
    assert 0.0 <= report["overall"]["evidence_recall"] <= 1.0 and report["selection"] == "hybrid"
