"""The input image policy, in one place for the CLI, the pipeline and the nodes.

- Channels: RGBA loses its alpha channel (composited on white, so a transparent background
  reads as a studio backdrop like DeepFashion's); grayscale is repeated to RGB.
- Value range: uint8 and uint16 are scaled to [0, 1]; floats must already lie in [0, 1].
- Size: each side must be a multiple of 8 (the VAE's factor) and between 64 and 2048 pixels.
  Nothing is padded or resized silently, because either would move the keypoints and the
  parsing map away from the image: the error says to scale or crop the image first.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ImageError

MIN_SIDE = 64
MAX_SIDE = 2048
MULTIPLE = 8


def to_rgb_float(image: np.ndarray | torch.Tensor, name: str = "image") -> torch.Tensor:
    """(H, W), (H, W, C) or (B, H, W, C) with C in 1..4 -> float (B, H, W, 3) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dim() == 2:
        t = t[None, :, :, None]
    elif t.dim() == 3:
        t = t[None] if t.shape[-1] in (1, 2, 3, 4) else t[..., None]
    if t.dim() != 4 or t.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected (batch, height, width, channels), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.dtype in (torch.int16, torch.int32) or str(t.dtype) == "torch.uint16":
        t = t.float() / 65535.0
    elif t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise ImageError(f"{name}: contains NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(f"{name}: float values must lie in [0, 1], got {lo:.3g}..{hi:.3g}")
    else:
        raise ImageError(f"{name}: unsupported dtype {t.dtype}")
    channels = t.shape[-1]
    if channels in (2, 4):  # gray + alpha, RGB + alpha: composite on white
        alpha = t[..., -1:]
        t = t[..., :-1] * alpha + (1.0 - alpha)
    if t.shape[-1] == 1:
        t = t.expand(*t.shape[:-1], 3)
    return t.contiguous()


def check_size(height: int, width: int, name: str = "image", multiple: int = MULTIPLE) -> None:
    """Raise an ImageError naming the size when it breaks the size policy.

    ``multiple=1`` checks only the bounds (for inputs that are resized anyway, like the
    human parser's).
    """
    if min(height, width) < MIN_SIDE:
        raise ImageError(
            f"{name}: {width}x{height} (width x height) is too small; "
            f"each side needs at least {MIN_SIDE} px"
        )
    if max(height, width) > MAX_SIDE:
        raise ImageError(
            f"{name}: {width}x{height} (width x height) is too large; "
            f"each side must be at most {MAX_SIDE} px"
        )
    if height % multiple or width % multiple:
        raise ImageError(
            f"{name}: {width}x{height} (width x height) is not a multiple of {multiple}; scale or "
            f"crop it first (e.g. to {width - width % multiple}x{height - height % multiple})"
        )
