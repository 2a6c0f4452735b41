"""Give a ``state-*`` folder's one-group AdamW state the two groups of ``fusion_lr_scale``.

    python scripts/split_optimizer_groups.py --config CONFIG --state runs/NAME/state-STEP

A run continued with a fusion learning-rate factor keeps its Adam moments: each parameter's
state moves to its index in the two-group layout (the rest, then the fusion modules). The
folder's record is rewritten with the new file's size, so resume accepts it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    from truepose_core.train import TrainConfig, build_model, parameter_groups

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's config (fusion_lr_scale != 1)")
    parser.add_argument("--state", required=True, help="a state-* folder with one group")
    args = parser.parse_args()
    cfg = TrainConfig.from_file(args.config)
    model = build_model(cfg)
    state_dir = Path(args.state)
    old = torch.load(state_dir / "optimizer.pt", map_location="cpu", weights_only=True)
    if len(old["param_groups"]) != 1:
        raise SystemExit(f"{state_dir}: optimizer has {len(old['param_groups'])} groups already")
    position = {id(p): i for i, p in enumerate(model.parameters())}
    groups = parameter_groups(model, cfg)
    new_state, new_groups, index = {}, [], 0
    for group in groups:
        ids = []
        for p in group["params"]:
            if position[id(p)] in old["state"]:
                new_state[index] = old["state"][position[id(p)]]
            ids.append(index)
            index += 1
        settings = {k: v for k, v in old["param_groups"][0].items() if k != "params"}
        settings["lr"] = group.get("lr", cfg.lr)
        new_groups.append({**settings, "params": ids})
    torch.save({"state": new_state, "param_groups": new_groups}, state_dir / "optimizer.pt")
    record_path = state_dir / "trainer.json"
    record = json.loads(record_path.read_text())
    record["files"]["optimizer.pt"] = (state_dir / "optimizer.pt").stat().st_size
    record_path.write_text(json.dumps(record))
    print(
        f"{state_dir}: {len(new_state)} parameter states in groups of {[len(g['params']) for g in new_groups]}"
    )


if __name__ == "__main__":
    main()
