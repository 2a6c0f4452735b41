"""LPIPS v0.1 with the AlexNet trunk, the perceptual distance PIDM, PCDMs and CFLD report.

The network is the ``lpips`` package's own (``lpips.LPIPS(net="alex")``), built without any
download; its weights come from a converted safetensors file (see ``metrics.convert``).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..weights import load_strict
from .files import LPIPS_FORMAT, StrPath, read_converted, require

LPIPS_CHANNELS = (64, 192, 384, 256, 256)


class LPIPS(nn.Module):
    """The ``lpips`` package's AlexNet LPIPS v0.1; inputs in [0, 1] as CFLD's ``normalize=True``.

    A fresh instance has random weights (tests); :func:`load_lpips` fills in real ones.
    ``state_dict`` keys are the ``lpips`` package's own, less its ``lins.`` aliases.
    """

    def __init__(self) -> None:
        super().__init__()
        lpips = require("lpips", "LPIPS")
        with warnings.catch_warnings():  # torchvision's note on the deprecated ``pretrained``
            warnings.simplefilter("ignore")
            self.net = lpips.LPIPS(
                net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False
            )
        self.requires_grad_(False)
        self.eval()

    def lin_weights(self) -> list[torch.Tensor]:
        """The five non-negative 1x1 weights that sum the layers' squared differences."""
        return [getattr(self.net, f"lin{i}").model[1].weight for i in range(5)]

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Distance per image; ``pred`` and ``gt`` are (N, 3, H, W) in [0, 1]. Returns (N,)."""
        return self.net(pred, gt, normalize=True).flatten()

    def canonical_state(self) -> dict[str, torch.Tensor]:
        """The state as a converted file stores it: the package's keys without ``lins.``."""
        return {
            k.removeprefix("net."): v.contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("net.lins.")
        }


def load_lpips(path: StrPath) -> LPIPS:
    """AlexNet LPIPS v0.1 from a file written by ``python -m truepose_core.metrics.convert``."""
    tensors, _ = read_converted(path, "lpips_weights", LPIPS_FORMAT)
    model = LPIPS()
    # ``lpips`` registers each lin layer twice (``lin0`` and ``lins.0``): fill both names.
    state = {f"net.{k}": v for k, v in tensors.items()}
    state.update(
        {f"net.lins.{i}.model.1.weight": tensors.get(f"lin{i}.model.1.weight") for i in range(5)}
    )
    state = {k: v for k, v in state.items() if v is not None}
    load_strict(model, state, f"lpips_weights {path}", hint="expected an AlexNet LPIPS v0.1 file")
    return model
