"""Human-parsing label sets, the target-oriented selection mask and its per-layer token views.

A parsing map is an integer array ``(H, W)`` (or a batch ``(B, H, W)``), numpy or torch, whose
values index a :class:`LabelSet` (SCHP's LIP or ATR). This module turns it into what the
method needs (METHOD.md, "Human parsing" and HPFA step 1):

- ``selection_mask``: the union of the labels selected by the target pose's visible body
  parts (the mask ``M`` before resizing);
- ``token_mask`` / ``token_labels``: that mask, or the labels, at one UNet layer's token grid
  (one function each, shared by the diffusers and the ComfyUI paths);
- ``region_boxes``: the rectangles ``R_i`` that CAA crops for CLIP;
- ``colorize`` / ``decolorize``: palette images made or read elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import BatchError, ConfigError, ParsingError
from .keypoints import BODY_PARTS, Pose, visible_parts

#: A parsing map or mask, numpy or torch.
ArrayLike = np.ndarray | torch.Tensor

#: A token is inside the mask when at least half of it is covered; the small slack absorbs
#: float rounding of averages such as 3/6.
_COVERAGE = 0.5
_COVERAGE_EPS = 1e-6


def _voc_palette(num_labels: int) -> tuple[tuple[int, int, int], ...]:
    """SCHP's ``get_palette`` (the PASCAL VOC bit-interleaved colour map)."""
    colors = []
    for label in range(num_labels):
        r = g = b = 0
        lab, bit = label, 0
        while lab:
            r |= ((lab >> 0) & 1) << (7 - bit)
            g |= ((lab >> 1) & 1) << (7 - bit)
            b |= ((lab >> 2) & 1) << (7 - bit)
            bit += 1
            lab >>= 3
        colors.append((r, g, b))
    return tuple(colors)


@dataclass(frozen=True)
class LabelSet:
    """A parsing label set: label names by index and SCHP's colour for each."""

    name: str
    labels: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.labels):
            raise ParsingError(
                f"LabelSet {self.name}: {len(self.labels)} labels but "
                f"{len(self.palette)} palette colours; expected one colour per label"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ParsingError(f"LabelSet {self.name}: label names must be unique")
        if len(set(self.palette)) != len(self.palette):
            raise ParsingError(f"LabelSet {self.name}: palette colours must be unique")

    @property
    def num_labels(self) -> int:
        """Number of labels, background included."""
        return len(self.labels)

    def index(self, label: str) -> int:
        """Index of ``label`` (exact name, e.g. ``"Upper-clothes"``)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ParsingError(
                f"label set {self.name} has no label {label!r}; it has {list(self.labels)}"
            ) from None


#: SCHP's LIP label set (20 labels); the project's default.
LIP = LabelSet(
    name="lip",
    labels=(
        "Background",
        "Hat",
        "Hair",
        "Glove",
        "Sunglasses",
        "Upper-clothes",
        "Dress",
        "Coat",
        "Socks",
        "Pants",
        "Jumpsuits",
        "Scarf",
        "Skirt",
        "Face",
        "Left-arm",
        "Right-arm",
        "Left-leg",
        "Right-leg",
        "Left-shoe",
        "Right-shoe",
    ),
    palette=_voc_palette(20),
)

#: SCHP's ATR label set (18 labels).
ATR = LabelSet(
    name="atr",
    labels=(
        "Background",
        "Hat",
        "Hair",
        "Sunglasses",
        "Upper-clothes",
        "Skirt",
        "Pants",
        "Dress",
        "Belt",
        "Left-shoe",
        "Right-shoe",
        "Face",
        "Left-leg",
        "Right-leg",
        "Left-arm",
        "Right-arm",
        "Bag",
        "Scarf",
    ),
    palette=_voc_palette(18),
)

LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType({"lip": LIP, "atr": ATR})
#: The label sets' names, the one list every option and check uses.
LABEL_SET_NAMES: tuple[str, ...] = tuple(LABEL_SETS)

#: Body part -> parsing label names it selects (METHOD.md, HPFA step 1). Names a label set
#: lacks are skipped (ATR has no Coat, LIP no Belt). ATR's Bag is never selected: it is not
#: part of the person, and copying it would paste the bag wherever the pose puts it.
PART_LABELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "face": ("Hat", "Hair", "Sunglasses", "Face"),
        "torso": ("Upper-clothes", "Coat", "Dress", "Scarf", "Jumpsuits"),
        # Upper-clothes and Coat stand for their sleeves: parsing has no sleeve label.
        "arms": ("Left-arm", "Right-arm", "Glove", "Upper-clothes", "Coat"),
        "hips": ("Pants", "Skirt", "Dress", "Jumpsuits", "Belt"),
        "legs": ("Left-leg", "Right-leg", "Pants", "Skirt", "Dress"),
        "feet": ("Left-shoe", "Right-shoe", "Socks", "Left-leg", "Right-leg"),
    }
)


def get_label_set(name: str) -> LabelSet:
    """The label set called ``name`` ("lip" or "atr", any case)."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in LABEL_SETS:
        raise ParsingError(f"unknown label set {name!r}; expected one of {sorted(LABEL_SETS)}")
    return LABEL_SETS[key]


def selected_labels(parts: Iterable[str], label_set: LabelSet) -> frozenset[int]:
    """Label indices selected by the body ``parts`` (see ``PART_LABELS``)."""
    out: set[int] = set()
    for part in parts:
        if part not in PART_LABELS:
            raise ParsingError(f"unknown body part {part!r}; expected one of {list(BODY_PARTS)}")
        out.update(label_set.labels.index(n) for n in PART_LABELS[part] if n in label_set.labels)
    return frozenset(out)


# ---------------------------------------------------------------------------------------------
# Validation


def _check_label_map(parsing: Any, what: str) -> None:
    """An integer array of 2 or 3 dims with a non-empty image."""
    if isinstance(parsing, torch.Tensor):
        integer = not parsing.dtype.is_floating_point and not parsing.dtype.is_complex
        integer = integer and parsing.dtype != torch.bool
        dtype = str(parsing.dtype)
    elif isinstance(parsing, np.ndarray):
        integer = np.issubdtype(parsing.dtype, np.integer)
        dtype = str(parsing.dtype)
    else:
        raise ParsingError(
            f"{what}: expected a numpy array or torch tensor of labels, "
            f"got {type(parsing).__name__}"
        )
    if not integer:
        raise ParsingError(
            f"{what}: expected integer labels, got dtype {dtype} "
            "(a colour parsing image is read with decolorize)"
        )
    if parsing.ndim not in (2, 3):
        raise ParsingError(
            f"{what}: expected shape (H, W) or (B, H, W), got {tuple(parsing.shape)}"
        )
    if parsing.shape[-1] == 0 or parsing.shape[-2] == 0 or parsing.shape[0] == 0:
        raise ParsingError(f"{what}: empty map of shape {tuple(parsing.shape)}")


def _check_range(parsing: ArrayLike, label_set: LabelSet, what: str) -> None:
    n = label_set.num_labels
    if isinstance(parsing, torch.Tensor):
        bad = parsing[(parsing < 0) | (parsing >= n)]
        values = sorted(torch.unique(bad).tolist()) if bad.numel() else []
    else:
        bad = parsing[(parsing < 0) | (parsing >= n)]
        values = sorted(np.unique(bad).tolist()) if bad.size else []
    if values:
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise ParsingError(
            f"{what}: labels {shown} are outside the {label_set.name.upper()} range "
            f"0..{n - 1}; is the map from another label set?"
        )


def validate_parsing(
    parsing: ArrayLike, label_set: LabelSet, image_size: tuple[int, int] | None = None
) -> None:
    """Refuse a parsing map the method cannot use.

    Checks: integer labels in ``[0, num_labels)``; spatial size equal to ``image_size``
    ``(height, width)`` when given; at least one non-background pixel in every map.
    """
    what = "parsing map"
    _check_label_map(parsing, what)
    _check_range(parsing, label_set, what)
    h, w = int(parsing.shape[-2]), int(parsing.shape[-1])
    if image_size is not None and (h, w) != tuple(int(s) for s in image_size):
        ih, iw = image_size
        raise ParsingError(
            f"{what}: size {h}x{w} (HxW) differs from the image's {ih}x{iw}; "
            "parse the same image that is used as source"
        )
    batch = parsing if parsing.ndim == 3 else parsing[None]
    for i in range(batch.shape[0]):
        if not bool((batch[i] != 0).any()):
            where = f" (batch item {i})" if parsing.ndim == 3 else ""
            raise ParsingError(
                f"{what}{where}: no person found, every pixel is Background; "
                "expected a parsing of an image showing a person"
            )


# ---------------------------------------------------------------------------------------------
# Selection


def _isin(parsing: ArrayLike, labels: frozenset[int]) -> ArrayLike:
    if isinstance(parsing, torch.Tensor):
        if not labels:
            return torch.zeros_like(parsing, dtype=torch.bool)
        wanted = torch.tensor(sorted(labels), dtype=parsing.dtype, device=parsing.device)
        return torch.isin(parsing, wanted)
    return np.isin(parsing, np.array(sorted(labels), dtype=np.int64))


def selection_mask(
    parsing: ArrayLike, pose: Pose | Sequence[Pose], label_set: LabelSet
) -> ArrayLike:
    """HPFA's source mask ``M`` at image resolution: pixels of the labels the pose selects.

    ``parsing`` ``(H, W)`` takes one pose; ``(B, H, W)`` takes one pose per item or a single
    pose for all. Returns a bool array of ``parsing``'s shape and kind (numpy or torch).
    """
    validate_parsing(parsing, label_set)
    if parsing.ndim == 2:
        if not isinstance(pose, Pose):
            poses = list(pose)
            if len(poses) != 1:
                raise BatchError(
                    f"selection_mask: one parsing map (H, W) but {len(poses)} poses; "
                    "expected one pose"
                )
            pose = poses[0]
        return _isin(parsing, selected_labels(visible_parts(pose), label_set))
    batch = parsing.shape[0]
    poses = [pose] * batch if isinstance(pose, Pose) else list(pose)
    if len(poses) == 1 and batch > 1:
        poses = poses * batch
    if len(poses) != batch:
        raise BatchError(
            f"selection_mask: {batch} parsing maps but {len(poses)} poses; "
            "expected one pose per map, or a single pose for all"
        )
    masks = [
        _isin(parsing[i], selected_labels(visible_parts(p), label_set)) for i, p in enumerate(poses)
    ]
    return torch.stack(masks) if isinstance(parsing, torch.Tensor) else np.stack(masks)


# ---------------------------------------------------------------------------------------------
# Token grids


def _as_batched_tensor(x: ArrayLike, what: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ParsingError(f"{what}: expected shape (H, W) or (B, H, W), got {tuple(x.shape)}")
    return t


def _check_size(size: tuple[int, int], what: str) -> tuple[int, int]:
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ConfigError(f"{what}: token grid size must be positive, got {size}")
    return h, w


def token_mask(mask: ArrayLike, size: tuple[int, int]) -> torch.Tensor:
    """The mask at a layer's ``size`` ``(h, w)``, one bit per token, flattened row-major.

    ``mask`` ``(B, H, W)`` (or ``(H, W)``), bool or float in 0..1. Area averaging
    (``adaptive_avg_pool2d``, which handles sizes that do not divide) gives each token's
    coverage; a token is in when coverage >= 0.5. Returns bool ``(B, h * w)``.
    """
    h, w = _check_size(size, "token_mask")
    t = _as_batched_tensor(mask, "token_mask")
    t = t.float()
    if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
        raise ParsingError(
            f"token_mask: mask values must lie in 0..1, got {float(t.min())}..{float(t.max())}"
        )
    coverage = F.adaptive_avg_pool2d(t[:, None], (h, w))[:, 0]  # (B, h, w)
    return (coverage >= _COVERAGE - _COVERAGE_EPS).flatten(1)


def token_labels(parsing: ArrayLike, size: tuple[int, int], num_labels: int) -> torch.Tensor:
    """Each token's majority label at a layer's ``size`` ``(h, w)``, flattened row-major.

    Per label, the area fraction it covers in the token (``adaptive_avg_pool2d`` of its
    indicator); the largest wins, ties going to the lowest label. Returns long ``(B, h * w)``.
    """
    h, w = _check_size(size, "token_labels")
    _check_label_map(parsing, "token_labels")
    t = _as_batched_tensor(parsing, "token_labels")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= num_labels:
        raise ParsingError(f"token_labels: labels range {lo}..{hi}, expected 0..{num_labels - 1}")
    best = torch.full((t.shape[0], h, w), -1.0, device=t.device)
    labels = torch.zeros((t.shape[0], h, w), dtype=torch.long, device=t.device)
    for label in range(num_labels):
        share = F.adaptive_avg_pool2d((t == label).float()[:, None], (h, w))[:, 0]
        better = share > best  # strict: an equal share keeps the lower label
        best = torch.where(better, share, best)
        labels = torch.where(better, torch.full_like(labels, label), labels)
    return labels.flatten(1)


# ---------------------------------------------------------------------------------------------
# Regions and colours


def region_boxes(parsing: ArrayLike, label_set: LabelSet) -> dict[int, tuple[int, int, int, int]]:
    """Bounding rectangle ``(x0, y0, x1, y1)`` (x1, y1 exclusive, pixels) of each label present.

    Background is left out; a map with no person gives an empty dict (CAA then has no
    region to align).
    """
    _check_label_map(parsing, "region_boxes")
    if parsing.ndim != 2:
        raise ParsingError(
            f"region_boxes: expected one map (H, W), got {tuple(parsing.shape)}; "
            "call it per batch item"
        )
    _check_range(parsing, label_set, "region_boxes")
    p = parsing.cpu().numpy() if isinstance(parsing, torch.Tensor) else np.asarray(parsing)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for label in np.unique(p).tolist():
        if label == 0:
            continue
        m = p == label
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        boxes[int(label)] = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return boxes


def colorize(parsing: ArrayLike, label_set: LabelSet) -> np.ndarray:
    """Palette image uint8 ``(..., 3)`` of a parsing map, in SCHP's colours."""
    _check_label_map(parsing, "colorize")
    _check_range(parsing, label_set, "colorize")
    p = parsing.cpu().numpy() if isinstance(parsing, torch.Tensor) else np.asarray(parsing)
    palette = np.array(label_set.palette, dtype=np.uint8)
    return palette[p.astype(np.int64)]


def decolorize(image: np.ndarray | Image.Image, label_set: LabelSet) -> np.ndarray:
    """Label map int64 ``(H, W)`` from a parsing image made elsewhere.

    Accepts an RGB(A) palette image ``(H, W, 3|4)`` (uint8, or float 0..1 as ComfyUI holds
    images; colours must match the palette exactly, alpha is ignored) or a single-channel
    index image ``(H, W)`` / ``(H, W, 1)`` (also a PIL "P" or "L" image).
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image)
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ParsingError(f"decolorize: expected an image array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        if not np.issubdtype(image.dtype, np.integer):
            raise ParsingError(
                f"decolorize: a single-channel image must hold integer labels, got {image.dtype}"
            )
        labels = image.astype(np.int64)
        _check_range(labels, label_set, "decolorize")
        return labels
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ParsingError(
            f"decolorize: expected (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) labels, "
            f"got {image.shape}"
        )
    rgb = image[..., :3]
    if np.issubdtype(rgb.dtype, np.floating):
        if rgb.size and (float(rgb.min()) < 0 or float(rgb.max()) > 1):
            raise ParsingError("decolorize: a float image must lie in 0..1")
        rgb = np.rint(rgb * 255.0)
    elif rgb.dtype != np.uint8:
        raise ParsingError(f"decolorize: expected uint8 or float 0..1 colours, got {rgb.dtype}")
    rgb = rgb.astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(label_set.palette)}
    uniques, inverse = np.unique(keys, return_inverse=True)
    unknown = [int(k) for k in uniques if int(k) not in lookup]
    if unknown:
        shown = ", ".join(f"({k >> 16}, {(k >> 8) & 255}, {k & 255})" for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ParsingError(
            f"decolorize: {len(unknown)} colours are not in the {label_set.name.upper()} "
            f"palette: {shown}{more}; expected an unscaled, unsmoothed SCHP palette image "
            "(resize parsing images with nearest neighbour)"
        )
    table = np.array([lookup[int(k)] for k in uniques], dtype=np.int64)
    return table[inverse.reshape(keys.shape)]


#: How a parsing image holds its labels: "auto" tells the other two apart.
PARSING_IMAGE_ENCODINGS = ("auto", "palette colours", "label indices")


def parsing_rgb(image: torch.Tensor) -> torch.Tensor:
    """A parsing IMAGE as (b, h, w, 3): alpha is dropped (compositing would change the
    palette colours) and one channel (class indices as gray) is repeated."""
    if image.dim() != 4 or image.shape[-1] not in (1, 2, 3, 4):
        raise ParsingError(
            f"parsing image: expected an IMAGE (batch, height, width, channels), got "
            f"{tuple(image.shape)}"
        )
    if image.shape[-1] <= 2:
        return image[..., :1].expand(*image.shape[:-1], 3)
    return image[..., :3]


def decode_parsing_image(image: np.ndarray, label_set: str, encoding: str) -> np.ndarray:
    """Class indices (h, w) of one uint8 (h, w, 3) parsing image.

    ``encoding`` is one of :data:`PARSING_IMAGE_ENCODINGS`; "auto" reads a gray image whose
    values are below the class count as indices, anything else as palette colours.
    """
    labels = get_label_set(label_set)
    num_labels = labels.num_labels
    gray = bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
    if encoding == "auto":
        encoding = (
            "label indices" if gray and int(image[..., 0].max()) < num_labels else "palette colours"
        )
    if encoding == "label indices":
        if not gray:
            raise ParsingError(
                "parsing image: encoding 'label indices' needs a grayscale image whose pixel "
                "values are class indices, found colours; use 'palette colours' or 'auto'"
            )
        return image[..., 0].astype(np.int64)
    return np.asarray(decolorize(image, labels), dtype=np.int64)


def decode_parsing_images(images: torch.Tensor, label_set: str, encoding: str) -> torch.Tensor:
    """Validated class indices int64 (b, h, w) of a parsing IMAGE batch (0..1, read as
    0..255): palette colours or class-index gray levels, as ``encoding`` says."""
    table = get_label_set(label_set)
    frames = (parsing_rgb(images).clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    maps = []
    for frame in frames:
        labels = decode_parsing_image(frame, label_set, encoding)
        validate_parsing(labels, table)
        maps.append(torch.from_numpy(labels))
    return torch.stack(maps)
