"""One source, many poses: the SourceNet runs once however many target poses there are.

Compares, on the shipped small model, (1) one source with N poses in one call against
(2) N separate single-pose sampling runs plus one SourceNet pass, for N = 1, 4, 16.
Goal: (1) <= 1.05 x (2).
"""

from __future__ import annotations

import argparse
import time

from bench.common import machine, table


def main(steps: int = 10, counts=(1, 4, 16)) -> str:
    from truepose_core.cli import SHIPPED_MODEL
    from truepose_core.config import SamplingConfig
    from truepose_core.data.batch import pair_batch
    from truepose_core.data.synthfashion import SynthFashion
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.sampling import sample

    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    h, w = pipe.config.resolution
    data = SynthFashion(size=(h, w), length=max(counts), seed=7, split="test")
    batch = pair_batch([data[i] for i in range(max(counts))])
    source, parsing, poses = batch["sources"][:1], batch["parsing"][:1], batch["poses"]
    latent_hw = (h // 8, w // 8)
    settings = SamplingConfig(steps=steps)

    def clock(fn):
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out

    clock(lambda: pipe.encode_source(source, parsing))  # warm-up
    t_source, encoding = clock(lambda: pipe.encode_source(source, parsing))

    def single(pose):
        state = pipe.prepare(encoding, [pose], (h, w))
        return sample(pipe.model, state, latent_hw, settings)

    single(poses[0])  # warm-up
    rows = []
    for n in counts:
        t_separate = t_source + sum(clock(lambda p=p: single(p))[0] for p in poses[:n])

        def batched(n=n):
            enc = pipe.encode_source(source, parsing)
            state = pipe.prepare(enc, poses[:n], (h, w))
            return sample(pipe.model, state, latent_hw, settings)

        t_batched, _ = clock(batched)
        rows.append(
            {
                "poses": n,
                "batched": t_batched,
                "separate": t_separate,
                "per_image": t_batched / n,
                "ratio": t_batched / t_separate,
            }
        )
    return (
        f"One source, N poses, shipped small model, {steps} DDIM steps, cfg 3.5 ({machine()})\n\n"
        + table(
            rows,
            [
                ("poses", "N", "d"),
                ("batched", "one call, s", ".2f"),
                ("separate", "N runs + 1 SourceNet, s", ".2f"),
                ("per_image", "s per image", ".3f"),
                ("ratio", "ratio", ".2f"),
            ],
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    print(main(parser.parse_args().steps))
