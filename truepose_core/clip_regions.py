"""CLIP embeddings of the whole source image and of its parsing regions (F_clip).

Each present label's bounding rectangle is cropped, padded to a square (so nothing is cut
off, unlike CLIP's centre crop) and embedded by the frozen open_clip image tower. The
result has one row per label so that CAA can gather the regions it picks by label index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .config import TruePoseConfig
from .errors import DependencyError
from .weights import load_strict, read_tensors

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip_vision(config: TruePoseConfig) -> nn.Module:
    """An open_clip image tower with random weights, shaped as ``config`` says."""
    try:
        import open_clip
        from open_clip.model import _build_vision_tower
    except ImportError as exc:  # pragma: no cover - open_clip is a hard dependency
        raise DependencyError("open_clip_torch is needed for CLIP region embeddings") from exc
    if config.clip_vision:
        vision_cfg = dict(config.clip_vision)
    else:
        model_cfg = open_clip.get_model_config(config.clip_model)
        if model_cfg is None:
            raise DependencyError(
                f"TruePoseConfig.clip_model: open_clip has no architecture {config.clip_model!r}"
            )
        vision_cfg = dict(model_cfg["vision_cfg"])
    vision_cfg.setdefault("image_size", config.clip_image_size)
    return _build_vision_tower(config.clip_dim, vision_cfg)


def load_clip_vision(config: TruePoseConfig, path: str | Path) -> nn.Module:
    """The image tower of an open_clip checkpoint file (safetensors or plain weights)."""
    state = read_tensors(path, "CLIP image tower")
    visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        visual = state
    model = build_clip_vision(config)
    hint = f"not an open_clip {config.clip_model} image tower"
    load_strict(model, visual, f"CLIP image tower {path}", hint=hint)
    return model.eval().requires_grad_(False)


def _square(crop: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Pad (3, h, w) to a centred square filled with ``fill`` (3,)."""
    _, h, w = crop.shape
    side = max(h, w)
    out = fill[:, None, None].expand(3, side, side).clone()
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top : top + h, left : left + w] = crop
    return out


def clip_pixels(squares: list[torch.Tensor], image_size: int) -> torch.Tensor:
    """Square crops in [0, 1] -> the CLIP tower's normalised input (N, 3, size, size)."""
    batch = torch.stack(
        [
            F.interpolate(
                sq[None],
                size=(image_size, image_size),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )[0]
            for sq in squares
        ]
    ).clamp(0, 1)
    mean = batch.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = batch.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (batch - mean) / std


def region_squares(
    images: torch.Tensor, parsing: torch.Tensor, label_set
) -> tuple[list[torch.Tensor], list[tuple[int, int]], list[dict]]:
    """Each present label's rectangle, padded square: (squares, (row, label) slots, boxes).

    The whole images follow the regions in ``squares`` (one per row, without a slot), so the
    CLIP tower sees every crop of a batch in one call. Used by the frozen encoder and by
    ``truepose train-clip``, so both crop alike.
    """
    from .parsing import region_boxes

    fill = images.new_tensor(CLIP_MEAN)
    squares: list[torch.Tensor] = []
    slots: list[tuple[int, int]] = []
    boxes = []
    for i in range(images.shape[0]):
        found = region_boxes(parsing[i].cpu().numpy(), label_set)
        boxes.append(found)
        for label, (x0, y0, x1, y1) in sorted(found.items()):
            squares.append(_square(images[i, :, y0:y1, x0:x1], fill))
            slots.append((i, label))
    squares.extend(_square(img, fill) for img in images)
    return squares, slots, boxes


@dataclass
class RegionEmbeddings:
    """Per-label CLIP embeddings of a batch of source images."""

    region_embeds: torch.Tensor  # (B, L, E); rows of absent labels are zero
    region_present: torch.Tensor  # (B, L) bool
    image_embeds: torch.Tensor  # (B, E)
    boxes: list[dict[int, tuple[int, int, int, int]]]


class ClipRegionEncoder(nn.Module):
    """Frozen CLIP image tower plus the crop-pad-normalise of METHOD.md "Human parsing"."""

    def __init__(self, visual: nn.Module, image_size: int):
        super().__init__()
        self.visual = visual.eval().requires_grad_(False)
        self.image_size = image_size

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Whole images (B, 3, H, W) in [0, 1] -> pooled, projected embeddings (B, E)."""
        fill = images.new_tensor(CLIP_MEAN)
        squares = [_square(img, fill) for img in images]
        param = next(self.visual.parameters())
        return self.visual(clip_pixels(squares, self.image_size).to(param.dtype)).float()

    @torch.no_grad()
    def forward(self, images: torch.Tensor, parsing: torch.Tensor, label_set) -> RegionEmbeddings:
        """images (B, 3, H, W) in [0, 1], parsing (B, H, W) labels -> RegionEmbeddings."""
        b = images.shape[0]
        num_labels = label_set.num_labels
        squares, slots, boxes = region_squares(images, parsing, label_set)
        param = next(self.visual.parameters())
        embeds = self.visual(clip_pixels(squares, self.image_size).to(param.dtype)).float()
        region = embeds.new_zeros(b, num_labels, embeds.shape[-1])
        present = torch.zeros(b, num_labels, dtype=torch.bool, device=embeds.device)
        for (i, label), e in zip(slots, embeds[: len(slots)], strict=True):
            region[i, label] = e
            present[i, label] = True
        return RegionEmbeddings(region, present, embeds[len(slots) :], boxes)
