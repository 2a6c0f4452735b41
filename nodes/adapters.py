"""Adapters from the checkpoint's own modules to ComfyUI's interfaces.

- :func:`module_patcher` wraps a plain module as a ModelPatcher, so ComfyUI's model
  management moves and offloads it.
- :class:`EmbeddedVAE` gives a checkpoint's own diffusers VAE the ``encode``/``decode``
  interface of ``comfy.sd.VAE``, so the stock VAE Encode / VAE Decode nodes take it.
- :class:`ComfyClipVisual` makes ComfyUI's CLIP_VISION the tower
  :class:`~truepose_core.clip_regions.ClipRegionEncoder` expects.
"""

from __future__ import annotations

import torch
from torch import nn

from ..truepose_core.clip_regions import CLIP_MEAN, CLIP_STD
from ..truepose_core.errors import CheckpointError


class ModuleHolder(nn.Module):
    """A plain container for a diffusers module: ModelPatcher writes ``model.device``, which
    diffusers models expose as a read-only property."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner


def module_patcher(module: nn.Module, load_device, offload_device):
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(
        module.to(offload_device), load_device=load_device, offload_device=offload_device
    )


class EmbeddedVAE:
    """``comfy.sd.VAE``'s encode/decode contract over a checkpoint's own VAE (an AutoencoderKL
    or a PatchVAE, whose downscale factor and latent channels it reports).

    ``encode``: IMAGE ``[B, H, W, 3]`` in 0..1 -> unscaled latents (the distribution's mean),
    centre-cropped to multiples of 8 as ComfyUI's VAE does; ``decode``: unscaled latents ->
    IMAGE. ComfyUI's own VAE class cannot hold it: its GroupNorms are fixed at 32 groups,
    which the small models' 16-channel VAE blocks cannot have.
    """

    latent_dim = 2
    output_channels = 3

    def __init__(self, vae: nn.Module):
        import comfy.model_management as mm

        from ..truepose_core.patch_vae import vae_geometry

        factor, self.latent_channels = vae_geometry(vae)
        self.downscale_ratio = self.upscale_ratio = factor
        self.first_stage_model = vae.eval().requires_grad_(False)
        self.device = mm.vae_device()
        self.output_device = mm.intermediate_device()
        self.patcher = module_patcher(ModuleHolder(vae), self.device, mm.vae_offload_device())

    def _load(self) -> tuple[torch.device, torch.dtype]:
        import comfy.model_management as mm

        mm.load_models_gpu([self.patcher])
        param = next(self.first_stage_model.parameters())
        return param.device, param.dtype

    def spacial_compression_encode(self) -> int:
        return self.downscale_ratio

    def spacial_compression_decode(self) -> int:
        return self.upscale_ratio

    def temporal_compression_decode(self):
        return None

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self.downscale_ratio
        h, w = pixels.shape[1] // f * f, pixels.shape[2] // f * f
        top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
        pixels = pixels[:, top : top + h, left : left + w, :3]
        device, dtype = self._load()
        x = pixels.movedim(-1, 1).to(device, dtype) * 2 - 1
        latents = self.first_stage_model.encode(x).latent_dist.mean
        return latents.to(self.output_device, torch.float32)

    @torch.no_grad()
    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        device, dtype = self._load()
        x = self.first_stage_model.decode(samples.to(device, dtype)).sample
        return ((x.float() + 1) / 2).clamp(0, 1).movedim(1, -1).to(self.output_device)


class MissingVAE:
    """The VAE output of a checkpoint that embeds none: every use says what to connect."""

    def __init__(self, name: str):
        self.name = name

    def _refuse(self, *_args, **_kwargs):
        raise CheckpointError(
            f"{self.name}: this TruePose checkpoint embeds no VAE; connect ComfyUI's Load VAE "
            "(Stable Diffusion 1.5's vae-ft-mse-840000-ema-pruned.safetensors) instead"
        )

    encode = decode = _refuse


# ---------------------------------------------------------------------------------------------
# CLIP vision


class ComfyClipVisual(nn.Module):
    """ComfyUI's CLIP_VISION as the ``visual`` tower :class:`ClipRegionEncoder` expects.

    ClipRegionEncoder pads each crop to a square, resizes it to the tower's input size and
    normalises it with CLIP's mean and std; this adapter undoes the normalisation and lets
    ``encode_image(crop=False)`` apply its own (the same constants), then returns the pooled,
    projected ``image_embeds``.
    """

    def __init__(self, clip_vision):
        super().__init__()
        self.clip_vision = clip_vision
        self.inner = clip_vision.model  # parameters give ClipRegionEncoder a dtype
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(normalized.device, normalized.dtype)
        std = self.std.to(normalized.device, normalized.dtype)
        images = (normalized * std + mean).clamp(0, 1).movedim(1, -1).float()
        return self.clip_vision.encode_image(images, crop=False).image_embeds.float()
