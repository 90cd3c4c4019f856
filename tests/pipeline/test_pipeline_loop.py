"""The streaming loop: bounded memory (structure), scene cuts, interruption, exact inputs, files."""
import gc
import weakref

import numpy as np
import pytest
import torch
from testkit.clips import LinearBlend, ZeroFlow, make_clip

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.pipeline import Hooks
from pervfi_core.pipeline.loop import RunReport, interpolate_file, interpolate_frames
from pervfi_core.pipeline.schedule import Retime
from pervfi_core.pipeline.scenes import cut_scores, is_cut


class _Tracked(np.ndarray):
    """An ndarray that can be weak-referenced, to see when the loop lets go of an input frame."""


def test_stream_holds_a_constant_number_of_frames(clip_frames):
    frames = [f.view(_Tracked) for f in clip_frames * 2]  # 12 frames
    refs = [weakref.ref(f) for f in frames]
    pulled = []

    def source():
        while frames:
            pulled.append(1)
            yield frames.pop(0)

    max_alive = 0
    out = interpolate_frames(source(), LinearBlend(), ZeroFlow(), Retime(multiplier=3), scene_threshold=1.0)
    count = 0
    for k, _frame in enumerate(out):
        count += 1
        # an output of pair i is produced after reading at most frames 0..i+1
        assert len(pulled) <= k // 3 + 2
        if k % 3:
            continue
        gc.collect()
        max_alive = max(max_alive, sum(r() is not None for r in refs[:len(pulled)]))
    assert count == 11 * 3 + 1
    assert max_alive <= 3  # previous + current (+ the output being handed on), whatever the clip length


def test_inputs_pass_through_bit_exact_and_counts(clip_frames):
    report = RunReport()
    out = list(interpolate_frames(iter(clip_frames), LinearBlend(), ZeroFlow(), Retime(multiplier=2),
                                  scene_threshold=1.0, report=report))
    assert len(out) == report.frames_out == 11 and report.frames_in == 6
    for k, f in enumerate(clip_frames):
        assert np.array_equal(out[2 * k], f)
    mid = (clip_frames[0].astype(np.float32) + clip_frames[1]) / 2
    assert np.abs(out[1] - mid).max() <= 0.5 + 1e-3  # new frames rounded to 8 bits


def _two_scenes(h=32, w=48):
    """Scene A (dark blue ramp, brightening to the right) for 3 frames, then scene B (bright orange ramp,
    brightening to the left) for 3 frames: new colours and a new layout."""
    ramp = torch.linspace(0, 1, w).expand(h, w)
    a = torch.stack([0.1 + 0.2 * ramp, 0.1 + 0.1 * ramp, 0.5 + 0.3 * ramp])
    back = ramp.flip(-1)
    b = torch.stack([0.68 + 0.3 * back, 0.4 + 0.2 * back, 0.2 * back])
    return [a + 0.01 * k for k in range(3)] + [b + 0.01 * k for k in range(3)]


def test_scene_cut_is_detected_and_never_blended():
    frames = torch.stack(_two_scenes())
    assert [i for i in range(len(frames) - 1) if is_cut(frames[i:i + 1], frames[i + 1:i + 2])] == [2]
    assert float(cut_scores(frames[:1], frames[1:2])[0]) < 0.2
    out = pipeline.interpolate(frames, LinearBlend(), ZeroFlow(), 4)
    a_colours, b_colours = frames[:3], frames[3:]
    for y in out:  # every output frame is within one scene: equal to a blend of that scene's frames only
        dist_a = (y - a_colours).abs().amax(dim=(1, 2, 3)).min()
        dist_b = (y - b_colours).abs().amax(dim=(1, 2, 3)).min()
        assert min(dist_a, dist_b) <= 0.011
    # the pair across the cut repeats the nearer frame: t = .25, .5 -> frame 2; t = .75 -> frame 3
    assert torch.equal(out[9], frames[2]) and torch.equal(out[10], frames[2]) and torch.equal(out[11], frames[3])
    # stages and stream agree and report the cut
    blends = pipeline.blend(frames, pipeline.estimate_flow(frames, ZeroFlow()), LinearBlend(), 4)
    assert blends.cuts == [2]
    assert torch.equal(pipeline.decode(frames, blends, LinearBlend()), out)
    report = RunReport()
    u8 = [(f.permute(1, 2, 0) * 255).round().byte().numpy() for f in frames]
    list(interpolate_frames(iter(u8), LinearBlend(), ZeroFlow(), Retime(multiplier=4), report=report))
    assert report.cuts == [2]


def test_single_frame_is_an_error(clip_frames):
    with pytest.raises(InputError, match="at least 2"):
        list(interpolate_frames(iter(clip_frames[:1]), LinearBlend(), ZeroFlow(), Retime(multiplier=2)))


@pytest.mark.parametrize("suffix", [".mp4", ""])
def test_interruption_leaves_no_output(tmp_path, suffix):
    src = make_clip(tmp_path / "in.mp4", frames=8)
    out = tmp_path / f"out{suffix}"
    calls = []

    def interrupt_on_third_pair():
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpolate_file(src, out, LinearBlend(), ZeroFlow(), multiplier=2,
                         hooks=Hooks(check_interrupt=interrupt_on_third_pair))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # no output, no temporary file


def test_error_mid_run_leaves_no_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6)

    class Broken(LinearBlend):
        def blend(self, *a):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        interpolate_file(src, tmp_path / "out.mkv", Broken(), ZeroFlow(), multiplier=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


class _Seeded(LinearBlend):
    """A stochastic fake: the new frame carries noise drawn from its own seed."""

    stochastic = True

    def decode(self, b, tau=0.3, seed=0, z=None):
        g = torch.Generator().manual_seed(int(seed))
        return (b.conds[0] + tau * torch.rand(b.conds[0].shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("multiplier, cut_at", [(2, [3]), (3, [2, 4]), (2, [1, 2, 3, 4])])
def test_parts_overlapping_by_one_frame_concatenate_to_the_whole_run(clip_frames, multiplier, cut_at):
    """Segments (Ray) and chunks (Meta Batch) share a frame with their neighbour; seeds follow the
    clip-wide frame index, so the concatenation equals one run frame for frame."""
    from pervfi_core.pipeline.stages import generate
    from pervfi_core.pipeline.loop import to_tensor

    schedule, hooks = Retime(multiplier=multiplier), Hooks()
    run = lambda frames, **kw: [v if not new else v.clone() for _, v, new in generate(  # noqa: E731
        frames, _Seeded(), ZeroFlow(), schedule, place=lambda f: to_tensor(f, hooks), options=pipeline.Options(
            scene_threshold=0, tau=0.5), **kw)]
    whole = run(clip_frames)
    bounds = [0, *cut_at, len(clip_frames) - 1]
    parts = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        parts += run(clip_frames[a:b + 1], first_frame=a, final=k == len(bounds) - 2)
    assert len(parts) == len(whole) == (len(clip_frames) - 1) * multiplier + 1
    for x, y in zip(parts, whole):
        assert type(x) is type(y) and (np.array_equal(x, y) if isinstance(x, np.ndarray) else torch.equal(x, y))
