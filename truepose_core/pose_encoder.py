"""PoseEncoder: the rendered target skeleton to a residual on the TargetNet's conv_in output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class PoseEncoder(nn.Module):
    """Four convolutions, image resolution -> latent resolution (/8), last one zero-initialised.

    Three stride-2 convs give the /8 of SD's VAE; the padding matches the UNet's own
    downsamplers, so odd latent sizes (e.g. 11) line up with ``conv_in``'s grid.
    """

    def __init__(
        self, out_channels: int, hidden: Sequence[int] = (16, 32, 96), in_channels: int = 3
    ):
        super().__init__()
        if len(hidden) != 3:
            raise ValueError(f"PoseEncoder: expected 3 hidden widths, got {list(hidden)}")
        c1, c2, c3 = hidden
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c3, out_channels, 3, stride=2, padding=1),
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, skeleton: torch.Tensor) -> torch.Tensor:
        """skeleton (B, 3, H, W) in [0, 1] -> (B, out_channels, ceil(H/8), ceil(W/8))."""
        return self.layers(skeleton)
