"""The skeleton renderer against comfyui_controlnet_aux's ``draw_bodypose`` (OpenPose).

``draw_bodypose`` (src/custom_controlnet_aux/open_pose/util.py) draws 17 limbs in its
``limbSeq`` order, limb k as ``cv2.ellipse2Poly`` filled with ``int(0.6 * colors[k])``
(overwriting, no blend), then each joint as a radius-4 disc of ``colors[i]``, on black, at
its 512 px detect resolution. Its tables are copied here as they appear there.
"""

from __future__ import annotations

import numpy as np
import pytest

from truepose_core.keypoints import LIMB_COLORS, LIMBS, Pose, _ellipse_polygon, render_skeleton

# comfyui_controlnet_aux draw_bodypose, verbatim (1-based joint indices).
LIMB_SEQ = [
    [2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12],
    [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18],
]  # fmt: skip
COLORS = [
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
    [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
    [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
]  # fmt: skip
SIZE = 512


def _two_joint_pose(a: int, b: int, start=(100.0, 150.0), end=(400.0, 350.0)) -> Pose:
    xy = np.zeros((18, 2))
    conf = np.zeros(18)
    xy[a], xy[b] = start, end
    conf[[a, b]] = 1.0
    return Pose(xy, conf, SIZE, SIZE)


def test_tables_are_controlnet_aux_tables():
    assert [[a + 1, b + 1] for a, b in LIMBS] == LIMB_SEQ
    assert [list(c) for c in LIMB_COLORS] == COLORS


@pytest.mark.parametrize("k", range(len(LIMB_SEQ)))
def test_each_limb_has_its_colour_and_its_joints_theirs(k):
    a, b = LIMB_SEQ[k][0] - 1, LIMB_SEQ[k][1] - 1
    image = render_skeleton(_two_joint_pose(a, b))
    mid = image[250, 250]  # the limb's middle: (100+400)/2, (150+350)/2
    assert mid.tolist() == [int(float(c) * 0.6) for c in COLORS[k]]
    assert image[150, 100].tolist() == COLORS[a]
    assert image[350, 400].tolist() == COLORS[b]
    assert not image[0, 0].any() and not image[-1, -1].any()  # black background


def test_crossing_limbs_overwrite_instead_of_blending():
    xy = np.zeros((18, 2))
    conf = np.zeros(18)
    # Right upper arm (limb 2) and left upper arm (limb 4) cross at (256, 256).
    xy[2], xy[3] = (156, 156), (356, 356)
    xy[5], xy[6] = (356, 156), (156, 356)
    conf[[2, 3, 5, 6]] = 1
    image = render_skeleton(Pose(xy, conf, SIZE, SIZE))
    assert image[256, 256].tolist() == [int(float(c) * 0.6) for c in COLORS[4]]


def test_stick_half_width_is_four_pixels_at_512():
    image = render_skeleton(_two_joint_pose(1, 2, (100.0, 256.0), (400.0, 256.0)))
    column = image[:, 250].any(axis=-1)
    lit = np.flatnonzero(column)
    assert lit.min() >= 256 - 4 and lit.max() <= 256 + 4 and len(lit) >= 8
    doubled = Pose(np.array(_two_joint_pose(1, 2, (100.0, 256.0), (400.0, 256.0)).xy) * 2,
                   _two_joint_pose(1, 2).confidence, 2 * SIZE, 2 * SIZE)  # fmt: skip
    assert len(np.flatnonzero(render_skeleton(doubled)[:, 500].any(axis=-1))) >= 16


def test_ellipse_points_follow_ellipse2poly():
    points = _ellipse_polygon((50, 40), 10, 4, 0)
    assert points[0] == (60, 40) and points[-1] == (60, 40)  # 0 to 360 degrees inclusive
    assert (50, 44) in points and (40, 40) in points and (50, 36) in points
    assert all(a != b for a, b in zip(points, points[1:], strict=False))  # no repeats
    rotated = _ellipse_polygon((50, 40), 10, 4, 90)
    assert rotated[0] == (50, 50)
