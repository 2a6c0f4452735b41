"""Look inside a run: HPFA attention over the source, and SSIM/PSNR against a ground truth."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..truepose_core.attention_map import attention_map as core_attention_map
from ..truepose_core.attention_map import attention_overlay
from ..truepose_core.images import to_rgb_float
from ..truepose_core.metrics import image_metrics
from . import runtime
from .errors import node_errors
from .types import PoseSocket, SourceSocket, TruePoseSocket, mask_weight_inputs, mask_weights

CATEGORY = "TruePose/inspect"


def attention_map(handle, encoding, poses, sigma: float, delta: float) -> torch.Tensor:
    """(P, H, W) 0..1 HPFA attention per pair, with the handle's modules on the device."""
    device = handle.load_modules()
    return core_attention_map(
        handle.model, handle.config, encoding.to(device), poses, sigma, delta, handle.name
    )


class AttentionMap(io.ComfyNode):
    """Where the fusion looks: the HPFA attention each source region receives."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_AttentionMap",
            display_name="TruePose Attention Map (where it copies from)",
            category=CATEGORY,
            description=(
                "Shows, over the source image, how much HPFA attention (eq. 7) each source "
                "token receives for the target pose, averaged over the fused layers. Bright = "
                "much attention; CAA aligns the least-attended regions with CLIP."
            ),
            inputs=[
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                SourceSocket.Input("source", tooltip="From TruePose Source Person."),
                PoseSocket.Input(
                    "target_pose",
                    tooltip="Target pose(s), x/y in pixels of their frame; selects regions.",
                ),
                io.Image.Input(
                    "source_image",
                    tooltip="The encoded source image (RGB 0..1), drawn under the heat map.",
                ),
                *mask_weight_inputs(),
                io.Float.Input(
                    "opacity",
                    default=0.6,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip=(
                        "How strongly the heat map covers the photo (0..1): 0 = photo only, "
                        "1 = map only."
                    ),
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="overlay",
                    tooltip="Heat map over the source, with the target skeleton as the model "
                    "gets it (fitted into the source frame).",
                ),
                io.Mask.Output(display_name="attention", tooltip="Attention scaled to 0..1."),
            ],
        )

    @classmethod
    def execute(
        cls, truepose, source, target_pose, source_image, sigma, delta, opacity
    ) -> io.NodeOutput:
        with node_errors():
            poses = runtime.check_target_poses(target_pose)
            image = to_rgb_float(source_image, "source_image").cpu()
            sigma, delta = mask_weights(truepose.config, sigma, delta)
            heat = attention_map(truepose, source, poses, sigma, delta)
            overlay = attention_overlay(image, heat, poses, opacity)
            return io.NodeOutput(overlay, heat)


class Metrics(io.ComfyNode):
    """SSIM and PSNR of generated images against ground truth (the paper's table metrics)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_Metrics",
            display_name="TruePose Score (SSIM / PSNR)",
            category=CATEGORY,
            is_output_node=True,
            description=(
                "SSIM (skimage, as in the PGPIS papers) and PSNR (dB) of each prediction "
                "against its ground truth; a prediction of another size is resized to it."
            ),
            inputs=[
                io.Image.Input("pred", tooltip="Generated images, RGB 0..1."),
                io.Image.Input(
                    "ground_truth",
                    tooltip="Ground-truth images, RGB 0..1; batch 1 or the batch of pred.",
                ),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="Means and per-image values."),
                io.Float.Output(display_name="ssim", tooltip="Mean SSIM (0..1, higher better)."),
                io.Float.Output(display_name="psnr", tooltip="Mean PSNR in dB (higher better)."),
            ],
        )

    @classmethod
    def execute(cls, pred, ground_truth) -> io.NodeOutput:
        with node_errors():
            result = image_metrics(
                to_rgb_float(pred, "pred"), to_rgb_float(ground_truth, "ground_truth")
            )
            lines = [f"SSIM {result['ssim']:.4f}  PSNR {result['psnr']:.3f} dB"]
            for i, row in enumerate(result["per_image"]):
                lines.append(f"  image {i}: SSIM {row['ssim']:.4f}  PSNR {row['psnr']:.3f} dB")
            report = "\n".join(lines)
            return io.NodeOutput(
                report, float(result["ssim"]), float(result["psnr"]), ui={"text": [report]}
            )


NODES: list[type[io.ComfyNode]] = [AttentionMap, Metrics]
