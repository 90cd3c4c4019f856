"""What an output name asks for: a video file (by its extension) or a folder of PNG frames."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi")


def output_kind(path: str | os.PathLike) -> str:
    """``"video"`` for a known video extension, ``"frames"`` for a folder (no extension)."""
    if str(path) == "-":
        raise InputError("output '-': writing to standard output is not supported; give a video file name "
                         f"({', '.join(VIDEO_EXTENSIONS)}) or a folder name for PNG frames")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix == "" or path.is_dir():
        return "frames"
    raise InputError(f"output {path}: unknown extension {suffix!r}; use a video file "
                     f"({', '.join(VIDEO_EXTENSIONS)}) or a folder name without extension for PNG frames")
