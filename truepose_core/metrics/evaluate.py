"""Evaluation over folders of generated and ground-truth images, and the written report.

``truepose evaluate`` runs :func:`evaluate_folders` and :func:`write_report`. Per-image
metrics come from :mod:`.image` and :mod:`.regions`, the networks from :mod:`.lpips` and
:mod:`.fid`; this module only pairs the files, batches the network passes and writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, ImageError, ParsingError
from ..parsing import get_label_set
from . import fid as fid_module
from .fid import INCEPTION_SIZE, InceptionFeatures, load_inception
from .files import StrPath
from .image import SSIM_256_SIGMA, SSIM_WIN_SIZE, image_means, psnr, ssim_256, ssim_skimage
from .lpips import load_lpips
from .regions import REGIONS, region_means, region_row

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
LPIPS_MISSING = "LPIPS skipped: no AlexNet LPIPS weights; pass --lpips-weights FILE (see README)"
FID_MISSING = "FID skipped: no Inception weights; pass --fid-weights FILE (see README)"
REGIONS_MISSING = "region metrics skipped: no target parsing; pass --parsing DIR (see README)"


def _list_images(folder: StrPath, what: str) -> dict[str, Path]:
    """Image files of a folder by stem; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what}: {folder} is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise DataError(
                f"{what}: two images named {path.stem!r}: {found[path.stem].name}, {path.name}"
            )
        found[path.stem] = path
    if not found:
        raise DataError(f"{what}: no images {IMAGE_SUFFIXES} in {folder}")
    return found


def _load_rgb(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Load an RGB uint8 image, resized to ``size`` (H, W) with PIL bicubic when it differs.

    PIL's bicubic filter is antialiased, as CFLD's ``Resize(..., BICUBIC, antialias=True)``.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    if size is not None and (rgb.height, rgb.width) != tuple(size):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _load_labels(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A label-index PNG as an (H, W) int array, resized (nearest) to ``size`` (H, W)."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I"):
                raise ParsingError(
                    f"{path}: a label map must be a single-channel image of class indices "
                    f"(mode L or P), got mode {image.mode}; write it with truepose parse"
                )
            if (image.height, image.width) != tuple(size):
                image = image.resize((size[1], size[0]), Image.Resampling.NEAREST)
            return np.asarray(image, dtype=np.int64)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path}: cannot read label map ({exc})") from exc


def _to_batch(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack (H, W, 3) [0, 1] arrays into (N, 3, H, W); unequal sizes go to 299x299 first."""
    tensors = [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None] for i in images]
    if len({t.shape for t in tensors}) > 1:
        size = (INCEPTION_SIZE, INCEPTION_SIZE)
        tensors = [
            F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in tensors
        ]
    return torch.cat(tensors).to(device)


@dataclass
class _Pending:
    """Images waiting for a batched network pass."""

    pred: list[np.ndarray]
    gt: list[np.ndarray]
    rows: list[dict[str, Any]]


def _inception_features(
    model: InceptionFeatures,
    paths: Sequence[Path],
    size: tuple[int, int] | None,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """Features of the images in ``paths``, each loaded with the ``size`` rule."""
    chunks = []
    for start in range(0, len(paths), batch_size):
        arrays = [
            _load_rgb(p, size).astype(np.float32) / 255.0 for p in paths[start : start + batch_size]
        ]
        with torch.inference_mode():
            chunks.append(model(_to_batch(arrays, device)).double().cpu().numpy())
    return np.concatenate(chunks)


def evaluate_folders(
    pred_dir: StrPath,
    gt_dir: StrPath,
    *,
    lpips_weights: StrPath | None = None,
    fid_weights: StrPath | None = None,
    fid_real_dir: StrPath | None = None,
    parsing_dir: StrPath | None = None,
    label_set: str = "lip",
    size: tuple[int, int] | None = None,
    ssim_256_sigma: float = SSIM_256_SIGMA,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Compute every metric we have weights for over generated/ground-truth image folders.

    Images are matched by file stem. Each ground truth is resized to ``size`` (H, W) when
    given (CFLD's ``TEST.IMG_SIZE``, 256x176 or 512x352), and each prediction to its ground
    truth's size when they differ (CFLD resizes its samples to the gt size), both with PIL
    bicubic on uint8 pixels. FID compares the predictions with the images of
    ``fid_real_dir``, loaded with the same ``size`` rule; the papers use the *training*
    images there, and without it the ground-truth folder is used. Unlike PIDM/PCDMs, no
    last partial batch is dropped. With ``parsing_dir`` (one label map of ``label_set`` per
    ground truth, same stem, as ``truepose parse`` writes them), the region metrics of
    :mod:`.regions` are added; each map is resized (nearest) to its ground truth's size.

    Returns a dict with the means (``ssim``, ``ssim_256``, ``psnr``, ``lpips``, ``fid``, the
    region means), ``count``, ``psnr_infinite_pairs``, ``per_image`` rows, the ``protocol``
    used and ``missing``: why a metric was skipped.
    """
    device = torch.device(device)
    preds, gts = _list_images(pred_dir, "pred_dir"), _list_images(gt_dir, "gt_dir")
    if preds.keys() != gts.keys():
        only_pred = sorted(preds.keys() - gts.keys())
        only_gt = sorted(gts.keys() - preds.keys())
        raise DataError(
            f"pred_dir and gt_dir hold different images: {len(only_pred)} only in pred_dir "
            f"{only_pred[:5]}, {len(only_gt)} only in gt_dir {only_gt[:5]}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    missing: list[str] = []
    labels = get_label_set(label_set)
    parsings = _list_images(parsing_dir, "parsing_dir") if parsing_dir is not None else None
    if parsings is not None and not gts.keys() <= parsings.keys():
        lacking = sorted(gts.keys() - parsings.keys())
        raise DataError(
            f"parsing_dir lacks the label maps of {len(lacking)} ground truths {lacking[:5]}; "
            "make them with truepose parse --images GT_DIR --out PARSING_DIR"
        )
    if parsings is None:
        missing.append(REGIONS_MISSING)
    lpips_model = load_lpips(lpips_weights).to(device) if lpips_weights is not None else None
    if lpips_model is None:
        missing.append(LPIPS_MISSING)
    inception = None
    if fid_weights is not None:
        inception = load_inception(fid_weights).to(device)
    else:
        missing.append(FID_MISSING)

    rows: list[dict[str, Any]] = []
    pending = _Pending([], [], [])
    pred_features: list[np.ndarray] = []

    def flush() -> None:
        if not pending.rows:
            return
        with torch.inference_mode():
            if lpips_model is not None:
                if len({p.shape for p in pending.pred}) == 1:
                    values = lpips_model(
                        _to_batch(pending.pred, device), _to_batch(pending.gt, device)
                    ).tolist()
                else:  # pairs of different sizes: one pair at a time, never resized
                    values = [
                        float(lpips_model(_to_batch([p], device), _to_batch([g], device))[0])
                        for p, g in zip(pending.pred, pending.gt, strict=True)
                    ]
                for row, value in zip(pending.rows, values, strict=True):
                    row["lpips"] = float(value)
            if inception is not None:
                pred_features.append(
                    inception(_to_batch(pending.pred, device)).double().cpu().numpy()
                )
        pending.pred.clear()
        pending.gt.clear()
        pending.rows.clear()

    for stem in sorted(gts):
        gt = _load_rgb(gts[stem], size)
        pred = _load_rgb(preds[stem], gt.shape[:2])
        gt_f, pred_f = gt.astype(np.float32) / 255.0, pred.astype(np.float32) / 255.0
        row: dict[str, Any] = {
            "name": stem,
            "ssim": ssim_skimage(pred_f, gt_f),
            "ssim_256": ssim_256(pred_f, gt_f, sigma=ssim_256_sigma),
            "psnr": psnr(pred_f, gt_f),
        }
        if parsings is not None:
            row.update(region_row(pred_f, gt_f, _load_labels(parsings[stem], gt.shape[:2]), labels))
        rows.append(row)
        if lpips_model is not None or inception is not None:
            pending.pred.append(pred_f)
            pending.gt.append(gt_f)
            pending.rows.append(row)
            if len(pending.rows) >= batch_size:
                flush()
    flush()

    results: dict[str, Any] = {"count": len(rows), **image_means(rows)}
    if parsings is not None:
        results.update(region_means(rows))
    real_dir = Path(fid_real_dir) if fid_real_dir is not None else Path(gt_dir)
    if inception is not None:
        real_paths = list(_list_images(real_dir, "fid_real_dir").values())
        real = _inception_features(inception, real_paths, size, device, batch_size)
        results["fid"] = fid_module.fid_from_features(np.concatenate(pred_features), real)
        results["fid_real_count"] = len(real_paths)
    results["protocol"] = {
        "size": list(size) if size is not None else None,
        "resize": "PIL bicubic: gt to size when given, pred to the gt size",
        "ssim": f"skimage, uniform {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window, data_range 1",
        "ssim_256": f"skimage, gaussian sigma {ssim_256_sigma}, [0, 255], data_range pred max-min",
        "psnr": "skimage, data_range 1; mean over finite values",
        "lpips": "AlexNet LPIPS v0.1, inputs [0, 1] mapped to [-1, 1]",
        "fid_inception": None if inception is None else inception.variant,
        "fid_real_dir": str(real_dir) if inception is not None else None,
        "regions": None
        if parsings is None
        else {
            "label_set": labels.name,
            "parsing_dir": str(parsing_dir),
            "labels": {name: list(names) for name, names in REGIONS.items()},
            "colour_error": "Euclidean distance of the region's mean RGB colours, 0..255",
            "ssim": "mean of the SSIM map (gaussian sigma 1.5, data_range 1) over the region",
        },
    }
    results["missing"] = missing
    results["per_image"] = rows
    return results


def _json_safe(value: Any) -> Any:
    """Replace inf/nan floats by strings so the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


_REPORT_ROWS = (
    ("lpips", "LPIPS", "lower", 4),
    ("ssim", "SSIM", "higher", 4),
    ("ssim_256", "SSIM_256", "higher", 4),
    ("psnr", "PSNR", "higher", 3),
    ("fid", "FID", "lower", 3),
)
_REGION_ROWS = tuple(
    (f"{name}_{metric}", f"{name.replace('_', ' ')} {metric.replace('_', ' ')}", better, digits)
    for name in REGIONS
    for metric, better, digits in (("colour_error", "lower", 2), ("ssim", "higher", 4))
)


def write_report(results: dict[str, Any], out_dir: StrPath) -> tuple[Path, Path]:
    """Write ``metrics.json`` (everything) and ``metrics.md`` (a summary table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "metrics.json", out / "metrics.md"
    json_path.write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
    lines = [
        f"# Metrics ({results.get('count', '?')} image pairs)",
        "",
        "| metric | value | better |",
        "|---|---|---|",
    ]
    for key, label, better, digits in _REPORT_ROWS:
        if key in results:
            value = results[key]
            text = f"{value:.{digits}f}" if math.isfinite(value) else str(value)
            lines.append(f"| {label} | {text} | {better} |")
        else:
            lines.append(f"| {label} | skipped | {better} |")
    for key, label, better, digits in _REGION_ROWS:
        if key in results:
            value = results[key]
            text = "no pair shows it" if value is None else f"{value:.{digits}f}"
            lines.append(f"| {label} | {text} | {better} |")
    notes = list(results.get("missing", []))
    if results.get("psnr_infinite_pairs"):
        notes.append(
            f"PSNR: {results['psnr_infinite_pairs']} identical pairs (infinite PSNR) left out "
            "of the mean"
        )
    inception = results.get("protocol", {}).get("fid_inception")
    if inception == "torchvision":
        notes.append("FID uses CFLD's torchvision Inception; not comparable with TF-FID numbers")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
