"""Write the example workflows: each graph once, as a UI workflow and as its API-format twin.

Run ``python workflows/build_workflows.py`` after changing a graph or a node's inputs; it
rewrites ``workflows/*.json`` and copies the UI workflows to ``example_workflows/``, where
ComfyUI's template browser lists them. ``tests/test_workflows.py`` checks every file against
a running ComfyUI (node types, inputs, widget values, loading in the browser).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "example_workflows"

SMALL_MODEL = "truepose-synthfashion-small.safetensors"
FULL_MODEL = "truepose-sd15-deepfashion-512x352.safetensors"
SD15_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
CLIP_VISION = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
SCHP_LIP = "exp-schp-201908261155-lip.pth"
SOURCE_IMAGE = "truepose_source.png"
REFERENCE_IMAGE = "truepose_reference.png"

# DeepFashion keypoint rows (176x256 frame, y then x, -1 = missing).
WALK_Y = "[30, 58, 58, 98, 134, 57, 99, 136, 140, 196, 240, 139, 195, 241, 25, 25, 29, -1]"
WALK_X = "[88, 88, 66, 60, 58, 110, 116, 118, 74, 72, 70, 102, 104, 106, 84, 93, 78, -1]"

#: node type -> (socket inputs (name, type), widget names in order, outputs (name, type)).
#: A widget name ending in "+control" is followed by its control_after_generate value;
#: "image+upload" is LoadImage's file widget followed by its upload button's value.
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
            ("clip_vision", "CLIP_VISION"),
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
        ["sigma", "delta", "strength"],
        [("MODEL", "MODEL")],
    ),
    "TruePose_TrueSampler": (
        [
            ("model", "MODEL"),
            ("truepose", "TRUEPOSE"),
            ("source", "TRUEPOSE_SOURCE"),
            ("latent", "LATENT"),
        ],
        [
            "seed+control",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "denoise",
            "width",
            "height",
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
    "TruePose_PoseFromDeepFashion": (
        [],
        ["keypoints_y", "keypoints_x", "width", "height"],
        [("pose", "TRUEPOSE_POSE"), ("preview", "IMAGE")],
    ),
    "TruePose_PoseBatch": (
        [
            ("poses_1", "TRUEPOSE_POSE"),
            ("poses_2", "TRUEPOSE_POSE"),
            ("poses_3", "TRUEPOSE_POSE"),
            ("poses_4", "TRUEPOSE_POSE"),
        ],
        [],
        [("pose", "TRUEPOSE_POSE"), ("preview", "IMAGE")],
    ),
    "TruePose_HumanParse": (
        [("image", "IMAGE")],
        ["schp_model"],
        [("parsing", "TRUEPOSE_PARSING"), ("preview", "IMAGE"), ("person_mask", "MASK")],
    ),
    "LoadImage": ([], ["image+upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "VAELoader": ([], ["vae_name"], [("VAE", "VAE")]),
    "CLIPVisionLoader": ([], ["clip_name"], [("CLIP_VISION", "CLIP_VISION")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [], [("LATENT", "LATENT")]),
    "SetLatentNoiseMask": ([("samples", "LATENT"), ("mask", "MASK")], [], [("LATENT", "LATENT")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "CheckpointLoaderSimple": (
        [],
        ["ckpt_name"],
        [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    ),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetLoader": ([], ["control_net_name"], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": (
        [
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("control_net", "CONTROL_NET"),
            ("image", "IMAGE"),
            ("vae", "VAE"),
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
    "TruePose_PoseFromOpenPoseJSON": (
        [],
        ["json_text", "file", "width", "height"],
        [("pose", "TRUEPOSE_POSE"), ("preview", "IMAGE")],
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
}


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (node id, output slot)
    title: str | None = None


@dataclass
class Graph:
    name: str
    note: str
    nodes: list[Node] = field(default_factory=list)
    note_pos: tuple[int, int] = (60, -250)
    note_size: tuple[int, int] = (1020, 200)
    view: dict = field(default_factory=lambda: {"scale": 0.65, "offset": [-40, 280]})

    def add(self, type_: str, col: int, row: int, title=None, **inputs) -> Node:
        sockets = {name for name, _ in SPECS[type_][0]}
        node = Node(len(self.nodes) + 1, type_, (60 + col * 340, 80 + row * 380), title=title)
        for key, value in inputs.items():
            if key in sockets:
                node.links[key] = (value[0].id, value[1])
            else:
                node.widgets[key] = value
        self.nodes.append(node)
        return node

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

    def ui(self) -> dict:
        links = []
        out_links: dict[tuple[int, int], list[int]] = {}
        in_links: dict[tuple[int, str], int] = {}
        for node in self.nodes:
            sockets = dict(SPECS[node.type][0])
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
            for name, type_ in socket_specs:
                link = in_links.get((node.id, name))
                if link is None and name in ("clip_vision", "latent", "poses_3", "poses_4"):
                    continue
                inputs.append({"name": name, "type": type_, "link": link})
                if link is not None:
                    by_link[link][4] = len(inputs) - 1
            values = []
            for widget in widget_names:
                name = widget.split("+")[0]
                values.append(node.widgets[name])
                if widget.endswith("+control"):
                    values.append("fixed")
                elif widget.endswith("+upload"):
                    values.append("image")
            entry = {
                "id": node.id,
                "type": node.type,
                "pos": list(node.pos),
                "size": [320, 46 + 22 * max(len(inputs), len(outputs)) + 24 * len(values)],
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
        note_id = len(self.nodes) + 1
        nodes.append(
            {
                "id": note_id,
                "type": "Note",
                "pos": list(self.note_pos),
                "size": list(self.note_size),
                "flags": {},
                "order": len(nodes),
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "properties": {},
                "widgets_values": [self.note],
            }
        )
        return {
            "last_node_id": note_id,
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"ds": dict(self.view)},
            "version": 0.4,
        }


def _decode_and_save(g: Graph, latent, vae, prefix: str, col: int) -> Node:
    image = g.add("VAEDecode", col, 0, samples=(latent, 0), vae=vae)
    g.add("SaveImage", col, 1, images=(image, 0), filename_prefix=prefix)
    return image


def _sampler(g, model, truepose, source, col, row=0, steps=35, latent=None):
    inputs = {
        "model": (model, 0),
        "truepose": (truepose, 1),
        "source": (source, 0),
        "seed": 0,
        "steps": steps,
        "cfg": 3.5,
        "sampler_name": "ddim",
        "scheduler": "ddim_uniform",
        "denoise": 1.0,
        "width": 0,
        "height": 0,
        "batch_size": 0,
    }
    if latent is not None:
        inputs["latent"] = (latent, 0)
    return g.add("TruePose_TrueSampler", col, row, **inputs)


def _patch(g, loader, source, poses, col, row=0):
    return g.add(
        "TruePose_HPFAPatchModel",
        col,
        row,
        model=(loader, 0),
        truepose=(loader, 1),
        source=(source, 0),
        target_pose=poses,
        sigma=0.3,
        delta=0.6,
        strength=1.0,
    )


FULL_SIZE_FILES = (
    f"Files: models/truepose/{FULL_MODEL} (a TruePose checkpoint trained from Stable "
    f"Diffusion 1.5 on DeepFashion at 512x352); models/vae/{SD15_VAE} (SD1.5's VAE); "
    f"models/clip_vision/{CLIP_VISION} (open_clip ViT-H-14 image encoder, 1024-d); "
    f"models/schp/{SCHP_LIP} (Self-Correction Human Parsing, LIP labels); "
    f"input/{SOURCE_IMAGE} (the source person, 352x512 or any multiple of 8)."
)


def pose_transfer_full() -> Graph:
    g = Graph(
        "truepose-pose-transfer-sd15",
        "TruePose pose transfer with full-size weights.\n" + FULL_SIZE_FILES + "\nThe "
        "target pose is a DeepFashion keypoint row; swap in TruePose Pose from POSE_KEYPOINT "
        "to use an OpenPose/DWPose preprocessor instead.",
    )
    loader = g.add("TruePose_LoadTruePose", 0, 0, checkpoint=FULL_MODEL)
    vae = g.add("VAELoader", 0, 1, vae_name=SD15_VAE)
    clip = g.add("CLIPVisionLoader", 0, 2, clip_name=CLIP_VISION)
    image = g.add("LoadImage", 1, 0, image=SOURCE_IMAGE)
    parse = g.add("TruePose_HumanParse", 1, 1, image=(image, 0), schp_model=SCHP_LIP)
    pose = g.add(
        "TruePose_PoseFromDeepFashion",
        1,
        2,
        keypoints_y=WALK_Y,
        keypoints_x=WALK_X,
        width=352,
        height=512,
    )
    source = g.add(
        "TruePose_SourceNetEncode",
        2,
        0,
        truepose=(loader, 1),
        vae=(vae, 0),
        source_image=(image, 0),
        source_parsing=(parse, 0),
        clip_vision=(clip, 0),
    )
    patched = _patch(g, loader, source, (pose, 0), 2, 1)
    latent = _sampler(g, patched, loader, source, 3)
    _decode_and_save(g, latent, (vae, 0), "truepose/pose-transfer", 4)
    return g


def batch_of_poses() -> Graph:
    g = Graph(
        "truepose-one-source-many-poses",
        "One source person, three target poses: the SourceNet runs once and the sampler "
        "makes one image per pose (batch_size 0 = one per pose). Runs with the pack's small "
        f"SynthFashion model ({SMALL_MODEL}, shipped in truepose_core/assets); the poses "
        "are the target poses of SynthFashion test pairs 0, 1 and 2.",
    )
    loader = g.add("TruePose_LoadTruePose", 0, 0, checkpoint=SMALL_MODEL)
    samples = [
        g.add("TruePose_SynthFashionSample", 0, 1 + i, index=i, data_seed=0, height=128, width=88)
        for i in range(3)
    ]
    poses = g.add(
        "TruePose_PoseBatch",
        1,
        1,
        poses_1=(samples[0], 2),
        poses_2=(samples[1], 2),
        poses_3=(samples[2], 2),
    )
    source = g.add(
        "TruePose_SourceNetEncode",
        1,
        0,
        truepose=(loader, 1),
        vae=(loader, 2),
        source_image=(samples[0], 0),
        source_parsing=(samples[0], 1),
    )
    patched = _patch(g, loader, source, (poses, 0), 2, 0)
    latent = _sampler(g, patched, loader, source, 3)
    _decode_and_save(g, latent, (loader, 2), "truepose/many-poses", 4)
    g.add("PreviewImage", 2, 1, images=(poses, 1))
    return g


def style_transfer() -> Graph:
    g = Graph(
        "truepose-style-transfer-sd15",
        "Style transfer (paper 5.4): the reference person keeps everything outside the mask; "
        "inside it, the source person's garment is generated in the reference's pose. Paint "
        f"the region to replace on input/{REFERENCE_IMAGE} with the mask editor (its MASK "
        "output), and give the reference's pose as a DeepFashion row.\n" + FULL_SIZE_FILES,
    )
    loader = g.add("TruePose_LoadTruePose", 0, 0, checkpoint=FULL_MODEL)
    vae = g.add("VAELoader", 0, 1, vae_name=SD15_VAE)
    clip = g.add("CLIPVisionLoader", 0, 2, clip_name=CLIP_VISION)
    image = g.add("LoadImage", 1, 0, image=SOURCE_IMAGE, title="Source person")
    parse = g.add("TruePose_HumanParse", 1, 1, image=(image, 0), schp_model=SCHP_LIP)
    reference = g.add("LoadImage", 1, 2, image=REFERENCE_IMAGE, title="Reference (paint mask)")
    pose = g.add(
        "TruePose_PoseFromDeepFashion",
        2,
        2,
        keypoints_y=WALK_Y,
        keypoints_x=WALK_X,
        width=352,
        height=512,
        title="Reference pose",
    )
    source = g.add(
        "TruePose_SourceNetEncode",
        2,
        0,
        truepose=(loader, 1),
        vae=(vae, 0),
        source_image=(image, 0),
        source_parsing=(parse, 0),
        clip_vision=(clip, 0),
    )
    encoded = g.add("VAEEncode", 2, 1, pixels=(reference, 0), vae=(vae, 0))
    masked = g.add("SetLatentNoiseMask", 3, 1, samples=(encoded, 0), mask=(reference, 1))
    patched = _patch(g, loader, source, (pose, 0), 3, 0)
    latent = _sampler(g, patched, loader, source, 4, latent=masked)
    _decode_and_save(g, latent, (vae, 0), "truepose/style-transfer", 5)
    return g


def synthfashion_demo(steps: int = 35) -> Graph:
    g = Graph(
        "truepose-synthfashion-demo",
        f"TruePose demo with no input files: the pack's small model ({SMALL_MODEL}, in "
        "truepose_core/assets) on a SynthFashion test pair (a procedural person drawn in two "
        "poses). Change index for another pair. The output is compared with the ground truth "
        "(SSIM/PSNR), and the attention map shows which source regions HPFA uses.",
        note_pos=(60, 840),
        note_size=(660, 150),
        view={"scale": 0.65, "offset": [-40, 30]},
    )
    loader = g.add("TruePose_LoadTruePose", 0, 0, checkpoint=SMALL_MODEL)
    sample = g.add("TruePose_SynthFashionSample", 0, 1, index=0, data_seed=0, height=128, width=88)
    source = g.add(
        "TruePose_SourceNetEncode",
        1,
        0,
        truepose=(loader, 1),
        vae=(loader, 2),
        source_image=(sample, 0),
        source_parsing=(sample, 1),
    )
    patched = _patch(g, loader, source, (sample, 2), 1, 1)
    latent = _sampler(g, patched, loader, source, 2, steps=steps)
    image = _decode_and_save(g, latent, (loader, 2), "truepose/synthfashion", 3)
    g.add("TruePose_Metrics", 4, 0, pred=(image, 0), ground_truth=(sample, 3))
    g.add("PreviewImage", 4, 1, images=(sample, 3), title="Ground truth")
    attention = g.add(
        "TruePose_AttentionMap",
        2,
        2,
        truepose=(loader, 1),
        source=(source, 0),
        target_pose=(sample, 2),
        source_image=(sample, 0),
        sigma=0.3,
        delta=0.6,
        opacity=0.6,
    )
    g.add("PreviewImage", 3, 2, images=(attention, 0), title="HPFA attention on the source")
    return g


SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
OPENPOSE_CONTROLNET = "control_v11p_sd15_openpose.pth"
#: The walking pose on a 528x768 canvas (DeepFashion's row scaled by 3), as OpenPose JSON.
WALK_OPENPOSE_JSON = (
    '{"people": [{"pose_keypoints_2d": [264, 90, 1, 264, 174, 1, 198, 174, 1, 180, 294, 1, '
    "174, 402, 1, 330, 171, 1, 348, 297, 1, 354, 408, 1, 222, 420, 1, 216, 588, 1, 210, 720, "
    "1, 306, 417, 1, 312, 585, 1, 318, 723, 1, 252, 75, 1, 279, 75, 1, 234, 87, 1, 0, 0, 0]}], "
    '"canvas_width": 528, "canvas_height": 768}'
)


def reference_sd15() -> Graph:
    """Pose transfer with files artists have: no TruePose checkpoint, no training."""
    g = Graph(
        "truepose-reference-sd15-openpose",
        "TruePose Reference (no training): pose transfer with any SD1.5 checkpoint.\nFiles: "
        f"models/checkpoints/{SD15_CHECKPOINT} (or any SD1.5 checkpoint); "
        f"models/controlnet/{OPENPOSE_CONTROLNET} (ControlNet 1.1 OpenPose); "
        f"models/schp/{SCHP_LIP} (Self-Correction Human Parsing, LIP labels); "
        f"input/{SOURCE_IMAGE} (the source person; sides multiples of 8).\n"
        "The target pose is OpenPose JSON (paste it, or pick a .json file in input/); swap in "
        "TruePose Pose from POSE_KEYPOINT to take it from an OpenPose/DWPose preprocessor. "
        "The ControlNet draws the pose; the reference patch lets the picture attend to the "
        "source person, leaning toward the parsing regions the target pose shows. Image "
        "quality of this mode on real photos has not been measured.",
    )
    ckpt = g.add("CheckpointLoaderSimple", 0, 0, ckpt_name=SD15_CHECKPOINT)
    control = g.add("ControlNetLoader", 0, 1, control_net_name=OPENPOSE_CONTROLNET)
    image = g.add("LoadImage", 1, 0, image=SOURCE_IMAGE)
    parse = g.add("TruePose_HumanParse", 1, 1, image=(image, 0), schp_model=SCHP_LIP)
    pose = g.add(
        "TruePose_PoseFromOpenPoseJSON",
        2,
        0,
        json_text=WALK_OPENPOSE_JSON,
        file="(none)",
        width=0,
        height=0,
    )
    skeleton = g.add("TruePose_PoseToControlNetImage", 2, 1, pose=(pose, 0), width=528, height=768)
    positive = g.add(
        "CLIPTextEncode",
        3,
        0,
        title="Positive prompt",
        clip=(ckpt, 1),
        text="full-body photo of a person, studio lighting, plain background",
    )
    negative = g.add(
        "CLIPTextEncode",
        3,
        1,
        title="Negative prompt",
        clip=(ckpt, 1),
        text="blurry, deformed, extra limbs",
    )
    apply = g.add(
        "ControlNetApplyAdvanced",
        4,
        0,
        positive=(positive, 0),
        negative=(negative, 0),
        control_net=(control, 0),
        image=(skeleton, 0),
        vae=(ckpt, 2),
        strength=1.0,
        start_percent=0.0,
        end_percent=1.0,
    )
    patch = g.add(
        "TruePose_ReferencePatch",
        4,
        1,
        model=(ckpt, 0),
        vae=(ckpt, 2),
        source_image=(image, 0),
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
    latent = g.add("EmptyLatentImage", 5, 0, width=528, height=768, batch_size=1)
    sampled = g.add(
        "KSampler",
        5,
        1,
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
    _decode_and_save(g, sampled, (ckpt, 2), "truepose-reference", 6)
    return g


GRAPHS = (pose_transfer_full, batch_of_poses, style_transfer, synthfashion_demo, reference_sd15)


def main() -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for make in GRAPHS:
        g = make()
        ui = HERE / f"{g.name}.json"
        ui.write_text(json.dumps(g.ui(), indent=2) + "\n")
        (HERE / f"{g.name}.api.json").write_text(json.dumps(g.api(), indent=2) + "\n")
        shutil.copyfile(ui, EXAMPLES / ui.name)


if __name__ == "__main__":
    main()
