"""The final step: the finished segments, in order, encoded once into the output.

The segment frames are lossless PNGs, read once each and handed to
:func:`pervfi_core.video.open_output`, which encodes them (or writes a PNG folder), muxes the source's
audio and renames the output into place only when it is complete. Nothing is interpolated or
re-encoded twice; on any error the partial output is removed and the segments stay for a re-run.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from .jobs import JobDir
from .segments import Segment


def read_png(path: Path) -> np.ndarray:
    """uint8 (H,W,3) RGB of a segment frame."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read segment frame {path}; remove the job folder {path.parent.parent} and run again")
    return np.ascontiguousarray(img[:, :, ::-1])


def assemble(job: JobDir, segments: list[Segment], output, *, width: int, height: int, fps: Fraction,
             audio_from=None, audio_codec: str | None = None, overwrite: bool = False, crf: int = 16,
             on_frame=None) -> int:
    """Write every frame of ``segments`` (all finished in ``job``) to ``output``; returns the frame count.
    ``on_frame()`` is called after each frame (progress)."""
    from ..video import open_output, write_all

    writer = open_output(output, width=width, height=height, fps=fps, audio_from=audio_from,
                         audio_codec=audio_codec, overwrite=overwrite, crf=crf)
    frames = (read_png(file) for segment in segments for file in job.frame_files(segment))
    return write_all(writer, frames, on_frame)
