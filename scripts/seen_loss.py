"""Whether a checkpoint memorised its training pairs: its loss on seen and unseen pairs.

    python scripts/seen_loss.py --checkpoint FILE --pairs 512 --train-pairs 20000

SynthFashion draws training pair i from (seed, split, i), and a run with ``train_pairs = N``
cycles through pairs 0..N-1. This script takes ``--pairs`` of those (seen) and as many from
far beyond N (unseen, the same distribution), gives the k-th seen and the k-th unseen pair
the same noise and timestep, and prints the noise-prediction MSE of each set, their paired
difference (unseen - seen, mean +- standard error) and the same per quarter of the timesteps.
A model that memorised its pairs scores clearly lower on the seen ones. The noise is plain
Gaussian noise (no training offset) and every condition is kept.
"""

from __future__ import annotations

import argparse

import torch

#: Unseen pairs are drawn from [UNSEEN_START, 2 * UNSEEN_START), far beyond any run's pairs.
UNSEEN_START = 1_000_000


def pair_indices(train_pairs: int, pairs: int, seed: int) -> tuple[list[int], list[int]]:
    """``pairs`` seen indices (below ``train_pairs``) and as many unseen ones."""
    if train_pairs > UNSEEN_START:
        raise SystemExit(f"--train-pairs must be at most {UNSEEN_START}, got {train_pairs}")
    g = torch.Generator().manual_seed(seed)
    seen = torch.randint(0, train_pairs, (pairs,), generator=g).tolist()
    unseen = torch.randint(UNSEEN_START, 2 * UNSEEN_START, (pairs,), generator=g).tolist()
    return seen, unseen


@torch.no_grad()
def pair_losses(
    pipe, items: list[dict], noise_seed: int, chunk: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair noise-prediction MSE and the timesteps used; pair k's noise and timestep
    depend only on (``noise_seed``, ``chunk``, k), so two lists of the same length are
    paired."""
    from truepose_core.data.batch import pair_batch
    from truepose_core.sampling import training_scheduler

    scheduler = training_scheduler(pipe.config)
    losses, steps = [], []
    for start in range(0, len(items), chunk):
        batch = pair_batch(items[start : start + chunk])
        n = len(batch["poses"])
        clean = pipe.encode_latents(batch["targets"])
        g = torch.Generator().manual_seed(noise_seed * 1_000_003 + start)
        noise = torch.randn(clean.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=g)
        encoding = pipe.encode_source(batch["sources"], batch["parsing"])
        state = pipe.prepare(encoding, batch["poses"], tuple(batch["sources"].shape[-2:]))
        noisy = scheduler.add_noise(clean, noise, t)
        rows, keep = torch.arange(n), torch.ones(n, dtype=torch.bool)
        eps = pipe.model.predict_noise(noisy, t, state, rows, keep)
        losses.append((eps.float() - noise).pow(2).mean(dim=(1, 2, 3)))
        steps.append(t)
    return torch.cat(losses), torch.cat(steps)


def _mean_se(x: torch.Tensor) -> str:
    se = x.std() / len(x) ** 0.5 if len(x) > 1 else torch.tensor(float("nan"))
    return f"{float(x.mean()):.5f} +- {float(se):.5f}"


def main() -> None:
    from truepose_core.data.synthfashion import SynthFashion
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.sampling import training_scheduler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a self-contained TruePose file")
    parser.add_argument("--pairs", type=int, default=512, help="pairs in each set")
    parser.add_argument("--train-pairs", type=int, default=20000, help="the run's train_pairs")
    parser.add_argument("--train-seed", type=int, default=0, help="the run's seed")
    parser.add_argument("--seed", type=int, default=6, help="draws the pairs and the noise")
    args = parser.parse_args()
    pipe = TruePosePipeline.from_checkpoint(args.checkpoint)
    data = SynthFashion(
        size=tuple(pipe.config.resolution), length=2 * UNSEEN_START, seed=args.train_seed
    )
    seen, unseen = pair_indices(args.train_pairs, args.pairs, args.seed)
    loss_seen, t = pair_losses(pipe, [data[i] for i in seen], args.seed)
    loss_unseen, _ = pair_losses(pipe, [data[i] for i in unseen], args.seed)
    total = training_scheduler(pipe.config).config.num_train_timesteps
    print("timesteps | pairs | seen MSE | unseen MSE | unseen - seen")
    quarters = [(q * total // 4, (q + 1) * total // 4) for q in range(4)] + [(0, total)]
    for lo, hi in quarters:
        m = (t >= lo) & (t < hi)
        if m.any():
            print(
                f"{lo}-{hi - 1} | {int(m.sum())} | {_mean_se(loss_seen[m])} | "
                f"{_mean_se(loss_unseen[m])} | {_mean_se(loss_unseen[m] - loss_seen[m])}"
            )


if __name__ == "__main__":
    main()
