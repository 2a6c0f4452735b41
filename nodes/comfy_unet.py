"""The checkpoint's diffusers UNets as ComfyUI models (SD1.5 layout).

:func:`comfy_unet_config` turns a diffusers UNet config into ComfyUI's ``unet_config``, and
:func:`build_comfy_unet` builds the ComfyUI model from it and loads the diffusers weights
through ``comfy.utils.unet_to_diffusers``. Everything SD1.5-specific on the ComfyUI side
lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..truepose_core.errors import CheckpointError
from ..truepose_core.sampling import SD15_SCHEDULER

#: ComfyUI's SD1.5 UNet hard-codes 32 groups in every GroupNorm.
COMFY_GROUP_NORM_GROUPS = 32


def _per_level(value: Any, levels: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [value] * levels
    values = [int(v) for v in value]
    if len(values) != levels:
        raise CheckpointError(
            f"unet_config {what}: {values} has not one entry per level ({levels})"
        )
    return values


def comfy_unet_config(diffusers_config: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """ComfyUI ``unet_config`` and head count of an SD1.5-layout diffusers UNet config.

    ComfyUI lists ``transformer_depth`` per input res block, level 0 first, and
    ``transformer_depth_output`` per output res block (``num_res_blocks + 1`` a level), also
    level 0 first: it consumes that list from its end, deepest level first.
    """
    cfg = dict(diffusers_config)
    channels = [int(c) for c in cfg["block_out_channels"]]
    levels = len(channels)
    down, up = list(cfg["down_block_types"]), list(cfg["up_block_types"])
    if len(down) != levels or len(up) != levels:
        raise CheckpointError(
            f"unet_config: {len(down)} down / {len(up)} up blocks for {levels} levels"
        )
    if any("CrossAttn" not in up[levels - 1 - i] and "CrossAttn" in down[i] for i in range(levels)):
        raise CheckpointError("unet_config: down and up blocks disagree on where attention is")
    mid = cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid != "UNetMidBlock2DCrossAttn":
        raise CheckpointError(
            f"unet_config: mid block {mid!r}; ComfyUI's SD1.5 UNet has UNetMidBlock2DCrossAttn"
        )
    for key in ("only_cross_attention", "dual_cross_attention", "time_cond_proj_dim"):
        if cfg.get(key):
            raise CheckpointError(f"unet_config: {key}={cfg[key]!r} has no SD1.5 equivalent")
    if cfg.get("reverse_transformer_layers_per_block"):
        raise CheckpointError("unet_config: reverse_transformer_layers_per_block is not supported")
    base = channels[0]
    if any(c % base for c in channels):
        raise CheckpointError(f"unet_config: block_out_channels {channels} not multiples of {base}")
    per_block = _per_level(cfg.get("layers_per_block", 2), levels, "layers_per_block")
    depth = _per_level(cfg.get("transformer_layers_per_block", 1), levels, "transformer depth")
    heads_value = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
    heads = set(_per_level(heads_value, levels, "attention_head_dim"))
    if len(heads) != 1:
        raise CheckpointError(f"unet_config: head counts {sorted(heads)} differ between levels")
    transformer_depth: list[int] = []
    transformer_depth_output: list[int] = []
    for level in range(levels):
        d_in = depth[level] if "CrossAttn" in down[level] else 0
        d_out = depth[level] if "CrossAttn" in up[levels - 1 - level] else 0
        transformer_depth += [d_in] * per_block[level]
        transformer_depth_output += [d_out] * (per_block[level] + 1)
    unet_config = {
        "use_checkpoint": False,
        "image_size": 32,
        "in_channels": int(cfg.get("in_channels", 4)),
        "out_channels": int(cfg.get("out_channels", 4)),
        "model_channels": base,
        "num_res_blocks": per_block,
        "channel_mult": [c // base for c in channels],
        "transformer_depth": transformer_depth,
        "transformer_depth_output": transformer_depth_output,
        "transformer_depth_middle": depth[-1],
        "context_dim": int(cfg["cross_attention_dim"]),
        "use_spatial_transformer": True,
        "use_linear_in_transformer": False,
        "legacy": False,
        "adm_in_channels": None,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    return unet_config, heads.pop()


def _group_norm_operations(base: type, groups: int) -> type:
    """ComfyUI operations whose GroupNorm uses ``groups`` groups (passed as custom_operations).

    ComfyUI's UNet asks for 32 groups everywhere; a small model trained with another count
    (the tiny presets use 8) gets the same math through this public hook.
    """

    class GroupNorm(base.GroupNorm):
        def __init__(self, num_groups, num_channels, *args, **kwargs):
            super().__init__(groups, num_channels, *args, **kwargs)

    return type(f"TruePoseGroupNorm{groups}Ops", (base,), {"GroupNorm": GroupNorm})


def build_comfy_unet(
    diffusers_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    latent_scale: float,
    what: str,
    latent_rgb: tuple[torch.Tensor, torch.Tensor] | None = None,
    beta_end: float = SD15_SCHEDULER["beta_end"],
):
    """A ComfyUI ModelPatcher around an SD1.5-layout model carrying diffusers weights.

    A UNet for a VAE with other than SD's 4 latent channels (the PatchVAE) gets a latent
    format with its channel count, and ``latent_rgb`` (factors, bias) for the previews.
    ``beta_end`` is the end of the model's noise schedule (SD1.5's "scaled_linear"
    otherwise), so that every ComfyUI sampler and scheduler uses the schedule it was
    trained with.
    """
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops
    import comfy.supported_models
    import comfy.utils

    unet_config, heads = comfy_unet_config(diffusers_config)
    model_config = comfy.supported_models.SD15(unet_config)
    model_config.unet_config["num_heads"] = heads
    model_config.unet_config["num_head_channels"] = -1
    model_config.latent_format.scale_factor = float(latent_scale)
    # ComfyUI's "linear" schedule is diffusers' "scaled_linear"; only its end may differ.
    model_config.sampling_settings = {
        **model_config.sampling_settings,
        "linear_start": SD15_SCHEDULER["beta_start"],
        "linear_end": float(beta_end),
    }
    channels = int(diffusers_config.get("in_channels", 4))
    if channels != model_config.latent_format.latent_channels:
        fmt = model_config.latent_format
        fmt.latent_channels = channels
        fmt.taesd_decoder_name = None  # SD's TAESD reads 4 channels
        fmt.latent_rgb_factors = fmt.latent_rgb_factors_bias = None
        if latent_rgb is not None:
            factors, bias = latent_rgb
            # ComfyUI's previews map latents to -1..1 colours: x0 @ factors + bias.
            fmt.latent_rgb_factors = (factors * float(latent_scale) ** -1).tolist()
            fmt.latent_rgb_factors_bias = bias.tolist()
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    params = sum(v.numel() for v in state_dict.values())
    supported = list(model_config.supported_inference_dtypes)
    unet_dtype = mm.unet_dtype(model_params=params, supported_dtypes=supported)
    manual_cast = mm.unet_manual_cast(unet_dtype, load_device, supported)
    model_config.set_inference_dtype(unet_dtype, manual_cast)
    groups = int(diffusers_config.get("norm_num_groups", COMFY_GROUP_NORM_GROUPS))
    if groups != COMFY_GROUP_NORM_GROUPS:
        base = comfy.ops.pick_operations(unet_dtype, manual_cast, load_device=load_device)
        model_config.custom_operations = _group_norm_operations(base, groups)
    model = model_config.get_model({}, "", device=offload_device)
    if channels != 4:
        # ComfyUI takes "more than 4 input channels" for an inpainting UNet that concatenates
        # a mask and a masked image; this UNet reads exactly its VAE's latent channels.
        model.concat_keys = ()
    mapping = comfy.utils.unet_to_diffusers(model_config.unet_config)  # diffusers -> ComfyUI
    converted = {mapping[k]: v for k, v in state_dict.items() if k in mapping}
    unmapped = sorted(set(state_dict) - set(mapping))
    expected = model.diffusion_model.state_dict()
    missing = sorted(set(expected) - set(converted))
    if unmapped or missing:
        raise CheckpointError(
            f"{what}: the UNet does not map onto ComfyUI's SD1.5 UNet (unmapped diffusers keys "
            f"{unmapped[:8]}, ComfyUI keys without weights {missing[:8]})"
        )
    model.diffusion_model.load_state_dict(converted, strict=True)
    model.to(offload_device)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=load_device, offload_device=offload_device
    )


def model_dtype(patcher) -> torch.dtype:
    """The dtype a ComfyUI model computes in."""
    model = patcher.model
    return model.manual_cast_dtype or model.get_dtype()


def layer_key(extra_options: Mapping[str, Any]) -> str | None:
    """``input_1_0``-style name of the self-attention layer an attn1 patch is called for."""
    block = extra_options.get("block")
    if block is None:
        return None
    return f"{block[0]}_{block[1]}_{extra_options.get('block_index', 0)}"
