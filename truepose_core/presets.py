"""Small configurations of the real architectures: for tests and the SynthFashion model.

They are the SD1.5 layout (CrossAttn down blocks, a cross-attention middle block, mirrored
up blocks, 8 heads) with few channels, so every code path of the full model runs in
milliseconds on a CPU.
"""

from __future__ import annotations

from typing import Any

from .config import TruePoseConfig

#: open_clip vision tower of the small models: 2 layers, width 64, 32x32 input.
TINY_CLIP_VISION: dict[str, Any] = {
    "layers": 2,
    "width": 64,
    "head_width": 32,
    "patch_size": 8,
    "image_size": 32,
}


def tiny_unet_config(
    channels: tuple[int, ...] = (32, 64),
    context_dim: int = 64,
    layers_per_block: int = 1,
    latent_channels: int = 4,
) -> dict[str, Any]:
    """An SD1.5-layout diffusers UNet config: every level but the last has attention.

    ``latent_channels`` follows the VAE (4 for SD's, more for :class:`PatchVAE`).
    """
    levels = len(channels)
    down = ["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1)
    return {
        "sample_size": 16,
        "in_channels": latent_channels,
        "out_channels": latent_channels,
        "down_block_types": down,
        "up_block_types": up,
        "block_out_channels": list(channels),
        "layers_per_block": layers_per_block,
        "cross_attention_dim": context_dim,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }


def tiny_vae_config(channels: tuple[int, ...] = (16, 32, 64, 64)) -> dict[str, Any]:
    """A diffusers AutoencoderKL with SD's /8 downsampling and 4 latent channels."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 128,
    }


def synthfashion_patch_vae_config() -> dict[str, Any]:
    """The shipped model's VAE: /8 cells, 36 principal components each (a 5.3x compression;
    about 28 dB on held-out SynthFashion images, where SD's 4 channels reached 19).

    The UNet that reads it needs a first level at least twice as wide as the latent (80 for
    36): at high noise it must pass every channel's noise through, and SiLU keeps about
    half of each feature's sign."""
    return {"in_channels": 3, "latent_channels": 36, "factor": 8, "vae_kind": "patch"}


def synthfashion_vae_config() -> dict[str, Any]:
    """The shipped model's VAE: wider first level and no mid-block attention, which train
    several times faster on CPU than :func:`tiny_vae_config` for the same wall time."""
    config = tiny_vae_config((32, 64, 64, 64))
    config["mid_block_add_attention"] = False
    return config


def tiny_truepose_config(**changes: Any) -> TruePoseConfig:
    """A TruePoseConfig matching :func:`tiny_unet_config` and :data:`TINY_CLIP_VISION`."""
    base = TruePoseConfig(
        clip_model="custom",
        clip_dim=32,
        clip_image_size=32,
        clip_vision=dict(TINY_CLIP_VISION),
        context_dim=64,
        context_tokens=2,
        resolution=(128, 88),
        pose_channels=(8, 16, 32),
        attention_chunk=64,
    )
    return base.replace(**changes)


def build_tiny_unet(seed: int = 0, **kwargs: Any):
    """A randomly initialised tiny UNet (diffusers' own init), deterministic for a seed."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel.from_config(tiny_unet_config(**kwargs))
