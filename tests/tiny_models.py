"""Tiny models of the real architectures, shared by the core tests."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from truepose_core.checkpoint import save_truepose
from truepose_core.clip_regions import ClipRegionEncoder, build_clip_vision
from truepose_core.keypoints import parse_deepfashion_row
from truepose_core.model import TruePoseModel
from truepose_core.pipeline import TruePosePipeline
from truepose_core.presets import build_tiny_unet, tiny_truepose_config, tiny_vae_config

# A standing person in the 256x176 DeepFashion frame (y first, -1 = missing).
STANDING_Y = "[40, 70, 70, 110, 150, 70, 110, 150, 160, 210, 250, 160, 210, 250, 36, 36, 40, 40]"
STANDING_X = "[88, 88, 60, 55, 50, 116, 121, 126, 70, 70, 70, 106, 106, 106, 80, 96, 74, 102]"
#: File name of the tiny checkpoint the node tests load from models/truepose.
TINY_CHECKPOINT = "tiny-truepose.safetensors"
LEGS_ONLY_Y = "[-1, -1, -1, -1, -1, -1, -1, -1, 160, 210, 250, 160, 210, 250, -1, -1, -1, -1]"


def standing_pose():
    return parse_deepfashion_row(STANDING_Y, STANDING_X)


def legs_only_pose():
    return parse_deepfashion_row(LEGS_ONLY_Y, STANDING_X)


def person_parsing(batch: int = 1, height: int = 128, width: int = 88) -> torch.Tensor:
    """A hand-made LIP parsing map: hair, face, shirt, arms, trousers, shoes."""
    p = torch.zeros(batch, height, width, dtype=torch.long)
    sy, sx = height / 128, width / 88

    def box(label, y0, y1, x0, x1):
        p[:, int(y0 * sy) : int(y1 * sy), int(x0 * sx) : int(x1 * sx)] = label

    box(2, 8, 14, 34, 54)  # hair
    box(13, 14, 30, 36, 52)  # face
    box(5, 32, 78, 28, 60)  # upper clothes
    box(14, 34, 74, 60, 66)  # left arm
    box(15, 34, 74, 22, 28)  # right arm
    box(9, 78, 118, 30, 58)  # pants
    box(18, 118, 124, 44, 58)  # left shoe
    box(19, 118, 124, 30, 44)  # right shoe
    return p


def tiny_model(seed: int = 0, **config_changes) -> TruePoseModel:
    config = tiny_truepose_config(**config_changes)
    return TruePoseModel.from_unet(config, build_tiny_unet(seed)).eval()


def randomize_zero_layers(model: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """Give the zero-initialised projections random weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fused = name.startswith("fusion.") and ".to_out." in name
            if fused or name.startswith("pose_encoder.layers.6"):
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def tiny_pipeline(seed: int = 0, **config_changes) -> TruePosePipeline:
    model = tiny_model(seed, **config_changes)
    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(tiny_vae_config()).eval()
    clip = ClipRegionEncoder(build_clip_vision(model.config), model.config.clip_image_size)
    return TruePosePipeline(model, vae, clip)


def save_tiny_checkpoint(path, seed: int = 0, **config_changes):
    """A tiny TruePose with trained-looking (non-zero) fusion, embedded tiny VAE and CLIP."""
    model = tiny_model(seed, **config_changes)
    randomize_zero_layers(model)
    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(tiny_vae_config()).eval()
    clip = build_clip_vision(model.config)
    return save_truepose(path, model, vae=vae, clip=clip)
