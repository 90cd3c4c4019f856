"""Reading frames: a video file through ffmpeg, or a folder of images, one frame at a time.

Frames travel as raw pixels through a pipe, so memory does not depend on the length of the clip.
Frames are numpy ``uint8`` arrays ``(H, W, 3)`` (RGB), or, where a reader's ``format`` asks for it
(:mod:`.carry`: the output can hold it), ``(H, W, 4)`` RGBA and/or ``uint16``. What cannot be honoured
exactly is said aloud (WARNING log): a file that ends before its declared length, a variable frame
rate (re-timed to a constant rate, with the drift this costs), an alpha channel or more than 8 bits
that the frames do not carry.
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
from .carry import RGB8, FrameFormat
from .probe import TIMING_SCAN_SECONDS, VideoInfo, probe
from .process import Child, ffmpeg_exe

logger = logging.getLogger("pervfi_core.video")  # one logger for the package (users filter on it)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class FFmpegFrames:
    """The frames ffmpeg ``cmd`` writes to stdout as ``rawvideo`` of ``fmt`` (default ``rgb24``): arrays
    (height, width, channels) of its dtype, one at a time, at most ``limit``.

    ffmpeg's stderr goes to ``log``, a file: a damaged input can log more than a pipe holds, and ffmpeg
    blocked on a full stderr pipe while we wait on stdout would hang both. ``returncode`` is ffmpeg's exit
    status once the frames are exhausted (None before); :meth:`close` (also when iteration stops early,
    or on leaving ``with``) kills an ffmpeg that is still running.
    """

    def __init__(self, cmd: list[str], width: int, height: int, log, *, limit: int | None = None,
                 fmt: FrameFormat = RGB8):
        self.cmd, self.shape, self.log, self.limit = cmd, (height, width, fmt.channels), log, limit
        self.dtype = fmt.dtype
        self.returncode: int | None = None
        self._proc: subprocess.Popen | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        self._proc = Child(self.cmd, stdout=subprocess.PIPE, stderr=self.log)
        nbytes, count = math.prod(self.shape) * self.dtype.itemsize, 0
        try:
            while (self.limit is None or count < self.limit) and len(buf := self._proc.stdout.read(nbytes)) == nbytes:
                count += 1
                yield np.frombuffer(buf, self.dtype).reshape(self.shape)
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
    """Iterate over the frames of a video file as ``uint8`` arrays ``(H, W, 3)`` RGB, one at a time
    (``format``, set before iterating: RGBA and/or ``uint16`` instead, :mod:`.carry`).

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
        self.format = RGB8  # what the frames carry (carry.carried: what the output can hold)

    @property
    def frame_count(self) -> int | None:
        """The true frame count once the stream was read to its end, else ``info.frame_count``."""
        return self.frames_read if self.finished else self.info.frame_count

    def _warn(self) -> None:
        info = self.info
        warn_dropped(self.path, info, self.format)
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
               *slot_limit(self.info, filters), "-f", "rawvideo", "-pix_fmt", self.format.rawvideo, "-"]
        self._warn()
        self.frames_read, self.finished, self.truncated = 0, False, False
        log = tempfile.TemporaryFile()
        self._frames = FFmpegFrames(cmd, w, h, log, fmt=self.format)
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


def warn_dropped(path, info: VideoInfo, fmt: FrameFormat = RGB8) -> None:
    """One WARNING line for each thing of the input the frames of ``fmt`` do not carry (alpha, depth)."""
    if info.has_alpha and not fmt.alpha:
        logger.warning("%s has an alpha channel (%s) that is not carried: the output is opaque (RGB only); write "
                       "a .mov or .mkv file or PNG frames to keep it", path, info.pixel_format)
    if info.bit_depth > 8 and not fmt.deep:
        logger.warning("%s has %d bits per sample (%s): frames are interpolated and written with 8 bits; write "
                       "a .mp4, .mkv or .mov file or PNG frames to keep them", path, info.bit_depth, info.pixel_format)


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


# cv2.IMREAD_UNCHANGED layouts -> ffmpeg's names of them (VideoInfo.has_alpha / bit_depth read these)
_IMAGE_FORMATS = {(2, 1): "gray", (2, 2): "gray16le", (3, 1): "rgb24", (3, 2): "rgb48le", (4, 1): "rgba",
                  (4, 2): "rgba64le"}


class FrameFolderReader:
    """Iterate over the images of a folder in natural order (``frame2`` before ``frame10``): ``uint8``
    ``(H, W, 3)`` RGB, or as ``format`` asks (:mod:`.carry`): RGBA (frames without alpha are opaque)
    and/or ``uint16`` (8-bit frames scaled by 257). The first image says what the folder holds
    (``info.pixel_format``)."""

    truncated = False
    finished = False

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0):
        import cv2  # noqa: F401  (fail early with a clear message when OpenCV is missing)

        self.path = Path(path)
        self.files = frame_files(self.path)
        if not self.files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {self.path}")
        first = self._read(self.files[0])
        stored = self._read(self.files[0], unchanged=True)  # what the file holds: alpha? 16 bits?
        layout = _IMAGE_FORMATS.get((stored.ndim if stored.ndim == 2 else stored.shape[2], stored.dtype.itemsize))
        self.info = VideoInfo(first.shape[1], first.shape[0], Fraction(fps).limit_denominator(1001),
                              len(self.files), None, frame_count_exact=True, timing_complete=True,
                              pixel_format=layout if stored.dtype in (np.uint8, np.uint16) else None)
        self.frames_read = 0
        self.format = RGB8

    @property
    def frame_count(self) -> int:
        return len(self.files)

    def _read(self, file: Path, *, unchanged: bool = False) -> np.ndarray:
        """An image as cv2 decodes it: 8-bit RGB (grayscale and alpha converted), or ``unchanged``."""
        import cv2

        img = cv2.imread(str(file), cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot read image {file}")
        return img if unchanged else np.ascontiguousarray(img[:, :, ::-1])

    def _frame(self, file: Path) -> np.ndarray:
        if self.format == RGB8:
            return self._read(file)  # as it always was
        img = self._read(file, unchanged=True)
        if img.dtype not in (np.uint8, np.uint16):
            raise InputError(f"cannot read image {file}: {img.dtype} samples; save it with 8 or 16 bits")
        img = img[:, :, None].repeat(3, axis=2) if img.ndim == 2 else img
        rgb, alpha = img[:, :, 2::-1], img[:, :, 3:4] if img.shape[2] == 4 else None
        if self.format.alpha and alpha is None:
            alpha = np.full_like(rgb[:, :, :1], np.iinfo(img.dtype).max)  # opaque
        frame = np.concatenate([rgb, alpha], axis=2) if self.format.alpha else rgb
        if self.format.deep and frame.dtype == np.uint8:
            frame = frame.astype(np.uint16) * 257  # 0..255 -> 0..65535
        elif not self.format.deep and frame.dtype == np.uint16:
            frame = ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return np.ascontiguousarray(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        warn_dropped(self.path, self.info, self.format)
        self.frames_read = 0
        for file in self.files:
            img = self._frame(file)
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

