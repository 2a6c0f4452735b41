"""A linear patch autoencoder: the SynthFashion model's VAE, fitted in closed form.

Stable Diffusion's /8, 4-channel layout leaves 4 numbers for each 8x8x3 pixel cell, which
cannot hold 2-3 px stripes or printed words at 128x88. This VAE keeps SD's /8 grid but
stores ``latent_channels`` numbers per cell: each cell's 192 pixel values are projected on
their principal components (fitted on training images). Encoding and decoding are exact
linear maps (decode is the pseudo-inverse of encode), so there is nothing to train by
gradient and nothing to blur.

The components are not whitened: all share one scale that gives the latents unit variance
overall. The basis is orthonormal, so a latent error is the same pixel error in every
channel and the diffusion loss weighs channels as pixels do; fine-detail channels keep
their small variance, so noise covers them early in the forward process and the model
resolves them last, as in pixel-space diffusion. (Whitening every component to unit
variance made a first model's noise predictions at high noise far worse for the same
training time: its samples diverged.)

The module answers diffusers' ``AutoencoderKL`` calls (``encode(x).latent_dist.mean``,
``decode(z).sample``) so every host uses it unchanged.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

#: ``vae_kind`` of this VAE in a stored ``vae_config`` (AutoencoderKL configs have none).
PATCH_VAE_KIND = "patch"


class PatchVAE(ModelMixin, ConfigMixin):
    """Cells of ``factor`` x ``factor`` pixels -> ``latent_channels`` PCA coefficients."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 36,
        factor: int = 8,
        vae_kind: str = PATCH_VAE_KIND,
    ):
        super().__init__()
        cell = in_channels * factor * factor
        if not 0 < latent_channels <= cell:
            raise ValueError(f"PatchVAE: latent_channels must lie in 1..{cell}")
        # Parameters (frozen), not buffers: callers read the dtype from parameters().
        self.basis = nn.Parameter(torch.zeros(latent_channels, cell), requires_grad=False)
        self.mean = nn.Parameter(torch.zeros(cell), requires_grad=False)
        self.scale = nn.Parameter(torch.ones(latent_channels), requires_grad=False)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> PatchVAE:
        """Principal components of the cells of ``images`` (B, 3, H, W) in -1..1."""
        f = self.config.factor
        cells = (
            F.pixel_unshuffle(images.float(), f).permute(0, 2, 3, 1).reshape(-1, self.mean.numel())
        )
        mean = cells.mean(0)
        _, singular, vh = torch.linalg.svd(cells - mean, full_matrices=False)
        k = self.config.latent_channels
        self.mean.copy_(mean)
        self.basis.copy_(vh[:k])
        # One scale for every channel: the RMS of the kept components' standard deviations.
        std = singular[:k] / (cells.shape[0] - 1) ** 0.5
        self.scale.copy_(std.pow(2).mean().sqrt().expand(k))
        return self

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        cells = F.pixel_unshuffle(x, self.config.factor)  # (B, 3ff, h, w)
        cells = cells - self.mean.to(x.dtype)[None, :, None, None]
        z = torch.einsum("kd,bdhw->bkhw", self.basis.to(x.dtype), cells)
        return z / self.scale.to(x.dtype)[None, :, None, None]

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        z = self._encode(x)
        # A deterministic "posterior": mean z, zero variance.
        dist = DiagonalGaussianDistribution(torch.cat([z, torch.zeros_like(z)], 1), True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, **_unused):
        z = z * self.scale.to(z.dtype)[None, :, None, None]
        cells = torch.einsum("kd,bkhw->bdhw", self.basis.to(z.dtype), z)
        cells = cells + self.mean.to(z.dtype)[None, :, None, None]
        x = F.pixel_shuffle(cells, self.config.factor)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self._encode(x)).sample

    def latent_rgb(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (latent_channels, 3) factors and (3,) bias from a latent to each cell's mean
        colour in -1..1: what ComfyUI's latent previews need."""
        f, c = self.config.factor, self.config.in_channels
        per_pixel = (self.basis * self.scale[:, None]).view(-1, c, f * f)
        return per_pixel.mean(-1).float(), self.mean.view(c, f * f).mean(-1).float()


def vae_from_config(config: dict):
    """The VAE a stored ``vae_config`` describes: a :class:`PatchVAE` or an AutoencoderKL."""
    if config.get("vae_kind") == PATCH_VAE_KIND:
        return PatchVAE.from_config(config)
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(config)


def vae_geometry(vae: nn.Module) -> tuple[int, int]:
    """(downscale factor, latent channels) of a PatchVAE or an AutoencoderKL."""
    config = vae.config
    if config.get("vae_kind") == PATCH_VAE_KIND:
        return int(config["factor"]), int(config["latent_channels"])
    return 2 ** (len(config["block_out_channels"]) - 1), int(config["latent_channels"])
