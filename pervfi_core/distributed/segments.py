"""Segment planning: which input frames each Ray task interpolates.

A segment is the input frames ``start..stop`` (both included). Neighbours share one frame (the
``stop`` of one is the ``start`` of the next), and each is run with ``first_frame=start`` and
``final`` only for the last (:func:`pervfi_core.pipeline.stages.generate`), so the concatenated
outputs are exactly those of one run over the whole clip: every output frame belongs to the pair
it sits in, and every pair lies in exactly one segment.

Boundaries go to scene cuts where one is near, otherwise every ``segment_frames`` input frames.
A cut between frames ``k`` and ``k + 1`` puts the boundary on ``k + 1``, so the next segment starts
with the new shot. Where boundaries fall never changes the output, only how the work is cut.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_whole

from ..errors import InputError

DEFAULT_SEGMENT_FRAMES = 240  # 10 s at 24 fps: minutes of work per task, seconds of overhead
MIN_SEGMENT_FRAMES = 2  # one pair


@dataclass(frozen=True)
class Segment:
    """Input frames ``start..stop`` (included) of a clip of ``n_frames``; ``index`` in the plan."""

    index: int
    start: int
    stop: int
    final: bool

    @property
    def name(self) -> str:
        """Folder name of the finished segment: its frame range, so a re-plan reuses equal ranges."""
        return f"seg-{self.start:07d}-{self.stop:07d}{'-final' if self.final else ''}"

    @property
    def pairs(self) -> int:
        return self.stop - self.start


def check_segment_frames(value) -> int:
    """``value`` as an int >= 2, or :class:`InputError` saying why."""
    return check_whole("segment frames", value, MIN_SEGMENT_FRAMES,
                       hint=f"input frames per Ray task, neighbours sharing one; default {DEFAULT_SEGMENT_FRAMES}")


def auto_segment_frames(n_frames: int, slots: int) -> int:
    """A segment length that gives every one of ``slots`` parallel tasks at least two segments (load
    balance when segments take unequal time), capped at :data:`DEFAULT_SEGMENT_FRAMES`."""
    per_slot = math.ceil(max(n_frames - 1, 1) / max(2 * slots, 1)) + 1
    return max(MIN_SEGMENT_FRAMES, min(DEFAULT_SEGMENT_FRAMES, per_slot))


def plan_segments(n_frames: int, segment_frames: int, cuts: list[int] = ()) -> list[Segment]:
    """Segments of at most ``segment_frames`` input frames covering frames ``0..n_frames-1``.

    ``cuts``: pair indices ``k`` of scene cuts (between frames k and k+1). A segment ends at the last
    cut boundary ``k + 1`` in the second half of its nominal span, else at the nominal end; so no
    segment but the last is shorter than half ``segment_frames``.
    """
    segment_frames = check_segment_frames(segment_frames)
    if n_frames < 2:
        raise InputError(f"need at least 2 input frames to interpolate, got {n_frames}")
    boundaries = sorted({k + 1 for k in cuts if 0 <= k < n_frames - 1})
    last = n_frames - 1
    segments, start = [], 0
    while start < last:
        stop = min(start + segment_frames - 1, last)
        if stop < last:
            near = [b for b in boundaries if start + math.ceil((segment_frames - 1) / 2) <= b < stop]
            stop = near[-1] if near else stop
        segments.append(Segment(len(segments), start, stop, stop == last))
        start = stop
    return segments


def output_counts(segments: list[Segment], schedule, n_frames: int) -> list[int]:
    """Output frames each segment yields under ``schedule`` (a Retime): its pairs' targets, plus the
    frame on the last input for the final segment when the grid hits it."""
    final = schedule.final_target(n_frames)
    return [sum(len(schedule.targets_in_pair(i)) for i in range(s.start, s.stop)) + (1 if s.final and final else 0)
            for s in segments]
