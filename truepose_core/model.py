"""TruePose on diffusers: TargetNet and SourceNet UNets, fusion, PoseEncoder, context.

The fusion runs inside the TargetNet's self-attention through attention processors that
hold no weights (the weights live in :attr:`TruePoseModel.fusion`), so diffusers' UNet code
is used as it is. The PoseEncoder's output is added to ``conv_in``'s output by a forward
hook that exists only for the duration of one call.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn

from .clip_regions import RegionEmbeddings
from .config import TruePoseConfig
from .context import ContextProjection
from .errors import BatchError
from .fusion import (
    FusionLayer,
    FusionState,
    LayerSource,
    SourceEncoding,
    apply_to_rows,
    build_layer_sources,
)
from .pose_encoder import PoseEncoder
from .unet_layers import AttentionLayer, select_layers, unet_attention_layers


@dataclass
class UNetCall:
    """Per-forward instructions for the processors; lives for one UNet call only."""

    capture: dict[str, torch.Tensor] | None = None
    fusion: dict[str, tuple[FusionLayer, LayerSource]] = field(default_factory=dict)
    conditional: torch.Tensor | None = None  # (N,) bool: rows that receive fusion


class TruePoseAttnProcessor:
    """diffusers attention processor: captures F' or fuses F into Fhat, then plain attention."""

    def __init__(self, name: str | None):
        self.name = name
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        truepose: UNetCall | None = None,
        **kwargs,
    ) -> torch.Tensor:
        if truepose is not None and self.name is not None:
            if truepose.capture is not None:
                truepose.capture[self.name] = hidden_states
            job = truepose.fusion.get(self.name)
            if job is not None:
                layer, source = job
                query, kv = apply_to_rows(layer, hidden_states, source, truepose.conditional)
                if kv is not query:
                    return self.inner(attn, query, kv, attention_mask, temb)
                hidden_states = query
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def install_processors(unet: UNet2DConditionModel, layers: list[AttentionLayer]) -> None:
    """Give every attention module of ``unet`` a TruePose processor (named for attn1 layers)."""
    names = {layer.module_path: layer.name for layer in unet_attention_layers(unet.config)}
    processors = {}
    for key in unet.attn_processors:
        module_path = key.removesuffix(".processor")
        processors[key] = TruePoseAttnProcessor(names.get(module_path))
    unet.set_attn_processor(processors)


class TruePoseModel(nn.Module):
    """The trainable part of TruePose (CLIP and the VAE stay outside, frozen)."""

    def __init__(
        self,
        config: TruePoseConfig,
        target_unet: UNet2DConditionModel,
        source_unet: UNet2DConditionModel,
    ):
        super().__init__()
        self.config = config
        self.target_unet = target_unet
        self.source_unet = source_unet
        self.layers = select_layers(unet_attention_layers(target_unet.config), config.layers)
        self.fusion = nn.ModuleDict(
            {layer.name: FusionLayer(layer, config) for layer in self.layers}
        )
        self.pose_encoder = PoseEncoder(
            target_unet.config.block_out_channels[0], config.pose_channels
        )
        self.context_proj = ContextProjection(
            config.clip_dim, target_unet.config.cross_attention_dim, config.context_tokens
        )
        install_processors(self.target_unet, self.layers)
        install_processors(self.source_unet, self.layers)

    @classmethod
    def from_unet(cls, config: TruePoseConfig, unet: UNet2DConditionModel) -> TruePoseModel:
        """Both UNets start from the same weights; fusion projections start from theirs."""
        model = cls(config, unet, copy.deepcopy(unet))
        model.init_fusion_from_unets()
        return model

    @torch.no_grad()
    def init_fusion_from_unets(self) -> None:
        modules = dict(self.target_unet.named_modules())
        source_modules = dict(self.source_unet.named_modules())
        for layer in self.layers:
            fusion = self.fusion[layer.name]
            target_attn = modules[layer.module_path]
            if fusion.hpfa is not None:
                fusion.hpfa.init_from_attention(source_modules[layer.module_path], target_attn)
            if fusion.caa is not None:
                fusion.caa.to_q.weight.copy_(target_attn.to_q.weight)

    # -- source side: once per source image ------------------------------------------------

    def encode_source(
        self,
        source_latents: torch.Tensor,
        regions: RegionEmbeddings,
        parsing: torch.Tensor,
    ) -> SourceEncoding:
        """Run the SourceNet once at timestep 0 on scaled source latents (B, 4, h, w)."""
        context = self.context_proj(regions.image_embeds.to(source_latents.dtype))
        call = UNetCall(capture={})
        timestep = torch.zeros(source_latents.shape[0], device=source_latents.device)
        self.source_unet(
            source_latents,
            timestep,
            encoder_hidden_states=context,
            cross_attention_kwargs={"truepose": call},
            return_dict=False,
        )
        wanted = {layer.name for layer in self.layers}
        return SourceEncoding(
            features={k: v for k, v in call.capture.items() if k in wanted},
            latent_hw=tuple(source_latents.shape[-2:]),
            parsing=parsing,
            region_embeds=regions.region_embeds,
            region_present=regions.region_present,
            image_embeds=regions.image_embeds,
            label_set=self.config.label_set,
        )

    def prepare(
        self,
        encoding: SourceEncoding,
        selection_masks: torch.Tensor,
        skeletons: torch.Tensor,
        source_rows: torch.Tensor | None = None,
    ) -> FusionState:
        """Everything that depends only on (source, target pose), for P pairs.

        ``selection_masks`` (P, H, W) and ``skeletons`` (P, 3, H, W) come from the target
        poses; ``source_rows`` (P,) says which source each pair uses (default: one source
        broadcast to every pose, or source i with pose i).
        """
        pairs = skeletons.shape[0]
        source_rows = default_source_rows(encoding.batch, pairs, source_rows, skeletons.device)
        from .parsing import get_label_set

        num_labels = get_label_set(self.config.label_set).num_labels
        layers = build_layer_sources(
            self.fusion, self.layers, encoding, selection_masks, source_rows, num_labels
        )
        context = self.context_proj(encoding.image_embeds[source_rows].to(skeletons.dtype))
        return FusionState(layers, self.pose_encoder(skeletons), context)

    # -- every step --------------------------------------------------------------------------

    def predict_noise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        state: FusionState,
        rows: torch.Tensor,
        conditional: torch.Tensor,
    ) -> torch.Tensor:
        """The TargetNet's noise prediction for N rows.

        Row r uses pair ``rows[r]`` of ``state``: its pose always, and its source context and
        fusion only where ``conditional[r]``; other rows get the zero context and no fusion
        (the unconditional branch of eq. 11).
        """
        conditional = conditional.to(device=latents.device, dtype=torch.bool)
        rows = rows.to(latents.device)
        context = state.context[rows] * conditional[:, None, None].to(state.context.dtype)
        cond_rows = rows[conditional]
        call = UNetCall(conditional=conditional)
        if cond_rows.numel():
            call.fusion = {
                name: (self.fusion[name], src.index(cond_rows))
                for name, src in state.layers.items()
            }
        pose = None if state.pose_features is None else state.pose_features[rows]
        with self._pose_residual(pose):
            return self.target_unet(
                latents,
                timesteps,
                encoder_hidden_states=context,
                cross_attention_kwargs={"truepose": call},
                return_dict=False,
            )[0]

    def plain_noise(self, latents: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor):
        """The TargetNet alone (no pose, no fusion): the identity a fresh model must match."""
        return self.target_unet(
            latents, timesteps, encoder_hidden_states=context, return_dict=False
        )[0]

    @contextmanager
    def _pose_residual(self, pose: torch.Tensor | None) -> Iterator[None]:
        if pose is None:
            yield
            return

        def add_pose(_module, _inputs, output):
            return output + pose.to(output.dtype)

        handle = self.target_unet.conv_in.register_forward_hook(add_pose)
        try:
            yield
        finally:
            handle.remove()


def default_source_rows(
    sources: int, pairs: int, source_rows: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """Pair i uses source i; one source serves every pose. Other mixes must be explicit."""
    if source_rows is not None:
        source_rows = torch.as_tensor(source_rows, device=device, dtype=torch.long)
        if source_rows.shape != (pairs,) or bool((source_rows >= sources).any()):
            raise BatchError(
                f"source_rows: expected {pairs} indices below {sources}, got {source_rows.tolist()}"
            )
        return source_rows
    if sources == pairs:
        return torch.arange(pairs, device=device)
    if sources == 1:
        return torch.zeros(pairs, dtype=torch.long, device=device)
    raise BatchError(
        f"{sources} source images and {pairs} target poses: give one source for many poses, "
        "as many sources as poses, or one pose for every source"
    )
