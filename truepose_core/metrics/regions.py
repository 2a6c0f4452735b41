"""Region metrics: does the generated person keep the face and the clothes of the source?

Whole-image SSIM and PSNR reward a blurred silhouette on the right background; the paper's
claim is about the face and the clothing. Each score here is taken inside one region of the
*target* parsing (the ground truth's labels), so a generated image is judged where the
target shows that region:

- **colour error**: the mean RGB colour (0..255) of the region's pixels in the generated
  image and in the ground truth, and the Euclidean distance between the two means;
- **SSIM**: the mean, over the region's pixels, of the SSIM map (Gaussian window, sigma 1.5,
  as Wang et al. 2004), computed on the whole image so the region's edges count.

Regions, in LIP and ATR alike: ``face`` is the Face label, ``upper_clothes`` the
Upper-clothes label, ``lower_clothes`` the Pants and Skirt labels together. A pair whose
target lacks a region is left out of that region's mean, and ``<region>_pairs`` says how
many pairs each mean covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from skimage.metrics import structural_similarity

from ..errors import ImageError, ParsingError
from ..parsing import LabelSet, get_label_set
from .image import _check_image_tensor, image_metrics

#: Region name -> the label names it joins (present in both LIP and ATR).
REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "face": ("Face",),
        "upper_clothes": ("Upper-clothes",),
        "lower_clothes": ("Pants", "Skirt"),
    }
)
BACKGROUND = "Background"
REGION_SSIM_SIGMA = 1.5
REGION_METRICS = ("colour_error", "ssim")


def _label_set(label_set: str | LabelSet) -> LabelSet:
    return label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)


def region_masks(parsing: np.ndarray, label_set: str | LabelSet = "lip") -> dict[str, np.ndarray]:
    """(H, W) boolean mask of each region of :data:`REGIONS` in one label map."""
    labels = _label_set(label_set)
    parsing = np.asarray(parsing)
    return {
        name: np.isin(parsing, [labels.index(n) for n in names]) for name, names in REGIONS.items()
    }


def mean_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Mean RGB colour (0..255) of an (H, W, 3) [0, 1] image's masked pixels; None if empty."""
    if not mask.any():
        return None
    return image[mask].astype(np.float64).mean(axis=0) * 255.0


def colour_error(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float | None:
    """Euclidean distance (0..255 scale) between the region's mean colours; None if empty."""
    a, b = mean_colour(generated, mask), mean_colour(target, mask)
    if a is None or b is None:
        return None
    return float(np.linalg.norm(a - b))


def masked_ssim(generated: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean of the whole image's SSIM map over the masked pixels; None if the mask is empty."""
    if not mask.any():
        return None
    _, ssim_map = structural_similarity(
        target,
        generated,
        data_range=1.0,
        gaussian_weights=True,
        sigma=REGION_SSIM_SIGMA,
        use_sample_covariance=False,
        channel_axis=-1,
        full=True,
    )
    return float(ssim_map.mean(axis=-1)[mask].mean())


def _as_images(images: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """(B, H, W, 3) [0, 1] float numpy images from a tensor or array of that layout."""
    tensor = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    return _check_image_tensor(tensor, name).cpu().numpy()


def _as_label_maps(parsing: torch.Tensor | np.ndarray, batch: int, size: tuple[int, int]):
    maps = np.asarray(parsing.cpu() if torch.is_tensor(parsing) else parsing)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] not in (1, batch) or maps.shape[1:] != size:
        raise ParsingError(
            f"target_parsing: expected (B, H, W) label maps of batch {batch} (or 1) and size "
            f"{size}, got shape {maps.shape}; parse the ground-truth images (truepose parse)"
        )
    return np.broadcast_to(maps, (batch, *size))


def region_scores(
    generated: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    target_parsing: torch.Tensor | np.ndarray,
    label_set: str | LabelSet = "lip",
) -> dict[str, Any]:
    """Colour error and SSIM in each region of the target parsing, per pair and averaged.

    ``generated`` and ``target`` are (B, H, W, 3) images in [0, 1] (ComfyUI's layout);
    ``target_parsing`` is (B, H, W) (or one (H, W) map for all) class indices of
    ``label_set``. Returns ``<region>_colour_error``, ``<region>_ssim`` and
    ``<region>_pairs`` for each region (a mean is None when no pair shows the region), and
    ``per_image`` rows.
    """
    pred, truth = _as_images(generated, "generated"), _as_images(target, "target")
    if pred.shape != truth.shape:
        raise ImageError(
            f"generated is {pred.shape} but target is {truth.shape}; they must match "
            "(resize the generated images to the ground truth first)"
        )
    labels = _label_set(label_set)
    maps = _as_label_maps(target_parsing, pred.shape[0], pred.shape[1:3])
    if maps.min() < 0 or maps.max() >= labels.num_labels:
        raise ParsingError(
            f"target_parsing: labels must lie in 0..{labels.num_labels - 1} for the "
            f"{labels.name} label set, found {int(maps.min())}..{int(maps.max())}"
        )
    rows = [region_row(p, t, m, labels) for p, t, m in zip(pred, truth, maps, strict=True)]
    return {**region_means(rows), "per_image": rows}


def region_row(
    generated: np.ndarray, target: np.ndarray, parsing: np.ndarray, label_set: str | LabelSet
) -> dict[str, float | None]:
    """One pair's ``<region>_colour_error`` and ``<region>_ssim`` (None: region absent).

    ``generated`` and ``target`` are (H, W, 3) in [0, 1]; ``parsing`` is the target's
    (H, W) label map.
    """
    row: dict[str, float | None] = {}
    for name, mask in region_masks(parsing, label_set).items():
        row[f"{name}_colour_error"] = colour_error(generated, target, mask)
        row[f"{name}_ssim"] = masked_ssim(generated, target, mask)
    return row


def region_means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of :func:`region_row` values over the pairs that show each region."""
    out: dict[str, Any] = {}
    for name in REGIONS:
        for metric in REGION_METRICS:
            values = [r[f"{name}_{metric}"] for r in rows if r.get(f"{name}_{metric}") is not None]
            out[f"{name}_{metric}"] = float(np.mean(values)) if values else None
        out[f"{name}_pairs"] = sum(r.get(f"{name}_colour_error") is not None for r in rows)
    return out


def background_fill(
    source: torch.Tensor | np.ndarray,
    source_parsing: torch.Tensor | np.ndarray,
    label_set: str | LabelSet = "lip",
) -> np.ndarray:
    """Each source image filled with the mean colour of its Background-label pixels.

    A source with no background pixel is filled with its own mean colour.
    """
    images = _as_images(source, "source")
    labels = _label_set(label_set)
    maps = _as_label_maps(source_parsing, images.shape[0], images.shape[1:3])
    out = np.empty_like(images)
    for i, (image, labels_map) in enumerate(zip(images, maps, strict=True)):
        mask = labels_map == labels.index(BACKGROUND)
        colour = image[mask].mean(axis=0) if mask.any() else image.reshape(-1, 3).mean(axis=0)
        out[i] = colour
    return out


def summary_scores(
    generated: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    target_parsing: torch.Tensor | np.ndarray,
    label_set: str | LabelSet = "lip",
) -> dict[str, Any]:
    """Whole-image means (SSIM, SSIM_256, PSNR) and region means, without per-image rows."""
    pred = torch.as_tensor(_as_images(generated, "generated"))
    truth = torch.as_tensor(_as_images(target, "target"))
    whole = image_metrics(pred, truth)
    regions = region_scores(pred, truth, target_parsing, label_set)
    keep = ("ssim", "ssim_256", "psnr", "psnr_infinite_pairs")
    return {
        **{k: whole[k] for k in keep},
        **{k: v for k, v in regions.items() if k != "per_image"},
    }


def baseline_scores(
    source: torch.Tensor | np.ndarray,
    source_parsing: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    target_parsing: torch.Tensor | np.ndarray,
    label_set: str | LabelSet = "lip",
) -> dict[str, dict[str, Any]]:
    """The two trivial baselines' scores on the same pairs, for a table beside the model.

    ``copy_source`` answers with the source image unchanged; ``background_fill`` with a flat
    image of the source's background colour (:func:`background_fill`). Images are
    (B, H, W, 3) in [0, 1], label maps (B, H, W). Each entry is :func:`summary_scores`.
    """
    answers = {
        "copy_source": _as_images(source, "source"),
        "background_fill": background_fill(source, source_parsing, label_set),
    }
    return {
        name: summary_scores(answer, target, target_parsing, label_set)
        for name, answer in answers.items()
    }
