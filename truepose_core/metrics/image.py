"""SSIM, SSIM_256 and PSNR as the PGPIS papers compute them (PIDM, PCDMs, CFLD).

The rules follow the evaluation code those papers share, so our numbers mean the same thing
as theirs: PIDM ``utils/metrics.py``, PCDMs ``metrics.py`` (``Reconstruction_Metrics``) and
CFLD ``models/metrics.py``. Where they differ, the function says which rule it follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..errors import ImageError

# SSIM window of PIDM/PCDMs/CFLD ``compare_ssim(..., win_size=51)``.
SSIM_WIN_SIZE = 51
# ``ssim_256`` Gaussian sigma: PIDM and PCDMs use 1.2, CFLD uses 1.5.
SSIM_256_SIGMA = 1.2
CFLD_SSIM_256_SIGMA = 1.5


def _as_unit_image(image: np.ndarray, name: str) -> np.ndarray:
    """Return an (H, W, 3) float32 image in [0, 1], as the reference code feeds skimage.

    PIDM/PCDMs read uint8 files and divide by 255 in float32; CFLD's tensors are float32 too.
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ImageError(f"{name}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind != "f":
        raise ImageError(f"{name}: expected uint8 or float pixels, got dtype {array.dtype}")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ImageError(f"{name}: float pixels must lie in [0, 1], found [{low:.3f}, {high:.3f}]")
    return np.clip(array, 0.0, 1.0).astype(np.float32, copy=False)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/ground-truth pair of the same size."""
    pred_f, gt_f = _as_unit_image(pred, "pred"), _as_unit_image(gt, "gt")
    if pred_f.shape != gt_f.shape:
        raise ImageError(
            f"pred is {pred_f.shape[:2]} but gt is {gt_f.shape[:2]}; resize pred to the gt size "
            "first (evaluate_folders and image_metrics do this for you)"
        )
    return pred_f, gt_f


def ssim_skimage(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of the PGPIS papers: uniform 51x51 window on [0, 1] RGB, ``data_range=1``.

    PIDM/PCDMs: ``compare_ssim(img_gt, img_pred, data_range=1, win_size=51,
    multichannel=True)``; CFLD: the same with ``channel_axis=0`` on CHW tensors. Gaussian
    weights are off (skimage's default), so the window is a 51x51 box.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    height, width = gt_f.shape[:2]
    if min(height, width) < SSIM_WIN_SIZE:
        raise ImageError(
            f"gt is {height}x{width}; SSIM uses a {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window as the "
            "reference code does, so images must be at least that large (use 256x176)"
        )
    return float(
        structural_similarity(gt_f, pred_f, data_range=1.0, win_size=SSIM_WIN_SIZE, channel_axis=-1)
    )


def ssim_256(pred: np.ndarray, gt: np.ndarray, *, sigma: float = SSIM_256_SIGMA) -> float:
    """The papers' second SSIM: Gaussian window on [0, 255] with a data-dependent range.

    Exactly PIDM/PCDMs ``ssim_256``: ``compare_ssim(gt*255, pred*255, gaussian_weights=True,
    sigma=1.2, use_sample_covariance=False, data_range=pred_256.max() - pred_256.min())``.
    CFLD computes the same with ``sigma=1.5`` (pass ``sigma=CFLD_SSIM_256_SIGMA``). A constant
    prediction has range 0, where the reference code divides by zero; we use 255 instead.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    gt_256, pred_256 = gt_f * 255.0, pred_f * 255.0
    data_range = float(pred_256.max() - pred_256.min()) or 255.0
    return float(
        structural_similarity(
            gt_256,
            pred_256,
            gaussian_weights=True,
            sigma=sigma,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=data_range,
        )
    )


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR on [0, 1] images, ``compare_psnr(img_gt, img_pred, data_range=1)`` as all three.

    Identical images have zero error and give ``inf``; ``mean_psnr`` says how a mean over
    images treats that.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(gt_f, pred_f, data_range=1.0))


def mean_psnr(values: Sequence[float]) -> tuple[float, int]:
    """Mean PSNR over the finite values, and how many were infinite (identical pairs).

    The reference code takes ``np.mean`` over all images, so one identical pair makes its
    mean ``inf``. Generated images are never identical to the ground truth, so this differs
    only for copies (smoke tests); we average the finite values and report the count of
    infinite ones. With no finite value the mean is ``inf``.
    """
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.mean(finite)) if finite else math.inf), len(values) - len(finite)


def _check_image_tensor(image: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ImageError(f"{name}: expected a (B, H, W, 3) IMAGE tensor in [0, 1], got {shape}")
    low, high = float(image.min()), float(image.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ImageError(f"{name}: pixels must lie in [0, 1], found [{low:.3f}, {high:.3f}]")
    return image.detach().float().clamp(0.0, 1.0)


def image_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    lpips_model: torch.nn.Module | None = None,
    ssim_256_sigma: float = SSIM_256_SIGMA,
) -> dict[str, Any]:
    """SSIM, SSIM_256, PSNR (and LPIPS with a loaded model) of (B, H, W, 3) image batches.

    ``gt`` has batch B or 1 (one ground truth for every prediction). A prediction of another
    size is resized to the ground truth with bicubic antialiased interpolation, CFLD's rule
    (without its uint8 rounding). Returns the means and a ``per_image`` list.
    """
    pred_t, gt_t = _check_image_tensor(pred, "pred"), _check_image_tensor(gt, "gt")
    if gt_t.shape[0] not in (1, pred_t.shape[0]):
        raise ImageError(
            f"gt batch {gt_t.shape[0]} must be 1 or equal pred batch {pred_t.shape[0]}"
        )
    gt_t = gt_t.expand(pred_t.shape[0], -1, -1, -1)
    if pred_t.shape[1:3] != gt_t.shape[1:3]:
        pred_t = (
            F.interpolate(
                pred_t.permute(0, 3, 1, 2),
                size=tuple(gt_t.shape[1:3]),
                mode="bicubic",
                antialias=True,
            )
            .clamp(0.0, 1.0)
            .permute(0, 2, 3, 1)
        )
    rows = []
    pred_np, gt_np = pred_t.cpu().numpy(), gt_t.cpu().numpy()
    for p, g in zip(pred_np, gt_np, strict=True):
        rows.append(
            {
                "ssim": ssim_skimage(p, g),
                "ssim_256": ssim_256(p, g, sigma=ssim_256_sigma),
                "psnr": psnr(p, g),
            }
        )
    if lpips_model is not None:
        param = next(lpips_model.parameters())
        with torch.inference_mode():
            values = lpips_model(
                pred_t.permute(0, 3, 1, 2).to(param.device, param.dtype),
                gt_t.permute(0, 3, 1, 2).to(param.device, param.dtype),
            )
        for row, value in zip(rows, values.float().cpu().tolist(), strict=True):
            row["lpips"] = value
    return {**image_means(rows), "per_image": rows}


def image_means(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of per-image ``ssim``, ``ssim_256``, ``psnr`` (and ``lpips`` when there)."""
    psnr_mean, psnr_inf = mean_psnr([r["psnr"] for r in rows])
    out: dict[str, Any] = {
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "ssim_256": float(np.mean([r["ssim_256"] for r in rows])),
        "psnr": psnr_mean,
        "psnr_infinite_pairs": psnr_inf,
    }
    if rows and all("lpips" in r for r in rows):
        out["lpips"] = float(np.mean([r["lpips"] for r in rows]))
    return out
