"""Label sets, the target-oriented selection mask, token grids, region boxes and colours."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from truepose_core.errors import BatchError, ParsingError
from truepose_core.keypoints import (
    BODY_PARTS,
    L_ANKLE,
    L_HIP,
    L_KNEE,
    NUM_KEYPOINTS,
    R_ANKLE,
    R_HIP,
    R_KNEE,
    Pose,
    visible_parts,
)
from truepose_core.parsing import (
    ATR,
    LIP,
    PART_LABELS,
    colorize,
    decode_parsing_image,
    decode_parsing_images,
    decolorize,
    get_label_set,
    parsing_rgb,
    region_boxes,
    selected_labels,
    selection_mask,
    token_labels,
    token_mask,
    validate_parsing,
)

#: Property tests are deterministic (fixed derandomised examples, no example database).
PROPERTY = MappingProxyType({"deadline": None, "derandomize": True, "database": None})


def lip(*names: str) -> list[int]:
    return [LIP.index(n) for n in names]


def pose_with(joints: list[int], width: int = 16, height: int = 16) -> Pose:
    xy = np.full((NUM_KEYPOINTS, 2), 4.0)
    c = np.zeros(NUM_KEYPOINTS)
    c[joints] = 1
    return Pose(xy, c, width, height)


FULL_POSE = pose_with(list(range(NUM_KEYPOINTS)))
LOWER_POSE = pose_with([R_HIP, L_HIP, R_KNEE, L_KNEE, R_ANKLE, L_ANKLE])


def person_map() -> np.ndarray:
    """A 16x16 LIP map: hair, face, upper clothes, arms, pants, legs, shoes."""
    p = np.zeros((16, 16), dtype=np.int64)
    p[0:2, 6:10] = LIP.index("Hair")
    p[2:4, 6:10] = LIP.index("Face")
    p[4:8, 5:11] = LIP.index("Upper-clothes")
    p[4:8, 3:5] = LIP.index("Left-arm")
    p[4:8, 11:13] = LIP.index("Right-arm")
    p[8:11, 5:11] = LIP.index("Pants")
    p[11:14, 5:7] = LIP.index("Left-leg")
    p[11:14, 9:11] = LIP.index("Right-leg")
    p[14:16, 5:7] = LIP.index("Left-shoe")
    p[14:16, 9:11] = LIP.index("Right-shoe")
    return p


# --- label sets ---------------------------------------------------------------------------------


def test_label_sets_match_schp():
    assert LIP.num_labels == 20 and ATR.num_labels == 18
    assert LIP.labels[5] == "Upper-clothes" and LIP.labels[13] == "Face"
    assert LIP.labels[19] == "Right-shoe"
    assert ATR.labels[8] == "Belt" and ATR.labels[16] == "Bag" and ATR.labels[17] == "Scarf"
    # SCHP get_palette (VOC colour map).
    assert LIP.palette[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0))
    assert LIP.palette[13] == (192, 0, 128) and LIP.palette[19] == (128, 192, 0)
    assert ATR.palette == LIP.palette[:18]


def test_get_label_set():
    assert get_label_set("LIP") is LIP and get_label_set(" atr ") is ATR
    with pytest.raises(ParsingError, match="pascal"):
        get_label_set("pascal")


def test_part_table_covers_parts_and_skips_missing_names():
    assert set(PART_LABELS) == set(BODY_PARTS)
    assert LIP.index("Coat") in selected_labels({"torso"}, LIP)
    assert selected_labels({"hips"}, ATR) == {
        ATR.index(n) for n in ("Pants", "Skirt", "Dress", "Belt")
    }
    everything = selected_labels(BODY_PARTS, ATR)
    assert ATR.index("Bag") not in everything and 0 not in everything
    assert selected_labels(BODY_PARTS, LIP) == frozenset(range(1, 20))
    with pytest.raises(ParsingError, match="wings"):
        selected_labels({"wings"}, LIP)


# --- validation ---------------------------------------------------------------------------------


def test_validate_parsing_errors():
    p = person_map()
    validate_parsing(p, LIP, image_size=(16, 16))
    validate_parsing(torch.from_numpy(p), LIP)
    bad = p.copy()
    bad[0, 0], bad[0, 1] = 20, 25
    with pytest.raises(ParsingError, match="20, 25"):
        validate_parsing(bad, LIP)
    with pytest.raises(ParsingError, match="-3"):
        validate_parsing(torch.from_numpy(p) - 3, LIP)
    with pytest.raises(ParsingError, match="16x16.*32x16"):
        validate_parsing(p, LIP, image_size=(32, 16))
    with pytest.raises(ParsingError, match="no person found"):
        validate_parsing(np.zeros((4, 4), dtype=np.uint8), LIP)
    with pytest.raises(ParsingError, match="batch item 1.*no person found"):
        validate_parsing(np.stack([p, np.zeros_like(p)]), LIP)
    with pytest.raises(ParsingError, match="integer"):
        validate_parsing(p.astype(np.float32), LIP)
    with pytest.raises(ParsingError, match="shape"):
        validate_parsing(p[None, None], LIP)


# --- selection ----------------------------------------------------------------------------------


def test_lower_body_pose_selects_lower_body_only():
    p = person_map()
    assert visible_parts(LOWER_POSE) == {"hips", "legs", "feet"}
    mask = selection_mask(p, LOWER_POSE, LIP)
    chosen = set(np.unique(p[mask]).tolist())
    assert chosen == set(lip("Pants", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe"))
    for name in ("Face", "Hair", "Upper-clothes", "Left-arm"):
        assert not mask[p == LIP.index(name)].any()


def test_full_pose_selects_the_whole_person():
    p = person_map()
    np.testing.assert_array_equal(selection_mask(p, FULL_POSE, LIP), p != 0)


def test_selection_mask_torch_and_batches():
    p = person_map()
    t = torch.from_numpy(p)
    m = selection_mask(t, LOWER_POSE, LIP)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.bool
    np.testing.assert_array_equal(m.numpy(), selection_mask(p, LOWER_POSE, LIP))
    batch = torch.stack([t, t])
    both = selection_mask(batch, [LOWER_POSE, FULL_POSE], LIP)
    assert both.shape == (2, 16, 16)
    assert torch.equal(both[0], m) and torch.equal(both[1], t != 0)
    broadcast = selection_mask(batch, LOWER_POSE, LIP)
    assert torch.equal(broadcast[1], m)
    with pytest.raises(BatchError, match="2 parsing maps but 3 poses"):
        selection_mask(batch, [LOWER_POSE] * 3, LIP)
    with pytest.raises(BatchError):
        selection_mask(p, [LOWER_POSE, FULL_POSE], LIP)


def test_pose_without_joints_selects_nothing():
    empty = pose_with([])
    assert not selection_mask(person_map(), empty, LIP).any()


@st.composite
def maps_and_poses(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    p = draw(hnp.arrays(np.int64, (h, w), elements=st.integers(0, 19)))
    if not p.any():
        p[0, 0] = draw(st.integers(1, 19))
    joints = draw(st.lists(st.integers(0, NUM_KEYPOINTS - 1), unique=True))
    return p, pose_with(joints)


@settings(max_examples=100, **PROPERTY)
@given(maps_and_poses())
def test_selection_mask_is_inside_the_person_and_selected_labels(data):
    p, pose = data
    mask = selection_mask(p, pose, LIP)
    allowed = selected_labels(visible_parts(pose), LIP)
    assert not (mask & (p == 0)).any()
    assert set(np.unique(p[mask]).tolist()) <= allowed
    np.testing.assert_array_equal(mask, np.isin(p, list(allowed)))


# --- token grids --------------------------------------------------------------------------------


def test_unet_level_sizes():
    from truepose_core.unet_layers import level_sizes

    assert level_sizes((64, 44), 4) == [(64, 44), (32, 22), (16, 11), (8, 6)]
    assert level_sizes((32, 22), 1) == [(32, 22)]


def test_token_mask_half_coverage_rule():
    mask = np.zeros((1, 4, 4), dtype=bool)
    mask[0, 0, 0] = True  # token (0, 0): 1/4 covered -> out
    mask[0, 0, 2:4] = True  # token (0, 1): 2/4 covered -> in
    mask[0, 2:4, 0:2] = True  # token (1, 0): 4/4 -> in
    mask[0, 2:4, 2] = True
    mask[0, 3, 3] = True  # token (1, 1): 3/4 -> in
    out = token_mask(mask, (2, 2))
    assert out.dtype == torch.bool and out.shape == (1, 4)
    assert out.tolist() == [[False, True, True, True]]
    mask[0, 0, 3] = False  # token (0, 1) now 1/4
    assert token_mask(torch.from_numpy(mask).float(), (2, 2)).tolist() == [
        [False, False, True, True]
    ]


def test_token_mask_non_divisible_and_row_major():
    mask = torch.zeros(2, 64, 44)
    mask[1, :, :22] = 1  # left half
    out = token_mask(mask, (8, 6))
    assert out.shape == (2, 48)
    assert not out[0].any()
    grid = out[1].view(8, 6)
    assert grid[:, :3].all() and not grid[:, 3:].any()
    with pytest.raises(ParsingError, match="0..1"):
        token_mask(mask * 2, (8, 6))


def test_token_labels_majority_and_ties():
    p = np.zeros((1, 4, 4), dtype=np.int64)
    p[0, 0:2, 0:2] = [[5, 5], [5, 2]]  # 5 wins 3:1
    p[0, 0:2, 2:4] = [[3, 3], [7, 7]]  # 3 and 7 tie -> 3
    p[0, 2:4, 0:2] = [[9, 9], [0, 0]]  # 0 and 9 tie -> 0
    p[0, 2:4, 2:4] = 13
    out = token_labels(p, (2, 2), LIP.num_labels)
    assert out.dtype == torch.long and out.tolist() == [[5, 3, 0, 13]]
    with pytest.raises(ParsingError, match="0..19"):
        token_labels(p + 10, (2, 2), LIP.num_labels)


# --- regions and colours ------------------------------------------------------------------------


def test_region_boxes_hand_made():
    boxes = region_boxes(person_map(), LIP)
    assert boxes[LIP.index("Face")] == (6, 2, 10, 4)
    assert boxes[LIP.index("Right-shoe")] == (9, 14, 11, 16)
    assert 0 not in boxes
    assert region_boxes(np.zeros((3, 3), dtype=np.int64), LIP) == {}


@settings(max_examples=100, **PROPERTY)
@given(
    hnp.arrays(
        np.int64, st.tuples(st.integers(1, 10), st.integers(1, 10)), elements=st.integers(0, 19)
    )
)
def test_region_boxes_contain_their_label_and_are_tight(p):
    boxes = region_boxes(p, LIP)
    assert set(boxes) == set(np.unique(p).tolist()) - {0}
    for label, (x0, y0, x1, y1) in boxes.items():
        inside = np.zeros_like(p, dtype=bool)
        inside[y0:y1, x0:x1] = True
        m = p == label
        assert not (m & ~inside).any()  # contains every pixel
        # Tight: each edge row/column of the box holds the label.
        assert m[y0, x0:x1].any() and m[y1 - 1, x0:x1].any()
        assert m[y0:y1, x0].any() and m[y0:y1, x1 - 1].any()


def test_colorize_decolorize_round_trip_and_formats():
    p = person_map()
    rgb = colorize(p, LIP)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[2, 6]) == LIP.palette[LIP.index("Face")]
    np.testing.assert_array_equal(decolorize(rgb, LIP), p)
    np.testing.assert_array_equal(decolorize(rgb.astype(np.float32) / 255.0, LIP), p)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(decolorize(rgba, LIP), p)
    np.testing.assert_array_equal(decolorize(p.astype(np.uint8), LIP), p)
    np.testing.assert_array_equal(decolorize(p.astype(np.uint8)[..., None], LIP), p)


def test_decolorize_errors():
    rgb = colorize(person_map(), LIP)
    rgb[0, 0] = (1, 2, 3)
    rgb[0, 1] = (250, 250, 250)
    with pytest.raises(ParsingError, match=r"2 colours.*\(1, 2, 3\)"):
        decolorize(rgb, LIP)
    with pytest.raises(ParsingError, match="0..17"):
        decolorize(np.full((2, 2), 19, np.uint8), ATR)
    with pytest.raises(ParsingError, match="shape|got"):
        decolorize(np.zeros((2, 2, 2), np.uint8), LIP)


@settings(max_examples=50, **PROPERTY)
@given(hnp.arrays(np.int64, (6, 5), elements=st.integers(0, 17)))
def test_colour_round_trip_atr(p):
    np.testing.assert_array_equal(decolorize(colorize(p, ATR), ATR), p)


def _parsing_labels() -> torch.Tensor:
    labels = torch.zeros(48, 32, dtype=torch.int64)
    labels[10:40, 8:24] = 5  # upper clothes
    labels[4:10, 12:20] = 13  # face
    return labels


def test_decode_parsing_images_palette_and_indices():
    labels = _parsing_labels()
    palette = torch.from_numpy(colorize(labels.numpy(), LIP)).float().div(255.0)[None]
    for encoding in ("auto", "palette colours"):
        assert torch.equal(decode_parsing_images(palette, "lip", encoding)[0], labels)
    gray = labels.float().div(255.0)[None, :, :, None]
    for encoding in ("auto", "label indices"):
        decoded = decode_parsing_images(gray.expand(1, 48, 32, 3), "lip", encoding)
        assert decoded.dtype == torch.int64 and torch.equal(decoded[0], labels)
    # One channel is repeated; alpha is dropped, never composited.
    assert torch.equal(decode_parsing_images(gray, "lip", "auto")[0], labels)
    rgba = torch.cat([palette, torch.zeros(1, 48, 32, 1)], -1)
    assert torch.equal(decode_parsing_images(rgba, "lip", "auto")[0], labels)


def test_decode_parsing_image_auto_tells_indices_from_palette():
    # Gray levels at or above the class count cannot be indices: "auto" reads a palette.
    black = np.zeros((4, 4, 3), np.uint8)
    assert (decode_parsing_image(black, "lip", "auto") == 0).all()
    high = np.full((4, 4, 3), LIP.num_labels, np.uint8)
    with pytest.raises(ParsingError, match="not in the LIP palette"):
        decode_parsing_image(high, "lip", "auto")
    coloured = np.zeros((4, 4, 3), np.uint8)
    coloured[..., 0] = 128  # label 1 (hat) in the palette
    with pytest.raises(ParsingError, match="'label indices' needs a grayscale"):
        decode_parsing_image(coloured, "lip", "label indices")
    assert (decode_parsing_image(coloured, "lip", "auto") == 1).all()


def test_decode_parsing_images_errors():
    with pytest.raises(ParsingError, match="expected an IMAGE"):
        parsing_rgb(torch.zeros(4, 4, 3))
    with pytest.raises(ParsingError, match="expected an IMAGE"):
        parsing_rgb(torch.zeros(1, 4, 4, 5))
    too_high = torch.full((1, 4, 4, 3), (LIP.num_labels + 1) / 255.0)
    with pytest.raises(ParsingError):
        decode_parsing_images(too_high, "lip", "label indices")
