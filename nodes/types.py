"""Socket types the pack's nodes exchange, and the values that travel on them.

The type names are saved in workflows: never rename them.

- ``TRUEPOSE_POSE``: ``list[truepose_core.keypoints.Pose]``, one per frame; keypoints are
  pixels of the frame's own ``width`` x ``height``, OpenPose 18-point order.
- ``TRUEPOSE_PARSING``: :class:`ParsingBatch`.
- ``POSE_KEYPOINT``: comfyui_controlnet_aux's type, a list of OpenPose-style frames.
- ``TRUEPOSE``: ``nodes.runtime.TruePoseHandle`` from TruePose_LoadTruePose.
- ``TRUEPOSE_SOURCE``: ``truepose_core.fusion.SourceEncoding`` from TruePose_SourceNetEncode.
- ``TRUEPOSE_FIT``: ``truepose_core.fit.FitTransform`` from TruePose_FitInputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

PoseSocket = io.Custom("TRUEPOSE_POSE")
ParsingSocket = io.Custom("TRUEPOSE_PARSING")
PoseKeypointSocket = io.Custom("POSE_KEYPOINT")
FitSocket = io.Custom("TRUEPOSE_FIT")


@dataclass(frozen=True)
class ParsingBatch:
    """Human-parsing maps of a batch of images.

    ``labels``: int64 (batch, height, width) of class indices into the label set
    ``label_set`` (``"lip"`` 20 classes or ``"atr"`` 18 classes; 0 is background).
    """

    labels: torch.Tensor
    label_set: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


TruePoseSocket = io.Custom("TRUEPOSE")
"""``TRUEPOSE``: :class:`nodes.runtime.TruePoseHandle` (SourceNet, TruePose modules, config)."""
SourceSocket = io.Custom("TRUEPOSE_SOURCE")
"""``TRUEPOSE_SOURCE``: :class:`truepose_core.fusion.SourceEncoding` (SourceNet F', CLIP)."""


#: Widget value of sigma, delta and CAA's K that means "the checkpoint's own value".
FROM_CHECKPOINT = -1


def mask_weight_inputs() -> list:
    """The ``sigma`` and ``delta`` inputs (paper eq. 6); by default the checkpoint's values."""
    from ..truepose_core.config import TruePoseConfig

    paper = TruePoseConfig()
    return [
        io.Float.Input(
            "sigma",
            default=FROM_CHECKPOINT,
            min=FROM_CHECKPOINT,
            max=4.0,
            step=0.05,
            tooltip=(
                "How much the source parts the target pose does NOT show (e.g. the legs for a "
                "half-body pose) still feed the image (unitless weight): higher lets them "
                "leak in, lower keeps them out -1 = the checkpoint's value [HPFA sigma, eq. 6; "
                f"paper {paper.sigma}]."
            ),
        ),
        io.Float.Input(
            "delta",
            default=FROM_CHECKPOINT,
            min=FROM_CHECKPOINT,
            max=4.0,
            step=0.05,
            tooltip=(
                "How strongly the image copies the source parts the target pose DOES show "
                "(face, clothes, arms; unitless weight): higher keeps their colours and "
                "patterns closer to the source -1 = the checkpoint's value [HPFA delta, eq. 6; "
                f"paper {paper.delta}]."
            ),
        ),
    ]


def mask_weights(config, sigma: float, delta: float) -> tuple[float, float]:
    """(sigma, delta) to run with: a negative widget value takes the checkpoint's."""
    return (
        float(config.sigma) if sigma < 0 else float(sigma),
        float(config.delta) if delta < 0 else float(delta),
    )
