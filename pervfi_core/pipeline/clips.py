"""Whole clips, seamless loops and clips fed in parts (chunks), on the one per-pair generator.

* :func:`interpolate_clip` — :func:`.stages.generate` over a clip held in memory, optionally as a
  loop: the last frame is also interpolated towards the first, and the copy of the first frame that
  would close the loop is not emitted, so the output repeats seamlessly (N inputs at x m -> N·m frames).
* :class:`ChunkedClip` — a long clip fed in parts, e.g. by VideoHelperSuite's Meta Batch Manager. It
  keeps, between parts, the previous part's last input frame and its clip-wide index, and how many
  output frames were emitted. A part either repeats that frame as its first frame (``overlap=True``)
  or simply continues after it (``overlap=False``: the held frame is put in front, so the pair across
  the boundary is interpolated). Every part is run with its clip-wide ``first_frame``, so targets and
  the seeds of a stochastic engine are those of one run over the whole clip, and outputs already
  emitted are dropped: the parts' outputs concatenate to that run, frame for frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from ..checks import MAX_FRAME_VALUE, check_image, trusted
from ..errors import InputError
from .hooks import Hooks
from .options import Options, make_options
from .schedule import ExplicitTimesteps, Retime, as_schedule
from .stages import generate

OVERLAP_TOLERANCE = 0.5 / 255  # the same 8-bit frame decoded twice: equal within rounding


def frame_rate_schedule(multiplier: int, fps_in=None, fps_out=None, *, timesteps=None):
    """``(schedule, output fps)``: the exact timeline of a run and its frame rate (None while the input
    rate is unknown).

    ``timesteps`` (explicit times in (0, 1)) win, then ``fps_out`` (> 0): retime ``fps_in -> fps_out``
    (24 -> 60: arbitrary timesteps, exact fractions, as the CLI's ``--fps``); it may not be below
    ``fps_in`` (interpolation adds frames, it does not drop them). Otherwise ``multiplier``: output rate
    fps_in x multiplier.
    """
    rate_in = None if fps_in is None else frame_rate("source fps", fps_in)
    if timesteps is not None:
        schedule = ExplicitTimesteps(timesteps)
        return schedule, None if rate_in is None else rate_in * (len(schedule.ts) + 1)
    if fps_out is None:
        schedule = Retime(multiplier=multiplier)
    else:
        rate_out = frame_rate("target fps", fps_out)
        if rate_in is None:
            raise InputError("target fps: the source frame rate is needed to retime; give the source fps too")
        if rate_out < rate_in:
            raise InputError(f"target fps {float(rate_out):g} is below the source fps {float(rate_in):g}: "
                             "interpolation adds frames, it does not drop them; choose a target of at least the source rate "
                             "(or 0 to use the multiplier)")
        schedule = Retime(fps_in=rate_in, fps_out=rate_out)
    return schedule, None if rate_in is None else schedule.output_fps(rate_in)


def frame_rate(name: str, value) -> Fraction:
    """A positive frame rate as an exact fraction (29.97 -> 2997/100, 30000/1001 kept), else InputError."""
    if isinstance(value, bool):
        raise InputError(f"{name}: expected a frame rate in frames per second such as 24 or 29.97, got {value!r}")
    try:
        rate = value if isinstance(value, Fraction) else Fraction(str(float(value))).limit_denominator(1001)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name}: expected a frame rate in frames per second such as 24 or 29.97, "
                         f"got {value!r}") from None
    if rate <= 0:
        raise InputError(f"{name}: expected a positive frame rate such as 24 or 29.97, got {value!r}; connect the "
                         "clip's fps (e.g. Get Video Components' fps output) or type its rate")
    return rate


@dataclass
class ClipResult:
    """Output of :func:`interpolate_clip` / :meth:`ChunkedClip.feed`.

    frames: (M, 3, H, W) in [0, 1]; first_output: clip-wide index of ``frames[0]``; pairs: frame pairs
    processed; cuts: clip-wide pair indices across a scene cut (pair i: frames i and i+1); seconds: wall
    time of the run.
    """

    frames: torch.Tensor
    first_output: int = 0
    pairs: int = 0
    cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_pair(self) -> float | None:
        return self.seconds / self.pairs if self.pairs else None


def loop_frames(frames: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) -> (N+1,3,H,W): the first frame appended, so the last pair runs from frame N-1 to frame 0."""
    check_image("frames", frames, max_value=MAX_FRAME_VALUE)
    if frames.shape[0] < 2:
        raise InputError(f"loop mode: needs at least 2 frames (the last one is interpolated towards the first), "
                         f"got {frames.shape[0]}; give a sequence, or turn loop mode off")
    return torch.cat([frames, frames[:1]])


def output_count(schedule, n: int, *, first_frame: int = 0, final: bool = True, skip_before: int = 0) -> int:
    """How many frames :func:`.stages.generate` emits for ``n`` input frames starting at clip-wide index
    ``first_frame``, leaving out those with an index below ``skip_before``."""
    targets = [tg for i in range(first_frame, first_frame + n - 1) for tg in schedule.targets_in_pair(i)]
    last = schedule.final_target(first_frame + n) if final and n >= 2 else None
    return sum(tg.index >= skip_before for tg in targets + ([last] if last is not None else []))


def _run(frames: torch.Tensor, engine, estimator, schedule, *, opts: Options, hooks: Hooks, first_frame: int,
         final: bool, skip_before: int, alloc=None) -> ClipResult:
    """generate() over ``frames`` (clip-wide index ``first_frame``, checked by the caller), keeping outputs with
    index >= ``skip_before``.

    Every output frame is written into one tensor allocated up front (no concatenation at the end, which
    held the clip twice): ``alloc(m)`` returns it, (m,3,H,W) with any strides (e.g. a permuted view of a
    host's [m,H,W,3] buffer); by default it is allocated on the park device in the frames' dtype. New
    frames are clamped to [0, 1] as they are written.
    """
    n = frames.shape[0]
    park = hooks.park_device or frames.device
    count = output_count(schedule, n, first_frame=first_frame, final=final, skip_before=skip_before)
    out = alloc(count) if alloc is not None else torch.empty(count, *frames.shape[1:], device=park, dtype=frames.dtype)
    cuts: list[int] = []
    k, first = 0, None
    start = time.perf_counter()
    with trusted():  # generate() runs to its end inside the scope
        for target, value, is_new in generate((frames[i:i + 1] for i in range(n)), engine, estimator, schedule,
                                              place=hooks.place, options=opts, hooks=hooks, total_pairs=n - 1,
                                              cuts=cuts, first_frame=first_frame, final=final):
            if target.index < skip_before:
                continue
            first = target.index if first is None else first
            out[k:k + 1].copy_(value.clamp(0, 1) if is_new else value)
            k += 1
    return ClipResult(out[:k], first if first is not None else skip_before, n - 1, cuts, time.perf_counter() - start)


def interpolate_clip(frames: torch.Tensor, engine, estimator, timesteps=2, *, loop: bool = False,
                     options: Options | None = None, hooks: Hooks | None = None, alloc=None, **overrides) -> ClipResult:
    """A whole clip: frames (N,3,H,W) in [0,1] -> :class:`ClipResult`, inputs kept exactly.

    ``timesteps``: a multiplier, a :class:`~.schedule.Retime` or explicit timesteps. ``loop``: also
    interpolate from the last frame back to the first and drop the closing copy of the first frame
    (needs N >= 2). Without ``loop`` the frames are those of :func:`.stages.interpolate`. ``alloc``: where
    the output goes (see :func:`_run`).
    """
    if loop:
        frames = loop_frames(frames)  # checks the frames
    else:
        check_image("frames", frames, max_value=MAX_FRAME_VALUE)
        if frames.shape[0] < 2:
            raise InputError(f"frames: need at least 2 frames to interpolate, got {frames.shape[0]}")
    opts, hooks = make_options(options, **overrides), hooks or Hooks()
    return _run(frames, engine, estimator, as_schedule(timesteps), opts=opts, hooks=hooks, first_frame=0,
                final=not loop, skip_before=0, alloc=alloc)


@dataclass
class ChunkedClip:
    """State of a clip fed in parts (module docstring). A fresh object starts a new clip.

    last_frame: the previous part's last input frame (1,3,H,W) on the CPU (None before the first part);
    last_index: its clip-wide index; emitted: output frames emitted so far (= the next output's index);
    parts: parts fed so far. A part that raises leaves the state as it was.
    """

    last_frame: torch.Tensor | None = None
    last_index: int = -1
    emitted: int = 0
    parts: int = 0

    @property
    def started(self) -> bool:
        return self.last_frame is not None

    def starts_with_last(self, frames: torch.Tensor) -> bool:
        """Whether ``frames[0]`` is the previous part's last frame (within 8-bit rounding)."""
        if not self.started or tuple(frames.shape[1:]) != tuple(self.last_frame.shape[1:]):
            return False
        diff = (frames[:1].detach().float().cpu() - self.last_frame).abs().max()
        return bool(diff <= OVERLAP_TOLERANCE)

    def feed(self, frames: torch.Tensor, engine, estimator, timesteps=2, *, overlap: bool,
             options: Options | None = None, hooks: Hooks | None = None, alloc=None, **overrides) -> ClipResult:
        """The output frames of the next part ``frames`` (N,3,H,W) in [0,1] (see the module docstring).

        ``overlap``: the part starts with the previous part's last frame (checked: InputError otherwise);
        else it continues right after it. The first part needs 2 frames; a later part one new frame.
        """
        check_image("frames", frames, max_value=MAX_FRAME_VALUE)
        opts, hooks = make_options(options, **overrides), hooks or Hooks()
        schedule = as_schedule(timesteps)
        if not self.started:
            parts, first = frames, 0
        else:
            held = tuple(self.last_frame.shape[2:])
            if tuple(frames.shape[2:]) != held:
                raise InputError(
                    f"chunk mode: this chunk's frames are {frames.shape[3]}x{frames.shape[2]}, the previous chunk's "
                    f"{held[1]}x{held[0]} (W x H); all chunks of a clip must have one size (set chunk index 0 to "
                    "start a new clip)")
            if overlap and not self.starts_with_last(frames):
                raise InputError(
                    f"chunk mode (overlapping chunks): this chunk does not start with the previous chunk's last frame "
                    f"(clip frame {self.last_index}); overlapping chunks must repeat it as their first frame. Feed the "
                    "chunks in order, choose 'consecutive' when chunks do not overlap (e.g. Meta Batch), or set "
                    "chunk index 0 to start a new clip")
            parts = frames if overlap else torch.cat([self.last_frame.to(frames), frames])
            first = self.last_index
        if parts.shape[0] < 2:
            what = "the first chunk of a clip" if not self.started else "an overlapping chunk"
            raise InputError(f"chunk mode: {what} needs at least 2 frames, got {parts.shape[0]}")
        result = _run(parts, engine, estimator, schedule, opts=opts, hooks=hooks, first_frame=first, final=True,
                      skip_before=self.emitted, alloc=alloc)
        self.last_frame = parts[-1:].detach().float().cpu().clone()
        self.last_index = first + parts.shape[0] - 1
        self.emitted = max(self.emitted, result.first_output + result.frames.shape[0])
        self.parts += 1
        return result
