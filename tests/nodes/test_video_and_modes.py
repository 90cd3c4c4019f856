"""VIDEO in and out, frame rates, scene cuts, loop and chunk (Meta Batch) modes, reports, bad input."""
from __future__ import annotations

import json
from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch

from nodes import comfy as rt
from nodes.interpolate import PerVFIInterpolate, meta_batch_index
from nodes.loaders import PerVFILoadFlowModel, PerVFILoadModel
from nodes.stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation
from nodes.video import PerVFIInterpolateVideo
from pervfi_core.errors import InputError
from pervfi_core.pipeline import Retime
from nodes.standin_io import HiddenHolder
from testkit.nodes import run_node

AUDIO = {"waveform": torch.zeros(1, 2, 4800), "sample_rate": 48000}


@pytest.fixture(scope="module")
def models():
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="float32")
    flow_model, = run_node(PerVFILoadFlowModel, estimator="dis", checkpoint="default")
    return model, flow_model


def _interpolate(frames, models, **kw):
    model, flow_model = models
    return run_node(PerVFIInterpolate, frames=frames, model=model, flow_model=flow_model,
                    **{"multiplier": 2, "tau": 0.3, "seed": 0, **kw})


def _long(clip, n=9):
    return clip[torch.arange(n) % clip.shape[0]].contiguous()


@pytest.mark.parametrize("api", [False, True], ids=["stand-alone", "comfyui"])
def test_video_node_doubles_the_frame_rate_and_keeps_the_audio(clip, models, api, request):
    if api:
        request.getfixturevalue("fake_comfyui")  # VIDEO built with comfy_api's VideoFromComponents
    video = rt.make_video(clip, Fraction(25, 2), AUDIO)
    out, report = run_node(PerVFIInterpolateVideo, video=video, model=models[0], flow_model=models[1], multiplier=2,
                           tau=0.3, seed=0)
    parts = out.get_components()
    assert parts.frame_rate == 25 and parts.audio is AUDIO and parts.images.shape == (7, *clip.shape[1:])
    assert torch.equal(parts.images[::2], clip)  # inputs in place
    frames, fps, _ = _interpolate(clip, models, source_fps=12.5)
    assert torch.equal(parts.images, frames) and fps == 25.0  # the same frames as the IMAGE node
    data = json.loads(report)
    assert data["fps_out"] == 25.0 and data["audio"] and data["engine"]["name"] == "training-free"


def test_target_fps_uses_the_exact_timeline_of_the_cli(clip, models):
    frames, fps, report = _interpolate(_long(clip, 5), models, source_fps=24.0, target_fps=60.0)
    assert fps == 60.0 and frames.shape[0] == Retime(fps_in=24, fps_out=60).count(5) == 11
    assert json.loads(report)["fps_out_exact"] == "60"
    video = rt.make_video(_long(clip, 5), Fraction(24), None)
    out, _ = run_node(PerVFIInterpolateVideo, video=video, model=models[0], flow_model=models[1], multiplier=2,
                      tau=0.3, seed=0, target_fps=60.0)
    assert out.get_components().frame_rate == 60 and torch.equal(out.get_components().images, frames)


def test_split_nodes_carry_the_frame_rate_to_the_decode_output(clip, models):
    model, flow_model = models
    flow, = run_node(PerVFIFlowEstimation, frames=clip, flow_model=flow_model)
    blend, _ = run_node(PerVFIASBBlend, frames=clip, flow=flow, model=model, multiplier=3, source_fps=12.5)
    frames, fps, report = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=0.3, seed=0)
    assert fps == 37.5 and frames.shape[0] == 10
    data = json.loads(report)
    assert data["multiplier"] == 3 and data["fps_in"] == 12.5 and data["frames_out"] == 10


def test_scene_cuts_are_not_blended_and_are_reported(clip, models):
    frames = torch.cat([clip[:2], 1 - clip[2:]])  # a different palette from frame 2 on
    out, _, report = _interpolate(frames, models)
    assert json.loads(report)["cuts"] == [1]
    assert torch.equal(out[3], frames[1])  # the new frame of the cut pair repeats the nearer input
    out_off, _, report_off = _interpolate(frames, models, scene_threshold=0.0)
    assert json.loads(report_off)["cuts"] == [] and not torch.equal(out_off[3], frames[1])


def test_loop_mode_closes_the_loop(clip, models):
    out, fps, report = _interpolate(clip, models, loop=True, source_fps=12.5)
    assert out.shape[0] == 2 * clip.shape[0] and fps == 25.0 and json.loads(report)["loop"]
    assert torch.equal(out[::2], clip) and not torch.equal(out[-1], clip[0])  # no repeated first frame at the end


@pytest.mark.parametrize("mode, bounds", [("consecutive", [(0, 3), (3, 6), (6, 9)]),
                                          ("overlapping", [(0, 4), (3, 7), (6, 9)])])
def test_meta_batch_chunks_concatenate_to_one_run(clip, models, mode, bounds):
    frames = _long(clip)
    whole, _, _ = _interpolate(frames, models)
    outs = []
    for k, (a, b) in enumerate(bounds):  # the Meta Batch Manager re-runs the workflow; the node's id stays
        prompt = {"1": {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": 3, "requeue": k}}}
        out, _, report = _interpolate(frames[a:b], models, chunk_mode=mode, hidden=HiddenHolder(f"chunks-{mode}", prompt))
        outs.append(out)
        assert json.loads(report)["chunk"]["index"] == k
    assert torch.equal(torch.cat(outs), whole)
    # batch 0 again: a new clip starts (the last clip's frame is not carried over)
    restart, _, _ = _interpolate(frames[:3], models, chunk_mode=mode, hidden=HiddenHolder(
        f"chunks-{mode}", {"1": {"class_type": "VHS_BatchManager", "inputs": {"requeue": 0}}}))
    assert torch.equal(restart, whole[:5])


def test_meta_batch_index_is_read_from_the_prompt():
    assert meta_batch_index({"3": {"class_type": "VHS_BatchManager", "inputs": {"requeue": 4}}}) == 4
    assert meta_batch_index({"3": {"class_type": "LoadVideo", "inputs": {}}}) is None
    assert meta_batch_index(None) is None


def test_bad_input_gets_a_clear_error_and_nothing_else(clip, models):
    model, flow_model = models
    node = SimpleNamespace(interpolate=lambda video, model, flow_model, m, tau, seed, **kw: run_node(
        PerVFIInterpolateVideo, video=video, model=model, flow_model=flow_model, multiplier=m, tau=tau, seed=seed, **kw))
    empty = rt.make_video(clip[:0], Fraction(25), None)
    with pytest.raises(InputError, match="VIDEO has no frames"):
        node.interpolate(empty, model, flow_model, 2, 0.3, 0)
    for rate in (0, -25):  # a rate that reached the node through a link (widgets refuse it earlier)
        with pytest.raises(InputError, match="positive frame rate"):
            node.interpolate(rt.make_video(clip, rate, None), model, flow_model, 2, 0.3, 0)
        if rate:  # 0 is the widget's "not given"
            with pytest.raises(InputError, match="positive frame rate"):
                PerVFIInterpolate.execute(clip, model, flow_model, 2, 0.3, 0, source_fps=rate)
    with pytest.raises(InputError, match="below the source fps"):
        node.interpolate(rt.make_video(clip, 30, None), model, flow_model, 2, 0.3, 0, target_fps=24.0)
    with pytest.raises(InputError, match="same size"):
        _interpolate([clip[:2], clip[2:, :40]], models)
    with pytest.raises(InputError, match="loop mode: needs at least 2 frames"):
        _interpolate(clip[:1], models, loop=True)
    with pytest.raises(InputError, match="loop mode: needs at least 2 frames"):
        node.interpolate(rt.make_video(clip[:1], 25, None), model, flow_model, 2, 0.3, 0, loop=True)
    with pytest.raises(InputError, match="expected a VIDEO"):
        node.interpolate(clip, model, flow_model, 2, 0.3, 0)


def test_chunks_out_of_order_or_not_continuing_are_refused(clip, models):
    frames, node = _long(clip), HiddenHolder("chunks-out-of-order")
    run = lambda x, **kw: _interpolate(x, models, hidden=node, **kw)  # noqa: E731
    with pytest.raises(InputError, match="has not run chunk 0"):
        run(frames[3:6], chunk_mode="consecutive", chunk_index=1)
    first, _, _ = run(frames[:4], chunk_mode="overlapping", chunk_index=0)
    with pytest.raises(InputError, match="does not start with the previous chunk's last frame"):
        run(frames[4:7], chunk_mode="overlapping", chunk_index=1)
    with pytest.raises(InputError, match="next chunk of the clip is 1"):
        run(frames[3:7], chunk_mode="overlapping", chunk_index=2)
    with pytest.raises(InputError, match="cannot be combined"):
        run(frames[3:7], chunk_mode="overlapping", loop=True)
    second, _, _ = run(frames[3:7], chunk_mode="overlapping", chunk_index=1)  # refusals changed nothing
    whole, _, _ = _interpolate(frames[:7], models)
    assert torch.equal(torch.cat([first, second]), whole)
