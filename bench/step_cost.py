"""Cost of one CFG denoising step on the SD1.5 architecture (random weights).

(a) plain UNet CFG step; (b) TruePose CFG step with everything that depends only on
(source, pose) cached and fusion on the conditional rows only; (c) the naive TruePose step:
SourceNet and reweighted attention recomputed every step with the naive backend, fusion on
the whole CFG batch. Ratios (b)/(a) and (c)/(a) are measured in the same process.
"""

from __future__ import annotations

import argparse

import torch

from bench.common import isolated, machine, table, timed


def _setup(height: int, width: int, dtype: torch.dtype, backend: str = "auto"):
    from diffusers import UNet2DConditionModel

    from truepose_core.checkpoint import SD15_UNET_CONFIG
    from truepose_core.clip_regions import RegionEmbeddings
    from truepose_core.config import TruePoseConfig
    from truepose_core.model import TruePoseModel
    from truepose_core.parsing import LIP

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(SD15_UNET_CONFIG)
    model = TruePoseModel.from_unet(TruePoseConfig(attention_backend=backend), unet)
    model = model.to(device, dtype).eval().requires_grad_(False)
    h, w = height // 8, width // 8
    parsing = torch.zeros(1, height, width, dtype=torch.long, device=device)
    parsing[:, height // 8 : height // 3, width // 3 : 2 * width // 3] = 13
    parsing[:, height // 3 : 2 * height // 3, width // 4 : 3 * width // 4] = 5
    parsing[:, 2 * height // 3 :, width // 4 : 3 * width // 4] = 9
    labels = LIP.num_labels
    regions = RegionEmbeddings(
        torch.randn(1, labels, 1024, device=device, dtype=dtype),
        torch.zeros(1, labels, dtype=torch.bool, device=device).index_fill_(
            1, torch.tensor([5, 9, 13], device=device), True
        ),
        torch.randn(1, 1024, device=device, dtype=dtype),
        [{}],
    )
    source = torch.randn(1, 4, h, w, device=device, dtype=dtype)
    masks = torch.zeros(1, height, width, dtype=torch.bool, device=device)
    masks[:, height // 3 :] = parsing[:, height // 3 :] > 0
    skeleton = torch.rand(1, 3, height, width, device=device, dtype=dtype)
    latents = torch.randn(1, 4, h, w, device=device, dtype=dtype)
    return model, parsing, regions, source, masks, skeleton, latents


def run(variant: str, height: int, width: int, repeats: int) -> dict:
    from truepose_core.sampling import guided_noise

    dtype = torch.float16 if torch.cuda.is_available() else torch.float32
    backend = "naive" if variant == "naive" else "auto"
    model, parsing, regions, source, masks, skeleton, latents = _setup(
        height, width, dtype, backend
    )
    t = torch.tensor(500.0, device=latents.device)

    with torch.no_grad():
        if variant == "plain":
            context = torch.zeros(2, 4, 768, device=latents.device, dtype=dtype)

            def step():
                return model.plain_noise(torch.cat([latents, latents]), t.expand(2), context)

        elif variant == "cached":
            encoding = model.encode_source(source, regions, parsing)
            state = model.prepare(encoding, masks, skeleton)

            def step():
                return guided_noise(model, latents, t, state, 3.5)

        else:  # naive: recompute the source side every step, fuse the whole CFG batch

            def step():
                encoding = model.encode_source(source, regions, parsing)
                state = model.prepare(encoding, masks, skeleton)
                rows = torch.zeros(2, dtype=torch.long, device=latents.device)
                both = torch.ones(2, dtype=torch.bool, device=latents.device)
                return model.predict_noise(
                    torch.cat([latents, latents]), t.expand(2), state, rows, both
                )

        seconds = timed(step, repeats)
    return {"variant": variant, "resolution": f"{height}x{width}", "seconds": seconds}


def main(resolutions=((256, 176), (512, 352)), repeats: int = 3) -> str:
    rows = []
    for height, width in resolutions:
        measured = {
            v: isolated(run, v, height, width, repeats) for v in ("plain", "cached", "naive")
        }
        base = measured["plain"]
        for row in measured.values():
            row["ratio"] = row["seconds"] / base["seconds"]
            rows.append(row)
    dtype = "fp16 CUDA" if torch.cuda.is_available() else "fp32 CPU"
    return f"CFG step on the SD1.5 architecture, {dtype} ({machine()})\n\n" + table(
        rows,
        [
            ("resolution", "resolution", "s"),
            ("variant", "step", "s"),
            ("seconds", "median s", ".2f"),
            ("peak_rss_mb", "peak RSS MB", ".0f"),
            ("ratio", "/ plain", ".2f"),
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="256x176 only")
    args = parser.parse_args()
    res = ((256, 176),) if args.small else ((256, 176), (512, 352))
    print(main(res, args.repeats))
