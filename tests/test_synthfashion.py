"""SynthFashion: determinism, shapes, exact labels under every visible joint, patterns that
survive a pose change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from truepose_core.data import synthfashion as sf
from truepose_core.errors import DataError, PoseError
from truepose_core.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, Pose
from truepose_core.parsing import LIP

KEYS = {
    "source_image",
    "target_image",
    "source_parsing",
    "target_parsing",
    "source_keypoints",
    "target_keypoints",
    "target_skeleton",
    "pair_id",
}


def lip(*names: str) -> set[int]:
    return {LIP.labels.index(n) for n in names}


# Which LIP labels may lie under (within 2 px of) each visible joint, per the person's side.
FACE = lip("Face", "Hair")
ALLOWED = {
    "nose": FACE,
    "r_eye": FACE,
    "l_eye": FACE,
    "r_ear": FACE,
    "l_ear": FACE,
    "neck": lip("Face", "Hair", "Upper-clothes"),
    "r_shoulder": lip("Upper-clothes", "Right-arm"),
    "l_shoulder": lip("Upper-clothes", "Left-arm"),
    "r_elbow": lip("Upper-clothes", "Right-arm"),
    "l_elbow": lip("Upper-clothes", "Left-arm"),
    "r_wrist": lip("Right-arm", "Glove"),
    "l_wrist": lip("Left-arm", "Glove"),
    "r_hip": lip("Pants", "Skirt", "Upper-clothes"),
    "l_hip": lip("Pants", "Skirt", "Upper-clothes"),
    "r_knee": lip("Right-leg", "Pants", "Skirt"),
    "l_knee": lip("Left-leg", "Pants", "Skirt"),
    "r_ankle": lip("Right-shoe", "Right-leg", "Pants"),
    "l_ankle": lip("Left-shoe", "Left-leg", "Pants"),
}


def test_label_constants_are_lip() -> None:
    assert LIP.labels.index("Face") == sf.FACE
    assert LIP.labels.index("Hair") == sf.HAIR
    assert LIP.labels.index("Upper-clothes") == sf.UPPER_CLOTHES
    assert LIP.labels.index("Pants") == sf.PANTS
    assert LIP.labels.index("Skirt") == sf.SKIRT
    assert (lip("Left-arm").pop(), lip("Right-arm").pop()) == (sf.LEFT_ARM, sf.RIGHT_ARM)
    assert (lip("Left-leg").pop(), lip("Right-leg").pop()) == (sf.LEFT_LEG, sf.RIGHT_LEG)
    assert (lip("Left-shoe").pop(), lip("Right-shoe").pop()) == (sf.LEFT_SHOE, sf.RIGHT_SHOE)


def test_same_seed_same_tensors_and_indices_differ() -> None:
    a = sf.SynthFashion(length=8, seed=3)[5]
    b = sf.SynthFashion(length=8, seed=3)[5]
    assert a.keys() == b.keys() == KEYS
    for key in KEYS - {"pair_id"}:
        assert torch.equal(a[key], b[key]), key
    assert a["pair_id"] == b["pair_id"]
    other_index = sf.SynthFashion(length=8, seed=3)[6]
    other_seed = sf.SynthFashion(length=8, seed=4)[5]
    other_split = sf.SynthFashion(length=8, seed=3, split="test")[5]
    for other in (other_index, other_seed, other_split):
        assert not torch.equal(a["source_image"], other["source_image"])
        assert other["pair_id"] != a["pair_id"]


@pytest.mark.parametrize("size", [sf.DEFAULT_SIZE, (64, 44), (160, 112)])
def test_shapes_and_ranges(size: tuple[int, int]) -> None:
    h, w = size
    item = sf.SynthFashion(size=size, length=3, seed=1)[2]
    for key in ("source_image", "target_image"):
        assert item[key].shape == (3, h, w) and item[key].dtype == torch.float32
        assert item[key].min() >= -1.0 and item[key].max() <= 1.0
    for key in ("source_parsing", "target_parsing"):
        assert item[key].shape == (h, w) and item[key].dtype == torch.int64
        assert item[key].min() >= 0 and item[key].max() < len(LIP.labels)
        assert (item[key] == 0).any() and (item[key] != 0).sum() > 0.05 * h * w
    for key in ("source_keypoints", "target_keypoints"):
        kp = item[key]
        assert kp.shape == (NUM_KEYPOINTS, 3) and kp.dtype == torch.float32
        shown = kp[:, 2] > 0
        assert shown.sum() >= 6
        assert (kp[shown, 0] >= 0).all() and (kp[shown, 0] < w).all()
        assert (kp[shown, 1] >= 0).all() and (kp[shown, 1] < h).all()
        assert (kp[~shown] == 0).all()
    skeleton = item["target_skeleton"]
    assert skeleton.shape == (3, h, w) and skeleton.min() >= 0 and skeleton.max() <= 1
    assert skeleton.max() > 0


def test_collates_with_default_loader() -> None:
    batch = next(iter(DataLoader(sf.SynthFashion(length=4, seed=0), batch_size=2)))
    assert batch["source_image"].shape == (2, 3, *sf.DEFAULT_SIZE)
    assert batch["target_keypoints"].shape == (2, NUM_KEYPOINTS, 3)
    assert len(batch["pair_id"]) == 2


@pytest.mark.parametrize("size", [sf.DEFAULT_SIZE, (256, 176)])
def test_every_visible_joint_lies_on_its_body_part(size: tuple[int, int]) -> None:
    ds = sf.SynthFashion(size=size, length=40, seed=11)
    checked = 0
    for i in range(len(ds)):
        item = ds[i]
        for side in ("source", "target"):
            labels = item[f"{side}_parsing"].numpy()
            kp = item[f"{side}_keypoints"].numpy()
            for j, name in enumerate(KEYPOINT_NAMES):
                if kp[j, 2] <= 0:
                    continue
                x, y = int(kp[j, 0]), int(kp[j, 1])
                window = labels[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
                found = set(np.unique(window).tolist())
                assert found & ALLOWED[name], (
                    f"item {i} {side}: {name} at ({x}, {y}) lies on labels "
                    f"{sorted(LIP.labels[v] for v in found)}"
                )
                checked += 1
    assert checked > 40 * 2 * 10


def test_views_hide_the_far_face_points() -> None:
    rng = np.random.default_rng(0)
    eyes = [KEYPOINT_NAMES.index(n) for n in ("r_eye", "l_eye")]
    ears = [KEYPOINT_NAMES.index(n) for n in ("r_ear", "l_ear")]
    nose = KEYPOINT_NAMES.index("nose")
    for _ in range(30):
        front = sf.sample_pose(rng, (256, 176), view="front")
        side = sf.sample_pose(rng, (256, 176), view="side")
        back = sf.sample_pose(rng, (256, 176), view="back")
        assert isinstance(front, Pose)
        assert front.confidence[eyes].all() and front.confidence[nose] > 0
        assert not side.confidence[eyes].all() and not side.confidence[ears].all()
        assert not back.confidence[eyes].any() and back.confidence[nose] == 0
    with pytest.raises(PoseError, match="view"):
        sf.sample_pose(rng, (128, 88), view="top")


def test_parsing_labels_are_exact_per_region() -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        identity = sf.sample_identity(rng)
        image, labels = sf.render_person(identity, sf.sample_pose(rng, (256, 176)), (256, 176))
        assert image.shape == (256, 176, 3) and image.dtype == np.uint8
        assert labels.shape == (256, 176)
        used = set(np.unique(labels).tolist())
        assert used <= lip(
            "Background", "Hair", "Upper-clothes", "Pants", "Skirt", "Face", "Left-arm",
            "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
        )  # fmt: skip
        assert lip("Upper-clothes", "Face") <= used
        lower = lip("Skirt") if identity.lower == "skirt" else lip("Pants")
        assert lower <= used
        # The background is exactly where the background colour is (plain backgrounds).
        if identity.background == identity.background_to:
            bg = np.all(image == np.array(identity.background, np.uint8), axis=-1)
            assert np.array_equal(bg[labels == 0], np.ones((labels == 0).sum(), bool))


def _garment_histogram(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    pixels = image[labels == sf.UPPER_CLOTHES] // 64  # 4 bins per channel
    codes = pixels[:, 0] * 16 + pixels[:, 1] * 4 + pixels[:, 2]
    hist = np.bincount(codes, minlength=64).astype(np.float64)
    return hist / hist.sum()


def test_garment_colours_survive_a_pose_change() -> None:
    rng = np.random.default_rng(7)
    same, other = [], []
    identities = [sf.sample_identity(rng) for _ in range(12)]
    for k, identity in enumerate(identities):
        if identity.shirt.pattern == "plain":
            continue
        hists = []
        for _ in range(2):
            pose = sf.sample_pose(rng, (256, 176), view="front")
            hists.append(_garment_histogram(*sf.render_person(identity, pose, (256, 176))))
        same.append(np.abs(hists[0] - hists[1]).sum())
        stranger = identities[(k + 1) % len(identities)]
        image, labels = sf.render_person(stranger, pose, (256, 176))
        other.append(np.abs(hists[1] - _garment_histogram(image, labels)).sum())
    assert len(same) >= 6
    assert np.median(same) < 0.35
    assert np.median(same) < 0.5 * np.median(other)


def test_print_is_on_the_front_and_follows_the_body() -> None:
    rng = np.random.default_rng(2)
    base = sf.sample_identity(rng)
    shirt = dataclasses.replace(
        base.shirt,
        pattern="plain",
        color_a=(200, 200, 200),
        text="POSE",
        text_mask=sf._text_mask("POSE"),
        text_color=(255, 0, 0),
    )
    identity = dataclasses.replace(base, shirt=shirt, background=(0, 0, 255))
    identity = dataclasses.replace(identity, background_to=(0, 0, 255))
    size = (512, 352)

    def red_pixels(view: str) -> tuple[int, np.ndarray]:
        pose = sf.sample_pose(rng, size, view=view)
        image, labels = sf.render_person(identity, pose, size)
        red = (image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] < 90)
        return int(red.sum()), labels[red]

    for _ in range(3):
        count, under = red_pixels("front")
        assert count > 30
        assert (under == sf.UPPER_CLOTHES).all()  # the print is on the garment only
        count, _ = red_pixels("back")
        assert count == 0


def test_render_at_another_size_than_sampled() -> None:
    rng = np.random.default_rng(3)
    identity = sf.sample_identity(rng)
    pose = sf.sample_pose(rng, (128, 88))
    image, labels = sf.render_person(identity, pose, (256, 176))
    small, small_labels = sf.render_person(identity, pose, (128, 88))
    assert image.shape == (256, 176, 3)
    # The same person: the labelled area scales with the canvas.
    ratio = (labels > 0).sum() / max(1, (small_labels > 0).sum())
    assert 3.0 < ratio < 5.0


def test_errors() -> None:
    with pytest.raises(DataError, match="split"):
        sf.SynthFashion(split="val")
    with pytest.raises(DataError, match="size"):
        sf.SynthFashion(size=(8, 8))
    with pytest.raises(DataError, match="length"):
        sf.SynthFashion(length=0)
    rng = np.random.default_rng(0)
    plain = Pose(np.zeros((18, 2)), np.zeros(18), 88, 128)
    with pytest.raises(PoseError, match="SynthPose"):
        sf.render_person(sf.sample_identity(rng), plain)
    with pytest.raises(IndexError):
        sf.SynthFashion(length=2)[2]
