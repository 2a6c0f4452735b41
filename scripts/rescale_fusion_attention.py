"""Scale the logits of eq. 8's fusion cross-attention in a ``state-*`` folder, then resume.

    python scripts/rescale_fusion_attention.py --config CONFIG --state runs/NAME/state-STEP \\
        --layer output_4_0=38 --layer output_5_0=73

Eq. 8's attention ``softmax(Q K_h^T / sqrt(d))`` starts from the TargetNet's random q/k
projections and small source features, so in a model trained from random weights its logits
can stay near zero: every target token then reads the same average of the source
(``scripts/source_use.py``, third table). Multiplying W_Q and W_Kh of a layer by
``sqrt(FACTOR)`` each multiplies that layer's logits by FACTOR and changes nothing else:
the method is the same, only the point training continues from. The raw weights and the EMA
shadow are both scaled; the Adam moments are kept (Adam's step does not depend on the
weights' scale). The folder's record is rewritten, so resume accepts it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def main() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from truepose_core import run_state
    from truepose_core.train import TrainConfig, build_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's config")
    parser.add_argument("--state", required=True, help="a complete state-* folder")
    parser.add_argument(
        "--layer", action="append", required=True, help="NAME=FACTOR, a fused layer's logit factor"
    )
    args = parser.parse_args()
    factors = {}
    for item in args.layer:
        name, _, value = item.partition("=")
        try:
            factors[name] = float(value)
        except ValueError:
            hint = "expected NAME=FACTOR, e.g. output_4_0=38"
            raise SystemExit(f"--layer {item!r}: {hint}") from None
    state = Path(args.state)
    run_state.read_record(state)
    names = [n for n, _ in build_model(TrainConfig.from_file(args.config)).named_parameters()]
    scaled = {
        f"fusion.{layer}.hpfa.{proj}.weight": math.sqrt(factor)
        for layer, factor in factors.items()
        for proj in ("to_q", "to_k")
    }
    missing = sorted(k for k in scaled if k not in names)
    if missing:
        raise SystemExit(f"no such fused-layer weights in this model: {missing}")

    weights = run_state.load_file(state, "model.safetensors", lambda p: load_file(str(p)))
    for key, s in scaled.items():
        weights[key] = weights[key] * s
    run_state.replace_file(state, "model.safetensors", lambda tmp: save_file(weights, str(tmp)))

    if (state / "ema.pt").is_file():
        ema = run_state.load_torch(state, "ema.pt")
        shadow = ema["shadow_params"]
        if len(shadow) != len(names):
            raise SystemExit(f"ema.pt holds {len(shadow)} tensors, the model {len(names)}")
        for key, s in scaled.items():
            shadow[names.index(key)] = shadow[names.index(key)] * s
        run_state.replace_file(state, "ema.pt", lambda tmp: torch.save(ema, tmp))
    for layer, factor in factors.items():
        print(f"{state}: {layer} W_Q and W_Kh x {math.sqrt(factor):.3f} (logits x {factor:g})")


if __name__ == "__main__":
    main()
