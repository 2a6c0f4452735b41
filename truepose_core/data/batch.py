"""Turn data set items (SynthFashion or DeepFashion, same keys) into model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..keypoints import Pose


def keypoints_to_pose(keypoints: torch.Tensor, width: int, height: int) -> Pose:
    """An item's (18, 3) tensor of x, y (pixels) and confidence as a Pose on its canvas."""
    kp = keypoints.detach().cpu().float().numpy()
    return Pose(kp[:, :2], kp[:, 2], width, height)


def pair_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sources and targets in [0, 1] (B, 3, H, W), source parsing (B, H, W), target poses."""
    sources = torch.stack([(it["source_image"] + 1) / 2 for it in items])
    h, w = sources.shape[-2:]
    return {
        "sources": sources,
        "targets": torch.stack([(it["target_image"] + 1) / 2 for it in items]),
        "parsing": torch.stack([it["source_parsing"] for it in items]),
        "poses": [keypoints_to_pose(it["target_keypoints"], w, h) for it in items],
        "skeletons": torch.stack([it["target_skeleton"] for it in items]),
        "pair_ids": [it["pair_id"] for it in items],
    }
