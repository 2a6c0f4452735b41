"""Cost of one CFG step of TruePose Reference (no training) on the full SD1.5 architecture.

ComfyUI's own SD1.5 model (``comfy.supported_models.SD15`` with SD1.5's UNet config: 16
self-attention layers, 860 M parameters) with random weights, fp32, in library mode
(``--cpu``). Four variants of one CFG step (uncond + cond rows, latent batch 1), each timed
as the sampler calls the model, ``BaseModel.apply_model`` with the MODEL's wrappers:

- plain: the input MODEL;
- plain reference: the reference patch with ``reweight`` off (every eq. 6 weight 1, the
  node's own switch), source cached: reference attention over ``[F, F']`` without TruePose;
- (b) cached: the reference patch with the source features computed once, at timestep 0,
  by the patch's first call (reported apart as "source s") and reused by every step;
- (a) noised: the reference patch with the source noised to the step's sigma and run
  through the UNet every step (a batch-1 pass per step, inside the timed step).

The figure is the CPU time of one torch thread (``time.process_time``), median over rounds
that call the four variants in turn (``bench.common.interleaved_cpu``), so another job on the
other core barely moves it. Each timed call uses a slightly different sigma, so the noised
mode cannot reuse the previous call's source features. The source latent and the parsing are
random / hand-made: the patch is built by the node's own code path after the VAE encode.

    COMFYUI_PATH=/opt/ComfyUI python -m bench.reference_step [--resolution 256x256 ...]
        [--pytorch-attention]

On the CPU, ComfyUI's plain layers use its sub-quadratic attention unless started with
``--use-pytorch-cross-attention``; ``--pytorch-attention`` measures that setting.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.common import interleaved_cpu, isolated, machine, table

#: ComfyUI ``unet_config`` of Stable Diffusion 1.5.
SD15_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
STANDING_Y = "[40, 70, 70, 110, 150, 70, 110, 150, 160, 210, 250, 160, 210, 250, 36, 36, 40, 40]"
STANDING_X = "[88, 88, 60, 55, 50, 116, 121, 126, 70, 70, 70, 106, 106, 106, 80, 96, 74, 102]"
FACE, UPPER, PANTS = 13, 5, 9
SIGMA = 3.0  # a mid-schedule sigma of SD1.5's discrete schedule


def sd15_model(seed: int = 0):
    """A ComfyUI ModelPatcher around SD1.5's UNet with random weights (fp32, CPU)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(SD15_UNET))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "", device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            if p.dim() == 1:  # norm scales 1, biases 0
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def _parsing(height: int, width: int) -> torch.Tensor:
    parsing = torch.zeros(1, height, width, dtype=torch.long)
    parsing[:, height // 8 : height // 3, width // 3 : 2 * width // 3] = FACE
    parsing[:, height // 3 : 2 * height // 3, width // 4 : 3 * width // 4] = UPPER
    parsing[:, 2 * height // 3 :, width // 4 : 3 * width // 4] = PANTS
    return parsing


def cfg_step(model, latents: torch.Tensor, context: torch.Tensor):
    """One CFG call of ``apply_model`` as ComfyUI's sampler makes it (uncond chunk first)."""
    import comfy.model_management as mm
    import comfy.patcher_extension

    mm.load_models_gpu([model])
    options = comfy.patcher_extension.copy_nested_dicts(
        model.model_options.get("transformer_options", {})
    )
    wrappers = options.setdefault("wrappers", {})
    comfy.patcher_extension.merge_nested_dicts(wrappers, model.wrappers, copy_dict1=False)
    options["cond_or_uncond"] = [1, 0]
    x = torch.cat([latents, latents])
    ctx = torch.cat([torch.zeros_like(context), context])
    calls = [0]

    @torch.no_grad()
    def step():
        calls[0] += 1
        sigma = torch.full((2,), SIGMA * (1 + 1e-3 * calls[0]))
        return model.model.apply_model(
            x * sigma[0], sigma, c_crossattn=ctx, transformer_options=options
        )

    return step


VARIANTS = {
    "plain": ("plain", None),
    "reference": ("plain reference", {"source_mode": "cached", "reweight": False}),
    "cached": ("(b) cached", {"source_mode": "cached"}),
    "noised": ("(a) noised", {"source_mode": "noised"}),
}
RESOLUTIONS = ((512, 512), (256, 256))


def run(resolutions, repeats: int, pytorch_attention: bool = False) -> dict:
    from tests.comfy_harness import COMFYUI_MISSING, ComfyLibrary, find_comfyui

    torch.set_num_threads(1)
    comfyui = find_comfyui()
    if comfyui is None:
        raise SystemExit(COMFYUI_MISSING)
    with tempfile.TemporaryDirectory(prefix="truepose-bench-") as base:
        library = ComfyLibrary.start(comfyui, Path(base), pytorch_attention)
        keypoints = library.pack_module("truepose_core.keypoints")
        parsing_mod = library.pack_module("truepose_core.parsing")
        reference = library.pack_module("truepose_core.reference")
        glue = library.pack_module("nodes.reference_patch")
        start = time.process_time()
        model = sd15_model()
        build_s = time.process_time() - start
        pose = keypoints.parse_deepfashion_row(STANDING_Y, STANDING_X)
        rows = []
        for height, width in resolutions:
            g = torch.Generator().manual_seed(3)
            latents = torch.randn(1, 4, height // 8, width // 8, generator=g)
            source = torch.randn(1, 4, height // 8, width // 8, generator=g) * 0.18215
            context = torch.randn(1, 77, 768, generator=g)
            selection = reference.source_selection(_parsing(height, width), [pose], parsing_mod.LIP)
            steps = {}
            for name, (_, options) in VARIANTS.items():
                patched = model
                if options is not None:
                    patch = glue.ReferencePatch(
                        reference.ReferenceConfig(**options), source, selection
                    )
                    patched = glue.patch_model(model, patch)
                steps[name] = cfg_step(patched, latents, context)
            # First calls: warm-up, the one-off source pass of the cached modes, and a check
            # that each patch changes the prediction.
            outputs, first_s = {}, {}
            for name, step in steps.items():
                start = time.process_time()
                outputs[name] = step()
                first_s[name] = time.process_time() - start
            for name in ("reference", "cached", "noised"):
                if torch.equal(outputs[name], outputs["plain"]):
                    raise RuntimeError(f"the {name} patch did not change the prediction")
            medians = interleaved_cpu(steps, repeats, warmup=0)
            plain = medians["plain"]["cpu_s"]
            for name, (label, options) in VARIANTS.items():
                row = {"resolution": f"{height}x{width}", "variant": label, **medians[name]}
                row["ratio"] = row["cpu_s"] / plain
                row["min_ratio"] = row["cpu_min"] / medians["plain"]["cpu_min"]
                if options is not None and options["source_mode"] == "cached":
                    row["source_s"] = max(first_s[name] - row["cpu_s"], 0.0)
                rows.append(row)
    return {"rows": rows, "build_s": build_s}


def main(resolutions=RESOLUTIONS, repeats: int = 3, pytorch_attention: bool = False) -> str:
    out = isolated(run, tuple(resolutions), repeats, pytorch_attention)
    flags = "--cpu --use-pytorch-cross-attention" if pytorch_attention else "--cpu"
    head = (
        "TruePose Reference CFG step, SD1.5 architecture (ComfyUI's SD15, random weights, "
        f"fp32, library mode {flags}), CPU seconds of one thread ({machine()})"
    )
    notes = (
        f"Median of {repeats} interleaved rounds after one warm-up call each; spread = "
        "(max - min) / median of the CPU seconds. UNet batch 2 (uncond + cond), "
        "cond_or_uncond [1, 0], through apply_model and its wrappers; source s = the one-off "
        "clean source pass of a cached mode. Goals: (b) <= 1.15x, (a) <= 2.1x. Model built "
        f"in {out['build_s']:.1f} CPU s; peak RSS {out['peak_rss_mb']:.0f} MB."
    )
    return "\n\n".join(
        [
            head,
            table(
                out["rows"],
                [
                    ("resolution", "resolution", "s"),
                    ("variant", "step", "s"),
                    ("cpu_s", "median CPU s", ".2f"),
                    ("ratio", "/ plain", ".2f"),
                    ("cpu_min", "least CPU s", ".2f"),
                    ("min_ratio", "least / plain", ".2f"),
                    ("cpu_spread", "spread", ".0%"),
                    ("wall_s", "median wall s", ".2f"),
                    ("source_s", "source s", ".2f"),
                ],
            ),
            notes,
        ]
    )


def _resolution(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=_resolution, action="append", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pytorch-attention",
        action="store_true",
        help="ComfyUI's --use-pytorch-cross-attention (SDPA) instead of its CPU default",
    )
    args = parser.parse_args()
    print(main(tuple(args.resolution or RESOLUTIONS), args.repeats, args.pytorch_attention))
