"""Write the pack's workflow templates: each graph once, as a UI workflow and as its API twin.

Run ``python scripts/templates/build_templates.py`` after changing a graph or a node's
inputs. It writes the UI workflows to ``example_workflows/`` (the one folder ComfyUI's
template browser lists; the thumbnails beside them are screenshots taken by
``tests/test_workflows.py``) and the API-format twins to ``scripts/templates/api/``, a
folder ComfyUI does not scan. ``tests/test_templates.py`` checks that the committed files
are what this script writes; ``tests/test_workflows.py`` checks them against a running
ComfyUI (node types, inputs, widget values, loading in the browser).

A template is one function that returns a :class:`Graph`; list it in ``TEMPLATES``. Lay
the graph out left to right in the order the data flows, in the three titled groups
artists know from the other templates ("1 Source person", "2 Target pose", "3 Generate"),
and say in its note which files it needs and where they go.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLES = REPO / "example_workflows"
API = HERE / "api"


# -- model files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    """A file a template needs: where it goes and where its publisher offers it."""

    name: str  # file name in the folder
    directory: str  # ComfyUI model folder
    url: str  # the publisher's download (or, without a direct link, its page)


SMALL_MODEL = "truepose-synthfashion-small.safetensors"  # shipped in truepose_core/assets
SCHP_LIP = ModelFile(
    "exp-schp-201908261155-lip.pth",
    "schp",
    "https://github.com/GoGoDuck912/Self-Correction-Human-Parsing",
)
SOURCE_IMAGE = "truepose_source.png"
SD15_CHECKPOINT = ModelFile(
    "v1-5-pruned-emaonly.safetensors",
    "checkpoints",
    "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/"
    "v1-5-pruned-emaonly.safetensors",
)
OPENPOSE_CONTROLNET = ModelFile(
    "control_v11p_sd15_openpose.pth",
    "controlnet",
    "https://huggingface.co/lllyasviel/ControlNet-v1-1/resolve/main/control_v11p_sd15_openpose.pth",
)

# A walking pose in DeepFashion's 176x256 frame (OpenPose-18 order, x, y, confidence).
_WALK_X = (88, 88, 66, 60, 58, 110, 116, 118, 74, 72, 70, 102, 104, 106, 84, 93, 78, 0)
_WALK_Y = (30, 58, 58, 98, 134, 57, 99, 136, 140, 196, 240, 139, 195, 241, 25, 25, 29, 0)
WALK_POSE_JSON = json.dumps(
    {
        "canvas_width": 176,
        "canvas_height": 256,
        "people": [
            {
                "pose_keypoints_2d": [
                    v for x, y in zip(_WALK_X, _WALK_Y, strict=True) for v in (x, y, 1 if x else 0)
                ]
            }
        ],
    }
)
#: The same walk on a 528x768 canvas (scaled by 3), the reference template's picture size.
WALK_POSE_JSON_528 = json.dumps(
    {
        "canvas_width": 528,
        "canvas_height": 768,
        "people": [
            {
                "pose_keypoints_2d": [
                    v
                    for x, y in zip(_WALK_X, _WALK_Y, strict=True)
                    for v in (3 * x, 3 * y, 1 if x else 0)
                ]
            }
        ],
    }
)


# -- node specs -------------------------------------------------------------------------------

#: node type -> (socket inputs (name, type), widget names in order, outputs (name, type)).
#: A socket name ending in "?" is optional and left off the UI node when unlinked. A widget
#: name ending in "+control" is followed by its control_after_generate value; "image+upload"
#: is LoadImage's file widget followed by its upload button's value.
SPECS: dict[str, tuple[list, list, list]] = {
    "TruePose_LoadTruePose": (
        [],
        ["checkpoint"],
        [("MODEL", "MODEL"), ("TRUEPOSE", "TRUEPOSE"), ("VAE", "VAE")],
    ),
    "TruePose_SynthFashionSample": (
        [],
        ["index", "data_seed", "height", "width"],
        [
            ("source_image", "IMAGE"),
            ("source_parsing", "TRUEPOSE_PARSING"),
            ("target_pose", "TRUEPOSE_POSE"),
            ("target_image", "IMAGE"),
            ("pose_preview", "IMAGE"),
        ],
    ),
    "TruePose_SourceNetEncode": (
        [
            ("truepose", "TRUEPOSE"),
            ("vae", "VAE"),
            ("source_image", "IMAGE"),
            ("source_parsing", "TRUEPOSE_PARSING"),
            ("clip_vision?", "CLIP_VISION"),
        ],
        [],
        [("source", "TRUEPOSE_SOURCE")],
    ),
    "TruePose_HPFAPatchModel": (
        [
            ("model", "MODEL"),
            ("truepose", "TRUEPOSE"),
            ("source", "TRUEPOSE_SOURCE"),
            ("target_pose", "TRUEPOSE_POSE"),
        ],
        ["sigma", "delta", "strength", "region_alignment", "aligned_regions"],
        [("MODEL", "MODEL")],
    ),
    "TruePose_TrueSampler": (
        [
            ("model", "MODEL"),
            ("truepose", "TRUEPOSE"),
            ("source", "TRUEPOSE_SOURCE"),
            ("latent?", "LATENT"),
        ],
        [
            "seed+control",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "denoise",
            "batch_size",
        ],
        [("LATENT", "LATENT")],
    ),
    "TruePose_AttentionMap": (
        [
            ("truepose", "TRUEPOSE"),
            ("source", "TRUEPOSE_SOURCE"),
            ("target_pose", "TRUEPOSE_POSE"),
            ("source_image", "IMAGE"),
        ],
        ["sigma", "delta", "opacity"],
        [("overlay", "IMAGE"), ("attention", "MASK")],
    ),
    "TruePose_Metrics": (
        [("pred", "IMAGE"), ("ground_truth", "IMAGE")],
        [],
        [("report", "STRING"), ("ssim", "FLOAT"), ("psnr", "FLOAT")],
    ),
    "TruePose_PoseFromOpenPoseJSON": (
        [],
        ["json_text", "file", "width", "height", "person_index", "coordinates"],
        [("pose", "TRUEPOSE_POSE"), ("preview", "IMAGE")],
    ),
    "TruePose_PoseBatch": (
        [
            ("poses_1", "TRUEPOSE_POSE"),
            ("poses_2", "TRUEPOSE_POSE"),
            ("poses_3?", "TRUEPOSE_POSE"),
            ("poses_4?", "TRUEPOSE_POSE"),
        ],
        [],
        [("pose", "TRUEPOSE_POSE"), ("preview", "IMAGE")],
    ),
    "TruePose_HumanParse": (
        [("image", "IMAGE")],
        ["schp_model"],
        [("parsing", "TRUEPOSE_PARSING"), ("preview", "IMAGE"), ("person_mask", "MASK")],
    ),
    "TruePose_PoseToControlNetImage": (
        [("pose", "TRUEPOSE_POSE")],
        ["width", "height"],
        [("image", "IMAGE")],
    ),
    "TruePose_ReferencePatch": (
        [
            ("model", "MODEL"),
            ("vae", "VAE"),
            ("source_image", "IMAGE"),
            ("source_parsing", "TRUEPOSE_PARSING"),
            ("target_pose", "TRUEPOSE_POSE"),
        ],
        [
            "source_mode",
            "sigma",
            "delta",
            "strength",
            "start_percent",
            "end_percent",
            "reweight",
        ],
        [("MODEL", "MODEL")],
    ),
    "CheckpointLoaderSimple": (
        [],
        ["ckpt_name"],
        [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    ),
    "ControlNetLoader": ([], ["control_net_name"], [("CONTROL_NET", "CONTROL_NET")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetApplyAdvanced": (
        [
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("control_net", "CONTROL_NET"),
            ("image", "IMAGE"),
            ("vae?", "VAE"),
        ],
        ["strength", "start_percent", "end_percent"],
        [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    ),
    "EmptyLatentImage": ([], ["width", "height", "batch_size"], [("LATENT", "LATENT")]),
    "KSampler": (
        [
            ("model", "MODEL"),
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("latent_image", "LATENT"),
        ],
        ["seed+control", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        [("LATENT", "LATENT")],
    ),
    "LoadImage": ([], ["image+upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScale": (
        [("image", "IMAGE")],
        ["upscale_method", "width", "height", "crop"],
        [("IMAGE", "IMAGE")],
    ),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [], [("IMAGE", "IMAGE")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
}

#: Extra height (canvas units) of widgets that are more than one line high, and of nodes
#: that show an image.
TALL_WIDGETS = {"json_text": 120, "text": 80}
IMAGE_NODES = {"PreviewImage": 200, "SaveImage": 200, "LoadImage": 250}
NODE_WIDTH = 310
COLUMN = 370  # canvas units from one column to the next
#: The canvas a template opens on: a 1920x1080 screen less the browser's and ComfyUI's bars
#: (the canvas starts right of the 65-pixel side bar and below the tab bar) and a margin.
SCREEN = (1800, 800)
MARGIN = 25
GAP = 40  # vertical gap between stacked nodes
GROUP_PAD = 20
GROUP_TITLE = 40
GROUP_COLOURS = ("#3f789e", "#b58b2a", "#8A8")  # the frontend's pale blue, yellow, green


def _socket(spec: str) -> tuple[str, bool]:
    return spec.rstrip("?"), spec.endswith("?")


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (node id, output slot)
    title: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """A size at least as large as the frontend draws the node (so groups enclose it)."""
        sockets, widgets, outputs = SPECS[self.type]
        shown = [s for s, _ in sockets if not _socket(s)[1] or _socket(s)[0] in self.links]
        height = 40 + 22 * max(len(shown), len(outputs)) + 26 * len(widgets)
        height += sum(TALL_WIDGETS.get(w, 0) for w in widgets) + IMAGE_NODES.get(self.type, 0)
        return NODE_WIDTH, height


@dataclass
class Group:
    title: str
    members: list[Node]
    colour: str

    def bounding(self) -> list[int]:
        left = min(n.pos[0] for n in self.members) - GROUP_PAD
        top = min(n.pos[1] for n in self.members) - GROUP_PAD - GROUP_TITLE
        right = max(n.pos[0] + n.size[0] for n in self.members) + GROUP_PAD
        bottom = max(n.pos[1] + n.size[1] for n in self.members) + GROUP_PAD
        return [left, top, right - left, bottom - top]


@dataclass
class Graph:
    """One template: nodes placed on a grid of columns, titled groups, a note, model files."""

    name: str
    note: str
    models: tuple[ModelFile, ...] = ()
    nodes: list[Node] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def add(self, type_: str, col: float, y: int, title: str | None = None, **inputs) -> Node:
        """Place a ``type_`` node in column ``col`` at height ``y``; a tuple (node, slot)
        links a socket, anything else sets a widget."""
        sockets = {_socket(s)[0] for s, _ in SPECS[type_][0]}
        node = Node(len(self.nodes) + 1, type_, (int(col * COLUMN), y), title=title)
        for key, value in inputs.items():
            if key in sockets:
                node.links[key] = (value[0].id, value[1])
            else:
                node.widgets[key] = value
        self.nodes.append(node)
        return node

    def below(self, node: Node) -> int:
        """The height at which the next node of ``node``'s column starts."""
        return node.pos[1] + node.size[1] + GAP

    def group(self, title: str, *members: Node) -> None:
        self.groups.append(Group(title, list(members), GROUP_COLOURS[len(self.groups) % 3]))

    # -- API format ----------------------------------------------------------------------------

    def api(self) -> dict:
        out = {}
        for node in self.nodes:
            inputs = dict(node.widgets)
            for name, (origin, slot) in node.links.items():
                inputs[name] = [str(origin), slot]
            entry = {"class_type": node.type, "inputs": inputs}
            if node.title:
                entry["_meta"] = {"title": node.title}
            out[str(node.id)] = entry
        return out

    # -- UI format -----------------------------------------------------------------------------

    def _note_node(self, node_id: int) -> dict:
        boxes = [g.bounding() for g in self.groups]
        left = min(b[0] for b in boxes)
        top = min(b[1] for b in boxes)
        width = max(b[0] + b[2] for b in boxes) - left
        return {
            "id": node_id,
            "type": "Note",
            "pos": [left, top - 180],
            "size": [width, 150],
            "flags": {},
            "order": len(self.nodes),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [self.note],
            "color": "#432",
            "bgcolor": "#653",
        }

    def _view(self, note: dict) -> dict:
        """Scale and offset that show the whole graph on a 1920x1080 screen."""
        boxes = [g.bounding() for g in self.groups] + [[*note["pos"], *note["size"]]]
        left = min(b[0] for b in boxes)
        top = min(b[1] for b in boxes)
        width = max(b[0] + b[2] for b in boxes) - left
        height = max(b[1] + b[3] for b in boxes) - top
        scale = round(min(SCREEN[0] / width, SCREEN[1] / height, 1.0), 3)
        return {
            "scale": scale,
            "offset": [round(MARGIN / scale - left), round(MARGIN / scale - top)],
        }

    def ui(self) -> dict:
        links = []
        out_links: dict[tuple[int, int], list[int]] = {}
        in_links: dict[tuple[int, str], int] = {}
        for node in self.nodes:
            sockets = {_socket(s)[0]: t for s, t in SPECS[node.type][0]}
            for name, (origin, slot) in node.links.items():
                link_id = len(links) + 1
                links.append([link_id, origin, slot, node.id, None, sockets[name]])
                out_links.setdefault((origin, slot), []).append(link_id)
                in_links[(node.id, name)] = link_id
        nodes = []
        by_link = {link[0]: link for link in links}
        for order, node in enumerate(self.nodes):
            socket_specs, widget_names, outputs = SPECS[node.type]
            inputs = []
            for spec, type_ in socket_specs:
                name, optional = _socket(spec)
                link = in_links.get((node.id, name))
                if link is None and optional:
                    continue
                inputs.append({"name": name, "type": type_, "link": link})
                if link is not None:
                    by_link[link][4] = len(inputs) - 1
            values = []
            for widget in widget_names:
                values.append(node.widgets[widget.split("+")[0]])
                if widget.endswith("+control"):
                    values.append("fixed")
                elif widget.endswith("+upload"):
                    values.append("image")
            entry = {
                "id": node.id,
                "type": node.type,
                "pos": list(node.pos),
                "size": list(node.size),
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": [
                    {
                        "name": name,
                        "type": type_,
                        "slot_index": slot,
                        "links": out_links.get((node.id, slot)),
                    }
                    for slot, (name, type_) in enumerate(outputs)
                ],
                "properties": {"Node name for S&R": node.type},
                "widgets_values": values,
            }
            if node.title:
                entry["title"] = node.title
            nodes.append(entry)
        note = self._note_node(len(self.nodes) + 1)
        nodes.append(note)
        out = {
            "last_node_id": note["id"],
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [
                {
                    "id": i + 1,
                    "title": g.title,
                    "bounding": g.bounding(),
                    "color": g.colour,
                    "font_size": 24,
                    "flags": {},
                }
                for i, g in enumerate(self.groups)
            ],
            "config": {},
            "extra": {"ds": self._view(note)},
            "version": 0.4,
        }
        if self.models:
            out["models"] = [
                {"name": m.name, "url": m.url, "directory": m.directory} for m in self.models
            ]
        return out


# -- shared pieces ----------------------------------------------------------------------------


def _generate(
    g: Graph, col: float, image, parsing, poses, prefix: str, steps: int = 35, top: int = 0
):
    """Group 3, four columns from ``col`` at height ``top``: load the checkpoint, encode the
    source, patch, sample, decode and save (one row: a short graph fits a wide screen).

    Returns (loader, source encoding, decoded image) for nodes that look at the result.
    """
    loader = g.add("TruePose_LoadTruePose", col, top, checkpoint=SMALL_MODEL)
    source = g.add(
        "TruePose_SourceNetEncode",
        col,
        g.below(loader),
        truepose=(loader, 1),
        vae=(loader, 2),
        source_image=image,
        source_parsing=parsing,
    )
    patched = g.add(
        "TruePose_HPFAPatchModel",
        col + 1,
        top,
        model=(loader, 0),
        truepose=(loader, 1),
        source=(source, 0),
        target_pose=poses,
        sigma=-1.0,
        delta=-1.0,
        strength=1.0,
        region_alignment="default",
        aligned_regions=0,
    )
    latent = g.add(
        "TruePose_TrueSampler",
        col + 2,
        top,
        model=(patched, 0),
        truepose=(loader, 1),
        source=(source, 0),
        seed=0,
        steps=steps,
        cfg=3.5,
        sampler_name="ddim",
        scheduler="truepose_ddim",
        denoise=1.0,
        batch_size=0,
    )
    decoded = g.add("VAEDecode", col + 3, top, samples=(latent, 0), vae=(loader, 2))
    saved = g.add(
        "SaveImage", col + 3, g.below(decoded), images=(decoded, 0), filename_prefix=prefix
    )
    g.group("3 Generate", loader, source, patched, latent, decoded, saved)
    return loader, source, decoded


HONEST_MODEL = (
    f"The checkpoint is the pack's small model ({SMALL_MODEL}, shipped inside the pack: "
    "nothing to download). It was trained for about 10.9 CPU-hours on procedural SynthFashion "
    "figures at 88x128: it draws the target pose on the source's background, mostly in the "
    "source's clothing colours, but no patterns and no faces; no full-size TruePose weights "
    "are published yet."
)


# -- the templates ----------------------------------------------------------------------------


def synthfashion_demo(steps: int = 35) -> Graph:
    g = Graph(
        "truepose-synthfashion-demo",
        "TruePose demo: needs no files. A SynthFashion test pair (a procedural person drawn "
        "in two poses) gives the source person and the target pose; change index for "
        "another pair. Queue it and compare the result with the ground truth (SSIM / PSNR "
        "in TruePose Score). TruePose Attention Map shows which parts of the source the "
        "model copies from.\n" + HONEST_MODEL,
    )
    sample = g.add("TruePose_SynthFashionSample", 0, 0, index=0, data_seed=0, height=128, width=88)
    shown = g.add("PreviewImage", 1, 0, title="Source person", images=(sample, 0))
    g.group("1 Source person", sample, shown)
    pose = g.add("PreviewImage", 0, 420, title="Target pose", images=(sample, 4))
    g.group("2 Target pose", pose)
    loader, source, decoded = _generate(
        g, 2, (sample, 0), (sample, 1), (sample, 2), "truepose/synthfashion", steps, top=420
    )
    # Above the generate group, so that the links from the sample pass over it.
    metrics = g.add("TruePose_Metrics", 6, 0, pred=(decoded, 0), ground_truth=(sample, 3))
    attention = g.add(
        "TruePose_AttentionMap",
        6,
        g.below(metrics),
        truepose=(loader, 1),
        source=(source, 0),
        target_pose=(sample, 2),
        source_image=(sample, 0),
        sigma=-1.0,
        delta=-1.0,
        opacity=0.6,
    )
    truth = g.add("PreviewImage", 7, 0, title="Ground truth", images=(sample, 3))
    heat = g.add(
        "PreviewImage", 7, g.below(truth), title="Where it copies from", images=(attention, 0)
    )
    g.group("4 Check the result", metrics, attention, truth, heat)
    return g


def one_source_many_poses() -> Graph:
    g = Graph(
        "truepose-one-source-many-poses",
        "One source person, three target poses: the source is encoded once and the sampler "
        "makes one image per pose (batch_size 0 = one per pose). Needs no files: the poses "
        "are the target poses of SynthFashion test pairs 0, 1 and 2. Swap a SynthFashion "
        "node for TruePose Pose from OpenPose JSON to use your own poses.\n" + HONEST_MODEL,
    )
    samples = [
        g.add("TruePose_SynthFashionSample", col, y, index=i, data_seed=0, height=128, width=88)
        for i, (col, y) in enumerate(((0, 0), (0, 380), (1, 380)))
    ]
    g.group("1 Source person", samples[0])
    poses = g.add(
        "TruePose_PoseBatch",
        2,
        380,
        poses_1=(samples[0], 2),
        poses_2=(samples[1], 2),
        poses_3=(samples[2], 2),
    )
    g.group("2 Target pose", samples[1], samples[2], poses)
    _generate(g, 3, (samples[0], 0), (samples[0], 1), (poses, 0), "truepose/many-poses")
    return g


def _photo_and_pose(g: Graph, width: int, height: int, pose_json: str) -> tuple[Node, ...]:
    """The source group (Load Image, the stock Upscale Image to the picture's size, so any
    photo comes in, Human Parse and its preview) and the OpenPose JSON target pose node.

    Returns the scaled photo, the parse node and the pose node.
    """
    photo = g.add("LoadImage", 0, 0, title="Your photo", image=SOURCE_IMAGE)
    scaled = g.add(
        "ImageScale",
        0,
        g.below(photo),
        image=(photo, 0),
        upscale_method="lanczos",
        width=width,
        height=height,
        crop="center",
    )
    parse = g.add("TruePose_HumanParse", 1, 0, image=(scaled, 0), schp_model=SCHP_LIP.name)
    parsed = g.add("PreviewImage", 1, g.below(parse), title="Body parts", images=(parse, 1))
    g.group("1 Source person", photo, scaled, parse, parsed)
    # Right of the source group and low, so that the source's links pass above it.
    pose = g.add(
        "TruePose_PoseFromOpenPoseJSON",
        2,
        440,
        json_text=pose_json,
        file="(none)",
        width=0,
        height=0,
        person_index=-1,
        coordinates="auto",
    )
    return scaled, parse, pose


def photo_pose_transfer() -> Graph:
    g = Graph(
        "truepose-photo-pose-transfer",
        "Pose transfer from your own photo. Files: put the photo in ComfyUI/input (or drop "
        "it on Load Image); put the Self-Correction Human Parsing LIP weights "
        f"({SCHP_LIP.name}, 267 MB, from {SCHP_LIP.url}) in ComfyUI/models/schp. The "
        "target pose is OpenPose JSON: paste your own, or pick a .json file from "
        "ComfyUI/input (then clear the text). To take the pose from a picture instead, "
        "run the DWPose Estimator of comfyui_controlnet_aux into TruePose Pose from Pose "
        "Detector. Check the parsing preview: every body part "
        "should have its own colour.\n" + HONEST_MODEL + " The photo is scaled to the "
        "model's 88x128.",
        models=(SCHP_LIP,),
    )
    scaled, parse, pose = _photo_and_pose(g, 88, 128, WALK_POSE_JSON)
    g.group("2 Target pose", pose)
    _generate(g, 3, (scaled, 0), (parse, 0), (pose, 0), "truepose/photo")
    return g


def reference_sd15() -> Graph:
    """Pose transfer with files artists have: any SD1.5 checkpoint, no TruePose weights."""
    g = Graph(
        "truepose-reference-sd15-openpose",
        "TruePose Reference (no training): pose transfer with any SD1.5 checkpoint and no "
        "TruePose weights. Files: an SD1.5 checkpoint in ComfyUI/models/checkpoints "
        f"({SD15_CHECKPOINT.name}, from {SD15_CHECKPOINT.url}, or any other SD1.5 "
        "checkpoint); the ControlNet 1.1 OpenPose model in ComfyUI/models/controlnet "
        f"({OPENPOSE_CONTROLNET.name}, from {OPENPOSE_CONTROLNET.url}); the "
        f"Self-Correction Human Parsing LIP weights ({SCHP_LIP.name}, 267 MB, from "
        f"{SCHP_LIP.url}) in ComfyUI/models/schp; the source photo in ComfyUI/input (or "
        "drop it on Load Image), any size: it is scaled to 528x768 (centre crop). The "
        "target pose is OpenPose "
        "JSON: paste your own, or pick a .json file from ComfyUI/input (then clear the "
        "text); swap in TruePose Pose from POSE_KEYPOINT to take it from an OpenPose or "
        "DWPose preprocessor. The ControlNet draws the pose; the reference patch lets the "
        "picture attend to the source person, leaning toward the body parts the target "
        "pose shows. Image quality of this mode on real photos has not been measured.",
        models=(SD15_CHECKPOINT, OPENPOSE_CONTROLNET, SCHP_LIP),
    )
    scaled, parse, pose = _photo_and_pose(g, 528, 768, WALK_POSE_JSON_528)
    skeleton = g.add(
        "TruePose_PoseToControlNetImage",
        2,
        g.below(pose),
        pose=(pose, 0),
        width=528,
        height=768,
    )
    g.group("2 Target pose", pose, skeleton)
    ckpt = g.add("CheckpointLoaderSimple", 3, 0, ckpt_name=SD15_CHECKPOINT.name)
    control = g.add("ControlNetLoader", 3, g.below(ckpt), control_net_name=OPENPOSE_CONTROLNET.name)
    latent = g.add("EmptyLatentImage", 3, g.below(control), width=528, height=768, batch_size=1)
    positive = g.add(
        "CLIPTextEncode",
        4,
        0,
        title="Positive prompt",
        clip=(ckpt, 1),
        text="full-body photo of a person, studio lighting, plain background",
    )
    negative = g.add(
        "CLIPTextEncode",
        4,
        g.below(positive),
        title="Negative prompt",
        clip=(ckpt, 1),
        text="blurry, deformed, extra limbs",
    )
    patch = g.add(
        "TruePose_ReferencePatch",
        5,
        0,
        model=(ckpt, 0),
        vae=(ckpt, 2),
        source_image=(scaled, 0),
        source_parsing=(parse, 0),
        target_pose=(pose, 0),
        source_mode="cached",
        sigma=0.3,
        delta=0.6,
        strength=1.0,
        start_percent=0.0,
        end_percent=1.0,
        reweight=True,
    )
    apply = g.add(
        "ControlNetApplyAdvanced",
        5,
        g.below(patch),
        positive=(positive, 0),
        negative=(negative, 0),
        control_net=(control, 0),
        image=(skeleton, 0),
        vae=(ckpt, 2),
        strength=1.0,
        start_percent=0.0,
        end_percent=1.0,
    )
    sampled = g.add(
        "KSampler",
        6,
        0,
        model=(patch, 0),
        positive=(apply, 0),
        negative=(apply, 1),
        latent_image=(latent, 0),
        seed=0,
        steps=30,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=1.0,
    )
    decoded = g.add("VAEDecode", 7, 0, samples=(sampled, 0), vae=(ckpt, 2))
    saved = g.add(
        "SaveImage",
        7,
        g.below(decoded),
        images=(decoded, 0),
        filename_prefix="truepose/reference",
    )
    g.group(
        "3 Generate",
        ckpt,
        control,
        latent,
        positive,
        negative,
        patch,
        apply,
        sampled,
        decoded,
        saved,
    )
    return g


TEMPLATES: tuple[Callable[[], Graph], ...] = (
    synthfashion_demo,
    one_source_many_poses,
    photo_pose_transfer,
    reference_sd15,
)


def render(examples: Path = EXAMPLES, api: Path = API) -> list[Path]:
    """Write every template's UI file to ``examples`` and its API twin to ``api``."""
    examples.mkdir(parents=True, exist_ok=True)
    api.mkdir(parents=True, exist_ok=True)
    written = []
    for make in TEMPLATES:
        g = make()
        ui = examples / f"{g.name}.json"
        ui.write_text(json.dumps(g.ui(), indent=2) + "\n")
        twin = api / f"{g.name}.api.json"
        twin.write_text(json.dumps(g.api(), indent=2) + "\n")
        written += [ui, twin]
    return written


if __name__ == "__main__":
    for path in render(*(Path(a) for a in sys.argv[1:3])):
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
