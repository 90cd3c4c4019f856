"""One segment's work, as a Ray task runs it: read its frames, interpolate, write them losslessly.

Plain Python (no Ray here), so it is tested and reasoned about like the rest of the pipeline. The
engine and the motion estimator are loaded once per worker process and kept (:func:`engines_for`):
Ray reuses a worker process for the next task of the same kind, so a model is not reloaded per
segment.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..pipeline.options import Options
from .jobs import SegmentWriter
from .scan import Scan
from .segments import Segment

logger = logging.getLogger(__name__)

# Fault injection for the tests: "INDEX:FRAMES:MARKER" makes the first attempt at segment INDEX exit
# the worker process after FRAMES frames (and create MARKER, so the retry runs normally).
CRASH_ENV = "PERVFI_DISTRIBUTED_CRASH_ONCE"


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs where: ids as the CLI takes them; ``threads``: torch threads per task."""

    model: str = "default"
    flow: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 1


@dataclass(frozen=True)
class SegmentTask:
    """Everything a worker needs for one segment (picklable). ``fps_out`` retimes (as ``--fps``), else
    ``multiplier`` (default 2); ``input_fps`` overrides the input's rate (a frame folder's)."""

    input: str
    job_dir: str
    segment: Segment
    expected_frames: int
    engine: EngineSpec
    options: Options
    multiplier: int | None = None
    fps_out: float | None = None
    input_fps: float | None = None
    label: str = ""  # the input's name, for messages


@dataclass
class SegmentResult:
    """What one finished attempt made; ``attempt``: its partial folder's id (:class:`.jobs.SegmentWriter`)."""

    index: int
    frames: int
    seconds: float
    cuts: list[int] = field(default_factory=list)
    host: str = ""
    attempt: str = ""
    loaded: bool = False  # this task loaded the engine (the worker process had none, or another one)


_ENGINES: dict = {}
_LOADS = 0  # engines loaded by this process


def engines_for(spec: EngineSpec):
    """``(model, estimator, device, dtype)`` for ``spec``, loaded on first use in this process and kept."""
    if spec not in _ENGINES:
        global _LOADS
        _LOADS += 1
        import torch

        from ..allocator import tune_malloc
        from ..engines import load_estimator, load_engine, pick_device, pick_dtype

        tune_malloc()  # a worker process is ours, as the CLI's is (allocator.py)
        torch.set_num_threads(max(1, spec.threads))
        device = pick_device(spec.device)
        dtype = pick_dtype(spec.dtype, device)
        _ENGINES.clear()  # one engine per process: a new job's engine replaces the old one
        _ENGINES[spec] = (load_engine(spec.model, device=device, dtype=dtype),
                          load_estimator(spec.flow, device=device), device, dtype)
    return _ENGINES[spec]


def make_schedule(multiplier: int | None, fps_out: float | None, fps_in: Fraction):
    """The output grid, built exactly as a single-process run builds it (pipeline/loop.py)."""
    from ..pipeline.schedule import Retime

    if fps_out is not None:
        return Retime(multiplier=multiplier, fps_out=fps_out, fps_in=fps_in)
    return Retime(multiplier=multiplier if multiplier is not None else 2)


def compute_segment(task: SegmentTask, scan: Scan) -> SegmentResult:
    """Interpolate ``task.segment`` of ``task.input`` into a finished segment folder of the job.

    Raises InputError when the input is not visible here (no shared filesystem), cannot be decoded
    there, or yields another number of frames than planned; nothing is left under the final name then.
    """
    from ..errors import InputError
    from ..pipeline.hooks import Hooks
    from ..pipeline.loop import RunReport, interpolate_frames
    from .reader import read_segment

    seg = task.segment
    for what, path in (("input", task.input), ("job folder", task.job_dir)):
        if not Path(path).exists():
            raise InputError(f"{what} {path} is not visible on worker {socket.gethostname()}: inputs and the job "
                             "folder must be on a filesystem every node of the Ray cluster shares")
    loads = _LOADS
    model, estimator, device, dtype = engines_for(task.engine)
    loaded = _LOADS > loads
    crash = _crash_plan(seg.index)
    start = time.perf_counter()
    report = RunReport()
    schedule = make_schedule(task.multiplier, task.fps_out, scan.fps)
    writer = SegmentWriter(task.job_dir, seg)
    try:
        frames = read_segment(task.input, seg, scan, fps=task.input_fps)
        for frame in interpolate_frames(frames, model, estimator, schedule, options=task.options,
                                        hooks=Hooks(device=device, dtype=dtype), report=report,
                                        total_pairs=seg.pairs, first_frame=seg.start, final=seg.final):
            writer.write(frame)
            if crash is not None and writer.count == crash:
                os._exit(3)  # a worker lost mid-segment (tests): no cleanup, the partial folder stays
        if writer.count != task.expected_frames:
            raise InputError(f"{task.label or task.input} frames {seg.start}..{seg.stop}: made {writer.count} "
                             f"output frames, planned {task.expected_frames}")
        seconds = time.perf_counter() - start
        writer.commit({"segment": [seg.start, seg.stop], "cuts": report.cuts, "seconds": seconds,
                       "host": socket.gethostname()})
    except BaseException:
        writer.abort()
        raise
    return SegmentResult(seg.index, writer.count, seconds, list(report.cuts), socket.gethostname(), writer.attempt,
                         loaded)


def _crash_plan(index: int) -> int | None:
    """Frames after which to exit the process (see :data:`CRASH_ENV`), once per marker file."""
    value = os.environ.get(CRASH_ENV)
    if not value:
        return None
    which, frames, marker = value.split(":", 2)
    if int(which) != index or os.path.exists(marker):
        return None
    Path(marker).touch()
    return int(frames)
