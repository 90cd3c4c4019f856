"""Streaming video I/O through the ffmpeg binary of ``imageio-ffmpeg``, and folders of frames.

Frames travel as raw 8-bit RGB through pipes, one at a time, so memory does not depend on the
length of the clip. Frames are numpy ``uint8`` arrays ``(H, W, 3)`` (RGB); conversion to tensors
happens in :mod:`pervfi_core.pipeline`.

Outputs are written under a temporary name beside the target and renamed only when complete
(``close()``); ``abort()`` (Ctrl-C, errors) removes the temporary file or folder, so a half-written
output never appears under the requested name. Every write is checked: a full disk, a removed
folder or a failing encoder raises :class:`WriteError` at once, never a silent success.

What cannot be honoured exactly is said aloud (WARNING log): a file that ends before its declared
length, and a variable-frame-rate source (re-timed to a constant rate, with the drift this costs).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
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
# Packet timestamps are read (demux only, no decoding) over this much of the start of a file to
# detect a variable frame rate and count frames; reading packets costs about as much as copying
# the file, so long files are sampled rather than read whole at every probe.
TIMING_SCAN_SECONDS = 300.0
_REORDER_DEPTH = 16  # most frames a decoder may hold back to reorder (H.264/HEVC DPB size)
CRF_RANGE = (0, 51)  # x264's quality scale (lower is better); VP9 gets crf + 15, capped at its 63


class WriteError(InputError):
    """The output could not be written (disk full, file too large, folder removed, no permission...).

    ``path`` is the file or folder that failed, ``errno`` the OS error number when one is known.
    """

    def __init__(self, message: str, *, path: Path | None = None, errno: int | None = None):
        super().__init__(message)
        self.path, self.errno = path, errno


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
    """What the pipeline needs to know about an input: size, exact frame rate, audio, timing caveats."""

    width: int
    height: int
    fps: Fraction
    frame_count: int | None  # counted or estimated from the duration (exact for frame folders); None if unknown
    audio_codec: str | None  # None when there is no audio stream
    variable_rate: bool = False  # irregular timestamps: frames are re-timed to the constant ``fps``
    drift: float = 0.0  # seconds: the largest gap between a frame's source time and its time at ``fps``
    duration: float | None = None  # seconds, as the container declares it
    truncated: bool = False  # the data ends well before the declared duration (cut-off download or copy)
    frame_count_exact: bool = False  # frame_count counted from the packets (whole file scanned)
    timing_complete: bool = False  # the timestamp scan covered the whole file (drift is not a sample)


def _as_fraction(fps: float) -> Fraction:
    """Recover exact rates such as 30000/1001 from the rounded value ffmpeg prints."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 0.006 and abs(round(fps) - fps) > 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1001)


def _fields(desc: str) -> list[str]:
    """Split an ffmpeg stream description at top-level commas ('yuv420p(tv, bt709)' stays whole)."""
    fields, depth, cur = [], 0, []
    for ch in desc:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur).strip())
    return fields


def _declared_rate(desc: str) -> Fraction | None:
    """``fps`` (average rate) of a stream description, else ``tbr`` (ffmpeg's guess of the base rate)."""
    rates = {}
    for field in _fields(desc):
        m = re.match(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b", field)
        if m and float(m.group(1)) > 0:
            rates.setdefault(m.group(3), float(m.group(1)) * (1000 if m.group(2) else 1))
    rate = rates.get("fps") or rates.get("tbr")
    return _as_fraction(rate) if rate else None


@dataclass
class _Timing:
    video_pts: list[float]  # seconds, sorted (presentation order)
    last_duration: float  # of the last video frame (0 if unknown)
    end: float  # end of the last packet of any scanned stream, seconds
    start: float


def _scan_timing(path: Path) -> _Timing | None:
    """Packet timestamps of the first video stream and the audio, without decoding (ffmpeg framecrc)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-map", "0:V:0",
           "-map", "0:a?", "-c", "copy", "-t", f"{TIMING_SCAN_SECONDS:g}", "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    tb: dict[int, Fraction] = {}
    video: dict[float, float] = {}
    end, start = 0.0, math.inf
    for line in proc.stdout.splitlines():
        if line.startswith("#tb "):
            m = re.match(r"#tb (\d+): (\d+)/(\d+)", line)
            if m:
                tb[int(m.group(1))] = Fraction(int(m.group(2)), int(m.group(3)))
            continue
        parts = line.split(",")
        if line.startswith("#") or len(parts) < 5:
            continue
        try:
            index, pts, duration = int(parts[0]), int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if index not in tb or pts == -(2 ** 63):  # no timestamp
            continue
        t, d = float(pts * tb[index]), float(max(duration, 0) * tb[index])
        start, end = min(start, t), max(end, t + d)
        if index == 0:
            video[t] = d
    if len(video) < 2:
        return None
    pts = sorted(video)
    return _Timing(pts, video[pts[-1]], end, start)


def _drift(pts: list[float], fps: Fraction) -> float:
    """Largest gap between each frame's source time and its slot ``i / fps`` at a constant rate."""
    t0, step = pts[0], 1.0 / float(fps)
    return max(abs((t - t0) - i * step) for i, t in enumerate(pts))


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, audio and timing caveats of a video file.

    The size is that of the first decoded frame (``#dimensions`` of ffmpeg's framecrc output), so it
    is exactly what :class:`VideoReader` delivers (rotation applied) for any size, 1x1 included, and
    never mistaken for a codec tag such as ``0x31637661``. Rate, duration and audio come from
    ffmpeg's stream summary; packet timestamps (:data:`TIMING_SCAN_SECONDS`, demux only) detect a
    variable frame rate, count the frames and notice a file that ends before its declared length.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input video not found: {path}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path), "-map", "0:V:0",
           "-frames:v", "1", "-c:v", "rawvideo", "-pix_fmt", "rgb24", "-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    # Only the input summary: the output section repeats stream lines for the rawvideo stream.
    text = re.split(r"\n(?:Stream mapping:|Output #0)", proc.stderr)[0]
    videos = [m.group(1) for m in re.finditer(r"Stream #\S+.*?: Video: (.*)", text)
              if "(attached pic)" not in m.group(1)]  # cover art is not the video
    if not videos:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise InputError(f"cannot read {path} as a video (ffmpeg found no video stream): {last}")
    size = re.search(r"^#dimensions 0: (\d+)x(\d+)$", proc.stdout, re.M)
    if proc.returncode != 0 or size is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise InputError(f"cannot read size/frame rate of {path}: ffmpeg could not decode its first frame: {tail}")
    width, height = int(size.group(1)), int(size.group(2))
    fps = _declared_rate(videos[0])
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None
    m = re.search(r"start: (-?\d+(?:\.\d+)?)", text)
    file_start = float(m.group(1)) if m else None
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)

    timing = _scan_timing(path)
    variable, drift, truncated, complete, count, exact = False, 0.0, False, False, None, False
    if timing is not None:
        start = file_start if file_start is not None else timing.start
        complete = timing.end - start < TIMING_SCAN_SECONDS - 1
        pts = timing.video_pts
        n = len(pts)
        span = pts[-1] - pts[0] + (timing.last_duration or (pts[-1] - pts[0]) / (n - 1))  # n frame slots
        average = _as_fraction(round(n / span, 3))
        fps = fps or average
        if complete and duration is not None:
            # Every stream ends early only when the data is missing, not when audio outlasts video.
            truncated = duration - (timing.end - start) > max(0.25, 3 / float(fps))
        if complete and not truncated:
            count, exact = n, True
        else:
            # Where the packets stop (cut-off file, end of the scan) frames reordered for B-frames
            # leave holes among the last timestamps: judge the timing without them.
            pts = pts[:-_REORDER_DEPTH] if n > 2 * _REORDER_DEPTH else []
        if pts:
            drift = _drift(pts, fps)
            if drift > 1.0 / float(fps) and average != fps:
                # The declared rate misses the timestamps by more than a frame: re-time to the measured
                # average instead, so the clip keeps its length and ends together with its audio.
                fps, drift = average, _drift(pts, average)
            variable = drift > 0.5 / float(fps)
    if fps is None:
        raise InputError(f"cannot read the frame rate of {path} from ffmpeg: {videos[0].strip()}; "
                         "give it explicitly (input fps)")
    if count is None and duration is not None:
        count = max(1, round(duration * float(fps)))
    return VideoInfo(width, height, fps, count, audio.group(1) if audio else None, variable_rate=variable,
                     drift=drift if variable else 0.0, duration=duration, truncated=truncated,
                     frame_count_exact=exact, timing_complete=complete)


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
        self._proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log)
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

    def _warn_timing(self) -> None:
        info = self.info
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
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(self.path),
               "-map", "0:V:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._warn_timing()
        self.frames_read, self.finished, self.truncated = 0, False, False
        log = tempfile.TemporaryFile()
        self._frames = FFmpegFrames(cmd, w, h, log)
        try:
            for frame in self._frames:
                self.frames_read += 1
                yield frame
            if self._frames.returncode != 0:
                raise InputError(f"ffmpeg could not decode {self.path}: {_tail(log, 400)}")
            self.finished = True
            self._check_count()
        finally:
            self.close()
            log.close()

    def _check_count(self) -> None:
        expected, fps = self.info.frame_count, float(self.info.fps)
        if not expected:
            return
        # A count estimated from the duration can be high by the audio's extra length: allow half a second.
        slack = 2 if self.info.frame_count_exact or self.info.truncated else max(2, math.ceil(0.5 * fps))
        if self.frames_read < expected - slack:
            self.truncated = True
            logger.warning("%s ended after %d frames (%.2f s) but declares %d frames (%.2f s): the file is "
                           "probably cut short; the output covers only the %d frames read",
                           self.path, self.frames_read, self.frames_read / fps, expected, expected / fps,
                           self.frames_read)

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
        self._frames = None


class FrameFolderReader:
    """Iterate over the images of a folder in natural order (``frame2`` before ``frame10``)."""

    truncated = False
    finished = False

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


def _temp_name(path: Path, tag: str = "partial") -> Path:
    # Same folder (rename is atomic there) and same extension (ffmpeg picks the muxer from it).
    return path.with_name(f".{path.stem}.pervfi-{tag}-{os.getpid()}{path.suffix}")


# What to do about the OS errors an output can meet (matched by number, or by ffmpeg's message text).
_ADVICE = {
    errno.ENOSPC: "The disk is full: free some space or write the output to another disk, then run again",
    errno.EDQUOT: "The disk quota is used up: free some space or write the output elsewhere, then run again",
    errno.EFBIG: "The file grew beyond the file-size limit (ulimit -f) or the largest file this filesystem "
                 "allows (FAT32: 4 GiB): write to another disk (or split the work into shorter clips)",
    errno.ENOENT: "The output folder was removed or renamed while writing: choose an existing folder and run again",
    errno.EACCES: "No permission to write there: choose a folder you can write to",
    errno.EPERM: "No permission to write there: choose a folder you can write to",
    errno.EROFS: "The disk is read-only: choose a writable folder",
    errno.EIO: "The disk reported an I/O error: check the disk (or its connection) and write elsewhere",
}
_GENERIC_ADVICE = "Check that the output folder exists, is writable and has free space, then run again"
_FFMPEG_ADVICE = ("ffmpeg's message says why (an encoder option, a codec the container refuses...); if it is "
                  "about the disk, check that the output folder exists, is writable and has free space")


def _advice(code: int | None, text: str = "", default: str = _GENERIC_ADVICE) -> tuple[int | None, str]:
    """The OS error (by number, else found by its message in ``text``) and what to do about it."""
    if code in _ADVICE:
        return code, _ADVICE[code]
    for number, advice in _ADVICE.items():
        if os.strerror(number) in text:
            return number, advice
    return code, default


def _os_write_error(what: Path, output: Path, err: OSError) -> WriteError:
    code, advice = _advice(err.errno, str(err))
    reason = err.strerror or str(err)
    return WriteError(f"cannot write {what}: {reason}. {advice}. Nothing was kept under {output} "
                      "(the partial output was removed).", path=what, errno=code)


def _tail(log, chars: int) -> str:
    """The end of a captured stderr file, as one line."""
    try:
        log.seek(0)
        text = log.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""
    # ffmpeg's object addresses ("[out#0/mp4 @ 0x55...]") and repeat notes only make the message longer.
    lines = [re.sub(r" @ 0x[0-9a-f]+", "", line).strip() for line in text.splitlines()
             if line.strip() and "Last message repeated" not in line]
    return " | ".join(lines[-4:])[-chars:]


@contextlib.contextmanager
def _signals_held():
    """Hold the stop signals (SIGINT, SIGTERM, SIGHUP) back for the few renames that put an output in
    place; one that arrives meanwhile is delivered right after, when the output is whole (POSIX only)."""
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, n) for n in names if hasattr(signal, n)})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk; deferred write errors (network disks) surface here."""
    if directory and os.name == "nt":
        return  # folders cannot be opened for fsync on Windows; renames there are journalled anyway
    fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VideoWriter:
    """Encode ``uint8`` RGB frames ``(H, W, 3)`` to a video file; optionally copy audio from a source.

    Codec by container: H.264 (``.mp4 .mkv .mov .m4v``; yuv420p, or yuv444p for odd sizes), VP9
    (``.webm``), MPEG-4 part 2 (``.avi``). Audio is copied (``-map 1:a? -c:a copy``) when the
    container accepts the codec, else re-encoded (AAC; Opus for WebM). A failing encoder (ffmpeg
    gone, non-zero exit, killed) raises :class:`WriteError` with ffmpeg's last messages.
    """

    def __init__(self, path, *, width: int, height: int, fps: Fraction, audio_from=None,
                 audio_codec: str | None = None, crf: int = 16):
        self.path = Path(path)
        self.tmp = _temp_name(self.path)
        self.size = (height, width)
        self.frames_written = 0
        self._proc: subprocess.Popen | None = None
        ext = self.path.suffix.lower()
        even = width % 2 == 0 and height % 2 == 0
        if ext == ".webm":
            vcodec = ["-c:v", "libvpx-vp9", "-crf", str(min(crf + 15, 63)), "-b:v", "0",
                      "-pix_fmt", "yuv420p" if even else "yuv444p"]
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
        try:  # create the file ourselves: an unwritable folder fails here, clearly, before any work
            self.tmp.open("wb").close()
        except OSError as err:
            raise _os_write_error(self.tmp, self.path, err) from err
        # stderr goes to a file, not a pipe nobody reads while frames are written (that could block
        # ffmpeg); its last lines explain a failure.
        try:
            self._log = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        except BaseException as err:  # a signal (turned into KeyboardInterrupt) can land here too
            self.tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise _os_write_error(self.tmp, self.path, err) from err
            raise

    def _failure(self, what: str) -> WriteError:
        """Stop, clean up, and describe why ffmpeg did not produce the file."""
        rc = self._proc.wait()
        log = _tail(self._log, 600)
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            cause = f"ffmpeg was killed by {name}"
            code = errno.EFBIG if name == "SIGXFSZ" else None  # the file-size limit (ulimit -f) was hit
        else:
            cause = f"ffmpeg exited with status {rc}"
            code = None
        code, advice = _advice(code, log, _FFMPEG_ADVICE)
        self.abort()
        return WriteError(f"{what} {self.path}: {cause}{': ' + log if log else ''}. {advice}. "
                          f"Nothing was kept under {self.path} (the partial output was removed).",
                          path=self.path, errno=code)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise InputError(f"frame: expected uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError:  # BrokenPipeError / EPIPE: ffmpeg is gone
            raise self._failure("ffmpeg stopped while writing") from None
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding, check that it worked, and move the file to its final name."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # the exit status below says what happened
        if self._proc.wait() != 0:
            raise self._failure("ffmpeg failed to write")
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"ffmpeg failed to write {self.path}: no frames")
        self._log.close()
        try:
            _fsync(self.tmp)  # data on disk before the name says it is complete
            with _signals_held():
                os.replace(self.tmp, self.path)
        except OSError as err:
            self.abort()
            raise _os_write_error(self.path, self.path, err) from err
        try:
            _fsync(self.path.parent, directory=True)
        except OSError:
            pass  # best effort: the file itself is complete

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file; the final name is never created."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._log):
                try:
                    stream.close()
                except OSError:
                    pass
        self.tmp.unlink(missing_ok=True)


class FrameFolderWriter:
    """Write numbered PNG frames ``frame_000000.png ...`` into a folder, atomically.

    Frames go into a hidden temporary folder beside the target, renamed to the final name in
    :meth:`close`; a previous output (``overwrite``) is replaced only then. Every frame is encoded in
    memory and written with checked file I/O, so a full disk or a removed folder raises
    :class:`WriteError` naming the OS error at once (``cv2.imwrite`` would only return False).
    """

    def __init__(self, path, *, width: int, height: int, overwrite: bool = False, **_unused):
        import cv2  # noqa: F401

        self.path = Path(path)
        _check_target(self.path, "frames", overwrite)
        self.tmp = _temp_name(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.tmp.mkdir(parents=True)
        except OSError as err:
            raise _os_write_error(self.tmp, self.path, err) from err
        self.size = (height, width)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise InputError(f"frame: expected uint8 {(*self.size, 3)}, got {frame.dtype} {frame.shape}")
        file = self.tmp / f"frame_{self.frames_written:06d}.png"
        ok, png = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
        if not ok:
            self.abort()
            raise WriteError(f"OpenCV could not encode frame {self.frames_written} as PNG for {self.path}", path=file)
        try:
            with open(file, "wb") as f:  # close() is checked too: some disks report errors only there
                f.write(png.data)
        except OSError as err:
            self.abort()
            raise _os_write_error(file, self.path, err) from err
        self.frames_written += 1

    def close(self) -> None:
        """Move the complete folder to its final name (replacing a previous output only now)."""
        old = _temp_name(self.path, "old") if self.path.exists() else None
        try:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            with _signals_held():  # both renames or neither: a stop between them would lose both outputs
                if old is not None:
                    os.replace(self.path, old)  # kept until the new frames are in place
                try:
                    os.replace(self.tmp, self.path)
                except OSError:
                    if old is not None:
                        os.replace(old, self.path)  # put the previous output back
                    raise
        except OSError as err:
            self.abort()
            raise _os_write_error(self.path, self.path, err) from err
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        try:
            _fsync(self.path.parent, directory=True)
        except OSError:
            pass  # best effort: the frames themselves are written

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_output(path, *, width: int, height: int, fps: Fraction, audio_from=None, audio_codec=None,
                overwrite: bool = False, crf: int = 16):
    """A :class:`VideoWriter` or :class:`FrameFolderWriter` chosen by the extension of ``path``."""
    path = Path(path)
    kind = output_kind(path)
    # With overwrite, an existing output is replaced only when the new one is complete (close()).
    _check_target(path, kind, overwrite)
    if kind == "video":
        check_crf(crf)
        _make_parent(path)
        return VideoWriter(path, width=width, height=height, fps=fps, audio_from=audio_from,
                           audio_codec=audio_codec, crf=crf)
    _make_parent(path)
    return FrameFolderWriter(path, width=width, height=height, overwrite=overwrite)


def check_crf(crf) -> int:
    """``crf`` as an int, or :class:`InputError` unless it is a whole number in :data:`CRF_RANGE`."""
    lo, hi = CRF_RANGE
    if isinstance(crf, bool) or not isinstance(crf, int) or not lo <= crf <= hi:
        raise InputError(f"crf: expected a whole number from {lo} to {hi} (lower is better quality, 16 is the "
                         f"default, 23 is x264's), got {crf!r}")
    return int(crf)


def _check_target(path: Path, kind: str, overwrite: bool) -> None:
    """What the name itself rules out: a folder where a file goes (or the reverse), an existing output."""
    if kind == "video":
        if path.is_dir():
            raise InputError(f"output {path} is a folder; choose a file name")
        if path.exists() and not overwrite:
            raise InputError(f"output file {path} exists; choose a new name or pass --overwrite")
    else:
        if path.exists() and not path.is_dir():
            raise InputError(f"output {path} exists and is a file; a folder of frames needs a new name")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise InputError(f"output folder {path} exists and is not empty; choose a new name or --overwrite")


def check_output(path, *, input_path=None, overwrite: bool = False, crf: int | None = None) -> str:
    """Refuse, before any work, an output that could not be written; returns :func:`output_kind`.

    Refused: an unknown extension, the input itself, an existing output without ``overwrite``, a bad
    ``crf``, and a folder that cannot be created or written (read-only disk, no permission, a file in
    the way), found by creating and removing a probe file in the nearest existing folder: permission
    bits alone do not tell (root, read-only mounts, network disks). Leaves nothing behind.
    """
    path = Path(path)
    kind = output_kind(path)
    if input_path is not None and path.resolve() == Path(input_path).resolve():
        raise InputError(f"output {path} is the input; choose another name")
    _check_target(path, kind, overwrite)
    if kind == "video" and crf is not None:
        check_crf(crf)
    folder = path.resolve().parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(f"cannot create the output folder {folder}: {existing} is a file, not a folder. "
                         "Choose an output in a folder (or a new folder name).", path=existing,
                         errno=errno.ENOTDIR)
    try:
        fd, probe_file = tempfile.mkstemp(dir=existing, prefix=".pervfi-probe-")
        os.close(fd)
        os.unlink(probe_file)
    except OSError as err:
        code, advice = _advice(err.errno, str(err))
        what = "write to the output folder" if existing == folder else f"create the output folder {folder} in"
        raise WriteError(f"cannot {what} {existing}: {err.strerror or err}. {advice}.", path=existing,
                         errno=code) from err
    return kind


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        code, advice = _advice(err.errno, str(err))
        raise WriteError(f"cannot create the output folder {path.parent}: {err.strerror or err}. "
                         f"{advice}.", path=path.parent, errno=code) from err
