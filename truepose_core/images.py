"""The input image policy: one home for each rule, used by the CLI, the pipeline, the human
parser and the nodes.

- Channels: RGBA is composited on white (a transparent background reads as a studio
  backdrop like DeepFashion's), grayscale + alpha likewise; one channel is repeated to RGB.
- Value range: uint8 and 16-bit integers are scaled to 0..1. Floats must lie in 0..1;
  values up to :data:`RANGE_TOLERANCE` outside (rounding in upstream nodes) are clamped.
- Size of a source image (VAE and SourceNet): each side a multiple of :data:`MULTIPLE`
  and :data:`MIN_SIDE` .. :data:`MAX_SIDE` pixels. Nothing is padded or resized silently,
  because either would move the keypoints and the parsing map away from the image; the
  error names TruePose Fit Inputs, which resizes image, parsing and poses together.
- Size of a parser input (SCHP resizes to its own input anyway): at least
  :data:`PARSER_MIN_SIDE` pixels a side, no upper bound but memory.
- Size widgets (frame sizes of pose nodes, the fit node) go up to :data:`MAX_SIDE`.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ImageError

#: Smallest source side: an 8 x 8 latent grid, so the UNet's /4 levels keep 2 tokens.
MIN_SIDE = 64
#: Largest side of any frame the pack takes (sources, pose canvases, size widgets).
MAX_SIDE = 8192
#: Source sides are multiples of the VAE's factor.
MULTIPLE = 8
#: Smallest human-parser input side: the SCHP backbone reduces an image by 16.
PARSER_MIN_SIDE = 16
#: Float values this far outside 0..1 are rounding and are clamped; further is an error.
RANGE_TOLERANCE = 1e-3
#: The node that makes any photo fit the source size policy.
FIT_NODE = "TruePose Fit Inputs"


def _scale_values(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if t.dtype in (torch.int16, torch.int32) or str(t.dtype) == "torch.uint16":
        return t.float() / 65535.0
    if t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise ImageError(f"{name}: contains NaN or infinite values; expected 0..1")
        lo, hi = float(t.min()), float(t.max())
        if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
            raise ImageError(f"{name}: float values must lie in [0, 1], got {lo:.3g}..{hi:.3g}")
        return t.clamp(0.0, 1.0)
    raise ImageError(f"{name}: unsupported dtype {t.dtype}; expected uint8 or float 0..1")


def to_rgb_float(image: np.ndarray | torch.Tensor, name: str = "image") -> torch.Tensor:
    """(H, W), (H, W, C) or (B, H, W, C) with C in 1..4 -> float (B, H, W, 3) in [0, 1]."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise ImageError(f"{name}: expected an image tensor, got {type(image).__name__}")
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dim() == 2:
        t = t[None, :, :, None]
    elif t.dim() == 3:
        t = t[None] if t.shape[-1] in (1, 2, 3, 4) else t[..., None]
    if t.dim() != 4 or t.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected (batch, height, width, channels), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ImageError(f"{name}: the batch is empty; expected at least one image")
    t = _scale_values(t, name)
    if t.shape[-1] in (2, 4):  # gray + alpha, RGB + alpha: composite on white
        alpha = t[..., -1:]
        t = t[..., :-1] * alpha + (1.0 - alpha)
    if t.shape[-1] == 1:
        t = t.expand(*t.shape[:-1], 3)
    return t.contiguous()


def check_size(
    height: int,
    width: int,
    name: str = "image",
    multiple: int = MULTIPLE,
    min_side: int = MIN_SIDE,
    max_side: int | None = MAX_SIDE,
) -> None:
    """Raise an ImageError naming the size, and the node that fixes it, when it breaks the
    size policy. The defaults are the source-image rule."""
    size = f"{width}x{height} (width x height)"
    if min(height, width) < min_side:
        raise ImageError(
            f"{name}: {size} is too small; each side needs at least {min_side} px. Scale it "
            f"up with {FIT_NODE} (or the stock Upscale Image node)"
        )
    if max_side is not None and max(height, width) > max_side:
        raise ImageError(
            f"{name}: {size} is too large; each side must be at most {max_side} px. Scale it "
            f"down with {FIT_NODE} (or the stock Upscale Image node)"
        )
    if height % multiple or width % multiple:
        raise ImageError(
            f"{name}: {size} is not a multiple of {multiple}. Fit the image, its parsing and "
            f"the target pose together with {FIT_NODE} (e.g. to "
            f"{max(multiple, width - width % multiple)}x"
            f"{max(multiple, height - height % multiple)}), so they keep lining up"
        )


def check_parser_size(height: int, width: int, name: str = "image") -> None:
    """The human parser's rule: any size from :data:`PARSER_MIN_SIDE` up."""
    check_size(height, width, name, multiple=1, min_side=PARSER_MIN_SIDE, max_side=None)
