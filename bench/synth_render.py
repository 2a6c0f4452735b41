"""SynthFashion rendering against one training step: data must never bound training.

Times rendering one pair (two poses of one person, with labels) against one forward of the
shipped small model's UNet at batch 8, per pair. Goal: render / forward <= 1. A training step
costs several such forwards (two UNets, forward and backward), so one data worker keeps up.
(This replaces a timed assertion that once sat in the tests.)
"""

from __future__ import annotations

import numpy as np

from bench.common import machine, table, timed


def main(pairs: int = 16) -> str:
    import torch

    from truepose_core.cli import SHIPPED_MODEL
    from truepose_core.data import synthfashion as sf
    from truepose_core.pipeline import TruePosePipeline

    rng = np.random.default_rng(4)
    work = [
        (sf.sample_identity(rng), sf.sample_pose(rng), sf.sample_pose(rng)) for _ in range(pairs)
    ]

    def render() -> None:
        for identity, a, b in work:
            sf.render_person(identity, a)
            sf.render_person(identity, b)

    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    h, w = pipe.config.resolution
    unet = pipe.model.target_unet
    latents = torch.randn(8, unet.config.in_channels, h // 8, w // 8)
    context = torch.zeros(8, 1, unet.config.cross_attention_dim)
    t = torch.full((8,), 500.0)

    def step() -> None:
        with torch.no_grad():
            unet(latents, t, context)

    render_s = timed(render, repeats=3) / pairs
    step_s = timed(step, repeats=3) / 8
    row = {"render_ms": render_s * 1e3, "step_ms": step_s * 1e3, "ratio": render_s / step_s}
    columns = [
        ("render_ms", "render one pair (ms)", ".2f"),
        ("step_ms", "UNet forward per pair (ms)", ".2f"),
        ("ratio", "render / forward (goal <= 1)", ".3f"),
    ]
    return f"## SynthFashion rendering\n\n{machine()}\n\n{table([row], columns)}"


if __name__ == "__main__":
    print(main())
