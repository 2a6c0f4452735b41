"""ComfyUI entry point of the TruePose node pack (V3 extension API).

Importing this file does nothing: ComfyUI calls :func:`comfy_entrypoint`, which registers
the model folders and returns the extension (this ComfyUI version never calls
``ComfyExtension.on_load``). Keeping ComfyUI imports inside the function also lets tools
that import the repository root (pytest, linters) do so without ComfyUI.
"""

from __future__ import annotations

#: Frontend code ComfyUI serves with the pack: keeps saved workflows' widget values in place
#: when a node loses a widget.
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from comfy_api.latest import ComfyExtension

    from .nodes import NODE_LIST
    from .nodes.model_folders import register_model_folders

    class TruePoseExtension(ComfyExtension):
        async def get_node_list(self):
            return list(NODE_LIST)

    register_model_folders()
    return TruePoseExtension()
