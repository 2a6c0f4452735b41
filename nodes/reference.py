"""TruePose Reference (no training): parsing-guided reference attention on any SD1.5 MODEL."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..truepose_core.errors import BatchError, PoseError
from ..truepose_core.keypoints import Pose, require_visible
from ..truepose_core.parsing import get_label_set
from ..truepose_core.reference import SOURCE_MODES, ReferenceConfig, source_selection
from . import reference_patch
from .errors import node_errors
from .source import check_source_image
from .types import ParsingSocket, PoseSocket, mask_weight_inputs

CATEGORY = "TruePose/patch"


def _poses(target_pose) -> list[Pose]:
    poses = [target_pose] if isinstance(target_pose, Pose) else target_pose
    if not isinstance(poses, (list, tuple)) or not poses:
        raise PoseError("target pose: no pose arrived; connect a TruePose pose node")
    for i, pose in enumerate(poses):
        if not isinstance(pose, Pose):
            raise PoseError(
                f"target pose {i}: got {type(pose).__name__}; connect a TruePose pose node"
            )
    require_visible(poses)
    return list(poses)


@torch.no_grad()
def reference_model(model, vae, source_image, source_parsing, target_pose, config):
    """The patched clone (the input MODEL unchanged); strength 0 returns a plain clone."""
    image = check_source_image(source_image, source_parsing, source_parsing.label_set)
    if image.shape[0] != 1:
        raise BatchError(
            f"source image: {image.shape[0]} images; TruePose Reference takes one source "
            "person (pick one with ImageFromBatch)"
        )
    poses = _poses(target_pose)
    if config.strength == 0:
        return model.clone()
    selection = source_selection(
        source_parsing.labels.cpu(), poses, get_label_set(source_parsing.label_set)
    )
    latent = model.get_model_object("process_latent_in")(vae.encode(image)).float().cpu()
    patch = reference_patch.ReferencePatch(config, latent, selection)
    return reference_patch.patch_model(model, patch)


class ReferencePatch(io.ComfyNode):
    """A clone of an SD1.5 MODEL whose self-attention also attends to the source person."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        defaults = ReferenceConfig()
        return io.Schema(
            node_id="TruePose_ReferencePatch",
            display_name="TruePose Reference (no training)",
            category=CATEGORY,
            description=(
                "Works on any SD1.5 checkpoint, with no TruePose weights. At every "
                "self-attention layer the source person's tokens are added to the keys and "
                "values (reference attention), and the logits of the source keys are "
                "reweighted by TruePose's eq. 6 toward the parsing regions the target pose "
                "shows; the generated image's own keys are not reweighted. Use an OpenPose "
                "ControlNet for the pose. CAA is not applied: it needs a trained projection. "
                "Image quality on real photos has not been measured."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An SD1.5 MODEL (Load Checkpoint)."),
                io.Vae.Input("vae", tooltip="The SD1.5 VAE, used once to encode the source."),
                io.Image.Input(
                    "source_image",
                    tooltip=(
                        "One source person, RGB 0..1; width and height in pixels multiples of "
                        "8, 64..2048. Need not be the generated image's size."
                    ),
                ),
                ParsingSocket.Input(
                    "source_parsing",
                    tooltip=(
                        "Human parsing of the source image at its size (TruePose Human Parse, "
                        "LIP or ATR labels)."
                    ),
                ),
                PoseSocket.Input(
                    "target_pose",
                    tooltip=(
                        "Target pose(s), OpenPose-18 keypoints in pixels: selects the source "
                        "regions (face, torso, arms, hips, legs, feet) the target will show. "
                        "One pose, or one per latent in the batch."
                    ),
                ),
                io.Combo.Input(
                    "source_mode",
                    options=list(SOURCE_MODES),
                    default=defaults.source_mode,
                    tooltip=(
                        "cached: the source runs through the UNet once, clean, at timestep 0 "
                        "(TruePose's way; one extra UNet pass per image). noised: the source "
                        "is noised to the current step and runs every step (reference-only's "
                        "way; one extra batch-1 UNet pass per step)."
                    ),
                ),
                *mask_weight_inputs(),
                io.Float.Input(
                    "strength",
                    default=defaults.strength,
                    min=0.0,
                    max=2.0,
                    step=0.05,
                    tooltip=(
                        "Blend (unitless) of each layer's output: plain + s * (reference - "
                        "plain). 0 = the input MODEL exactly, 1 = full reference attention."
                    ),
                ),
                io.Float.Input(
                    "start_percent",
                    default=defaults.start_percent,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="First part of the schedule (0 = first step) with the patch active.",
                ),
                io.Float.Input(
                    "end_percent",
                    default=defaults.end_percent,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Last part of the schedule (1 = last step) with the patch active.",
                ),
                io.Boolean.Input(
                    "reweight",
                    default=defaults.reweight,
                    tooltip=(
                        "On: eq. 6 on the source keys (TruePose). Off: plain reference "
                        "attention over [F, F'] (for comparison)."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The patched clone.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        vae,
        source_image,
        source_parsing,
        target_pose,
        source_mode,
        sigma,
        delta,
        strength,
        start_percent,
        end_percent,
        reweight,
    ) -> io.NodeOutput:
        with node_errors():
            config = ReferenceConfig(
                sigma=float(sigma),
                delta=float(delta),
                strength=float(strength),
                reweight=bool(reweight),
                source_mode=str(source_mode),
                start_percent=float(start_percent),
                end_percent=float(end_percent),
            )
            return io.NodeOutput(
                reference_model(model, vae, source_image, source_parsing, target_pose, config)
            )


NODES: list[type[io.ComfyNode]] = [ReferencePatch]
