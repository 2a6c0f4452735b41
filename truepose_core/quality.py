"""A model's quality on held-out SynthFashion pairs, always beside the trivial baselines.

Whole-image SSIM/PSNR reward a blurred silhouette on the right background, so a figure means
something only next to what doing nothing gives on the same pairs: copying the source image
unchanged, and filling the frame with the source's background colour. The VAE alone (encode +
decode the ground truth) is the ceiling no diffusion model in its latent space can pass.
Region scores (``metrics.regions``) judge the face and the clothes, the paper's real claim.
"""

from __future__ import annotations

from typing import Any

import torch

from .config import SamplingConfig

#: Rows of :func:`quality_report`'s table, in print order.
OUTPUTS = ("model", "copy_source", "background_fill", "vae_reconstruction")
#: (key, title, digits) of the printed columns.
COLUMNS = (
    ("ssim", "SSIM", 3),
    ("ssim_256", "SSIM_256", 3),
    ("psnr", "PSNR", 2),
    ("upper_clothes_colour_error", "upper-clothes colour err", 1),
    ("face_colour_error", "face colour err", 1),
    ("lower_clothes_colour_error", "lower-clothes colour err", 1),
    ("upper_clothes_ssim", "upper-clothes SSIM", 3),
    ("face_ssim", "face SSIM", 3),
)


def held_out_batch(size: tuple[int, int], pairs: int, seed: int) -> dict[str, Any]:
    """``pairs`` pairs of SynthFashion's test split (no identity shared with training)."""
    from .data.batch import pair_batch
    from .data.synthfashion import SynthFashion

    data = SynthFashion(size=size, length=pairs, seed=seed, split="test")
    items = [data[i] for i in range(pairs)]
    batch = pair_batch(items)
    batch["target_parsing"] = torch.stack([it["target_parsing"] for it in items])
    return batch


@torch.no_grad()
def generate(pipe, batch: dict[str, Any], settings: SamplingConfig, chunk: int = 8):
    """The pipeline's images (P, 3, H, W) for every pair, ``chunk`` pairs per call."""
    out = []
    for start in range(0, len(batch["poses"]), chunk):
        rows = slice(start, start + chunk)
        out.append(
            pipe(batch["sources"][rows], batch["parsing"][rows], batch["poses"][rows], settings)
        )
    return torch.cat(out)


@torch.no_grad()
def vae_reconstruction(pipe, images: torch.Tensor) -> torch.Tensor:
    """Encode + decode (P, 3, H, W) images in [0, 1] with the pipeline's VAE."""
    return pipe.decode_latents(pipe.encode_latents(images))


def quality_report(pipe, batch: dict[str, Any], generated: torch.Tensor) -> dict[str, Any]:
    """Scores of the model and of the three references on the same pairs.

    Returns ``{output: {metric: value}}`` for :data:`OUTPUTS`, each with whole-image SSIM,
    SSIM_256, PSNR and the region means of :func:`metrics.regions.summary_scores`.
    """
    from .metrics.regions import baseline_scores, summary_scores

    truth = batch["targets"].permute(0, 2, 3, 1)
    parsing = batch["target_parsing"]
    label_set = pipe.config.label_set
    report = {"model": summary_scores(generated.permute(0, 2, 3, 1), truth, parsing, label_set)}
    report.update(
        baseline_scores(
            batch["sources"].permute(0, 2, 3, 1), batch["parsing"], truth, parsing, label_set
        )
    )
    recon = vae_reconstruction(pipe, batch["targets"]).permute(0, 2, 3, 1)
    report["vae_reconstruction"] = summary_scores(recon, truth, parsing, label_set)
    return report


def over_seeds(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from :func:`quality_report`'s reports of the same pairs, one per noise seed.

    The model's row becomes the mean over seeds, ``model_std`` holds the standard deviations
    (what the starting noise alone moves) and ``model_per_seed`` every seed's row; the
    baselines and the VAE do not depend on the noise and are taken from the first report.
    """
    import statistics

    rows = [r["model"] for r in reports]
    mean, std = {}, {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if any(v is None for v in values) or isinstance(values[0], int):
            mean[key], std[key] = values[0], None
            continue
        mean[key] = statistics.fmean(values)
        std[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return {**reports[0], "model": mean, "model_std": std, "model_per_seed": rows}


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of :func:`quality_report` (or of :func:`over_seeds`: mean ± std)."""
    lines = [
        "| output | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    spread = report.get("model_std", {})
    for name in OUTPUTS:
        scores = report[name]
        cells = []
        for key, _, digits in COLUMNS:
            if scores.get(key) is None:
                cells.append("-")
                continue
            cell = f"{scores[key]:.{digits}f}"
            if name == "model" and spread.get(key) is not None:
                cell += f" ± {spread[key]:.{digits}f}"
            cells.append(cell)
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
