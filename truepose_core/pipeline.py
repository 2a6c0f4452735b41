"""From pixels to pixels on the diffusers path: VAE, CLIP regions, TruePose, sampler.

The demo, ``truepose generate`` and the tests use this; the ComfyUI nodes use ComfyUI's own
VAE and sampler around the same :class:`~truepose_core.model.TruePoseModel` math.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .clip_regions import ClipRegionEncoder
from .config import SamplingConfig
from .errors import BatchError, ImageError
from .fit import fit_pose
from .fusion import FusionState, SourceEncoding
from .images import check_size, to_rgb_float
from .keypoints import Pose, render_skeleton, require_visible
from .model import TruePoseModel, default_source_rows
from .parsing import get_label_set, selection_mask, validate_parsing
from .sampling import StyleTransfer, sample


def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """(B, 3, H, W) RGB within the policy of ``images.py`` (values, source size), or an
    ImageError; returned as float in [0, 1]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ImageError(f"{name}: expected (batch, 3, height, width), got {tuple(images.shape)}")
    check_size(*images.shape[-2:], name=name)
    return to_rgb_float(images.permute(0, 2, 3, 1), name).permute(0, 3, 1, 2)


def skeleton_batch(poses: Sequence[Pose], height: int, width: int) -> torch.Tensor:
    """Rendered skeletons (P, 3, H, W) in [0, 1] at the image size."""
    arrays = [render_skeleton(pose, width, height) for pose in poses]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


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
    ) -> FusionState:
        """Pose-dependent precompute for each target pose."""
        h, w = image_hw
        require_visible(poses)
        # A pose drawn on another canvas is fitted into the source frame (letterbox): the
        # person keeps their proportions (fit.py documents the rule).
        poses = [fit_pose(pose, w, h) for pose in poses]
        rows = default_source_rows(encoding.batch, len(poses), source_rows, self.device)
        masks = selection_mask(encoding.parsing[rows], poses, self.label_set).to(self.device)
        skeletons = skeleton_batch(poses, h, w).to(self.device, self.dtype)
        return self.model.prepare(encoding, masks, skeletons, rows)

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
    ) -> torch.Tensor:
        """Generate one image (P, 3, H, W) in [0, 1] per target pose."""
        h, w = source_images.shape[-2:]
        encoding = self.encode_source(source_images, source_parsing)
        state = self.prepare(encoding, poses, (h, w))
        f = self.config.latent_factor
        latents = sample(
            self.model, state, (h // f, w // f), settings, style=style, callback=callback
        )
        return self.decode_latents(latents)
