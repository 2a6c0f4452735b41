"""``truepose demo``: the shipped small model on held-out SynthFashion pairs.

Writes a grid (source | target skeleton | generated | ground truth, one row per pair) and a
metrics JSON that holds the model's scores (whole image and face / clothes regions) beside
the trivial baselines' on the same pairs (:mod:`truepose_core.quality`). SynthFashion's test
split never shares an identity with its training split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_file, write_text
from .config import SamplingConfig
from .errors import CheckpointError

DEMO_SEED = 1234  # the held-out split's seed; fixed so every run shows the same pairs


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def run_demo(
    checkpoint: Path,
    out_dir: Path,
    pairs: int = 8,
    steps: int = SamplingConfig.steps,
    cfg_scale: float = SamplingConfig.cfg_scale,
    seed: int = 0,
) -> dict[str, Any]:
    from .metrics import image_metrics
    from .pipeline import TruePosePipeline
    from .quality import generate, held_out_batch, quality_report

    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: demo checkpoint not found")
    started = time.monotonic()
    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    h, w = pipe.config.resolution
    batch = held_out_batch((h, w), pairs, DEMO_SEED)
    sources, truth, skeletons = batch["sources"], batch["targets"], batch["skeletons"]
    settings = SamplingConfig(steps=steps, cfg_scale=cfg_scale, seed=seed)
    generated = generate(pipe, batch, settings)

    rows = [
        np.concatenate(cols, axis=1)
        for cols in zip(
            _to_uint8(sources),
            _to_uint8(skeletons),
            _to_uint8(generated),
            _to_uint8(truth),
            strict=True,
        )
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path = out_dir / "demo_grid.png"
    with atomic_file(grid_path) as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")
    per_image = image_metrics(generated.permute(0, 2, 3, 1), truth.permute(0, 2, 3, 1))
    # The model beside the trivial baselines on the same pairs, with the region scores.
    scores = quality_report(pipe, batch, generated)
    seconds = time.monotonic() - started
    report = {
        "checkpoint": str(checkpoint),
        "pairs": batch["pair_ids"],
        "settings": {"steps": steps, "cfg_scale": cfg_scale, "seed": seed},
        "summary": {"count": pairs, **scores["model"]},
        "baselines": {k: v for k, v in scores.items() if k != "model"},
        "per_image": per_image.get("per_image", []),
        "seconds": seconds,
    }
    metrics_path = out_dir / "demo_metrics.json"
    write_text(metrics_path, json.dumps(report, indent=2, default=float) + "\n")
    return {**report, "scores": scores, "grid": grid_path, "metrics": metrics_path}
