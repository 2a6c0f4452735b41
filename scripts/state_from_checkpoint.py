"""Start a training run from a released checkpoint whose ``state-*`` folders are gone.

    python scripts/state_from_checkpoint.py --checkpoint FILE --config configs/RUN.toml \
        --vae-out runs/vae-patch8/vae.safetensors

Writes ``state-<step>`` (the step in the checkpoint's metadata) into the config's
``output_dir``, so that ``truepose train --config`` continues the checkpoint. It is not an
exact resume: a checkpoint holds the EMA weights a run saves, not the raw weights, the AdamW
moments or the EMA's step count. The state gets the checkpoint's weights as the model and as
a new EMA, and an AdamW with no moments yet. ``--vae-out`` writes the embedded VAE as a
``truepose train-vae`` file, latent scale included, for the config's ``vae``. The config must
build a model of the checkpoint's TruePose config (CLIP file aside); otherwise it says which
fields differ and writes nothing.
"""

from __future__ import annotations

import argparse
import json


def config_differences(a, b) -> list[str]:
    """The TruePose config fields in which ``a`` and ``b`` differ."""
    da, db = a.to_dict(), b.to_dict()
    return sorted(k for k in da.keys() | db.keys() if da.get(k) != db.get(k))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", required=True, help="the run's train config (TOML)")
    parser.add_argument("--vae-out", default="", help="write the embedded VAE here first")
    args = parser.parse_args(argv)

    from truepose_core import run_state
    from truepose_core.checkpoint import load_truepose
    from truepose_core.train import TrainConfig, build_model, optimizer_and_ema, write_state_files
    from truepose_core.vae_train import write_vae_file

    loaded = load_truepose(args.checkpoint)
    if args.vae_out:
        if loaded.vae is None:
            raise SystemExit(f"{args.checkpoint}: embeds no VAE, so --vae-out has nothing to write")
        vae_config = json.loads(loaded.metadata["vae_config"])
        extra = {"from_checkpoint": str(loaded.path)}
        write_vae_file(args.vae_out, loaded.vae, vae_config, loaded.config.latent_scale, extra)
    cfg = TrainConfig.from_file(args.config)
    if run_state.latest_state(cfg.output_dir) is not None:
        raise SystemExit(f"{cfg.output_dir} holds a state already; resume it with truepose train")
    model = build_model(cfg)
    differ = config_differences(model.config, loaded.config)
    if differ:
        raise SystemExit(f"{args.config} builds another TruePose config: {', '.join(differ)}")
    model.load_state_dict(loaded.model.state_dict())
    optimizer, ema = optimizer_and_ema(model, cfg)
    step = int(loaded.metadata.get("step", 0))
    extra = {"from_checkpoint": str(args.checkpoint)}
    state = run_state.save_state(
        cfg.output_dir, step, lambda d: write_state_files(d, model, optimizer, ema), extra=extra
    )
    print(json.dumps({"state": str(state), "step": step}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
