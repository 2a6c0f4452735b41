"""Preview images that show what the model will get: skeletons drawn over a picture."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import BatchError, PoseError
from .keypoints import Pose, render_skeleton

#: How much of the picture shows under a skeleton preview (darkened so the skeleton reads).
PICTURE_BRIGHTNESS = 0.6


def overlay_skeletons(
    images: torch.Tensor, poses: Sequence[Pose], brightness: float = PICTURE_BRIGHTNESS
) -> torch.Tensor:
    """IMAGE (B, H, W, 3) in 0..1 with each pose's skeleton drawn over it: (P, H, W, 3).

    Pose ``i`` is drawn over image ``i`` (or image 0 for a batch of one), which is scaled by
    ``brightness``. Each pose must already be on the picture's frame: this draws, it never
    moves a joint.
    """
    b, h, w = images.shape[:3]
    if b not in (1, len(poses)):
        raise BatchError(
            f"overlay: {b} pictures for {len(poses)} poses; expected 1 or {len(poses)}"
        )
    out = []
    for i, pose in enumerate(poses):
        if (pose.width, pose.height) != (w, h):
            raise PoseError(
                f"overlay: pose canvas {pose.width}x{pose.height} is not the picture's {w}x{h}"
            )
        picture = images[i if b > 1 else 0, ..., :3].float().cpu()
        rendered = render_skeleton(pose)
        skeleton = torch.from_numpy(rendered).float() / 255.0
        drawn = torch.from_numpy(rendered.any(axis=-1))[..., None]
        out.append(torch.where(drawn, skeleton, picture * brightness))
    return torch.stack(out)


def heat_colours(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) in 0..1 -> (B, H, W, 3): black, red, yellow, white."""
    v = values.clamp(0, 1)[..., None]
    return torch.cat([(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], -1)
