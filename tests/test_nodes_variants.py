"""Every fusion variant and the fusion strength inside a real ComfyUI, and clones of a patch.

For tiny checkpoints of each variant, the ComfyUI path (loader -> SourceNet Encode -> HPFA
Patch -> ComfyUI's UNet) and the diffusers path predict the same noise at a fusion strength
between 0 and 1, on conditional and unconditional rows.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import AutoencoderKL

from tests.tiny_models import STANDING_X, STANDING_Y, person_parsing, randomize_zero_layers
from truepose_core.checkpoint import load_truepose, save_truepose
from truepose_core.clip_regions import ClipRegionEncoder, build_clip_vision
from truepose_core.fusion import FusionSettings
from truepose_core.keypoints import parse_deepfashion_row
from truepose_core.pipeline import TruePosePipeline
from truepose_core.presets import tiny_vae_config

pytestmark = pytest.mark.comfyui

H, W = 128, 88
STRENGTH = 0.5


def _image():
    return torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(0))


def _variant_checkpoint(comfy, mode: str):
    """A tiny checkpoint of ``mode`` with non-zero fusion, in the library's models/truepose."""
    from tests.tiny_models import tiny_model

    name = f"tiny-{mode}.safetensors"
    path = comfy.models_dir / "truepose" / name
    if not path.exists():
        model = tiny_model(fusion_mode=mode)
        randomize_zero_layers(model)
        torch.manual_seed(0)
        vae = AutoencoderKL.from_config(tiny_vae_config()).eval()
        save_truepose(path, model, vae=vae, clip=build_clip_vision(model.config))
    return path


def _comfy_noise(patched, latents, t, context, cond_or_uncond):
    import comfy.model_management as mm

    mm.load_models_gpu([patched])
    options = dict(patched.model_options["transformer_options"])
    options["cond_or_uncond"] = list(cond_or_uncond)
    with torch.no_grad():
        return patched.model.diffusion_model(
            latents, t, context=context, transformer_options=options
        )


def _comfy_patched(comfy, name, pose, strength):
    model, truepose, vae = comfy.node_class("TruePose_LoadTruePose").execute(name).result
    types = comfy.pack_module("nodes.types")
    parsing = types.ParsingBatch(labels=person_parsing(1, H, W), label_set="lip")
    source = comfy.node_class("TruePose_SourceNetEncode").execute(truepose, vae, _image(), parsing)
    source = source.result[0]
    node = comfy.node_class("TruePose_HPFAPatchModel")
    patched = node.execute(model, truepose, source, [pose], 0.3, 0.6, strength).result[0]
    return patched, truepose, source


@pytest.mark.parametrize("mode", ["hpfa", "concat", "pose_only"])
def test_comfy_path_matches_diffusers_path_at_half_strength(comfy, mode):
    path = _variant_checkpoint(comfy, mode)
    keypoints = comfy.pack_module("truepose_core.keypoints")
    patched, truepose, source = _comfy_patched(
        comfy, path.name, keypoints.parse_deepfashion_row(STANDING_Y, STANDING_X), STRENGTH
    )
    assert (truepose.source is None) == (mode == "pose_only")

    loaded = load_truepose(path)
    pipe = TruePosePipeline(
        loaded.model, loaded.vae, ClipRegionEncoder(loaded.clip, loaded.config.clip_image_size)
    )
    encoding = pipe.encode_source(_image().permute(0, 3, 1, 2), person_parsing(1, H, W))
    pose = parse_deepfashion_row(STANDING_Y, STANDING_X)
    state = pipe.prepare(encoding, [pose], (H, W), fusion=FusionSettings(strength=STRENGTH))
    full = pipe.prepare(encoding, [pose], (H, W))

    latents = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(3))
    x, t = latents.repeat(2, 1, 1, 1), torch.full((2,), 500.0)
    rows, conditional = torch.zeros(2, dtype=torch.long), torch.tensor([False, True])
    context = state.context[rows] * conditional[:, None, None]
    got = _comfy_noise(patched, x, t, context, [1, 0])
    with torch.no_grad():
        want = pipe.model.predict_noise(x, t, state, rows, conditional)
        at_full = pipe.model.predict_noise(x, t, full, rows, conditional)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    if mode != "pose_only":  # the strength is not ignored
        assert not torch.allclose(want[1], at_full[1], atol=1e-4)


def test_clones_of_a_patched_model_do_not_share_caches(comfy, checkpoint):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    fusion_patch = comfy.pack_module("nodes.fusion_patch")
    pose = keypoints.parse_deepfashion_row(STANDING_Y, STANDING_X)
    patched, _truepose, _source = _comfy_patched(comfy, checkpoint.name, pose, 1.0)
    clone = patched.clone()
    original, copied = fusion_patch.find_patch(patched), fusion_patch.find_patch(clone)
    assert copied is not original and copied.state is original.state
    # The clone's patch functions are bound to the clone's own patch object.
    patches = clone.model_options["transformer_options"]["patches"]
    assert all(fn.__self__ is copied for fns in patches.values() for fn in fns)
    latents = torch.randn(2, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(5))
    _comfy_noise(clone, latents, torch.full((2,), 300.0), torch.zeros(2, 2, 64), [1, 0])
    assert copied._sources and not original._sources
    assert copy.deepcopy(original).state is original.state
