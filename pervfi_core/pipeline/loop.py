"""The streaming video loop: frames in, frames out, one pair at a time.

Memory does not grow with the length of the clip: the loop is :func:`.stages.generate`, the same
per-pair generator as :func:`.stages.interpolate`, fed with 8-bit arrays; it holds the previous and
the current input frame (as arrays and as tensors), the flows of that pair and the blends of at most
one batch of new frames, and every output frame is handed on (written) before the next input is read.

Input frames appear in the output bit for bit; new frames are rounded to the input's sample size (8
bits, or 16 where the output keeps more: video/carry.py). An alpha channel, where the output keeps it,
is interpolated beside the colour (:func:`.stages.generate`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError
from .hooks import Hooks
from .options import Options, make_options
from .schedule import Retime
from .stages import generate


@dataclass
class RunReport:
    """What a run did: frame counts, rates, scene cuts (pair i = between input frames i and i+1)."""

    frames_in: int = 0
    frames_out: int = 0
    kept: str = ""  # what of the input beyond 8-bit RGB the output keeps ("alpha and 10-bit samples")
    fps_in: Fraction | None = None
    fps_out: Fraction | None = None
    cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def cut_times(self) -> list[float]:
        """Seconds (input timeline) of each cut, at the first frame of the new shot."""
        return [float((i + 1) / self.fps_in) for i in self.cuts] if self.fps_in else []


def to_tensor(frame: np.ndarray, hooks: Hooks) -> torch.Tensor:
    """uint8 or uint16 (H,W,C) RGB or RGBA -> (1,C,H,W) in [0,1] on ``hooks.device``."""
    if frame.dtype == np.uint16:  # 0..65535; float32 holds every 16-bit value exactly
        x = torch.from_numpy(frame.astype(np.float32)).permute(2, 0, 1)[None]
        return hooks.place(x.to(device=hooks.device or "cpu") / 65535.0)
    x = torch.from_numpy(np.array(frame, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None]
    return hooks.place(x.to(device=hooks.device or "cpu").float() / 255.0)


def to_array(x: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """(C,H,W) or (1,C,H,W) in [0,1] -> (H,W,C) of ``dtype`` (uint8: 0..255, uint16: 0..65535), rounded."""
    top = np.iinfo(dtype).max
    x = x.reshape(x.shape[-3:]).detach().float().clamp(0, 1).mul(top).round()
    x = x.byte() if top == 255 else x.int()
    return x.permute(1, 2, 0).cpu().numpy().astype(dtype, copy=False)


def interpolate_frames(frames: Iterable[np.ndarray], engine, estimator, schedule, *, options: Options | None = None,
                       hooks: Hooks | None = None, total_pairs: int | None = None, report: RunReport | None = None,
                       first_frame: int = 0, final: bool = True, **overrides) -> Iterator[np.ndarray]:
    """Yield the output frames for a stream of input frames (uint8 or uint16 (H,W,3), or (H,W,4) with
    alpha), in order.

    ``schedule`` is a :class:`~.schedule.Retime` (or explicit timesteps). Input frames come out as
    they went in; new frames are rounded to the input frames' sample type (their alpha interpolated
    beside the colour, :func:`.stages.generate`). ``first_frame``/``final``: a part of a longer clip
    (:func:`.stages.generate`). Raises InputError for fewer than 2 frames.
    """
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    report = report if report is not None else RunReport()

    dtype = np.uint8  # of the input frames: new frames are rounded to it

    def counted():
        nonlocal dtype
        for frame in frames:
            report.frames_in += 1
            dtype = frame.dtype
            yield frame

    for _, value, is_new in generate(counted(), engine, estimator, schedule, place=lambda f: to_tensor(f, hooks),
                                     options=opts, hooks=hooks, total_pairs=total_pairs, cuts=report.cuts,
                                     first_frame=first_frame, final=final):
        report.frames_out += 1
        yield to_array(value, dtype) if is_new else value


def input_info(path):
    """Size, frame rate, frame count and audio of a video file or frame folder, read before a run
    (:class:`pervfi_core.video.VideoInfo`)."""
    from ..video import probe

    return probe(path)


def _looped(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames, then the first one again (the pair that closes a loop)."""
    first = None
    for frame in frames:
        first = frame if first is None else first
        yield frame
    if first is not None:
        yield first


def interpolate_file(input_path, output_path, engine, estimator, *, multiplier: int | None = None,
                     fps: float | None = None, input_fps: float | None = None, options: Options | None = None,
                     hooks: Hooks | None = None, overwrite: bool = False, crf: int = 16,
                     report: RunReport | None = None, loop: bool = False, **overrides) -> RunReport:
    """Interpolate a video file or folder of frames into a video file or folder of PNG frames.

    ``loop``: a seamless loop, as :func:`.clips.interpolate_clip` makes it (the last frame is also
    interpolated towards the first, which is kept from the start of the stream; its closing copy is
    not written).

    The output is written under a temporary name and renamed when complete; on any error or
    interruption (KeyboardInterrupt) the temporary output is removed and the exception re-raised.
    """
    from ..video import carried, open_input, open_output, write_all

    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise InputError(f"output {output_path} is the input; choose another name")
    reader = open_input(input_path, fps=input_fps)
    info = reader.info
    reader.format = fmt = carried(info, output_path, source=input_path)  # alpha, depth: what the output holds
    report = report if report is not None else RunReport()  # the caller's (a progress bar may read it)
    report.kept = fmt.describe()
    schedule = Retime(multiplier=multiplier, fps_out=fps, fps_in=info.fps) if fps is not None \
        else Retime(multiplier=multiplier if multiplier is not None else 2)
    report.fps_in, report.fps_out = info.fps, schedule.output_fps(info.fps)
    start = time.perf_counter()
    total = info.frame_count - 1 + int(loop) if info.frame_count else None
    # Nothing between creating the writer and write_all (which aborts it on any error or stop signal): a
    # stop signal there would strand its temporary file.
    try:
        writer = open_output(output_path, width=info.width, height=info.height, fps=report.fps_out,
                             audio_from=Path(input_path) if info.audio_codec else None, audio_codec=info.audio_codec,
                             overwrite=overwrite, crf=crf, sample_aspect=info.sample_aspect, fmt=fmt,
                             source_pix_fmt=info.pixel_format)
        write_all(writer, interpolate_frames(_looped(reader) if loop else reader, engine, estimator, schedule,
                                             options=opts, hooks=hooks, total_pairs=total, report=report,
                                             final=not loop))
    finally:
        reader.close()
    report.seconds = time.perf_counter() - start
    return report
