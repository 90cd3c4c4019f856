"""Streaming video I/O through the ffmpeg binary of ``imageio-ffmpeg``, and folders of frames.

Frames travel as raw 8-bit RGB through pipes, one at a time, so memory does not depend on the
length of the clip. Frames are numpy ``uint8`` arrays ``(H, W, 3)`` (RGB); conversion to tensors
happens in :mod:`pervfi_core.pipeline`.

Outputs are written under a temporary name beside the target and renamed only when complete
(:meth:`VideoWriter.close`); :meth:`VideoWriter.abort` (Ctrl-C, errors) removes the temporary
file, so a half-written output never appears under the requested name.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Audio codecs an MP4/MOV container takes as they are; anything else is re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with ``imageio-ffmpeg`` (or ``$IMAGEIO_FFMPEG_EXE``)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise InputError(
            "video files need the ffmpeg binary from imageio-ffmpeg: pip install imageio-ffmpeg "
            "(or use folders of PNG frames)"
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input: size, exact frame rate, audio."""

    width: int
    height: int
    fps: Fraction
    frame_count: int | None  # estimated from the duration (exact for frame folders); None if unknown
    audio_codec: str | None  # None when there is no audio stream


def _as_fraction(fps: float) -> Fraction:
    """Recover exact rates such as 30000/1001 from the rounded value ffmpeg prints."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 0.006 and abs(round(fps) - fps) > 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1001)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read size, frame rate and audio presence of a video file from ffmpeg's stream summary."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input video not found: {path}")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          errors="replace")
    text = proc.stderr
    video = re.search(r"Stream #\S+.*?: Video: .*", text)
    if video is None:
        raise InputError(f"cannot read {path} as a video (ffmpeg found no video stream): "
                         f"{text.strip().splitlines()[-1] if text.strip() else 'no output'}")
    line = video.group(0)
    size = re.search(r"(?<![0-9a-fx])(\d{2,5})x(\d{2,5})(?![0-9a-fx])", line)
    rate = re.search(r"([\d.]+)(k?) (fps|tbr)", line)
    if size is None or rate is None:
        raise InputError(f"cannot read size/frame rate of {path} from ffmpeg: {line.strip()}")
    fps = _as_fraction(float(rate.group(1)) * (1000 if rate.group(2) else 1))
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    count = None
    if duration:
        secs = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
        count = max(1, round(secs * float(fps)))
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)
    return VideoInfo(int(size.group(1)), int(size.group(2)), fps, count, audio.group(1) if audio else None)


class VideoReader:
    """Iterate over the frames of a video file as ``uint8`` arrays ``(H, W, 3)`` RGB, one at a time."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.info = probe(self.path)
        self._proc: subprocess.Popen | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        w, h = self.info.width, self.info.height
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(self.path),
               "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        nbytes = w * h * 3
        try:
            while True:
                buf = self._proc.stdout.read(nbytes)
                if len(buf) < nbytes:
                    break
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            err = self._proc.stderr.read().decode(errors="replace").strip()
            if self._proc.wait() != 0:
                raise InputError(f"ffmpeg could not decode {self.path}: {err[-400:]}")
        finally:
            self.close()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


class FrameFolderReader:
    """Iterate over the images of a folder in natural order (``frame2`` before ``frame10``)."""

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0):
        import cv2  # noqa: F401  (fail early with a clear message when OpenCV is missing)

        self.path = Path(path)
        files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        key = lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]  # noqa: E731
        self.files = sorted(files, key=key)
        if not self.files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {self.path}")
        first = self._read(self.files[0])
        self.info = VideoInfo(first.shape[1], first.shape[0], Fraction(fps).limit_denominator(1001),
                              len(self.files), None)

    def _read(self, file: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(file), cv2.IMREAD_COLOR)  # 8-bit BGR; grayscale/alpha converted to RGB
        if img is None:
            raise InputError(f"cannot read image {file}")
        return np.ascontiguousarray(img[:, :, ::-1])

    def __iter__(self) -> Iterator[np.ndarray]:
        for file in self.files:
            img = self._read(file)
            if img.shape[:2] != (self.info.height, self.info.width):
                raise InputError(f"all frames must have the same size: {file.name} is {img.shape[1]}x"
                                 f"{img.shape[0]}, the first frame is {self.info.width}x{self.info.height}")
            yield img

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
        reader.info = VideoInfo(reader.info.width, reader.info.height,
                                Fraction(fps).limit_denominator(1001), reader.info.frame_count,
                                reader.info.audio_codec)
    return reader


def output_kind(path: str | os.PathLike) -> str:
    """``"video"`` for a known video extension, ``"frames"`` for a folder (no extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix == "" or path.is_dir():
        return "frames"
    raise InputError(f"output {path}: unknown extension {suffix!r}; use a video file "
                     f"({', '.join(VIDEO_EXTENSIONS)}) or a folder name without extension for PNG frames")


def _temp_name(path: Path) -> Path:
    # Same folder (rename is atomic there) and same extension (ffmpeg picks the muxer from it).
    return path.with_name(f".{path.stem}.pervfi-partial-{os.getpid()}{path.suffix}")


class VideoWriter:
    """Encode ``uint8`` RGB frames ``(H, W, 3)`` to a video file; optionally copy audio from a source.

    Codec by container: H.264 (``.mp4 .mkv .mov .m4v``; yuv420p, or yuv444p for odd sizes), VP9
    (``.webm``), MPEG-4 part 2 (``.avi``). Audio is copied (``-map 1:a? -c:a copy``) when the
    container accepts the codec, else re-encoded (AAC; Opus for WebM).
    """

    def __init__(self, path, *, width: int, height: int, fps: Fraction, audio_from=None,
                 audio_codec: str | None = None, crf: int = 16):
        self.path = Path(path)
        self.tmp = _temp_name(self.path)
        self.size = (height, width)
        self.frames_written = 0
        ext = self.path.suffix.lower()
        even = width % 2 == 0 and height % 2 == 0
        if ext == ".webm":
            vcodec = ["-c:v", "libvpx-vp9", "-crf", str(crf + 15), "-b:v", "0", "-pix_fmt", "yuv420p" if even else "yuv444p"]
        elif ext == ".avi":
            vcodec = ["-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p"]
        else:
            vcodec = ["-c:v", "libx264", "-crf", str(crf), "-preset", "medium",
                      "-pix_fmt", "yuv420p" if even else "yuv444p"]
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{fps.numerator}/{fps.denominator}", "-i", "-"]
        if audio_from is not None and audio_codec is not None:
            copy = (ext in (".mkv",) or (ext in (".mp4", ".mov", ".m4v") and audio_codec in _MP4_AUDIO)
                    or (ext == ".webm" and audio_codec in ("opus", "vorbis")))
            acodec = ["-c:a", "copy"] if copy else (["-c:a", "libopus"] if ext == ".webm" else ["-c:a", "aac"])
            cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a?", *acodec]
        cmd += [*vcodec, str(self.tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise InputError(f"frame: expected uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            err = self._proc.stderr.read().decode(errors="replace")
            self.abort()
            raise InputError(f"ffmpeg stopped while writing {self.path}: {err.strip()[-400:]}") from None
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the file to its final name."""
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace")
        if self._proc.wait() != 0 or self.frames_written == 0:
            self.abort()
            raise InputError(f"ffmpeg failed to write {self.path}: {err.strip()[-400:] or 'no frames'}")
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file; the final name is never created."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self.tmp.unlink(missing_ok=True)


class FrameFolderWriter:
    """Write numbered PNG frames ``frame_000000.png ...`` into a folder, atomically (temp folder + rename)."""

    def __init__(self, path, *, width: int, height: int, overwrite: bool = False, **_unused):
        import cv2  # noqa: F401

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"output {self.path} exists and is a file; a folder of frames needs a new name")
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise InputError(f"output folder {self.path} exists and is not empty; choose a new name or --overwrite")
        self.tmp = _temp_name(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.size = (height, width)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise InputError(f"frame: expected uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}")
        cv2.imwrite(str(self.tmp / f"frame_{self.frames_written:06d}.png"), np.ascontiguousarray(frame[:, :, ::-1]))
        self.frames_written += 1

    def close(self) -> None:
        if self.path.is_dir():
            shutil.rmtree(self.path)  # empty, or replaced with --overwrite (only now that the new frames are complete)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_output(path, *, width: int, height: int, fps: Fraction, audio_from=None, audio_codec=None,
                overwrite: bool = False, crf: int = 16):
    """A :class:`VideoWriter` or :class:`FrameFolderWriter` chosen by the extension of ``path``."""
    path = Path(path)
    kind = output_kind(path)
    # With overwrite, an existing output is replaced only when the new one is complete (close()).
    if kind == "video":
        if path.is_dir():
            raise InputError(f"output {path} is a folder; choose a file name")
        if path.exists() and not overwrite:
            raise InputError(f"output file {path} exists; choose a new name or pass --overwrite")
        path.parent.mkdir(parents=True, exist_ok=True)
        return VideoWriter(path, width=width, height=height, fps=fps, audio_from=audio_from,
                           audio_codec=audio_codec, crf=crf)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FrameFolderWriter(path, width=width, height=height, overwrite=overwrite)
