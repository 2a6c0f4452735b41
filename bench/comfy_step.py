"""Cost of one CFG denoising step through the ComfyUI nodes (library mode, ``--cpu``).

The ComfyUI twin of ``bench/step_cost.py``: (a) one CFG step (uncond + cond rows, latent
batch 1, so a UNet batch of 2) of the plain MODEL that ``TruePose_LoadTruePose`` returns;
(b) the same step of the MODEL that ``TruePose_HPFAPatchModel`` returns, with the patch
(selection masks, keys/values, pose features) built once beforehand. The timed call is
the diffusion model forward as ComfyUI's sampler makes it: the MODEL's
``transformer_options`` with ``cond_or_uncond = [1, 0]``. Ratio (b)/(a) in one process.

Weights are random. A full-size TruePose checkpoint file (two SD1.5 UNets, ~7 GB in fp32)
is not written: the checkpoint is built in memory as a ``LoadedTruePose`` (what
``load_truepose(..., build_unets=False)`` returns) and handed to
``nodes.runtime.handle_from_loaded``, the function behind the loader node. The source
encoding runs the SourceNet through ComfyUI (``runtime.source_features``) on a random
latent, with random CLIP embeddings in place of an image encoder; the patch is then made
by the ``TruePose_HPFAPatchModel`` node itself.

    COMFYUI_PATH=/opt/ComfyUI python -m bench.comfy_step [--small]

``--small`` uses the small SynthFashion architecture (a quick check) instead of SD1.5.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.common import isolated, machine, table, timed

SD15_RESOLUTIONS = ((256, 176), (512, 352))
SMALL_RESOLUTIONS = ((128, 88), (256, 176))
#: The first small SynthFashion model's UNet (configs/synthfashion-small.toml).
SMALL_UNET_CHANNELS = (32, 64, 128)
# A standing person in the 256x176 DeepFashion frame (y first, -1 = missing).
STANDING_Y = "[40, 70, 70, 110, 150, 70, 110, 150, 160, 210, 250, 160, 210, 250, 36, 36, 40, 40]"
STANDING_X = "[88, 88, 60, 55, 50, 116, 121, 126, 70, 70, 70, 106, 106, 106, 80, 96, 74, 102]"
# LIP labels of the hand-made parsing map: face, upper clothes, pants.
FACE, UPPER, PANTS = 13, 5, 9
TIMESTEP = 500.0
SD15_REPEATS, SMALL_REPEATS = 2, 10


def _architecture(core, small: bool):
    """(diffusers UNet config, TruePoseConfig) of the benchmarked architecture."""
    if small:
        presets = core("truepose_core.presets")
        return (
            presets.tiny_unet_config(SMALL_UNET_CHANNELS),
            presets.tiny_truepose_config(resolution=(128, 88)),
        )
    checkpoint = core("truepose_core.checkpoint")
    config = core("truepose_core.config").TruePoseConfig()
    return dict(checkpoint.SD15_UNET_CONFIG), config


def in_memory_checkpoint(core, small: bool, seed: int = 0):
    """A ``LoadedTruePose`` with random weights, as ``load_truepose(build_unets=False)`` gives.

    One diffusers UNet (diffusers' own init) supplies the weights of both TargetNet and
    SourceNet, as in ``TruePoseModel.from_unet`` but without the copy; zero-initialised
    weights (fusion output projections, the PoseEncoder's last layer) get small random
    values so that the patch changes the prediction, as after training.
    """
    from diffusers import UNet2DConditionModel

    checkpoint = core("truepose_core.checkpoint")
    unet_config, config = _architecture(core, small)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(unet_config).eval().requires_grad_(False)
    model = core("truepose_core.model").TruePoseModel(config, unet, unet)
    model.init_fusion_from_unets()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            trained = name.startswith(("fusion.", "pose_encoder.", "context_proj."))
            if trained and name.endswith("weight") and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    state = unet.state_dict()
    full_config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    model.target_unet = None
    model.source_unet = None
    return checkpoint.LoadedTruePose(
        model.eval().requires_grad_(False),
        config,
        Path("<in memory>"),
        unet_config=full_config,
        unet_states={"target_unet": dict(state), "source_unet": dict(state)},
    )


def _parsing(height: int, width: int) -> torch.Tensor:
    parsing = torch.zeros(1, height, width, dtype=torch.long)
    parsing[:, height // 8 : height // 3, width // 3 : 2 * width // 3] = FACE
    parsing[:, height // 3 : 2 * height // 3, width // 4 : 3 * width // 4] = UPPER
    parsing[:, 2 * height // 3 :, width // 4 : 3 * width // 4] = PANTS
    return parsing


@torch.no_grad()
def source_encoding(core, runtime, handle, height: int, width: int):
    """What ``TruePose_SourceNetEncode`` outputs, with random latents and CLIP embeddings.

    The SourceNet pass is the node's own (:func:`runtime.source_features` on ComfyUI's
    SourceNet); only the VAE and the CLIP image encoder are replaced by random tensors.
    """
    import comfy.model_management as mm

    fusion = core("truepose_core.fusion")
    labels = core("truepose_core.parsing").LIP.num_labels
    cfg = handle.config
    g = torch.Generator().manual_seed(2)
    f = cfg.latent_factor
    latents = torch.randn(1, 4, height // f, width // f, generator=g) * cfg.latent_scale
    image_embeds = torch.randn(1, cfg.clip_dim, generator=g)
    device = handle.load_modules()
    context = handle.model.source_context(image_embeds.to(device, handle.dtype))
    features = runtime.source_features(handle, latents, context)
    present = torch.zeros(1, labels, dtype=torch.bool)
    present[:, [FACE, UPPER, PANTS]] = True
    region_embeds = torch.randn(1, labels, cfg.clip_dim, generator=g) * present[..., None]
    out = mm.intermediate_device()
    return fusion.SourceEncoding(
        features=features,
        latent_hw=tuple(latents.shape[-2:]),
        parsing=_parsing(height, width).to(out),
        region_embeds=region_embeds.to(out),
        region_present=present.to(out),
        image_embeds=image_embeds.to(out),
        label_set=cfg.label_set,
    )


def _dtype(model) -> torch.dtype:
    """The dtype ComfyUI feeds the diffusion model (its manual-cast dtype, if any)."""
    return model.model.manual_cast_dtype or model.model.get_dtype()


def cfg_step(model, latents: torch.Tensor, context: torch.Tensor):
    """One CFG UNet call on ``model`` as ComfyUI's sampler makes it (uncond chunk first)."""
    import comfy.model_management as mm

    mm.load_models_gpu([model])
    device, dtype = model.load_device, _dtype(model)
    options = dict(model.model_options.get("transformer_options", {}))
    options["cond_or_uncond"] = [1, 0]
    x = torch.cat([latents, latents]).to(device, dtype)
    t = torch.full((2,), TIMESTEP, device=device)
    ctx = torch.cat([torch.zeros_like(context), context]).to(device, dtype)
    diffusion_model = model.model.diffusion_model

    @torch.no_grad()
    def step():
        return diffusion_model(x, t, context=ctx, transformer_options=options)

    return step


def run(small: bool, resolutions, repeats: int, warmup: int) -> dict:
    """Every resolution of one architecture, in this process; rows for the table."""
    from tests.comfy_harness import COMFYUI_MISSING, ComfyLibrary, find_comfyui

    comfyui = find_comfyui()
    if comfyui is None:
        raise SystemExit(COMFYUI_MISSING)
    with tempfile.TemporaryDirectory(prefix="truepose-bench-") as base:
        library = ComfyLibrary.start(comfyui, Path(base))
        runtime = library.pack_module("nodes.runtime")
        keypoints = library.pack_module("truepose_core.keypoints")
        name = "small" if small else "SD1.5"
        start = time.perf_counter()
        model, handle, _vae = runtime.handle_from_loaded(
            in_memory_checkpoint(library.pack_module, small), f"{name} (random weights)"
        )
        build_s = time.perf_counter() - start
        dtype = str(runtime.model_dtype(model)).removeprefix("torch.")
        poses = [keypoints.parse_deepfashion_row(STANDING_Y, STANDING_X)]
        patch_node = library.node_class("TruePose_HPFAPatchModel")
        rows = []
        for height, width in resolutions:
            encoding = source_encoding(library.pack_module, runtime, handle, height, width)
            start = time.perf_counter()
            patched = patch_node.execute(model, handle, encoding, poses, 0.3, 0.6, 1.0).result[0]
            patch_s = time.perf_counter() - start
            context = runtime.source_context(handle, encoding, 1)
            f = handle.config.latent_factor
            g = torch.Generator().manual_seed(3)
            latents = torch.randn(1, 4, height // f, width // f, generator=g)
            plain_step, patched_step = (
                cfg_step(model, latents, context),
                cfg_step(patched, latents, context),
            )
            # The first call of each is a warm-up, and checks that the patch is in effect.
            if torch.allclose(plain_step(), patched_step()):
                raise RuntimeError("the TruePose patch did not change the noise prediction")
            plain = timed(plain_step, repeats, max(warmup - 1, 0))
            fused = timed(patched_step, repeats, max(warmup - 1, 0))
            resolution = f"{height}x{width}"
            rows.append({"resolution": resolution, "variant": "plain MODEL", "seconds": plain})
            rows.append(
                {
                    "resolution": resolution,
                    "variant": "HPFA-patched MODEL",
                    "seconds": fused,
                    "patch_s": patch_s,
                }
            )
            for row in rows[-2:]:
                row["ratio"] = row["seconds"] / plain
    return {"rows": rows, "architecture": name, "dtype": dtype, "build_s": build_s}


def main(small: bool = False, resolutions=None, repeats: int | None = None, warmup: int = 1) -> str:
    """The table; ``repeats`` defaults to 2 for SD1.5 (10-30 s a step on a 2-core CPU), 10
    for the small architecture."""
    if resolutions is None:
        resolutions = SMALL_RESOLUTIONS if small else SD15_RESOLUTIONS
    if repeats is None:
        repeats = SMALL_REPEATS if small else SD15_REPEATS
    out = isolated(run, small, tuple(resolutions), repeats, warmup)
    head = (
        f"CFG step through the ComfyUI nodes (library mode, --cpu), {out['architecture']} "
        f"architecture, random weights, {out['dtype']} ({machine()})"
    )
    notes = (
        f"Median of {repeats} after {max(warmup, 1)} warm-up. UNet batch 2 (uncond + cond, "
        "latent batch 1), cond_or_uncond [1, 0]; patch s = TruePose_HPFAPatchModel, once per "
        f"run. Models built in {out['build_s']:.1f} s; peak RSS {out['peak_rss_mb']:.0f} MB."
    )
    return "\n\n".join(
        [
            head,
            table(
                out["rows"],
                [
                    ("resolution", "resolution", "s"),
                    ("variant", "step", "s"),
                    ("seconds", "median s", ".3f"),
                    ("ratio", "/ plain", ".2f"),
                    ("patch_s", "patch s", ".2f"),
                ],
            ),
            notes,
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="the small model's architecture")
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (SD1.5), 10 (small)")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    print(main(args.small, repeats=args.repeats, warmup=args.warmup))
