"""SCHP human parser: official key names, safe strict loading, label-set detection, warps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from truepose_core.errors import CheckpointError, ImageError
from truepose_core.schp import (
    RESNET101_LAYERS,
    ActivatedBatchNorm2d,
    SCHPParser,
    box_to_center_scale,
    build_schp,
    get_affine_transform,
    load_schp,
    warp_affine,
)

#: One block per stage: the same key names as ResNet-101 up to the block indices, and fast.
TINY = (1, 1, 1, 1)
#: A small network input (height, width), non-square like the images below.
SMALL_INPUT = (64, 48)


def _randomise(net: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict with random norm statistics, so loading is visible in the output."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0, generator=gen)
        elif key.endswith("running_mean") or key.endswith("bias"):
            value.normal_(0.0, 0.1, generator=gen)
        elif value.ndim == 1:
            value.normal_(0.0, 1.0, generator=gen)
    return state


def _with_labels(state: dict[str, torch.Tensor], num_labels: int) -> dict[str, torch.Tensor]:
    """The same weights with both classifiers resized to ``num_labels``."""
    out = dict(state)
    for name in ("decoder.conv4", "fushion.3"):
        out[f"{name}.weight"] = torch.randn(num_labels, 256, 1, 1) * 0.01
        out[f"{name}.bias"] = torch.zeros(num_labels)
    return out


def _skeleton(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right keys and shapes, one stored number per tensor: small files for key checks."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}


def _official_file(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """Save like the official training script: data-parallel keys under 'state_dict'."""
    torch.save({"epoch": 150, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return _randomise(build_schp(20, layers=TINY))


@pytest.fixture(scope="module")
def lip_file(tmp_path_factory: pytest.TempPathFactory, tiny_state) -> Path:
    return _official_file(tmp_path_factory.mktemp("schp") / "lip.pth", tiny_state)


def _expected_resnet101_keys() -> list[str]:
    """Key list written from the official networks/AugmentCE2P.py, in registration order."""
    abn = ("weight", "bias", "running_mean", "running_var")

    def conv_bn(conv: str, bn: str) -> list[str]:
        return [f"{conv}.weight"] + [f"{bn}.{t}" for t in abn]

    keys = conv_bn("conv1", "bn1") + conv_bn("conv2", "bn2") + conv_bn("conv3", "bn3")
    for stage, blocks in enumerate(RESNET101_LAYERS, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                keys += conv_bn(f"{p}.conv{i}", f"{p}.bn{i}")
            if b == 0:  # every stage's first block projects the shortcut
                keys += conv_bn(f"{p}.downsample.0", f"{p}.downsample.1")
    for s in range(4):
        keys += conv_bn(f"context_encoding.stages.{s}.1", f"context_encoding.stages.{s}.2")
    keys += conv_bn("context_encoding.bottleneck.0", "context_encoding.bottleneck.1")
    for i in (1, 2, 3):
        keys += conv_bn(f"edge.conv{i}.0", f"edge.conv{i}.1")
    keys += ["edge.conv4.weight", "edge.conv4.bias", "edge.conv5.weight", "edge.conv5.bias"]
    keys += conv_bn("decoder.conv1.0", "decoder.conv1.1")
    keys += conv_bn("decoder.conv2.0", "decoder.conv2.1")
    keys += conv_bn("decoder.conv3.0", "decoder.conv3.1")
    keys += conv_bn("decoder.conv3.2", "decoder.conv3.3")
    keys += ["decoder.conv4.weight", "decoder.conv4.bias"]
    keys += conv_bn("fushion.0", "fushion.1") + ["fushion.3.weight", "fushion.3.bias"]
    return keys


# --- network ---------------------------------------------------------------------------------


def test_full_resnet101_has_the_official_keys_and_shapes():
    state = build_schp(20).state_dict()
    assert list(state) == _expected_resnet101_keys()
    assert len(state) == 603
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    assert state["layer3.22.conv3.weight"].shape == (1024, 256, 1, 1)
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert state["context_encoding.bottleneck.0.weight"].shape == (512, 4096, 3, 3)
    assert state["decoder.conv3.0.weight"].shape == (256, 304, 1, 1)
    assert state["fushion.0.weight"].shape == (256, 1024, 1, 1)
    assert state["fushion.3.weight"].shape == (20, 256, 1, 1)


def test_activated_batch_norm_uses_inplace_abn_scale():
    bn = ActivatedBatchNorm2d(3).eval()
    bn.weight.data = torch.tensor([-2.0, 0.5, 0.0])
    bn.bias.data = torch.tensor([0.1, -0.2, 0.3])
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(4.0)
    x = torch.randn(2, 3, 4, 5)
    scale = (bn.weight.abs() + 1e-5) / torch.sqrt(torch.tensor(4.0 + 1e-5))
    y = (x - 0.5) * scale.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    expected = torch.nn.functional.leaky_relu(y, 0.01)
    torch.testing.assert_close(bn(x), expected)
    plain = ActivatedBatchNorm2d(3, activation="none").eval()
    assert (plain(-torch.ones(1, 3, 2, 2)) < 0).all()


# --- loading ---------------------------------------------------------------------------------


def test_official_layout_loads_strictly_and_parses_to_image_size(lip_file, tiny_state):
    parser = load_schp(lip_file, layers=TINY, input_size=SMALL_INPUT)
    assert (parser.label_set, parser.num_labels, parser.input_size) == ("lip", 20, SMALL_INPUT)
    assert not parser.training
    for key, value in parser.net.state_dict().items():
        assert torch.equal(value, tiny_state[key]), key

    images = torch.rand(2, 70, 50, 3)  # ComfyUI IMAGE: (batch, h, w, c), 70 high, 50 wide
    logits = parser.parse_logits(images)
    assert logits.shape == (2, 20, 70, 50) and logits.dtype == torch.float32
    labels = parser.parse(images)
    assert labels.shape == (2, 70, 50) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() < 20
    torch.testing.assert_close(labels, logits.argmax(1), rtol=0, atol=0)
    # Channels-first input and a lone image give the same result.
    assert torch.equal(parser.parse(images.permute(0, 3, 1, 2)), labels)
    assert torch.equal(parser.parse(images[1]), labels[1:])


@pytest.mark.parametrize(
    ("num_labels", "label_set", "input_size"),
    [(20, "lip", (473, 473)), (18, "atr", (512, 512))],
)
def test_label_set_comes_from_the_weights(tmp_path, tiny_state, num_labels, label_set, input_size):
    # A misleading file name: only the classifier shape counts.
    path = tmp_path / "exp-schp-201908261155-lip.pth"
    torch.save(_skeleton(_with_labels(tiny_state, num_labels)), path)  # bare, no prefix
    parser = load_schp(path, layers=TINY)
    assert (parser.label_set, parser.num_labels) == (label_set, num_labels)
    assert parser.input_size == input_size
    assert len(parser.labels) == num_labels and parser.labels[0] == "Background"


def test_safetensors_recognised_by_content(tmp_path, tiny_state):
    path = tmp_path / "schp_weights.bin"
    save_file({k: v.contiguous() for k, v in _with_labels(tiny_state, 18).items()}, str(path))
    parser = load_schp(path, layers=TINY)
    assert parser.label_set == "atr"


def test_unused_batch_norm_counters_are_ignored(tmp_path, tiny_state):
    state = _skeleton(tiny_state)
    state["bn1.num_batches_tracked"] = torch.tensor(7)
    path = _official_file(tmp_path / "resaved.pth", state)
    assert load_schp(path, layers=TINY).label_set == "lip"


def test_label_names_are_the_official_ones(tmp_path, tiny_state):
    # dataset_settings of the official simple_extractor.py
    lip = (
        "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat",
        "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
        "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
    )  # fmt: skip
    atr = (
        "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress",
        "Belt", "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm",
        "Right-arm", "Bag", "Scarf",
    )  # fmt: skip
    assert SCHPParser(build_schp(20, layers=TINY)).labels == lip
    assert SCHPParser(build_schp(18, layers=TINY)).labels == atr


@pytest.mark.parametrize(("num_labels", "hint"), [(13, ""), (7, "Pascal-Person-Part")])
def test_unsupported_label_count_names_file_and_count(tmp_path, tiny_state, num_labels, hint):
    path = _official_file(tmp_path / "other.pth", _skeleton(_with_labels(tiny_state, num_labels)))
    with pytest.raises(CheckpointError, match=f"{num_labels} labels") as err:
        load_schp(path, layers=TINY)
    assert str(path) in str(err.value) and hint in str(err.value)
    assert "20 (LIP)" in str(err.value)


def test_missing_keys_are_listed(tmp_path, tiny_state):
    state = _skeleton(tiny_state)
    del state["layer2.0.conv2.weight"], state["edge.conv5.bias"]
    path = _official_file(tmp_path / "missing.pth", state)
    with pytest.raises(CheckpointError, match="2 missing keys") as err:
        load_schp(path, layers=TINY)
    message = str(err.value)
    assert "layer2.0.conv2.weight" in message and "edge.conv5.bias" in message
    assert str(path) in message


def test_unexpected_keys_are_listed(tmp_path, tiny_state):
    state = _skeleton(tiny_state)
    state["layer1.1.conv1.weight"] = torch.zeros(64, 256, 1, 1)  # a block TINY does not have
    path = _official_file(tmp_path / "extra.pth", state)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \[.layer1\.1\.conv1\.weight"):
        load_schp(path, layers=TINY)


def test_full_checkpoint_into_small_network_lists_missing_blocks(lip_file):
    with pytest.raises(CheckpointError, match=r"missing keys \[.layer1\.1\."):
        load_schp(lip_file)  # the tiny file lacks ResNet-101's later blocks


def test_wrong_shapes_are_listed(tmp_path, tiny_state):
    state = _skeleton(tiny_state)
    state["decoder.conv4.weight"] = torch.zeros(18, 256, 1, 1)
    path = _official_file(tmp_path / "mixed.pth", state)
    with pytest.raises(CheckpointError, match=r"decoder\.conv4\.weight: file \(18, 256, 1, 1\)"):
        load_schp(path, layers=TINY)


def test_not_a_schp_state_dict(tmp_path):
    path = tmp_path / "other_model.pth"
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(CheckpointError, match="fushion.3.weight is missing"):
        load_schp(path, layers=TINY)


def _plant_marker(path: str) -> None:
    Path(path).write_text("code ran")


class _CarriesCode:
    """Unpickling this object calls a function: what weights-only loading must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_plant_marker, (str(self.marker),))


def test_pickle_that_carries_code_is_refused(tmp_path, tiny_state):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    state = {f"module.{k}": v for k, v in _skeleton(tiny_state).items()}
    torch.save({"state_dict": state, "payload": _CarriesCode(marker)}, path)
    with pytest.raises(CheckpointError, match="only plain tensors are loaded") as err:
        load_schp(path, layers=TINY)
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_truncated_file(tmp_path, lip_file, fmt):
    if fmt == "pth":
        data = lip_file.read_bytes()
    else:
        full = tmp_path / "full.safetensors"
        save_file({"conv1.weight": torch.ones(64, 3, 3, 3)}, str(full))
        data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_schp(cut, layers=TINY)
    assert str(cut) in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_schp(tmp_path / "absent.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth"):
        load_schp(empty)


# --- images ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_parser(lip_file) -> SCHPParser:
    return load_schp(lip_file, layers=TINY, input_size=SMALL_INPUT)


def test_image_validation(tiny_parser):
    rgb = torch.rand(1, 40, 36, 3)
    labels = tiny_parser.parse(rgb)
    # The image policy: RGBA is composited on white, as for the source image.
    opaque = torch.cat([rgb, torch.ones(1, 40, 36, 1)], dim=-1)
    assert torch.equal(tiny_parser.parse(opaque), labels)
    clear = torch.cat([rgb, torch.zeros(1, 40, 36, 1)], dim=-1)
    assert torch.equal(tiny_parser.parse(clear), tiny_parser.parse(torch.ones(1, 40, 36, 3)))
    assert tiny_parser.parse((rgb * 255).round().to(torch.uint8)).shape == labels.shape
    gray = rgb[..., :1]
    assert torch.equal(tiny_parser.parse(gray), tiny_parser.parse(gray.expand(1, 40, 36, 3)))
    with pytest.raises(ImageError, match="0..1"):
        tiny_parser.parse(rgb * 255)
    with pytest.raises(ImageError, match="NaN"):
        tiny_parser.parse(torch.full((1, 40, 36, 3), float("nan")))
    with pytest.raises(ImageError, match="36x15"):
        tiny_parser.parse(torch.rand(1, 15, 36, 3))
    with pytest.raises(ImageError, match="channels"):
        tiny_parser.parse(torch.rand(1, 40, 36, 5))
    with pytest.raises(ImageError, match="empty"):
        tiny_parser.parse(torch.rand(0, 40, 36, 3))


def test_follows_module_dtype(tiny_parser):
    images = torch.rand(1, 40, 36, 3)
    parser64 = SCHPParser(build_schp(20, layers=TINY), input_size=SMALL_INPUT).double().eval()
    parser64.net.load_state_dict(tiny_parser.net.state_dict())
    logits = parser64.parse_logits(images)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, tiny_parser.parse_logits(images), rtol=1e-3, atol=1e-3)


class _BrightnessNet(nn.Module):
    """Stand-in network: label 1 where the (normalised) blue input is bright, at stride 4."""

    num_classes = 20

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = nn.functional.avg_pool2d(x[:, :1], 4, ceil_mode=True)  # BGR: blue first
        logits = torch.full((x.shape[0], 20, *bright.shape[-2:]), -10.0)
        logits[:, 0] = 0.0
        logits[:, 1] = bright
        return logits + self.anchor


def test_labels_land_where_the_pixels_are():
    """Pre- and post-processing keep geometry: a bright rectangle comes back as label 1."""
    parser = SCHPParser(_BrightnessNet(), input_size=(96, 64)).eval()  # type: ignore[arg-type]
    image = torch.zeros(1, 120, 80, 3)
    image[:, 30:90, 20:50, 2] = 1.0  # blue rectangle, rows 30..89, columns 20..49
    labels = parser.parse(image)[0]
    inside, outside = labels[36:84, 26:44], labels.clone()
    outside[24:96, 14:56] = 0
    assert (inside == 1).all() and (outside == 0).all()


# --- affine warps ----------------------------------------------------------------------------


def test_affine_transform_is_the_official_scale_and_centre():
    # 70 high, 50 wide into (64, 48): the height limits, scale (w, h) = (69 * 48/64, 69).
    center, scale = box_to_center_scale(50, 70, SMALL_INPUT)
    assert center == (24.5, 34.5) and scale == pytest.approx((51.75, 69.0))
    matrix = get_affine_transform(center, scale, 0.0, SMALL_INPUT)
    k = 47 / 51.75
    expected = torch.tensor([[k, 0, 23.5 - k * 24.5], [0, k, 31.5 - k * 34.5]], dtype=torch.float64)
    torch.testing.assert_close(matrix, expected)
    inverse = get_affine_transform(center, scale, 0.0, SMALL_INPUT, inv=True)
    full = torch.cat([matrix, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    torch.testing.assert_close(inverse @ full, torch.eye(3, dtype=torch.float64)[:2])
    # A wide image is limited by its width instead.
    _, wide = box_to_center_scale(201, 51, SMALL_INPUT)
    assert wide == pytest.approx((200.0, 200.0 * 64 / 48))


def _reference_warp(image: np.ndarray, matrix: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT 0) semantics, written out in numpy."""
    channels, h, w = image.shape
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    ys, xs = np.mgrid[0:out_h, 0:out_w]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    out = np.zeros((channels, out_h, out_w))
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xx, yy = x0 + dx, y0 + dy
        weight = (1 - np.abs(sx - xx)) * (1 - np.abs(sy - yy))
        valid = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        out += np.where(valid, weight, 0.0) * image[:, yy.clip(0, h - 1), xx.clip(0, w - 1)]
    return out


@pytest.mark.parametrize("rot", [0.0, 25.0])
def test_warp_matches_opencv_semantics(rot):
    image = torch.rand(2, 3, 70, 50, dtype=torch.float64)
    center, scale = box_to_center_scale(50, 70, SMALL_INPUT)
    matrix = get_affine_transform(center, scale, rot, SMALL_INPUT)
    warped = warp_affine(image, matrix, SMALL_INPUT)
    for b in range(2):
        expected = _reference_warp(image[b].numpy(), matrix.numpy(), *SMALL_INPUT)
        np.testing.assert_allclose(warped[b].numpy(), expected, atol=1e-9)


def test_warp_round_trip_of_a_smooth_image():
    h, w = 70, 50
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    image = torch.stack([torch.sin(3 * xs) * torch.cos(2 * ys), xs * ys, xs])[None] * 0.5 + 0.5
    input_size = (96, 80)
    center, scale = box_to_center_scale(w, h, input_size)
    there = warp_affine(image, get_affine_transform(center, scale, 0.0, input_size), input_size)
    back = warp_affine(
        there, get_affine_transform(center, scale, 0.0, input_size, inv=True), (h, w)
    )
    assert back.shape == image.shape
    # The border pixels blend with the zero padding; the interior comes back closely.
    assert (back - image)[..., 1:-1, 1:-1].abs().max() < 0.02
