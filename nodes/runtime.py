"""TruePose inside ComfyUI: the loaded checkpoint as ComfyUI models, and the per-run patch.

What lives here is translation between the two hosts; the method itself (fusion, pose
encoder, context projection, selection masks) is called from ``truepose_core``:

- :func:`comfy_unet_config` turns the checkpoint's diffusers UNet config into ComfyUI's
  ``unet_config``, and :func:`build_comfy_unet` builds an SD1.5-layout ComfyUI model from it
  and loads the diffusers weights through ``comfy.utils.unet_to_diffusers``.
- :class:`TruePoseHandle` is the value on a ``TRUEPOSE`` socket: the SourceNet and the
  TruePose modules (fusion, PoseEncoder, context projection) as ModelPatchers, so ComfyUI's
  model management moves and offloads them, plus the embedded CLIP tower, if any.
- :class:`EmbeddedVAE` gives a checkpoint's own diffusers VAE the ``encode``/``decode``
  interface of ``comfy.sd.VAE``, so the stock VAE Encode / VAE Decode nodes take it.
- :class:`FusionPatch` is what ``TruePose_HPFAPatchModel`` attaches to a MODEL clone: an
  ``attn1_patch`` that calls :func:`truepose_core.fusion.apply_to_rows` on the conditional
  rows and an ``input_block_patch`` that adds the PoseEncoder output after ``conv_in``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..truepose_core.checkpoint import LoadedTruePose, load_truepose
from ..truepose_core.clip_regions import CLIP_MEAN, CLIP_STD, ClipRegionEncoder
from ..truepose_core.config import TruePoseConfig
from ..truepose_core.errors import BatchError, CheckpointError, DependencyError, PoseError
from ..truepose_core.fusion import FusionState, LayerSource, SourceEncoding, apply_to_rows
from ..truepose_core.keypoints import Pose, require_visible
from ..truepose_core.model import TruePoseModel, default_source_rows
from ..truepose_core.pipeline import TruePosePipeline
from ..truepose_core.unet_layers import AttentionLayer

#: ComfyUI's SD1.5 UNet hard-codes 32 groups in every GroupNorm.
COMFY_GROUP_NORM_GROUPS = 32
#: Key of the TruePose patch in a MODEL's ``transformer_options``.
PATCH_KEY = "truepose"
#: Key of the CAA settings a ``TruePose_CAAPatch`` node leaves for the HPFA patch.
CAA_KEY = "truepose_caa"
#: Key under which the TruePose modules ride along with a patched MODEL.
ADDITIONAL_MODELS_KEY = "truepose"


# ---------------------------------------------------------------------------------------------
# The checkpoint's UNets as ComfyUI models


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
):
    """A ComfyUI ModelPatcher around an SD1.5-layout model carrying diffusers weights.

    A UNet for a VAE with other than SD's 4 latent channels (the PatchVAE) gets a latent
    format with its channel count, and ``latent_rgb`` (factors, bias) for the previews.
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


# ---------------------------------------------------------------------------------------------
# TRUEPOSE


@dataclass(eq=False)
class TruePoseHandle:
    """The value on a ``TRUEPOSE`` socket (read-only once built).

    ``model`` is the checkpoint's :class:`TruePoseModel` with its UNets removed (they live
    on as ComfyUI models): ``fusion``, ``pose_encoder``, ``context_proj``, ``layers``,
    ``config``; ``modules`` is its ModelPatcher. ``source`` is the SourceNet as a ComfyUI
    model; ``clip`` the embedded open_clip tower (None for full-size checkpoints).
    """

    name: str
    config: TruePoseConfig
    model: TruePoseModel
    modules: Any  # comfy.model_patcher.ModelPatcher around ``model``
    source: Any  # comfy.model_patcher.ModelPatcher: the SourceNet
    clip: ClipRegionEncoder | None
    clip_patcher: Any | None

    @property
    def layers(self) -> list[AttentionLayer]:
        return list(self.model.layers)

    def load_modules(self, *extra) -> torch.device:
        """Put the TruePose modules (and ``extra`` patchers) on ComfyUI's compute device."""
        import comfy.model_management as mm

        mm.load_models_gpu([self.modules, *extra])
        return self.device

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class ModuleHolder(nn.Module):
    """A plain container for a diffusers module: ModelPatcher writes ``model.device``, which
    diffusers models expose as a read-only property."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner


def _patcher(module: nn.Module, load_device, offload_device):
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(
        module.to(offload_device), load_device=load_device, offload_device=offload_device
    )


def load_handle(path: str, name: str) -> tuple[Any, TruePoseHandle, Any]:
    """(TargetNet MODEL, TRUEPOSE, VAE) of a TruePose checkpoint file."""
    # The diffusers UNets are never built: their weights go straight into ComfyUI's UNets.
    return handle_from_loaded(load_truepose(path, build_unets=False), name)


def handle_from_loaded(loaded: LoadedTruePose, name: str) -> tuple[Any, TruePoseHandle, Any]:
    """(TargetNet MODEL, TRUEPOSE, VAE) of a checkpoint loaded with ``build_unets=False``.

    ``loaded.unet_states`` holds the two UNets' diffusers state dicts; they are consumed
    (popped) as ComfyUI's UNets take them over. A :class:`LoadedTruePose` built in memory
    with the same fields (e.g. random weights for a benchmark) works as well as one read
    from a file.
    """
    import comfy.model_management as mm

    if loaded.unet_states is None:
        raise CheckpointError(
            f"{name}: no UNet state dicts to hand to ComfyUI (load with build_unets=False)"
        )
    model: TruePoseModel = loaded.model
    states = loaded.unet_states
    scale = loaded.config.latent_scale
    latent_rgb = None
    if loaded.vae is not None and hasattr(loaded.vae, "latent_rgb"):
        latent_rgb = loaded.vae.latent_rgb()
    target = build_comfy_unet(
        loaded.unet_config, states.pop("target_unet"), scale, f"{name} (TargetNet)", latent_rgb
    )
    source = build_comfy_unet(
        loaded.unet_config, states.pop("source_unet"), scale, f"{name} (SourceNet)"
    )
    # What remains of the TruePose model is fusion, PoseEncoder and context projection.
    load_device, offload = mm.get_torch_device(), mm.unet_offload_device()
    modules = _patcher(model.eval().requires_grad_(False), load_device, offload)
    clip = clip_patcher = None
    if loaded.clip is not None:
        clip = ClipRegionEncoder(loaded.clip, loaded.config.clip_image_size).eval()
        clip_patcher = _patcher(clip, mm.text_encoder_device(), mm.text_encoder_offload_device())
    handle = TruePoseHandle(name, loaded.config, model, modules, source, clip, clip_patcher)
    vae = EmbeddedVAE(loaded.vae) if loaded.vae is not None else MissingVAE(name)
    return target, handle, vae


# ---------------------------------------------------------------------------------------------
# VAE


class EmbeddedVAE:
    """``comfy.sd.VAE``'s encode/decode contract over a checkpoint's diffusers AutoencoderKL.

    ``encode``: IMAGE ``[B, H, W, 3]`` in 0..1 -> unscaled latents (the distribution's mean),
    centre-cropped to multiples of 8 as ComfyUI's VAE does; ``decode``: unscaled latents ->
    IMAGE. ComfyUI's own VAE class cannot hold it: its GroupNorms are fixed at 32 groups,
    which the small models' 16-channel VAE blocks cannot have.
    """

    latent_dim = 2
    output_channels = 3

    def __init__(self, vae: nn.Module):
        import comfy.model_management as mm

        from truepose_core.patch_vae import vae_geometry

        factor, self.latent_channels = vae_geometry(vae)
        self.downscale_ratio = self.upscale_ratio = factor
        self.first_stage_model = vae.eval().requires_grad_(False)
        self.device = mm.vae_device()
        self.output_device = mm.intermediate_device()
        self.patcher = _patcher(ModuleHolder(vae), self.device, mm.vae_offload_device())

    def _load(self) -> tuple[torch.device, torch.dtype]:
        import comfy.model_management as mm

        mm.load_models_gpu([self.patcher])
        param = next(self.first_stage_model.parameters())
        return param.device, param.dtype

    def spacial_compression_encode(self) -> int:
        return self.downscale_ratio

    def spacial_compression_decode(self) -> int:
        return self.upscale_ratio

    def temporal_compression_decode(self):
        return None

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self.downscale_ratio
        h, w = pixels.shape[1] // f * f, pixels.shape[2] // f * f
        top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
        pixels = pixels[:, top : top + h, left : left + w, :3]
        device, dtype = self._load()
        x = pixels.movedim(-1, 1).to(device, dtype) * 2 - 1
        latents = self.first_stage_model.encode(x).latent_dist.mean
        return latents.to(self.output_device, torch.float32)

    @torch.no_grad()
    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        device, dtype = self._load()
        x = self.first_stage_model.decode(samples.to(device, dtype)).sample
        return ((x.float() + 1) / 2).clamp(0, 1).movedim(1, -1).to(self.output_device)


class MissingVAE:
    """The VAE output of a checkpoint that embeds none: every use says what to connect."""

    def __init__(self, name: str):
        self.name = name

    def _refuse(self, *_args, **_kwargs):
        raise CheckpointError(
            f"{self.name}: this TruePose checkpoint embeds no VAE; connect ComfyUI's Load VAE "
            "(Stable Diffusion 1.5's vae-ft-mse-840000-ema-pruned.safetensors) instead"
        )

    encode = decode = _refuse


# ---------------------------------------------------------------------------------------------
# CLIP vision


class ComfyClipVisual(nn.Module):
    """ComfyUI's CLIP_VISION as the ``visual`` tower :class:`ClipRegionEncoder` expects.

    ClipRegionEncoder pads each crop to a square, resizes it to the tower's input size and
    normalises it with CLIP's mean and std; this adapter undoes the normalisation and lets
    ``encode_image(crop=False)`` apply its own (the same constants), then returns the pooled,
    projected ``image_embeds``.
    """

    def __init__(self, clip_vision):
        super().__init__()
        self.clip_vision = clip_vision
        self.inner = clip_vision.model  # parameters give ClipRegionEncoder a dtype
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(normalized.device, normalized.dtype)
        std = self.std.to(normalized.device, normalized.dtype)
        images = (normalized * std + mean).clamp(0, 1).movedim(1, -1).float()
        return self.clip_vision.encode_image(images, crop=False).image_embeds.float()


def region_encoder(handle: TruePoseHandle, clip_vision) -> ClipRegionEncoder:
    """The CLIP region encoder: ComfyUI's CLIP_VISION when given, else the embedded tower."""
    if clip_vision is not None:
        size = int(getattr(clip_vision, "image_size", handle.config.clip_image_size))
        return ClipRegionEncoder(ComfyClipVisual(clip_vision), size)
    if handle.clip is None:
        raise DependencyError(
            f"{handle.name}: this checkpoint embeds no CLIP image encoder; connect a Load CLIP "
            f"Vision node with {handle.config.clip_model} (e.g. CLIP-ViT-H-14-laion2B-s32B-"
            "b79K.safetensors in models/clip_vision) to clip_vision"
        )
    import comfy.model_management as mm

    mm.load_models_gpu([handle.clip_patcher])
    return handle.clip


# ---------------------------------------------------------------------------------------------
# SourceNet


def layer_key(extra_options: Mapping[str, Any]) -> str | None:
    """``input_1_0``-style name of the self-attention layer an attn1 patch is called for."""
    block = extra_options.get("block")
    if block is None:
        return None
    return f"{block[0]}_{block[1]}_{extra_options.get('block_index', 0)}"


def model_dtype(patcher) -> torch.dtype:
    model = patcher.model
    return model.manual_cast_dtype or model.get_dtype()


@torch.no_grad()
def source_features(
    handle: TruePoseHandle, latents: torch.Tensor, context: torch.Tensor
) -> dict[str, torch.Tensor]:
    """F' per fused layer: the SourceNet's norm1 outputs, at timestep 0 on scaled latents."""
    import comfy.model_management as mm

    wanted = {layer.name for layer in handle.layers}
    captured: dict[str, torch.Tensor] = {}

    def record(n, context_attn1, value_attn1, extra_options):
        name = layer_key(extra_options)
        if name in wanted:
            captured[name] = n.detach().float().to(mm.intermediate_device())
        return n, context_attn1, value_attn1

    patcher = handle.source.clone()
    patcher.set_model_attn1_patch(record)
    mm.load_models_gpu([patcher])
    device, dtype = patcher.load_device, model_dtype(patcher)
    transformer_options = dict(patcher.model_options.get("transformer_options", {}))
    timesteps = torch.zeros(latents.shape[0], device=device)
    patcher.model.diffusion_model(
        latents.to(device, dtype),
        timesteps,
        context=context.to(device, dtype),
        transformer_options=transformer_options,
    )
    missing = sorted(wanted - set(captured))
    if missing:
        raise CheckpointError(f"{handle.name}: the SourceNet has no self-attention at {missing}")
    return captured


def encoding_to(encoding: SourceEncoding, device: torch.device) -> SourceEncoding:
    return dataclasses.replace(
        encoding,
        features={k: v.to(device) for k, v in encoding.features.items()},
        parsing=encoding.parsing.to(device),
        region_embeds=encoding.region_embeds.to(device),
        region_present=encoding.region_present.to(device),
        image_embeds=encoding.image_embeds.to(device),
    )


# ---------------------------------------------------------------------------------------------
# The patch


def check_target_poses(poses: Sequence[Pose], what: str = "target pose") -> list[Pose]:
    """A non-empty list of poses, each with at least one visible joint, or a PoseError."""
    if isinstance(poses, Pose):
        poses = [poses]
    if not isinstance(poses, (list, tuple)) or not poses:
        raise PoseError(
            f"{what}: no pose arrived; connect a TruePose pose node (e.g. Pose from "
            "POSE_KEYPOINT) that outputs at least one pose"
        )
    for i, pose in enumerate(poses):
        if not isinstance(pose, Pose):
            raise PoseError(
                f"{what} {i}: got {type(pose).__name__}, expected a TruePose pose; connect a "
                "TruePose pose node"
            )
    require_visible(poses, what)
    return list(poses)


@contextlib.contextmanager
def fusion_settings(
    model: TruePoseModel, sigma: float, delta: float, caa_regions: int | None
) -> Iterator[None]:
    """Temporarily give every fusion layer these eq. 6 weights and CAA region count."""
    saved = []
    for layer in model.fusion.values():
        hpfa, caa = layer.hpfa, layer.caa
        saved.append(
            (
                layer,
                None if hpfa is None else (hpfa.sigma, hpfa.delta),
                None if caa is None else caa.regions,
            )
        )
        if hpfa is not None:
            hpfa.sigma, hpfa.delta = float(sigma), float(delta)
        if caa is not None and caa_regions is not None:
            caa.regions = int(caa_regions)
    try:
        yield
    finally:
        for layer, hd, regions in saved:
            if hd is not None:
                layer.hpfa.sigma, layer.hpfa.delta = hd
            if layer.caa is not None:
                layer.caa.regions = regions


@torch.no_grad()
def prepare_state(
    handle: TruePoseHandle,
    encoding: SourceEncoding,
    poses: Sequence[Pose],
    *,
    sigma: float,
    delta: float,
    caa: bool,
    caa_regions: int | None,
) -> FusionState:
    """The (source, pose) precompute of :meth:`TruePoseModel.prepare`, on ComfyUI's device.

    Selection masks and skeletons come from :meth:`TruePosePipeline.prepare`, the very code
    the diffusers path runs; one source with N poses gives N pairs from one SourceNet pass.
    """
    import comfy.model_management as mm

    device = handle.load_modules()
    h, w = encoding.parsing.shape[-2:]
    helper = TruePosePipeline(handle.model, vae=None, clip=None)
    with fusion_settings(handle.model, sigma, delta, caa_regions):
        state = helper.prepare(encoding_to(encoding, device), list(poses), (h, w))
    if not caa:
        state.layers = {k: dataclasses.replace(v, caa=None) for k, v in state.layers.items()}
    return state_to(state, mm.intermediate_device())


def _source_to(src: LayerSource, device, dtype=None) -> LayerSource:
    def move(obj):
        if obj is None:
            return None
        changes = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, torch.Tensor):
                cast = dtype if dtype is not None and value.is_floating_point() else None
                changes[f.name] = value.to(device=device, dtype=cast)
        return dataclasses.replace(obj, **changes)

    ref = src.reference
    if ref is not None:
        ref = ref.to(device=device, dtype=dtype)
    return LayerSource(move(src.hpfa), move(src.caa), ref)


def state_to(state: FusionState, device, dtype=None) -> FusionState:
    pose = state.pose_features
    return FusionState(
        {k: _source_to(v, device, dtype) for k, v in state.layers.items()},
        None if pose is None else pose.to(device=device, dtype=dtype),
        state.context.to(device=device, dtype=dtype),
        {k: v.to(device) for k, v in state.extras.items()},
    )


class FusionPatch:
    """The ``attn1_patch`` and ``input_block_patch`` of one patched MODEL.

    Holds the precomputed :class:`FusionState` of P (source, pose) pairs. A UNet batch is
    ``len(cond_or_uncond)`` chunks of the latent batch B; row i of each chunk uses pair i
    (B == P) or pair 0 (P == 1). Only chunks whose ``cond_or_uncond`` entry is 0 (the
    positive branch) receive the fusion; the pose residual goes to every row. ``strength``
    scales the fusion residual: ``F + strength * (Fhat - F)`` (0 = TargetNet alone, 1 = the
    method); the pose encoder is not scaled.

    ``clone()`` deep-copies model_options: this object (and the modules it reaches) is
    shared between clones instead of copied.
    """

    def __init__(self, handle: TruePoseHandle, state: FusionState, strength: float):
        self.handle = handle
        self.state = state
        self.strength = float(strength)
        self._moved: dict[tuple, FusionState] = {}
        self._sources: dict[tuple, LayerSource] = {}

    def __deepcopy__(self, memo):
        return self

    @property
    def pairs(self) -> int:
        return self.state.batch

    def _state_on(self, device: torch.device, dtype: torch.dtype) -> FusionState:
        key = (str(device), dtype)
        if key not in self._moved:
            self._moved.clear()
            self._sources.clear()
            self._moved[key] = state_to(self.state, device, dtype)
        return self._moved[key]

    def rows(self, batch: int, cond_or_uncond: Sequence[int] | None, device):
        """(pair index per UNet row, conditional flag per row) for a UNet batch."""
        chunks = list(cond_or_uncond) if cond_or_uncond else [0]
        if batch % len(chunks):
            raise BatchError(f"UNet batch {batch} is not {len(chunks)} equal cond/uncond chunks")
        per_chunk = batch // len(chunks)
        if self.pairs == per_chunk:
            pair = torch.arange(per_chunk, device=device)
        elif self.pairs == 1:
            pair = torch.zeros(per_chunk, dtype=torch.long, device=device)
        else:
            raise BatchError(
                f"latent batch {per_chunk} does not fit the {self.pairs} (source, pose) pairs of "
                "the TruePose patch; use a latent batch of 1 or of the number of target poses"
            )
        rows = pair.repeat(len(chunks))
        flags = torch.tensor([c == 0 for c in chunks], device=device).repeat_interleave(per_chunk)
        return rows, flags

    def _fusion_dtype(self) -> torch.dtype:
        return self.handle.dtype

    def attn1(self, n, context_attn1, value_attn1, extra_options):
        name = layer_key(extra_options)
        if name not in self.state.layers or self.strength == 0:
            return n, context_attn1, value_attn1
        rows, conditional = self.rows(n.shape[0], extra_options.get("cond_or_uncond"), n.device)
        if not bool(conditional.any()):
            return n, context_attn1, value_attn1
        dtype = self._fusion_dtype()
        cond_rows = rows[conditional]
        key = (name, str(n.device), tuple(cond_rows.tolist()))
        source = self._sources.get(key)
        if source is None:
            state = self._state_on(n.device, dtype)
            source = self._sources[key] = state.layers[name].index(cond_rows)
        layer = self.handle.model.fusion[name]
        hidden = n.to(dtype)
        query, kv = apply_to_rows(layer, hidden, source, conditional)
        if kv is query:
            if self.strength != 1:
                query = hidden + self.strength * (query - hidden)
            fused = query.to(n.dtype)
            return fused, fused, fused
        return query.to(n.dtype), kv.to(n.dtype), kv.to(n.dtype)

    def input_block(self, h, transformer_options):
        if transformer_options.get("block") != ("input", 0) or self.state.pose_features is None:
            return h
        rows, _ = self.rows(h.shape[0], transformer_options.get("cond_or_uncond"), h.device)
        pose = self._state_on(h.device, self._fusion_dtype()).pose_features[rows]
        if pose.shape[-2:] != h.shape[-2:]:
            raise BatchError(
                f"latent {h.shape[-2]}x{h.shape[-1]} differs from the target pose's latent "
                f"grid {pose.shape[-2]}x{pose.shape[-1]}: generate at the source image's size"
            )
        return h + pose.to(h.dtype)


def patch_model(model, handle: TruePoseHandle, state: FusionState, strength: float):
    """A clone of ``model`` carrying the TruePose patch; ``model`` itself is left as it was."""
    patch = FusionPatch(handle, state, strength)
    patched = model.clone()
    patched.set_model_attn1_patch(patch.attn1)
    patched.set_model_input_block_patch(patch.input_block)
    patched.model_options.setdefault("transformer_options", {})[PATCH_KEY] = patch
    patched.set_additional_models(ADDITIONAL_MODELS_KEY, [handle.modules])
    return patched


def find_patch(model) -> FusionPatch | None:
    return model.model_options.get("transformer_options", {}).get(PATCH_KEY)


@torch.no_grad()
def source_context(handle: TruePoseHandle, encoding: SourceEncoding, batch: int) -> torch.Tensor:
    """Conditional cross-attention context (batch, T, D): the projected whole-image CLIP."""
    import comfy.model_management as mm

    device = handle.load_modules()
    rows = default_source_rows(encoding.batch, batch, None, device)
    embeds = encoding.image_embeds.to(device)[rows].to(handle.dtype)
    return handle.model.context_proj(embeds).float().to(mm.intermediate_device())


def find_caa_settings(model) -> dict[str, Any]:
    """CAA settings left by a ``TruePose_CAAPatch`` node; default: on, the checkpoint's K."""
    found = model.model_options.get("transformer_options", {}).get(CAA_KEY)
    return dict(found) if found else {"enabled": True, "regions": None}
