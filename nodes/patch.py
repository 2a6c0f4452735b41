"""Patch the TargetNet MODEL with TruePose's fusion (HPFA + CAA) and pose encoder."""

from __future__ import annotations

from comfy_api.latest import io

from ..truepose_core.errors import ConfigError
from . import runtime
from .errors import node_errors
from .types import (
    FROM_CHECKPOINT,
    PoseSocket,
    SourceSocket,
    TruePoseSocket,
    mask_weight_inputs,
    mask_weights,
)

CATEGORY = "TruePose/patch"
#: Choices of the patch node's region_alignment input; "default" defers to TruePose_CAAPatch.
REGION_ALIGNMENT = ("default", "on", "off")


class HPFAPatchModel(io.ComfyNode):
    """A clone of MODEL whose self-attention layers fuse the source (HPFA, then CAA)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_HPFAPatchModel",
            display_name="TruePose Pose Transfer (patch model)",
            category=CATEGORY,
            description=(
                "Makes the model draw the source person in the target pose. Returns a patched "
                "copy of MODEL (the input MODEL is unchanged): at each fused self-attention "
                "layer the positive (conditional) rows copy from the source through HPFA and "
                "CAA; the target pose's skeleton is added after conv_in on every row. The "
                "source/pose work is done once here, not per step. One source with N poses "
                "gives N outputs; N sources need N poses."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="The TargetNet MODEL from Load TruePose Checkpoint."
                ),
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                SourceSocket.Input("source", tooltip="From TruePose Source Person."),
                PoseSocket.Input(
                    "target_pose",
                    tooltip=(
                        "Target pose(s): 18 OpenPose keypoints, x/y in pixels of their frame "
                        "(letterboxed into the source frame, aspect kept), confidence 0 = missing."
                    ),
                ),
                *mask_weight_inputs(),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=2.0,
                    step=0.05,
                    tooltip=(
                        "How much of the source person is copied into the image (unitless): "
                        "1 = as trained, 0 = nothing (only the pose and the overall look "
                        "remain), above 1 exaggerates [fusion residual scale s in "
                        "F + s * (Fhat - F)]."
                    ),
                ),
                io.Combo.Input(
                    "region_alignment",
                    options=list(REGION_ALIGNMENT),
                    default="default",
                    optional=True,
                    tooltip=(
                        "Extra help for the source parts the model looks at least (often small "
                        "prints, shoes, a bag): on re-injects them from their CLIP picture, off "
                        "leaves them out (the paper's 'without CAA'). default: as set by a "
                        "TruePose Region Alignment node before this one, else on [CAA]."
                    ),
                ),
                io.Int.Input(
                    "aligned_regions",
                    default=0,
                    min=0,
                    max=20,
                    optional=True,
                    tooltip=(
                        "How many of those least-seen parts get the help, per layer (a count "
                        "of body-part labels); 0: as set by a TruePose Region Alignment node, "
                        "else the checkpoint's own number (paper 2) [CAA K]."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The patched clone.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        truepose,
        source,
        target_pose,
        sigma,
        delta,
        strength,
        region_alignment="default",
        aligned_regions=0,
    ):
        with node_errors():
            poses = runtime.check_target_poses(target_pose)
            caa = runtime.find_caa_settings(model)
            if region_alignment not in REGION_ALIGNMENT:
                raise ConfigError(
                    f"region_alignment {region_alignment!r}: expected one of "
                    f"{', '.join(REGION_ALIGNMENT)}"
                )
            if region_alignment != "default":
                caa["enabled"] = region_alignment == "on"
            if aligned_regions:
                caa["regions"] = int(aligned_regions)
            sigma, delta = mask_weights(truepose.config, sigma, delta)
            state = runtime.prepare_state(
                truepose,
                source,
                poses,
                sigma=sigma,
                delta=delta,
                caa=caa["enabled"],
                caa_regions=caa["regions"],
            )
            return io.NodeOutput(runtime.patch_model(model, truepose, state, strength))


class CAAPatch(io.ComfyNode):
    """CLIP-guided attention alignment settings for the HPFA patch that follows."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_CAAPatch",
            display_name="TruePose Region Alignment (CAA)",
            category=CATEGORY,
            description=(
                "Turns CLIP-guided attention alignment on or off and sets K, the number of "
                "least-attended source regions aligned with their CLIP embeddings. The Pose "
                "Transfer node has the same settings as optional inputs (region_alignment, "
                "aligned_regions), which take precedence; use this node only to share one "
                "setting between several patches, placed BEFORE TruePose Pose Transfer. "
                "Without either, CAA is on with the checkpoint's K (paper: 2)."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="The TargetNet MODEL, before TruePose Pose Transfer."
                ),
                io.Boolean.Input(
                    "enabled",
                    default=True,
                    tooltip=(
                        "On: the source parts the model looks at least are re-injected from "
                        "their CLIP picture, which keeps small details; off: left out (the "
                        "paper's 'without CAA') [CAA]."
                    ),
                ),
                io.Int.Input(
                    "regions",
                    default=FROM_CHECKPOINT,
                    min=FROM_CHECKPOINT,
                    max=20,
                    tooltip=(
                        "How many least-seen body-part labels get that help per layer (a "
                        "count); -1 = the checkpoint's K; paper 2 [CAA K]."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="MODEL with CAA settings.")],
        )

    @classmethod
    def execute(cls, model, enabled, regions):
        with node_errors():
            if runtime.find_patch(model) is not None:
                raise ConfigError(
                    "TruePose Region Alignment: MODEL already carries a TruePose patch; set "
                    "region_alignment and aligned_regions on the TruePose Pose Transfer node "
                    "instead, or place this node before it"
                )
            patched = model.clone()
            options = patched.model_options.setdefault("transformer_options", {})
            k = None if regions < 0 else int(regions)  # None: the checkpoint's K
            options[runtime.CAA_KEY] = {"enabled": bool(enabled), "regions": k}
            return io.NodeOutput(patched)


NODES: list[type[io.ComfyNode]] = [HPFAPatchModel, CAAPatch]
