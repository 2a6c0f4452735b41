"""A small SD1.5-layout checkpoint and OpenPose-style ControlNet, made with ComfyUI's classes.

ComfyUI recognises an SD1.5 checkpoint from its keys: a UNet with 320 base channels and
768-wide cross-attention, a CLIP-L text encoder and the SD VAE. The UNet here keeps those two
widths but has two levels of one block each (7 self-attention layers instead of 16), so a
step takes a fraction of a second on a CPU. The text encoder and VAE have the real SD1.5
shapes (ComfyUI builds them from fixed configs) with random weights, stored in fp16 (the
UNet and ControlNet in fp32, which ComfyUI then runs without casting every layer). The
ControlNet is the same small UNet layout in the ``control_model.`` format of
``control_v11p_sd15_openpose.pth``. Importing this module needs ComfyUI on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

#: The file names of the real files these stand in for.
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
CONTROLNET = "control_v11p_sd15_openpose.pth"

#: ComfyUI ``unet_config`` of the small SD1.5-layout UNet.
UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 1],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
#: The (block, id, index) of every self-attention layer of that UNet.
SELF_ATTENTION = [
    ("input", 1, 0),
    ("input", 3, 0),
    ("middle", 0, 0),
    ("output", 0, 0),
    ("output", 1, 0),
    ("output", 2, 0),
    ("output", 3, 0),
]
VAE_CONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def _randomize(state: dict[str, torch.Tensor], seed: int, scale: float = 0.02) -> dict:
    """Random weights (ComfyUI's ops leave parameters uninitialised): norms 1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, value in state.items():
        if not value.is_floating_point():
            out[name] = value.clone()
        elif "norm" in name or name.endswith(("ln_1.weight", "ln_2.weight")):
            out[name] = torch.ones_like(value) if name.endswith("weight") else value.zero_()
        elif name.endswith("bias"):
            out[name] = torch.zeros_like(value)
        else:
            fan_in = value[0].numel() if value.dim() > 1 else 1
            std = scale if value.dim() <= 1 else 1.0 / fan_in**0.5
            out[name] = torch.randn(value.shape, generator=g) * std
    return out


def unet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    cfg = dict(UNET_CONFIG)
    unet = UNetModel(**cfg, device="cpu", operations=comfy.ops.disable_weight_init)
    return _randomize(unet.state_dict(), seed)


def controlnet_state(seed: int = 1) -> dict[str, torch.Tensor]:
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    cfg = {k: v for k, v in UNET_CONFIG.items() if k not in ("out_channels",)}
    net = ControlNet(hint_channels=3, **cfg, device="cpu", operations=comfy.ops.disable_weight_init)
    # Zero convs are zero at the start of ControlNet training; give them values here so
    # that the ControlNet changes the prediction, as a trained one does.
    return _randomize(net.state_dict(), seed)


def clip_state(seed: int = 2) -> dict[str, torch.Tensor]:
    import comfy.sd1_clip

    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    state = {k: v for k, v in clip.state_dict().items() if k.startswith("transformer.")}
    state = _randomize(state, seed)
    position = "transformer.text_model.embeddings.position_ids"
    if position in state:
        state.pop(position)
    return state


def vae_state(seed: int = 3) -> dict[str, torch.Tensor]:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=dict(VAE_CONFIG), embed_dim=4)
    return _randomize(vae.state_dict(), seed)


def save_checkpoint(path: Path, seed: int = 0) -> Path:
    """An SD1.5-layout single-file checkpoint: UNet (fp32), CLIP-L text encoder, VAE (fp16)."""
    from safetensors.torch import save_file

    state = {"model.diffusion_model." + k: v.contiguous() for k, v in unet_state(seed).items()}
    for prefix, part in (
        ("cond_stage_model.", clip_state(seed + 2)),
        ("first_stage_model.", vae_state(seed + 3)),
    ):
        state.update({prefix + k: v.half().contiguous() for k, v in part.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def save_controlnet(path: Path, seed: int = 1) -> Path:
    """The ControlNet in ``control_v11p_sd15_openpose.pth``'s layout (``control_model.``)."""
    state = {"control_model." + k: v for k, v in controlnet_state(seed).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, str(path))
    return path


def session_files(tmp_path_factory) -> tuple[Path, Path]:
    """The checkpoint and ControlNet, written once per test session."""
    cache = tmp_path_factory.getbasetemp() / "sd15_tiny"
    checkpoint, controlnet = cache / CHECKPOINT, cache / CONTROLNET
    if not checkpoint.exists():
        save_checkpoint(cache / "partial.safetensors").rename(checkpoint)
    if not controlnet.exists():
        save_controlnet(cache / "partial.pth").rename(controlnet)
    return checkpoint, controlnet


def install(tmp_path_factory, models_dir: Path) -> None:
    """Link (or copy) both files into a ComfyUI base directory's model folders, replacing
    empty placeholders of the same names."""
    checkpoint, controlnet = session_files(tmp_path_factory)
    for source, folder in ((checkpoint, "checkpoints"), (controlnet, "controlnet")):
        target = models_dir / folder / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.stat().st_size == source.stat().st_size:
            continue
        if target.exists():
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
