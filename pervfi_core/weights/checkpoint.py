"""Checkpoint loading: resolve a name to a file, read it safely, canonicalise, verify, convert.

The package docstring (:mod:`pervfi_core.weights`) states the trust rules this module enforces.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ArchitectureMismatchError, WeightsError
from .fetch import fetch_entry, find_local, model_dirs
from .io import read_raw, sha256_file, write_safetensors
from ..registry import ARCHITECTURES, detect
from .layout import canonicalize, layout_fingerprint as _fingerprint
from .manifest import Entry, Manifest, default_manifest

logger = logging.getLogger(__name__)

META_FINGERPRINT = "pervfi_layout_fingerprint"
META_ARCH = "pervfi_architecture"
META_CONFIG = "pervfi_config"
_verified_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, per process


@dataclass
class CheckpointInfo:
    """What a checkpoint is: a descriptor returned with the weights (spandrel style)."""

    path: Path | None
    architecture: str
    config: dict[str, Any]
    fingerprint: str
    container: str = "plain"
    official: bool = False  # the layout equals a published checkpoint's layout
    manifest_id: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class LoadedCheckpoint:
    state_dict: dict[str, torch.Tensor]
    info: CheckpointInfo
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata ({} for .pth)


def layout_fingerprint(state_dict: Mapping[str, Any]) -> str:
    """Layout fingerprint of a state dict (containers and ``module.`` are canonicalised first)."""
    return _fingerprint(canonicalize(state_dict)[0])


def detect_architecture(state_dict: Mapping[str, Any]) -> str:
    """Architecture id (see :data:`pervfi_core.registry.ARCHITECTURES`) from key names; raises WeightsError if unknown."""
    return detect(canonicalize(state_dict)[0])[0]


def resolve(name_or_path: str | Path, *, download: bool = True, manifest: Manifest | None = None,
            progress=None) -> Path:
    """Local path of a checkpoint given as a path, a manifest id/alias or a file name in a model folder.

    A manifest checkpoint that is not on disk is downloaded when ``download`` (verified before it
    appears under its final name). Offline or with ``download=False``, the error names the file,
    the folders to put it in and where to get it.
    """
    manifest = manifest or default_manifest()
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    entry = manifest.get(str(name_or_path))
    if entry is not None:
        local = find_local(entry, manifest)
        if local is not None:
            return local
        return fetch_entry(entry, manifest, download=download, progress=progress,
                           verify=lambda p, e=entry: _verify_download(p, e, manifest))
    for kind in ("pervfi", "pervfi_flow"):
        for folder in model_dirs(kind):
            candidate = folder / str(name_or_path)
            if candidate.is_file():
                return candidate
    raise WeightsError(
        f"weights {str(name_or_path)!r} not found: it is not an existing file, not a file in the model "
        f"folders ({', '.join(str(d) for k in ('pervfi', 'pervfi_flow') for d in model_dirs(k))}) and not a "
        f"manifest id (known: {', '.join(manifest.ids())})"
    )


def _verify_download(path: Path, entry: Entry, manifest: Manifest) -> None:
    obj, meta = read_raw(path)
    sd, container = canonicalize(obj, source=entry.filename)
    if not entry.sha256:  # a published hash already proves the bytes; otherwise look for damage
        check_finite(sd, entry.filename)
    check_layout(sd, arch=entry.architecture, entry=entry, metadata=meta, source=entry.filename,
                 manifest=manifest)


def check_finite(sd: Mapping[str, Any], source: str) -> None:
    """WeightsError naming the tensors that hold NaN or Inf: a damaged file (a flipped disk block, a
    bad copy) that would otherwise turn every output frame black or grey without a word."""
    bad = [key for key, t in sd.items()
           if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise WeightsError(
            f"{source}: {len(bad)} tensor(s) hold NaN or Inf values ({shown}): the file is damaged "
            "(a broken download, copy or disk?). Get it again from its source, or re-export it from training."
        )


def _check_file_hash(path: Path, entry: Entry, *, by_path: bool = False) -> bool:
    """sha256 of a manifest file (full hash enforced; a file-name prefix hash only warns). Cached.

    ``by_path``: the file was given by path and only its name matches the entry; the error then says
    how to load a deliberately modified file (another name). True when the full published hash matched.
    """
    if not (entry.sha256 or entry.sha256_prefix):
        return False
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified_hashes:
        _verified_hashes[key] = sha256_file(path)
    actual = _verified_hashes[key]
    if entry.sha256 and actual != entry.sha256.lower():
        del _verified_hashes[key]
        if by_path:
            raise WeightsError(
                f"{path} is named like the published {entry.id} ({entry.filename}) but its sha256 is {actual}, "
                f"not the published {entry.sha256}: it is damaged or modified. Use the published file "
                f"(--model {entry.id}, or python -m pervfi_core weights fetch {entry.id}); to load a modified "
                f"file on purpose, give it another name."
            )
        raise WeightsError(
            f"{path} does not match the published sha256 of {entry.id}: {actual}, expected {entry.sha256}. "
            f"Delete it and fetch it again (python -m pervfi_core weights fetch {entry.id})."
        )
    if entry.sha256_prefix and not actual.startswith(entry.sha256_prefix.lower()):
        logger.warning("%s: sha256 %s does not start with %s as the file name suggests; the layout "
                       "check still applies", path.name, actual[:16], entry.sha256_prefix)
    return bool(entry.sha256)


def check_layout(sd: Mapping[str, Any], *, arch: str | None = None, entry: Entry | None = None,
                 metadata: Mapping[str, str] | None = None, source: str = "checkpoint",
                 manifest: Manifest | None = None) -> CheckpointInfo:
    """Verify a canonical state dict's layout; return what it is.

    Order: architecture (from key names) must equal ``arch`` when given, else
    :class:`ArchitectureMismatchError` naming both; the fingerprint must equal the manifest entry's
    (when loading a manifest id), else the one stored in a converted file's metadata, else one of
    the published layouts of that architecture when the hyperparameters read from the shapes are
    the published ones. Other hyperparameters (the project's own configs) are accepted and labelled
    non-official; the model's strict ``load_state_dict`` then checks them against its config.
    """
    manifest = manifest or default_manifest()
    wanted = manifest.architecture_of(arch) if arch is not None else None
    if wanted is not None and wanted not in (a.id for a in ARCHITECTURES):
        raise WeightsError(f"unknown architecture {arch!r}; expected one of {', '.join(a.id for a in ARCHITECTURES)}")
    try:
        detected, config = detect(sd)
    except WeightsError as err:
        if wanted is None:
            raise
        raise ArchitectureMismatchError(f"{source} is not a {wanted} checkpoint: {err}") from None
    if wanted is not None:
        if detected != wanted:
            raise ArchitectureMismatchError(
                f"{source} holds {detected} weights (detected from its key names), but {wanted} weights "
                f"were asked for. Choose a {wanted} checkpoint, or load this one as {detected}."
            )
    fp = _fingerprint(sd)
    info = CheckpointInfo(path=None, architecture=detected, config=config, fingerprint=fp,
                          manifest_id=entry.id if entry else None)
    published = manifest.official_layouts(detected)
    info.official = any(fp == f for _, f in published)
    stored = (metadata or {}).get(META_FINGERPRINT)
    if entry is not None and entry.layout_fingerprint:
        expected, what = entry.layout_fingerprint, f"the published layout of {entry.id}"
    elif stored:
        expected, what = stored, "the fingerprint stored in the file's metadata (was it modified?)"
    elif config and any(json.loads(json.dumps(config)) == c for c, _ in published) and not info.official:  # tuples as lists; a fixed layout (no config) is left to the strict load
        expected, what = published[0][1], f"the published {detected} layout (same hyperparameters)"
    else:
        expected, what = fp, ""
    if not info.official:
        info.notes.append(f"not a published {detected} layout (hyperparameters {config})")
    if fp != expected:
        raise WeightsError(
            f"{source}: the {detected} weights have layout {fp[:20]}..., not {what} ({expected[:20]}...): "
            f"some tensors are missing, extra, renamed or of another shape (hyperparameters read: {config})"
        )
    return info


def load(name_or_path: str | Path, *, arch: str | None = None, download: bool = True,
         manifest: Manifest | None = None, progress=None) -> LoadedCheckpoint:
    """Resolve, read safely, canonicalise and layout-check a checkpoint; weights + descriptor.

    A file whose sha256 the manifest pins (by id, or by its file name when given by path) must match
    it; any other file is refused when a float tensor holds NaN or Inf (:func:`check_finite`).
    """
    manifest = manifest or default_manifest()
    path = resolve(name_or_path, download=download, manifest=manifest, progress=progress)
    entry = None if Path(name_or_path).expanduser().is_file() else manifest.get(str(name_or_path))
    verified = False
    if entry is not None:
        verified = _check_file_hash(path, entry)
        arch = arch or entry.architecture  # a manifest id says what the file must be
    else:
        # A published name given by path: the bytes must be the published ones (renamed files are the user's own).
        for named in manifest.named(path.name):
            verified = _check_file_hash(path, named, by_path=True) or verified
    obj, meta = read_raw(path)
    sd, container = canonicalize(obj, source=path.name)
    if not verified:
        check_finite(sd, str(path))
    info = check_layout(sd, arch=arch, entry=entry, metadata=meta, source=path.name, manifest=manifest)
    info.path, info.container = path, container
    return LoadedCheckpoint(sd, info, dict(meta or {}))


def load_state_dict(name_or_path: str | Path, *, arch: str | None = None, download: bool = True,
                    manifest: Manifest | None = None) -> dict[str, torch.Tensor]:
    """Canonical (no ``module.``, unwrapped), layout-verified ``{key: tensor}`` on the CPU."""
    return load(name_or_path, arch=arch, download=download, manifest=manifest).state_dict


def inspect(path: str | Path, *, manifest: Manifest | None = None) -> CheckpointInfo:
    """Descriptor of a local checkpoint file (never downloads); raises on unsafe or broken files."""
    return load(path, download=False, manifest=manifest).info


def convert(path: str | Path, out: str | Path | None = None, *, arch: str | None = None,
            manifest: Manifest | None = None) -> Path:
    """Write a checkpoint as ``.safetensors`` (default: beside it) with its layout in the metadata.

    Metadata keys: ``pervfi_layout_fingerprint``, ``pervfi_architecture``, ``pervfi_config`` (JSON),
    ``pervfi_source`` (original file name), ``pervfi_container``. Aliased tensors (RAFT's
    ``norm3``/``downsample.1``) are stored as equal copies.
    """
    loaded = load(path, arch=arch, download=False, manifest=manifest)
    src = loaded.info.path
    dest = Path(out) if out is not None else src.with_suffix(".safetensors")
    if dest.resolve() == src.resolve():
        raise WeightsError(f"convert: the output {dest} would overwrite its input; pass another --out")
    meta = {
        META_FINGERPRINT: loaded.info.fingerprint,
        META_ARCH: loaded.info.architecture,
        META_CONFIG: json.dumps(loaded.info.config, sort_keys=True),
        "pervfi_source": src.name,
        "pervfi_container": loaded.info.container,
        "format": "pt",
    }
    return write_safetensors(loaded.state_dict, dest, meta)
