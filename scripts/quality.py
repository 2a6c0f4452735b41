"""The quality table of a SynthFashion checkpoint: the model beside the trivial baselines.

    python scripts/quality.py --pairs 48 --data-seed 2026

Generates ``--pairs`` held-out pairs (SynthFashion's test split, ``--data-seed``) with the
demo's settings (35 DDIM steps, cfg 3.5) and prints, on the same pairs: the model, copying
the source, filling with the source's background colour, and the VAE alone (encode + decode
the ground truth). With several ``--seeds`` the model's row is the mean ± standard deviation
over those noise seeds: the starting noise alone moves a small model's scores. ``--json``
also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    from truepose_core.cli import SHIPPED_MODEL
    from truepose_core.config import SamplingConfig
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.quality import (
        format_table,
        generate,
        held_out_batch,
        over_seeds,
        quality_report,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="default: the shipped small model")
    parser.add_argument("--pairs", type=int, default=48, help="held-out pairs to score")
    parser.add_argument("--data-seed", type=int, default=2026, help="test-split data seed")
    parser.add_argument("--steps", type=int, default=SamplingConfig.steps, help="DDIM steps")
    parser.add_argument("--cfg", type=float, default=SamplingConfig.cfg_scale, help="eq. 11 w")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="noise seeds")
    parser.add_argument("--json", default="", help="also write the report to this file")
    parser.add_argument(
        "--vae-grid",
        default="",
        help="also write a PNG of the first 8 ground truths (top) over their VAE round trips",
    )
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED_MODEL
    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    batch = held_out_batch(tuple(pipe.config.resolution), args.pairs, args.data_seed)
    reports = []
    for seed in args.seeds:
        settings = SamplingConfig(steps=args.steps, cfg_scale=args.cfg, seed=seed)
        reports.append(quality_report(pipe, batch, generate(pipe, batch, settings)))
    report = over_seeds(reports) if len(reports) > 1 else reports[0]
    print(
        f"{checkpoint.name}: {args.pairs} held-out pairs (test split, data seed "
        f"{args.data_seed}), DDIM {args.steps} steps, cfg {args.cfg}, noise seeds {args.seeds}"
    )
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if args.vae_grid:
        from torchvision.utils import save_image

        from truepose_core.quality import vae_reconstruction

        truth = batch["targets"][:8]
        grid = torch.cat([truth, vae_reconstruction(pipe, truth)])
        # Pixels repeated 3x3 so that 2-3 px stripes and the printed words can be seen.
        save_image(torch.nn.functional.interpolate(grid, scale_factor=3), args.vae_grid, nrow=8)


if __name__ == "__main__":
    main()
