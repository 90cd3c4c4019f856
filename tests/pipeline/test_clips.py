"""Whole clips, loops and chunked clips (pipeline/clips.py) on the fake engines of testkit.clips."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.pipeline import Retime, interpolate
from pervfi_core.pipeline.clips import ChunkedClip, frame_rate_schedule, interpolate_clip, loop_frames
from testkit.clips import LinearBlend, SeededNoise, ZeroFlow


def _clip(n: int = 9, cut_at: int | None = None) -> torch.Tensor:
    """n frames (n,3,12,16): one texture moving a pixel per frame (all differ, same colours: no cut);
    from ``cut_at`` on, another texture in a darker palette (a scene cut before frame ``cut_at``)."""
    base = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    other = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(2)) * 0.15 + 0.05
    frames = torch.stack([torch.roll(base if cut_at is None or k < cut_at else other, k, dims=-1) for k in range(n)])
    return frames


def _chunks(frames, bounds, *, overlap, engine, schedule):
    """Feed frames[a:b] for each (a, b) to one ChunkedClip; the concatenated outputs and all cuts."""
    clip, outs, cuts = ChunkedClip(), [], []
    for a, b in bounds:
        result = clip.feed(frames[a:b], engine, ZeroFlow(), schedule, overlap=overlap, tau=0.5, seed=7,
                           noise="per-frame")
        outs.append(result.frames)
        cuts += result.cuts
    return torch.cat(outs), cuts


SCHEDULES = {"x3": Retime(multiplier=3), "24->60": Retime(fps_in=24, fps_out=60)}


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("engine", [LinearBlend, SeededNoise], ids=["deterministic", "stochastic"])
def test_chunks_concatenate_to_one_run_frame_for_frame(schedule, engine):
    frames = _clip(9, cut_at=5)  # a cut between frames 4 and 5: inside a chunk and near a boundary
    whole = interpolate_clip(frames, engine(), ZeroFlow(), schedule, tau=0.5, seed=7, noise="per-frame")
    assert whole.cuts == [4] and whole.frames.shape[0] == schedule.count(9)
    overlapping, cuts_o = _chunks(frames, [(0, 4), (3, 7), (6, 9)], overlap=True, engine=engine(), schedule=schedule)
    consecutive, cuts_c = _chunks(frames, [(0, 3), (3, 6), (6, 8), (8, 9)], overlap=False, engine=engine(),
                                  schedule=schedule)
    for parts, cuts in ((overlapping, cuts_o), (consecutive, cuts_c)):
        assert torch.equal(parts, whole.frames)  # same frames, same order, same seeds
        assert cuts == whole.cuts  # clip-wide pair indices


def test_stochastic_chunks_differ_from_restarting_each_chunk():
    """The test above could not pass by accident: with per-frame noise, chunks run as new clips get other seeds."""
    frames = _clip(7)
    opts = dict(tau=0.5, seed=7, noise="per-frame")
    whole = interpolate_clip(frames, SeededNoise(), ZeroFlow(), 2, **opts).frames
    restarted = torch.cat([interpolate_clip(frames[:4], SeededNoise(), ZeroFlow(), 2, **opts).frames,
                           interpolate_clip(frames[3:], SeededNoise(), ZeroFlow(), 2, **opts).frames[1:]])
    assert restarted.shape == whole.shape and not torch.equal(restarted, whole)


def test_interpolate_clip_without_loop_is_the_fused_pipeline():
    frames = _clip(5)
    assert torch.equal(interpolate_clip(frames, LinearBlend(), ZeroFlow(), 4).frames,
                       interpolate(frames, LinearBlend(), ZeroFlow(), 4))


def test_loop_interpolates_the_last_frame_towards_the_first_and_drops_the_repeat():
    frames = _clip(4)
    result = interpolate_clip(frames, LinearBlend(), ZeroFlow(), 2, loop=True, scene_threshold=0)
    out = result.frames
    assert out.shape[0] == 4 * 2 and result.pairs == 4  # N·m frames: the closing copy of frame 0 is left out
    for i in range(4):
        assert torch.equal(out[2 * i], frames[i])
    torch.testing.assert_close(out[7], (frames[3] + frames[0]) / 2)  # LinearBlend at t = 1/2 of the wrap pair
    assert not torch.equal(out[-1], frames[0])
    # a frame-rate change loops the same way: positions 0 .. N (excluded) at 24 -> 60
    retimed = interpolate_clip(frames, LinearBlend(), ZeroFlow(), Retime(fps_in=24, fps_out=60), loop=True)
    assert retimed.frames.shape[0] == 10 and torch.equal(retimed.frames[0], frames[0])


def test_loop_and_clip_errors_are_clear():
    with pytest.raises(InputError, match="loop mode: needs at least 2 frames"):
        interpolate_clip(_clip(1), LinearBlend(), ZeroFlow(), 2, loop=True)
    with pytest.raises(InputError, match="loop mode"):
        loop_frames(_clip(1))
    with pytest.raises(InputError, match="at least 2 frames"):
        interpolate_clip(_clip(1), LinearBlend(), ZeroFlow(), 2)


def test_a_chunk_that_does_not_continue_the_clip_is_refused_and_changes_nothing():
    frames = _clip(8)
    clip = ChunkedClip()
    first = clip.feed(frames[:4], LinearBlend(), ZeroFlow(), 2, overlap=True)
    state = (clip.last_index, clip.emitted, clip.parts)
    with pytest.raises(InputError, match="does not start with the previous chunk's last frame"):
        clip.feed(frames[4:], LinearBlend(), ZeroFlow(), 2, overlap=True)  # frame 3 missing at the start
    with pytest.raises(InputError, match="one size"):
        clip.feed(torch.rand(3, 3, 10, 16), LinearBlend(), ZeroFlow(), 2, overlap=False)
    with pytest.raises(InputError, match="at least 2 frames"):
        clip.feed(frames[3:4], LinearBlend(), ZeroFlow(), 2, overlap=True)  # only the repeated frame
    assert (clip.last_index, clip.emitted, clip.parts) == state
    second = clip.feed(frames[3:], LinearBlend(), ZeroFlow(), 2, overlap=True)  # the right chunk still works
    assert torch.equal(torch.cat([first.frames, second.frames]), interpolate(frames, LinearBlend(), ZeroFlow(), 2))
    with pytest.raises(InputError, match="first chunk of a clip needs at least 2 frames"):
        ChunkedClip().feed(frames[:1], LinearBlend(), ZeroFlow(), 2, overlap=False)


def test_frame_rate_schedule_is_the_cli_timeline_and_refuses_bad_rates():
    schedule, fps = frame_rate_schedule(2, 24, 60)
    assert fps == 60 and schedule.count(25) == 61 and schedule.step == Retime(fps_in=24, fps_out=60).step
    assert frame_rate_schedule(3, 12.5)[1] == Fraction(75, 2)
    assert frame_rate_schedule(2, 30000 / 1001, 60)[0].step == Fraction(500, 1001)  # NTSC rates stay exact
    assert frame_rate_schedule(2, 25, timesteps=[0.25, 0.5])[1] == 75
    for fps_in in (0, -24, float("nan"), "abc"):
        with pytest.raises(InputError, match="source fps"):
            frame_rate_schedule(2, fps_in)
    with pytest.raises(InputError, match="below the source fps"):
        frame_rate_schedule(2, 30, 24)
    with pytest.raises(InputError, match="target fps: expected a positive"):
        frame_rate_schedule(2, 24, -60)


def test_the_clip_is_written_into_the_buffer_alloc_returns():
    """One output buffer (the nodes' IMAGE, BHWC) filled frame by frame: no concatenation at the end."""
    from pervfi_core.pipeline.clips import interpolate_clip, output_count
    from pervfi_core.pipeline.schedule import Retime
    from pervfi_core.training_free import TrainingFreeVFI

    frames = torch.rand(4, 3, 16, 24)
    zero = lambda a, b: (torch.zeros(1, 2, 16, 24), torch.zeros(1, 2, 16, 24))  # noqa: E731
    buffers = []

    def alloc(count):
        buffers.append(torch.full((count, 16, 24, 3), -1.0))
        return buffers[-1].permute(0, 3, 1, 2)

    for loop in (False, True):
        result = interpolate_clip(frames, TrainingFreeVFI(), zero, 3, loop=loop, alloc=alloc)
        plain = interpolate_clip(frames, TrainingFreeVFI(), zero, 3, loop=loop)
        assert result.frames.data_ptr() == buffers[-1].data_ptr() and torch.equal(result.frames, plain.frames)
        assert buffers[-1].shape[0] == output_count(Retime(multiplier=3), 4 + loop, final=not loop) == len(plain.frames)
