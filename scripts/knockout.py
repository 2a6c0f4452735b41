"""What a trained checkpoint relies on: its scores with parts of the fusion switched off.

    python scripts/knockout.py --out runs/knockout          # the shipped model
    python scripts/knockout.py --checkpoint FILE --out DIR

Unlike ``scripts/ablation.py``, nothing is retrained: the same weights sample the same
held-out pairs with one part switched off at sampling time, so the table shows how much of
the trained model's output each part carries, not what a model trained without it would
reach. The variants:

- **without HPFA reweighting**: every weight of eq. 6 is 1 (plain attention over the source);
- **without CAA**: ``FusionSettings(use_caa=False)``;
- **without source attention**: fusion strength 0, so neither HPFA nor CAA adds anything
  and only the CLIP context still carries the source;
- **another pair's source**: each pose gets the next pair's source, everything on;
- **fusion at the middle block only** and **without the middle block's fusion**: HPFA and
  CAA act at the middle block's layer alone, or at every layer but that one (the other
  layers' prepared sources are dropped, so they run as plain self-attention). The middle
  block is where the shipped model's eq. 8 attention is peaked (``scripts/source_use.py``).

Scored on the ablation's held-out data seed (31337, never used in development) beside the
two trivial baselines, mean ± std over the sampling noise seeds; writes ``knockout.md`` and
``knockout.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

# The ablation's held-out data seed, columns and mean ± std (scripts/ is this script's path).
from ablation import COLUMNS, SCORE_SEED, mean_std

VARIANTS = (
    "full",
    "without HPFA reweighting",
    "without CAA",
    "without source attention",
    "another pair's source",
    "fusion at the middle block only",
    "without the middle block's fusion",
)


def _keeps(variant: str, layer: str) -> bool:
    """Whether ``variant`` fuses at ``layer`` (a TargetNet self-attention layer's name)."""
    middle = layer.startswith("middle")
    if variant == "fusion at the middle block only":
        return middle
    if variant == "without the middle block's fusion":
        return not middle
    return True


def _pipeline(checkpoint: Path, variant: str):
    """The checkpoint's pipeline; plain attention over the source for the reweighting
    knock-out (the HPFA modules of this private copy, built from the same weights)."""
    from truepose_core.hpfa import HPFA
    from truepose_core.pipeline import TruePosePipeline

    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    if variant == "without HPFA reweighting":
        for module in pipe.model.modules():
            if isinstance(module, HPFA):
                module.reweight = False
    return pipe


@torch.no_grad()
def generate(pipe, batch, variant: str, noise_seed: int, steps: int, cfg: float) -> torch.Tensor:
    """One image per pair with ``variant``'s part switched off, 8 pairs per call."""
    from truepose_core.config import SamplingConfig
    from truepose_core.fusion import FusionSettings
    from truepose_core.sampling import sample

    fusion = {
        "without CAA": FusionSettings(use_caa=False),
        "without source attention": FusionSettings(strength=0.0),
    }.get(variant)
    n = len(batch["poses"])
    hw = tuple(batch["sources"].shape[-2:])
    f = pipe.config.latent_factor
    encoding = pipe.encode_source(batch["sources"], batch["parsing"])
    rows = torch.arange(n).roll(-1) if variant == "another pair's source" else torch.arange(n)
    out = []
    for start in range(0, n, 8):
        chunk = rows[start : start + 8]
        state = pipe.prepare(encoding, batch["poses"][start : start + 8], hw, chunk, fusion)
        layers = {name: src for name, src in state.layers.items() if _keeps(variant, name)}
        state = dataclasses.replace(state, layers=layers)
        settings = SamplingConfig(steps=steps, cfg_scale=cfg, seed=noise_seed * 1000 + start)
        latents = sample(pipe.model, state, (hw[0] // f, hw[1] // f), settings)
        out.append(pipe.decode_latents(latents))
    return torch.cat(out)


def _cell(values: list[float | None], digits: int) -> str:
    stat = mean_std(values)
    return "-" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def main() -> None:
    from truepose_core.cli import SHIPPED_MODEL
    from truepose_core.metrics.regions import baseline_scores, summary_scores
    from truepose_core.quality import held_out_batch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="default: the shipped small model")
    parser.add_argument("--out", default="runs/knockout", help="folder of the tables")
    parser.add_argument("--pairs", type=int, default=32, help="held-out pairs to score")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="noise seeds")
    parser.add_argument("--steps", type=int, default=35, help="DDIM steps")
    parser.add_argument("--cfg", type=float, default=3.5, help="eq. 11 w")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="default: all"
    )
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED_MODEL
    runs: dict[str, list[dict]] = {}
    batch = None
    for variant in args.variants:
        pipe = _pipeline(checkpoint, variant)
        if batch is None:
            batch = held_out_batch(tuple(pipe.config.resolution), args.pairs, SCORE_SEED)
            truth = batch["targets"].permute(0, 2, 3, 1)
            parsing = batch["target_parsing"]
        for seed in args.seeds:
            images = generate(pipe, batch, variant, seed, args.steps, args.cfg)
            scores = summary_scores(images.permute(0, 2, 3, 1), truth, parsing)
            runs.setdefault(variant, []).append({"seed": seed, **scores})
            print(variant, seed, {k: round(scores[k], 3) for k, _, _ in COLUMNS}, flush=True)
    baselines = baseline_scores(
        batch["sources"].permute(0, 2, 3, 1), batch["parsing"], truth, parsing
    )
    lines = [
        f"{checkpoint.name}: {args.pairs} held-out pairs (test split, data seed {SCORE_SEED}), "
        f"DDIM {args.steps} steps, cfg {args.cfg}; mean ± std over noise seeds {args.seeds}",
        "",
        "| output | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for variant, scores in runs.items():
        cells = [_cell([s.get(key) for s in scores], digits) for key, _, digits in COLUMNS]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    for name, scores in baselines.items():
        cells = [
            "-" if scores.get(key) is None else f"{scores[key]:.{digits}f}"
            for key, _, digits in COLUMNS
        ]
        lines.append(f"| {name.replace('_', ' ')} (baseline) | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "knockout.md").write_text("\n".join(lines) + "\n")
    report = {"checkpoint": checkpoint.name, "runs": runs, "baselines": baselines}
    (out / "knockout.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
