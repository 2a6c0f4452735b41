"""The target pose as an OpenPose ControlNet image, at the size the picture is generated."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from ..truepose_core import keypoints
from ..truepose_core.errors import PoseError
from .errors import node_errors
from .types import PoseSocket

CATEGORY = "TruePose/pose"
MAX_SIDE = 8192


def render_pose_images(poses, width: int, height: int) -> torch.Tensor:
    """Skeletons of ``poses`` at ``width`` x ``height`` (0 = each pose's frame), IMAGE batch."""
    if not poses:
        raise PoseError("target pose: no pose arrived; connect a TruePose pose node")
    frames = []
    for pose in poses:
        w = int(width) if width > 0 else pose.width
        h = int(height) if height > 0 else pose.height
        frames.append(keypoints.render_skeleton(pose, width=w, height=h))
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise PoseError(
            f"target poses have different frame sizes {sorted(s[:2] for s in sizes)}; set "
            "width and height so that every skeleton is drawn at one size"
        )
    return torch.from_numpy(np.stack(frames)).float().div(255.0)


class PoseToControlNetImage(io.ComfyNode):
    """OpenPose skeleton IMAGE for ControlNet Apply (control_v11p_sd15_openpose)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_PoseToControlNetImage",
            display_name="TruePose Pose to OpenPose Image",
            category=CATEGORY,
            description=(
                "Draws each pose as comfyui_controlnet_aux's OpenPose preprocessor does: the "
                "standard 17 limbs and 18 joint colours on black, scaled to width x height. "
                "Feed it to ControlNet Apply with an OpenPose ControlNet."
            ),
            inputs=[
                PoseSocket.Input("pose", tooltip="TruePose poses (OpenPose-18, pixels)."),
                io.Int.Input(
                    "width",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    step=8,
                    tooltip="Image width in pixels (the generated image's); 0 = pose frame.",
                ),
                io.Int.Input(
                    "height",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    step=8,
                    tooltip="Image height in pixels (the generated image's); 0 = pose frame.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="Skeletons on black, RGB 0..1, one per pose."
                )
            ],
        )

    @classmethod
    def execute(cls, pose, width: int, height: int) -> io.NodeOutput:
        with node_errors():
            return io.NodeOutput(render_pose_images(list(pose), width, height))


NODES: list[type[io.ComfyNode]] = [PoseToControlNetImage]
