"""Give a ``state-*`` folder's one-group AdamW state the two groups of ``fusion_lr_scale``.

    python scripts/split_optimizer_groups.py --config CONFIG --state runs/NAME/state-STEP

A run continued with a fusion learning-rate factor keeps its Adam moments: each parameter's
state moves to its index in the two-group layout (the rest, then the fusion modules). The
folder's record is rewritten with the new file's size, so resume accepts it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    from truepose_core import run_state
    from truepose_core.train import TrainConfig, build_model, split_optimizer_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's config (fusion_lr_scale != 1)")
    parser.add_argument("--state", required=True, help="a state-* folder with one group")
    args = parser.parse_args()
    cfg = TrainConfig.from_file(args.config)
    model = build_model(cfg)
    state_dir = Path(args.state)
    old = run_state.load_torch(state_dir, "optimizer.pt")
    new = split_optimizer_state(old, model, cfg)
    run_state.replace_file(state_dir, "optimizer.pt", lambda tmp: torch.save(new, tmp))
    sizes = [len(g["params"]) for g in new["param_groups"]]
    print(f"{state_dir}: {len(new['state'])} parameter states in groups of {sizes}")


if __name__ == "__main__":
    main()
