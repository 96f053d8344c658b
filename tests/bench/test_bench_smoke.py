"""Smoke tests of bench/: each benchmark's core runs on a tiny input and returns sane numbers.

These check that the benchmarks measure what they claim (same tokens from both generation
variants, the sampling rule of each decode strategy, the bytes Redis holds), not how fast
anything is. The whole suite in quick mode (`run_all --quick`) is the slow test at the end.
"""

from __future__ import annotations

import math

import pytest
import torch

from bench import common, generate, ingest, latency, storage
from heron.config import DecodeConfig
from heron.models import load_model


@pytest.fixture
def clip(tmp_path, monkeypatch):
    monkeypatch.setenv("HERON_HOME", str(tmp_path))  # generated clips go to a temp dir
    return common.make_clip(6, width=96, height=64, fps=10, gop_s=2.0)


def test_interleaved_rotates_the_order_and_times_every_round():
    calls = []
    times = common.interleaved({name: (lambda name=name: calls.append(name)) for name in "abc"}, rounds=3)
    assert calls == list("abcbcacab")
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_table_prints_the_headline_last():
    table = common.Table("t", ["name", "value"], headline="HEADLINE x = 1.00")
    table.add("row", 1234.5)
    lines = table.render().splitlines()
    assert lines[-1] == "HEADLINE x = 1.00" and "1,234" in lines[3]


def test_decode_strategies_follow_their_sampling_rules(clip):
    cfg = DecodeConfig(fps=1.0, window_frames=4, size=32)
    results = {name: fn() for name, fn in ingest.decode_strategies(clip, cfg).items()}
    kept = {name: r[1] for name, r in results.items()}
    decoded = {name: r[0] for name, r in results.items()}
    # 6 s at 1 fps: the pipeline's decoders and seeking all keep 6 frames, from 60 decoded or fewer.
    assert kept["decode: pipeline decoder (sequential, drop)"] == 6
    assert kept["decode: PyAV sequential, drop"] == 6 and decoded["decode: PyAV sequential, drop"] == 60
    assert kept["decode: PyAV seek per sampled frame"] == 6
    # Keyframes every 2 s: FFmpeg hands over only those 3, and all of them are kept.
    assert decoded["decode: PyAV keyframes only (NONKEY)"] == kept["decode: PyAV keyframes only (NONKEY)"] == 3


def test_naive_generation_recomputes_media_keys_values_and_gives_the_same_tokens(monkeypatch):
    model = load_model("tiny", device="cpu", trainable="none")
    media = torch.randn(2 * model.encoder.num_latents, model.encoder.dim, generator=torch.Generator().manual_seed(0))
    batch = model.prepare(["<image>Question: what? Answer:"], [[media]], max_new_tokens=6)
    calls = []
    original = type(model.lm.get_submodule(_first_xattn(model)).gated_cross_attn_layer.attn).media_keys_values

    def counting(self, m):
        calls.append(1)
        return original(self, m)

    monkeypatch.setattr(
        type(model.lm.get_submodule(_first_xattn(model)).gated_cross_attn_layer.attn), "media_keys_values", counting
    )
    with generate.no_stop_tokens(model):
        cached = model.generate_ids(batch, max_new_tokens=6)
        cached_calls = len(calls)
        with generate.recomputing_media(model):
            naive = model.generate_ids(batch, max_new_tokens=6)
    layers = len(model.xattn_layer_indices)
    assert cached.shape == (1, 6) and torch.equal(cached, naive)
    assert cached_calls == layers  # once per layer per request
    assert len(calls) - cached_calls >= layers * 6  # every layer at every forward: prefill + each step
    assert "_request" not in vars(model) and "_stop_ids" not in vars(model)  # the patches are undone


def _first_xattn(model) -> str:
    from heron.models.lm import decoder_layers_path

    return f"{decoder_layers_path(model.lm)}.{model.xattn_layer_indices[0]}"


@pytest.mark.integration
def test_synthetic_source_is_cached_complete(latents, clip):
    cfg = DecodeConfig(fps=1.0, window_frames=8)
    source_id = latency.write_synthetic_source(latents, clip, 60.0, cfg, num_latents=4, dim=32)
    info = latents.source_info(source_id)
    assert info.complete and info.cached_windows == math.ceil(60 / 8) and info.duration_s == 60.0
    chunks = latents.chunks_in_range(source_id, 0, 60)
    assert chunks[-1].t_start == 56.0 and chunks[-1].latents.shape == (4, 32)


@pytest.mark.integration
def test_storage_counts_the_latents_bytes():
    result = storage.main(["--config", "tiny", "--quick"])
    assert result["windows_per_hour"] == 900  # tiny: 1 fps, 4-frame windows
    # fp16 payload is 4 x 32 x 2 = 256 bytes; a hash per window adds a fixed overhead on top.
    assert 1.0 < result["overhead"] < 5.0 and result["mb_per_hour"] > 900 * 256 / 1e6


@pytest.fixture
def local_ray():
    """A Ray for this test, stopped after it unless another test's Ray was already running."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.integration
def test_every_benchmark_runs_quick(local_ray, tmp_path, monkeypatch, capsys):
    from bench import run_all

    monkeypatch.setenv("HERON_HOME", str(tmp_path))
    result = run_all.main(["--config", "tiny", "--quick"])
    values = result["values"]
    assert set(values) == {
        "ingest",
        "ingest_rate",
        "length",
        "naive",
        "ttft",
        "generate",
        "storage",
        "serve_http",
        "serve_clients",
        "live_latency",
        "live_streams",
        "live_scoring",
        "batch",
        "batch_resume",
    }
    assert all(math.isfinite(v) and v > 0 for v in values.values())
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("HEADLINE bench: total")
    assert out.count("HEADLINE ") == 11  # ingest, 3 x latency, generate, storage, 2 x serve, live, batch, summary


@pytest.mark.integration
def test_a_failing_benchmark_does_not_cost_the_others(tmp_path, monkeypatch, capsys):
    from bench import run_all

    monkeypatch.setenv("HERON_HOME", str(tmp_path))
    # The later --config wins inside storage alone: it fails on a preset that does not exist.
    with pytest.raises(SystemExit, match="storage failed"):
        run_all.main(
            [
                "--config",
                "tiny",
                "--quick",
                "--only",
                "storage",
                "generate",
                "--storage-args",
                "--config no-such-preset",
            ]
        )
    captured = capsys.readouterr()
    assert "no-such-preset" in captured.err  # the traceback names the problem
    lines = captured.out.rstrip().splitlines()
    assert any(line.startswith("HEADLINE generate") for line in lines)  # ran after the failure
    assert "FAILED (traceback above): storage" in captured.out and lines[-1].startswith("HEADLINE bench")
