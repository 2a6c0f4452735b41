"""Pair preparation: (source encoding, target poses) -> the FusionState every step reuses.

The one function both hosts call: the diffusers pipeline and the ComfyUI HPFA patch node.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .fit import fit_pose
from .fusion import FusionSettings, FusionState, SourceEncoding
from .keypoints import Pose, render_skeleton, require_visible
from .model import TruePoseModel, default_source_rows
from .parsing import get_label_set, selection_mask


def skeleton_batch(poses: Sequence[Pose], height: int, width: int) -> torch.Tensor:
    """Rendered skeletons (P, 3, H, W) in [0, 1] at the image size."""
    arrays = [render_skeleton(pose, width, height) for pose in poses]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def prepare_pairs(
    model: TruePoseModel,
    encoding: SourceEncoding,
    poses: Sequence[Pose],
    image_hw: tuple[int, int],
    source_rows: torch.Tensor | None = None,
    settings: FusionSettings | None = None,
) -> FusionState:
    """The pose-dependent precompute of P (source, pose) pairs, on ``model``'s device.

    Poses drawn on another canvas are fitted into the source frame ``image_hw`` (letterbox:
    the person keeps their proportions, see :mod:`truepose_core.fit`); their selection masks
    on the source parsing and their skeletons go to :meth:`TruePoseModel.prepare`. ``encoding``
    must be on the model's device. One source with N poses gives N pairs.
    """
    h, w = image_hw
    require_visible(poses)
    poses = [fit_pose(pose, w, h) for pose in poses]
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    rows = default_source_rows(encoding.batch, len(poses), source_rows, device)
    label_set = get_label_set(model.config.label_set)
    masks = selection_mask(encoding.parsing[rows], poses, label_set).to(device)
    skeletons = skeleton_batch(poses, h, w).to(device, dtype)
    return model.prepare(encoding, masks, skeletons, rows, settings=settings)
