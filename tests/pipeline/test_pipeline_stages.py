"""The stage functions (estimate_flow -> blend -> decode), the fused path, hooks, OOM fallback, tiles."""
import pytest
import torch
from testkit.clips import LinearBlend, ZeroFlow

from pervfi_core import pipeline
from pervfi_core.errors import InputError
from pervfi_core.pipeline import Hooks, OutOfMemory
from pervfi_core.pipeline.tiling import run_tiled, tile_boxes


def _frames(n=4, h=12, w=20):
    # one scene (a horizontal ramp) getting slightly brighter: linear blends are recognisable, no "cut"
    ramp = torch.linspace(0.1, 0.8, w).expand(3, h, w)
    return torch.stack([ramp + 0.03 * k for k in range(n)]) + 0.01 * torch.rand(n, 3, h, w)


def test_stages_shapes_order_and_inputs_kept():
    x = _frames(4)
    flows = pipeline.estimate_flow(x, ZeroFlow())
    assert flows.forward.shape == flows.backward.shape == (3, 2, 12, 20)
    blends = pipeline.blend(x, flows, LinearBlend(), 3)
    out = pipeline.decode(x, blends, LinearBlend())
    assert out.shape == (10, 3, 12, 20)
    assert torch.equal(out[::3], x)  # inputs exactly
    assert torch.allclose(out[1], x[0] * 2 / 3 + x[1] / 3)
    assert torch.allclose(out[8], x[2] / 3 + x[3] * 2 / 3)


def test_fused_interpolate_equals_stages():
    x = _frames(3)
    model, est = LinearBlend(), ZeroFlow()
    split = pipeline.decode(x, pipeline.blend(x, pipeline.estimate_flow(x, est), model, [0.25, 0.5]), model)
    fused = pipeline.interpolate(x, model, est, [0.25, 0.5])
    assert torch.allclose(split, fused)


def test_hooks_progress_interrupt_and_parking():
    x = _frames(4)
    seen, checks = [], []
    hooks = Hooks(progress=lambda d, t: seen.append((d, t)), check_interrupt=lambda: checks.append(1), park_device="cpu")
    pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2, hooks=hooks)
    assert seen == [(1, 3), (2, 3), (3, 3)]  # per pair
    assert len(checks) >= 3  # at least once per pair

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2, hooks=Hooks(check_interrupt=stop))


def test_oom_fallback_smaller_batches_then_tiles():
    x = _frames(2, 32, 48)
    model = LinearBlend(fail_above=1)
    hooks = Hooks()
    out = pipeline.interpolate(x, model, ZeroFlow(), 5, hooks=hooks, batch_size=4)
    assert out.shape[0] == 6 and set(model.batches) == {1}
    assert any("batches of" in note for note in hooks.log)
    # a frame too large for one call even alone: retried in tiles, same result
    x = _frames(2, 256, 256)
    model = LinearBlend(fail_pixels_above=200 * 200)
    hooks = Hooks()
    tiled = pipeline.interpolate(x, model, ZeroFlow(), 2, hooks=hooks)
    assert any("tiles" in note for note in hooks.log)
    assert torch.allclose(tiled, pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2))
    with pytest.raises(OutOfMemory):
        pipeline.interpolate(x, LinearBlend(fail_pixels_above=1), ZeroFlow(), 2)


def test_tiles_cover_once_and_stitch_exactly():
    boxes = tile_boxes(50, 70, 16, 5)
    cover = torch.zeros(50, 70)
    for (y0, y1, x0, x1), (iy0, iy1, ix0, ix1) in boxes:
        cover[y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1] += 1
    assert torch.equal(cover, torch.ones(50, 70))
    x = torch.rand(2, 3, 50, 70)
    blur = lambda xs: torch.nn.functional.avg_pool2d(xs[0], 3, 1, 1, count_include_pad=False)  # noqa: E731
    assert torch.allclose(run_tiled(blur, [x], tile=16, margin=2, hooks=Hooks()), blur([x]), atol=1e-6)


def test_large_frames_are_processed_in_tiles_within_the_pixel_budget():
    x = _frames(2, 200, 300)
    model = LinearBlend(fail_pixels_above=200 * 200)  # every call must stay within (tile + context)^2
    out = pipeline.interpolate(x, model, ZeroFlow(), 2, blend_max_pixels=100 * 100)
    assert len(model.batches) > 1
    assert torch.allclose(out, pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2))


def test_a_model_can_ask_for_smaller_calls_than_max_pixels():
    x = _frames(2, 200, 300)
    model = LinearBlend(fail_pixels_above=200 * 200)
    model.max_pixels = 100 * 100  # like PerVFI.max_pixels: the model's own per-call budget wins
    out = pipeline.interpolate(x, model, ZeroFlow(), 2, blend_max_pixels=10**9)
    assert len(model.batches) > 1
    assert torch.allclose(out, pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2))


def test_flow_downscaled_for_large_frames():
    seen = []

    def est(a, b):
        seen.append(tuple(a.shape[-2:]))
        flow = torch.ones_like(a[:, :2])
        return flow, -flow

    f, b = pipeline.flow_pair(est, torch.rand(1, 3, 40, 80), torch.rand(1, 3, 40, 80), max_pixels=20 * 40)
    assert seen == [(20, 40)] and f.shape == (1, 2, 40, 80)
    assert torch.allclose(f, torch.full_like(f, 2.0))  # 1 px at half size = 2 px at full size


def test_bad_inputs():
    with pytest.raises(InputError):
        pipeline.estimate_flow(torch.rand(1, 3, 8, 8), ZeroFlow())  # one frame
    with pytest.raises(InputError):
        pipeline.interpolate(torch.rand(3, 4, 8, 8), LinearBlend(), ZeroFlow())  # 4 channels
    x = _frames(3)
    flows = pipeline.estimate_flow(x[:2], ZeroFlow())
    with pytest.raises(InputError):
        pipeline.blend(x, flows, LinearBlend(), 2)  # flows of another clip
    with pytest.raises(InputError):
        pipeline.blend(x, pipeline.estimate_flow(x, ZeroFlow()), LinearBlend(), 0)


def _moving_frames(n=3, h=37, w=53):
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 4 + 2, w // 4 + 2), size=(h + 8, w + 8), mode="bicubic")
    return torch.cat([base[..., 4:4 + h, 4 - k:4 - k + w] for k in range(n)]).clamp(0, 1)  # 1 px/frame pan


@pytest.mark.parametrize("engine", ["training-free", "vb"])
def test_odd_sizes_with_real_engines(engine):
    from pervfi_core import build_engine
    from pervfi_core.engines import load_estimator
    from pervfi_core.training_free import TrainingFreeVFI

    x = _moving_frames()
    model = TrainingFreeVFI() if engine == "training-free" else build_engine("vb")
    out = pipeline.interpolate(x, model, load_estimator("auto"), 2)
    assert out.shape == (5, 3, 37, 53) and torch.equal(out[::2], x)
    assert bool(((out >= 0) & (out <= 1)).all())


def test_stochastic_model_seeds_are_per_frame_and_stages_match_fused():
    from pervfi_core import build_engine

    class Seeded(LinearBlend):
        stochastic = True

        def __init__(self):
            super().__init__()
            self.seeds = []

        def decode(self, b, tau=0.3, seed=0, z=None):
            self.seeds.append(seed)
            g = torch.Generator().manual_seed(seed)
            return b.conds[0] + tau * torch.rand(b.conds[0].shape, generator=g)

    x = _moving_frames(3, 16, 24)
    est, fake = ZeroFlow(), Seeded()
    blends = pipeline.blend(x, pipeline.estimate_flow(x, est), fake, 3)
    assert fake.batches == [1, 1, 1, 1]  # one new frame per call: seeds do not depend on batching
    a = pipeline.decode(x, blends, fake, tau=0.5, seed=7, noise="per-frame")
    assert fake.seeds == [8, 9, 11, 12]  # seed + output index of each new frame
    assert torch.equal(a, pipeline.interpolate(x, fake, est, 3, tau=0.5, seed=7, noise="per-frame"))
    assert not torch.equal(a, pipeline.decode(x, blends, fake, tau=0.5, seed=8, noise="per-frame"))
    fake.seeds.clear()
    shared = pipeline.decode(x, blends, fake, tau=0.5, seed=7)  # the default: one latent for every new frame
    assert fake.seeds == [7, 7, 7, 7] and not torch.equal(shared, a)
    # the real v00 model (random weights): stages and the fused path agree, inputs untouched
    torch.manual_seed(0)
    model = build_engine("v00")
    x = x[:2]
    split = pipeline.decode(x, pipeline.blend(x, pipeline.estimate_flow(x, est), model, 2), model, tau=0.5, seed=7)
    fused = pipeline.interpolate(x, model, est, 2, tau=0.5, seed=7)
    assert torch.allclose(fused, split, atol=1e-5) and torch.equal(split[::2], x)


def test_blends_are_parked_on_the_park_device():
    """Between blend and decode (the nodes' split), blends wait on hooks.park_device, not the compute device."""
    x = _frames(3)
    blends = pipeline.blend(x, pipeline.estimate_flow(x, ZeroFlow()), LinearBlend(), 2,
                            hooks=Hooks(park_device="meta"))
    assert all(item.blend.conds[0].device.type == "meta" for item in blends.items)
    blends = pipeline.blend(x, pipeline.estimate_flow(x, ZeroFlow()), LinearBlend(), 2, hooks=Hooks(park_device=None))
    assert all(item.blend.conds[0].device.type == "cpu" for item in blends.items)


@pytest.mark.parametrize("engine", ["training-free", "v00"])
def test_frames_above_the_budget_are_blended_in_tiles_and_decode_like_the_fused_path(engine):
    """The split stages (the nodes) tile large frames like the fused path (same frames; cores of at
    most the budget plus context); for a local engine the stitched frame equals the untiled one."""
    from pervfi_core import build_engine
    from pervfi_core.training_free import TrainingFreeVFI

    x = _moving_frames(2, 100, 140)
    torch.manual_seed(0)
    model = TrainingFreeVFI() if engine == "training-free" else build_engine("v00")
    est = ZeroFlow()
    flows = pipeline.estimate_flow(x, est)
    budget = 64 * 64  # smaller than one frame: 2 x 3 tiles of 64 px (MIN_TILE) + context
    calls = []
    blend_fn = model.blend
    model.blend = lambda *a, **k: calls.append(a[0].shape[-2] * a[0].shape[-1]) or blend_fn(*a, **k)
    blends = pipeline.blend(x, flows, model, 2, blend_max_pixels=budget)
    item = blends.items[0].blend
    assert isinstance(item, pipeline.TiledBlend) and len(item.tiles) == len(calls) > 1
    split = pipeline.decode(x, blends, model, tau=0.3, seed=3)
    fused = pipeline.interpolate(x, model, est, 2, tau=0.3, seed=3, blend_max_pixels=budget)
    torch.testing.assert_close(split, fused, atol=1e-5, rtol=0)
    assert blends.masks[0].shape == (1, 1, 100, 140) and max(calls) <= (64 + 2 * 32) ** 2
    if engine == "training-free":  # a local engine: tiles with context give the untiled frame
        whole = pipeline.decode(x, pipeline.blend(x, flows, model, 2, blend_max_pixels=None), model)
        torch.testing.assert_close(split, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("failing", [dict(fail_above=1), dict(fail_pixels_above=200 * 200)])
def test_split_stages_share_the_fused_paths_out_of_memory_policy(failing):
    """Blend retries in smaller batches, then in tiles, exactly like interpolate; the frames are the same."""
    frames = torch.rand(1, 3, 256, 320).expand(3, -1, -1, -1) * torch.tensor([1.0, 0.9, 0.8]).view(3, 1, 1, 1)
    est = ZeroFlow()
    flows = pipeline.estimate_flow(frames, est)
    hooks = Hooks()
    split = pipeline.decode(frames, pipeline.blend(frames, flows, LinearBlend(**failing), 4, hooks=hooks, scene_threshold=0),
                            LinearBlend())
    fused = pipeline.interpolate(frames, LinearBlend(**failing), est, 4, scene_threshold=0)
    assert any("out of memory" in line for line in hooks.log)
    assert torch.allclose(split, fused, atol=1e-6) and split.shape[0] == 9


def test_decode_retries_a_batch_that_does_not_fit_one_frame_at_a_time():
    frames = torch.rand(2, 3, 16, 16)
    blends = pipeline.blend(frames, pipeline.estimate_flow(frames, ZeroFlow()), LinearBlend(), 4, scene_threshold=0)

    class DecodeOneAtATime(LinearBlend):
        def decode(self, b, tau=0.3, seed=0, z=None):
            if b.batch > 1:
                raise torch.OutOfMemoryError("CUDA out of memory (fake)")
            return super().decode(b)

    hooks = Hooks()
    out = pipeline.decode(frames, blends, DecodeOneAtATime(), hooks=hooks)
    assert torch.allclose(out, pipeline.decode(frames, blends, LinearBlend())) and "batches of 1" in hooks.log[-1]


def test_tiled_split_stages_equal_the_fused_path_bit_for_bit():
    """One tiling path (tiling.over_tiles): the split stages' tiles decode to exactly the fused path's frame."""
    from pervfi_core.training_free import TrainingFreeVFI

    x = _moving_frames(3, 100, 140)
    model, est = TrainingFreeVFI(), ZeroFlow()
    budget = 64 * 64
    blends = pipeline.blend(x, pipeline.estimate_flow(x, est), model, 3, blend_max_pixels=budget)
    assert all(isinstance(item.blend, pipeline.TiledBlend) for item in blends.items)
    split = pipeline.decode(x, blends, model)
    assert torch.equal(split, pipeline.interpolate(x, model, est, 3, blend_max_pixels=budget))


def _count_value_scans(monkeypatch) -> list[str]:
    """Names of the value scans (finite / range) that really run, i.e. outside checks.trusted()."""
    from pervfi_core import checks

    scans, scan = [], checks.check_finite

    def counting(name, x, **kwargs):
        if not checks._TRUSTED.get():
            scans.append(name)
        return scan(name, x, **kwargs)

    monkeypatch.setattr(checks, "check_finite", counting)
    return scans


def test_frames_are_scanned_once_at_the_entry_not_per_pair(monkeypatch):
    """The estimator, the scene test and the engine check their inputs when called directly; inside the
    pipeline they trust the entry's one scan of the whole clip (no per-pair pass, no per-pair sync)."""
    from pervfi_core.flow import build_estimator
    from pervfi_core.training_free import TrainingFreeVFI

    x = _moving_frames(5, 24, 32)
    model, est = TrainingFreeVFI(), build_estimator("dis")
    scans = _count_value_scans(monkeypatch)
    fused = pipeline.interpolate(x, model, est, 3)
    assert scans == ["frames"]
    scans.clear()
    flows = pipeline.estimate_flow(x, est)
    split = pipeline.decode(x, pipeline.blend(x, flows, model, 3), model)
    assert scans == ["frames", "frames", "flows.forward", "flows.backward", "frames"] and torch.equal(split, fused)
    scans.clear()
    list(pipeline.generate((x[i:i + 1] for i in range(5)), model, est, pipeline.as_schedule(2), place=lambda f: f))
    assert scans == [f"frame {i}" for i in range(5)]  # a stream: each frame once, as it arrives
    scans.clear()
    est(x[:1], x[1:2])  # called directly: the estimator's own entry check
    assert scans == ["img0", "img1"]


@pytest.mark.parametrize("bad, message", [(float("nan"), "frames: contains 1 NaN/Inf"),
                                          (255.0, "frames: expected values in \\[0, 1\\], got a maximum of 255")])
def test_bad_values_are_refused_at_the_entry(bad, message):
    x = _frames(3)
    x[1, 0, 2, 2] = bad
    for run in (lambda: pipeline.interpolate(x, LinearBlend(), ZeroFlow()),
                lambda: pipeline.estimate_flow(x, ZeroFlow()),
                lambda: pipeline.decode(x, pipeline.Blends(3, pipeline.as_schedule(2)), LinearBlend())):
        with pytest.raises(InputError, match=message):
            run()
    flows = pipeline.estimate_flow(_frames(3), ZeroFlow())
    flows.backward[1, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="flows.backward: contains 1 NaN/Inf"):
        pipeline.blend(_frames(3), flows, LinearBlend())
    stream = (f[None] for f in x)
    with pytest.raises(InputError, match=message.replace("frames", "frame 1")):
        list(pipeline.generate(stream, LinearBlend(), ZeroFlow(), pipeline.as_schedule(2), place=lambda f: f))


def test_an_engine_with_its_own_motion_gets_no_flows_and_no_estimator_runs():
    """needs_motion False: the fused path passes None flows, the split path's flows hold none, tiles get
    the fixed context margin, and the memory estimate counts no estimator."""
    from testkit.clips import NoEstimator, OwnMotion

    from pervfi_core.pipeline.memory import call_pixels, memory_required
    from pervfi_core.pipeline.tiling import SELF_MOTION_CONTEXT, TILE_CONTEXT

    x = _frames(3, 120, 160)
    expected = pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 3)
    assert torch.equal(pipeline.interpolate(x, OwnMotion(), NoEstimator(), 3), expected)
    assert torch.equal(pipeline.interpolate(x, OwnMotion(), None, 3), expected)
    flows = pipeline.estimate_flow(x, NoEstimator(), engine=OwnMotion())
    assert flows.forward is None and flows.backward is None
    split = pipeline.decode(x, pipeline.blend(x, flows, OwnMotion(), 3), OwnMotion())
    assert torch.equal(split, expected)
    assert torch.equal(pipeline.decode(x, pipeline.blend(x, pipeline.estimate_flow(x, ZeroFlow()), OwnMotion(), 3),
                                       OwnMotion()), expected)  # flows given anyway are not passed on
    with pytest.raises(InputError, match="blends along motion"):
        pipeline.blend(x, flows, LinearBlend(), 3)
    with pytest.raises(InputError, match="give a motion estimator"):
        pipeline.interpolate(x, LinearBlend(), None, 3)
    # tiles: a fixed context (no flows to size it from); a local engine's tiles stitch to the whole frame
    x = _frames(2, 300, 400)
    engine, budget = OwnMotion(), 64 * 64
    calls = []
    blend_fn = engine.blend
    engine.blend = lambda *a: calls.append(tuple(a[0].shape[-2:])) or blend_fn(*a)
    tiled = pipeline.interpolate(x, engine, NoEstimator(), 2, blend_max_pixels=budget)
    assert torch.equal(tiled, pipeline.interpolate(x, LinearBlend(), ZeroFlow(), 2))
    boxes = tile_boxes(300, 400, 64, SELF_MOTION_CONTEXT)
    assert calls == [(y1 - y0, x1 - x0) for (y0, y1, x0, x1), _ in boxes] and SELF_MOTION_CONTEXT > TILE_CONTEXT
    opts = pipeline.Options(blend_max_pixels=budget)
    assert call_pixels(OwnMotion(), 720, 1280, batch=1, options=opts) == (64 + 2 * SELF_MOTION_CONTEXT) ** 2
    est = NoEstimator()  # an unknown estimator: charged the largest footprint
    assert memory_required(720, 1280, engine=OwnMotion(), estimator=est) == \
        memory_required(720, 1280, engine=OwnMotion()) < memory_required(720, 1280, engine=LinearBlend(), estimator=est)
