"""OpenFlamingo checkpoints in Heron: same keys, same function as the reference code.

    variants.py    the released models and which tower / LM a checkpoint goes with
    hub.py         fetching files through the Hugging Face cache
    checkpoint.py  reading a checkpoint; the structure its keys imply
    open_clip.py   open_clip vision towers → HF CLIPVisionModel
    keys.py        OpenFlamingo keys → Heron's
    load.py        load_openflamingo (whole model), load_openflamingo_encoder (no LM), convert_openflamingo

Reference: OpenFlamingo (Awadalla et al. 2023, github.com/mlfoundations/open_flamingo), the
``open-flamingo==2.0.1`` package with ``open-clip-torch==2.20.0``. Parity with it is tested on
small random models (tests/models/test_openflamingo.py; tools/openflamingo_parity/ writes the
fixture); docs/openflamingo.md lists the released checkpoints.

Where each key of an OpenFlamingo state dict goes:

    perceiver.latents, perceiver.layers.N.*, perceiver.norm.*  → encoder.resampler.* (same names)
    perceiver.frame_embs [F, d] (absent from released models)  → encoder.time_embeddings.embeddings [F, 1, d]
    lang_encoder.<layers>.N.gated_cross_attn_layer.*           → lm.<layers>.N.gated_cross_attn_layer.*
    lang_encoder.<layers>.N.decoder_layer.*                    → lm.<layers>.N.* (Heron's wrapper hides the prefix)
    lang_encoder.<any other LM key> (embeddings, norm, head)   → lm.<key>, after transformers' own legacy renames
    lang_encoder.old_decoder_blocks.*, .gated_cross_attn_layers.*   aliases of the two lines above: skipped
    vision_encoder.* (an open_clip VisionTransformer)          → encoder.backbone.tower.* (open_clip_to_hf_clip)

Released checkpoints hold only the trained parts (perceiver, gated layers, the LM's embedding
matrices with the trained ``<image>``/``<|endofchunk|>`` rows); the vision tower and the rest of
the LM come from their own sources. A full ``model.state_dict()`` (or a training checkpoint
``{"model_state_dict": ...}``) loads too, and then overrides those sources' weights.

OpenFlamingo has no time embeddings: Heron's are zeroed, so a one-frame media item computes
exactly OpenFlamingo's function, and a T-frame window is the perceiver over all T*S tokens,
which is what OpenFlamingo's perceiver does with F frames.
"""

from heron.models.openflamingo.checkpoint import read_checkpoint
from heron.models.openflamingo.load import convert_openflamingo, load_openflamingo, load_openflamingo_encoder
from heron.models.openflamingo.open_clip import open_clip_to_hf_clip, open_clip_vision_config
from heron.models.openflamingo.variants import SIDECAR, VARIANTS, OpenFlamingoSources, OpenFlamingoVariant

__all__ = [
    "SIDECAR",
    "VARIANTS",
    "OpenFlamingoSources",
    "OpenFlamingoVariant",
    "convert_openflamingo",
    "load_openflamingo",
    "load_openflamingo_encoder",
    "open_clip_to_hf_clip",
    "open_clip_vision_config",
    "read_checkpoint",
]
