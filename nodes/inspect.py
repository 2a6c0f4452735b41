"""Look inside a run: HPFA attention over the source, and SSIM/PSNR against a ground truth."""

from __future__ import annotations

import torch
from comfy_api.latest import io
from torch.nn import functional as F

from ..truepose_core.errors import BatchError
from ..truepose_core.fit import fit_pose
from ..truepose_core.images import to_rgb_float
from ..truepose_core.metrics import image_metrics
from ..truepose_core.model import default_source_rows
from ..truepose_core.parsing import get_label_set, selection_mask, token_mask
from ..truepose_core.preview import overlay_skeletons
from ..truepose_core.unet_layers import level_sizes
from . import runtime
from .errors import node_errors
from .types import PoseSocket, SourceSocket, TruePoseSocket, mask_weight_inputs, mask_weights

CATEGORY = "TruePose/inspect"


def _heat_colours(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) in 0..1 -> (B, H, W, 3): black, red, yellow, white."""
    v = values.clamp(0, 1)[..., None]
    return torch.cat([(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], -1)


@torch.no_grad()
def attention_map(handle, encoding, poses, sigma: float, delta: float) -> torch.Tensor:
    """Per (source, pose) pair: the HPFA attention each source pixel's token receives.

    Each layer's ``key_attention`` (eq. 7's softmax(A' * M'), summed over queries, mean over
    heads) is made a density (divided by its mean), upsampled to the image and averaged
    over the fused layers; the result is scaled to 0..1 per pair. (P, H, W) float.
    """
    device = handle.load_modules()
    enc = encoding.to(device)
    h, w = enc.parsing.shape[-2:]
    rows = default_source_rows(enc.batch, len(poses), None, device)
    label_set = get_label_set(handle.config.label_set)
    fitted = [fit_pose(pose, int(w), int(h)) for pose in poses]
    masks = selection_mask(enc.parsing[rows], fitted, label_set)
    layers = handle.layers
    sizes = level_sizes(enc.latent_hw, 1 + max(layer.level for layer in layers))
    total = torch.zeros(len(poses), 1, h, w, device=device)
    used = 0
    for layer in layers:
        hpfa = handle.model.fusion[layer.name].hpfa
        if hpfa is None:
            continue
        size = sizes[layer.level]
        key_mask = token_mask(masks, size).to(device)
        feats = enc.features[layer.name][rows].to(handle.dtype)
        src = hpfa.encode_source(
            feats,
            key_mask,
            backend=handle.config.attention_backend,
            chunk=handle.config.attention_chunk,
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
        raise BatchError(f"{handle.name}: the checkpoint has no HPFA layers to show")
    heat = (total / used)[:, 0]
    low = heat.flatten(1).min(1).values[:, None, None]
    high = heat.flatten(1).max(1).values[:, None, None]
    return ((heat - low) / (high - low).clamp_min(1e-12)).cpu()


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
            if image.shape[1:3] != heat.shape[1:3]:
                raise BatchError(
                    f"source_image {image.shape[2]}x{image.shape[1]} differs from the encoded "
                    f"source {heat.shape[2]}x{heat.shape[1]}; connect the image that was encoded"
                )
            rows = default_source_rows(image.shape[0], heat.shape[0], None, torch.device("cpu"))
            overlay = (1 - opacity) * image[rows] + opacity * _heat_colours(heat)
            # The skeleton as the model gets it: fitted into the source frame.
            h, w = heat.shape[1:3]
            fitted = [fit_pose(pose, int(w), int(h)) for pose in poses]
            overlay = overlay_skeletons(overlay.clamp(0, 1), fitted, brightness=1.0)
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
