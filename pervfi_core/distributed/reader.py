"""Read the input frames of one segment, exactly the frames a sequential read of the clip gives there.

Frame folders: the segment's files, read by :class:`pervfi_core.video.FrameFolderReader`. Video
files: ffmpeg with the same decode as :class:`pervfi_core.video.VideoReader` (first video stream,
timestamps passed through or put on the container's slots by the pre-pass's ``filters``, rgb24),
started near the segment:

* seek: ``-ss`` to :data:`SEEK_MARGIN` seconds before the segment's first timestamp (the demuxer goes
  back to a keyframe, so decoding starts clean), then ``select`` the frames from that timestamp on;
* proof: ``showinfo`` logs the checksum of every decoded frame, which must equal the pre-pass's
  (:mod:`.scan`) for the same frame index; a mismatch (broken timestamps, an open-GOP stream that
  decodes differently after a seek) falls back to
* sequential: decode from the start and ``select`` by frame number (slower for late segments, exact).
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .scan import Scan, parse_showinfo
from .segments import Segment

logger = logging.getLogger(__name__)

SEEK_MARGIN = 2.0  # seconds decoded before the segment: covers B-frame reordering around the seek point


class SeekMismatch(Exception):
    """The seeking read did not deliver the pre-pass's frames (internal: the sequential read follows)."""


def read_segment(path, segment: Segment, scan: Scan, *, fps=None) -> Iterator[np.ndarray]:
    """uint8 (H,W,3) RGB frames ``segment.start..segment.stop`` of ``path``; InputError when the input
    ends early or fails to decode there."""
    path = Path(path)
    if path.is_dir():
        yield from _read_folder(path, segment, fps)
        return
    if scan.seekable and segment.start > 0:
        delivered = 0
        try:
            for frame in _read_video(path, segment, scan, seek=True):
                delivered += 1
                yield frame
            return
        except SeekMismatch as why:
            if delivered:  # frames already handed on cannot be taken back
                raise InputError(f"{path}: seeking to frame {segment.start} gave frames that differ from a "
                                 f"sequential read ({why}); run again with segments of the whole clip "
                                 "(--segment-frames larger than its length)") from None
            logger.info("%s: seeking to frame %d is not exact (%s); decoding from the start", path, segment.start, why)
    yield from _read_video(path, segment, scan, seek=False)


def _read_folder(path: Path, segment: Segment, fps) -> Iterator[np.ndarray]:
    from ..video import FrameFolderReader

    reader = FrameFolderReader(path, fps=fps or 25.0)
    reader.files = reader.files[segment.start:segment.stop + 1]  # natural order, as the whole-clip read
    count = 0
    for frame in reader:
        count += 1
        yield frame
    _check_count(path, segment, count)


def _check_count(path: Path, segment: Segment, count: int) -> None:
    want = segment.stop - segment.start + 1
    if count != want:
        raise InputError(f"{path}: expected frames {segment.start}..{segment.stop} ({want}) but read {count}; "
                         "the input changed or cannot be decoded there")


def _read_video(path: Path, segment: Segment, scan: Scan, *, seek: bool) -> Iterator[np.ndarray]:
    from ..video import ffmpeg_exe

    want = segment.stop - segment.start + 1
    if seek:
        start = ["-copyts", "-ss", f"{max(0.0, scan.pts_time[segment.start] - SEEK_MARGIN):.6f}"]
        select = f"select='gte(pts\\,{scan.pts[segment.start]})'"
    else:
        start, select = ["-copyts"], f"select='gte(n\\,{segment.start})'"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info", "-nostdin", *start, "-i", str(path),
           "-map", "0:V:0", "-fps_mode", "passthrough", "-vf", ",".join([*scan.filters, select, "showinfo"]),
           "-frames:v", str(want),
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    try:
        yield from _decode(cmd, path, segment, scan)
    except SeekMismatch as why:
        if seek:
            raise
        raise InputError(f"{path} changed since it was scanned ({why}); run again (a changed input is planned "
                         "afresh)") from None


def _decode(cmd: list[str], path: Path, segment: Segment, scan: Scan) -> Iterator[np.ndarray]:
    from ..video import FFmpegFrames

    count = 0
    # ffmpeg logs into a named file that this side reads through its own handle (its own file offset)
    with tempfile.NamedTemporaryFile(prefix="pervfi-seg-", suffix=".log") as log:
        # ``with``: a failed check or a consumer that stops early ends ffmpeg at once
        with FFmpegFrames(cmd, scan.width, scan.height, log, limit=segment.stop - segment.start + 1) as frames:
            for frame in frames:
                if count == 0 and scan.checksums:
                    _verify(log, scan, segment.start, 1)  # before any frame leaves: a wrong seek costs nothing
                count += 1
                yield frame
        if frames.returncode != 0:
            tail = " | ".join(_text(log).strip().splitlines()[-3:])
            raise InputError(f"ffmpeg could not decode {path} in frames {segment.start}..{segment.stop}: {tail[-400:]}")
        if scan.checksums:
            _verify(log, scan, segment.start, count)
    _check_count(path, segment, count)


def _verify(log, scan: Scan, first: int, count: int) -> None:
    """The checksums showinfo logged for the first ``count`` frames equal the pre-pass's from ``first`` on."""
    got = [c for _, _, _, c in parse_showinfo(_text(log))][:count]
    want = scan.checksums[first:first + count]
    if got != want:
        k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise SeekMismatch(f"frame {first + k}: checksum {got[k] if k < len(got) else 'missing'}, "
                           f"expected {want[k] if k < len(want) else 'none'}")


def _text(log) -> str:
    with open(log.name, "rb") as f:
        return f.read().decode(errors="replace")
