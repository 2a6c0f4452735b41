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
from .errors import BatchError, ConfigError
from .fusion import (
    FusionLayer,
    FusionSettings,
    FusionState,
    LayerSource,
    SourceEncoding,
    apply_to_rows,
    build_layer_sources,
)
from .pose_encoder import PoseEncoder
from .unet_layers import AttentionLayer, select_layers, unet_attention_layers
from .variants import variant_class


@dataclass
class UNetCall:
    """Per-forward instructions for the processors; lives for one UNet call only."""

    capture: dict[str, torch.Tensor] | None = None
    fusion: dict[str, tuple[FusionLayer, LayerSource]] = field(default_factory=dict)
    conditional: torch.Tensor | None = None  # (N,) bool: rows that receive fusion
    strength: float = 1.0


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
                query, kv = apply_to_rows(
                    layer, hidden_states, source, truepose.conditional, truepose.strength
                )
                return self.inner(attn, query, kv, attention_mask, temb)
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
    """The trainable part of TruePose (CLIP and the VAE stay outside, frozen).

    The fusion variant (``config.fusion_mode``) decides whether there is a SourceNet
    (``source_unet`` is None without one) and a context projection (``context_proj`` is
    None when the conditional context is zeros, as for "pose_only").
    """

    def __init__(
        self,
        config: TruePoseConfig,
        target_unet: UNet2DConditionModel,
        source_unet: UNet2DConditionModel | None,
    ):
        super().__init__()
        variant = variant_class(config.fusion_mode)
        if (source_unet is not None) != variant.uses_source_net:
            needs = "needs a SourceNet" if variant.uses_source_net else "has no SourceNet"
            raise ConfigError(f"fusion_mode {config.fusion_mode!r} {needs}")
        self.config = config
        self.target_unet = target_unet
        self.source_unet = source_unet
        self.layers = select_layers(unet_attention_layers(target_unet.config), config.layers)
        self.fusion = nn.ModuleDict({layer.name: variant(layer, config) for layer in self.layers})
        self.pose_encoder = PoseEncoder(
            target_unet.config.block_out_channels[0], config.pose_channels
        )
        #: (tokens, width) of the cross-attention context.
        width = int(target_unet.config.cross_attention_dim)
        self.context_shape = (config.context_tokens, width)
        self.context_proj = None
        if variant.uses_source_context:
            self.context_proj = ContextProjection(config.clip_dim, width, config.context_tokens)
        install_processors(self.target_unet, self.layers)
        if self.source_unet is not None:
            install_processors(self.source_unet, self.layers)

    @classmethod
    def from_unet(cls, config: TruePoseConfig, unet: UNet2DConditionModel) -> TruePoseModel:
        """Both UNets start from the same weights; fusion projections start from theirs."""
        source = copy.deepcopy(unet) if variant_class(config.fusion_mode).uses_source_net else None
        model = cls(config, unet, source)
        model.init_fusion_from_unets()
        return model

    @torch.no_grad()
    def init_fusion_from_unets(self) -> None:
        modules = dict(self.target_unet.named_modules())
        source_modules = {} if self.source_unet is None else dict(self.source_unet.named_modules())
        for layer in self.layers:
            self.fusion[layer.name].init_from_unets(
                source_modules.get(layer.module_path), modules[layer.module_path]
            )

    def source_context(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The conditional cross-attention context (B, T, D) of whole-image CLIP embeddings.

        The projected embedding, or zeros for variants without a source context.
        """
        if self.context_proj is None:
            return image_embeds.new_zeros(image_embeds.shape[0], *self.context_shape)
        return self.context_proj(image_embeds)

    # -- source side: once per source image ------------------------------------------------

    def encode_source(
        self,
        source_latents: torch.Tensor,
        regions: RegionEmbeddings,
        parsing: torch.Tensor,
    ) -> SourceEncoding:
        """Run the SourceNet once at timestep 0 on scaled source latents (B, 4, h, w).

        Variants without a SourceNet get no features; the CLIP regions are kept either way.
        """
        call = UNetCall(capture={})
        if self.source_unet is not None:
            context = self.source_context(regions.image_embeds.to(source_latents.dtype))
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
        *,
        settings: FusionSettings | None = None,
    ) -> FusionState:
        """Everything that depends only on (source, target pose), for P pairs.

        ``selection_masks`` (P, H, W) and ``skeletons`` (P, 3, H, W) come from the target
        poses; ``source_rows`` (P,) says which source each pair uses (default: one source
        broadcast to every pose, or source i with pose i). ``settings`` override the
        checkpoint's eq. 6 weights and K for this state and set its fusion strength.
        """
        settings = settings or FusionSettings()
        pairs = skeletons.shape[0]
        source_rows = default_source_rows(encoding.batch, pairs, source_rows, skeletons.device)
        from .parsing import get_label_set

        num_labels = get_label_set(self.config.label_set).num_labels
        layers = build_layer_sources(
            self.fusion, self.layers, encoding, selection_masks, source_rows, num_labels, settings
        )
        context = self.source_context(encoding.image_embeds[source_rows].to(skeletons.dtype))
        pose = self.pose_encoder(skeletons)
        return FusionState(layers, pose, context, strength=float(settings.strength))

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
        (the unconditional branch of eq. 11). The fusion runs at ``state.strength``.
        """
        conditional = conditional.to(device=latents.device, dtype=torch.bool)
        rows = rows.to(latents.device)
        context = state.context[rows] * conditional[:, None, None].to(state.context.dtype)
        cond_rows = rows[conditional]
        call = UNetCall(conditional=conditional, strength=state.strength)
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
