"""The pre-pass over an input: frame count, scene cuts, and where each frame is (for seeking).

One decode of the whole input, cheap next to interpolating it: ffmpeg's ``showinfo`` filter logs
each decoded frame's timestamp and checksum, and a copy at most :data:`SCAN_WIDTH` pixels wide goes
through :func:`pervfi_core.pipeline.scenes.cut_scores`. The timestamps let a worker seek near its
segment instead of decoding the clip from the start; the checksums prove that it landed on exactly
the frames a sequential read gives (:mod:`.reader`). Frame folders need neither.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

SCAN_WIDTH = 128  # the scene rule reduces frames to this width anyway (pipeline/scenes.py)
_SCORE_BATCH = 64
logger = logging.getLogger(__name__)
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(\S+).*?\bchecksum:([0-9A-Fa-f]+)")


@dataclass
class Scan:
    """What the pre-pass learnt. ``pts``/``checksums``: per frame, for video files (empty for folders);
    ``seekable``: timestamps strictly increase, so a timestamp names one frame (not so where ``filters``
    hold pictures over empty slots: their timestamps are the filter's, not the file's)."""

    n_frames: int
    width: int
    height: int
    fps: Fraction
    cuts: list[int] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)
    pts_time: list[float] = field(default_factory=list)
    checksums: list[str] = field(default_factory=list)
    seekable: bool = False
    audio_codec: str | None = None
    filters: list[str] = field(default_factory=list)  # video.slot_filters: what puts frames on their slots

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Scan":
        return cls(**{**d, "fps": Fraction(d["fps"])})


def parse_showinfo(text: str) -> list[tuple[int, int, float, str]]:
    """``(n, pts, pts_time, checksum)`` of every frame ffmpeg's showinfo filter logged in ``text``."""
    return [(int(m.group(1)), int(m.group(2)), float(m.group(3)), m.group(4).upper()) for m in _SHOWINFO.finditer(text)]


def _scores(small: list[np.ndarray]) -> list[float]:
    x = torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float() / 255.0
    from ..pipeline.scenes import cut_scores

    return cut_scores(x[:-1], x[1:]).tolist()


def scan_input(path, *, fps=None, threshold: float) -> Scan:
    """Decode ``path`` (video file or frame folder) once; ``threshold`` marks the cuts. InputError when
    it cannot be read or has fewer than 2 frames."""
    from ..video import open_input

    from ..video.read import slot_filters

    reader = open_input(path, fps=fps)
    info = reader.info
    scan = Scan(0, info.width, info.height, info.fps, audio_codec=info.audio_codec)
    if Path(path).is_dir():
        frames = (f if f.shape[1] <= SCAN_WIDTH else _shrink(f) for f in reader)
    else:
        reader.close()  # probed; the pre-pass runs its own ffmpeg (timestamps, checksums, small frames)
        scan.filters = slot_filters(info, fps_given=reader.fps_given)  # the frames a local run reads
        frames = _scan_video(Path(path), scan, info)
    small, cuts, tail = [], [], None
    for frame in frames:
        small.append(frame)
        scan.n_frames += 1
        if len(small) == _SCORE_BATCH:
            cuts += _cuts(small, scan.n_frames, threshold, tail)
            tail, small = small[-1], []
    cuts += _cuts(small, scan.n_frames, threshold, tail)
    scan.cuts = cuts
    if scan.n_frames < 2:
        raise InputError(f"{path}: need at least 2 frames to interpolate, found {scan.n_frames}")
    _warn(path, info, scan.n_frames)
    if scan.pts and not scan.filters:
        scan.seekable = len(scan.pts) == scan.n_frames and all(a < b for a, b in zip(scan.pts, scan.pts[1:]))
    return scan


def _warn(path, info, frames: int) -> None:
    """Say what a single-process run would say about the input's timing (pervfi_core/video/read.py)."""
    from ..video.read import check_frame_count, warn_dropped

    if not Path(path).is_dir():  # a folder's reader has said it as it read
        warn_dropped(path, info)  # segments travel as 8-bit RGB
        check_frame_count(path, info, frames)
    if info.variable_rate:
        logger.warning("%s has a variable frame rate: the output is re-timed to a constant %g fps", path,
                       float(info.fps))


def _cuts(small: list, seen: int, threshold: float, tail) -> list[int]:
    """Cut pair indices among ``small`` (the last ``len(small)`` frames of ``seen``; ``tail``: the frame before)."""
    frames = ([tail] if tail is not None else []) + small
    if not threshold or len(frames) < 2:
        return []
    first = seen - len(frames)
    return [first + k for k, s in enumerate(_scores(frames)) if s > threshold]


def _shrink(frame: np.ndarray) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (SCAN_WIDTH, max(1, round(h * SCAN_WIDTH / w))), interpolation=cv2.INTER_AREA)


def _scan_video(path: Path, scan: Scan, info):
    """Yield small RGB frames of a video file, the frames a local run reads (``scan.filters``); fills
    ``scan.pts``/``pts_time``/``checksums`` at the end."""
    from ..video import FFmpegFrames, ffmpeg_exe
    from ..video.read import slot_limit

    w = SCAN_WIDTH if scan.width > SCAN_WIDTH else scan.width
    h = max(1, round(scan.height * w / scan.width))
    # -copyts: the timestamps the segment reader's seek sees; showinfo before scaling: the decoded frame
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info", "-nostdin", "-copyts", "-i", str(path),
           "-map", "0:V:0", *slot_limit(info, scan.filters),
           "-vf", ",".join([*scan.filters, "showinfo", f"scale={w}:{h}:flags=area"]), "-f", "rawvideo", "-pix_fmt",
           "rgb24", "-"]
    with tempfile.TemporaryFile() as log:
        frames = FFmpegFrames(cmd, w, h, log)
        yield from frames
        log.seek(0)
        text = log.read().decode(errors="replace")
    if frames.returncode != 0:
        tail = " | ".join(line for line in text.strip().splitlines()[-3:])
        raise InputError(f"ffmpeg could not decode {path} (frame {scan.n_frames} onwards): {tail[-400:]}")
    frames = parse_showinfo(text)
    scan.pts = [p for _, p, _, _ in frames]
    scan.pts_time = [t for _, _, t, _ in frames]
    scan.checksums = [c for _, _, _, c in frames]


def input_identity(path) -> dict:
    """Path, size and modification time of an input (a folder: of its newest entry), for the job manifest."""
    p = Path(path).resolve()
    st = p.stat()
    if p.is_dir():
        entries = [e.stat() for e in os.scandir(p) if e.is_file()]
        return {"path": str(p), "size": sum(e.st_size for e in entries), "files": len(entries),
                "mtime_ns": max([st.st_mtime_ns, *(e.st_mtime_ns for e in entries)])}
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
