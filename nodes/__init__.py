"""The pack's ComfyUI nodes: the one list of node classes the extension registers."""

from __future__ import annotations

from comfy_api.latest import io

from . import parse, pose

NODE_LIST: list[type[io.ComfyNode]] = [*pose.NODES, *parse.NODES]
