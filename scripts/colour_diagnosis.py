"""Where a checkpoint's region colour errors come from: the conditioning or the noise.

    python scripts/colour_diagnosis.py --pairs 32 --data-seed 11 --seeds 0 1 2

``scripts/quality.py`` gives each region's colour error (the distance between the mean
colours of the region in the generated image and in the ground truth). This splits it, for
the upper clothes, the lower clothes and the face, on the pairs whose target and source both
show the region:

- **each seed**: the error of each noise seed, as ``quality.py`` scores it;
- **over seeds**: the error of each pair's colour averaged over the noise seeds (what the
  source and pose fix), and the mean distance of each seed's colour from that average (what
  the starting noise moves);
- **brightness / chroma**: the over-seeds error split into the offset shared by the three
  channels (a lighter or darker garment) and the rest (another hue or saturation); the two
  combine in quadrature;
- **copy the source**: the source image's colour inside the target's region, as
  ``quality.py``'s baseline;
- **source's own colour**: the error if the target's region were painted the mean colour of
  the same region in the *source*. It reads the target's parsing, so it is no baseline a
  user could run; it shows how far the source's own colour is from the target's (lighting
  and the parts a pose shows): what a model that carried that colour exactly would err.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: Regions of ``metrics.regions.REGIONS``, in print order.
REGION_ORDER = ("upper_clothes", "lower_clothes", "face")


def brightness_chroma(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split colour differences (..., 3) into the part shared by the three channels and the rest.

    Returns the Euclidean length of each part; ``brightness**2 + chroma**2 == |diff|**2``.
    """
    diff = np.asarray(diff, dtype=np.float64)
    shared = diff.mean(axis=-1, keepdims=True)
    return np.abs(shared[..., 0]) * np.sqrt(3.0), np.linalg.norm(diff - shared, axis=-1)


def seed_split(colours: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Errors of (S seeds, P pairs, 3) generated colours against (P, 3) true ones.

    ``each_seed``: the mean error of every seed; ``over_seeds``: the mean error of the
    per-pair colour averaged over seeds; ``noise_spread``: the mean distance of a seed's
    colour from that average; ``brightness`` / ``chroma``: the over-seeds error's parts.
    """
    colours = np.asarray(colours, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    average = colours.mean(axis=0)
    brightness, chroma = brightness_chroma(average - truth)
    return {
        "each_seed": np.linalg.norm(colours - truth, axis=-1).mean(axis=1).tolist(),
        "over_seeds": float(np.linalg.norm(average - truth, axis=-1).mean()),
        "noise_spread": float(np.linalg.norm(colours - average, axis=-1).mean()),
        "brightness": float(brightness.mean()),
        "chroma": float(chroma.mean()),
    }


def main() -> None:
    from truepose_core.cli import SHIPPED_MODEL
    from truepose_core.config import SamplingConfig
    from truepose_core.metrics.regions import mean_colour, region_masks
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.quality import generate, held_out_batch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="default: the shipped small model")
    parser.add_argument("--pairs", type=int, default=32, help="held-out pairs")
    parser.add_argument("--data-seed", type=int, default=11, help="test-split data seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="noise seeds")
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED_MODEL
    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    label_set = pipe.config.label_set
    batch = held_out_batch(tuple(pipe.config.resolution), args.pairs, args.data_seed)
    images = [
        generate(pipe, batch, SamplingConfig(seed=s)).permute(0, 2, 3, 1).numpy()
        for s in args.seeds
    ]
    truth = batch["targets"].permute(0, 2, 3, 1).numpy()
    sources = batch["sources"].permute(0, 2, 3, 1).numpy()
    result: dict[str, dict] = {}
    print(
        f"{checkpoint.name}: {args.pairs} held-out pairs (test split, data seed "
        f"{args.data_seed}), noise seeds {args.seeds}; colour errors 0..255"
    )
    target_masks = [region_masks(p.numpy(), label_set) for p in batch["target_parsing"]]
    source_masks = [region_masks(p.numpy(), label_set) for p in batch["parsing"]]
    for region in REGION_ORDER:
        generated, true, copied, own = [], [], [], []
        for i in range(args.pairs):
            target_mask, source_mask = target_masks[i][region], source_masks[i][region]
            if not (target_mask.any() and source_mask.any()):
                continue
            generated.append([mean_colour(im[i], target_mask) for im in images])
            true.append(mean_colour(truth[i], target_mask))
            copied.append(mean_colour(sources[i], target_mask))
            own.append(mean_colour(sources[i], source_mask))
        true_a = np.array(true)
        row = seed_split(np.array(generated).transpose(1, 0, 2), true_a)
        row["copy_source"] = float(np.linalg.norm(np.array(copied) - true_a, axis=1).mean())
        row["source_own_colour"] = float(np.linalg.norm(np.array(own) - true_a, axis=1).mean())
        row["pairs"] = len(true)
        result[region] = row
        each = " / ".join(f"{e:.1f}" for e in row["each_seed"])
        print(
            f"  {region:13s} each seed {each}; over seeds {row['over_seeds']:.1f} "
            f"(brightness {row['brightness']:.1f}, chroma {row['chroma']:.1f}), noise spread "
            f"{row['noise_spread']:.1f}; copy the source {row['copy_source']:.1f}; source's "
            f"own colour {row['source_own_colour']:.1f} ({row['pairs']} pairs)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": checkpoint.name, **result}, indent=1))


if __name__ == "__main__":
    main()
