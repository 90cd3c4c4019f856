"""What of the input the output keeps beside 8-bit RGB: an alpha channel and samples of more than 8 bits.

Frames travel as 8-bit RGB (``rgb24``) unless the input has more and the output can hold it; then as
``rgba`` (alpha), ``rgb48le`` (16-bit samples for 10-, 12- and 16-bit sources) or ``rgba64le`` (both).
What each output holds:

========================  =====  ==========================================================
output                    alpha  more than 8 bits
========================  =====  ==========================================================
folder of PNG frames      yes    yes: 16-bit PNGs
``.mov``                  yes    alpha: ProRes 4444 (yuva444p10le); else HEVC Main 10 (x265)
``.mkv``                  yes    alpha: FFV1, lossless (bgra / gbrap16le); else HEVC Main 10
``.mp4`` ``.m4v``         no     HEVC Main 10 (x265, tagged ``hvc1`` as Apple players want)
``.webm`` ``.avi``        no     no
========================  =====  ==========================================================

What the output cannot hold is said in one WARNING line (:class:`~.read.VideoReader`); 8-bit RGB
inputs take exactly the path they always took.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .outputs import output_kind

logger = logging.getLogger("pervfi_core.video")

ALPHA_VIDEO = (".mov", ".mkv")
DEEP_VIDEO = (".mp4", ".m4v", ".mov", ".mkv")
VIDEO_BITS = 10  # what a video output keeps of a deeper source (HEVC Main 10, ProRes 4444); FFV1 keeps 16


@dataclass(frozen=True)
class FrameFormat:
    """How frames travel between reader, pipeline and writer: ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA
    (``alpha``), ``uint8`` or ``uint16`` (``deep``), full range (0..255 or 0..65535)."""

    alpha: bool = False
    deep: bool = False
    bits: int = 8  # of the source's bits per sample, those the output keeps (16-bit frames carry up to 16)

    @property
    def channels(self) -> int:
        return 4 if self.alpha else 3

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<u2") if self.deep else np.dtype(np.uint8)

    @property
    def rawvideo(self) -> str:
        """ffmpeg's name of the layout (``-f rawvideo -pix_fmt ...``)."""
        return {(False, False): "rgb24", (True, False): "rgba", (False, True): "rgb48le",
                (True, True): "rgba64le"}[self.alpha, self.deep]

    def describe(self) -> str:
        """What is kept beside 8-bit RGB, for the run's summary line (empty for plain RGB)."""
        return " and ".join((["alpha"] if self.alpha else []) + ([f"{self.bits}-bit samples"] if self.deep else []))


RGB8 = FrameFormat()


def holds(output) -> FrameFormat:
    """What an output can hold: a folder of PNG frames everything, a video file by its container."""
    if output_kind(output) == "frames":
        return FrameFormat(alpha=True, deep=True)
    ext = Path(output).suffix.lower()
    return FrameFormat(alpha=ext in ALPHA_VIDEO, deep=ext in DEEP_VIDEO)


def carried(info, output, *, source=None) -> FrameFormat:
    """What of the input ``source`` (its :class:`~.probe.VideoInfo` ``info``) the frames carry to
    ``output``; a source deeper than a video output keeps (:data:`VIDEO_BITS`) is said aloud."""
    room = holds(output)
    alpha, deep = info.has_alpha and room.alpha, info.bit_depth > 8 and room.deep
    lossless = output_kind(output) == "frames" or alpha and Path(output).suffix.lower() == ".mkv"  # PNG, FFV1
    bits = info.bit_depth if lossless else min(info.bit_depth, VIDEO_BITS)
    if deep and bits < info.bit_depth:
        logger.warning("%s has %d bits per sample (%s): %s keeps %d of them", source or "the input",
                       info.bit_depth, info.pixel_format, Path(output).name, bits)
    return FrameFormat(alpha=alpha, deep=deep, bits=bits if deep else 8)


def video_codec(ext: str, fmt: FrameFormat, *, crf: int, even: bool, source_pix_fmt: str | None = None) -> list[str]:
    """ffmpeg encoder options for frames of ``fmt`` into a container of extension ``ext``. 8-bit RGB:
    H.264 (yuv420p, yuv444p for odd sizes), VP9 for ``.webm``, MPEG-4 part 2 for ``.avi``; alpha or
    deep frames: the table of the module docstring."""
    if fmt.alpha and ext == ".mov":  # what editors expect of a clip with alpha; 10-bit colour and alpha
        return ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-vendor", "apl0"]
    if fmt.alpha:  # .mkv: lossless RGB + alpha
        return ["-c:v", "ffv1", "-level", "3", "-pix_fmt", "gbrap16le" if fmt.deep else "bgra"]
    if fmt.deep:
        # the source's chroma layout where x265 takes it (4:2:0 needs even sizes, as for 8 bits)
        chroma = re.match(r"yuv(4[24][024])p", source_pix_fmt or "")
        layout = chroma.group(1) if chroma and chroma.group(1) in ("420", "422", "444") else "444"
        if not even and layout != "444":
            layout = "444"
        tag = ["-tag:v", "hvc1"] if ext in (".mp4", ".m4v", ".mov") else []
        return ["-c:v", "libx265", "-crf", str(crf), "-preset", "medium", "-x265-params", "log-level=error",
                "-pix_fmt", f"yuv{layout}p{VIDEO_BITS}le", *tag]
    if ext == ".webm":
        return ["-c:v", "libvpx-vp9", "-crf", str(min(crf + 15, 63)), "-b:v", "0",
                "-pix_fmt", "yuv420p" if even else "yuv444p"]
    if ext == ".avi":
        return ["-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p"]
    return ["-c:v", "libx264", "-crf", str(crf), "-preset", "medium", "-pix_fmt", "yuv420p" if even else "yuv444p"]
