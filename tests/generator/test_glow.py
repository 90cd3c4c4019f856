"""CondFlowNet properties on a tiny configuration with random weights."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from pervfi_core.errors import InputError
from pervfi_core.generator import CondFlowNet

TINY = dict(in_channels=3, cond_channels=(4, 5, 6), n_blocks=3, n_steps=2, hidden=8)


def _conds(batch, h, w, *, dtype=torch.float32):
    return [torch.randn(batch, c, h // 2 ** (b + 1), w // 2 ** (b + 1), dtype=dtype) for b, c in enumerate(TINY["cond_channels"])]


@pytest.fixture
def net(randomize):
    return randomize(CondFlowNet(**TINY)).eval()


def test_z_shapes_official_config():
    assert CondFlowNet().z_shapes(2, 64, 96) == [(2, 6, 32, 48), (2, 12, 16, 24), (2, 48, 8, 12)]


@pytest.mark.parametrize("batch", [1, 2])
def test_decode_inverts_standardised_encode(net, batch):
    x = torch.rand(batch, 3, 16, 24) * 2 - 1
    conds = _conds(batch, 16, 24)
    with torch.no_grad():
        log_p, logdet, eps = net.encode(x, conds, standardize=True)
        assert log_p.shape == logdet.shape == (batch,)
        assert [tuple(e.shape) for e in eps] == net.z_shapes(batch, 16, 24)
        torch.testing.assert_close(net.decode(conds, eps), x, atol=1e-4, rtol=0)


def test_encode_inverts_decode(net):
    conds = _conds(2, 16, 16)
    eps = [torch.randn(s) * 0.3 for s in net.z_shapes(2, 16, 16)]
    with torch.no_grad():
        _, _, back = net.encode(net.decode(conds, eps), conds, standardize=True)
    for a, b in zip(back, eps):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_samples_are_independent_across_the_batch(net):
    conds = _conds(2, 8, 16)
    eps = [torch.randn(s) for s in net.z_shapes(2, 8, 16)]
    with torch.no_grad():
        both = net.decode(conds, eps)
        second = net.decode([c[1:] for c in conds], [e[1:] for e in eps])
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=0)


def test_total_logdet_is_log_abs_det_jacobian(randomize):
    """Squeeze, splits and priors included: logdet of x -> (z_0, z_1, z_2) is the Jacobian's."""
    net = randomize(CondFlowNet(**TINY)).double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    conds = _conds(1, 8, 8, dtype=torch.float64)

    def to_latents(v):
        return torch.cat([z.reshape(-1) for z in net.encode(v.view_as(x), conds)[2]])

    jac = jacobian(to_latents, x.reshape(-1), vectorize=True)
    _, logdet, _ = net.encode(x, conds)
    # ActNorm's formula ignores its +1e-8: about 1e-8 per scaled element (~1000 here)
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac)[1], atol=3e-5, rtol=0)


def test_analytic_nll_with_identity_initialised_layers():
    """Fresh layers (zero couplings and priors, ActNorm marked initialised at loc 0, logs 0,
    orthogonal 1×1 convs): the flow preserves norms, so -(log_p + logdet) = D/2·ln 2π + ½‖x‖²."""
    net = CondFlowNet(**TINY).double()
    for name, buf in net.named_buffers():
        if name.endswith("initialized"):
            buf.fill_(1)
    x = torch.randn(2, 3, 16, 8, dtype=torch.float64)
    log_p, logdet, zs = net.encode(x, _conds(2, 16, 8, dtype=torch.float64))
    dims = x[0].numel()
    expected = dims / 2 * math.log(2 * math.pi) + 0.5 * (x**2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(-(log_p + logdet), expected, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(logdet, torch.zeros(2, dtype=torch.float64), atol=1e-4, rtol=0)
    # the 1×1 convs are orthogonal to float32 precision (QR in float32)
    torch.testing.assert_close(sum((z**2).sum(dim=(1, 2, 3)) for z in zs), (x**2).sum(dim=(1, 2, 3)), atol=0, rtol=1e-6)


def test_fresh_net_initialises_actnorm_from_data_and_trains():
    """Training from scratch: the first encode runs the data-dependent ActNorm init everywhere,
    and the NLL back-propagates to every parameter."""
    net = CondFlowNet(**TINY).train()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    log_p, logdet, _ = net.encode(x, _conds(2, 16, 16))
    flags = [int(b) for n, b in net.named_buffers() if n.endswith("initialized")]
    assert flags and all(f == 1 for f in flags)
    nll = -(log_p + logdet).mean() / (math.log(2) * 16 * 16)
    nll.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # zero-initialised couplings and priors get a gradient (their outputs start at zero)
    assert net.blocks[0].prior.conv.weight.grad.abs().sum() > 0


def test_bad_inputs_raise_input_error(net):
    conds = _conds(1, 16, 16)
    with pytest.raises(InputError, match="multiples of 8"):
        net.encode(torch.zeros(1, 3, 12, 16), conds)
    with pytest.raises(InputError, match="conds"):
        net.encode(torch.zeros(1, 3, 16, 16), conds[:2])
    with pytest.raises(InputError, match="conds\\[1\\]"):
        net.encode(torch.zeros(1, 3, 16, 16), [conds[0], conds[0], conds[2]])
    zs = [torch.zeros(s) for s in net.z_shapes(1, 16, 16)]
    with pytest.raises(InputError, match="zs"):
        net.decode(conds, zs[:2])
    with pytest.raises(InputError, match="zs"):
        net.decode(conds, [zs[0], zs[1], zs[1]])
    with pytest.raises(InputError, match="cond_channels"):
        CondFlowNet(cond_channels=(1, 2))
