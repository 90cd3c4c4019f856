"""deform_conv2d: torchvision semantics, checked against a direct loop reference and the fixtures."""
from __future__ import annotations

import math

import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.ops.deform_conv import DeformConv2d, deform_conv2d, torchvision_available


def _bilinear(img, y, x):
    """torchvision's bilinear_interpolate for one channel plane (zeros outside)."""
    height, width = img.shape
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return img.new_zeros(())
    y0, x0 = math.floor(y), math.floor(x)
    total = img.new_zeros(())
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                total = total + wy * wx * img[yy, xx]
    return total


def _reference(x, offset, weight, bias, mask, stride, padding, dilation):
    n, c, _, _ = x.shape
    c_out, _, kh, kw = weight.shape
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)
    out_h, out_w = offset.shape[2:]
    out = torch.zeros(n, c_out, out_h, out_w, dtype=x.dtype)
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for ci in range(c):
                    g = ci // (c // groups)
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = float(offset[b, 2 * (g * taps + k), oy, ox])
                            dx = float(offset[b, 2 * (g * taps + k) + 1, oy, ox])
                            v = _bilinear(x[b, ci], oy * stride - padding + i * dilation + dy,
                                          ox * stride - padding + j * dilation + dx)
                            if mask is not None:
                                v = v * mask[b, g * taps + k, oy, ox]
                            out[b, :, oy, ox] += weight[:, ci, i, j] * v
    return out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("stride,padding,dilation,with_mask", [(1, 1, 1, True), (2, 0, 1, True), (1, 2, 2, False)])
def test_matches_direct_reference(stride, padding, dilation, with_mask):
    torch.manual_seed(0)
    n, c, c_out, groups, h, w = 2, 4, 3, 2, 5, 6
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    weight = torch.randn(c_out, c, 3, 3, dtype=torch.float64)
    bias = torch.randn(c_out, dtype=torch.float64)
    out_h = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    out_w = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = torch.randn(n, 2 * groups * 9, out_h, out_w, dtype=torch.float64) * 1.5  # some land outside
    mask = torch.rand(n, groups * 9, out_h, out_w, dtype=torch.float64) if with_mask else None
    out = deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask,
                        backend="torch")
    ref = _reference(x, offset, weight, bias, mask, stride, padding, dilation)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)


def test_zero_offsets_equal_conv2d():
    torch.manual_seed(1)
    x, weight, bias = torch.randn(2, 6, 7, 8), torch.randn(5, 6, 3, 3), torch.randn(5)
    offset = torch.zeros(2, 2 * 3 * 9, 7, 8)
    out = deform_conv2d(x, offset, weight, bias, padding=1, mask=torch.ones(2, 27, 7, 8), backend="torch")
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x, weight, bias, padding=1), atol=1e-5, rtol=1e-5)


def test_module_and_function_agree():
    torch.manual_seed(2)
    module = DeformConv2d(4, 3, 3, padding=1)
    x, offset, mask = torch.randn(1, 4, 5, 5), torch.randn(1, 36, 5, 5), torch.rand(1, 18, 5, 5)
    torch.testing.assert_close(module(x, offset, mask),
                               deform_conv2d(x, offset, module.weight, module.bias, padding=1, mask=mask))
    assert set(module.state_dict()) == {"weight", "bias"}  # torchvision DeformConv2d keys


def test_bad_inputs_raise():
    x, w = torch.zeros(1, 4, 5, 5), torch.zeros(3, 4, 3, 3)
    with pytest.raises(InputError, match="offset channels"):
        deform_conv2d(x, torch.zeros(1, 17, 5, 5), w, padding=1)
    with pytest.raises(InputError, match="mask must be"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 5), w, padding=1, mask=torch.zeros(1, 8, 5, 5))
    with pytest.raises(InputError, match="empty batch"):
        deform_conv2d(x[:0], torch.zeros(0, 18, 5, 5), w, padding=1)
    with pytest.raises(InputError, match="backend"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 5), w, padding=1, backend="cuda")


def test_gradcheck_float64():
    torch.manual_seed(3)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    offset = (0.2 + 0.6 * torch.rand(1, 18, 4, 4, dtype=torch.float64)).requires_grad_()  # off the integer kinks
    mask = torch.rand(1, 9, 4, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda a, o, m, wt, b: deform_conv2d(a, o, wt, b, padding=1, mask=m, backend="torch")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, offset, mask, weight, bias))


def test_fixture_level2_dcn(load_parity):
    """pam.dcn_out_l2 = torchvision deform_conv2d(enc1_l2, [o1, o2], W, b, padding=1, mask=sigmoid(m))."""
    ref = load_parity("pervfi_v00_t0.5")
    weights = load_parity("weights/pervfi_v00")
    o1, o2, logits = ref["pam.dcn_offset_raw_l2"].chunk(3, dim=1)
    prefix = "deformableAlign.deform_conv.l2.dconv."
    args = (ref["pyr.enc1_l2"], torch.cat([o1, o2], 1), weights[prefix + "weight"], weights[prefix + "bias"])
    backends = ["torch"] + (["torchvision"] if torchvision_available() else [])
    for backend in backends:
        out = deform_conv2d(*args, padding=1, mask=torch.sigmoid(logits), backend=backend)
        torch.testing.assert_close(out, ref["pam.dcn_out_l2"], atol=1.3e-6, rtol=0, msg=backend)  # 10x fp64 noise


def test_bfloat16_wide_image_is_sampled_in_float32():
    torch.manual_seed(4)
    x, weight, bias = torch.randn(1, 4, 6, 300), torch.randn(3, 4, 3, 3), torch.randn(3)
    offset, mask = torch.randn(1, 36, 6, 300), torch.rand(1, 18, 6, 300)
    args = [v.bfloat16() for v in (x, offset, weight, bias)]
    out = deform_conv2d(*args, padding=1, mask=mask.bfloat16(), backend="torch")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    ref = deform_conv2d(*[v.float() for v in args], padding=1, mask=mask.bfloat16().float(), backend="torch")
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.02)
