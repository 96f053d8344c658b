"""Window-order embeddings: zero at start (the model is unchanged), then order across windows is visible."""

from __future__ import annotations

import torch

from heron.models.heron_model import HeronModel
from tests.models.conftest import open_gates, tiny_config


def _logits(model: HeronModel, windows: list[torch.Tensor]) -> torch.Tensor:
    """Logits of one prompt whose one media item is ``windows`` concatenated (as the answer stage gives them)."""
    batch = model.prepare(["<image>Question: which came first? Answer:"], [[torch.cat(windows)]])
    return model(batch.input_ids, batch.attention_mask, batch.media, media_mask=batch.media_mask).logits


def test_zero_initialised_order_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    plain = HeronModel.from_config(tiny_config()).eval()
    ordered = HeronModel.from_config(tiny_config(window_order=4)).eval()
    missing, unexpected = ordered.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["window_order"] and unexpected == []
    open_gates(plain), open_gates(ordered)
    windows = [torch.randn(3, plain.encoder.dim) for _ in range(3)]
    assert torch.equal(ordered.window_order, torch.zeros(4, plain.encoder.dim))
    assert torch.allclose(_logits(plain, windows), _logits(ordered, windows), atol=1e-6)


def test_with_order_embedded_swapping_two_windows_changes_the_answer_and_without_it_cannot():
    torch.manual_seed(0)
    model = HeronModel.from_config(tiny_config(window_order=4)).eval()
    open_gates(model)
    a, b = torch.randn(3, model.encoder.dim), torch.randn(3, model.encoder.dim)
    # Cross-attention sees media tokens as a set: without order the two orders read the same.
    assert torch.allclose(_logits(model, [a, b]), _logits(model, [b, a]), atol=1e-5)
    with torch.no_grad():
        model.window_order.normal_()
    assert not torch.allclose(_logits(model, [a, b]), _logits(model, [b, a]), atol=1e-3)


def test_a_checkpoint_from_before_window_order_loads_into_a_config_with_it(tmp_path):
    torch.manual_seed(0)
    plain = HeronModel.from_config(tiny_config())
    plain.save_pretrained(tmp_path / "old")
    cfg_file = tmp_path / "old" / "heron.yaml"
    cfg_file.write_text(cfg_file.read_text().replace("window_order: 0", "window_order: 8"))
    loaded = HeronModel.from_pretrained(tmp_path / "old")
    assert loaded.window_order is not None and not loaded.window_order.any()
    state = plain.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items() if k != "window_order")
