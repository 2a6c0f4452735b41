"""The OpenPose-18 contract: Pose validation, every format's parser and writer, rendering."""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from truepose_core.errors import PoseError
from truepose_core.keypoints import (
    BODY_PARTS,
    KEYPOINT_NAMES,
    KEYPOINT_PART,
    L_ANKLE,
    LIMB_COLORS,
    LIMBS,
    NECK,
    NOSE,
    NUM_KEYPOINTS,
    R_ANKLE,
    R_HIP,
    R_SHOULDER,
    Pose,
    looks_normalised,
    parse_deepfashion_row,
    parse_openpose_json,
    parse_pose_keypoint,
    pose_to_deepfashion_row,
    pose_to_openpose_json,
    pose_to_pose_keypoint,
    render_skeleton,
    visible_parts,
)

# A standing person in the DeepFashion 256x176 frame (y first, as the CSV has it).
ROW_Y = [20, 40, 40, 70, 100, 40, 70, 100, 120, 170, 220, 120, 170, 220, 15, 15, 18, 18]
ROW_X = [88, 88, 70, 65, 60, 106, 111, 116, 78, 78, 78, 98, 98, 98, 84, 92, 80, 96]

#: Property tests are deterministic (fixed derandomised examples, no example database).
PROPERTY = MappingProxyType({"deadline": None, "derandomize": True, "database": None})


def standing_pose() -> Pose:
    return parse_deepfashion_row(str(ROW_Y), str(ROW_X))


@st.composite
def poses(draw, normalizable: bool = False) -> Pose:
    """Random valid poses; some joints missing, some (unless ``normalizable``) off canvas."""
    width = draw(st.integers(8, 1024))
    height = draw(st.integers(8, 1024))
    xy = np.zeros((NUM_KEYPOINTS, 2), dtype=np.float32)
    confidence = np.zeros(NUM_KEYPOINTS, dtype=np.float32)
    for i in range(NUM_KEYPOINTS):
        kind = draw(st.sampled_from(["in", "in", "in", "missing", "off"]))
        if kind == "missing":
            continue
        if kind == "off" and not normalizable:
            xy[i] = (draw(st.floats(-500, -0.5)), draw(st.floats(0, height - 1)))
        else:
            xy[i] = (draw(st.floats(0, width - 1)), draw(st.floats(0, height - 1)))
        confidence[i] = draw(st.floats(0.01, 1.0))
    return Pose(xy, confidence, width, height)


# --- the tables ---------------------------------------------------------------------------------


def test_tables_match_openpose():
    assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS == 18
    assert KEYPOINT_NAMES[NOSE] == "nose" and KEYPOINT_NAMES[NECK] == "neck"
    assert len(LIMBS) == 17 and len(LIMB_COLORS) == 18
    assert LIMBS[0] == (NECK, R_SHOULDER) and LIMBS[-1] == (15, 17)
    assert LIMB_COLORS[0] == (255, 0, 0) and LIMB_COLORS[12] == (0, 0, 255)
    assert set(KEYPOINT_PART) == set(range(18))
    assert set(KEYPOINT_PART.values()) == set(BODY_PARTS)


# --- Pose ---------------------------------------------------------------------------------------


def test_pose_is_frozen_and_read_only():
    pose = standing_pose()
    with pytest.raises(AttributeError):
        pose.width = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        pose.xy[0, 0] = 1.0
    assert pose.xy.dtype == np.float32 and pose.confidence.dtype == np.float32


def test_pose_rejects_bad_shapes_and_values():
    good_xy, good_c = np.zeros((18, 2)), np.ones(18)
    with pytest.raises(PoseError, match=r"\(18, 2\)"):
        Pose(np.zeros((17, 2)), good_c, 10, 10)
    with pytest.raises(PoseError, match=r"\(18,\)"):
        Pose(good_xy, np.ones(25), 10, 10)
    with pytest.raises(PoseError, match="width"):
        Pose(good_xy, good_c, 0, 10)
    bad = good_xy.copy()
    bad[R_HIP, 1] = np.nan
    with pytest.raises(PoseError, match="r_hip"):
        Pose(bad, good_c, 10, 10)
    bad[R_HIP, 1] = np.inf
    with pytest.raises(PoseError, match="r_hip"):
        Pose(bad, good_c, 10, 10)
    c = good_c.copy()
    c[NOSE] = np.nan
    with pytest.raises(PoseError, match="nose"):
        Pose(good_xy, c, 10, 10)
    c[NOSE] = -0.5
    with pytest.raises(PoseError, match="nose"):
        Pose(good_xy, c, 10, 10)


def test_missing_joint_may_hold_nan_and_is_canonicalised():
    xy = np.full((18, 2), 5.0)
    xy[NOSE] = np.nan
    c = np.ones(18)
    c[NOSE] = 0
    pose = Pose(xy, c, 10, 10)
    assert pose.xy[NOSE].tolist() == [0.0, 0.0]
    assert not pose.visible[NOSE] and pose.visible[NECK]


def test_pose_without_joints_exists_and_selects_no_part():
    pose = Pose(np.zeros((18, 2)), np.zeros(18), 64, 64)
    assert not pose.visible.any()
    assert visible_parts(pose) == frozenset()
    assert not render_skeleton(pose).any()


def test_off_canvas_joints_are_kept_but_not_visible():
    xy = np.full((18, 2), 10.0, dtype=np.float32)
    xy[R_ANKLE] = (10, 40)  # below a 32 px high canvas
    xy[L_ANKLE] = (-1, 10)
    pose = Pose(xy, np.ones(18), 32, 32)
    assert pose.present.all()
    assert not pose.visible[R_ANKLE] and not pose.visible[L_ANKLE]
    assert "feet" not in visible_parts(pose)
    assert parse_openpose_json(pose_to_openpose_json(pose))[0] == pose


def test_visible_parts_and_resize():
    pose = standing_pose()
    assert visible_parts(pose) == frozenset(BODY_PARTS)
    big = pose.resized(352, 512)
    assert (big.width, big.height) == (352, 512)
    np.testing.assert_allclose(big.xy, pose.xy * 2, rtol=1e-6)
    np.testing.assert_array_equal(big.confidence, pose.confidence)


@settings(max_examples=50, **PROPERTY)
@given(poses())
def test_to_dict_round_trip(pose):
    data = json.loads(json.dumps(pose.to_dict()))
    assert Pose.from_dict(data) == pose


def test_from_dict_errors():
    with pytest.raises(PoseError, match="missing keys"):
        Pose.from_dict({"width": 3})
    with pytest.raises(PoseError, match="format"):
        Pose.from_dict({**standing_pose().to_dict(), "format": "coco17"})


# --- DeepFashion --------------------------------------------------------------------------------


def test_deepfashion_row_reads_y_first_and_missing():
    y, x = list(ROW_Y), list(ROW_X)
    y[R_ANKLE] = -1
    x[L_ANKLE] = -1
    pose = parse_deepfashion_row(json.dumps(y), x)
    assert (pose.width, pose.height) == (176, 256)
    assert pose.xy[NOSE].tolist() == [88.0, 20.0]
    assert pose.confidence[R_ANKLE] == 0 and pose.confidence[L_ANKLE] == 0
    assert pose.confidence[NOSE] == 1
    assert "feet" not in visible_parts(pose)


def test_deepfashion_all_missing_row_is_a_pose_without_parts():
    pose = parse_deepfashion_row(str([-1] * 18), str([-1] * 18))
    assert visible_parts(pose) == frozenset()


@pytest.mark.parametrize(
    ("y", "x", "match"),
    [
        ("not json", str(ROW_X), "not a JSON list"),
        (str(ROW_Y[:17]), str(ROW_X), "18 values"),
        (str(ROW_Y), str(ROW_X + [1]), "18 values"),
        ('{"a": 1}', str(ROW_X), "list of 18"),
        (json.dumps(ROW_Y[:17] + ["a"]), str(ROW_X), "l_ear"),
        (ROW_Y[:17] + [float("nan")], ROW_X, "finite"),
        (ROW_Y, ROW_X[:17] + [float("inf")], "finite"),
    ],
)
def test_deepfashion_errors(y, x, match):
    with pytest.raises(PoseError, match=match):
        parse_deepfashion_row(y, x)


@st.composite
def deepfashion_rows(draw):
    ys = draw(st.lists(st.integers(-1, 255), min_size=18, max_size=18))
    xs = [-1 if y == -1 else draw(st.integers(0, 175)) for y in ys]
    return ys, xs


@settings(max_examples=100, **PROPERTY)
@given(deepfashion_rows())
def test_deepfashion_round_trip(row):
    ys, xs = row
    pose = parse_deepfashion_row(str(ys), str(xs))
    assert pose_to_deepfashion_row(pose) == (ys, xs)
    assert parse_deepfashion_row(*pose_to_deepfashion_row(pose)) == pose


# --- OpenPose JSON ------------------------------------------------------------------------------


def test_openpose_json_all_people_and_canvas():
    pose = standing_pose()
    flat = pose_to_openpose_json(pose)["people"][0]["pose_keypoints_2d"]
    doc = {"people": [{"pose_keypoints_2d": flat}, {"pose_keypoints_2d": [0.0] * 54}]}
    out = parse_openpose_json(json.dumps(doc), width=176, height=256)
    assert len(out) == 2 and out[0] == pose and not out[1].visible.any()
    out = parse_openpose_json(json.dumps(doc).encode(), width=176, height=256)
    assert out[0] == pose


def test_openpose_json_body25_is_mapped():
    body25 = np.zeros((25, 3))
    body25[:, 0] = np.arange(25) + 1  # x = body_25 index + 1
    body25[:, 1] = 5
    body25[:, 2] = 0.9
    doc = {"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}
    (pose,) = parse_openpose_json(doc, 100, 100)
    assert pose.xy[R_HIP, 0] == 10  # BODY_25 RHip is 9; MidHip (8) is dropped
    assert pose.xy[17, 0] == 19  # l_ear is BODY_25 18


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        ("{not json", {"width": 9, "height": 9}, "not JSON"),
        ('{"people": []}', {"width": 9, "height": 9}, "empty"),
        ('{"animals": []}', {"width": 9, "height": 9}, "people"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', {"width": 9, "height": 9}, "54"),
        ('{"people": [{"face": []}]}', {"width": 9, "height": 9}, "pose_keypoints_2d"),
        ('{"people": [{"pose_keypoints_2d": ' + str([1.0] * 54) + "}]}", {}, "width/height"),
        ("[1, 2]", {"width": 9, "height": 9}, "parse_pose_keypoint"),
        (
            '{"people": [{"pose_keypoints_2d": ' + str([1.0] * 54) + '}], "canvas_width": 9, '
            '"canvas_height": 9}',
            {"width": 10, "height": 9},
            "9x9",
        ),
    ],
)
def test_openpose_json_errors(data, kwargs, match):
    with pytest.raises(PoseError, match=match):
        parse_openpose_json(data, **kwargs)


def test_openpose_json_nan_and_inf():
    flat = [1.0] * 54
    flat[3 * R_SHOULDER] = float("nan")
    with pytest.raises(PoseError, match="r_shoulder"):
        parse_openpose_json({"people": [{"pose_keypoints_2d": flat}]}, 9, 9)
    flat[3 * R_SHOULDER] = 1.0
    flat[3 * NECK + 2] = float("inf")
    with pytest.raises(PoseError, match="neck"):
        parse_openpose_json({"people": [{"pose_keypoints_2d": flat}]}, 9, 9)


@settings(max_examples=100, **PROPERTY)
@given(poses())
def test_openpose_json_round_trip(pose):
    text = json.dumps(pose_to_openpose_json(pose))
    assert parse_openpose_json(text) == [pose]


# --- POSE_KEYPOINT ------------------------------------------------------------------------------


def test_pose_keypoint_detects_normalised_and_pixels():
    pose = standing_pose()
    normalised = pose_to_pose_keypoint([pose], normalized=True)
    pixels = pose_to_pose_keypoint([pose], normalized=False)
    coords = normalised[0]["people"][0]["pose_keypoints_2d"]
    assert max(coords[0::3] + coords[1::3]) <= 1.0
    assert max(pixels[0]["people"][0]["pose_keypoints_2d"]) > 1.0
    for frames in (normalised, pixels):
        (back,) = parse_pose_keypoint(frames)
        np.testing.assert_allclose(back.xy, pose.xy, atol=1e-3)
        np.testing.assert_array_equal(back.confidence, pose.confidence)


def test_pose_keypoint_first_person_per_frame_and_controlnet_aux_shape():
    a, b = standing_pose(), standing_pose().resized(352, 512)
    frame = pose_to_pose_keypoint([a])[0]
    frame["people"].append(pose_to_pose_keypoint([b])[0]["people"][0])
    frames = [frame, pose_to_pose_keypoint([b])[0]]
    assert set(frames[1]) == {"people", "canvas_width", "canvas_height"}
    assert frames[1]["people"][0]["face_keypoints_2d"] is None
    assert parse_pose_keypoint(frames, person_index=0) == [a, b]


def _frame(people, width, height, normalised=False):
    frame = pose_to_pose_keypoint([people[0]], normalized=normalised)[0]
    for pose in people[1:]:
        frame["people"].append(pose_to_pose_keypoint([pose], normalized=normalised)[0]["people"][0])
    frame["canvas_width"], frame["canvas_height"] = width, height
    return frame


def _shrunk(pose, factor, dx=0.0):
    xy = pose.xy * factor + np.array([dx, 0.0], dtype=np.float32)
    return Pose(xy, pose.confidence, pose.width, pose.height)


def test_largest_person_is_the_default_and_person_index_picks_another():
    big = standing_pose()
    bystander = _shrunk(big, 0.4, dx=90)
    frames = [_frame([bystander, big], big.width, big.height)]
    assert parse_pose_keypoint(frames) == [big]
    assert parse_pose_keypoint(frames, person_index=0) == [bystander]
    with pytest.raises(PoseError, match="person_index 2, but the frame has 2 people"):
        parse_pose_keypoint(frames, person_index=2)


def test_a_person_with_no_visible_joint_is_refused():
    empty = Pose(np.zeros((18, 2)), np.zeros(18), 176, 256)
    frames = [_frame([standing_pose(), empty], 176, 256)]
    with pytest.raises(PoseError, match="person 1 of 2 has no visible joint"):
        parse_pose_keypoint(frames, person_index=1)
    with pytest.raises(PoseError, match="its only person has no visible joint"):
        parse_pose_keypoint([_frame([empty], 176, 256)])


def test_one_joint_slightly_off_canvas_keeps_the_frame_normalised():
    pose = standing_pose()
    frame = _frame([pose], pose.width, pose.height, normalised=True)
    flat = frame["people"][0]["pose_keypoints_2d"]
    flat[3 * L_ANKLE + 1] = 1.02  # one ankle just below the frame
    (back,) = parse_pose_keypoint([frame])
    np.testing.assert_allclose(back.xy[NECK], pose.xy[NECK], atol=1e-3)
    assert back.xy[L_ANKLE, 1] > pose.height and not back.visible[L_ANKLE]
    with pytest.raises(PoseError, match="which is pixels"):
        parse_pose_keypoint(pose_to_pose_keypoint([pose]), coordinates="0..1 of the canvas")


@pytest.mark.parametrize(("width", "height"), [(352, 512), (512, 745), (230, 400)])
def test_controlnet_aux_openpose_divides_by_the_canvas_padded_to_64(width, height):
    # open_pose/__init__.py: keypoint / padded size, canvas = unpadded detect map.
    pose = standing_pose().resized(width, height)
    pad_w, pad_h = -(-width // 64) * 64, -(-height // 64) * 64
    flat = []
    for (x, y), c in zip(pose.xy.tolist(), pose.confidence.tolist(), strict=True):
        flat += [x / pad_w, y / pad_h, 1.0] if c > 0 else [0.0, 0.0, 0.0]
    frame = {
        "people": [{"pose_keypoints_2d": flat}],
        "canvas_width": width,
        "canvas_height": height,
    }
    (back,) = parse_pose_keypoint([frame])
    np.testing.assert_allclose(back.xy, pose.xy, atol=1e-3)
    (plain,) = parse_pose_keypoint([frame], coordinates="0..1 of the canvas")
    if height % 64:
        assert abs(plain.xy[L_ANKLE, 1] - pose.xy[L_ANKLE, 1]) > 1.0


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ({"people": []}, "list of frames"),
        ([], "empty"),
        ([{"people": [], "canvas_width": 9, "canvas_height": 9}], "frame 0.*empty"),
        ([{"people": [{"pose_keypoints_2d": [0.5] * 54}]}], "canvas width"),
        (
            [
                {
                    "people": [{"pose_keypoints_2d": [0.5] * 51}],
                    "canvas_width": 9,
                    "canvas_height": 9,
                }
            ],
            "51 values",
        ),
    ],
)
def test_pose_keypoint_errors(frames, match):
    with pytest.raises(PoseError, match=match):
        parse_pose_keypoint(frames)


@settings(max_examples=100, **PROPERTY)
@given(poses())
def test_pose_keypoint_pixel_round_trip(pose):
    # The 0..1 rule cannot tell a pixel pose inside the top-left 1.5 pixels from a normalised one.
    present = pose.present
    assume(not present.any() or not looks_normalised(pose.xy[present]))
    frames = json.loads(json.dumps(pose_to_pose_keypoint([pose, pose])))
    assert parse_pose_keypoint(frames) == [pose, pose]


@settings(max_examples=100, **PROPERTY)
@given(poses(normalizable=True))
def test_pose_keypoint_normalised_round_trip(pose):
    frames = json.loads(json.dumps(pose_to_pose_keypoint([pose], normalized=True)))
    (back,) = parse_pose_keypoint(frames)
    np.testing.assert_allclose(back.xy, pose.xy, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(back.confidence, pose.confidence)
    np.testing.assert_array_equal(back.visible, pose.visible)


def test_pose_keypoint_normalised_drops_off_canvas_joints():
    xy = np.full((18, 2), 4.0)
    xy[NOSE] = (-3, 4)
    pose = Pose(xy, np.ones(18), 8, 8)
    (back,) = parse_pose_keypoint(pose_to_pose_keypoint([pose], normalized=True))
    assert back.confidence[NOSE] == 0 and back.visible[NECK]


# --- rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(176, 256), (352, 512), (64, 96), (31, 17)])
def test_render_shape_and_background(width, height):
    image = render_skeleton(standing_pose(), width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.any()
    # Corners are far from the person: black.
    assert not image[0, 0].any() and not image[-1, -1].any() and not image[0, -1].any()


def test_render_default_size_is_the_canvas():
    assert render_skeleton(standing_pose()).shape == (256, 176, 3)


def test_render_limb_and_joint_colours():
    image = render_skeleton(standing_pose(), 352, 512)
    colours = {tuple(c) for c in image.reshape(-1, 3).tolist()}
    for color in LIMB_COLORS:  # every joint disc is drawn in full colour
        assert color in colours
    # Limbs are 60% of their colour on black: the neck-nose stick (limb 12, blue).
    assert (0, 0, round(255 * 0.6)) in colours
    # The middle of the neck-to-right-hip stick carries that limb's colour.
    pose = standing_pose().resized(352, 512)
    mid = ((pose.xy[NECK] + pose.xy[R_HIP]) / 2).round().astype(int)
    expected = tuple(round(c * 0.6) for c in LIMB_COLORS[LIMBS.index((NECK, R_HIP))])
    assert tuple(image[mid[1], mid[0]].tolist()) == expected


def test_render_skips_missing_and_off_canvas_joints():
    xy = np.array(standing_pose().xy)
    c = np.zeros(18)
    c[[NECK, R_SHOULDER]] = 1
    only_shoulder = render_skeleton(Pose(xy, c, 176, 256))
    xy[R_SHOULDER] = (500, 500)
    off = render_skeleton(Pose(xy, c, 176, 256))
    assert only_shoulder.sum() > off.sum() > 0
    colours = {tuple(v) for v in off.reshape(-1, 3).tolist()} - {(0, 0, 0)}
    assert colours == {LIMB_COLORS[NECK]}  # just the neck disc: no limb


def test_render_stick_width_scales():
    def lit(size: int) -> int:
        pose = standing_pose().resized(size, size)
        return int(render_skeleton(pose).any(axis=-1).sum())

    small, large = lit(128), lit(1024)
    assert small > 0 and large / small > 30  # area grows ~ with size squared
