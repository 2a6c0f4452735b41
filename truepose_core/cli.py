"""The ``truepose`` command: demo, train, train-vae, generate, evaluate, parse.

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
    print(f"wrote {report['grid']} and {report['metrics']}")
    print(
        f"SSIM {report['summary']['ssim']:.4f}  PSNR {report['summary']['psnr']:.2f} dB  "
        f"over {report['summary']['count']} held-out pairs in {report['seconds']:.1f} s"
    )
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
    parser = argparse.ArgumentParser(prog="truepose", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="pose transfer on held-out SynthFashion pairs (CPU, <2 min)")
    demo.add_argument("--checkpoint", default=str(SHIPPED_MODEL))
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--pairs", type=int, default=8)
    demo.add_argument("--steps", type=int, default=35)
    demo.add_argument("--cfg", type=float, default=3.5)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train TruePose (accelerate launch for many GPUs)")
    train.add_argument("--config", required=True, help="TOML or JSON TrainConfig file")
    train.add_argument("--output-dir", default="")
    train.add_argument("--max-steps", type=int, default=0)
    train.add_argument("--no-resume", action="store_true", help="ignore saved state in output dir")
    train.set_defaults(func=_cmd_train)

    vae = sub.add_parser("train-vae", help="train the small SynthFashion VAE")
    vae.add_argument("--output", default="runs/vae/vae.safetensors")
    vae.add_argument("--steps", type=int, default=1800)
    vae.add_argument("--batch-size", type=int, default=8)
    vae.add_argument("--max-minutes", type=float, default=0.0)
    vae.add_argument("--seed", type=int, default=0)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument("--chroma-weight", type=float, default=2.0)
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

    gen = sub.add_parser("generate", help="generate images for a pair list (resumable, sharded)")
    gen.add_argument("--checkpoint", required=True)
    gen.add_argument("--data", choices=("synthfashion", "deepfashion"), default="synthfashion")
    gen.add_argument("--root", default="", help="DeepFashion root folder")
    gen.add_argument("--split", default="test")
    gen.add_argument("--out", required=True)
    gen.add_argument("--limit", type=int, default=0)
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--steps", type=int, default=35)
    gen.add_argument("--cfg", type=float, default=3.5)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--vae", default="", help="SD VAE (diffusers folder or file) for full-size models"
    )
    gen.add_argument("--clip", default="", help="open_clip weights for full-size models")
    gen.set_defaults(func=_cmd_generate)

    ev = sub.add_parser("evaluate", help="SSIM, PSNR, LPIPS and FID of generated vs real images")
    ev.add_argument("--pred", required=True)
    ev.add_argument("--gt", required=True)
    ev.add_argument("--out", default="")
    ev.add_argument("--lpips-weights", nargs="*", default=None)
    ev.add_argument("--fid-weights", default=None)
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=_cmd_evaluate)

    parse = sub.add_parser("parse", help="SCHP parsing maps for a folder of images")
    parse.add_argument("--images", required=True)
    parse.add_argument("--out", required=True)
    parse.add_argument("--weights", required=True, help="SCHP .pth or .safetensors (LIP or ATR)")
    parse.add_argument("--batch-size", type=int, default=8)
    parse.add_argument("--device", default="cpu")
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
