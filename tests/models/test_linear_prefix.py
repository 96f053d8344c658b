"""LLaVA's linear connector: visual tokens spliced in at <image>, trained while all else is frozen."""

import torch

import heron

from .conftest import random_frames, tiny_config


def test_linear_prefix_runs_end_to_end_and_trains(rng):
    model = heron.load_model(tiny_config("gpt2", connector="linear_prefix")).eval()  # no dropout noise
    assert model.projector is not None and not model.xattn_layer_indices
    answer = model.generate("<image>Question: what? Answer:", [random_frames(rng)], max_new_tokens=4)
    assert isinstance(answer, str)

    frames = torch.as_tensor(random_frames(rng, frames=3))[None]
    batch = model.prepare(["<image> a red square"], [[torch.zeros(3, 24)]])
    media = model.encoder(frames)[:, None]  # [B, M=1, R, d], with autograd through the resampler
    labels = batch.input_ids.clone()
    out = model(batch.input_ids, batch.attention_mask, media, labels=labels)
    # one <image> became R=3 positions: the sequence grew by 2 and media positions carry no label
    assert out.logits.shape[1] == batch.input_ids.shape[1] + 2
    assert (out.labels == -100).sum() == 3
    logits = out.logits[:, :-1].flatten(0, 1)
    loss = torch.nn.functional.cross_entropy(logits, out.labels[:, 1:].flatten(), ignore_index=-100)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "projector.proj.weight" in grads
    assert not any(n.startswith(("lm.", "encoder.backbone.")) for n in grads)
    optimizer.step()
    for n, p in model.named_parameters():
        if n.startswith(("lm.", "encoder.backbone.")):
            assert torch.equal(p, before[n]), n
    assert not torch.equal(model.projector.proj.weight, before["projector.proj.weight"])
    with torch.no_grad():
        new_loss = torch.nn.functional.cross_entropy(
            model(batch.input_ids, batch.attention_mask, model.encoder(frames)[:, None], labels=labels)
            .logits[:, :-1]
            .flatten(0, 1),
            out.labels[:, 1:].flatten(),
            ignore_index=-100,
        )
    assert new_loss < loss


def test_linear_prefix_batches_rows_with_different_media_counts(rng):
    """Rows grow by different amounts when spliced; padding must not change any row's result."""
    model = heron.load_model(tiny_config("gpt2", connector="linear_prefix")).eval()
    prompts = ["<image> one", "<image> and <image> two"]
    media = [[torch.randn(3, 24)], [torch.randn(3, 24), torch.randn(3, 24)]]

    def last_logits(batch_prompts, batch_media):
        batch = model.prepare(batch_prompts, batch_media)
        inputs = model._first_inputs(batch.input_ids, batch.attention_mask, batch.media, batch.media_mask, None)["lm"]
        with torch.no_grad():
            return model._lm(**inputs).logits[:, -1]  # [B, V]

    together = last_logits(prompts, media)
    for row in range(2):
        torch.testing.assert_close(
            together[row], last_logits(prompts[row : row + 1], media[row : row + 1])[0], rtol=0, atol=1e-5
        )
    assert model.generate(prompts, media, max_new_tokens=3)[1] == model.generate(prompts[1], media[1], max_new_tokens=3)
