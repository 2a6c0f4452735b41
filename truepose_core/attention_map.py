"""Where the fusion looks: the HPFA attention each source pixel receives, as a 0..1 map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .config import TruePoseConfig
from .errors import BatchError
from .fit import fit_pose
from .fusion import SourceEncoding
from .keypoints import Pose
from .model import TruePoseModel, default_source_rows
from .parsing import get_label_set, selection_mask, token_mask
from .preview import heat_colours, overlay_skeletons
from .unet_layers import level_sizes


@torch.no_grad()
def attention_map(
    model: TruePoseModel,
    config: TruePoseConfig,
    encoding: SourceEncoding,
    poses: Sequence[Pose],
    sigma: float,
    delta: float,
    name: str = "model",
) -> torch.Tensor:
    """Per (source, pose) pair: the HPFA attention each source pixel's token receives.

    Each layer's ``key_attention`` (eq. 7's softmax(A' * M'), summed over queries, mean over
    heads) is made a density (divided by its mean), upsampled to the image and averaged
    over the fused layers; the result is scaled to 0..1 per pair. ``encoding`` must already
    be on the model's device; ``name`` names the checkpoint in errors. (P, H, W) float on
    the CPU.
    """
    device = encoding.parsing.device
    dtype = next(model.parameters()).dtype
    h, w = encoding.parsing.shape[-2:]
    rows = default_source_rows(encoding.batch, len(poses), None, device)
    label_set = get_label_set(config.label_set)
    fitted = [fit_pose(pose, int(w), int(h)) for pose in poses]
    masks = selection_mask(encoding.parsing[rows], fitted, label_set)
    layers = list(model.layers)
    sizes = level_sizes(encoding.latent_hw, 1 + max(layer.level for layer in layers))
    total = torch.zeros(len(poses), 1, h, w, device=device)
    used = 0
    for layer in layers:
        hpfa = model.fusion[layer.name].hpfa
        if hpfa is None:
            continue
        size = sizes[layer.level]
        key_mask = token_mask(masks, size).to(device)
        feats = encoding.features[layer.name][rows].to(dtype)
        src = hpfa.encode_source(
            feats,
            key_mask,
            backend=config.attention_backend,
            chunk=config.attention_chunk,
            return_key_attention=True,
            key_attention_unweighted=False,
            sigma=sigma,
            delta=delta,
        )
        received = src.key_attention.float()
        received = received / received.mean(dim=1, keepdim=True).clamp_min(1e-12)
        grid = received.view(-1, 1, *size)
        total += F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        used += 1
    if used == 0:
        raise BatchError(f"{name}: the checkpoint has no HPFA layers to show")
    heat = (total / used)[:, 0]
    low = heat.flatten(1).min(1).values[:, None, None]
    high = heat.flatten(1).max(1).values[:, None, None]
    return ((heat - low) / (high - low).clamp_min(1e-12)).cpu()


def attention_overlay(
    image: torch.Tensor, heat: torch.Tensor, poses: Sequence[Pose], opacity: float
) -> torch.Tensor:
    """IMAGE (P, H, W, 3): ``heat`` (P, H, W) in heat colours over the source ``image``
    (B, H, W, 3 on the CPU; B 1 or P), with each target skeleton as the model gets it
    (fitted into the source frame). ``opacity`` 0 shows the photo only, 1 the map only."""
    if image.shape[1:3] != heat.shape[1:3]:
        raise BatchError(
            f"source_image {image.shape[2]}x{image.shape[1]} differs from the encoded "
            f"source {heat.shape[2]}x{heat.shape[1]}; connect the image that was encoded"
        )
    rows = default_source_rows(image.shape[0], heat.shape[0], None, torch.device("cpu"))
    overlay = (1 - opacity) * image[rows] + opacity * heat_colours(heat)
    h, w = heat.shape[1:3]
    fitted = [fit_pose(pose, int(w), int(h)) for pose in poses]
    return overlay_skeletons(overlay.clamp(0, 1), fitted, brightness=1.0)
