"""Writing frames: a video file through ffmpeg, or a folder of numbered PNG frames, atomically.

Outputs are written under a temporary name beside the target and renamed only when complete
(``close()``); ``abort()`` (Ctrl-C, errors) removes the temporary file or folder, so a half-written
output never appears under the requested name. Every write is checked: a full disk, a removed
folder or a failing encoder raises :class:`WriteError` at once, never a silent success. Each writer
holds its output's lock (:class:`~.claim.OutputLock`) from creation to close or abort.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..checks import check_whole
from ..errors import InputError
from .advice import FFMPEG_ADVICE, WriteError, advice, folder_error, os_write_error, tail
from .carry import RGB8, FrameFormat, holds, video_codec
from .claim import OutputLock, temp_name
from .outputs import output_kind
from .process import STOP_SIGNALS, Child, ffmpeg_exe

# Audio codecs an MP4/MOV container takes as they are; anything else is re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
CRF_RANGE = (0, 51)  # x264's quality scale (lower is better); VP9 gets crf + 15, capped at its 63


@contextlib.contextmanager
def _signals_held():
    """Hold the stop signals back for the few renames that put an output in place; one that arrives
    meanwhile is delivered right after, when the output is whole (POSIX only)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, n) for n in STOP_SIGNALS
                                                         if hasattr(signal, n)})
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



class _Claimed:
    """A writer holding its output's lock until it closes or aborts."""

    lock: OutputLock | None = None

    def _unclaim(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _published(self) -> None:
        """The output has its final name: flush the folder's entry (best effort: the output itself is complete
        on disk), then release the lock."""
        try:
            _fsync(self.path.parent, directory=True)
        except OSError:
            pass
        self._unclaim()


class VideoWriter(_Claimed):
    """Encode ``uint8`` RGB frames ``(H, W, 3)`` to a video file; optionally copy audio from a source.

    Codec by container: H.264 (``.mp4 .mkv .mov .m4v``; yuv420p, or yuv444p for odd sizes), VP9
    (``.webm``), MPEG-4 part 2 (``.avi``). Frames of another ``fmt`` (RGBA, ``uint16``) go to the codecs
    of :func:`.carry.video_codec` (ProRes 4444, FFV1, HEVC Main 10), in the chroma layout of
    ``source_pix_fmt`` where it fits. Audio is copied (``-map 1:a? -c:a copy``) when the
    container accepts the codec, else re-encoded (AAC; Opus for WebM). ``sample_aspect``: the pixel
    aspect ratio (SAR) the output declares, so anamorphic sources keep their shape. A failing
    encoder (ffmpeg gone, non-zero exit, killed) raises :class:`WriteError` with ffmpeg's last messages.
    """

    def __init__(self, path, *, width: int, height: int, fps: Fraction, audio_from=None,
                 audio_codec: str | None = None, crf: int = 16, sample_aspect: Fraction | None = None,
                 fmt: FrameFormat = RGB8, source_pix_fmt: str | None = None):
        self.path = Path(path)
        self.tmp = temp_name(self.path)
        self.size, self.fmt = (height, width), fmt
        self.frames_written = 0
        self._proc: subprocess.Popen | None = None
        ext = self.path.suffix.lower()
        even = width % 2 == 0 and height % 2 == 0
        vcodec = video_codec(ext, fmt, crf=crf, even=even, source_pix_fmt=source_pix_fmt)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
               "-f", "rawvideo", "-pix_fmt", fmt.rawvideo, "-s", f"{width}x{height}",
               "-r", f"{fps.numerator}/{fps.denominator}", "-i", "-"]
        if audio_from is not None and audio_codec is not None:
            copy = (ext in (".mkv",) or (ext in (".mp4", ".mov", ".m4v") and audio_codec in _MP4_AUDIO)
                    or (ext == ".webm" and audio_codec in ("opus", "vorbis")))
            acodec = ["-c:a", "copy"] if copy else (["-c:a", "libopus"] if ext == ".webm" else ["-c:a", "aac"])
            cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a?", *acodec]
        if sample_aspect is not None and sample_aspect != 1:
            vcodec += ["-vf", f"setsar={sample_aspect.numerator}/{sample_aspect.denominator}"]
        cmd += [*vcodec, str(self.tmp)]
        try:  # create the file ourselves: an unwritable folder fails here, clearly, before any work
            self.tmp.open("wb").close()
        except OSError as err:
            raise os_write_error(self.tmp, self.path, err) from err
        # stderr goes to a file, not a pipe nobody reads while frames are written (that could block
        # ffmpeg); its last lines explain a failure.
        try:
            self._log = tempfile.TemporaryFile()
            self._proc = Child(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        except BaseException as err:  # a signal (turned into KeyboardInterrupt) can land here too
            self.tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise os_write_error(self.tmp, self.path, err) from err
            raise

    def _failure(self, what: str) -> WriteError:
        """Stop, clean up, and describe why ffmpeg did not produce the file."""
        rc = self._proc.wait()
        log = tail(self._log, 600)
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
        code, what_to_do = advice(code, log, FFMPEG_ADVICE)
        self.abort()
        return WriteError(f"{what} {self.path}: {cause}{': ' + log if log else ''}. {what_to_do}. "
                          f"Nothing was kept under {self.path} (the partial output was removed).",
                          path=self.path, errno=code)

    def write(self, frame: np.ndarray) -> None:
        _check_frame(frame, self.size, self.fmt)
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
            raise os_write_error(self.path, self.path, err) from err
        self._published()

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
        self._unclaim()


class FrameFolderWriter(_Claimed):
    """Write numbered PNG frames ``frame_000000.png ...`` into a folder, atomically: 8-bit RGB, or RGBA
    and/or 16-bit PNGs for frames of another ``fmt``.

    Frames go into a hidden temporary folder beside the target, renamed to the final name in
    :meth:`close`; a previous output (``overwrite``) is replaced only then. Every frame is encoded in
    memory and written with checked file I/O, so a full disk or a removed folder raises
    :class:`WriteError` naming the OS error at once (``cv2.imwrite`` would only return False).
    """

    def __init__(self, path, *, width: int, height: int, overwrite: bool = False, fmt: FrameFormat = RGB8,
                 **_unused):
        import cv2  # noqa: F401

        self.path, self.fmt = Path(path), fmt
        _check_target(self.path, "frames", overwrite)
        self.tmp = temp_name(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.tmp.mkdir(parents=True)
        except OSError as err:
            raise os_write_error(self.tmp, self.path, err) from err
        self.size = (height, width)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        _check_frame(frame, self.size, self.fmt)
        file = self.tmp / f"frame_{self.frames_written:06d}.png"
        bgr = frame[:, :, [2, 1, 0, 3]] if self.fmt.alpha else frame[:, :, ::-1]  # OpenCV's channel order
        ok, png = cv2.imencode(".png", np.ascontiguousarray(bgr))
        if not ok:
            self.abort()
            raise WriteError(f"OpenCV could not encode frame {self.frames_written} as PNG for {self.path}", path=file)
        try:
            with open(file, "wb") as f:  # close() is checked too: some disks report errors only there
                f.write(png.data)
        except OSError as err:
            self.abort()
            raise os_write_error(file, self.path, err) from err
        self.frames_written += 1

    def close(self) -> None:
        """Move the complete folder to its final name (replacing a previous output only now)."""
        old = temp_name(self.path, "old") if self.path.exists() else None
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
            raise os_write_error(self.path, self.path, err) from err
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._published()

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._unclaim()


def _check_frame(frame: np.ndarray, size: tuple[int, int], fmt: FrameFormat) -> None:
    if frame.shape != (*size, fmt.channels) or frame.dtype != fmt.dtype:
        raise InputError(f"frame: expected {fmt.dtype.name} {(*size, fmt.channels)}, got {frame.dtype} {frame.shape}")


def open_output(path, *, width: int, height: int, fps: Fraction, audio_from=None, audio_codec=None,
                overwrite: bool = False, crf: int = 16, sample_aspect: Fraction | None = None,
                fmt: FrameFormat = RGB8, source_pix_fmt: str | None = None):
    """A :class:`VideoWriter` or :class:`FrameFolderWriter` chosen by the extension of ``path``, holding
    the output's lock (:class:`InputError` at once when another run writes there). ``fmt``: the frames'
    layout (:mod:`.carry`; ``source_pix_fmt``: the input's, for the chroma layout of deep video)."""
    path = Path(path)
    kind = output_kind(path)
    if kind == "video":
        check_crf(crf)
    room = holds(path)
    if fmt.alpha > room.alpha or fmt.deep > room.deep:
        raise InputError(f"output {path}: a {path.suffix or 'frame folder'} holds no {fmt.rawvideo} frames "
                         "(pervfi_core.video.carry lists what each output holds)")
    lock = OutputLock(path).acquire()
    try:
        # With overwrite, an existing output is replaced only when the new one is complete (close()).
        _check_target(path, kind, overwrite)
        _make_parent(path)
        if kind == "video":
            writer = VideoWriter(path, width=width, height=height, fps=fps, audio_from=audio_from,
                                 audio_codec=audio_codec, crf=crf, sample_aspect=sample_aspect, fmt=fmt,
                                 source_pix_fmt=source_pix_fmt)
        else:
            writer = FrameFolderWriter(path, width=width, height=height, overwrite=overwrite, fmt=fmt)
    except BaseException:
        lock.release()
        raise
    writer.lock = lock
    return writer


def check_crf(crf) -> int:
    """``crf`` as an int, or :class:`InputError` unless it is a whole number in :data:`CRF_RANGE`."""
    return check_whole("crf", crf, *CRF_RANGE, hint="lower is better quality, 16 is the default, 23 is x264's")


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
        code, what_to_do = advice(err.errno, str(err))
        what = "write to the output folder" if existing == folder else f"create the output folder {folder} in"
        raise WriteError(f"cannot {what} {existing}: {err.strerror or err}. {what_to_do}.", path=existing,
                         errno=code) from err
    return kind


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise folder_error(path.parent, err) from err


def write_all(writer, frames: Iterable[np.ndarray], on_frame: Callable[[], None] | None = None) -> int:
    """Write every frame, then close (the output appears whole); on any error or interruption abort
    (nothing appears) and re-raise. Returns the number of frames written."""
    count = 0
    try:
        for frame in frames:
            writer.write(frame)
            count += 1
            if on_frame is not None:
                on_frame()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return count
