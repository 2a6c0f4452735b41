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


class HPFAPatchModel(io.ComfyNode):
    """A clone of MODEL whose self-attention layers fuse the source (HPFA, then CAA)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_HPFAPatchModel",
            display_name="TruePose HPFA Patch Model",
            category=CATEGORY,
            description=(
                "Returns a patched copy of MODEL (the input MODEL is unchanged): at each fused "
                "self-attention layer the positive (conditional) rows attend to the source "
                "through HPFA and CAA; the target pose's skeleton is added after conv_in on "
                "every row. The source/pose work is done once here, not per step. One source "
                "with N poses gives N outputs; N sources need N poses."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The TargetNet MODEL from Load TruePose."),
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                SourceSocket.Input("source", tooltip="From TruePose SourceNet Encode."),
                PoseSocket.Input(
                    "target_pose",
                    tooltip=(
                        "Target pose(s): 18 OpenPose keypoints, x/y in pixels of their frame "
                        "(rescaled to the source image's size), confidence 0 = missing."
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
                        "Scale (unitless) of the fusion residual F + s * (Fhat - F): 1 = the "
                        "method, 0 = no source fusion (pose and context stay)."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The patched clone.")],
        )

    @classmethod
    def execute(cls, model, truepose, source, target_pose, sigma, delta, strength):
        with node_errors():
            poses = runtime.check_target_poses(target_pose)
            caa = runtime.find_caa_settings(model)
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
            display_name="TruePose CAA Settings",
            category=CATEGORY,
            description=(
                "Turns CLIP-guided attention alignment on or off and sets K, the number of "
                "least-attended source regions aligned with their CLIP embeddings. Place it "
                "BEFORE TruePose HPFA Patch Model (the patch reads these settings when it is "
                "built). Without this node CAA is on with the checkpoint's K (paper: 2)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The TargetNet MODEL, before the HPFA patch."),
                io.Boolean.Input(
                    "enabled", default=True, tooltip="On: the method; off: the w/o CAA ablation."
                ),
                io.Int.Input(
                    "regions",
                    default=FROM_CHECKPOINT,
                    min=FROM_CHECKPOINT,
                    max=20,
                    tooltip=(
                        "K: number of parsing regions (labels) aligned per layer; -1 = the "
                        "checkpoint's K (paper 2)."
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
                    "TruePose CAA Settings: MODEL already carries a TruePose HPFA patch; place "
                    "this node before TruePose HPFA Patch Model"
                )
            patched = model.clone()
            options = patched.model_options.setdefault("transformer_options", {})
            k = None if regions < 0 else int(regions)  # None: the checkpoint's K
            options[runtime.CAA_KEY] = {"enabled": bool(enabled), "regions": k}
            return io.NodeOutput(patched)


NODES: list[type[io.ComfyNode]] = [HPFAPatchModel, CAAPatch]
