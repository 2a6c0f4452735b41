"""The PatchVAE: exact linear round trip, stored and loaded like any VAE, and the ComfyUI path
(VAE Encode, VAE Decode, TruePose Sampler) with a latent layout that is not SD's 4 channels."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from tests.tiny_models import (
    STANDING_X,
    STANDING_Y,
    person_parsing,
    randomize_zero_layers,
)
from truepose_core.checkpoint import load_truepose, save_truepose
from truepose_core.clip_regions import build_clip_vision
from truepose_core.model import TruePoseModel
from truepose_core.patch_vae import PatchVAE, vae_geometry
from truepose_core.presets import build_tiny_unet, tiny_truepose_config

H, W, CHANNELS = 128, 88, 12


def _images(n=6, seed=0):
    """Smooth random colour fields with stripes: low-rank enough for a few components."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 4, 3, generator=g), size=(H, W), mode="bilinear")
    stripes = (torch.arange(W) // 3 % 2).float()[None, None, None, :]
    return (base * 1.6 - 0.8 + 0.2 * stripes).clamp(-1, 1)


def _fitted(channels=CHANNELS):
    return PatchVAE(latent_channels=channels).fit(_images(8)).eval()


def test_full_rank_patch_vae_is_exact():
    vae = PatchVAE(latent_channels=192).fit(torch.rand(4, 3, 64, 64) * 2 - 1)
    x = torch.rand(2, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        torch.testing.assert_close(vae.decode(z).sample, x, atol=1e-4, rtol=0)
    assert z.shape == (2, 192, 4, 3)


def test_latents_are_principal_components_and_decode_is_the_projection():
    vae = _fitted()
    x = _images(8)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        again = vae.encode(vae.decode(z).sample).latent_dist.mean
    # Unit variance overall on the data it was fitted on, as the noise schedule expects; the
    # channels are not whitened: variance falls from the first component to the last.
    assert abs(float(z.pow(2).mean()) - 1) < 0.05
    variance = z.var(dim=(0, 2, 3))
    assert bool((variance[:-1] >= variance[1:] - 1e-4).all()) and variance[0] > 5 * variance[-1]
    # Decoding lands in the span, so encoding it again changes nothing (a projection).
    torch.testing.assert_close(again, z, atol=1e-3, rtol=0)
    assert vae_geometry(vae) == (8, CHANNELS)


def test_latent_rgb_gives_each_cells_mean_colour():
    vae = _fitted()
    x = _images(2, seed=3)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        decoded = vae.decode(z).sample
    factors, bias = vae.latent_rgb()
    preview = torch.einsum("bkhw,kc->bchw", z, factors) + bias[None, :, None, None]
    torch.testing.assert_close(preview, F.avg_pool2d(decoded, 8), atol=1e-4, rtol=0)


def _patch_checkpoint(path):
    config = tiny_truepose_config()
    model = TruePoseModel.from_unet(config, build_tiny_unet(0, latent_channels=CHANNELS)).eval()
    randomize_zero_layers(model)
    return save_truepose(path, model, vae=_fitted(), clip=build_clip_vision(config))


def test_checkpoint_embeds_and_restores_the_patch_vae(tmp_path):
    path = _patch_checkpoint(tmp_path / "patch.safetensors")
    loaded = load_truepose(path)
    assert isinstance(loaded.vae, PatchVAE)
    torch.testing.assert_close(loaded.vae.basis, _fitted().basis)


@pytest.mark.comfyui
def test_comfy_vae_nodes_and_sampler_take_the_patch_layout(comfy):
    path = _patch_checkpoint(comfy.models_dir / "truepose" / "tiny-patch-vae.safetensors")
    model, truepose, vae = comfy.node_class("TruePose_LoadTruePose").execute(path.name).result
    image = (_images(1, seed=5).movedim(1, -1) + 1) / 2
    # Stock VAE Encode / VAE Decode work on the embedded VAE, with its 12 channels.
    latent = comfy.node_class("VAEEncode")().encode(vae, image)[0]
    assert latent["samples"].shape == (1, CHANNELS, H // 8, W // 8)
    decoded = comfy.node_class("VAEDecode")().decode(vae, latent)[0]
    ref = _fitted()
    with torch.no_grad():
        want = ref.decode(ref.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mean).sample
    torch.testing.assert_close(
        decoded, ((want + 1) / 2).clamp(0, 1).movedim(1, -1), atol=1e-4, rtol=0
    )
    # The UNet's latent format carries the channel count and exact preview colours.
    fmt = model.get_model_object("latent_format")
    assert fmt.latent_channels == CHANNELS and len(fmt.latent_rgb_factors) == CHANNELS
    # TruePose Sampler runs end to end with the embedded VAE.
    types = comfy.pack_module("nodes.types")
    keypoints = comfy.pack_module("truepose_core.keypoints")
    parsing = types.ParsingBatch(labels=person_parsing(1, H, W), label_set="lip")
    source = comfy.node_class("TruePose_SourceNetEncode").execute(truepose, vae, image, parsing)
    source = source.result[0]
    pose = keypoints.parse_deepfashion_row(STANDING_Y, STANDING_X)
    patched = comfy.node_class("TruePose_HPFAPatchModel").execute(
        model, truepose, source, [pose], 0.3, 0.6, 1.0
    )
    patched = patched.result[0]
    out = comfy.node_class("TruePose_TrueSampler").execute(
        patched, truepose, source, 0, 2, 3.5, "ddim", "ddim_uniform", 1.0, None
    )
    samples = out.result[0]["samples"]
    assert samples.shape == (1, CHANNELS, H // 8, W // 8) and torch.isfinite(samples).all()
    picture = comfy.node_class("VAEDecode")().decode(vae, {"samples": samples})[0]
    assert picture.shape == (1, H, W, 3)
