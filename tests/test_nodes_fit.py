"""Real photos and real poses through the nodes, inside a real ComfyUI: any size, any
aspect, the right person, keypoints that line up (issue 10).

Photos are scikit-image's bundled ones (astronaut 512x512, coffee 600x400, chelsea 451x300),
cut to the odd sizes users bring. Poses arrive the way comfyui_controlnet_aux writes them.
"""

from __future__ import annotations

import contextlib
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

from tests.test_fit import STANDING, shoulder_to_torso
from tests.test_nodes_pose_parse import random_schp  # noqa: F401  (a fixture)

pytestmark = pytest.mark.comfyui

#: Joints far enough apart to carry a marker disc each (no eyes or ears).
MARKED = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
MARKER_RADIUS = 7
#: (name, width, height): real-photo sizes, including the issue's odd ones.
PHOTOS = [("astronaut", 230, 400), ("coffee", 250, 400), ("astronaut", 512, 512)]


def _photo(name: str, width: int, height: int) -> torch.Tensor:
    """IMAGE (1, height, width, 3): a scikit-image photo cut (or resized) to the size."""
    array = getattr(photos, name)()
    if array.shape[0] < height or array.shape[1] < width:
        array = np.asarray(Image.fromarray(array).resize((width, height), Image.BICUBIC))
    top, left = (array.shape[0] - height) // 2, (array.shape[1] - width) // 2
    return (
        torch.from_numpy(array[top : top + height, left : left + width].copy())[None].float() / 255
    )


def _marker_colour(k: int) -> torch.Tensor:
    hue = k / len(MARKED)
    rgb = [max(0.0, min(1.0, abs(hue * 6 - c) - 1)) for c in (3, 2, 4)]
    rgb[0] = 1 - rgb[0] if k % 2 else rgb[0]
    return torch.tensor(rgb)


def _marked(image: torch.Tensor, xy: np.ndarray):
    """The photo with a coloured disc on each marked joint, and a parsing with label 1 + k
    on disc k (0 elsewhere)."""
    _b, h, w, _c = image.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    image, labels = image.clone(), torch.zeros(1, h, w, dtype=torch.long)
    for k, joint in enumerate(MARKED):
        disc = (xs - float(xy[joint, 0])) ** 2 + (ys - float(xy[joint, 1])) ** 2 <= MARKER_RADIUS**2
        image[0][disc] = _marker_colour(k)
        labels[0][disc] = 1 + k
    return image, labels


def _openpose_frame(xy: np.ndarray, width: int, height: int, people=()) -> dict:
    """A POSE_KEYPOINT frame as comfyui_controlnet_aux's OpenPose writes it: 0..1 of the
    canvas padded to a multiple of 64 (open_pose/__init__.py, util.resize_image_with_pad)."""
    pad_w, pad_h = -(-width // 64) * 64, -(-height // 64) * 64

    def person(points):
        flat = []
        for x, y in points:
            flat += [float(x) / pad_w, float(y) / pad_h, 1.0]
        return {"pose_keypoints_2d": flat, "face_keypoints_2d": None}

    return {
        "people": [person(p) for p in (*people, xy)],
        "canvas_width": width,
        "canvas_height": height,
    }


def _errors(comfy):
    return comfy.pack_module("nodes.errors").TruePoseNodeError


@contextlib.contextmanager
def _raises(comfy, kind: str, match: str):
    with pytest.raises(_errors(comfy), match=match) as caught:
        yield
    assert type(caught.value).__name__ == kind, caught.value


def _fit(comfy, image, mode, width, height, **kwargs):
    return comfy.node_class("TruePose_FitInputs").execute(image, mode, width, height, **kwargs)


# ---------------------------------------------------------------------------------------------
# Fit Inputs: keypoints land on the same body pixels


@pytest.mark.parametrize("mode", ["letterbox", "crop", "stretch"])
@pytest.mark.parametrize(("name", "width", "height"), PHOTOS)
def test_fitted_keypoints_land_on_the_same_body_pixels(comfy, mode, name, width, height):
    types = comfy.pack_module("nodes.types")
    xy = STANDING * [width, height]
    image, labels = _marked(_photo(name, width, height), xy)
    frames = [_openpose_frame(xy, width, height)]
    (pose,), _preview = comfy.node_class("TruePose_PoseFromKeypoint").execute(frames).result
    np.testing.assert_allclose(pose.xy, xy, atol=1e-3)

    parsing = types.ParsingBatch(labels=labels, label_set="lip")
    out = _fit(comfy, image, mode, 352, 512, parsing=parsing, target_pose=[pose]).result
    fitted, fitted_parsing, (fitted_pose,), transform, preview = out
    assert fitted.shape == (1, 512, 352, 3) and fitted_parsing.labels.shape == (1, 512, 352)
    assert (fitted_pose.width, fitted_pose.height) == (352, 512)
    assert preview.shape == (1, 512, 352, 3)
    checked = 0
    for k, joint in enumerate(MARKED):
        if not fitted_pose.visible[joint]:
            assert mode == "crop"  # only crop cuts joints off
            continue
        x, y = (int(v) for v in np.floor(fitted_pose.xy[joint]))
        colour = fitted[0, y, x]
        assert float((colour - _marker_colour(k)).abs().max()) < 0.12, (mode, joint, colour)
        assert int(fitted_parsing.labels[0, y, x]) == 1 + k
        checked += 1
    assert checked >= 10
    if mode != "stretch":  # the aspect is kept: shoulders keep their ratio to the torso
        assert shoulder_to_torso(fitted_pose) == pytest.approx(shoulder_to_torso(pose), rel=1e-2)


def test_default_size_is_the_checkpoint_training_size(comfy, loaded):
    _model, truepose, _vae = loaded
    out = _fit(comfy, _photo("chelsea", 451, 300), "letterbox", 0, 0, truepose=truepose).result
    h, w = truepose.config.resolution
    assert out[0].shape == (1, h, w, 3) and out[1] is None and out[2] is None
    no_model = _fit(comfy, _photo("chelsea", 451, 300), "letterbox", 0, 0).result
    assert no_model[0].shape == (1, 296, 448, 3)  # the photo's size rounded to 8
    with _raises(comfy, "ConfigError", "width x height 36x64; set both to at least 64"):
        _fit(comfy, _photo("chelsea", 451, 300), "letterbox", 36, 64)
    with _raises(comfy, "ConfigError", "set both"):
        _fit(comfy, _photo("chelsea", 451, 300), "letterbox", 352, 0)


def test_unfit_image_puts_the_result_back_on_the_photo(comfy):
    photo = _photo("astronaut", 230, 400)
    unfit = comfy.node_class("TruePose_UnfitImage")
    for mode in ("letterbox", "stretch"):
        fitted, _p, _pose, transform, _preview = _fit(comfy, photo, mode, 352, 512).result
        (back,) = unfit.execute(fitted, transform).result
        assert back.shape == photo.shape
        assert float((back - photo).abs().mean()) < 0.02
    fitted, _p, _pose, transform, _preview = _fit(comfy, photo, "crop", 352, 352).result
    (back,) = unfit.execute(torch.zeros_like(fitted), transform, photo).result
    assert back.shape == photo.shape
    torch.testing.assert_close(back[0, :40], photo[0, :40])  # cut off by crop: the photo
    assert float(back[0, 120:280].max()) < 0.02  # the generated middle
    with _raises(comfy, "ImageError", "differs from the fitted size 352x352"):
        unfit.execute(photo, transform)


# ---------------------------------------------------------------------------------------------
# A pose from one photo on a person from a photo of another aspect


def test_pose_from_a_square_photo_on_a_tall_person_keeps_its_proportions(comfy, loaded):
    # The pose is detected on astronaut (512x512, a half-body frame); the person is a tall
    # 230x400 cut of another photo. The old per-axis resize squashed the shoulders.
    square = STANDING * [512, 512]
    frames = [_openpose_frame(square, 512, 512)]
    (pose,), _ = comfy.node_class("TruePose_PoseFromKeypoint").execute(frames).result
    before = shoulder_to_torso(pose)
    person = _photo("coffee", 230, 400)
    _model, truepose, _vae = loaded
    h, w = truepose.config.resolution
    for kwargs in ({}, {"truepose": truepose}):
        out = _fit(
            comfy,
            person,
            "letterbox",
            0 if kwargs else 352,
            0 if kwargs else 512,
            target_pose=[pose],
            **kwargs,
        ).result
        (placed,) = out[2]
        assert abs(shoulder_to_torso(placed) / before - 1) < 0.10
        assert placed.visible.sum() == 18
    # Implicitly (no Fit node): the model's own placement keeps the proportions too.
    fit = comfy.pack_module("truepose_core.fit")
    implicit = fit.fit_pose(pose, w, h)
    assert abs(shoulder_to_torso(implicit) / before - 1) < 0.10


def test_pose_scale_and_offset_move_the_person(comfy):
    frames = [_openpose_frame(STANDING * [512, 512], 512, 512)]
    (pose,), _ = comfy.node_class("TruePose_PoseFromKeypoint").execute(frames).result
    photo = _photo("astronaut", 230, 400)
    fit = comfy.pack_module("truepose_core.fit")
    plain = _fit(comfy, photo, "letterbox", 352, 512, target_pose=[pose]).result[2][0]
    moved = _fit(
        comfy,
        photo,
        "letterbox",
        352,
        512,
        target_pose=[pose],
        pose_scale=1.25,
        pose_offset_x=0.1,
        pose_offset_y=0.0,
    ).result[2][0]
    np.testing.assert_allclose(
        fit.pose_centre(moved), fit.pose_centre(plain) + [35.2, 0.0], atol=1e-3
    )
    assert shoulder_to_torso(moved) == pytest.approx(shoulder_to_torso(plain), rel=1e-4)
    with _raises(comfy, "PoseError", "no visible joint"):
        _fit(comfy, photo, "letterbox", 352, 512, target_pose=[pose], pose_offset_x=1.0)


# ---------------------------------------------------------------------------------------------
# Keypoint reading you can trust


def test_one_joint_off_canvas_does_not_flip_the_frame(comfy):
    xy = STANDING * [352, 512]
    frame = _openpose_frame(xy, 352, 512)
    frame["people"][0]["pose_keypoints_2d"][3 * 13 + 1] = 1.02  # l ankle below the frame
    (pose,), _ = comfy.node_class("TruePose_PoseFromKeypoint").execute([frame]).result
    np.testing.assert_allclose(pose.xy[:13], xy[:13], atol=1e-3)
    assert not pose.visible[13] and pose.visible[:13].all()


def test_controlnet_aux_padding_is_undone(comfy):
    # 352x512 at resolution 512: the detect map is 512x745, padded to 512x768.
    xy = STANDING * [512, 745]
    frame = _openpose_frame(xy, 512, 745)
    (pose,), _ = comfy.node_class("TruePose_PoseFromKeypoint").execute([frame]).result
    np.testing.assert_allclose(pose.xy, xy, atol=1e-3)
    (naive,), _ = (
        comfy.node_class("TruePose_PoseFromKeypoint")
        .execute([frame], -1, "0..1 of the canvas")
        .result
    )
    assert naive.xy[13, 1] == pytest.approx(xy[13, 1] * 745 / 768, rel=1e-4)  # 3% short


def test_largest_person_by_default_and_person_index_picks(comfy):
    big = STANDING * [352, 512]
    bystander = STANDING * [352, 512] * 0.35 + [220, 10]
    frames = [_openpose_frame(big, 352, 512, people=[bystander])]  # bystander listed first
    node = comfy.node_class("TruePose_PoseFromKeypoint")
    (pose,), preview = node.execute(frames).result
    np.testing.assert_allclose(pose.xy, big, atol=1e-3)
    # The preview shows the chosen person in colour, the bystander in gray.
    x, y = (int(v) for v in big[1])
    assert float(preview[0, y, x].max() - preview[0, y, x].min()) > 0.5
    bx, by = (int(v) for v in bystander[1])
    gray = preview[0, by, bx]
    assert 0.05 < float(gray.max()) < 0.5 and float(gray.max() - gray.min()) < 1e-6
    (first,), _ = node.execute(frames, 0).result
    np.testing.assert_allclose(first.xy, bystander, atol=1e-3)

    json_node = comfy.node_class("TruePose_PoseFromOpenPoseJSON")
    (pose,), _ = json_node.execute(json.dumps(frames[0]), "(none)", 0, 0).result
    np.testing.assert_allclose(pose.xy, big, atol=1e-3)
    (first,), _ = json_node.execute(json.dumps(frames[0]), "(none)", 0, 0, 0).result
    np.testing.assert_allclose(first.xy, bystander, atol=1e-3)


def test_a_person_with_no_visible_joint_is_refused_at_the_pose_node(comfy):
    frame = {
        "people": [{"pose_keypoints_2d": [0.0] * 54}],
        "canvas_width": 352,
        "canvas_height": 512,
    }
    with _raises(comfy, "PoseError", "only person has no visible joint"):
        comfy.node_class("TruePose_PoseFromKeypoint").execute([frame])
    with _raises(comfy, "PoseError", "only person has no visible joint"):
        comfy.node_class("TruePose_PoseFromOpenPoseJSON").execute(json.dumps(frame), "(none)", 0, 0)
    missing = str([-1] * 18)
    with _raises(comfy, "PoseError", "DeepFashion keypoints: no visible joint"):
        comfy.node_class("TruePose_PoseFromDeepFashion").execute(missing, missing)


# ---------------------------------------------------------------------------------------------
# Sizes


def _pose_of(comfy, width, height):
    frames = [_openpose_frame(STANDING * [width, height], width, height)]
    return comfy.node_class("TruePose_PoseFromKeypoint").execute(frames).result[0]


def test_real_photo_runs_end_to_end_through_fit_and_back(comfy, loaded):
    from tests.tiny_models import person_parsing

    model, truepose, vae = loaded
    types = comfy.pack_module("nodes.types")
    photo = _photo("astronaut", 230, 400)
    parsing = types.ParsingBatch(labels=person_parsing(1, 400, 230), label_set="lip")
    pose = _pose_of(comfy, 512, 512)  # from another photo
    image, fparsing, fpose, transform, _ = _fit(
        comfy, photo, "letterbox", 0, 0, parsing=parsing, target_pose=pose, truepose=truepose
    ).result
    (source,) = (
        comfy.node_class("TruePose_SourceNetEncode").execute(truepose, vae, image, fparsing).result
    )
    (patched,) = (
        comfy.node_class("TruePose_HPFAPatchModel")
        .execute(model, truepose, source, fpose, 0.3, 0.6, 1.0)
        .result
    )
    sampler = comfy.node_class("TruePose_TrueSampler")
    h, w = truepose.config.resolution
    with _raises(comfy, "ImageError", f"latent: .*encoded source is {w}x{h}.*TruePose Fit Inputs"):
        sampler.execute(
            patched,
            truepose,
            source,
            0,
            2,
            3.5,
            "ddim",
            "ddim_uniform",
            1.0,
            {"samples": torch.zeros(1, 4, h // 4, w // 4)},
        )
    (latent,) = sampler.execute(
        patched, truepose, source, 0, 2, 3.5, "ddim", "ddim_uniform", 1.0
    ).result
    assert latent["samples"].shape[-2:] == (h // 8, w // 8)  # the fitted source's size
    decoded = vae.decode(latent["samples"])
    (back,) = comfy.node_class("TruePose_UnfitImage").execute(decoded, transform, photo).result
    assert back.shape == (1, 400, 230, 3)


def test_human_parse_takes_any_size(comfy, random_schp):  # noqa: F811
    # Taller than the old 2048 px limit and of no multiple: SCHP resizes to 473 px anyway.
    image = _photo("astronaut", 40, 2100)
    labels, preview, mask = (
        comfy.node_class("TruePose_HumanParse").execute(image, random_schp).result
    )
    assert labels.labels.shape == (1, 2100, 40) and preview.shape == (1, 2100, 40, 3)


def test_shipped_model_notes_its_domain_once(comfy, caplog):
    from tests.tiny_models import person_parsing

    checkpoint = comfy.node_class("TruePose_LoadTruePose")
    shipped = next(
        n for n in checkpoint.GET_SCHEMA().inputs[0].options if "synthfashion" in n.lower()
    )
    _model, truepose, vae = checkpoint.execute(shipped).result
    types = comfy.pack_module("nodes.types")
    encode = comfy.node_class("TruePose_SourceNetEncode")
    near = types.ParsingBatch(labels=person_parsing(1, 128, 88), label_set="lip")
    far = types.ParsingBatch(labels=person_parsing(1, 400, 232), label_set="lip")
    note = "trained on 128x88 procedural figures; real photos need a full-size checkpoint"
    with caplog.at_level(logging.WARNING, logger="truepose"):
        encode.execute(truepose, vae, _photo("astronaut", 88, 128), near)
        assert note not in caplog.text
        encode.execute(truepose, vae, _photo("astronaut", 232, 400), far)
        encode.execute(truepose, vae, _photo("coffee", 232, 400), far)
    assert caplog.text.count(note) == 1


# ---------------------------------------------------------------------------------------------
# With the stock nodes, the way artists combine them


def test_fit_in_a_prompt_with_stock_image_nodes(comfy):
    """LoadImage -> JoinImageWithAlpha -> RepeatImageBatch -> Fit -> Unfit -> PreviewImage."""
    array = photos.chelsea()  # 451x300
    Image.fromarray(array).save(comfy.input_dir / "chelsea.png")
    flat = [v for x, y in STANDING * [451, 300] for v in (float(x), float(y), 1.0)]
    pose = {"people": [{"pose_keypoints_2d": flat}], "canvas_width": 451, "canvas_height": 300}
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "chelsea.png"}},
        "2": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}},
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 2}},
        "4": {
            "class_type": "TruePose_PoseFromOpenPoseJSON",
            "inputs": {"json_text": json.dumps(pose), "file": "(none)", "width": 0, "height": 0},
        },
        "5": {
            "class_type": "TruePose_FitInputs",
            "inputs": {
                "image": ["3", 0],
                "target_pose": ["4", 0],
                "mode": "crop",
                "width": 352,
                "height": 512,
            },
        },
        "6": {
            "class_type": "TruePose_UnfitImage",
            "inputs": {"image": ["5", 0], "transform": ["5", 3], "original_image": ["3", 0]},
        },
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["5", 4]}},
    }
    run = comfy.run_prompt(prompt)
    assert run.success, run.error
    fitted = run.node_outputs["5"][0][0]
    assert tuple(fitted.shape) == (2, 512, 352, 3)
    back = run.node_outputs["6"][0][0]
    assert tuple(back.shape) == (2, 300, 451, 3)
