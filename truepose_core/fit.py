"""Frame geometry: fit an image, its parsing and its poses into another frame, and back.

One :class:`FitTransform` maps pixel coordinates of a source frame to a target frame:
``target = source * scale + offset``, per axis. Every input that lives on the source frame
goes through the same transform, so keypoints stay on the body pixels they were detected on:

- images are resampled with antialiased bicubic filtering (smooth),
- parsing maps with nearest neighbour (class indices never blend),
- keypoints with the exact affine map.

Coordinates follow the pixel-corner convention of :class:`~truepose_core.keypoints.Pose`:
pixel ``i`` covers ``[i, i + 1)``, so a resize by ``s`` maps ``x`` to ``x * s``.

Modes (``FIT_MODES``), each keeping the aspect ratio except ``stretch``:

- ``letterbox`` (default): scale so the whole source fits, centre it, pad the rest
  (images with ``pad_value``, parsing with background 0).
- ``crop``: scale so the source covers the target, centre it, cut what sticks out.
- ``stretch``: scale each axis on its own to the target size (the old behaviour).

Target poses drawn on another canvas are placed by the same rule: the pose's frame is
fitted into the source frame (letterbox by default), so a person keeps their proportions
and sits where they sat in their own frame. :func:`adjust_pose` then scales the person
about their own centre and moves them, for artists who want another placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError, ImageError, PoseError
from .keypoints import Pose

FIT_MODES: tuple[str, ...] = ("letterbox", "crop", "stretch")
DEFAULT_FIT_MODE = "letterbox"
#: Letterbox padding of fitted images: white, the studio backdrop of DeepFashion.
DEFAULT_PAD_VALUE = 1.0


@dataclass(frozen=True)
class FitTransform:
    """``target = source * scale + offset`` (pixels, per axis) between two frames.

    ``resized`` is the (width, height) of the source after scaling and before padding or
    cropping; ``offset`` is where its top-left corner lands in the target (whole pixels,
    negative when cropped).
    """

    source_size: tuple[int, int]  # (width, height)
    target_size: tuple[int, int]  # (width, height)
    resized: tuple[int, int]  # (width, height)
    offset: tuple[int, int]  # (x, y)
    mode: str

    @property
    def scale(self) -> tuple[float, float]:
        return (
            self.resized[0] / self.source_size[0],
            self.resized[1] / self.source_size[1],
        )

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Source-frame pixel coordinates ``(..., 2)`` in the target frame."""
        sx, sy = self.scale
        xy = np.asarray(xy, dtype=np.float64)
        return xy * np.array([sx, sy]) + np.array(self.offset, dtype=np.float64)

    def inverse_points(self, xy: np.ndarray) -> np.ndarray:
        """Target-frame pixel coordinates ``(..., 2)`` back in the source frame."""
        sx, sy = self.scale
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.array(self.offset, dtype=np.float64)) / np.array([sx, sy])

    def pose(self, pose: Pose) -> Pose:
        """``pose`` (on the source frame) on the target frame; missing joints stay missing."""
        if (pose.width, pose.height) != self.source_size:
            raise PoseError(
                f"fit: the pose's canvas is {pose.width}x{pose.height} but the transform "
                f"starts from {self.source_size[0]}x{self.source_size[1]}; fit the pose "
                "from its own canvas (fit_pose)"
            )
        xy = self.points(pose.xy).astype(np.float32)
        return Pose(xy, pose.confidence, *self.target_size)

    def to_dict(self) -> dict:
        return {
            "source_size": list(self.source_size),
            "target_size": list(self.target_size),
            "resized": list(self.resized),
            "offset": list(self.offset),
            "mode": self.mode,
        }


def _positive_size(width: int, height: int, what: str) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or int(value) != value or int(value) <= 0:
            raise ConfigError(f"{what}: {name} must be a positive number of pixels, got {value!r}")
    return int(width), int(height)


def fit_transform(
    source_width: int,
    source_height: int,
    target_width: int,
    target_height: int,
    mode: str = DEFAULT_FIT_MODE,
) -> FitTransform:
    """The transform that fits a source frame into a target frame by ``mode``."""
    sw, sh = _positive_size(source_width, source_height, "fit source")
    tw, th = _positive_size(target_width, target_height, "fit target")
    if mode not in FIT_MODES:
        raise ConfigError(f"fit mode {mode!r}: expected one of {', '.join(FIT_MODES)}")
    if mode == "stretch":
        return FitTransform((sw, sh), (tw, th), (tw, th), (0, 0), mode)
    pick = min if mode == "letterbox" else max
    s = pick(tw / sw, th / sh)
    rw, rh = max(1, round(sw * s)), max(1, round(sh * s))
    # Rounding must not push a letterboxed image over the edge or leave a cropped one short.
    if mode == "letterbox":
        rw, rh = min(rw, tw), min(rh, th)
    else:
        rw, rh = max(rw, tw), max(rh, th)
    offset = ((tw - rw) // 2, (th - rh) // 2)
    return FitTransform((sw, sh), (tw, th), (rw, rh), offset, mode)


def fit_pose(pose: Pose, width: int, height: int, mode: str = DEFAULT_FIT_MODE) -> Pose:
    """``pose`` moved from its own canvas onto a ``width`` x ``height`` frame by ``mode``.

    A pose already on that canvas is returned unchanged.
    """
    if (pose.width, pose.height) == (int(width), int(height)):
        return pose
    return fit_transform(pose.width, pose.height, width, height, mode).pose(pose)


def pose_centre(pose: Pose) -> np.ndarray:
    """Centre of the box around the visible joints (pixels), or of the canvas without any."""
    visible = pose.visible
    if not visible.any():
        return np.array([pose.width / 2, pose.height / 2], dtype=np.float64)
    xy = pose.xy[visible].astype(np.float64)
    return (xy.min(axis=0) + xy.max(axis=0)) / 2


def adjust_pose(
    pose: Pose, scale: float = 1.0, offset_x: float = 0.0, offset_y: float = 0.0
) -> Pose:
    """The person scaled by ``scale`` about their own centre, then moved.

    ``offset_x`` / ``offset_y`` are fractions of the canvas width / height (0.1 moves the
    person right / down by a tenth of the frame). Joints pushed off the canvas stay present
    but are no longer visible.
    """
    if not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"pose_scale {scale!r}: expected a positive factor (1 = unchanged)")
    if scale == 1.0 and offset_x == 0.0 and offset_y == 0.0:
        return pose
    centre = pose_centre(pose)
    shift = np.array([offset_x * pose.width, offset_y * pose.height], dtype=np.float64)
    xy = (pose.xy.astype(np.float64) - centre) * scale + centre + shift
    return Pose(xy.astype(np.float32), pose.confidence, pose.width, pose.height)


# ---------------------------------------------------------------------------------------------
# Pixels


def _check_image(image: torch.Tensor, what: str) -> None:
    if image.dim() != 4 or not image.is_floating_point():
        raise ImageError(
            f"{what}: expected a float IMAGE (batch, height, width, channels), got "
            f"{tuple(image.shape)} {image.dtype}"
        )


def _place(content: torch.Tensor, canvas: torch.Tensor, x: int, y: int) -> torch.Tensor:
    """Copy ``content`` (..., h, w) into ``canvas`` (..., H, W) at ``(x, y)``, clipped."""
    h, w = content.shape[-2:]
    big_h, big_w = canvas.shape[-2:]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(big_w, x + w), min(big_h, y + h)
    if x1 > x0 and y1 > y0:
        canvas[..., y0:y1, x0:x1] = content[..., y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def _resize_smooth(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, C, h, w) float to (B, C, height, width): bicubic, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(
        x, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)


def fit_image(
    image: torch.Tensor, transform: FitTransform, pad_value: float = DEFAULT_PAD_VALUE
) -> torch.Tensor:
    """IMAGE (B, H, W, C) in 0..1 on the source frame -> (B, th, tw, C) on the target frame."""
    _check_image(image, "fit image")
    b, h, w, c = image.shape
    if (w, h) != transform.source_size:
        raise ImageError(
            f"fit image: {w}x{h} differs from the transform's source "
            f"{transform.source_size[0]}x{transform.source_size[1]}"
        )
    rw, rh = transform.resized
    tw, th = transform.target_size
    scaled = _resize_smooth(image.movedim(-1, 1).float(), rh, rw)
    canvas = torch.full((b, c, th, tw), float(pad_value), dtype=scaled.dtype)
    return _place(scaled, canvas, *transform.offset).movedim(1, -1).contiguous()


def _nearest_index(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output pixel's centre (nearest neighbour, pixel-corner frame)."""
    centres = (torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out)
    return centres.floor().long().clamp(0, size_in - 1)


def fit_labels(labels: torch.Tensor, transform: FitTransform, pad_label: int = 0) -> torch.Tensor:
    """Class indices (B, H, W) on the source frame -> (B, th, tw), nearest neighbour."""
    if labels.dim() != 3:
        raise ImageError(f"fit parsing: expected (batch, height, width), got {tuple(labels.shape)}")
    b, h, w = labels.shape
    if (w, h) != transform.source_size:
        raise ImageError(
            f"fit parsing: {w}x{h} differs from the image's "
            f"{transform.source_size[0]}x{transform.source_size[1]}; parse the same image"
        )
    rw, rh = transform.resized
    tw, th = transform.target_size
    rows, cols = _nearest_index(h, rh), _nearest_index(w, rw)
    scaled = labels[:, rows][:, :, cols]
    canvas = torch.full((b, th, tw), int(pad_label), dtype=labels.dtype)
    return _place(scaled, canvas, *transform.offset)


def unfit_image(
    generated: torch.Tensor,
    transform: FitTransform,
    original: torch.Tensor | None = None,
    pad_value: float = DEFAULT_PAD_VALUE,
) -> torch.Tensor:
    """A generated IMAGE (B, th, tw, C) on the target frame back on the source frame.

    The part of the target frame that shows the source is resized back to the source's
    size and framing. Where the fit cut the source off (``crop``), the original photo shows
    through when ``original`` (batch 1 or B) is given, else ``pad_value``.
    """
    _check_image(generated, "generated image")
    b, h, w, c = generated.shape
    if (w, h) != transform.target_size:
        raise ImageError(
            f"generated image: {w}x{h} differs from the fitted size "
            f"{transform.target_size[0]}x{transform.target_size[1]}; connect the image made "
            "from the fitted inputs"
        )
    sw, sh = transform.source_size
    rw, rh = transform.resized
    ox, oy = transform.offset
    content = torch.zeros(b, c, rh, rw)
    cover = torch.zeros(b, 1, rh, rw)
    _place(generated.movedim(-1, 1).float(), content, -ox, -oy)
    _place(torch.ones(b, 1, h, w), cover, -ox, -oy)
    content = _resize_smooth(content, sh, sw)
    cover = _resize_smooth(cover, sh, sw)
    if original is None:
        background = torch.full((1, c, sh, sw), float(pad_value))
    else:
        _check_image(original, "original image")
        if tuple(original.shape[1:3]) != (sh, sw) or original.shape[0] not in (1, b):
            raise ImageError(
                f"original image: {original.shape[2]}x{original.shape[1]} (batch "
                f"{original.shape[0]}) is not the {sw}x{sh} photo that was fitted (batch 1 or "
                f"{b}); connect the image that went into TruePose Fit Inputs"
            )
        background = original[..., :c].movedim(-1, 1).float()
    # ``content`` is premultiplied by ``cover`` (zeros outside), so this is an over-blend.
    out = content + (1 - cover) * background
    return out.clamp(0, 1).movedim(1, -1).contiguous()
