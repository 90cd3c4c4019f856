"""Loaders that cannot be combined wrongly, edge cases core handles, the streamed VIDEO path."""
from __future__ import annotations

import json

import pytest
import torch

from nodes import comfy as rt
from nodes.interpolate import SINGLE_FRAME_NOTE, PerVFIInterpolate
from nodes.loaders import PerVFILoadFlowModel, PerVFILoadModel, estimator_problem
from nodes.video import PerVFIInterpolateVideo
from pervfi_core.errors import InputError
from testkit.nodes import CLIP, run_node, schema_inputs


@pytest.fixture(scope="module")
def models():
    return (run_node(PerVFILoadModel, checkpoint="training-free", dtype="float32")[0],
            run_node(PerVFILoadFlowModel, estimator="dis", checkpoint="default")[0])


def test_impossible_loader_combinations_are_refused_at_validation_without_a_download(monkeypatch):
    from pervfi_core.weights import fetch

    monkeypatch.setattr(fetch, "fetch_entry", lambda *a, **k: pytest.fail("a download was attempted"))
    flows = schema_inputs(PerVFILoadFlowModel)
    raft = next(o for o in flows["checkpoint"].options if o.startswith("raft-sintel"))
    for estimator, checkpoint, says in (("dis", raft, "takes no weights"), ("dis", "raft-sintel", "takes no weights"),
                                        ("gmflow", raft, "raft weights"), ("raft", "rife-pypi", "rife weights")):
        verdict = PerVFILoadFlowModel.validate_inputs(estimator=estimator, checkpoint=checkpoint)
        assert isinstance(verdict, str) and says in verdict and verdict.count(". ") == 0  # one sentence
    assert PerVFILoadFlowModel.validate_inputs(estimator="raft", checkpoint=raft) is True
    assert "motion weights" in PerVFILoadModel.validate_inputs(checkpoint="raft-sintel", dtype="auto")
    assert PerVFILoadModel.validate_inputs(checkpoint="training-free", dtype="auto") is True  # a saved workflow's id
    assert estimator_problem("dis", "default") is None


def test_each_engine_is_listed_once_and_downloads_are_marked():
    models = schema_inputs(PerVFILoadModel)["checkpoint"].options
    ids = [o.split(" · ")[0] for o in models]
    assert len(ids) == len(set(ids)) and "pervfi-rife" not in ids  # the default engine is listed once, as default
    assert all("download" in o for o in models if o.startswith(("pervfi-v00", "pervfi-vb")))
    estimators = schema_inputs(PerVFILoadFlowModel)["estimator"].options
    assert any(o.startswith("gmflow-refine") and "18.9 MB" in o for o in estimators)
    assert any(o.startswith("dis") and "weight-free" in o for o in estimators)


def test_one_frame_is_returned_unchanged_and_the_report_says_so(clip, models):
    out, fps, report = run_node(PerVFIInterpolate, frames=clip[:1], model=models[0], flow_model=models[1],
                                multiplier=2, tau=0.3, seed=0)
    assert out is clip[:1] or torch.equal(out, clip[:1])
    data = json.loads(report)
    assert data["notes"] == [SINGLE_FRAME_NOTE] and data["frames_out"] == 1 and fps == 0.0


def test_rgba_gets_one_line_naming_core_s_split_node(clip, models):
    rgba = torch.cat([clip, torch.ones_like(clip[..., :1])], dim=-1)
    with pytest.raises(InputError, match="Split Image with Alpha") as err:
        run_node(PerVFIInterpolate, frames=rgba, model=models[0], flow_model=models[1], multiplier=2, tau=0.3, seed=0)
    assert "\n" not in str(err.value)


def test_an_image_that_strays_slightly_outside_0_1_is_clamped_with_a_warning(clip, models, caplog):
    """Upstream nodes may overshoot [0, 1] a little (upscalers, sharpening): the nodes clamp such frames and
    say so; data of another scale (0..255) is still refused. The Python API refuses both (checks.py)."""
    import logging

    stray = clip.clone()
    stray[1, 0, 0, 0], stray[2, 1, 1, 1] = 1.03, -0.02
    with caplog.at_level(logging.WARNING, logger="nodes.images"):
        out, _, _ = run_node(PerVFIInterpolate, frames=stray, model=models[0], flow_model=models[1], multiplier=2,
                             tau=0.3, seed=0)
    assert [r.getMessage() for r in caplog.records] == [
        "frames: values from -0.02 to 1.03 lie outside [0, 1] (an upstream node overshoots); clamped to [0, 1]"]
    assert torch.equal(out[::2], stray.clamp(0, 1)) and float(out.amin()) >= 0 and float(out.amax()) <= 1
    caplog.clear()
    with pytest.raises(InputError, match="divide 8-bit data by 255"):
        run_node(PerVFIInterpolate, frames=clip * 255, model=models[0], flow_model=models[1], multiplier=2,
                 tau=0.3, seed=0)
    run_node(PerVFIInterpolate, frames=clip, model=models[0], flow_model=models[1], multiplier=2, tau=0.3, seed=0)
    assert caplog.records == []  # frames in [0, 1]: not a word


def test_unwired_source_fps_is_reported_as_unknown_and_the_estimator_is_named(clip, models):
    from nodes.stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation

    _, fps, report = run_node(PerVFIInterpolate, frames=clip, model=models[0], flow_model=models[1], multiplier=2,
                              tau=0.3, seed=0)
    data = json.loads(report)
    assert fps == 0.0 and data["fps_in"] is None and data["estimator"] == "dis"
    flow, = run_node(PerVFIFlowEstimation, frames=clip, flow_model=models[1])
    blend, _ = run_node(PerVFIASBBlend, frames=clip, flow=flow, model=models[0], multiplier=2)
    _, _, report = run_node(PerVFIFlowDecode, blend=blend, model=models[0], tau=0.3, seed=0)
    assert json.loads(report)["estimator"] == "dis" and json.loads(report)["fps_in"] is None


def test_the_image_output_is_the_buffer_the_pipeline_wrote(clip, models):
    out, _, _ = run_node(PerVFIInterpolate, frames=clip, model=models[0], flow_model=models[1], multiplier=3,
                         tau=0.3, seed=0)
    assert out.is_contiguous() and out.shape == (10, *clip.shape[1:]) and out._base is not None  # a view, no copy
    assert torch.equal(out[::3], clip)


def test_a_file_backed_video_is_streamed_to_a_new_file(tmp_path, models):
    from pervfi_core.video import probe

    out, report = run_node(PerVFIInterpolateVideo, video=rt.video_from_file(CLIP), model=models[0],
                           flow_model=models[1], multiplier=2, tau=0.3, seed=0)
    data = json.loads(report)
    path = rt.video_file(out)
    assert data["streamed"] and path is not None and path != CLIP
    info, src = probe(path), probe(CLIP)
    assert info.frame_count == 2 * src.frame_count - 1 and info.fps == 2 * src.fps
    assert data["frames_in"] == src.frame_count and data["frames_out"] == info.frame_count
    path.unlink()


def test_a_streamed_loop_and_a_streamed_retime_match_the_in_memory_frame_counts(models):
    from pervfi_core.video import probe

    src = probe(CLIP)
    for kw, expected in (({"loop": True}, 2 * src.frame_count), ({"target_fps": float(src.fps) * 2.5}, None)):
        out, report = run_node(PerVFIInterpolateVideo, video=rt.video_from_file(CLIP), model=models[0],
                               flow_model=models[1], multiplier=2, tau=0.3, seed=0, **kw)
        data, path = json.loads(report), rt.video_file(out)
        assert data["streamed"] and data["frames_in"] == src.frame_count
        assert probe(path).frame_count == data["frames_out"] == (expected or data["frames_out"])
        path.unlink()
    with pytest.raises(InputError, match="below the source fps"):
        run_node(PerVFIInterpolateVideo, video=rt.video_from_file(CLIP), model=models[0], flow_model=models[1],
                 multiplier=2, tau=0.3, seed=0, target_fps=float(src.fps) / 2)
