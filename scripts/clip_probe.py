"""How much of a region's colour a CLIP image tower keeps: a linear probe.

    python scripts/clip_probe.py --clip tiny
    python scripts/clip_probe.py --clip runs/clip-synth/clip.safetensors

CAA's tokens are the CLIP embeddings of the source's parsing regions, and the UNets' context
is the whole source's. This embeds the sources of ``--pairs`` held-out SynthFashion pairs
(test split, ``--data-seed``) as TruePose does, fits a ridge regression from an embedding to
the mean RGB colour (0..255) of a region's pixels on the first three quarters of the pairs,
and prints its error (the distance between predicted and true mean colour, averaged) on the
last quarter for the upper clothes, the lower clothes (pants or skirt) and the face, from
the region's own embedding and from the whole image's. "predict the mean" is the error of
predicting the fitted pairs' average colour for every pair: what an embedding that keeps no
colour scores. ``tiny`` is the randomly initialised tower of ``clip = "tiny"`` (seed 0's).

A linear probe shows what is easy to read. ``--mlp`` adds a small nonlinear probe (two hidden
layers of 64), trained on the first 60% of the pairs, stopped where its error on the next 15%
is lowest and scored on the same last quarter: what a small network reads back, a closer
bound on the colour an embedding holds.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

#: Region name -> LIP labels whose pixels give its mean colour; the embedding is the first
#: present label's.
REGIONS = {"upper": (5,), "lower": (9, 12), "face": (13,)}


def ridge_error(x: np.ndarray, y: np.ndarray, fit: int, lam: float = 1e-2) -> tuple[float, float]:
    """(probe error, predict-the-mean error) on rows ``fit:`` of a ridge fit on rows ``:fit``."""
    mu, sd = x[:fit].mean(0), x[:fit].std(0) + 1e-6
    a = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.linalg.solve(a[:fit].T @ a[:fit] + lam * fit * np.eye(a.shape[1]), a[:fit].T @ y[:fit])
    err = np.linalg.norm(a[fit:] @ w - y[fit:], axis=1).mean()
    base = np.linalg.norm(y[:fit].mean(0) - y[fit:], axis=1).mean()
    return float(err), float(base)


def mlp_error(
    x: np.ndarray,
    y: np.ndarray,
    fit: int,
    iters: int = 3000,
    check_every: int = 50,
    hidden: int = 64,
) -> float:
    """Probe error on rows ``fit:`` of an MLP trained on the first 80% of rows ``:fit`` and
    stopped at the iteration whose error on the rest of ``:fit`` (validation) is lowest."""
    train = int(0.8 * fit)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32) / 255.0
    mu, sd = xt[:train].mean(0), xt[:train].std(0) + 1e-6
    xt = (xt - mu) / sd
    with torch.random.fork_rng():  # a fixed initialisation, without touching the caller's RNG
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(xt.shape[1], hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, yt.shape[1]),
        )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)

    def error(rows: slice) -> float:
        with torch.no_grad():
            return float((net(xt[rows]) - yt[rows]).norm(dim=1).mean() * 255.0)

    best_val, best_test = float("inf"), float("nan")
    for it in range(1, iters + 1):
        loss = (net(xt[:train]) - yt[:train]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % check_every == 0:
            val = error(slice(train, fit))
            if val < best_val:
                best_val, best_test = val, error(slice(fit, None))
    return best_test


def probe_rows(encoder, data, pairs: int, label_set) -> dict[str, list]:
    """Per region: (region embedding, whole-image embedding, mean colour) of each pair with it."""
    rows: dict[str, list] = {name: [] for name in REGIONS}
    for start in range(0, pairs, 16):
        items = [data[i] for i in range(start, min(pairs, start + 16))]
        images = torch.stack([it["source_image"] for it in items]).add(1).div(2)
        parsing = torch.stack([it["source_parsing"] for it in items]).long()
        out = encoder(images, parsing, label_set)
        for b in range(len(items)):
            for name, labels in REGIONS.items():
                present = [lab for lab in labels if bool(out.region_present[b, lab])]
                if not present:
                    continue
                mask = torch.isin(parsing[b], torch.tensor(labels))
                colour = images[b][:, mask].mean(1) * 255
                rows[name].append((out.region_embeds[b, present[0]], out.image_embeds[b], colour))
    return rows


def main() -> None:
    from truepose_core.clip_regions import ClipRegionEncoder, build_clip_vision, load_clip_vision
    from truepose_core.data.synthfashion import SynthFashion
    from truepose_core.parsing import get_label_set
    from truepose_core.presets import tiny_truepose_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="tiny", help="'tiny' or an open_clip image tower file")
    ap.add_argument("--pairs", type=int, default=1200)
    ap.add_argument("--data-seed", type=int, default=11)
    ap.add_argument("--json", default="", help="also write the figures here")
    ap.add_argument("--mlp", action="store_true", help="also fit the nonlinear probe")
    args = ap.parse_args()

    config = tiny_truepose_config()
    if args.clip == "tiny":
        torch.manual_seed(1)  # what ``truepose train`` draws for seed 0 (train.build_clip)
        visual = build_clip_vision(config)
    else:
        visual = load_clip_vision(config, args.clip)
    encoder = ClipRegionEncoder(visual, config.clip_image_size)
    data = SynthFashion(size=(128, 88), length=args.pairs, seed=args.data_seed, split="test")
    rows = probe_rows(encoder, data, args.pairs, get_label_set(config.label_set))
    result = {}
    print(f"clip {args.clip}: {args.pairs} test pairs (data seed {args.data_seed})")
    for name, found in rows.items():
        region = torch.stack([r[0] for r in found]).numpy()
        whole = torch.stack([r[1] for r in found]).numpy()
        colour = torch.stack([r[2] for r in found]).numpy()
        fit = int(0.75 * len(found))
        err, base = ridge_error(region, colour, fit)
        whole_err, _ = ridge_error(whole, colour, fit)
        result[name] = {"region": err, "whole": whole_err, "mean": base, "pairs": len(found)}
        line = (
            f"  {name:6s} region embedding {err:6.1f}   whole image {whole_err:6.1f}   "
            f"predict the mean {base:6.1f}   ({len(found) - fit} scored pairs)"
        )
        if args.mlp:
            result[name]["mlp_region"] = mlp_error(region, colour, fit)
            result[name]["mlp_whole"] = mlp_error(whole, colour, fit)
            line += (
                f"   MLP: region {result[name]['mlp_region']:6.1f}, "
                f"whole {result[name]['mlp_whole']:6.1f}"
            )
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clip": args.clip, "data_seed": args.data_seed, **result}, f, indent=1)


if __name__ == "__main__":
    main()
