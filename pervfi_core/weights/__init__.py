"""Weights you can trust: find, download, verify, load and convert checkpoints.

Public API (agreed with the other modules)::

    from pervfi_core import weights
    weights.resolve("pervfi-v00")                  # manifest id, file name in a model folder, or path -> Path
    sd = weights.load_state_dict("raft-sintel", arch="raft")   # canonical, layout-verified state dict
    weights.detect_architecture(sd)                # "raft"
    weights.layout_fingerprint(sd)                 # "lf1:..."
    weights.convert("v00.pth")                     # -> v00.safetensors with the fingerprint in its metadata

Trust rules: ``.pth`` files are read only with ``torch.load(weights_only=True)`` (code in a pickle
is refused with :class:`UnsafeCheckpointError`, never run); a download appears under its final name
only after its sha256 (where the manifest has one) and its layout fingerprint were checked; every
load checks the layout, whether or not a file hash is known.

Model folders. Generators (kind ``"pervfi"``) and motion estimators (``"pervfi_flow"``) are looked
up in the folders given to :func:`register_model_dirs`, then in ``pervfi_core.cache.cache_dir(kind)``
(``$PERVFI_HOME/<kind>``). Downloads go to the first registered folder, else the cache. In
ComfyUI, ``nodes/comfy.py`` does (whenever a loader lists its choices)::

    folder_paths.add_model_folder_path("pervfi", os.path.join(folder_paths.models_dir, "pervfi"))
    folder_paths.add_model_folder_path("pervfi_flow", os.path.join(folder_paths.models_dir, "pervfi_flow"))
    weights.register_model_dirs("pervfi", folder_paths.get_folder_paths("pervfi"))
    weights.register_model_dirs("pervfi_flow", folder_paths.get_folder_paths("pervfi_flow"))

and fills loader dropdowns with ``weights.list_local(kind) + weights.list_downloadable(kind)``.
"""
from .checkpoint import (
    META_ARCH,
    META_CONFIG,
    META_FINGERPRINT,
    CheckpointInfo,
    LoadedCheckpoint,
    check_layout,
    convert,
    detect_architecture,
    inspect,
    layout_fingerprint,
    load,
    load_state_dict,
    resolve,
)
from .fetch import clear_model_dirs, find_local, list_downloadable, list_local, model_dirs, register_model_dirs
from ..registry import ARCHITECTURES, detect
from .layout import canonicalize
from .manifest import KINDS, Entry, Manifest, default_manifest

__all__ = [
    "ARCHITECTURES", "KINDS", "META_ARCH", "META_CONFIG", "META_FINGERPRINT", "CheckpointInfo", "Entry",
    "LoadedCheckpoint", "Manifest", "canonicalize", "check_layout", "clear_model_dirs", "convert", "default_manifest",
    "detect", "detect_architecture", "find_local", "inspect", "layout_fingerprint", "list_downloadable", "list_local",
    "load", "load_state_dict", "model_dirs", "register_model_dirs", "resolve",
]
