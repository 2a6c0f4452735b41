"""Model folders of the pack: ``models/truepose`` (TruePose weights) and ``models/schp`` (SCHP).

The pack's own ``truepose_core/assets`` folder (where the shipped small SynthFashion model
lives) is listed under ``truepose`` too, after ``models/truepose``.

ComfyUI lists the files of a folder name registered in ``folder_paths.folder_names_and_paths``.
A name may already exist there when a user's ``extra_model_paths.yaml`` declares it; then the
default folder and the extensions are added to that entry instead of replacing it.
"""

from __future__ import annotations

import ntpath
import os
import posixpath

from ..truepose_core.errors import CheckpointError

TRUEPOSE_FOLDER = "truepose"
SCHP_FOLDER = "schp"
MODEL_FOLDERS = (TRUEPOSE_FOLDER, SCHP_FOLDER)
#: The pack's shipped weights (truepose-synthfashion-small.safetensors).
PACK_ASSETS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "truepose_core", "assets"
)


def register_model_folders() -> None:
    """Register ``models/truepose`` (+ the pack's assets) and ``models/schp``; idempotent."""
    import folder_paths

    extensions = set(folder_paths.supported_pt_extensions)
    for name in MODEL_FOLDERS:
        default_dir = os.path.join(folder_paths.models_dir, name)
        entry = folder_paths.folder_names_and_paths.get(name)
        if entry is None:
            folder_paths.folder_names_and_paths[name] = ([default_dir], set(extensions))
            continue
        paths, known = entry
        if default_dir not in paths:
            paths.append(default_dir)
        # A new set: ``known`` may be ComfyUI's shared ``supported_pt_extensions`` object, and
        # an empty set (an entry made by ``add_model_folder_path``) would list every file.
        folder_paths.folder_names_and_paths[name] = (paths, set(known) | extensions)
    paths = folder_paths.folder_names_and_paths[TRUEPOSE_FOLDER][0]
    if PACK_ASSETS_DIR not in paths:
        paths.append(PACK_ASSETS_DIR)
    for name in MODEL_FOLDERS:
        folder_paths.filename_list_cache.pop(name, None)


def check_model_name(name: str, folder: str, what: str) -> None:
    """Refuse a model name that is not a plain path inside the ``folder`` model folders.

    Names come from the node's list (relative to a model folder) but a prompt sent over HTTP
    can carry any string. ComfyUI's ``get_full_path`` already strips ``..`` and leading
    slashes; refusing such names outright says so instead of looking up a different file.
    """
    parts = name.replace("\\", "/").split("/")
    if (
        posixpath.isabs(name)
        or ntpath.isabs(name)
        or ntpath.splitdrive(name)[0]
        or ".." in parts
        or "\0" in name
    ):
        raise CheckpointError(
            f"{what} {name!r}: not a file name inside the {folder} model folders; expected a "
            f"name from the node's list (relative to models/{folder}, no absolute path or '..')"
        )


def resolve_model_path(folder: str, name: str, what: str, expected: str) -> str:
    """Full path of ``name`` in the ``folder`` model folders, or a CheckpointError.

    V3 combos are not checked by the server, so every loader resolves its own file here.
    ``expected`` says what should be in the folder, for the error message.
    """
    import folder_paths

    if name:
        check_model_name(name, folder, what)
    path = folder_paths.get_full_path(folder, name) if name else None
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(folder))
        raise CheckpointError(
            f"{what} {name!r}: not found in the {folder} model folders ({folders}); expected "
            f"{expected} there (press R to refresh the list after adding it)"
        )
    return path
