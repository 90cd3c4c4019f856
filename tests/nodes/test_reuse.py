"""A new seed or τ never re-runs a deterministic engine; a stochastic one samples again."""
from __future__ import annotations

import pytest
import torch

import nodes.interpolate as interpolate_mod
from nodes import reuse
from nodes.interpolate import PerVFIInterpolate
from nodes.loaders import PerVFILoadFlowModel, PerVFILoadModel
from testkit.nodes import run_node


@pytest.fixture
def counted(monkeypatch):
    """Counts the clip runs of the Interpolate node."""
    calls = []
    real = interpolate_mod.run_clip

    def run_clip(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(interpolate_mod, "run_clip", run_clip)
    reuse.forget()
    yield calls
    reuse.forget()


def _flow():
    return run_node(PerVFILoadFlowModel, estimator="dis", checkpoint="default")[0]


def test_seed_and_tau_changes_reuse_a_deterministic_result(clip, counted):
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="float32")
    flow_model, frames = _flow(), clip[:3]
    first = run_node(PerVFIInterpolate, frames=frames, model=model, flow_model=flow_model, multiplier=2, tau=0.3, seed=0)
    again = run_node(PerVFIInterpolate, frames=frames, model=model, flow_model=flow_model, multiplier=2, tau=0.9,
                     seed=12345, noise="per-frame")
    assert len(counted) == 1 and again[0] is first[0]
    # anything that does decide the frames runs again: other frames, another multiplier
    run_node(PerVFIInterpolate, frames=frames.clone(), model=model, flow_model=flow_model, multiplier=2, tau=0.3,
             seed=0)
    run_node(PerVFIInterpolate, frames=frames, model=model, flow_model=flow_model, multiplier=3, tau=0.3, seed=0)
    assert len(counted) == 3


def test_a_stochastic_engine_samples_again_for_a_new_seed(clip, counted):
    model, = run_node(PerVFILoadModel, checkpoint="pervfi-own-tau", dtype="float32")
    flow_model, frames = _flow(), torch.nn.functional.interpolate(
        clip[:2].permute(0, 3, 1, 2), size=(27, 48), mode="area").permute(0, 2, 3, 1).contiguous()
    kw = dict(frames=frames, model=model, flow_model=flow_model, multiplier=2, tau=0.8)
    a = run_node(PerVFIInterpolate, seed=1, **kw)[0]
    b = run_node(PerVFIInterpolate, seed=2, **kw)[0]
    assert len(counted) == 2 and not torch.equal(a[1], b[1])
    assert torch.equal(run_node(PerVFIInterpolate, seed=1, **kw)[0], a) and len(counted) == 3  # the same sample
