"""Reading frames: a video file through ffmpeg, or a folder of images, one frame at a time.

Frames travel as raw 8-bit RGB through a pipe, so memory does not depend on the length of the clip.
Frames are numpy ``uint8`` arrays ``(H, W, 3)`` (RGB). What cannot be honoured exactly is said
aloud (WARNING log): a file that ends before its declared length, a variable frame rate (re-timed to
a constant rate, with the drift this costs), an alpha channel or more than 8 bits that the
pipeline does not carry.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .advice import tail
from .probe import TIMING_SCAN_SECONDS, VideoInfo, probe
from .process import Child, ffmpeg_exe

logger = logging.getLogger("pervfi_core.video")  # one logger for the package (users filter on it)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class FFmpegFrames:
    """The frames ffmpeg ``cmd`` writes to stdout as ``rawvideo rgb24``: ``uint8`` arrays (height, width, 3),
    one at a time, at most ``limit``.

    ffmpeg's stderr goes to ``log``, a file: a damaged input can log more than a pipe holds, and ffmpeg
    blocked on a full stderr pipe while we wait on stdout would hang both. ``returncode`` is ffmpeg's exit
    status once the frames are exhausted (None before); :meth:`close` (also when iteration stops early,
    or on leaving ``with``) kills an ffmpeg that is still running.
    """

    def __init__(self, cmd: list[str], width: int, height: int, log, *, limit: int | None = None):
        self.cmd, self.shape, self.log, self.limit = cmd, (height, width, 3), log, limit
        self.returncode: int | None = None
        self._proc: subprocess.Popen | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        self._proc = Child(self.cmd, stdout=subprocess.PIPE, stderr=self.log)
        nbytes, count = math.prod(self.shape), 0
        try:
            while (self.limit is None or count < self.limit) and len(buf := self._proc.stdout.read(nbytes)) == nbytes:
                count += 1
                yield np.frombuffer(buf, np.uint8).reshape(self.shape)
            self.returncode = self._proc.wait()
        finally:
            self.close()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "FFmpegFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def slot_filters(info: VideoInfo, *, fps_given: bool = False) -> list[str]:
    """The ffmpeg filters that give one frame per slot of the container's timing: where it has empty
    slots (AVI null frames, dropped frames: :attr:`VideoInfo.held_frames`), ffmpeg's fps filter puts each
    picture on its own slot and holds the previous one in the empty ones; otherwise none (timestamps
    passed through). The one rule of every reader that counts frames: :class:`VideoReader` and the Ray
    pre-pass and its segment reads (pervfi_core/distributed), so all deliver the same frames. A rate
    the caller gave (``fps_given``) times the decoded pictures as they come."""
    if info.held_frames and not fps_given:
        return [f"fps={info.fps.numerator}/{info.fps.denominator}"]
    return []


def slot_limit(info: VideoInfo, filters: list[str]) -> list[str]:
    """ffmpeg output options that go with :func:`slot_filters`: at most the slots counted (the fps filter
    may pad the last picture's duration), timestamps passed through."""
    return ["-fps_mode", "passthrough", *(["-frames:v", str(info.frame_count)] if filters else [])]


def check_frame_count(path, info: VideoInfo, frames_read: int) -> bool:
    """Whether a stream read to its end stopped well short of ``info.frame_count`` (then a WARNING names
    both counts): a cut-off file. One rule for the local reader and the Ray pre-pass."""
    expected, fps = info.frame_count, float(info.fps)
    if not expected:
        return False
    # A count estimated from the duration can be high by the audio's extra length: allow half a second.
    slack = 2 if info.frame_count_exact or info.truncated else max(2, math.ceil(0.5 * fps))
    if frames_read >= expected - slack:
        return False
    logger.warning("%s ended after %d frames (%.2f s) but declares %d frames (%.2f s): the file is probably cut "
                   "short; the output covers only the %d frames read", path, frames_read, frames_read / fps,
                   expected, expected / fps, frames_read)
    return True


class VideoReader:
    """Iterate over the frames of a video file as ``uint8`` arrays ``(H, W, 3)`` RGB, one at a time.

    ``frames_read`` counts the frames delivered; at the end of the stream ``truncated`` says whether
    it ended well short of ``info.frame_count`` (a WARNING names both counts) and :attr:`frame_count`
    becomes the true total.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.info = probe(self.path)
        self._frames: FFmpegFrames | None = None
        self.frames_read = 0
        self.finished = False  # the stream was read to its end
        self.truncated = False
        self.fps_given = False  # the caller set the input rate (open_input(fps=...)): no re-timing warning

    @property
    def frame_count(self) -> int | None:
        """The true frame count once the stream was read to its end, else ``info.frame_count``."""
        return self.frames_read if self.finished else self.info.frame_count

    def _warn(self) -> None:
        info = self.info
        if info.has_alpha:
            logger.warning("%s has an alpha channel (%s) that is not carried: the output is opaque (RGB only); "
                           "export the alpha as a separate clip to keep it", self.path, info.pixel_format)
        if info.bit_depth > 8:
            logger.warning("%s has %d bits per sample (%s): frames are interpolated and written with 8 bits",
                           self.path, info.bit_depth, info.pixel_format)
        if info.truncated:
            logger.warning("%s looks cut short (incomplete download or copy?): it declares %.2f s (about %s frames) "
                           "but its data ends earlier; only the frames present will be processed",
                           self.path, info.duration, info.frame_count)
        if info.variable_rate:
            where = "" if info.timing_complete else f" in the first {TIMING_SCAN_SECONDS:g} s"
            if self.fps_given:
                logger.warning("%s has a variable frame rate; its frames are timed at the given %g fps, so they "
                               "do not follow the source timing or its audio exactly", self.path, float(info.fps))
            else:
                logger.warning("%s has a variable frame rate: the output is re-timed to a constant %g fps (the "
                               "average rate), so frames drift up to %.2f s from their source time and the audio%s",
                               self.path, float(info.fps), info.drift, where)

    def __iter__(self) -> Iterator[np.ndarray]:
        w, h = self.info.width, self.info.height
        filters = slot_filters(self.info, fps_given=self.fps_given)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(self.path),
               "-map", "0:V:0", *(["-vf", ",".join(filters)] if filters else []),
               *slot_limit(self.info, filters), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._warn()
        self.frames_read, self.finished, self.truncated = 0, False, False
        log = tempfile.TemporaryFile()
        self._frames = FFmpegFrames(cmd, w, h, log)
        try:
            for frame in self._frames:
                self.frames_read += 1
                yield frame
            if self._frames.returncode != 0:
                raise InputError(f"ffmpeg could not decode {self.path}: {tail(log, 400)}")
            self.finished = True
            self._check_count()
        finally:
            self.close()
            log.close()

    def _check_count(self) -> None:
        self.truncated = check_frame_count(self.path, self.info, self.frames_read)

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
        self._frames = None


def _natural_key(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The images of ``folder`` in natural order (``frame2`` before ``frame10``); hidden files (macOS's
    ``._frame.png`` and ``.DS_Store``, the project's own temporary names) are not frames. Two names with
    the same number (``1.png`` and ``01.png``) have no order: :class:`InputError` names both."""
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    files.sort(key=lambda p: (_natural_key(p.name), p.name))
    seen: dict[str, Path] = {}
    for file in files:
        key = repr(_natural_key(file.stem))
        if key in seen:
            raise InputError(f"{folder}: {seen[key].name} and {file.name} carry the same frame number, so their "
                             "order is ambiguous; rename or remove one of them")
        seen[key] = file
    return files


class FrameFolderReader:
    """Iterate over the images of a folder in natural order (``frame2`` before ``frame10``)."""

    truncated = False
    finished = False

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0):
        import cv2  # noqa: F401  (fail early with a clear message when OpenCV is missing)

        self.path = Path(path)
        self.files = frame_files(self.path)
        if not self.files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {self.path}")
        first = self._read(self.files[0])
        self.info = VideoInfo(first.shape[1], first.shape[0], Fraction(fps).limit_denominator(1001),
                              len(self.files), None, frame_count_exact=True, timing_complete=True)
        self.frames_read = 0

    @property
    def frame_count(self) -> int:
        return len(self.files)

    def _read(self, file: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(file), cv2.IMREAD_COLOR)  # 8-bit BGR; grayscale/alpha converted to RGB
        if img is None:
            raise InputError(f"cannot read image {file}")
        return np.ascontiguousarray(img[:, :, ::-1])

    def __iter__(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        for file in self.files:
            img = self._read(file)
            if img.shape[:2] != (self.info.height, self.info.width):
                raise InputError(f"all frames must have the same size: {file.name} is {img.shape[1]}x"
                                 f"{img.shape[0]}, the first frame is {self.info.width}x{self.info.height}")
            self.frames_read += 1
            yield img
        self.finished = True

    def close(self) -> None:
        pass


def open_input(path: str | os.PathLike, *, fps: float | None = None):
    """A :class:`VideoReader` for a file or a :class:`FrameFolderReader` for a folder."""
    path = Path(path)
    if path.is_dir():
        return FrameFolderReader(path, fps=fps or 25.0)
    if not path.exists():
        raise InputError(f"input not found: {path} (expected a video file or a folder of frames)")
    reader = VideoReader(path)
    if fps is not None:
        reader.info = dataclasses.replace(reader.info, fps=Fraction(fps).limit_denominator(1001))
        reader.fps_given = True
    return reader

