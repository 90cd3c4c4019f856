"""The streaming video loop: frames in, frames out, one pair at a time.

Memory does not grow with the length of the clip: the loop holds the previous and the current
input frame (as 8-bit arrays and as tensors), the flows of that pair and the blends of at most one
batch of new frames; every output frame is handed on (written) before the next input is read.
Blending is not deferred or parked here — each pair's flow -> blend -> decode runs to the end
before the next pair, which is what bounds memory.

Input frames appear in the output bit for bit (8-bit faithful); new frames are rounded to 8 bits.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .errors import InputError
from .pipeline import BLEND_MAX_PIXELS, interpolate_pair, nearest_input
from .pipeline_hooks import Hooks
from .pipeline_schedule import Retime
from .scenes import DEFAULT_THRESHOLD, is_cut

logger = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run did: frame counts, rates, scene cuts (pair i = between input frames i and i+1)."""

    frames_in: int = 0
    frames_out: int = 0
    fps_in: Fraction | None = None
    fps_out: Fraction | None = None
    cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def cut_times(self) -> list[float]:
        """Seconds (input timeline) of each cut, at the first frame of the new shot."""
        return [float((i + 1) / self.fps_in) for i in self.cuts] if self.fps_in else []


def to_tensor(frame: np.ndarray, hooks: Hooks) -> torch.Tensor:
    """uint8 (H,W,3) RGB -> (1,3,H,W) in [0,1] on ``hooks.device``."""
    x = torch.from_numpy(np.array(frame, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None]
    return hooks.place(x.to(device=hooks.device or "cpu").float() / 255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) in [0,1] -> uint8 (H,W,3), rounded."""
    x = x.reshape(x.shape[-3:]).detach().float().clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()


def interpolate_frames(frames: Iterable[np.ndarray], model, estimator, schedule, *, tau: float = 0.3, seed: int = 0,
                       scene_threshold: float = DEFAULT_THRESHOLD, hooks: Hooks | None = None, batch_size: int = 4,
                       max_pixels: int | None = BLEND_MAX_PIXELS, total_pairs: int | None = None,
                       report: RunReport | None = None) -> Iterator[np.ndarray]:
    """Yield the output frames (uint8 (H,W,3)) for a stream of input frames, in order.

    ``schedule`` is a :class:`~pervfi_core.pipeline_schedule.Retime` (or explicit timesteps).
    New frame j of a stochastic model uses seed ``seed + j``. Raises InputError for fewer than 2 frames.
    """
    hooks = hooks or Hooks()
    report = report if report is not None else RunReport()
    prev, prev_t, n = None, None, 0
    for frame in frames:
        hooks.check_interrupt()
        cur_t = to_tensor(frame, hooks)
        if prev is not None:
            for out in _pair(n - 1, prev, frame, prev_t, cur_t, model, estimator, schedule, tau, seed,
                             scene_threshold, hooks, batch_size, max_pixels, report):
                report.frames_out += 1
                yield out
            hooks.report(n, total_pairs)
        prev, prev_t, n = frame, cur_t, n + 1
        report.frames_in = n
    if n < 2:
        raise InputError(f"need at least 2 input frames to interpolate, got {n}")
    final = schedule.final_target(n)
    if final is not None:
        report.frames_out += 1
        yield prev


def _pair(i, a, b, a_t, b_t, model, estimator, schedule, tau, seed, threshold, hooks, batch_size, max_pixels, report):
    targets = schedule.targets_in_pair(i)
    new = [tg for tg in targets if not tg.is_input]
    if targets and targets[0].is_input:
        yield a
    if not new:
        return
    if is_cut(a_t, b_t, threshold=threshold):
        report.cuts.append(i)
        logger.info("scene cut between input frames %d and %d: repeating frames instead of blending", i, i + 1)
        for tg in new:
            yield a if nearest_input(tg) == i else b
        return
    ys = interpolate_pair(a_t, b_t, [float(tg.t) for tg in new], model, estimator, tau=tau,
                          seeds=[seed + tg.index for tg in new], hooks=hooks, batch_size=batch_size,
                          max_pixels=max_pixels)
    for y in ys:
        yield to_uint8(y)


def interpolate_file(input_path, output_path, model, estimator, *, multiplier: int | None = None,
                     fps: float | None = None, input_fps: float | None = None, tau: float = 0.3, seed: int = 0,
                     scene_threshold: float = DEFAULT_THRESHOLD, hooks: Hooks | None = None, batch_size: int = 4,
                     max_pixels: int | None = BLEND_MAX_PIXELS, overwrite: bool = False, crf: int = 16,
                     report: RunReport | None = None) -> RunReport:
    """Interpolate a video file or folder of frames into a video file or folder of PNG frames.

    The output is written under a temporary name and renamed when complete; on any error or
    interruption (KeyboardInterrupt) the temporary output is removed and the exception re-raised.
    """
    from .video import open_input, open_output

    hooks = hooks or Hooks()
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise InputError(f"output {output_path} is the input; choose another name")
    reader = open_input(input_path, fps=input_fps)
    info = reader.info
    schedule = Retime(multiplier=multiplier, fps_out=fps, fps_in=info.fps) if fps is not None \
        else Retime(multiplier=multiplier if multiplier is not None else 2)
    report = report if report is not None else RunReport()  # the caller's (a progress bar may read it)
    report.fps_in, report.fps_out = info.fps, schedule.output_fps(info.fps)
    writer = open_output(output_path, width=info.width, height=info.height, fps=report.fps_out,
                         audio_from=Path(input_path) if info.audio_codec else None, audio_codec=info.audio_codec,
                         overwrite=overwrite, crf=crf)
    start = time.perf_counter()
    total = info.frame_count - 1 if info.frame_count else None
    try:
        for frame in interpolate_frames(reader, model, estimator, schedule, tau=tau, seed=seed,
                                        scene_threshold=scene_threshold, hooks=hooks, batch_size=batch_size,
                                        max_pixels=max_pixels, total_pairs=total, report=report):
            writer.write(frame)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    report.seconds = time.perf_counter() - start
    return report
