"""Reference mode: TruePose's parsing-guided attention on a plain SD1.5 UNet, no training.

Reference attention lets the generated image attend to a source image's features inside the
same UNet: at a self-attention layer the keys and values become ``[F, F']``, the target's
own tokens F followed by the source's tokens F'. Reference mode adds TruePose's idea to it:
the logits of the *source* keys are reweighted by eq. 6 with the key mask M (the source
parsing regions that the target pose shows, as in HPFA), so attention leans toward the
source regions the target pose will show. The target's own keys keep weight 1.

There is no trained module here: no fusion projection and no CAA (CAA maps CLIP region
embeddings into the layer's width with a projection that only training provides). The
attention math is :func:`truepose_core.attention.reweighted_attention`, the one
implementation the trained path uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .attention import DEFAULT_DELTA, DEFAULT_SIGMA, reweighted_attention
from .errors import BatchError, ConfigError
from .keypoints import Pose
from .parsing import LabelSet, selection_mask, token_mask

#: Where the source features come from at each step (see :class:`ReferenceConfig`).
SOURCE_MODES = ("cached", "noised")


@dataclass(frozen=True)
class ReferenceConfig:
    """Settings of one reference-mode patch; the one home of their defaults.

    - ``sigma``/``delta``: eq. 6 weights outside / inside the selected source regions.
    - ``strength``: blend of the layer's output, ``plain + strength * (reference - plain)``;
      0 leaves the MODEL as it was, 1 is parsing-guided reference attention.
    - ``reweight``: False sets every eq. 6 weight to 1, i.e. plain reference attention.
    - ``source_mode``: ``"cached"`` runs the UNet on the clean source latent once, at
      timestep 0, and reuses its features at every step (TruePose's SourceNet way: one extra
      UNet pass per image); ``"noised"`` noises the source latent to the current step and
      runs it every step (reference-only's way: one extra UNet pass, batch 1, per step).
    - ``start_percent``/``end_percent``: the part of the sampling schedule where the patch is
      active, 0 = first step, 1 = last.
    - ``noise_seed``: seed of the fixed noise that ``"noised"`` adds to the source latent.
    """

    sigma: float = DEFAULT_SIGMA
    delta: float = DEFAULT_DELTA
    strength: float = 1.0
    reweight: bool = True
    source_mode: str = "cached"
    start_percent: float = 0.0
    end_percent: float = 1.0
    noise_seed: int = 0
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.source_mode not in SOURCE_MODES:
            raise ConfigError(
                f"reference source_mode: got {self.source_mode!r}, expected one of {SOURCE_MODES}"
            )
        if self.strength < 0:
            raise ConfigError(f"reference strength: got {self.strength}, expected >= 0")
        if self.sigma < 0 or self.delta < 0:
            raise ConfigError(
                f"reference sigma/delta: got {self.sigma}/{self.delta}, expected >= 0"
            )
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ConfigError(
                f"reference start/end percent: got {self.start_percent}/{self.end_percent}, "
                "expected 0 <= start <= end <= 1"
            )


def source_selection(
    parsing: torch.Tensor, poses: Sequence[Pose], label_set: LabelSet
) -> torch.Tensor:
    """M at image resolution, one map per target pose: ``(P, H, W)`` bool.

    ``parsing`` is the one source's ``(H, W)`` or ``(1, H, W)`` label map; each pose selects
    the labels of the body parts it shows (the pack's HPFA selection, ``selection_mask``).
    """
    if parsing.dim() == 3:
        if parsing.shape[0] != 1:
            raise BatchError(
                f"reference source parsing: {parsing.shape[0]} maps; expected the one source "
                "image's map"
            )
        parsing = parsing[0]
    maps = parsing[None].expand(len(poses), -1, -1)
    return selection_mask(maps, list(poses), label_set)


def source_key_mask(selection: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The source keys' mask at one layer's token grid ``(h, w)``: ``(P, h * w)`` bool."""
    return token_mask(selection, grid)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape  # (batch, tokens, channels)
    return x.view(b, n, heads, c // heads).transpose(1, 2)  # (batch, heads, tokens, dim)


def reference_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    source_mask: torch.Tensor,
    heads: int,
    *,
    sigma: float = DEFAULT_SIGMA,
    delta: float = DEFAULT_DELTA,
    reweight: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Self-attention over ``[F, F']`` with eq. 6 on the source keys only.

    ``query`` ``(B, N, C)`` is the target's projected queries; ``key``/``value``
    ``(B, N + Ns, C)`` hold the target's N projected keys/values followed by the source's
    Ns; ``source_mask`` ``(B, Ns)`` bool is M on the source tokens. Returns ``(B, N, C)``,
    the attention output before the layer's output projection.
    """
    b, n, c = query.shape
    ns = source_mask.shape[1]
    if key.shape != value.shape or key.shape[0] != b or key.shape[1] != n + ns:
        raise BatchError(
            f"reference_attention: keys {tuple(key.shape)} / values {tuple(value.shape)} must "
            f"be (batch, target + source tokens) = ({b}, {n} + {ns}, ...)"
        )
    source_mask = source_mask.to(device=query.device, dtype=torch.bool)
    own = torch.zeros(b, n, dtype=torch.bool, device=query.device)
    key_mask = torch.cat([own, source_mask], dim=1)  # (B, N + Ns)
    weighted = torch.cat([own, torch.ones_like(source_mask)], dim=1)  # eq. 6 on F' only
    out = reweighted_attention(
        _heads(query, heads),
        _heads(key, heads),
        _heads(value, heads),
        key_mask,
        sigma=sigma,
        delta=delta,
        reweight=reweight,
        backend=backend,
        weighted_keys=weighted,
    )  # (B, H, N, D)
    return out.transpose(1, 2).reshape(b, n, c)


def blend(plain: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """``plain + strength * (reference - plain)``: the patch's strength on a layer's output."""
    if strength == 1:
        return reference
    return plain + strength * (reference - plain)


def pair_rows(batch: int, chunks: int, pairs: int, device: torch.device) -> torch.Tensor:
    """The (source, pose) pair each UNet row uses: ``(batch,)`` long.

    A UNet batch is ``chunks`` equal cond/uncond chunks of the latent batch; row i of every
    chunk uses pair i when there is one pair per latent, else pair 0.
    """
    if chunks <= 0 or batch % chunks:
        raise BatchError(f"UNet batch {batch} is not {chunks} equal cond/uncond chunks")
    per_chunk = batch // chunks
    if pairs == per_chunk:
        rows = torch.arange(per_chunk, device=device)
    elif pairs == 1:
        rows = torch.zeros(per_chunk, dtype=torch.long, device=device)
    else:
        raise BatchError(
            f"latent batch {per_chunk} does not fit the {pairs} target poses of TruePose "
            "Reference; use a latent batch of 1 or of the number of target poses"
        )
    return rows.repeat(chunks)


def fixed_noise(shape: Sequence[int], seed: int) -> torch.Tensor:
    """The noise ``"noised"`` mode adds to the source latent: the same for every step."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator)
