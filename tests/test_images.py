"""The input image policy: channels, value ranges and sizes."""

import numpy as np
import pytest
import torch

from truepose_core.errors import ImageError
from truepose_core.images import FIT_NODE, check_parser_size, check_size, to_rgb_float


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[1, 1] = (0, 0, 255, 0)  # transparent blue
    out = to_rgb_float(rgba)
    assert out.shape == (1, 2, 2, 3)
    assert out[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert out[0, 1, 1].tolist() == [1.0, 1.0, 1.0]


def test_grayscale_and_16_bit():
    gray = np.full((4, 5), 65535, dtype=np.uint16).astype(np.int32)
    out = to_rgb_float(gray)
    assert out.shape == (1, 4, 5, 3) and torch.allclose(out, torch.ones_like(out))
    assert to_rgb_float(torch.zeros(3, 4, 5, 1)).shape == (3, 4, 5, 3)


@pytest.mark.parametrize(
    ("value", "message"), [(1.5, r"\[0, 1\]"), (float("nan"), "NaN"), (-0.1, r"\[0, 1\]")]
)
def test_bad_float_values_are_named(value, message):
    image = torch.zeros(1, 8, 8, 3)
    image[0, 0, 0, 0] = value
    with pytest.raises(ImageError, match=message):
        to_rgb_float(image, "source image")


@pytest.mark.parametrize(
    ("h", "w", "message"),
    [(63, 64, "too small"), (8200, 512, "too large"), (130, 88, "not a multiple of 8")],
)
def test_size_policy(h, w, message):
    with pytest.raises(ImageError, match=message):
        check_size(h, w, "source image")


def test_size_policy_suggests_a_fix():
    with pytest.raises(ImageError, match="e.g. to 88x128"):
        check_size(130, 90, "source image")
    check_size(128, 88)


def test_every_size_error_names_the_fit_node():
    for h, w in ((63, 64), (8200, 512), (130, 88)):
        with pytest.raises(ImageError, match=FIT_NODE):
            check_size(h, w, "source image")


def test_rounding_just_outside_0_1_is_clamped_once_for_everyone():
    image = torch.zeros(1, 8, 8, 3)
    image[0, 0, 0] = torch.tensor([1.0005, -0.0005, 0.5])
    out = to_rgb_float(image)
    assert out[0, 0, 0].tolist() == [1.0, 0.0, 0.5]


def test_parser_takes_any_size_from_16_px():
    check_parser_size(10000, 16)
    check_parser_size(230, 401)
    with pytest.raises(ImageError, match="at least 16 px"):
        check_parser_size(15, 400)
