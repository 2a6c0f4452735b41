"""The fusion variants: the method and its ablations, one small class each.

Every class implements :class:`~truepose_core.fusion.FusionLayer`; ``TruePoseConfig.fusion_mode``
picks one by its ``mode``. A new variant is a subclass here, listed in :data:`VARIANTS`,
plus its name in :data:`truepose_core.config.FUSION_MODES`; the model, the checkpoint, the
trainer and both hosts take it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import nn

from .caa import CAA
from .config import TruePoseConfig
from .errors import BatchError, ConfigError
from .fusion import FusionLayer, FusionSettings, LayerSource, SourceEncoding
from .hpfa import HPFA
from .unet_layers import AttentionLayer

_DEFAULT_SETTINGS = FusionSettings()


def _hpfa(layer: AttentionLayer, config: TruePoseConfig) -> HPFA:
    """The HPFA block of a layer, as the method and the CLIP-only ablation both build it."""
    return HPFA(
        layer.channels,
        layer.heads,
        sigma=config.sigma,
        delta=config.delta,
        reweight=config.hpfa_reweight,
    )


class HPFAFusion(FusionLayer):
    """The method: HPFA (eq. 6-8), then CAA (METHOD.md "CAA") when the config enables it."""

    mode = "hpfa"

    def __init__(self, layer: AttentionLayer, config: TruePoseConfig):
        super().__init__(layer, config)
        self.hpfa = _hpfa(layer, config)
        if config.use_caa and config.caa_regions > 0:
            self.caa = CAA(layer.channels, layer.heads, config.clip_dim, config.caa_regions)

    @torch.no_grad()
    def init_from_unets(self, source_attn: nn.Module | None, target_attn: nn.Module) -> None:
        self.hpfa.init_from_attention(source_attn, target_attn)
        if self.caa is not None:
            self.caa.to_q.weight.copy_(target_attn.to_q.weight)

    def precompute(
        self,
        features: torch.Tensor | None,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
        *,
        settings: FusionSettings | None = None,
    ) -> LayerSource:
        settings = settings or _DEFAULT_SETTINGS
        use_caa = self.caa is not None and settings.use_caa
        hpfa = self.hpfa.encode_source(
            features,
            key_mask,
            backend=self.backend,
            chunk=self.chunk,
            return_key_attention=use_caa,
            sigma=settings.sigma,
            delta=settings.delta,
        )
        caa = None
        if use_caa:
            caa = self.caa.encode_regions(
                encoding.region_embeds[rows],
                hpfa.key_attention,
                labels,
                key_mask,
                regions=settings.caa_regions,
            )
        return LayerSource(hpfa=hpfa, caa=caa)

    def fuse(self, hidden: torch.Tensor, source: LayerSource) -> torch.Tensor:
        out = self.hpfa.fuse(hidden, source.hpfa)
        if self.caa is not None and source.caa is not None:
            out = self.caa.fuse(out, source.caa)
        return out


class ConcatFusion(FusionLayer):
    """Ablation B2: reference attention, the queries F attend over [F, F'].

    With ``strength`` s the reference tokens are F + s * (F' - F): 0 attends over [F, F],
    which is exactly plain self-attention (duplicated keys leave the softmax average as it is).
    """

    mode = "concat"

    def precompute(
        self,
        features: torch.Tensor | None,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
        *,
        settings: FusionSettings | None = None,
    ) -> LayerSource:
        return LayerSource(reference=features)

    def apply(
        self, hidden: torch.Tensor, source: LayerSource, *, strength: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        reference = source.reference.to(hidden.dtype)
        if strength != 1:
            if reference.shape != hidden.shape:
                raise BatchError(
                    f"layer {self.name}: fusion strength {strength} blends the source tokens "
                    f"{tuple(reference.shape)} with the target's {tuple(hidden.shape)}; generate "
                    "at the source image's size or use strength 1"
                )
            reference = hidden + strength * (reference - hidden)
        return hidden, torch.cat([hidden, reference], dim=1)

    def merge_rows(
        self,
        hidden: torch.Tensor,
        idx: torch.Tensor,
        query_rows: torch.Tensor,
        kv_rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconditional rows attend over [F, F]: plain self-attention."""
        kv = torch.cat([hidden, hidden], dim=1).index_copy(0, idx, kv_rows.to(hidden.dtype))
        return hidden, kv


class ClipTokenMLP(nn.Module):
    """Ablation B1: CLIP region embeddings mapped by a stacked MLP to a layer's width."""

    def __init__(self, clip_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(clip_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


class ClipOnlyFusion(FusionLayer):
    """Ablation B1: eq. 8's cross-attention over CLIP region tokens instead of H'."""

    mode = "clip_only"

    def __init__(self, layer: AttentionLayer, config: TruePoseConfig):
        super().__init__(layer, config)
        self.hpfa = _hpfa(layer, config)
        self.clip_mlp = ClipTokenMLP(config.clip_dim, layer.channels)

    @torch.no_grad()
    def init_from_unets(self, source_attn: nn.Module | None, target_attn: nn.Module) -> None:
        self.hpfa.init_from_attention(source_attn, target_attn)

    def precompute(
        self,
        features: torch.Tensor | None,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
        *,
        settings: FusionSettings | None = None,
    ) -> LayerSource:
        tokens = self.clip_mlp(encoding.region_embeds[rows])
        return LayerSource(hpfa=self.hpfa.encode_tokens(tokens, encoding.region_present[rows]))

    def fuse(self, hidden: torch.Tensor, source: LayerSource) -> torch.Tensor:
        return self.hpfa.fuse(hidden, source.hpfa)


class PoseOnlyFusion(FusionLayer):
    """Ablation "pose only": the TargetNet with the PoseEncoder and nothing of the source.

    No SourceNet, no HPFA or CAA, and the zero context on every row; no layer is fused.
    """

    mode = "pose_only"
    uses_source_net = False
    uses_source_context = False

    def precompute(
        self,
        features: torch.Tensor | None,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
        *,
        settings: FusionSettings | None = None,
    ) -> None:
        return None

    def fuse(self, hidden: torch.Tensor, source: LayerSource) -> torch.Tensor:
        return hidden


#: Every variant by its ``TruePoseConfig.fusion_mode`` value.
VARIANTS: Mapping[str, type[FusionLayer]] = MappingProxyType(
    {cls.mode: cls for cls in (HPFAFusion, ConcatFusion, ClipOnlyFusion, PoseOnlyFusion)}
)


def variant_class(mode: str) -> type[FusionLayer]:
    """The :class:`FusionLayer` subclass of a ``fusion_mode``, or a ConfigError."""
    try:
        return VARIANTS[mode]
    except KeyError:
        raise ConfigError(
            f"fusion_mode {mode!r}: no such variant; known are {sorted(VARIANTS)}"
        ) from None
