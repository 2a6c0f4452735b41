"""One frozen configuration for a TruePose model, stored in every checkpoint's metadata.

Defaults follow METHOD.md (the paper plus the project's decisions). Unknown keys raise, so a
checkpoint written by a newer version never loads with silently different behaviour.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .parsing import LABEL_SET_NAMES

FUSION_MODES = ("hpfa", "concat", "clip_only", "pose_only")
LABEL_SETS = LABEL_SET_NAMES  # the names' one home is parsing.LABEL_SETS
ATTENTION_BACKENDS = ("auto", "naive", "chunked", "flex")


@dataclass(frozen=True)
class TruePoseConfig:
    """Everything that shapes a TruePose model's weights or its math.

    ``layers`` names TargetNet self-attention layers as ``{block}_{id}_{index}`` in ComfyUI's
    numbering (``input_1_0`` is SD1.5's ``down_blocks.0.attentions.0``); an empty tuple means
    every self-attention layer of the UNet.
    """

    layers: tuple[str, ...] = ()
    #: Mask weights of paper eq. 6: ``sigma`` for keys outside the selected regions,
    #: ``delta`` for keys inside them.
    sigma: float = 0.3
    delta: float = 0.6
    #: Number of lowest-attention regions that CAA aligns with CLIP (paper: K).
    caa_regions: int = 2
    #: "hpfa" (the method), "concat" (reference-attention concatenation, ablation B2),
    #: "clip_only" (CLIP patch features through an MLP, ablation B1) or "pose_only" (no
    #: SourceNet, CAA or source context: the PoseEncoder alone). One class each in
    #: ``variants.py``.
    fusion_mode: str = "hpfa"
    #: False drops the parsing-guided reweighting (eq. 6 weights all 1): the "without HPFA"
    #: ablation, which keeps the SourceNet fusion itself.
    hpfa_reweight: bool = True
    use_caa: bool = True
    #: open_clip architecture of the frozen image encoder, its embedding width and input size.
    clip_model: str = "ViT-H-14"
    clip_dim: int = 1024
    clip_image_size: int = 224
    #: open_clip ``CLIPVisionCfg`` fields for a model not in open_clip's registry (the small
    #: SynthFashion model embeds such a tower); empty for a named architecture.
    clip_vision: dict[str, Any] = field(default_factory=dict)
    #: Unused (the UNet's ``cross_attention_dim`` sets the context width); kept because
    #: checkpoints store it in their metadata, which ``from_dict`` reads strictly.
    context_dim: int = 768
    #: Cross-attention context: the source's CLIP embedding projected to this many tokens.
    context_tokens: int = 4
    #: Image resolution (height, width) the model was trained at.
    resolution: tuple[int, int] = (512, 352)
    label_set: str = "lip"
    #: Probability that all source conditions are dropped together in training (paper: eta).
    condition_drop: float = 0.3
    #: Hidden widths of the first three PoseEncoder convs; the fourth maps to the UNet width.
    pose_channels: tuple[int, ...] = (16, 32, 96)
    #: End of the noise schedule's betas (SD1.5's "scaled_linear" from 0.00085 to 0.012). A
    #: model trained from scratch on small latents may raise it so that the last timesteps
    #: leave no trace of the image's colours in the noise; training and every sampler use it.
    #: (With noise prediction, 0.025 made the SynthFashion model's samples diverge: README.)
    beta_end: float = 0.012
    #: VAE latent scaling (SD1.5: 0.18215) and downsampling factor.
    latent_scale: float = 0.18215
    latent_factor: int = 8
    attention_backend: str = "auto"
    #: Query chunk of the chunked attention backend; 0 sizes it from a memory budget.
    attention_chunk: int = 0
    #: Unused; kept, like ``context_dim``, because checkpoints store it.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"TruePoseConfig.{name}: {why}")

        if self.fusion_mode not in FUSION_MODES:
            raise bad("fusion_mode", f"got {self.fusion_mode!r}, expected one of {FUSION_MODES}")
        if self.label_set not in LABEL_SETS:
            raise bad("label_set", f"got {self.label_set!r}, expected one of {LABEL_SETS}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise bad(
                "attention_backend",
                f"got {self.attention_backend!r}, expected one of {ATTENTION_BACKENDS}",
            )
        if not 0.0 <= self.condition_drop < 1.0:
            raise bad("condition_drop", f"must lie in [0, 1), got {self.condition_drop}")
        if self.caa_regions < 0:
            raise bad("caa_regions", f"must be >= 0, got {self.caa_regions}")
        if self.sigma < 0 or self.delta < 0:
            raise bad("sigma/delta", f"must be >= 0, got {self.sigma}, {self.delta}")
        if len(self.resolution) != 2 or any(r % self.latent_factor for r in self.resolution):
            raise bad(
                "resolution",
                f"{self.resolution} must be (height, width), multiples of {self.latent_factor}",
            )
        if not 0.00085 < self.beta_end < 0.5:
            raise bad("beta_end", f"must lie in (0.00085, 0.5), got {self.beta_end}")
        if self.attention_chunk < 0 or self.context_tokens < 1:
            raise bad("attention_chunk/context_tokens", "chunk must be >= 0, tokens >= 1")
        # Normalise sequences so that a config read back from JSON compares equal.
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "resolution", tuple(int(r) for r in self.resolution))
        object.__setattr__(self, "pose_channels", tuple(int(c) for c in self.pose_channels))

    def replace(self, **changes: Any) -> TruePoseConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TruePoseConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"TruePoseConfig: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"TruePoseConfig: unknown keys {unknown}; known keys are {sorted(known)}"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"TruePoseConfig: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> TruePoseConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"TruePoseConfig: metadata is not valid JSON ({exc})") from exc
        return cls.from_dict(data)


@dataclass(frozen=True)
class SamplingConfig:
    """The reference sampler's settings (paper eq. 11 and section 4.4)."""

    steps: int = 35
    cfg_scale: float = 3.5
    eta: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"SamplingConfig.steps: must be >= 1, got {self.steps}")
        if self.cfg_scale < 0:
            raise ConfigError(f"SamplingConfig.cfg_scale: must be >= 0, got {self.cfg_scale}")
