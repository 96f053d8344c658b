"""Vision backbones: CLIP and SigLIP towers, batched preprocessing that matches HF's processors."""

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor, SiglipImageProcessor

from heron.config import VisionConfig
from heron.encoders import VisionBackbone

TOWERS = {
    "clip": dict(
        hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
    "siglip": dict(
        hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
}


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_features_shape_and_layer_choice(kind):
    backbone = VisionBackbone(VisionConfig(kind=kind, init=TOWERS[kind]))
    frames = torch.randint(0, 256, (2, 3, 40, 56, 3), dtype=torch.uint8)
    features = backbone(frames)
    assert features.shape == (2, 3, 16, 24)  # (32/8)^2 patches, CLS dropped for CLIP
    if kind == "clip":
        with_cls = VisionBackbone(VisionConfig(kind=kind, init=TOWERS[kind], keep_cls=True), tower=backbone.tower)
        assert with_cls(frames).shape == (2, 3, 17, 24)
        earlier = VisionBackbone(VisionConfig(kind=kind, init=TOWERS[kind], hidden_layer=1), tower=backbone.tower)
        assert not torch.allclose(earlier(frames), features)


@pytest.mark.parametrize("kind,processor_cls", [("clip", CLIPImageProcessor), ("siglip", SiglipImageProcessor)])
def test_native_size_preprocessing_matches_the_hf_processor(kind, processor_cls):
    backbone = VisionBackbone(VisionConfig(kind=kind, init=TOWERS[kind]))
    processor = processor_cls(
        size={"shortest_edge": 32} if kind == "clip" else {"height": 32, "width": 32},
        crop_size={"height": 32, "width": 32},
    )
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    expected = processor(images=list(images), return_tensors="pt")["pixel_values"]
    ours = backbone.pixel_values(torch.from_numpy(images))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_resized_preprocessing_is_close_to_the_hf_processor():
    """Off native size, torch's antialiased bicubic differs from PIL's by a few grey levels."""
    backbone = VisionBackbone(VisionConfig(kind="clip", init=TOWERS["clip"]))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([xx * 2 % 256, yy * 2 % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)[None]
    expected = processor(images=list(smooth), return_tensors="pt")["pixel_values"]
    ours = backbone.pixel_values(torch.from_numpy(smooth))
    assert ours.shape == expected.shape == (1, 3, 32, 32)
    assert (ours - expected).abs().mean() < 0.05  # ~1.5 grey levels after normalisation
