"""Frame geometry (truepose_core.fit): transforms, resampling, keypoints, and the way back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as photos

from truepose_core.errors import ConfigError
from truepose_core.fit import (
    FIT_MODES,
    adjust_pose,
    fit_image,
    fit_labels,
    fit_pose,
    fit_transform,
    pose_centre,
    unfit_image,
)
from truepose_core.keypoints import (
    L_HIP,
    L_SHOULDER,
    NECK,
    R_HIP,
    R_SHOULDER,
    Pose,
)

#: A standing person as fractions of the frame (x, y), OpenPose-18 order.
STANDING = np.array(
    [
        (0.50, 0.12),  # nose
        (0.50, 0.22),  # neck
        (0.36, 0.23),  # r shoulder
        (0.30, 0.38),  # r elbow
        (0.28, 0.52),  # r wrist
        (0.64, 0.23),  # l shoulder
        (0.70, 0.38),  # l elbow
        (0.72, 0.52),  # l wrist
        (0.42, 0.52),  # r hip
        (0.41, 0.70),  # r knee
        (0.40, 0.88),  # r ankle
        (0.58, 0.52),  # l hip
        (0.59, 0.70),  # l knee
        (0.60, 0.88),  # l ankle
        (0.47, 0.10),  # r eye
        (0.53, 0.10),  # l eye
        (0.44, 0.11),  # r ear
        (0.56, 0.11),  # l ear
    ]
)


def standing(width: int, height: int) -> Pose:
    return Pose(STANDING * [width, height], np.ones(18), width, height)


def shoulder_to_torso(pose: Pose) -> float:
    """Shoulder width over torso length (neck to the hips' midpoint)."""
    xy = pose.xy.astype(np.float64)
    shoulders = np.linalg.norm(xy[L_SHOULDER] - xy[R_SHOULDER])
    torso = np.linalg.norm((xy[L_HIP] + xy[R_HIP]) / 2 - xy[NECK])
    return float(shoulders / torso)


@pytest.mark.parametrize(
    ("src", "dst", "mode", "resized", "offset"),
    [
        ((230, 400), (352, 512), "letterbox", (294, 512), (29, 0)),
        ((512, 512), (352, 512), "letterbox", (352, 352), (0, 80)),
        ((230, 400), (352, 512), "crop", (352, 612), (0, -50)),
        ((230, 400), (352, 512), "stretch", (352, 512), (0, 0)),
    ],
)
def test_transforms(src, dst, mode, resized, offset):
    t = fit_transform(*src, *dst, mode)
    assert t.resized == resized and t.offset == offset and t.target_size == dst
    corners = t.points(np.array([[0.0, 0.0], list(src)]))
    np.testing.assert_allclose(corners[0], offset)
    np.testing.assert_allclose(corners[1], np.array(offset) + resized)
    np.testing.assert_allclose(t.inverse_points(corners), [[0, 0], list(src)])


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="letterbox, crop, stretch"):
        fit_transform(10, 10, 20, 20, "zoom")


@pytest.mark.parametrize("mode", FIT_MODES)
def test_parsing_is_resized_nearest_and_padded_with_background(mode):
    labels = torch.randint(1, 20, (1, 400, 230))
    out = fit_labels(labels, fit_transform(230, 400, 352, 512, mode))
    assert out.shape == (1, 512, 352) and out.dtype == labels.dtype
    assert set(out.unique().tolist()) <= set(labels.unique().tolist()) | {0}
    assert (out == 0).any() == (mode == "letterbox")


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
def test_unfit_gives_back_the_photo(mode):
    photo = torch.from_numpy(photos.astronaut()[:400, 100:330]).float().div(255)[None]
    t = fit_transform(230, 400, 352, 512, mode)
    back = unfit_image(fit_image(photo, t), t)
    assert back.shape == photo.shape
    assert float((back - photo).abs().mean()) < 0.02


def test_unfit_after_crop_shows_the_original_where_it_was_cut():
    photo = torch.from_numpy(photos.coffee()).float().div(255)[None]  # 600x400, landscape
    t = fit_transform(600, 400, 352, 512, "crop")
    generated = torch.zeros(1, 512, 352, 3)  # black where the model drew
    back = unfit_image(generated, t, original=photo)
    assert back.shape == photo.shape
    kept = t.inverse_points(np.array([[0.0, 0.0], [352.0, 512.0]]))
    x0, x1 = int(np.ceil(kept[0, 0])) + 2, int(kept[1, 0]) - 2
    assert float(back[0, :, x0:x1].max()) < 0.02  # the generated part
    torch.testing.assert_close(back[0, :, : x0 - 6], photo[0, :, : x0 - 6])  # the photo


def test_pose_frames_of_another_aspect_keep_body_proportions():
    # A square half-body frame placed on a tall photo: the old per-axis resize squashed the
    # shoulders; letterbox keeps the ratio exactly, and the person sits where they sat in
    # their own frame (here: centred across, 80 px of padding above and below).
    pose = standing(512, 512)
    fitted = fit_pose(pose, 352, 512)
    assert shoulder_to_torso(fitted) == pytest.approx(shoulder_to_torso(pose), rel=1e-4)
    stretched = pose.resized(352, 512)
    assert abs(shoulder_to_torso(stretched) / shoulder_to_torso(pose) - 1) > 0.1
    x, y = pose_centre(pose)
    np.testing.assert_allclose(pose_centre(fitted), [x * 352 / 512, 80 + y * 352 / 512], atol=1e-3)


def test_adjust_pose_scales_about_the_person_and_moves_in_frame_fractions():
    pose = fit_pose(standing(512, 512), 352, 512)
    bigger = adjust_pose(pose, scale=1.5)
    np.testing.assert_allclose(pose_centre(bigger), pose_centre(pose), atol=1e-3)
    assert shoulder_to_torso(bigger) == pytest.approx(shoulder_to_torso(pose), rel=1e-4)
    moved = adjust_pose(pose, offset_x=0.1, offset_y=-0.05)
    np.testing.assert_allclose(moved.xy - pose.xy, np.tile([35.2, -25.6], (18, 1)), atol=1e-3)
    with pytest.raises(ConfigError, match="pose_scale"):
        adjust_pose(pose, scale=0)
