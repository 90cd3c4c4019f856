"""FloLPIPSApprox: the motion weighting behaves as the published FloLPIPS formula says."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pervfi_core.errors import InputError
from pervfi_core.metrics.flolpips import FloLPIPSApprox, motion_weighted_average


def _image(seed, size=64):
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(size, size), mode="bicubic").clamp(0, 1)


def test_weighted_average_is_a_weighted_mean():
    m = torch.rand(2, 1, 4, 4)
    uniform = torch.ones(2, 2, 16, 16)
    torch.testing.assert_close(motion_weighted_average(m, uniform), m.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(motion_weighted_average(m, torch.zeros(2, 2, 16, 16)), m.mean(dim=(1, 2, 3)))
    peaked = torch.zeros(1, 2, 4, 4)
    peaked[0, 0, 1, 2] = 3.0
    assert float(motion_weighted_average(m[:1], peaked)) == pytest.approx(float(m[0, 0, 1, 2]))


@torch.inference_mode()
def test_uniform_flow_difference_gives_plain_lpips(lpips_alex):
    """A flow estimator whose answers differ by a constant vector weighs every pixel equally."""
    gt = _image(0)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)

    def flow(a, b):  # constant flow, different for the ground truth and the prediction
        v = 1.0 if torch.equal(a, gt) else -2.0
        f = torch.full((a.shape[0], 2, *a.shape[-2:]), v)
        return f, -f

    metric = FloLPIPSApprox(flow=flow, lpips=lpips_alex)
    torch.testing.assert_close(metric(_image(2), _image(3), pred, gt), lpips_alex(gt, pred), rtol=1e-5, atol=1e-7)


@torch.inference_mode()
def test_errors_where_motion_disagrees_weigh_more(lpips_alex):
    gt = _image(0)
    pred = gt.clone()
    pred[..., 40:, 40:] = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    region = torch.zeros(1, 2, 64, 64)
    region[..., 40:, 40:] = 4.0

    def flow_here(a, b):  # the prediction's motion is wrong exactly where its pixels are wrong
        f = torch.zeros(1, 2, 64, 64) if torch.equal(a, gt) else region
        return f, -f

    weighted = FloLPIPSApprox(flow=flow_here, lpips=lpips_alex)(_image(2), _image(3), pred, gt)
    assert float(weighted) > 1.5 * float(lpips_alex(gt, pred))
    with pytest.raises(InputError):
        FloLPIPSApprox(flow=flow_here, lpips=lpips_alex)(_image(2), _image(3), pred, gt[..., :32])
