"""Evaluation metrics for pose transfer, one module per job.

- :mod:`.image`: SSIM, SSIM_256 and PSNR as PIDM, PCDMs and CFLD compute them;
- :mod:`.lpips`: LPIPS (the ``lpips`` package's AlexNet v0.1);
- :mod:`.fid`: FID (pytorch-fid's TF-Inception blocks and Fréchet distance);
- :mod:`.regions`: colour error and SSIM inside the face and clothing regions, and the two
  trivial baselines (copy the source, fill with its background colour);
- :mod:`.evaluate`: folders of images in, ``metrics.json`` / ``metrics.md`` out;
- :mod:`.convert`: third-party LPIPS / FID weight files to safetensors, run once.

LPIPS and FID need the ``[metrics]`` extra and local weight files; nothing is downloaded.
"""

from .evaluate import FID_MISSING, LPIPS_MISSING, REGIONS_MISSING, evaluate_folders, write_report
from .fid import (
    INCEPTION_SIZE,
    InceptionFeatures,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    load_inception,
)
from .image import (
    CFLD_SSIM_256_SIGMA,
    SSIM_256_SIGMA,
    SSIM_WIN_SIZE,
    image_metrics,
    mean_psnr,
    psnr,
    ssim_256,
    ssim_skimage,
)
from .lpips import LPIPS, load_lpips
from .regions import (
    REGIONS,
    background_fill,
    baseline_scores,
    colour_error,
    masked_ssim,
    region_masks,
    region_scores,
    summary_scores,
)

__all__ = [
    "CFLD_SSIM_256_SIGMA",
    "FID_MISSING",
    "INCEPTION_SIZE",
    "LPIPS",
    "LPIPS_MISSING",
    "REGIONS",
    "REGIONS_MISSING",
    "SSIM_256_SIGMA",
    "SSIM_WIN_SIZE",
    "InceptionFeatures",
    "background_fill",
    "baseline_scores",
    "colour_error",
    "evaluate_folders",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "image_metrics",
    "load_inception",
    "load_lpips",
    "masked_ssim",
    "mean_psnr",
    "psnr",
    "region_masks",
    "region_scores",
    "ssim_256",
    "ssim_skimage",
    "summary_scores",
    "write_report",
]
