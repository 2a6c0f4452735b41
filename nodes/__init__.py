"""The pack's ComfyUI nodes: the one list of node classes the extension registers."""

from __future__ import annotations

from comfy_api.latest import io

from . import (
    demo,
    fit,
    inspect,
    loader,
    parse,
    patch,
    pose,
    pose_image,
    reference,
    sampler,
    source,
)

NODE_LIST: list[type[io.ComfyNode]] = [
    *fit.NODES,
    *pose.NODES,
    *pose_image.NODES,
    *parse.NODES,
    *loader.NODES,
    *source.NODES,
    *patch.NODES,
    *reference.NODES,
    *sampler.NODES,
    *inspect.NODES,
    *demo.NODES,
]
