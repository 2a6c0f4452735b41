"""The shipped SynthFashion model end to end on held-out pairs, beside the trivial baselines.

This guards the sampler, the PatchVAE, the checkpoint format and the weights against
regressions with the demo's settings (35 DDIM steps, cfg 3.5). The full quality table, on
more pairs and a data seed used nowhere in development, is in the README and
``scripts/quality.py``; this test only checks what the model reliably does better than a
trivial baseline, and that its images are not noise.
"""

from __future__ import annotations

from truepose_core.cli import SHIPPED_MODEL
from truepose_core.config import SamplingConfig
from truepose_core.demo import DEMO_SEED
from truepose_core.pipeline import TruePosePipeline
from truepose_core.quality import generate, held_out_batch, quality_report

PAIRS = 4


def test_shipped_model_is_no_regression_on_held_out_pairs():
    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    batch = held_out_batch(tuple(pipe.config.resolution), PAIRS, DEMO_SEED)
    report = quality_report(pipe, batch, generate(pipe, batch, SamplingConfig()))
    model, fill = report["model"], report["background_fill"]
    # The model does not beat copying the source yet (README). What it reliably does: a
    # person in the target pose with the source's clothing colour, where filling the frame
    # with the background colour has neither.
    assert model["ssim"] > fill["ssim"], (model, fill)
    assert model["upper_clothes_colour_error"] < fill["upper_clothes_colour_error"], (model, fill)
    # Not noise: pure-noise samples (a broken sampler, VAE or checkpoint) score 6-9 dB here.
    assert model["psnr"] > 10, model
    # The VAE alone keeps colour and pattern (the ceiling every model shares; 27.6 dB over the
    # README's 48 pairs, 26.8 on these four).
    vae = report["vae_reconstruction"]
    assert vae["psnr"] > 26 and vae["upper_clothes_colour_error"] < 4, vae
