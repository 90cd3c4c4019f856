"""backward_warp: bilinear, zero padding, align_corners=True (official Softmetric convention)."""
from __future__ import annotations

import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.ops.warp import BackwardWarp, backward_warp


def test_zero_flow_is_identity():
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(backward_warp(x, torch.zeros(2, 2, 5, 7)), x, atol=1e-6, rtol=0)


def test_integer_shift_and_zero_padding():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 1.0  # read one pixel to the right
    out = backward_warp(x, flow)
    torch.testing.assert_close(out[..., :3], x[..., 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., 3], torch.zeros(1, 1, 3), atol=1e-6, rtol=0)


def test_fractional_vertical_shift_is_bilinear():
    x = torch.arange(12.0).view(1, 1, 4, 3)
    flow = torch.zeros(1, 2, 4, 3)
    flow[:, 1] = 0.25  # channel 1 = y
    out = backward_warp(x, flow)
    torch.testing.assert_close(out[..., :3, :], 0.75 * x[..., :3, :] + 0.25 * x[..., 1:, :], atol=1e-5, rtol=0)


def test_function_and_module_agree():
    x, flow = torch.rand(2, 3, 6, 5), torch.randn(2, 2, 6, 5)
    torch.testing.assert_close(BackwardWarp()(x, flow), backward_warp(x, flow))


def test_bad_inputs_raise():
    with pytest.raises(InputError, match=r"backward_warp flow: expected shape \(1, 2, 4, 4\)"):
        backward_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(InputError, match="empty batch"):
        backward_warp(torch.zeros(0, 3, 4, 4), torch.zeros(0, 2, 4, 4))


def test_gradcheck_float64():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    flow = (0.2 + 0.6 * torch.rand(1, 2, 4, 5, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(backward_warp, (x, flow))


def test_bfloat16_wide_image_is_sampled_in_float32():
    # 300 columns: a bfloat16 sampling grid could not address single pixels there
    x = torch.rand(1, 2, 4, 300)
    flow = torch.rand(1, 2, 4, 300) - 0.5
    out = backward_warp(x.bfloat16(), flow.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    ref = backward_warp(x.bfloat16().float(), flow.bfloat16().float())
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)
