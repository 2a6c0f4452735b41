"""The OpenPose-18 keypoint contract: one ``Pose`` type, its parsers, writers and renderer.

Every pose in this project is a :class:`Pose`: 18 joints in the OpenPose / COCO-18 order,
coordinates in **pixels** of the pose's own canvas, ``(x, y)`` order, and a confidence per
joint where 0 means missing. Parsers turn the formats users bring (DeepFashion annotation
rows, OpenPose JSON, ComfyUI's ``POSE_KEYPOINT``) into poses; writers turn poses back, so
every format round-trips. ``render_skeleton`` draws the skeleton the way ControlNet
OpenPose users know it (controlnet_aux's ``draw_bodypose``).

Words used below:

- a joint is *present* when its confidence is > 0;
- a joint is *visible* when it is present and lies inside the canvas
  (``0 <= x < width`` and ``0 <= y < height``). A present joint off the canvas is kept (it
  round-trips) but counts as not visible: it is neither drawn nor used to select parsing
  labels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .errors import PoseError

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
)
NUM_KEYPOINTS = 18

NOSE = 0
NECK = 1
R_SHOULDER = 2
R_ELBOW = 3
R_WRIST = 4
L_SHOULDER = 5
L_ELBOW = 6
L_WRIST = 7
R_HIP = 8
R_KNEE = 9
R_ANKLE = 10
L_HIP = 11
L_KNEE = 12
L_ANKLE = 13
R_EYE = 14
L_EYE = 15
R_EAR = 16
L_EAR = 17

#: The 17 limbs OpenPose draws, as 0-based joint pairs (controlnet_aux ``limbSeq`` minus one,
#: without the two ear-shoulder links that ``draw_bodypose`` never draws).
LIMBS: tuple[tuple[int, int], ...] = (
    (NECK, R_SHOULDER),
    (NECK, L_SHOULDER),
    (R_SHOULDER, R_ELBOW),
    (R_ELBOW, R_WRIST),
    (L_SHOULDER, L_ELBOW),
    (L_ELBOW, L_WRIST),
    (NECK, R_HIP),
    (R_HIP, R_KNEE),
    (R_KNEE, R_ANKLE),
    (NECK, L_HIP),
    (L_HIP, L_KNEE),
    (L_KNEE, L_ANKLE),
    (NECK, NOSE),
    (NOSE, R_EYE),
    (R_EYE, R_EAR),
    (NOSE, L_EYE),
    (L_EYE, L_EAR),
)

#: controlnet_aux ``draw_bodypose`` colours (RGB): limb ``k`` is filled with 60% of
#: ``LIMB_COLORS[k]`` (``int(0.6 * c)``, on black), joint ``i`` is a disc of ``LIMB_COLORS[i]``.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)

#: Body-part categories of the target-oriented parsing selection (METHOD.md, HPFA step 1).
BODY_PARTS: tuple[str, ...] = ("face", "torso", "arms", "hips", "legs", "feet")

#: Keypoint index -> body part.
KEYPOINT_PART: Mapping[int, str] = MappingProxyType(
    {
        NOSE: "face",
        R_EYE: "face",
        L_EYE: "face",
        R_EAR: "face",
        L_EAR: "face",
        NECK: "torso",
        R_SHOULDER: "torso",
        L_SHOULDER: "torso",
        R_ELBOW: "arms",
        L_ELBOW: "arms",
        R_WRIST: "arms",
        L_WRIST: "arms",
        R_HIP: "hips",
        L_HIP: "hips",
        R_KNEE: "legs",
        L_KNEE: "legs",
        R_ANKLE: "feet",
        L_ANKLE: "feet",
    }
)

#: BODY_25 index of each OpenPose-18 joint (BODY_25 adds MidHip at 8 and six foot points).
BODY25_TO_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

#: DeepFashion PGPIS annotation frame (``fasion-resize-annotation-*.csv``): 256 high, 176 wide.
DEEPFASHION_WIDTH = 176
DEEPFASHION_HEIGHT = 256
#: The DeepFashion annotation's marker for a missing joint.
DEEPFASHION_MISSING = -1

#: How keypoint coordinates are read (the pose nodes' ``coordinates`` option).
#: ``auto`` decides per frame from the producer's convention; see :func:`to_pixels`.
COORDINATES: tuple[str, ...] = (
    "auto",
    "pixels",
    "0..1 of the canvas",
    "0..1 of the canvas padded to 64",
)
#: A frame reads as 0..1 when every present coordinate lies in ``[-tol, 1 + tol]``: joints
#: slightly off the canvas (OpenPose finds them in the padding) keep the frame normalised.
#: A pixel pose would need its whole person inside 1.5 x 1.5 pixels to be misread.
NORMALISED_TOLERANCE = 0.5
#: comfyui_controlnet_aux pads its detect-resolution image to a multiple of 64 and divides
#: the OpenPose keypoints by the padded size (see :func:`controlnet_aux_padded`).
CONTROLNET_AUX_PAD = 64
#: ``person_index`` value that picks the largest person of a frame.
LARGEST_PERSON = -1

#: Stick width and joint radius of controlnet_aux at its 512 px detect resolution (shorter side).
_REFERENCE_STICK = 4
_REFERENCE_SIDE = 512
_STICK_ALPHA = 0.6


def _check_canvas(width: Any, height: Any, what: str) -> tuple[int, int]:
    """Canvas sizes as positive ints; integral floats (512.0, as JSON may hold) are accepted."""
    sizes = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise PoseError(f"{what}: canvas {name} must be a positive integer, got {value!r}")
        if not math.isfinite(float(value)) or float(value) != int(value) or int(value) <= 0:
            raise PoseError(f"{what}: canvas {name} must be a positive integer, got {value!r}")
        sizes.append(int(value))
    return sizes[0], sizes[1]


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's OpenPose-18 keypoints on a ``width`` x ``height`` pixel canvas.

    ``xy`` is float32 ``(18, 2)`` in pixels, ``(x, y)`` order; ``confidence`` float32 ``(18,)``,
    0 = missing. Missing joints are stored at (0, 0), so equal poses compare equal whatever
    coordinates a source format wrote for them. Arrays are copied and made read-only. A pose
    with no present joint is allowed (an all-missing annotation row); its ``visible_parts``
    is empty.
    """

    xy: np.ndarray
    confidence: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        width, height = _check_canvas(self.width, self.height, "Pose")
        try:
            xy = np.array(self.xy, dtype=np.float32)
            confidence = np.array(self.confidence, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise PoseError(f"Pose: xy and confidence must be numeric arrays ({exc})") from exc
        if xy.shape != (NUM_KEYPOINTS, 2):
            raise PoseError(f"Pose: xy must have shape (18, 2) (x, y per joint), got {xy.shape}")
        if confidence.shape != (NUM_KEYPOINTS,):
            raise PoseError(f"Pose: confidence must have shape (18,), got {confidence.shape}")
        for i in range(NUM_KEYPOINTS):
            c = float(confidence[i])
            if not math.isfinite(c) or c < 0:
                raise PoseError(
                    f"Pose: confidence of joint {KEYPOINT_NAMES[i]} must be finite and >= 0 "
                    f"(0 = missing), got {c}"
                )
            if c > 0 and not np.all(np.isfinite(xy[i])):
                raise PoseError(
                    f"Pose: joint {KEYPOINT_NAMES[i]} has confidence {c} but non-finite "
                    f"coordinates {xy[i].tolist()}; expected finite pixel coordinates"
                )
        xy[confidence <= 0] = 0.0
        xy.setflags(write=False)
        confidence.setflags(write=False)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "height", height)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pose):
            return NotImplemented
        return (
            self.width == other.width
            and self.height == other.height
            and np.array_equal(self.xy, other.xy)
            and np.array_equal(self.confidence, other.confidence)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable

    def __repr__(self) -> str:
        return (
            f"Pose({self.width}x{self.height}, "
            f"{int(self.visible.sum())}/{NUM_KEYPOINTS} joints visible)"
        )

    @property
    def present(self) -> np.ndarray:
        """Bool ``(18,)``: confidence > 0, on or off the canvas."""
        return self.confidence > 0

    @property
    def visible(self) -> np.ndarray:
        """Bool ``(18,)``: present and inside the canvas; off-canvas joints are not visible."""
        x, y = self.xy[:, 0], self.xy[:, 1]
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        return self.present & inside

    def resized(self, width: int, height: int) -> Pose:
        """The same pose on a ``width`` x ``height`` canvas (coordinates scaled per axis; to
        keep proportions across aspects use :func:`truepose_core.fit.fit_pose`)."""
        width, height = _check_canvas(width, height, "Pose.resized")
        scale = np.array([width / self.width, height / self.height], dtype=np.float64)
        xy = (self.xy.astype(np.float64) * scale).astype(np.float32)
        return Pose(xy, self.confidence, width, height)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (pixels); :meth:`from_dict` reads it back exactly."""
        return {
            "format": "openpose18",
            "width": self.width,
            "height": self.height,
            "xy": self.xy.tolist(),
            "confidence": self.confidence.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pose:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping):
            raise PoseError(f"Pose.from_dict: expected a dict, got {type(data).__name__}")
        missing = [k for k in ("width", "height", "xy", "confidence") if k not in data]
        if missing:
            raise PoseError(
                f"Pose.from_dict: missing keys {missing}; expected width, height, xy, confidence"
            )
        fmt = data.get("format", "openpose18")
        if fmt != "openpose18":
            raise PoseError(f"Pose.from_dict: format must be 'openpose18', got {fmt!r}")
        return cls(data["xy"], data["confidence"], data["width"], data["height"])


def visible_parts(pose: Pose) -> frozenset[str]:
    """Body parts with at least one visible joint: the target pose's ``A_t`` of HPFA step 1."""
    visible = pose.visible
    return frozenset(KEYPOINT_PART[i] for i in range(NUM_KEYPOINTS) if visible[i])


# ---------------------------------------------------------------------------------------------
# DeepFashion annotation rows


def _int_list(value: Any, what: str) -> list[float]:
    """A DeepFashion keypoint column: a JSON-like string or a sequence of 18 numbers."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PoseError(
                f"{what}: not a JSON list of 18 integers: {value[:60]!r} ({exc.msg})"
            ) from exc
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise PoseError(f"{what}: expected a list of 18 integers, got {type(value).__name__}")
    if len(value) != NUM_KEYPOINTS:
        raise PoseError(f"{what}: expected 18 values (one per joint), got {len(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise PoseError(f"{what}: joint {KEYPOINT_NAMES[i]} is {v!r}, expected a number")
        if not math.isfinite(float(v)):
            raise PoseError(f"{what}: joint {KEYPOINT_NAMES[i]} is {v}, expected a finite number")
        out.append(float(v))
    return out


def parse_deepfashion_row(
    keypoints_y: str | Sequence[float],
    keypoints_x: str | Sequence[float],
    width: int = DEEPFASHION_WIDTH,
    height: int = DEEPFASHION_HEIGHT,
) -> Pose:
    """One row of the DeepFashion PGPIS annotation (y column first, as the CSV has it).

    Each column holds 18 pixel values in the 256x176 frame; -1 in either column marks the
    joint missing. Present joints get confidence 1.
    """
    ys = _int_list(keypoints_y, "DeepFashion keypoints_y")
    xs = _int_list(keypoints_x, "DeepFashion keypoints_x")
    xy = np.zeros((NUM_KEYPOINTS, 2), dtype=np.float32)
    confidence = np.zeros(NUM_KEYPOINTS, dtype=np.float32)
    for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
        if y == DEEPFASHION_MISSING or x == DEEPFASHION_MISSING:
            continue
        xy[i] = (x, y)
        confidence[i] = 1.0
    return Pose(xy, confidence, width, height)


def pose_to_deepfashion_row(pose: Pose) -> tuple[list[int], list[int]]:
    """Inverse of :func:`parse_deepfashion_row`: ``(keypoints_y, keypoints_x)`` as int lists.

    Coordinates are rounded to whole pixels (the annotation holds ints); missing joints are -1.
    """
    ys, xs = [], []
    for i in range(NUM_KEYPOINTS):
        if pose.confidence[i] > 0:
            xs.append(int(round(float(pose.xy[i, 0]))))
            ys.append(int(round(float(pose.xy[i, 1]))))
        else:
            xs.append(DEEPFASHION_MISSING)
            ys.append(DEEPFASHION_MISSING)
    return ys, xs


# ---------------------------------------------------------------------------------------------
# OpenPose JSON and ComfyUI POSE_KEYPOINT


def _person_keypoints(person: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``pose_keypoints_2d`` of one OpenPose person as ``(xy (18, 2), confidence (18,))``.

    COCO-18 (54 values) is taken as is; BODY_25 (75 values) is mapped to COCO-18 by dropping
    MidHip and the foot points.
    """
    if not isinstance(person, Mapping):
        raise PoseError(f"{what}: expected a person object, got {type(person).__name__}")
    values = person.get("pose_keypoints_2d")
    if values is None:
        raise PoseError(f"{what}: no 'pose_keypoints_2d' (keys: {sorted(person)})")
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise PoseError(
            f"{what}: 'pose_keypoints_2d' must be a flat list of numbers, "
            f"got {type(values).__name__}"
        )
    try:
        flat = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PoseError(f"{what}: 'pose_keypoints_2d' holds non-numbers ({exc})") from exc
    if flat.ndim != 1:
        raise PoseError(
            f"{what}: 'pose_keypoints_2d' must be a flat list [x, y, c] * 18, "
            f"got shape {flat.shape}"
        )
    if flat.size == NUM_KEYPOINTS * 3:
        triples = flat.reshape(NUM_KEYPOINTS, 3)
    elif flat.size == 25 * 3:
        triples = flat.reshape(25, 3)[list(BODY25_TO_COCO18)]
    else:
        raise PoseError(
            f"{what}: 'pose_keypoints_2d' has {flat.size} values; expected 54 "
            "(OpenPose-18 / COCO-18, [x, y, c] * 18) or 75 (BODY_25)"
        )
    for i in range(NUM_KEYPOINTS):
        c = triples[i, 2]
        if not math.isfinite(c) or c < 0:
            raise PoseError(
                f"{what}: joint {KEYPOINT_NAMES[i]} has confidence {c}; expected a finite "
                "number >= 0 (0 = missing)"
            )
        if c > 0 and not np.all(np.isfinite(triples[i, :2])):
            raise PoseError(
                f"{what}: joint {KEYPOINT_NAMES[i]} has non-finite coordinates "
                f"{triples[i, :2].tolist()}"
            )
    return triples[:, :2].copy(), triples[:, 2].copy()


def _load_json(data: Any, what: str) -> Any:
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise PoseError(
                f"{what}: not JSON ({exc.msg} at line {exc.lineno}): {data[:60]!r}"
            ) from exc
    return data


def _frame_people(frame: Any, what: str) -> list[Any]:
    if not isinstance(frame, Mapping):
        raise PoseError(f"{what}: expected an object with 'people', got {type(frame).__name__}")
    people = frame.get("people")
    if not isinstance(people, (list, tuple)):
        raise PoseError(f"{what}: expected a 'people' list, got {type(people).__name__}")
    if not people:
        raise PoseError(f"{what}: 'people' is empty; expected at least one detected person")
    return list(people)


def parse_openpose_json(
    data: str | bytes | Mapping[str, Any],
    width: int | None = None,
    height: int | None = None,
    coordinates: str = "auto",
) -> list[Pose]:
    """Every person of an OpenPose JSON document, coordinates in pixels.

    The canvas is ``canvas_width``/``canvas_height`` from the document, or ``width``/``height``
    when the document has none (OpenPose's own files do not); both given and different is an
    error. BODY_25 people are mapped to OpenPose-18. ``coordinates`` is read by
    :func:`to_pixels`; a document that carries its canvas follows comfyui_controlnet_aux's
    convention.
    """
    what = "OpenPose JSON"
    data = _load_json(data, what)
    if isinstance(data, list):
        raise PoseError(
            f"{what}: got a list of {len(data)} items, expected one object with 'people'; "
            "a list of frames is ComfyUI POSE_KEYPOINT, read it with parse_pose_keypoint"
        )
    people = _frame_people(data, what)
    doc_w, doc_h = data.get("canvas_width"), data.get("canvas_height")
    if doc_w is not None or doc_h is not None:
        doc_w, doc_h = _check_canvas(doc_w, doc_h, what)
        if (width is not None and width != doc_w) or (height is not None and height != doc_h):
            raise PoseError(
                f"{what}: the document's canvas is {doc_w}x{doc_h} (WxH) but {width}x{height} "
                "was passed; pass no size, or the document's, and resize the pose afterwards"
            )
        width, height = doc_w, doc_h
    if width is None or height is None:
        raise PoseError(
            f"{what}: no canvas_width/canvas_height in the document and no width/height "
            "passed; pass the size of the image the keypoints were detected on"
        )
    width, height = _check_canvas(width, height, what)
    people_kp = [_person_keypoints(p, f"{what} person {k}") for k, p in enumerate(people)]
    return _people_poses(people_kp, width, height, coordinates, doc_w is not None, what)


def controlnet_aux_padded(size: int) -> int:
    """The side comfyui_controlnet_aux divides OpenPose keypoints by: ``size`` rounded up to
    a multiple of 64.

    Its OpenPose preprocessor (``src/custom_controlnet_aux/open_pose/__init__.py``,
    ``OpenposeDetector.__call__``) resizes the image to the detect resolution, pads it up to
    a multiple of 64 (``util.resize_image_with_pad`` / ``pad64``), detects on the padded
    image and divides each keypoint by the padded width and height (``detect_poses``:
    ``keypoint.x / float(W)``). It then reports ``canvas_width``/``canvas_height`` of the
    unpadded map (``encode_poses_as_dict(poses, detected_map.shape[0], ...)`` after
    ``remove_pad``). Multiplying by the reported canvas puts every joint short by
    ``canvas / padded`` (3% in y for a 352x512 photo at resolution 512).
    DWPose writes pixels of the unpadded input and needs no correction.
    """
    return int(math.ceil(size / CONTROLNET_AUX_PAD) * CONTROLNET_AUX_PAD)


def looks_normalised(xy: np.ndarray) -> bool:
    """True when every coordinate of ``xy`` (present joints of a frame) lies in 0..1 give or
    take :data:`NORMALISED_TOLERANCE`; an empty frame reads as pixels."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.size == 0:
        return False
    return bool(xy.min() >= -NORMALISED_TOLERANCE and xy.max() <= 1.0 + NORMALISED_TOLERANCE)


def to_pixels(
    people: Sequence[tuple[np.ndarray, np.ndarray]],
    width: int,
    height: int,
    coordinates: str = "auto",
    canvas_in_data: bool = True,
    what: str = "keypoints",
) -> list[np.ndarray]:
    """The ``(18, 2)`` coordinates of each person of one frame in pixels of the canvas.

    ``coordinates``:

    - ``pixels``: taken as they are.
    - ``0..1 of the canvas``: multiplied by ``width`` x ``height``.
    - ``0..1 of the canvas padded to 64``: multiplied by the canvas rounded up to a
      multiple of 64 (comfyui_controlnet_aux's OpenPose preprocessor; see
      :func:`controlnet_aux_padded`).
    - ``auto``: the whole frame (every present joint of every person) is 0..1 when
      :func:`looks_normalised`, so one joint slightly off the canvas cannot flip it. Then a
      frame that carries its own canvas (``canvas_width``/``canvas_height``, written by
      comfyui_controlnet_aux) follows the padded convention, and one without (the size
      came from the node) is 0..1 of the canvas. Otherwise pixels.
    """
    if coordinates not in COORDINATES:
        raise PoseError(
            f"{what}: coordinates {coordinates!r}; expected one of {', '.join(COORDINATES)}"
        )
    present = [xy[conf > 0] for xy, conf in people]
    everything = np.concatenate([p.reshape(-1) for p in present]) if present else np.zeros(0)
    if coordinates == "auto":
        if not looks_normalised(everything):
            coordinates = "pixels"
        elif canvas_in_data:
            coordinates = "0..1 of the canvas padded to 64"
        else:
            coordinates = "0..1 of the canvas"
    elif coordinates != "pixels" and everything.size and not looks_normalised(everything):
        raise PoseError(
            f"{what}: coordinates are set to '{coordinates}' but they reach "
            f"{float(np.abs(everything).max()):.4g}, which is pixels; set coordinates to "
            "'auto' or 'pixels'"
        )
    if coordinates == "pixels":
        scale = np.array([1.0, 1.0])
    elif coordinates == "0..1 of the canvas":
        scale = np.array([width, height], dtype=np.float64)
    else:
        scale = np.array([controlnet_aux_padded(width), controlnet_aux_padded(height)], float)
    return [np.asarray(xy, dtype=np.float64) * scale for xy, _conf in people]


def _people_poses(
    people: Sequence[tuple[np.ndarray, np.ndarray]],
    width: int,
    height: int,
    coordinates: str,
    canvas_in_data: bool,
    what: str,
) -> list[Pose]:
    pixels = to_pixels(people, width, height, coordinates, canvas_in_data, what)
    return [Pose(xy, conf, width, height) for xy, (_xy, conf) in zip(pixels, people, strict=True)]


def person_size(pose: Pose) -> float:
    """Diagonal (pixels) of the box around the visible joints; 0 without any."""
    visible = pose.visible
    if not visible.any():
        return 0.0
    xy = pose.xy[visible].astype(np.float64)
    return float(np.hypot(*(xy.max(axis=0) - xy.min(axis=0))))


def choose_person(
    people: Sequence[Pose], person_index: int = LARGEST_PERSON, what: str = "frame"
) -> int:
    """Index of the person to use: ``person_index``, or the largest visible person for
    :data:`LARGEST_PERSON` (ties: the one listed first).

    A person with no visible joint is refused: they would condition on an empty skeleton.
    """
    if not people:
        raise PoseError(f"{what}: no person; expected at least one detected person")
    if person_index == LARGEST_PERSON:
        sizes = [(person_size(p), int(p.visible.sum())) for p in people]
        index = max(range(len(people)), key=lambda i: (sizes[i], -i))
    elif 0 <= person_index < len(people):
        index = int(person_index)
    else:
        raise PoseError(
            f"{what}: person_index {person_index}, but the frame has {len(people)} "
            f"{'person' if len(people) == 1 else 'people'} (0..{len(people) - 1}); "
            f"use {LARGEST_PERSON} for the largest person"
        )
    pose = people[index]
    if not pose.visible.any():
        listed = f"person {index} of {len(people)}" if len(people) > 1 else "its only person"
        raise PoseError(
            f"{what}: {listed} has no visible joint (all missing or off the "
            f"{pose.width}x{pose.height} canvas); expected at least one OpenPose keypoint "
            "(pick another person_index, or check the pose detector's output)"
        )
    return index


def pose_to_openpose_json(pose: Pose) -> dict[str, Any]:
    """One-person OpenPose JSON (pixels, with the canvas size); inverse of the parser."""
    return {
        "version": 1.3,
        "people": [{"pose_keypoints_2d": _flat_keypoints(pose, normalized=False)}],
        "canvas_width": pose.width,
        "canvas_height": pose.height,
    }


def _flat_keypoints(pose: Pose, normalized: bool) -> list[float]:
    flat: list[float] = []
    visible = pose.visible
    for i in range(NUM_KEYPOINTS):
        c = float(pose.confidence[i])
        x, y = float(pose.xy[i, 0]), float(pose.xy[i, 1])
        if normalized:
            if not visible[i]:
                # 0..1 cannot hold an off-canvas joint without breaking the 0..1 detection.
                x, y, c = 0.0, 0.0, 0.0
            else:
                x = x / controlnet_aux_padded(pose.width)
                y = y / controlnet_aux_padded(pose.height)
        flat.extend((x, y, c))
    return flat


def parse_pose_keypoint_people(
    frames: Sequence[Mapping[str, Any]], coordinates: str = "auto"
) -> list[list[Pose]]:
    """ComfyUI ``POSE_KEYPOINT`` (comfyui_controlnet_aux): every person of every frame, in
    pixels of the frame's canvas.

    Each frame is ``{"people": [...], "canvas_width": W, "canvas_height": H}``. The OpenPose
    preprocessor writes coordinates as 0..1 of the canvas padded to 64, DWPose writes
    pixels: :func:`to_pixels` decides per frame.
    """
    if isinstance(frames, Mapping) or not isinstance(frames, (list, tuple)):
        raise PoseError(
            f"POSE_KEYPOINT: expected a list of frames, got {type(frames).__name__}; "
            "a single OpenPose object is read by parse_openpose_json"
        )
    if not frames:
        raise PoseError("POSE_KEYPOINT: the list of frames is empty; expected at least one")
    out = []
    for f, frame in enumerate(frames):
        what = f"POSE_KEYPOINT frame {f}"
        people = _frame_people(frame, what)
        width, height = _check_canvas(frame.get("canvas_width"), frame.get("canvas_height"), what)
        people_kp = [_person_keypoints(p, f"{what} person {k}") for k, p in enumerate(people)]
        out.append(_people_poses(people_kp, width, height, coordinates, True, what))
    return out


def parse_pose_keypoint(
    frames: Sequence[Mapping[str, Any]],
    person_index: int = LARGEST_PERSON,
    coordinates: str = "auto",
) -> list[Pose]:
    """One pose per ``POSE_KEYPOINT`` frame: the person :func:`choose_person` picks."""
    poses = []
    for f, people in enumerate(parse_pose_keypoint_people(frames, coordinates)):
        index = choose_person(people, person_index, f"POSE_KEYPOINT frame {f}")
        poses.append(people[index])
    return poses


def pose_to_pose_keypoint(poses: Sequence[Pose], normalized: bool = False) -> list[dict]:
    """Poses as ComfyUI ``POSE_KEYPOINT`` frames (one person each); inverse of the parser.

    ``normalized=True`` writes 0..1 coordinates like comfyui_controlnet_aux's OpenPose
    preprocessor (of the canvas padded to a multiple of 64); joints off the canvas are then
    written as missing. ``False`` writes pixels like DWPose.
    """
    if isinstance(poses, Pose):
        poses = [poses]
    frames = []
    for pose in poses:
        person = {
            "pose_keypoints_2d": _flat_keypoints(pose, normalized),
            "face_keypoints_2d": None,
            "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None,
        }
        frames.append(
            {"people": [person], "canvas_width": pose.width, "canvas_height": pose.height}
        )
    return frames


# ---------------------------------------------------------------------------------------------
# Rendering


def _ellipse_polygon(
    center: tuple[int, int], half_length: int, half_width: int, angle_deg: int
) -> list[tuple[int, int]]:
    """``cv2.ellipse2Poly(center, (half_length, half_width), angle, 0, 360, 1)``.

    One point per degree, rotated by ``angle_deg`` and rounded to the pixel grid, repeated
    points dropped: the polygon that ``draw_bodypose`` fills for a limb.
    """
    t = np.deg2rad(np.arange(0, 361, dtype=np.float64))
    a = math.radians(angle_deg)
    ex, ey = half_length * np.cos(t), half_width * np.sin(t)
    xs = np.rint(center[0] + ex * math.cos(a) - ey * math.sin(a)).astype(int)
    ys = np.rint(center[1] + ex * math.sin(a) + ey * math.cos(a)).astype(int)
    points: list[tuple[int, int]] = []
    for point in zip(xs.tolist(), ys.tolist(), strict=True):
        if not points or point != points[-1]:
            points.append(point)
    return points


def stick_width(width: int, height: int) -> int:
    """Stick half-width and joint radius in pixels: controlnet_aux's 4 px at a 512 px shorter
    side, scaled with the canvas, at least 1."""
    return max(1, round(_REFERENCE_STICK * min(width, height) / _REFERENCE_SIDE))


def render_skeleton(pose: Pose, width: int | None = None, height: int | None = None) -> np.ndarray:
    """The OpenPose skeleton image (uint8 ``(H, W, 3)`` RGB on black) for ControlNet and the
    PoseEncoder.

    Follows comfyui_controlnet_aux's ``draw_bodypose``: limb k of :data:`LIMBS` (its
    ``limbSeq`` order) is an ellipse from ``cv2.ellipse2Poly`` (integer centre, half-length
    and angle) filled with ``int(0.6 * colour[k])``, overwriting what is under it; then
    joint i is a disc of full ``colour[i]`` at the integer pixel. Stick half-width and joint
    radius are 4 px at a 512 px shorter side (the preprocessor's default resolution) and scale
    with the canvas. The pose is scaled from its canvas to ``width`` x ``height`` (default:
    its own canvas). Limbs with a non-visible end and non-visible joints are not drawn.
    """
    width = pose.width if width is None else width
    height = pose.height if height is None else height
    width, height = _check_canvas(width, height, "render_skeleton")
    if (width, height) != (pose.width, pose.height):
        pose = pose.resized(width, height)
    visible = pose.visible
    xy = pose.xy.astype(np.float64)
    stick = stick_width(width, height)
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for (a, b), color in zip(LIMBS, LIMB_COLORS[: len(LIMBS)], strict=True):
        if not (visible[a] and visible[b]):
            continue
        (x0, y0), (x1, y1) = xy[a], xy[b]
        length = math.hypot(x1 - x0, y1 - y0)
        angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
        center = (int((x0 + x1) / 2), int((y0 + y1) / 2))
        polygon = _ellipse_polygon(center, int(length / 2), stick, int(angle))
        fill = tuple(int(float(c) * _STICK_ALPHA) for c in color)
        if len(polygon) > 2:
            draw.polygon(polygon, fill=fill)
        else:
            draw.point(polygon, fill=fill)
    for i in range(NUM_KEYPOINTS):
        if not visible[i]:
            continue
        x, y = int(xy[i][0]), int(xy[i][1])
        draw.ellipse((x - stick, y - stick, x + stick, y + stick), fill=LIMB_COLORS[i])
    return np.asarray(image, dtype=np.uint8).copy()


def require_visible(poses: Sequence[Pose], what: str = "target pose") -> None:
    """Refuse poses with no visible joint: they would condition on an empty skeleton."""
    for i, pose in enumerate(poses):
        if not bool(pose.visible.any()):
            where = f" {i}" if len(poses) > 1 else ""
            raise PoseError(
                f"{what}{where}: no visible joint (all missing or off the "
                f"{pose.width}x{pose.height} canvas); expected at least one OpenPose keypoint"
            )


#: Brightness of the people not chosen in a pose node's preview.
OTHER_PEOPLE_BRIGHTNESS = 0.3


def render_people(
    people: Sequence[Pose], chosen: int, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """uint8 ``(H, W, 3)``: the chosen person's skeleton in full colour over the others in
    dim gray, so a preview shows which person a pose node took."""
    chosen_pose = people[chosen]
    width = chosen_pose.width if width is None else width
    height = chosen_pose.height if height is None else height
    canvas = np.zeros((height, width, 3), dtype=np.float64)
    for k, pose in enumerate(people):
        if k == chosen or not pose.visible.any():
            continue
        gray = render_skeleton(pose, width, height).max(axis=-1, keepdims=True)
        canvas = np.maximum(canvas, gray * OTHER_PEOPLE_BRIGHTNESS)
    drawn = render_skeleton(chosen_pose, width, height)
    mask = drawn.any(axis=-1, keepdims=True)
    canvas = np.where(mask, drawn, canvas)
    return np.rint(canvas).astype(np.uint8)
