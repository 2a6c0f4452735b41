"""Self-Correction Human Parsing (SCHP) in plain PyTorch: the source parsing map ``H_s``.

The network is the official "AugmentCE2P" model of Li et al., *Self-Correction for Human
Parsing* (github.com/GoGoDuck912/Self-Correction-Human-Parsing, ``networks/AugmentCE2P.py``):
a ResNet-101 backbone, a PSP context module, an edge branch, a decoder and a fusion head.
Module and parameter names are the official ones, so the published checkpoints load strictly
after stripping the ``module.`` prefix of their data-parallel wrapper.

The official code needs the compiled ``inplace_abn`` extension and OpenCV; here both are
replaced by plain PyTorch:

- ``InPlaceABNSync`` becomes :class:`ActivatedBatchNorm2d`, a batch norm followed by an
  optional leaky ReLU (slope 0.01) with the same four tensors (``weight``, ``bias``,
  ``running_mean``, ``running_var``) and the same math, including inplace_abn's scale
  ``|weight| + eps``.
- ``cv2.warpAffine`` (bilinear, constant border 0) becomes :func:`warp_affine`, built on
  ``F.affine_grid`` / ``F.grid_sample``; results equal OpenCV's up to interpolation rounding
  (OpenCV quantises sample positions to 1/32 pixel and, for the input image, pixel values to
  uint8).

Pre- and post-processing follow the official ``simple_extractor.py``: RGB -> BGR, an
aspect-preserving affine warp of the whole image to the network's input size, ImageNet
normalisation in BGR order, then the fused logits upsampled to the input size, warped back to
the image with the inverse affine, and an argmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, ConfigError, ImageError
from .images import PARSER_MIN_SIDE, check_parser_size, to_rgb_float
from .parsing import LABEL_SETS
from .weights import load_strict, read_tensors

#: Block counts of the four residual stages of ResNet-101, the backbone of every official
#: SCHP checkpoint.
RESNET101_LAYERS: tuple[int, int, int, int] = (3, 4, 23, 3)

#: Per-channel normalisation of the network input, in BGR order on a 0..1 scale
#: (official ``simple_extractor.py``).
BGR_MEAN: tuple[float, float, float] = (0.406, 0.456, 0.485)
BGR_STD: tuple[float, float, float] = (0.225, 0.224, 0.229)

#: Smallest accepted image side in pixels (the image policy's parser rule).
MIN_IMAGE_SIDE = PARSER_MIN_SIDE

#: Keys that some re-saved checkpoints carry and the model does not use (PyTorch's
#: ``BatchNorm2d`` counter); they are dropped before the strict key check.
IGNORED_KEY_SUFFIXES: tuple[str, ...] = (".num_batches_tracked",)

#: The classifier of the fusion head; its first dimension is the number of labels.
CLASSIFIER_KEY = "fushion.3.weight"


#: Network input (height, width) of the official extractor for each label set; the label
#: names themselves are :data:`truepose_core.parsing.LABEL_SETS`.
SCHP_INPUT_SIZES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"lip": (473, 473), "atr": (512, 512)}
)

#: Label count of the official Pascal-Person-Part checkpoint, refused by name in errors:
#: its six body parts carry no garments, which TruePose's part-to-label table needs.
PASCAL_NUM_LABELS = 7


def label_set_for(num_labels: int) -> str | None:
    """The label set ("lip", "atr") whose size is ``num_labels``, or None."""
    for name, label_set in LABEL_SETS.items():
        if label_set.num_labels == num_labels and name in SCHP_INPUT_SIZES:
            return name
    return None


def _expected_counts() -> str:
    return ", ".join(f"{s.num_labels} ({n.upper()})" for n, s in LABEL_SETS.items())


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class ActivatedBatchNorm2d(nn.Module):
    """Batch norm plus optional leaky ReLU: the official ``InPlaceABNSync`` without the extension.

    Keeps exactly the tensors of the official module (no ``num_batches_tracked``), so
    checkpoints load strictly. Like inplace_abn, the scale is ``|weight| + eps`` (the extension
    forces a positive scale to make the activation invertible); a plain ``BatchNorm2d`` would
    differ wherever a trained weight is negative.
    """

    def __init__(
        self,
        num_features: int,
        *,
        activation: str = "leaky_relu",
        slope: float = 0.01,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if activation not in ("leaky_relu", "none"):
            raise ConfigError(f"activation {activation!r}: expected 'leaky_relu' or 'none'")
        self.num_features = num_features
        self.activation = activation
        self.slope = slope
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (batch, channels, h, w) and apply the activation."""
        x = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight.abs() + self.eps,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )
        if self.activation == "leaky_relu":
            x = F.leaky_relu(x, negative_slope=self.slope)
        return x

    def extra_repr(self) -> str:
        return f"{self.num_features}, activation={self.activation}, slope={self.slope}"


def _plain_bn(num_features: int) -> ActivatedBatchNorm2d:
    """The backbone's norm: official ``InPlaceABNSync(activation='none')``."""
    return ActivatedBatchNorm2d(num_features, activation="none")


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, dilated 3x3, 1x1) with the official attribute names."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = _plain_bn(planes)
        self.conv2 = nn.Conv2d(
            planes,
            planes,
            kernel_size=3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
        )
        self.bn2 = _plain_bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = _plain_bn(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + residual)


class PSPModule(nn.Module):
    """Pyramid pooling (Zhao et al., PSPNet): pooled context at 1, 2, 3 and 6 cells a side."""

    def __init__(
        self, features: int, out_features: int = 512, sizes: Sequence[int] = (1, 2, 3, 6)
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(output_size=(size, size)),
                nn.Conv2d(features, out_features, kernel_size=1, bias=False),
                ActivatedBatchNorm2d(out_features),
            )
            for size in sizes
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(
                features + len(sizes) * out_features,
                out_features,
                kernel_size=3,
                padding=1,
                bias=False,
            ),
            ActivatedBatchNorm2d(out_features),
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        size = feats.shape[-2:]
        priors = [
            F.interpolate(stage(feats), size=size, mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return self.bottleneck(torch.cat([*priors, feats], dim=1))


class EdgeModule(nn.Module):
    """Edge branch: edge logits and the edge features that the fusion head consumes."""

    def __init__(
        self, in_fea: Sequence[int] = (256, 512, 1024), mid_fea: int = 256, out_fea: int = 2
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_fea[0], mid_fea, kernel_size=1, bias=False), ActivatedBatchNorm2d(mid_fea)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(in_fea[1], mid_fea, kernel_size=1, bias=False), ActivatedBatchNorm2d(mid_fea)
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(in_fea[2], mid_fea, kernel_size=1, bias=False), ActivatedBatchNorm2d(mid_fea)
        )
        self.conv4 = nn.Conv2d(mid_fea, out_fea, kernel_size=3, padding=1, bias=True)
        self.conv5 = nn.Conv2d(out_fea * 3, out_fea, kernel_size=1, bias=True)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (edge logits, edge features), both at the resolution of ``x1``."""
        size = x1.shape[-2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        fea1, fea2, fea3 = self.conv1(x1), self.conv2(x2), self.conv3(x3)
        edge = torch.cat([self.conv4(fea1), up(self.conv4(fea2)), up(self.conv4(fea3))], dim=1)
        return self.conv5(edge), torch.cat([fea1, up(fea2), up(fea3)], dim=1)


class DecoderModule(nn.Module):
    """Parsing decoder: context features upsampled and joined with low-level features."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(512, 256, kernel_size=1, bias=False), ActivatedBatchNorm2d(256)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(256, 48, kernel_size=1, bias=False), ActivatedBatchNorm2d(48)
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(304, 256, kernel_size=1, bias=False),
            ActivatedBatchNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=1, bias=False),
            ActivatedBatchNorm2d(256),
        )
        self.conv4 = nn.Conv2d(256, num_classes, kernel_size=1, bias=True)

    def forward(self, xt: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (parsing logits, decoder features) at the resolution of ``xl``."""
        xt = F.interpolate(self.conv1(xt), size=xl.shape[-2:], mode="bilinear", align_corners=True)
        x = self.conv3(torch.cat([xt, self.conv2(xl)], dim=1))
        return self.conv4(x), x


class SCHPNet(nn.Module):
    """The official SCHP network ("AugmentCE2P" ResNet); forward gives the fused logits.

    Output stride is 4: an input of (h, w) gives logits of about (h / 4, w / 4).
    """

    def __init__(self, num_classes: int, layers: Sequence[int] = RESNET101_LAYERS) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ConfigError(f"SCHP layers {tuple(layers)}: expected four block counts >= 1")
        if num_classes < 2:
            raise ConfigError(f"SCHP num_classes {num_classes}: expected at least 2")
        self.num_classes = num_classes
        self.inplanes = 128
        # Deep stem: three 3x3 convs instead of one 7x7.
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = _plain_bn(64)
        self.conv2 = _conv3x3(64, 64)
        self.bn2 = _plain_bn(64)
        self.conv3 = _conv3x3(64, 128)
        self.bn3 = _plain_bn(128)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        # The official multi-grid (1, 1, 1) makes every layer4 block use dilation 2.
        self.layer4 = self._make_layer(512, layers[3], stride=1, dilation=2)

        self.context_encoding = PSPModule(2048, 512)
        self.edge = EdgeModule()
        self.decoder = DecoderModule(num_classes)
        # "fushion" is the official spelling; checkpoints use it.
        self.fushion = nn.Sequential(
            nn.Conv2d(1024, 256, kernel_size=1, bias=False),
            ActivatedBatchNorm2d(256),
            nn.Dropout2d(0.1),
            nn.Conv2d(256, num_classes, kernel_size=1, bias=True),
        )

    def _make_layer(
        self, planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    planes * Bottleneck.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                _plain_bn(planes * Bottleneck.expansion),
            )
        modules = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        modules += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused parsing logits (the official ``output[0][-1]``) of normalised BGR ``x``.

        ``x``: (batch, 3, h, w); returns (batch, num_classes, ~h/4, ~w/4).
        """
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        context = self.context_encoding(x5)
        _parsing_logits, parsing_fea = self.decoder(context, x2)
        _edge_logits, edge_fea = self.edge(x2, x3, x4)
        return self.fushion(torch.cat([parsing_fea, edge_fea], dim=1))


def build_schp(num_labels: int, *, layers: Sequence[int] = RESNET101_LAYERS) -> SCHPNet:
    """An SCHP network with random weights; ``layers`` other than ResNet-101 serve tests only."""
    return SCHPNet(num_labels, tuple(int(n) for n in layers))


# --------------------------------------------------------------------------------------------
# Affine warps (official utils/transforms.py, without OpenCV)
# --------------------------------------------------------------------------------------------


def box_to_center_scale(
    width: int, height: int, input_size: tuple[int, int]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Center and scale of the whole image, widened to the input's aspect ratio.

    The official ``_box2cs([0, 0, w - 1, h - 1])``: the box spans pixel centres, and its
    shorter side grows until width / height equals the input's.
    """
    aspect_ratio = input_size[1] / input_size[0]
    w, h = float(width - 1), float(height - 1)
    center = (w * 0.5, h * 0.5)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, (w, h)


def get_affine_transform(
    center: tuple[float, float],
    scale: tuple[float, float],
    rot: float,
    output_size: tuple[int, int],
    *,
    inv: bool = False,
) -> torch.Tensor:
    """The official 2x3 pixel affine that maps the box (center, scale) onto ``output_size``.

    Same three point pairs as the official code, solved with torch instead of
    ``cv2.getAffineTransform``. ``output_size`` is (height, width); ``inv`` gives the map back.
    Returns float64 (2, 3) acting on (x, y, 1) pixel coordinates.
    """
    src_w = scale[0]
    dst_h, dst_w = output_size
    rot_rad = math.pi * rot / 180.0
    sn, cs = math.sin(rot_rad), math.cos(rot_rad)
    # get_dir([0, -src_w / 2], rot_rad)
    src_dir = (src_w * 0.5 * sn, -src_w * 0.5 * cs)
    dst_dir = (0.0, (dst_w - 1) * -0.5)

    def third(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        # get_3rd_point: b plus (a - b) turned by 90 degrees.
        return (b[0] - (a[1] - b[1]), b[1] + (a[0] - b[0]))

    src0 = (float(center[0]), float(center[1]))
    src1 = (src0[0] + src_dir[0], src0[1] + src_dir[1])
    dst0 = ((dst_w - 1) * 0.5, (dst_h - 1) * 0.5)
    dst1 = (dst0[0] + dst_dir[0], dst0[1] + dst_dir[1])
    src = torch.tensor([src0, src1, third(src0, src1)], dtype=torch.float64)
    dst = torch.tensor([dst0, dst1, third(dst0, dst1)], dtype=torch.float64)
    if inv:
        src, dst = dst, src
    # Solve [x, y, 1] @ M^T = [x', y'] for the three point pairs.
    ones = torch.ones(3, 1, dtype=torch.float64)
    return torch.linalg.solve(torch.cat([src, ones], dim=1), dst).T.contiguous()


def warp_affine(
    images: torch.Tensor, matrix: torch.Tensor, output_size: tuple[int, int]
) -> torch.Tensor:
    """Warp ``images`` (batch, channels, h, w) with a 2x3 pixel affine, like ``cv2.warpAffine``.

    Replaces ``cv2.warpAffine(..., flags=INTER_LINEAR, borderMode=BORDER_CONSTANT,
    borderValue=0)``: ``matrix`` maps source pixel (x, y) to output pixel, pixel centres sit
    at integer coordinates, and samples outside the source blend with 0. Equal to OpenCV up to
    interpolation rounding. ``output_size`` is (height, width); images need 2+ pixels a side.
    """
    batch, _, src_h, src_w = images.shape
    out_h, out_w = output_size
    m = torch.eye(3, dtype=torch.float64)
    m[:2] = matrix.to(torch.float64).cpu()
    # Output grid in [-1, 1] -> output pixels -> source pixels -> source grid in [-1, 1]
    # (align_corners=True: -1 and 1 are the centres of the first and last pixel).
    out_to_pixels = torch.tensor(
        [[(out_w - 1) / 2, 0, (out_w - 1) / 2], [0, (out_h - 1) / 2, (out_h - 1) / 2], [0, 0, 1]],
        dtype=torch.float64,
    )
    pixels_to_src = torch.tensor(
        [[2 / (src_w - 1), 0, -1], [0, 2 / (src_h - 1), -1], [0, 0, 1]], dtype=torch.float64
    )
    theta = (pixels_to_src @ torch.linalg.inv(m) @ out_to_pixels)[:2]
    theta = theta.to(device=images.device, dtype=images.dtype).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, images.shape[1], out_h, out_w], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _as_rgb_batch(images: torch.Tensor) -> torch.Tensor:
    """Validate images and return float32 RGB (batch, 3, h, w) in 0..1.

    Accepts (batch, h, w, c) as ComfyUI's IMAGE, (batch, c, h, w), or one image without the
    batch dimension; channels and values follow the image policy
    (:mod:`truepose_core.images`: RGBA composited on white, grayscale repeated), and any
    size from :data:`MIN_IMAGE_SIDE` pixels a side.
    """
    if not isinstance(images, torch.Tensor):
        raise ImageError(f"images: expected a torch.Tensor, found {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ImageError(
            f"images of shape {tuple(images.shape)}: expected (batch, h, w, c) or (batch, c, h, w)"
        )
    if images.shape[-1] not in (1, 2, 3, 4):
        if images.shape[1] not in (1, 2, 3, 4):
            raise ImageError(
                f"images of shape {tuple(images.shape)}: expected 1 to 4 channels, "
                "last (batch, h, w, c) or second (batch, c, h, w)"
            )
        images = images.permute(0, 2, 3, 1)
    rgb = to_rgb_float(images, "images")
    check_parser_size(rgb.shape[1], rgb.shape[2], "images")
    return rgb.permute(0, 3, 1, 2)


class SCHPParser(nn.Module):
    """An SCHP network plus the official pre- and post-processing, batched.

    ``parse`` gives one label per image pixel (label names in ``labels``); the network runs
    on the module's device and dtype, results come back on the images' device.
    """

    def __init__(self, net: SCHPNet, *, input_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        label_set = label_set_for(net.num_classes)
        if label_set is None:
            raise ConfigError(
                f"SCHP network with {net.num_classes} labels: expected {_expected_counts()}"
            )
        size = SCHP_INPUT_SIZES[label_set] if input_size is None else tuple(input_size)
        if len(size) != 2 or min(int(v) for v in size) < MIN_IMAGE_SIDE:
            raise ConfigError(
                f"SCHP input_size {input_size}: expected (height, width), each at least "
                f"{MIN_IMAGE_SIDE}"
            )
        self.net = net
        self.label_set: str = label_set
        self.labels: tuple[str, ...] = LABEL_SETS[label_set].labels
        self.num_labels: int = net.num_classes
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        param = next(self.net.parameters())
        return param.device, param.dtype

    def preprocess(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Warp validated RGB images to the network input.

        Returns the normalised BGR input (batch, 3, in_h, in_w), the inverse affine (input
        pixels -> image pixels) and the image size (h, w).
        """
        device, _ = self._device_dtype()
        rgb = _as_rgb_batch(images).to(device)
        height, width = rgb.shape[-2:]
        center, scale = box_to_center_scale(width, height, self.input_size)
        forward = get_affine_transform(center, scale, 0.0, self.input_size)
        inverse = get_affine_transform(center, scale, 0.0, self.input_size, inv=True)
        bgr = rgb.flip(1)
        # Warp before normalising: the official border value 0 is black in 0..255 pixels.
        warped = warp_affine(bgr, forward, self.input_size)
        mean = torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(BGR_STD, device=device).view(1, 3, 1, 1)
        return (warped - mean) / std, inverse, (height, width)

    def parse_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Fused logits at image size: float32 (batch, num_labels, h, w), images' device."""
        _, dtype = self._device_dtype()
        with torch.no_grad():
            net_input, inverse, image_size = self.preprocess(images)
            logits = self.net(net_input.to(dtype)).float()
            logits = F.interpolate(
                logits, size=self.input_size, mode="bilinear", align_corners=True
            )
            logits = warp_affine(logits, inverse, image_size)
        return logits.to(images.device)

    def parse(self, images: torch.Tensor) -> torch.Tensor:
        """Label map per image: int64 (batch, h, w), values index ``labels``."""
        return self.parse_logits(images).argmax(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`parse_logits`."""
        return self.parse_logits(images)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


_SCHP_FILES = (
    "expected an SCHP weight file such as exp-schp-201908261155-lip.pth (LIP) or "
    "exp-schp-201908301523-atr.pth (ATR)"
)


def _clean_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the data-parallel ``module.`` prefix and drop keys in the ignore list."""
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if not name.endswith(IGNORED_KEY_SUFFIXES):
            cleaned[name] = value
    return cleaned


def _list(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_schp(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    dtype: torch.dtype = torch.float32,
    input_size: tuple[int, int] | None = None,
    layers: Sequence[int] = RESNET101_LAYERS,
) -> SCHPParser:
    """Load an official SCHP checkpoint (.pth or .safetensors) into an eval-mode parser.

    The label set comes from the classifier's shape (20: lip, 18: atr), never from the file
    name. Keys are checked strictly; ``input_size`` overrides the label set's
    (height, width); ``layers`` other than ResNet-101 serve tests only.
    """
    path = Path(path)
    state = _clean_keys(read_tensors(path, "SCHP checkpoint", hint=_SCHP_FILES))
    classifier = state.get(CLASSIFIER_KEY)
    if classifier is None or classifier.ndim != 4:
        found = "missing" if classifier is None else f"of shape {tuple(classifier.shape)}"
        raise CheckpointError(
            f"SCHP checkpoint {path}: classifier {CLASSIFIER_KEY} is {found}; expected an SCHP "
            f"(AugmentCE2P) state dict with it as (labels, 256, 1, 1). Found keys: "
            f"{_list(sorted(state))}"
        )
    num_labels = int(classifier.shape[0])
    if label_set_for(num_labels) is None:
        pascal = " (a Pascal-Person-Part model)" if num_labels == PASCAL_NUM_LABELS else ""
        raise CheckpointError(
            f"SCHP checkpoint {path}: classifier has {num_labels} labels{pascal}; expected "
            f"{_expected_counts()}: use exp-schp-201908261155-lip.pth (LIP, preferred) or "
            "exp-schp-201908301523-atr.pth (ATR)"
        )
    net = build_schp(num_labels, layers=layers)
    load_strict(
        net,
        state,
        f"SCHP checkpoint {path}",
        hint="expected the official SCHP ResNet-101 keys (the file is damaged or of another model)",
    )
    parser = SCHPParser(net, input_size=input_size)
    return parser.to(device=device, dtype=dtype).eval().requires_grad_(False)
