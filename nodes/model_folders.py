"""Model folders of the pack: ``models/truepose`` (TruePose weights) and ``models/schp`` (SCHP).

The pack's own ``truepose_core/assets`` folder (where the shipped small SynthFashion model
lives) is listed under ``truepose`` too, after ``models/truepose``.

ComfyUI lists the files of a folder name registered in ``folder_paths.folder_names_and_paths``.
A name may already exist there when a user's ``extra_model_paths.yaml`` declares it; then the
default folder and the extensions are added to that entry instead of replacing it.
"""

from __future__ import annotations

import os

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
