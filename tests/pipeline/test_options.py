"""Options are checked once, in the core, with the same rules for the API, the CLI and the nodes."""
import math
import re

import pytest
import torch
from testkit.clips import LinearBlend, ZeroFlow

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.pipeline import DEFAULT_TAU, Hooks, Options


@pytest.mark.parametrize("tau", [-1, -1e-9, 5, 1.0001, math.nan, math.inf, "warm", None, True])
def test_bad_tau_is_refused(tau):
    with pytest.raises(InputError, match="tau"):
        Options(tau=tau)


@pytest.mark.parametrize("field, value", [("seed", -1), ("seed", 2 ** 64), ("seed", 1.5), ("seed", True),
                                          ("scene_threshold", -3), ("scene_threshold", 1.5),
                                          ("scene_threshold", math.nan), ("batch_size", 0),
                                          ("flow_max_pixels", -5), ("blend_max_pixels", 0), ("blend_max_pixels", 10.5)])
def test_bad_values_are_refused(field, value):
    with pytest.raises(InputError, match=field.replace("_", " ")):
        Options(**{field: value})


def test_defaults_are_defined_once_and_valid():
    opts = Options()
    assert opts.tau == DEFAULT_TAU and opts.blend_max_pixels is None
    assert opts.noise == "shared" and opts.seed_for(3) == opts.seed_for(0) == 0  # one latent for every frame
    per_frame = Options(noise="per-frame")
    assert per_frame.seed_for(3) == 3 and Options(seed=2 ** 64 - 1, noise="per-frame").seed_for(1) == 0  # wraps
    with pytest.raises(InputError, match="noise: expected one of"):
        Options(noise="fresh")


def test_the_pipeline_refuses_bad_options_before_any_work():
    est = ZeroFlow()
    with pytest.raises(InputError, match="tau"):
        pipeline.interpolate(torch.rand(3, 3, 16, 16), LinearBlend(), est, 2, tau=-1)
    with pytest.raises(InputError, match="unknown option"):
        pipeline.interpolate(torch.rand(3, 3, 16, 16), LinearBlend(), est, 2, max_pixels=100)
    assert est.calls == 0


def test_threshold_zero_turns_scene_detection_off():
    a, b = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)  # as different as two frames get
    frames = torch.cat([a, b])
    cuts_on, cuts_off = [], []
    pipeline.interpolate(frames, LinearBlend(), ZeroFlow(), 2, cuts=cuts_on)
    out = pipeline.interpolate(frames, LinearBlend(), ZeroFlow(), 2, scene_threshold=0, cuts=cuts_off)
    assert cuts_on == [0] and cuts_off == []
    assert torch.allclose(out[1], torch.full_like(out[1], 0.5))  # blended, not repeated


def test_a_budget_above_the_engines_own_is_reported_not_silently_capped():
    model = LinearBlend()
    model.max_pixels = 32 * 32
    hooks = Hooks()
    # Two frames of independent noise are two different shots: scene detection off, so they are blended.
    pipeline.interpolate(torch.rand(2, 3, 32, 32), model, ZeroFlow(), 2, blend_max_pixels=64 * 64, hooks=hooks,
                         scene_threshold=0)
    assert any("above what linear allows" in line for line in hooks.log)
    quiet = Hooks()
    pipeline.interpolate(torch.rand(2, 3, 32, 32), model, ZeroFlow(), 2, hooks=quiet,
                         scene_threshold=0)  # default budget: no complaint
    assert quiet.log == []


def test_the_flow_budget_reaches_motion_estimation():
    seen = []

    class Recording(ZeroFlow):
        def __call__(self, img0, img1):
            seen.append(tuple(img0.shape[-2:]))
            return super().__call__(img0, img1)

    frames = torch.rand(2, 3, 128, 256)
    pipeline.interpolate(frames, LinearBlend(), Recording(), 2, flow_max_pixels=64 * 128)
    pipeline.estimate_flow(frames, Recording(), flow_max_pixels=64 * 128)
    assert seen == [(64, 128), (64, 128)]


# The API refuses, at its entry and naming the argument, what would otherwise fail deep inside or pass silently.
def _estimator_and_engine():
    from pervfi_core.engines import load_engine, load_estimator

    return load_estimator("dis"), load_engine("training-free")


@pytest.mark.parametrize("frames,needle", [
    (torch.rand(3, 3, 16, 16) - 0.5, "frames: expected values in [0, 1], got a minimum of -0.4"),
    (torch.rand(3, 3, 16, 16) * 255, "divide 8-bit data by 255"),
    (torch.linspace(0, 1.01, 3 * 3 * 16 * 16).reshape(3, 3, 16, 16), "got a maximum of 1.01; clamp them"),
    (torch.linspace(-1e-3, 1, 3 * 3 * 16 * 16).reshape(3, 3, 16, 16), "got a minimum of -0.001; clamp them"),
    (torch.rand(3, 3, 16, 16, device="meta"), "frames: a tensor on the 'meta' device"),
], ids=["negative", "8-bit-scale", "slight-overshoot", "slight-undershoot", "meta"])
def test_frames_outside_0_1_or_without_values_are_refused(frames, needle):
    est = ZeroFlow()
    with pytest.raises(InputError, match=re.escape(needle)):
        pipeline.interpolate(frames, LinearBlend(), est, 2)
    assert est.calls == 0


def test_frames_within_float_rounding_of_0_1_pass():
    """A colour op in float32 on data in [0, 1] may land a few ulps outside (checks.FRAME_TOLERANCE)."""
    from pervfi_core.checks import FRAME_TOLERANCE

    frames = torch.rand(3, 3, 16, 16)
    frames[0, 0, 0, 0], frames[1, 0, 0, 0] = 1 + FRAME_TOLERANCE / 2, -FRAME_TOLERANCE / 2
    assert pipeline.interpolate(frames, LinearBlend(), ZeroFlow(), 2).shape == (5, 3, 16, 16)
    for bad in (1 + 2 * FRAME_TOLERANCE, -2 * FRAME_TOLERANCE):
        frames[2, 0, 0, 0] = bad
        with pytest.raises(InputError, match=r"frames: expected values in \[0, 1\].*clamp them with x.clamp\(0, 1\)"):
            pipeline.interpolate(frames, LinearBlend(), ZeroFlow(), 2)


def test_an_estimator_where_the_engine_goes_and_the_reverse_are_named():
    estimator, engine = _estimator_and_engine()
    frames = torch.rand(3, 3, 16, 16)
    with pytest.raises(InputError, match="engine: expected an engine .* got a motion estimator"):
        pipeline.interpolate(frames, estimator, engine, 2)
    with pytest.raises(InputError, match="estimator: expected a motion estimator .* got an engine"):
        pipeline.estimate_flow(frames, engine)
    flows = pipeline.estimate_flow(frames, estimator)
    with pytest.raises(InputError, match="engine: expected an engine"):
        pipeline.blend(frames, flows, estimator, 2)
