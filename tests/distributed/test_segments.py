"""Segment plans: every pair in exactly one segment, neighbours sharing one frame, cuts as boundaries."""
from __future__ import annotations

import pytest

from pervfi_core.distributed.segments import auto_segment_frames, output_counts, plan_segments
from pervfi_core.errors import InputError
from pervfi_core.pipeline.schedule import Retime


@pytest.mark.parametrize("n", [2, 3, 40, 241])
@pytest.mark.parametrize("frames", [2, 3, 7, 40, 240])
def test_plan_covers_every_pair_once_with_one_shared_frame(n, frames):
    plan = plan_segments(n, frames)
    assert plan[0].start == 0 and plan[-1].stop == n - 1 and plan[-1].final
    assert [s.final for s in plan[:-1]] == [False] * (len(plan) - 1)
    assert all(a.stop == b.start for a, b in zip(plan, plan[1:]))  # one shared input frame
    assert all(1 <= s.pairs <= frames - 1 for s in plan)
    assert sum(s.pairs for s in plan) == n - 1
    assert [s.index for s in plan] == list(range(len(plan)))


def test_boundary_moves_to_a_cut_in_the_second_half():
    # cut between 19 and 20: the segment ends on 20, the first frame of the new shot
    assert [(s.start, s.stop) for s in plan_segments(40, 24, cuts=[19])] == [(0, 20), (20, 39)]
    # too early in the span (before its middle): the nominal boundary stays
    assert [(s.start, s.stop) for s in plan_segments(40, 24, cuts=[5])] == [(0, 23), (23, 39)]
    # the last of several cuts in the window wins
    assert plan_segments(100, 30, cuts=[16, 25, 80])[0].stop == 26


def test_bad_segment_length_and_clips_are_refused():
    for bad in (1, 0, -3, 2.5, True, "8"):
        with pytest.raises(InputError, match="segment frames"):
            plan_segments(40, bad)
    with pytest.raises(InputError, match="at least 2"):
        plan_segments(1, 8)


@pytest.mark.parametrize("schedule", [Retime(multiplier=2), Retime(multiplier=3), Retime(fps_out=60, fps_in=25),
                                      Retime(fps_out=24, fps_in=30)], ids=["x2", "x3", "25to60", "30to24"])
def test_segment_outputs_add_up_to_the_whole_run(schedule):
    for n, frames in [(40, 7), (41, 2), (97, 24)]:
        plan = plan_segments(n, frames)
        assert sum(output_counts(plan, schedule, n)) == schedule.count(n)


def test_auto_length_gives_each_worker_two_segments_and_is_capped():
    assert auto_segment_frames(40, 2) == 11  # 39 pairs over 4 segments
    assert len(plan_segments(40, auto_segment_frames(40, 2))) == 4
    assert auto_segment_frames(100_000, 2) == 240
    assert auto_segment_frames(2, 16) == 2
