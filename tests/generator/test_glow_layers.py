"""Invertible layers: exact log-determinants (vs autograd Jacobians), gradients, ActNorm's
data-dependent init, InvConv2d's inverse after weight changes."""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from pervfi_core.generator import ActNorm, AffineCoupling, GlowStep, InvConv2d
from pervfi_core.generator.glow_layers import invconv_then_actnorm_decode

C, COND, HID = 4, 2, 8


def _log_abs_det_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """ln|det ∂fn(x)/∂x| of a map between tensors of equal size (float64, one sample)."""
    jac = jacobian(lambda v: fn(v.view_as(x)).reshape(-1), x.reshape(-1), vectorize=True)
    return torch.linalg.slogdet(jac)[1]


@pytest.fixture
def x():
    return torch.randn(1, C, 3, 3, dtype=torch.float64)


@pytest.fixture
def cond():
    return torch.randn(1, COND, 3, 3, dtype=torch.float64)


def test_actnorm_logdet_is_log_abs_det_jacobian(x, randomize):
    layer = randomize(ActNorm(channels=C)).double()
    y, logdet = layer.encode(x)
    assert logdet.ndim == 0
    torch.testing.assert_close(logdet, _log_abs_det_jacobian(lambda v: layer.encode(v)[0], x), atol=1e-6, rtol=0)


def test_invconv_logdet_is_log_abs_det_jacobian(x, randomize):
    layer = randomize(InvConv2d(channels=C)).double()
    _, logdet = layer.encode(x)
    torch.testing.assert_close(logdet, _log_abs_det_jacobian(lambda v: layer.encode(v)[0], x))


def test_coupling_logdet_is_log_abs_det_jacobian(x, cond, randomize):
    """Eq. (17): the coupling's log-determinant is Σ s."""
    layer = randomize(AffineCoupling(channels=C, cond_channels=COND, hidden=HID), gain=1.0).double()
    y, logdet = layer.encode(x, cond)
    assert logdet.shape == (1,)
    assert logdet.abs().item() > 1e-3  # non-trivial scales
    torch.testing.assert_close(logdet[0], _log_abs_det_jacobian(lambda v: layer.encode(v, cond)[0], x))


def test_flow_step_logdet_is_log_abs_det_jacobian(x, cond, randomize):
    step = randomize(GlowStep(channels=C, cond_channels=COND, hidden=HID)).double()
    _, logdet = step.encode(x, cond)
    torch.testing.assert_close(
        logdet[0], _log_abs_det_jacobian(lambda v: step.encode(v, cond)[0], x), atol=1e-6, rtol=0
    )


def test_flow_step_gradcheck(cond, randomize):
    step = randomize(GlowStep(channels=C, cond_channels=COND, hidden=HID)).double()
    x = torch.randn(1, C, 2, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, COND, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: step.encode(a, b), (x, c), fast_mode=True)
    assert torch.autograd.gradcheck(lambda a, b: step.decode(a, b), (x, c), fast_mode=True)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-7)])
def test_flow_step_decode_inverts_encode(dtype, atol, randomize):
    """Exact up to the official 1e-8 asymmetry of ActNorm (relative 1e-8)."""
    step = randomize(GlowStep(channels=C, cond_channels=COND, hidden=HID)).to(dtype)
    x = torch.randn(2, C, 5, 4, dtype=dtype)
    c = torch.randn(2, COND, 5, 4, dtype=dtype)
    y, _ = step.encode(x, c)
    torch.testing.assert_close(step.decode(y, c), x, atol=atol, rtol=0)


def test_fused_invconv_actnorm_decode_equals_two_stages(randomize):
    inv, act = randomize(InvConv2d(channels=C)), randomize(ActNorm(channels=C), seed=1)
    y = torch.randn(2, C, 5, 6)
    torch.testing.assert_close(invconv_then_actnorm_decode(inv, act, y), act.decode(inv.decode(y)))


def test_actnorm_data_dependent_init_on_first_encode():
    layer = ActNorm(channels=3)
    assert int(layer.initialized) == 0
    x = torch.randn(4, 3, 6, 7) * torch.tensor([0.5, 2.0, 3.0]).view(1, 3, 1, 1) + torch.tensor([1.0, -2.0, 0.3]).view(1, 3, 1, 1)
    y, logdet = layer.encode(x)
    assert int(layer.initialized) == 1
    std, mean = torch.std_mean(y, dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    # a later call keeps the parameters
    before = layer.logs.detach().clone()
    layer.encode(torch.randn(2, 3, 4, 4) * 10)
    torch.testing.assert_close(layer.logs.detach(), before)


def test_actnorm_data_dependent_init_on_first_decode():
    layer = ActNorm(channels=2)
    y = torch.randn(3, 2, 5, 5) * 4 + 1
    layer.decode(y)
    assert int(layer.initialized) == 1
    torch.testing.assert_close(layer.loc.detach().view(-1), -y.mean(dim=(0, 2, 3)))


def test_actnorm_initialized_flag_follows_the_state_dict(randomize):
    """A loaded state with initialized = 1 is used as is; with 0 the next call re-initialises."""
    trained = randomize(ActNorm(channels=2))
    layer = ActNorm(channels=2)
    layer.load_state_dict(trained.state_dict())
    x = torch.randn(2, 2, 3, 3) * 5
    torch.testing.assert_close(layer.encode(x)[0], trained.encode(x)[0])
    state = trained.state_dict()
    state["initialized"] = torch.tensor(0, dtype=torch.uint8)
    layer.load_state_dict(state)
    layer.encode(x)
    assert int(layer.initialized) == 1
    torch.testing.assert_close(layer.loc.detach().view(-1), -x.mean(dim=(0, 2, 3)))


def test_invconv_inverse_is_never_stale(randomize):
    layer = randomize(InvConv2d(channels=C))
    x = torch.randn(2, C, 3, 3)
    layer.decode(layer.encode(x)[0])  # any cache would be filled here
    layer.load_state_dict(randomize(InvConv2d(channels=C), seed=7).state_dict())
    torch.testing.assert_close(layer.decode(layer.encode(x)[0]), x, atol=1e-5, rtol=0)
    with torch.no_grad():
        layer.weight.mul_(2.0)  # in-place change, e.g. an optimiser step
    torch.testing.assert_close(layer.decode(layer.encode(x)[0]), x, atol=1e-5, rtol=0)
