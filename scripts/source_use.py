"""How much a checkpoint's predictions depend on its source image.

    python scripts/source_use.py --checkpoint FILE --pairs 16 --data-seed 11

For held-out pairs, noises the target's latent to a few timesteps (the model's own noise
schedule) and prints the MSE of the clean-latent estimate with each pair's own source, with
the next pair's source, and with no source (the unconditional branch). A model that reads
its source scores clearly lower with its own than with another's.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.quality import held_out_batch
    from truepose_core.sampling import training_scheduler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a self-contained TruePose file")
    parser.add_argument("--pairs", type=int, default=16, help="held-out pairs")
    parser.add_argument("--data-seed", type=int, default=11, help="test-split data seed")
    args = parser.parse_args()
    pipe = TruePosePipeline.from_checkpoint(args.checkpoint)
    n = args.pairs
    batch = held_out_batch(tuple(pipe.config.resolution), n, args.data_seed)
    hw = tuple(batch["sources"].shape[-2:])
    encoding = pipe.encode_source(batch["sources"], batch["parsing"])
    own = pipe.prepare(encoding, batch["poses"], hw)
    other = pipe.prepare(encoding, batch["poses"], hw, source_rows=torch.arange(n).roll(1))
    clean = pipe.encode_latents(batch["targets"])
    scheduler = training_scheduler(pipe.config)
    rows, yes = torch.arange(n), torch.ones(n, dtype=torch.bool)
    print("t | x0 MSE: own source | another pair's source | no source")
    with torch.no_grad():
        for t in (200, 500, 800, 950):
            noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(t))
            steps = torch.full((n,), t)
            noisy = scheduler.add_noise(clean, noise, steps)
            a = scheduler.alphas_cumprod[t]
            errors = []
            for state, conditional in ((own, yes), (other, yes), (own, ~yes)):
                eps = pipe.model.predict_noise(noisy, steps, state, rows, conditional)
                x0 = (noisy - (1 - a).sqrt() * eps) / a.sqrt()
                errors.append(float((x0 - clean).pow(2).mean()))
            print(f"{t} | " + " | ".join(f"{e:.3f}" for e in errors))


if __name__ == "__main__":
    main()
