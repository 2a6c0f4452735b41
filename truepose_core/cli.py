"""The ``truepose`` command: demo, train, train-vae, train-clip, generate, evaluate, parse.

Errors a user can fix are printed as one line and exit with status 2; nothing here executes
pickled code (checkpoints load through safetensors or ``weights_only``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import TruePoseError

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_MODEL = ASSETS / "truepose-synthfashion-small.safetensors"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(
        checkpoint=Path(args.checkpoint),
        out_dir=Path(args.out),
        pairs=args.pairs,
        steps=args.steps,
        cfg_scale=args.cfg,
        seed=args.seed,
    )
    from .quality import format_table

    print(f"wrote {report['grid']} and {report['metrics']}")
    print(
        f"{report['summary']['count']} held-out pairs in {report['seconds']:.1f} s; "
        "the model beside the trivial baselines on the same pairs:"
    )
    print(format_table(report["scores"]))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig.from_file(args.config)
    overrides = {
        k: v for k, v in (("output_dir", args.output_dir), ("max_steps", args.max_steps)) if v
    }
    if overrides:
        cfg = TrainConfig.from_dict({**cfg.__dict__, **overrides})
    path = train(cfg, resume=not args.no_resume)
    print(f"checkpoint: {path}")
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from .vae_train import VAETrainConfig, train_vae

    cfg = VAETrainConfig(
        output=args.output,
        steps=args.steps,
        max_minutes=args.max_minutes,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        chroma_weight=args.chroma_weight,
        init=args.init,
        save_every=args.save_every,
        kind=args.kind,
        images=args.images,
        latent_channels=args.latent_channels,
    )
    print(f"vae: {train_vae(cfg, resume=not args.no_resume)}")
    return 0


def _cmd_train_clip(args: argparse.Namespace) -> int:
    from .clip_train import CLIPTrainConfig, train_clip

    cfg = CLIPTrainConfig(
        output=args.output,
        images=args.images,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_minutes=args.max_minutes,
        seed=args.seed,
        context_length=args.context_length,
        colour_levels=args.colour_levels,
        batch_by_kind=args.batch_by_kind,
        whole_captions=args.whole_captions,
    )
    print(f"clip: {train_clip(cfg)}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate_pairs

    written = generate_pairs(
        checkpoint=Path(args.checkpoint),
        data=args.data,
        root=args.root,
        out_dir=Path(args.out),
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        steps=args.steps,
        cfg_scale=args.cfg,
        seed=args.seed,
        vae=args.vae,
        clip=args.clip,
    )
    print(f"wrote {written} images to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate_folders, write_report

    results = evaluate_folders(
        args.pred,
        args.gt,
        lpips_weights=args.lpips_weights,
        fid_weights=args.fid_weights,
        fid_real_dir=args.fid_real,
        parsing_dir=args.parsing,
        label_set=args.label_set,
        size=tuple(args.size) if args.size else None,
        device=args.device,
    )
    json_path, md_path = write_report(results, args.out or args.pred)
    print(md_path.read_text())
    for reason in results.get("missing", []):
        print(reason)
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from .parse_folder import parse_folder

    count = parse_folder(
        args.images, args.out, args.weights, batch_size=args.batch_size, device=args.device
    )
    print(f"wrote {count} parsing maps to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .clip_train import WHOLE_CAPTIONS, CLIPTrainConfig
    from .config import SamplingConfig
    from .parsing import LABEL_SET_NAMES

    steps, cfg = SamplingConfig.steps, SamplingConfig.cfg_scale
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="truepose", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="pose transfer on held-out SynthFashion pairs (CPU, <2 min)",
        formatter_class=fmt,
    )
    demo.add_argument("--checkpoint", default=str(SHIPPED_MODEL), help="TruePose checkpoint")
    demo.add_argument("--out", default="out/demo", help="folder for the grid and metrics JSON")
    demo.add_argument("--pairs", type=int, default=8, help="held-out pairs to render")
    demo.add_argument("--steps", type=int, default=steps, help="DDIM steps")
    demo.add_argument("--cfg", type=float, default=cfg, help="classifier-free guidance scale")
    demo.add_argument("--seed", type=int, default=0, help="noise seed")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train", help="train TruePose (accelerate launch for many GPUs)", formatter_class=fmt
    )
    train.add_argument("--config", required=True, help="TOML or JSON TrainConfig file")
    train.add_argument("--output-dir", default="", help="override the config's output_dir")
    train.add_argument("--max-steps", type=int, default=0, help="override max_steps (0: keep)")
    train.add_argument("--no-resume", action="store_true", help="ignore saved state in output dir")
    train.set_defaults(func=_cmd_train)

    vae = sub.add_parser("train-vae", help="train the small SynthFashion VAE", formatter_class=fmt)
    vae.add_argument("--output", default="runs/vae/vae.safetensors", help="VAE file to write")
    vae.add_argument("--steps", type=int, default=1800, help="optimiser steps")
    vae.add_argument("--batch-size", type=int, default=8, help="images per step")
    vae.add_argument(
        "--max-minutes", type=float, default=0.0, help="wall-clock budget (0: no limit)"
    )
    vae.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    vae.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    vae.add_argument(
        "--chroma-weight", type=float, default=2.0, help="weight of the colour (chroma) loss"
    )
    vae.add_argument("--init", default="", help="continue from a VAE file written by train-vae")
    vae.add_argument("--save-every", type=int, default=100, help="kl: steps between states")
    vae.add_argument("--no-resume", action="store_true", help="kl: ignore saved states")
    vae.add_argument(
        "--kind",
        choices=("patch", "kl"),
        default="patch",
        help="patch: closed-form PCA of 8x8 cells (default); kl: AutoencoderKL by gradient",
    )
    vae.add_argument("--images", type=int, default=4000, help="training pairs to fit on")
    vae.add_argument(
        "--latent-channels",
        type=int,
        default=0,
        help="patch VAE: components per 8x8 cell (default: the shipped model's 36)",
    )
    vae.set_defaults(func=_cmd_train_vae)

    clip = sub.add_parser(
        "train-clip",
        help="pretrain the small SynthFashion CLIP image tower on captions",
        formatter_class=fmt,
    )
    clip.add_argument("--output", default=CLIPTrainConfig.output, help="tower file to write")
    clip.add_argument("--images", type=int, default=CLIPTrainConfig.images, help="pairs rendered")
    clip.add_argument("--steps", type=int, default=CLIPTrainConfig.steps, help="optimiser steps")
    clip.add_argument(
        "--batch-size", type=int, default=CLIPTrainConfig.batch_size, help="crops per step"
    )
    clip.add_argument("--lr", type=float, default=CLIPTrainConfig.lr, help="AdamW peak lr")
    clip.add_argument(
        "--max-minutes",
        type=float,
        default=CLIPTrainConfig.max_minutes,
        help="wall-clock budget (0: no limit)",
    )
    clip.add_argument("--seed", type=int, default=CLIPTrainConfig.seed, help="data and init seed")
    clip.add_argument(
        "--context-length",
        type=int,
        default=CLIPTrainConfig.context_length,
        help="caption tokens (longer captions are cut)",
    )
    clip.add_argument(
        "--colour-levels",
        type=int,
        default=CLIPTrainConfig.colour_levels,
        help="captions also give each colour channel's level out of this many (0: names only)",
    )
    clip.add_argument(
        "--batch-by-kind",
        action=argparse.BooleanOptionalAction,
        default=CLIPTrainConfig.batch_by_kind,
        help="draw each step's crops from one parsing label (or whole images)",
    )
    clip.add_argument(
        "--whole-captions",
        choices=WHOLE_CAPTIONS,
        default=CLIPTrainConfig.whole_captions,
        help="whole images' captions: all parts in one, one part each, or both",
    )
    clip.set_defaults(func=_cmd_train_clip)

    gen = sub.add_parser(
        "generate",
        help="generate images for a pair list (batched, resumable, sharded)",
        formatter_class=fmt,
    )
    gen.add_argument("--checkpoint", required=True, help="TruePose checkpoint")
    gen.add_argument(
        "--data",
        choices=("synthfashion", "deepfashion"),
        default="synthfashion",
        help="pair list to generate",
    )
    gen.add_argument("--root", default="", help="DeepFashion root folder")
    gen.add_argument("--split", default="test", help="data split")
    gen.add_argument("--out", required=True, help="folder for <pair_id>.png images")
    gen.add_argument("--limit", type=int, default=0, help="first N pairs only (0: all)")
    gen.add_argument(
        "--batch-size", type=int, default=8, help="pairs denoised together in one UNet call"
    )
    gen.add_argument("--steps", type=int, default=steps, help="DDIM steps")
    gen.add_argument("--cfg", type=float, default=cfg, help="classifier-free guidance scale")
    gen.add_argument("--seed", type=int, default=0, help="base seed; each pair adds its index")
    gen.add_argument(
        "--vae", default="", help="SD VAE (diffusers folder or file) for full-size models"
    )
    gen.add_argument("--clip", default="", help="open_clip weights for full-size models")
    gen.set_defaults(func=_cmd_generate)

    ev = sub.add_parser(
        "evaluate",
        help="SSIM, PSNR, LPIPS, FID and region metrics of generated vs real images",
        formatter_class=fmt,
    )
    ev.add_argument("--pred", required=True, help="folder of generated images")
    ev.add_argument("--gt", required=True, help="folder of ground truths (same file stems)")
    ev.add_argument("--out", default="", help="report folder (default: the --pred folder)")
    ev.add_argument(
        "--lpips-weights",
        default=None,
        help="LPIPS file made by python -m truepose_core.metrics.convert lpips",
    )
    ev.add_argument(
        "--fid-weights",
        default=None,
        help="Inception file made by python -m truepose_core.metrics.convert fid",
    )
    ev.add_argument(
        "--fid-real",
        default=None,
        help="real-image folder FID compares with (the papers: the training images; "
        "default: the --gt folder)",
    )
    ev.add_argument(
        "--parsing",
        default=None,
        help="folder of the ground truths' label maps (truepose parse); adds region metrics",
    )
    ev.add_argument(
        "--label-set", choices=LABEL_SET_NAMES, default="lip", help="label set of --parsing"
    )
    ev.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="resize ground truths to H W first (CFLD: 256 176)",
    )
    ev.add_argument("--device", default="cpu", help="torch device for LPIPS and FID")
    ev.set_defaults(func=_cmd_evaluate)

    parse = sub.add_parser(
        "parse", help="SCHP parsing maps for a folder of images", formatter_class=fmt
    )
    parse.add_argument("--images", required=True, help="folder of images")
    parse.add_argument("--out", required=True, help="folder for the label-map PNGs")
    parse.add_argument("--weights", required=True, help="SCHP .pth or .safetensors (LIP or ATR)")
    parse.add_argument("--batch-size", type=int, default=8, help="images per network call")
    parse.add_argument("--device", default="cpu", help="torch device")
    parse.set_defaults(func=_cmd_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TruePoseError as exc:
        print(f"truepose {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
