"""From pixels to pixels on the diffusers path: VAE, CLIP regions, TruePose, sampler.

The demo, ``truepose generate`` and the tests use this; the ComfyUI nodes use ComfyUI's own
VAE and sampler around the same :class:`~truepose_core.model.TruePoseModel` math.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .clip_regions import ClipRegionEncoder
from .config import SamplingConfig
from .errors import BatchError, ImageError
from .fusion import FusionSettings, FusionState, SourceEncoding
from .images import check_size, to_rgb_float
from .keypoints import Pose
from .model import TruePoseModel
from .pairs import prepare_pairs
from .parsing import get_label_set, validate_parsing
from .sampling import StyleTransfer, sample


def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """(B, 3, H, W) RGB within the policy of ``images.py`` (values, source size), or an
    ImageError; returned as float in [0, 1]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ImageError(f"{name}: expected (batch, 3, height, width), got {tuple(images.shape)}")
    check_size(*images.shape[-2:], name=name)
    return to_rgb_float(images.permute(0, 2, 3, 1), name).permute(0, 3, 1, 2)


class TruePosePipeline:
    """A TruePose model with the frozen VAE and CLIP tower it was trained with."""

    def __init__(self, model: TruePoseModel, vae, clip: ClipRegionEncoder):
        self.model, self.vae, self.clip = model, vae, clip
        self.config = model.config
        self.label_set = get_label_set(model.config.label_set)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype=None
    ) -> TruePosePipeline:
        """A self-contained checkpoint (with embedded VAE and CLIP), e.g. the SynthFashion one."""
        from .checkpoint import load_truepose
        from .errors import CheckpointError

        loaded = load_truepose(path, device=device, dtype=dtype)
        if loaded.vae is None or loaded.clip is None:
            raise CheckpointError(
                f"{path}: embeds no VAE/CLIP; full-size models run through the ComfyUI nodes "
                "with ComfyUI's own VAE and CLIP vision loaders"
            )
        clip = ClipRegionEncoder(loaded.clip, loaded.config.clip_image_size).to(device)
        return cls(loaded.model, loaded.vae, clip)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> scaled latents (the distribution's mean)."""
        images = check_images(images)
        x = images.to(self.device, next(self.vae.parameters()).dtype) * 2 - 1
        latents = self.vae.encode(x).latent_dist.mean
        return (latents * self.config.latent_scale).to(self.dtype)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        vae_dtype = next(self.vae.parameters()).dtype
        x = self.vae.decode((latents / self.config.latent_scale).to(vae_dtype)).sample
        return ((x.float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode_source(self, images: torch.Tensor, parsing: torch.Tensor) -> SourceEncoding:
        """SourceNet features and CLIP regions: once per source image."""
        images = check_images(images, "source images")
        if parsing.shape != (images.shape[0], *images.shape[-2:]):
            raise BatchError(
                f"source parsing: shape {tuple(parsing.shape)} does not match the images "
                f"{tuple(images.shape[:1]) + tuple(images.shape[-2:])}"
            )
        validate_parsing(parsing, self.label_set, tuple(images.shape[-2:]))
        images = images.to(self.device)
        parsing = parsing.to(self.device)
        regions = self.clip(images, parsing, self.label_set)
        return self.model.encode_source(self.encode_latents(images), regions, parsing)

    @torch.no_grad()
    def prepare(
        self,
        encoding: SourceEncoding,
        poses: Sequence[Pose],
        image_hw: tuple[int, int],
        source_rows: torch.Tensor | None = None,
        fusion: FusionSettings | None = None,
    ) -> FusionState:
        """Pose-dependent precompute for each target pose (:func:`prepare_pairs`)."""
        return prepare_pairs(self.model, encoding, poses, image_hw, source_rows, fusion)

    @torch.no_grad()
    def __call__(
        self,
        source_images: torch.Tensor,
        source_parsing: torch.Tensor,
        poses: Sequence[Pose],
        settings: SamplingConfig = SamplingConfig(),
        *,
        style: StyleTransfer | None = None,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        fusion: FusionSettings | None = None,
    ) -> torch.Tensor:
        """Generate one image (P, 3, H, W) in [0, 1] per target pose.

        ``fusion`` overrides eq. 6's weights, K and the fusion strength for this call.
        """
        h, w = source_images.shape[-2:]
        encoding = self.encode_source(source_images, source_parsing)
        state = self.prepare(encoding, poses, (h, w), fusion=fusion)
        f = self.config.latent_factor
        latents = sample(
            self.model, state, (h // f, w // f), settings, style=style, callback=callback
        )
        return self.decode_latents(latents)
