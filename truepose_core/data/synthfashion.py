"""SynthFashion: a procedural pose-transfer data set with exact parsing maps.

It tests the paper's claim (clothing *patterns* survive a pose change) on a machine without
DeepFashion or a GPU: one identity (skin, hair, clothes, patterns, printed word, background)
is drawn in two poses, and a model must carry the stripes, checks, dots and the printed word
from the source to the target.

How a person is made:

- :func:`sample_pose` draws a 3D stick body from a pose prior (joint angles within human
  limits, body scale and position jitter, a view: ``front``, ``side`` or ``back`` with yaw
  jitter) and projects it orthographically. The result is a :class:`SynthPose`, a
  :class:`~truepose_core.keypoints.Pose` that also carries the projected 3D geometry the
  renderer needs (hidden joints included, with depth).
- :func:`render_person` paints the body with PIL in depth order and writes every pixel's
  LIP label (the parsing map is exact). Garment patterns live in the *garment's* frame: each
  face of the torso (and skirt) box and each sleeve gets its pattern texture mapped onto its
  projected quad, so stripes and the printed word follow the body when it turns or moves.

Decisions (documented here because the data set defines them):

- The printed word is on the shirt's front only. A back view shows the same pattern
  without the word; side faces of the torso show the pattern continued around the body.
- The neck is skin and labelled Face (LIP has no neck label). Sleeves are Upper-clothes,
  as in LIP; the hand belongs to its arm label.
- Left/right are the person's own: ``l_wrist`` is the person's left wrist and lies on
  Left-arm (14), whatever the view.
- A joint gets confidence 0 when it is off the canvas, when it is a face point turned away
  from the camera (far eye and ear in a side view, eyes and nose in a back view), or when
  another body part covers it in the rendering (:func:`render_person_with_keypoints`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import Dataset

from ..errors import DataError, PoseError
from ..keypoints import NUM_KEYPOINTS, Pose, render_skeleton

View = Literal["front", "side", "back"]
VIEWS: tuple[str, ...] = ("front", "side", "back")
#: Default image size (H, W): the 16:11 aspect of DeepFashion's 512x352, so latents are 16x11.
DEFAULT_SIZE = (128, 88)
SPLITS = ("train", "test")

# LIP label indices (parsing.LIP): the labels this renderer writes.
BACKGROUND, HAIR, UPPER_CLOTHES, PANTS, SKIRT, FACE = 0, 2, 5, 9, 12, 13
LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = 14, 15, 16, 17, 18, 19

# Joint indices (keypoints.KEYPOINT_NAMES order).
_NOSE, _NECK, _RSH, _REL, _RWR, _LSH, _LEL, _LWR = range(8)
_RHIP, _RKN, _RAN, _LHIP, _LKN, _LAN, _REYE, _LEYE, _REAR, _LEAR = range(8, 18)

# Extra geometry points stored after the 18 joints in SynthPose.points.
_HEAD, _HEAD_TOP, _MOUTH, _RHAND, _LHAND, _RTOE, _LTOE = range(18, 25)
_TORSO = 25  # 8 corners: top front-right, front-left, back-left, back-right; then bottom
_SKIRT = 33  # 8 corners, same order
_BRIEF = 41  # 8 corners of the pants' hip block
_HAIR_BACK = 49  # 4 corners of the long-hair curtain behind the neck
_NUM_POINTS = 53

# Part ids of the internal occlusion map (0 = nothing).
_P_HEAD, _P_NECK, _P_TORSO, _P_HAIR_BACK = 1, 2, 3, 4
_P_RUP, _P_RFORE, _P_LUP, _P_LFORE = 5, 6, 7, 8
_P_RTHIGH, _P_RSHIN, _P_RSHOE, _P_LTHIGH, _P_LSHIN, _P_LSHOE = 9, 10, 11, 12, 13, 14
_P_SKIRT, _P_BRIEF = 15, 16
_P_RSLEEVE_UP, _P_RSLEEVE_FORE, _P_LSLEEVE_UP, _P_LSLEEVE_FORE = 17, 18, 19, 20

#: For each joint, the parts whose pixels make it visible when they lie under it.
_JOINT_PARTS: tuple[frozenset[int], ...] = (
    frozenset({_P_HEAD}),  # nose
    frozenset({_P_NECK, _P_TORSO, _P_HEAD, _P_HAIR_BACK}),  # neck
    frozenset({_P_TORSO, _P_RUP, _P_RSLEEVE_UP}),  # r_shoulder
    frozenset({_P_RUP, _P_RFORE, _P_RSLEEVE_UP, _P_RSLEEVE_FORE}),  # r_elbow
    frozenset({_P_RFORE}),  # r_wrist
    frozenset({_P_TORSO, _P_LUP, _P_LSLEEVE_UP}),  # l_shoulder
    frozenset({_P_LUP, _P_LFORE, _P_LSLEEVE_UP, _P_LSLEEVE_FORE}),  # l_elbow
    frozenset({_P_LFORE}),  # l_wrist
    frozenset({_P_TORSO, _P_BRIEF, _P_RTHIGH, _P_SKIRT}),  # r_hip
    frozenset({_P_RTHIGH, _P_RSHIN, _P_SKIRT}),  # r_knee
    frozenset({_P_RSHIN, _P_RSHOE}),  # r_ankle
    frozenset({_P_TORSO, _P_BRIEF, _P_LTHIGH, _P_SKIRT}),  # l_hip
    frozenset({_P_LTHIGH, _P_LSHIN, _P_SKIRT}),  # l_knee
    frozenset({_P_LSHIN, _P_LSHOE}),  # l_ankle
    frozenset({_P_HEAD}),  # r_eye
    frozenset({_P_HEAD}),  # l_eye
    frozenset({_P_HEAD}),  # r_ear
    frozenset({_P_HEAD}),  # l_ear
)

#: ``_JOINT_PART_TABLE[j, part]`` is True when ``part`` makes joint ``j`` visible.
_JOINT_PART_TABLE = np.array(
    [[part in parts for part in range(256)] for parts in _JOINT_PARTS], dtype=bool
)
_JOINT_PART_TABLE.setflags(write=False)

# Body proportions in units of the body height s (head top to soles).
_HEAD_R = 0.062  # head vertical radius
_HEAD_A, _HEAD_C = 0.80, 0.90  # head lateral and depth radii, relative to _HEAD_R
_NECK_LEN = 0.045
_TORSO_LEN = 0.30  # shoulder line to hip joints
_SHOULDER_X = 0.115  # shoulder joints
_HIP_X = 0.085  # hip joints
_UPPER_ARM, _FOREARM, _HAND = 0.17, 0.15, 0.05
_THIGH, _SHIN = 0.24, 0.235
# Half-widths of the painted segments and boxes.
_W_NECK, _W_UPPER, _W_FORE, _W_HAND = 0.03, 0.03, 0.025, 0.03
_W_SLEEVE, _W_THIGH, _W_SHIN, _W_SHOE = 0.036, 0.05, 0.04, 0.03
_TORSO_TOP_X, _TORSO_BOT_X, _TORSO_TOP_Z, _TORSO_BOT_Z = 0.13, 0.11, 0.055, 0.06
_TORSO_BOT_Y = 0.03  # the shirt hangs a little below the hip joints

_SKIN_TONES = np.array(
    [
        (255, 224, 196),
        (241, 194, 160),
        (224, 172, 130),
        (198, 134, 96),
        (161, 102, 68),
        (121, 76, 50),
        (88, 56, 38),
    ],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [(20, 16, 14), (60, 40, 28), (110, 70, 40), (170, 120, 60), (220, 190, 120), (140, 40, 30)],
    dtype=np.float64,
)
_WORDS = (
    "TRUE", "POSE", "LOVE", "NYC", "CALM", "WAVE", "ZEN", "RUN", "SUN", "ART",
    "FUN", "ACE", "XO", "YES", "BOLD", "COOL", "GO", "HI", "OK", "PARIS",
)  # fmt: skip
_PATTERNS = ("stripes_h", "stripes_v", "stripes_d", "checks", "dots", "plain")
_PATTERN_P = (0.2, 0.18, 0.16, 0.18, 0.18, 0.1)


@dataclass(frozen=True, eq=False)
class Garment:
    """A garment's look: pattern in garment units (fractions of body height), colours, print.

    ``text_mask`` is a uint8 (h, w) bitmap of the printed word (255 = ink) or None; it is
    rendered once per identity so both poses of a pair carry the same bitmap.
    """

    pattern: str
    color_a: tuple[int, int, int]
    color_b: tuple[int, int, int]
    period: float
    duty: float
    angle: float
    text: str | None = None
    text_mask: np.ndarray | None = None
    text_color: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, eq=False)
class Identity:
    """Everything that stays the same between the two poses of a pair."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str  # "short" or "long"
    eye: tuple[int, int, int]
    shirt: Garment
    long_sleeves: bool
    lower: str  # "pants" or "skirt"
    pants: tuple[int, int, int]
    skirt: Garment
    shoes: tuple[int, int, int]
    background: tuple[int, int, int]
    background_to: tuple[int, int, int]  # equal to ``background`` for a plain background


@dataclass(frozen=True, eq=False, repr=False)
class SynthPose(Pose):
    """A :class:`Pose` plus the projected 3D body the renderer draws.

    ``points`` is float64 ``(53, 3)``: image x, image y and depth (toward the camera), all in
    pixels of this pose's canvas; rows 0..17 are the joints (hidden ones too), the rest are
    head, hands, toes and the corners of the torso, skirt, pants and hair boxes. ``yaw`` is the
    body's turn (0 = facing the camera, pi/2 = facing image right), ``head_yaw`` the head's.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((_NUM_POINTS, 3)))
    yaw: float = 0.0
    head_yaw: float = 0.0
    scale: float = 1.0  # body height in pixels

    def resized(self, width: int, height: int) -> SynthPose:
        """The same pose and body on a ``width`` x ``height`` canvas."""
        base = Pose.resized(self, width, height)
        sx, sy = width / self.width, height / self.height
        points = self.points * np.array([sx, sy, math.sqrt(sx * sy)])
        return SynthPose(
            base.xy,
            base.confidence,
            width,
            height,
            points=points,
            yaw=self.yaw,
            head_yaw=self.head_yaw,
            scale=self.scale * math.sqrt(sx * sy),
        )


# ---------------------------------------------------------------------------------------------
# Identity prior


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.3, 0.95)) -> tuple:
    """A random garment colour from HSV, so colours are varied but rarely muddy."""
    h = rng.uniform(0, 1)
    s = rng.uniform(*sat)
    v = rng.uniform(0.25, 0.98)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(int(round(c * 255)) for c in rgb)


def _contrast(rng: np.random.Generator, base: tuple) -> tuple:
    """A second colour far enough from ``base`` that the pattern is visible."""
    for _ in range(20):
        c = _colour(rng)
        if np.abs(np.subtract(c, base)).sum() > 180:
            return c
    return tuple(255 - v for v in base)


def _text_mask(word: str) -> np.ndarray:
    """The word in PIL's default font as a tight uint8 bitmap (255 = ink)."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), word, font=font)
    image = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
    ImageDraw.Draw(image).text((-x0, -y0), word, fill=255, font=font)
    return np.asarray(image).copy()


def _sample_garment(rng: np.random.Generator, with_text: bool) -> Garment:
    pattern = str(rng.choice(_PATTERNS, p=_PATTERN_P))
    a = _colour(rng)
    b = _contrast(rng, a)
    text = text_mask = None
    text_color = (0, 0, 0)
    if with_text and rng.uniform() < 0.65:
        if rng.uniform() < 0.7:
            text = str(rng.choice(_WORDS))
        else:
            letters = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
            text = "".join(rng.choice(list(letters), size=int(rng.integers(2, 4))))
        text_mask = _text_mask(text)
        text_color = _contrast(rng, a)
    return Garment(
        pattern=pattern,
        color_a=a,
        color_b=b,
        period=float(rng.uniform(0.035, 0.08)),
        duty=float(rng.uniform(0.3, 0.6)),
        angle=float(rng.choice([-1.0, 1.0]) * rng.uniform(30, 60)),
        text=text,
        text_mask=text_mask,
        text_color=text_color,
    )


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity: skin, hair, shirt with pattern and print, trousers or skirt, shoes,
    background."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.uniform(-12, 12, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.uniform(-10, 10, 3)
    background = _colour(rng, sat=(0.0, 0.35))
    if rng.uniform() < 0.5:
        background_to = tuple(int(np.clip(c + rng.uniform(-45, 45), 0, 255)) for c in background)
    else:
        background_to = background
    return Identity(
        skin=tuple(int(v) for v in np.clip(skin, 0, 255)),
        hair=tuple(int(v) for v in np.clip(hair, 0, 255)),
        hair_style="long" if rng.uniform() < 0.4 else "short",
        eye=(30, 24, 20),
        shirt=_sample_garment(rng, with_text=True),
        long_sleeves=bool(rng.uniform() < 0.5),
        lower="skirt" if rng.uniform() < 0.3 else "pants",
        pants=_colour(rng),
        skirt=_sample_garment(rng, with_text=False),
        shoes=_colour(rng, sat=(0.0, 0.6)),
        background=background,
        background_to=background_to,
    )


# ---------------------------------------------------------------------------------------------
# Pose prior


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def _bend(direction: np.ndarray, toward: np.ndarray, angle: float) -> np.ndarray:
    """``direction`` turned by ``angle`` (radians) toward ``toward`` (in their common plane)."""
    perp = toward - float(toward @ direction) * direction
    if np.linalg.norm(perp) < 1e-6:
        perp = np.array([0.0, -1.0, 0.0]) - direction[1] * direction
    return math.cos(angle) * direction + math.sin(angle) * _unit(perp)


def _limb_direction(side: float, abduction: float, flexion: float) -> np.ndarray:
    """Unit vector of a limb hanging down, swung out sideways then forward (body frame)."""
    return np.array(
        [
            side * math.sin(abduction),
            math.cos(abduction) * math.cos(flexion),
            math.cos(abduction) * math.sin(flexion),
        ]
    )


def _box(top_y: float, bot_y: float, top_x: float, bot_x: float, top_z: float, bot_z: float):
    """8 corners (body frame): top front-right, front-left, back-left, back-right, then bottom.

    Body frame: X = the person's left, Y = down, Z = the person's forward.
    """
    corners = []
    for y, x, z in ((top_y, top_x, top_z), (bot_y, bot_x, bot_z)):
        corners += [(-x, y, z), (x, y, z), (x, y, -z), (-x, y, -z)]
    return np.array(corners, dtype=np.float64)


def _rotate_frontal(points: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    """Rotate body-frame points about the Z axis through ``centre`` (a sideways lean)."""
    c, s = math.cos(angle), math.sin(angle)
    p = points - centre
    x = c * p[..., 0] - s * p[..., 1]
    y = s * p[..., 0] + c * p[..., 1]
    return np.stack([x, y, p[..., 2]], axis=-1) + centre


def _rad(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.radians(float(rng.uniform(lo, hi)))


def sample_pose(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE, view: str | None = None
) -> SynthPose:
    """Draw a body pose and project it onto an ``(H, W)`` canvas.

    Joint angles stay in human limits (shoulder abduction 5..100 deg, flexion -35..95, elbow
    0..140, hip abduction -8..30, flexion -25..70, knee 0..100). ``view`` is ``front``,
    ``side`` or ``back`` (default: drawn 50/25/25) with +-25 deg of yaw jitter. Face points
    turned away from the camera and joints off the canvas get confidence 0; occlusion by
    other parts is decided when rendering (:func:`render_person_with_keypoints`).
    """
    height, width = _check_size(size)
    if view is None:
        view = str(rng.choice(VIEWS, p=(0.5, 0.25, 0.25)))
    if view not in VIEWS:
        raise PoseError(f"sample_pose: view must be one of {VIEWS}, got {view!r}")
    if view == "front":
        yaw = _rad(rng, -25, 25)
    elif view == "back":
        yaw = math.pi + _rad(rng, -25, 25)
    else:
        yaw = float(rng.choice([-1.0, 1.0])) * (math.pi / 2 + _rad(rng, -20, 20))

    pts = np.zeros((_NUM_POINTS, 3), dtype=np.float64)
    shoulder_y = -_TORSO_LEN
    # Upper body, built upright and then leaned sideways about the pelvis.
    upper = {}
    upper[_NECK] = np.array([0.0, shoulder_y, 0.0])
    for side, sh, el, wr, hand in (
        (-1.0, _RSH, _REL, _RWR, _RHAND),
        (1.0, _LSH, _LEL, _LWR, _LHAND),
    ):
        s_pt = np.array([side * _SHOULDER_X, shoulder_y + 0.01, 0.0])
        d = _limb_direction(side, _rad(rng, 5, 100), _rad(rng, -35, 95))
        elbow = s_pt + _UPPER_ARM * d
        toward = _unit(np.array([-side * rng.uniform(-0.5, 1.0), -0.3, 1.0]))
        f = _bend(d, toward, _rad(rng, 0, 140))
        wrist = elbow + _FOREARM * f
        upper[sh], upper[el], upper[wr], upper[hand] = s_pt, elbow, wrist, wrist + _HAND * f
    lean = _rad(rng, -6, 6)
    # Head: a slightly rolled ellipsoid on the neck.
    head_roll = _rad(rng, -10, 10)
    head_yaw = yaw + _rad(rng, -15, 15)
    up = np.array([math.sin(head_roll), -math.cos(head_roll), 0.0])
    head_c = upper[_NECK] + (_NECK_LEN + _HEAD_R) * up
    upper[_HEAD] = head_c
    upper[_HEAD_TOP] = head_c + _HEAD_R * up
    hair_back = np.array(
        [
            (-0.75 * _HEAD_A * _HEAD_R, head_c[1], -0.5 * _HEAD_C * _HEAD_R),
            (0.75 * _HEAD_A * _HEAD_R, head_c[1], -0.5 * _HEAD_C * _HEAD_R),
            (0.9 * _HEAD_A * _HEAD_R, shoulder_y + 0.06, -0.045),
            (-0.9 * _HEAD_A * _HEAD_R, shoulder_y + 0.06, -0.045),
        ]
    )
    torso = _box(shoulder_y, _TORSO_BOT_Y, _TORSO_TOP_X, _TORSO_BOT_X, _TORSO_TOP_Z, _TORSO_BOT_Z)
    pelvis = np.zeros(3)
    keys = list(upper)
    pts[keys] = _rotate_frontal(np.array([upper[k] for k in keys]), lean, pelvis)
    pts[_HAIR_BACK : _HAIR_BACK + 4] = _rotate_frontal(hair_back, lean, pelvis)
    pts[_TORSO : _TORSO + 8] = torso
    pts[_TORSO : _TORSO + 4] = _rotate_frontal(torso[:4], lean, pelvis)
    # Legs: one supporting leg, one free.
    support = int(rng.integers(2))
    for k, (side, hip, knee, ankle, toe) in enumerate(
        ((-1.0, _RHIP, _RKN, _RAN, _RTOE), (1.0, _LHIP, _LKN, _LAN, _LTOE))
    ):
        h_pt = np.array([side * _HIP_X, 0.0, 0.0])
        if k == support or rng.uniform() < 0.4:
            abd, flex, kn = _rad(rng, -4, 12), _rad(rng, -10, 20), _rad(rng, 0, 15)
        else:
            abd, flex, kn = _rad(rng, -8, 30), _rad(rng, -25, 70), _rad(rng, 0, 100)
        d = _limb_direction(side, abd, flex)
        knee_pt = h_pt + _THIGH * d
        shin = _bend(d, np.array([0.0, 0.0, -1.0]), kn)
        ankle_pt = knee_pt + _SHIN * shin
        pts[hip], pts[knee], pts[ankle] = h_pt, knee_pt, ankle_pt
        pts[toe] = ankle_pt + np.array([0.0, 0.02, 0.075])
    pts[_SKIRT : _SKIRT + 8] = _box(-0.02, 0.2, 0.12, 0.175, 0.065, 0.1)
    pts[_BRIEF : _BRIEF + 8] = _box(-0.03, 0.08, 0.115, 0.115, 0.06, 0.06)
    # Face points on the head ellipsoid, in the head's own frame (then rolled and turned).
    rx, ry, rz = _HEAD_A * _HEAD_R, _HEAD_R, _HEAD_C * _HEAD_R
    face_dirs = {
        _NOSE: (0.0, 0.12, 1.0),
        _REYE: (-0.5, -0.12, 0.86),
        _LEYE: (0.5, -0.12, 0.86),
        _REAR: (-1.0, 0.05, -0.12),
        _LEAR: (1.0, 0.05, -0.12),
        _MOUTH: (0.0, 0.5, 0.85),
    }
    face_normals = {}
    for k, dvec in face_dirs.items():
        u = _unit(np.array(dvec))
        local = np.array([u[0] * rx, u[1] * ry, u[2] * rz])
        pts[k] = _head_to_body(local, head_roll + lean, head_yaw - yaw) + pts[_HEAD]
        face_normals[k] = u

    # Body scale and placement on the canvas.
    if rng.uniform() < 0.15:
        s = height * rng.uniform(0.95, 1.25)  # a closer shot: the legs leave the frame
        cy = 0.48 * s + height * rng.uniform(0.0, 0.04)
    else:
        s = height * rng.uniform(0.7, 0.88)
        cy = height / 2 - 0.01 * s + height * rng.uniform(-0.04, 0.04)
    cx = width / 2 + width * rng.uniform(-0.08, 0.08)
    projected = _project(pts, yaw, s, cx, cy)

    confidence = np.ones(NUM_KEYPOINTS, dtype=np.float32)
    for k, limit in ((_NOSE, -0.15), (_REYE, 0.2), (_LEYE, 0.2), (_REAR, -0.35), (_LEAR, -0.35)):
        n = face_normals[k]
        nd = -n[0] * math.sin(head_yaw) + n[2] * math.cos(head_yaw)  # normal toward camera
        if nd < limit:
            confidence[k] = 0.0
    xy = projected[:NUM_KEYPOINTS, :2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    confidence[~inside] = 0.0
    return SynthPose(
        xy.astype(np.float32),
        confidence,
        width,
        height,
        points=projected,
        yaw=yaw,
        head_yaw=head_yaw,
        scale=float(s),
    )


def _head_to_body(local: np.ndarray, roll: float, rel_yaw: float) -> np.ndarray:
    """Head-frame offset -> body-frame offset (turn about the vertical, then roll)."""
    c, s = math.cos(rel_yaw), math.sin(rel_yaw)
    x = c * local[0] + s * local[2]
    z = -s * local[0] + c * local[2]
    turned = np.array([x, local[1], z])
    return _rotate_frontal(turned, roll, np.zeros(3))


def _project(points: np.ndarray, yaw: float, s: float, cx: float, cy: float) -> np.ndarray:
    """Body frame (units of body height) -> image x, image y, depth toward camera (pixels)."""
    c, si = math.cos(yaw), math.sin(yaw)
    x = cx + s * (points[:, 0] * c + points[:, 2] * si)
    y = cy + s * points[:, 1]
    d = s * (-points[:, 0] * si + points[:, 2] * c)
    return np.stack([x, y, d], axis=1)


# ---------------------------------------------------------------------------------------------
# Rendering


class _Canvas:
    """The three layers painted together: RGB image, LIP labels, and part ids for occlusion."""

    def __init__(self, width: int, height: int, identity: Identity) -> None:
        self.width, self.height = width, height
        top = np.array(identity.background, dtype=np.float32)
        bottom = np.array(identity.background_to, dtype=np.float32)
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        bg = np.broadcast_to(top + (bottom - top) * t, (height, width, 3))
        self.rgb = Image.fromarray(np.rint(bg).astype(np.uint8))
        self.label = Image.new("L", (width, height), BACKGROUND)
        self.part = Image.new("L", (width, height), 0)
        self.d_rgb = ImageDraw.Draw(self.rgb)
        self.d_label = ImageDraw.Draw(self.label)
        self.d_part = ImageDraw.Draw(self.part)

    def polygon(self, pts: np.ndarray, colour: tuple, label: int, part: int) -> None:
        xy = [(float(x), float(y)) for x, y in pts]
        self.d_rgb.polygon(xy, fill=tuple(colour))
        self.d_label.polygon(xy, fill=label)
        self.d_part.polygon(xy, fill=part)

    def disc(self, centre: np.ndarray, r: float, colour: tuple, label: int, part: int) -> None:
        x, y = float(centre[0]), float(centre[1])
        box = (x - r, y - r, x + r, y + r)
        self.d_rgb.ellipse(box, fill=tuple(colour))
        self.d_label.ellipse(box, fill=label)
        self.d_part.ellipse(box, fill=part)

    def segment(self, a: np.ndarray, b: np.ndarray, w: float, colour, label, part) -> None:
        """A limb: a quad of half-width ``w`` with round ends."""
        self.polygon(_segment_quad(a, b, w), colour, label, part)
        self.disc(a, w, colour, label, part)
        self.disc(b, w, colour, label, part)

    def textured(self, quad: np.ndarray, texture: Image.Image, label: int, part: int) -> None:
        """Map ``texture``'s rectangle onto ``quad`` (TL, TR, BR, BL) and paint it."""
        x0 = max(0, int(math.floor(quad[:, 0].min())))
        y0 = max(0, int(math.floor(quad[:, 1].min())))
        x1 = min(self.width, int(math.ceil(quad[:, 0].max())) + 1)
        y1 = min(self.height, int(math.ceil(quad[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        local = quad - np.array([x0, y0])
        tw, th = texture.size
        # Corners map to texel centres, so bilinear sampling never reads outside the cloth.
        edge = np.array([(0.5, 0.5), (tw - 0.5, 0.5), (tw - 0.5, th - 0.5), (0.5, th - 0.5)])
        coeffs = _homography(local, edge)
        xy = [(float(x), float(y)) for x, y in local]
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(mask).polygon(xy, fill=255)
        if coeffs is None:
            patch = Image.new("RGB", mask.size, texture.getpixel((tw // 2, th // 2)))
        else:
            patch = texture.transform(
                mask.size,
                Image.Transform.PERSPECTIVE,
                coeffs,
                Image.Resampling.BILINEAR,
                fillcolor=texture.getpixel((0, 0)),
            )
        self.rgb.paste(patch, (x0, y0), mask)
        self.label.paste(label, (x0, y0, x1, y1), mask)
        self.part.paste(part, (x0, y0, x1, y1), mask)


def _segment_quad(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """The quad ``a+n, b+n, b-n, a-n`` around segment ab, ``n`` its normal of length ``w``."""
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    nx, ny = ay - by, bx - ax
    norm = math.hypot(nx, ny)
    nx, ny = (nx / norm * w, ny / norm * w) if norm > 1e-9 else (w, 0.0)
    return np.array(
        [(ax + nx, ay + ny), (bx + nx, by + ny), (bx - nx, by - ny), (ax - nx, ay - ny)]
    )


def _homography(src: np.ndarray, dst: np.ndarray) -> tuple | None:
    """PIL PERSPECTIVE coefficients mapping output points ``src`` to texture points ``dst``."""
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        a[2 * i] = (x, y, 1, 0, 0, 0, -x * u, -y * u)
        a[2 * i + 1] = (0, 0, 0, x, y, 1, -x * v, -y * v)
        b[2 * i], b[2 * i + 1] = u, v
    try:
        coeffs = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return None
    return tuple(coeffs.tolist()) if np.all(np.isfinite(coeffs)) else None


def _signed_area(quad: np.ndarray) -> float:
    """Shoelace area; positive when the corners run clockwise on screen (y down)."""
    pts = quad.tolist()
    total = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        total += x0 * y1 - x1 * y0
    return 0.5 * total


def _pattern_texture(
    g: Garment, u0: float, u1: float, v0: float, v1: float, px: float, with_print: bool
) -> Image.Image:
    """The garment's pattern over garment coordinates [u0, u1] x [v0, v1] (body-height units),
    sampled at ``px`` texels per unit. The pattern is a function of (u, v) only, so every face
    and both poses of a pair show the same cloth."""
    tw = max(2, int(math.ceil(abs(u1 - u0) * px)))
    th = max(2, int(math.ceil(abs(v1 - v0) * px)))
    u = u0 + (np.arange(tw) + 0.5) / tw * (u1 - u0)
    v = v0 + (np.arange(th) + 0.5) / th * (v1 - v0)
    uu, vv = u[None, :], v[:, None]
    p = g.period
    if g.pattern == "stripes_h":
        ink = (vv / p) % 1.0 < g.duty
    elif g.pattern == "stripes_v":
        ink = (uu / p) % 1.0 < g.duty
    elif g.pattern == "stripes_d":
        a = math.radians(g.angle)
        ink = ((uu * math.cos(a) + vv * math.sin(a)) / p) % 1.0 < g.duty
    elif g.pattern == "checks":
        ink = ((np.floor(uu / p) + np.floor(vv / p)) % 2) == 0
    elif g.pattern == "dots":
        row = np.floor(vv / p)
        cu = (uu / p + 0.5 * (row % 2)) % 1.0 - 0.5
        cv = (vv / p) % 1.0 - 0.5
        ink = cu * cu + cv * cv < (0.5 * g.duty) ** 2
    else:
        ink = np.zeros((1, 1), dtype=bool)
    ink = np.broadcast_to(ink, (th, tw))
    tex = np.where(ink[..., None], np.array(g.color_b, np.uint8), np.array(g.color_a, np.uint8))
    if with_print and g.text_mask is not None:
        _stamp_print(tex, g, u, v)
    return Image.fromarray(tex.astype(np.uint8))


def _stamp_print(tex: np.ndarray, g: Garment, u: np.ndarray, v: np.ndarray) -> None:
    """Print the word across the chest: centred on u = 0, starting 0.07 below the collar."""
    mh, mw = g.text_mask.shape
    box_w = 0.17
    box_h = min(0.12, box_w * mh / mw)
    box_w = box_h * mw / mh
    top = -_TORSO_LEN + 0.07
    cols = np.nonzero((u >= -box_w / 2) & (u < box_w / 2))[0]
    rows = np.nonzero((v >= top) & (v < top + box_h))[0]
    if len(cols) < 2 or len(rows) < 2:
        return
    c0, c1, r0, r1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    mask = Image.fromarray(g.text_mask).resize((c1 - c0, r1 - r0), Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, np.float32)[..., None] / 255.0
    region = tex[r0:r1, c0:c1].astype(np.float32)
    blended = region * (1 - alpha) + np.array(g.text_color, np.float32) * alpha
    tex[r0:r1, c0:c1] = np.rint(blended).astype(np.uint8)


# Faces of a box: corner indices (TL, TR, BR, BL) as seen from outside, and each face's
# garment u range as a function of (top half-width x, half-thickness z).
_BOX_FACES = (
    ((0, 1, 5, 4), lambda x, z: (-x, x), True),  # front
    ((1, 2, 6, 5), lambda x, z: (x, x + 2 * z), False),  # person's left side
    ((2, 3, 7, 6), lambda x, z: (x + 2 * z, 3 * x + 2 * z), False),  # back
    ((3, 0, 4, 7), lambda x, z: (-x - 2 * z, -x), False),  # person's right side
)


def _draw_box(
    canvas: _Canvas,
    corners: np.ndarray,
    garment: Garment | None,
    colour: tuple,
    half_x: float,
    half_z: float,
    v_range: tuple[float, float],
    px: float,
    label: int,
    part: int,
) -> None:
    """Paint the camera-facing faces of a box, each with its own stretch of the pattern."""
    for idx, u_range, is_front in _BOX_FACES:
        quad = corners[list(idx), :2]
        if _signed_area(quad) <= 0.05:
            continue
        if garment is None:
            canvas.polygon(quad, colour, label, part)
            continue
        u0, u1 = u_range(half_x, half_z)
        tex = _pattern_texture(garment, u0, u1, *v_range, px, with_print=is_front)
        canvas.polygon(quad, garment.color_a, label, part)  # closes sub-pixel cracks
        canvas.textured(quad, tex, label, part)


def _draw_head(canvas: _Canvas, identity: Identity, pose: SynthPose) -> None:
    """The head ellipsoid per pixel: Face or Hair by where the pixel lies on the skull."""
    pts = pose.points
    centre, top = pts[_HEAD, :2], pts[_HEAD_TOP, :2]
    ry = float(np.linalg.norm(top - centre))
    if ry < 0.5:
        return
    up = (top - centre) / ry
    roll = math.atan2(up[0], -up[1])
    a, c = _HEAD_A * ry, _HEAD_C * ry
    cy_, sy_ = math.cos(pose.head_yaw), math.sin(pose.head_yaw)
    rx = math.sqrt((a * cy_) ** 2 + (c * sy_) ** 2)
    ext = max(rx, ry) + 1
    x0 = max(0, int(math.floor(centre[0] - ext)))
    x1 = min(canvas.width, int(math.ceil(centre[0] + ext)) + 1)
    y0 = max(0, int(math.floor(centre[1] - ext)))
    y1 = min(canvas.height, int(math.ceil(centre[1] + ext)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    xs, ys = np.meshgrid(np.arange(x0, x1) + 0.5 - centre[0], np.arange(y0, y1) + 0.5 - centre[1])
    # Undo the roll, so (lx, ly) are in the upright head's image plane.
    cr, sr = math.cos(roll), math.sin(roll)
    lx = cr * xs + sr * ys
    ly = -sr * xs + cr * ys
    q = 1.0 - (ly / ry) ** 2
    # Depth of the front surface: X = lx cos - d sin, Z = lx sin + d cos on the ellipsoid.
    qa = sy_**2 / a**2 + cy_**2 / c**2
    qb = 2 * lx * (-cy_ * sy_ / a**2 + sy_ * cy_ / c**2)
    qc = lx**2 * (cy_**2 / a**2 + sy_**2 / c**2) - q
    disc = qb * qb - 4 * qa * qc
    inside = (disc >= 0) & (q > 0)
    d = (-qb + np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    xn = (lx * cy_ - d * sy_) / a  # head frame, -1..1
    zn = (lx * sy_ + d * cy_) / c
    yn = ly / ry
    if identity.hair_style == "long":
        hair = (yn < -0.45) | (zn < 0.05) | ((np.abs(xn) > 0.72) & (yn < 0.55))
    else:
        hair = (yn < -0.5 + 0.15 * np.abs(xn)) | ((zn < -0.3) & (yn < 0.4))
    hair &= inside
    face = inside & ~hair
    rgb = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    rgb[face] = identity.skin
    rgb[hair] = identity.hair
    label = np.where(hair, HAIR, FACE).astype(np.uint8)
    mask = Image.fromarray((inside * 255).astype(np.uint8))
    canvas.rgb.paste(Image.fromarray(rgb), (x0, y0), mask)
    canvas.label.paste(Image.fromarray(label), (x0, y0), mask)
    canvas.part.paste(_P_HEAD, (x0, y0, x1, y1), mask)
    # Eyes and mouth where they face the camera.
    r_eye = max(0.6, 0.1 * ry)
    for k, limit in ((_REYE, 0.2), (_LEYE, 0.2), (_MOUTH, 0.1)):
        if (pts[k, 2] - pts[_HEAD, 2]) / c < limit:
            continue
        p = pts[k, :2]
        if k == _MOUTH:
            w = max(0.8, 0.25 * rx)
            box = (p[0] - w, p[1] - 0.5 * r_eye, p[0] + w, p[1] + 0.5 * r_eye)
            colour = (150, 40, 50)
        else:
            box = (p[0] - r_eye, p[1] - r_eye, p[0] + r_eye, p[1] + r_eye)
            colour = identity.eye
        canvas.d_rgb.ellipse(box, fill=colour)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise DataError(f"SynthFashion: size must be (height, width), got {size!r}") from exc
    if height < 16 or width < 11:
        raise DataError(f"SynthFashion: size must be at least (16, 11) pixels, got {size!r}")
    return height, width


def _render(identity: Identity, pose: Pose, size: tuple[int, int]):
    """Paint the person; return image, labels, part ids and the pose with occlusion applied."""
    height, width = _check_size(size)
    if not isinstance(pose, SynthPose):
        raise PoseError(
            f"render_person: got a {type(pose).__name__}; expected a SynthPose from sample_pose "
            "(it carries the 3D body the renderer needs)"
        )
    if (pose.width, pose.height) != (width, height):
        pose = pose.resized(width, height)
    canvas = _Canvas(width, height, identity)
    p = pose.points
    s = pose.scale
    px = s * 1.0  # texels per body-height unit: about one texel per output pixel

    def seg(a: int, b: int, w: float, colour, label, part) -> None:
        canvas.segment(p[a], p[b], w * s, colour, label, part)

    shirt = identity.shirt
    skin = identity.skin
    items: list[tuple[float, float, Callable[[], None]]] = []  # (tier, depth, draw)

    # One strip of sleeve cloth per rendering, cut to each sleeve piece's length.
    sleeve_tex = _pattern_texture(shirt, 0.0, 2 * _W_SLEEVE, 0.0, 0.25, px, with_print=False)

    def arm(side: str) -> None:
        sh, el, wr, hand, up_part, fore_part, label, sleeve_up, sleeve_fore = (
            (_RSH, _REL, _RWR, _RHAND, _P_RUP, _P_RFORE, RIGHT_ARM, _P_RSLEEVE_UP, _P_RSLEEVE_FORE)
            if side == "r"
            else (
                _LSH,
                _LEL,
                _LWR,
                _LHAND,
                _P_LUP,
                _P_LFORE,
                LEFT_ARM,
                _P_LSLEEVE_UP,
                _P_LSLEEVE_FORE,
            )
        )
        seg(sh, el, _W_UPPER, skin, label, up_part)
        seg(el, wr, _W_FORE, skin, label, fore_part)
        canvas.segment(p[wr], p[hand], _W_HAND * s, skin, label, fore_part)
        # Sleeve: from inside the shoulder to 60% of the upper arm, or near the wrist.
        start = p[sh] + (p[sh] - p[el]) * 0.15
        if identity.long_sleeves:
            pieces = [
                (start, p[el], sleeve_up),
                (p[el], p[el] + 0.75 * (p[wr] - p[el]), sleeve_fore),
            ]
        else:
            pieces = [(start, p[sh] + 0.6 * (p[el] - p[sh]), sleeve_up)]
        for a, b, part in pieces:
            w = _W_SLEEVE * s
            quad = _segment_quad(a, b, w)
            canvas.disc(a, w, shirt.color_a, UPPER_CLOTHES, part)
            rows = int(math.ceil(float(np.linalg.norm(b[:2] - a[:2]))))
            tex = sleeve_tex.crop((0, 0, sleeve_tex.width, max(2, min(rows, sleeve_tex.height))))
            canvas.polygon(quad, shirt.color_a, UPPER_CLOTHES, part)
            # quad order from _segment_quad: a+n, b+n, b-n, a-n -> texture TL, BL, BR, TR
            canvas.textured(quad[[0, 3, 2, 1]], tex, UPPER_CLOTHES, part)

    def leg(side: str) -> None:
        hip, kn, an, toe, thigh_p, shin_p, shoe_p, leg_label, shoe_label = (
            (_RHIP, _RKN, _RAN, _RTOE, _P_RTHIGH, _P_RSHIN, _P_RSHOE, RIGHT_LEG, RIGHT_SHOE)
            if side == "r"
            else (_LHIP, _LKN, _LAN, _LTOE, _P_LTHIGH, _P_LSHIN, _P_LSHOE, LEFT_LEG, LEFT_SHOE)
        )
        if identity.lower == "pants":
            colour, label = identity.pants, PANTS
        else:
            colour, label = skin, leg_label
        seg(hip, kn, _W_THIGH, colour, label, thigh_p)
        seg(kn, an, _W_SHIN, colour, label, shin_p)
        heel = p[an] + np.array([0.0, 0.25 * _W_SHOE * s, 0.0])
        canvas.segment(heel, p[toe], _W_SHOE * s, identity.shoes, shoe_label, shoe_p)

    def torso() -> None:
        _draw_box(
            canvas, p[_TORSO : _TORSO + 8], shirt, shirt.color_a, _TORSO_TOP_X, _TORSO_TOP_Z,
            (-_TORSO_LEN, _TORSO_BOT_Y), px, UPPER_CLOTHES, _P_TORSO,
        )  # fmt: skip

    def lower_body() -> None:
        if identity.lower == "skirt":
            _draw_box(
                canvas, p[_SKIRT : _SKIRT + 8], identity.skirt, identity.skirt.color_a, 0.12,
                0.065, (-0.02, 0.2), px, SKIRT, _P_SKIRT,
            )  # fmt: skip
        else:
            _draw_box(
                canvas, p[_BRIEF : _BRIEF + 8], None, identity.pants, 0.115, 0.06, (0, 1), px,
                PANTS, _P_BRIEF,
            )  # fmt: skip

    def neck() -> None:
        canvas.segment(p[_NECK], p[_HEAD], _W_NECK * s, skin, FACE, _P_NECK)

    def hair_back() -> None:
        canvas.polygon(p[_HAIR_BACK : _HAIR_BACK + 4, :2], identity.hair, HAIR, _P_HAIR_BACK)

    def head() -> None:
        _draw_head(canvas, identity, pose)

    near = 0.02 * s
    for side, (a, b, c) in (("r", (_RSH, _REL, _RWR)), ("l", (_LSH, _LEL, _LWR))):
        depth = float(np.mean(p[[a, b, c], 2]))
        items.append((0 if depth < -near else 4, depth, lambda side=side: arm(side)))
    for side, (a, b) in (("r", (_RHIP, _RKN)), ("l", (_LHIP, _LKN))):
        depth = float(np.mean(p[[a, b], 2]))
        items.append((1, depth, lambda side=side: leg(side)))
    items.append((2, 0.0, lower_body))
    items.append((3, -1.0, neck))
    items.append((3, 0.0, torso))
    if identity.hair_style == "long":
        depth = float(np.mean(p[_HAIR_BACK : _HAIR_BACK + 4, 2]) - p[_HEAD, 2])
        items.append((0, depth, hair_back) if depth < 0 else (3, 1.0, hair_back))
    items.append((3, 2.0, head))
    for _, _, draw in sorted(items, key=lambda it: (it[0], it[1])):
        draw()

    image = np.asarray(canvas.rgb, dtype=np.uint8).copy()
    labels = np.asarray(canvas.label, dtype=np.uint8).astype(np.int64)
    parts = np.asarray(canvas.part, dtype=np.uint8)
    return image, labels, _occluded(pose, parts)


def _occluded(pose: SynthPose, parts: np.ndarray) -> Pose:
    """``pose`` with confidence 0 for joints whose own parts are not under them (1 px window)."""
    h, w = parts.shape
    confidence = pose.confidence.copy()
    for j in range(NUM_KEYPOINTS):
        if confidence[j] <= 0:
            continue
        x, y = int(math.floor(pose.xy[j, 0])), int(math.floor(pose.xy[j, 1]))
        window = parts[max(0, y - 1) : min(h, y + 2), max(0, x - 1) : min(w, x + 2)]
        if not _JOINT_PART_TABLE[j][window].any():
            confidence[j] = 0.0
    return Pose(pose.xy, confidence, pose.width, pose.height)


def render_person(
    identity: Identity, pose: Pose, size: tuple[int, int] = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``identity`` in ``pose`` on an ``(H, W)`` canvas.

    Returns the image (uint8 ``(H, W, 3)`` RGB) and its exact LIP parsing map (int64
    ``(H, W)``). ``pose`` must come from :func:`sample_pose` (any canvas size; it is scaled).
    """
    image, labels, _ = _render(identity, pose, size)
    return image, labels


def render_person_with_keypoints(
    identity: Identity, pose: Pose, size: tuple[int, int] = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray, Pose]:
    """:func:`render_person` plus the pose as a detector would see it: joints covered by
    another body part in this rendering get confidence 0."""
    return _render(identity, pose, size)


# ---------------------------------------------------------------------------------------------
# Data set


def keypoints_tensor(pose: Pose) -> torch.Tensor:
    """``(18, 3)`` float: x, y (pixels), confidence; joints that are not visible are zeros."""
    out = torch.zeros(NUM_KEYPOINTS, 3, dtype=torch.float32)
    visible = torch.from_numpy(pose.visible.copy())
    out[:, :2] = torch.from_numpy(np.array(pose.xy, dtype=np.float32))
    out[:, 2] = torch.from_numpy(np.array(pose.confidence, dtype=np.float32))
    out[~visible] = 0.0
    return out


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` in [-1, 1] (the VAE's range)."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)


def skeleton_tensor(pose: Pose) -> torch.Tensor:
    """The rendered OpenPose skeleton as float ``(3, H, W)`` in [0, 1]."""
    return torch.from_numpy(render_skeleton(pose)).permute(2, 0, 1).float().div(255.0)


class SynthFashion(Dataset):
    """Pairs of one synthetic identity in two poses, with exact parsing and keypoints.

    Item ``i`` depends only on ``(seed, split, i)``: the same arguments give identical
    tensors in any process, and the train and test splits draw from disjoint random streams.
    ``size`` is ``(H, W)``; the default 128x88 keeps DeepFashion's 16:11 aspect.

    Each item is a dict of tensors (collates with the default collate) plus ``pair_id``:
    ``source_image``/``target_image`` float ``(3, H, W)`` in [-1, 1];
    ``source_parsing``/``target_parsing`` int64 ``(H, W)`` LIP labels;
    ``source_keypoints``/``target_keypoints`` float ``(18, 3)`` (x, y in pixels, confidence;
    hidden joints are zeros); ``target_skeleton`` float ``(3, H, W)`` in [0, 1].
    """

    def __init__(
        self,
        size: tuple[int, int] = DEFAULT_SIZE,
        length: int = 10_000,
        seed: int = 0,
        split: str = "train",
    ) -> None:
        self.size = _check_size(size)
        if split not in SPLITS:
            raise DataError(f"SynthFashion: split must be one of {SPLITS}, got {split!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise DataError(f"SynthFashion: length must be a positive int, got {length!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DataError(f"SynthFashion: seed must be a non-negative int, got {seed!r}")
        self.length = length
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return self.length

    def pair_id(self, index: int) -> str:
        """The name of item ``index`` without rendering it (output file names use it)."""
        return f"synthfashion-{self.split}-{self.seed}-{index % self.length:07d}"

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of item ``index`` (split code 1 = train, 2 = test)."""
        return np.random.default_rng([self.seed, SPLITS.index(self.split) + 1, index])

    def sample(self, index: int) -> tuple[Identity, SynthPose, SynthPose]:
        """The identity and the two poses of item ``index``, before rendering."""
        rng = self.rng(index)
        identity = sample_identity(rng)
        return identity, sample_pose(rng, self.size), sample_pose(rng, self.size)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not -self.length <= index < self.length:
            raise IndexError(f"SynthFashion: index {index} out of range for length {self.length}")
        index %= self.length
        identity, src_pose, tgt_pose = self.sample(index)
        src_img, src_lab, src_pose = _render(identity, src_pose, self.size)
        tgt_img, tgt_lab, tgt_pose = _render(identity, tgt_pose, self.size)
        return {
            "source_image": image_tensor(src_img),
            "target_image": image_tensor(tgt_img),
            "source_parsing": torch.from_numpy(src_lab),
            "target_parsing": torch.from_numpy(tgt_lab),
            "source_keypoints": keypoints_tensor(src_pose),
            "target_keypoints": keypoints_tensor(tgt_pose),
            "target_skeleton": skeleton_tensor(tgt_pose),
            "pair_id": self.pair_id(index),
        }
