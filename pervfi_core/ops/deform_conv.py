"""Modulated deformable convolution (DCNv2, Zhu et al. 2019), as used by PerVFI's PAM (Eq. 3-4).

Same semantics and tensor layout as ``torchvision.ops.deform_conv2d``: for offset group g and kernel
tap k = i * kw + j, offset channels ``2 * (g * K + k)`` and ``2 * (g * K + k) + 1`` are the dy and dx
added to that tap's sampling position, and mask channel ``g * K + k`` modulates it. Input channels are
split into the offset groups in order. Samples are bilinear; positions outside the image read 0.

The pure-PyTorch path is memory-lean: it samples one kernel tap at a time with ``grid_sample``
(bilinear, zero padding) and accumulates ``weight[:, :, i, j] @ sample`` into the output, so the extra
memory is about one input-sized buffer instead of a K-times larger im2col. When torchvision imports,
its compiled op is used instead (``backend="auto"``).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import InputError

logger = logging.getLogger(__name__)

_TORCHVISION_OP = None  # resolved lazily: the op, or False when torchvision does not import


def _torchvision_op():
    global _TORCHVISION_OP
    if _TORCHVISION_OP is None:
        try:
            from torchvision.ops import deform_conv2d as op
        except Exception as exc:  # torchvision absent or built for another torch
            logger.debug("torchvision deform_conv2d unavailable (%s); using the PyTorch path", exc)
            op = False
        _TORCHVISION_OP = op
    return _TORCHVISION_OP


def torchvision_available() -> bool:
    """True when ``torchvision.ops.deform_conv2d`` imports (the optional fast path)."""
    return bool(_torchvision_op())


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _check(x, offset, weight, mask, out_hw) -> int:
    n, c, _, _ = x.shape
    c_out, c_w, kh, kw = weight.shape
    taps = kh * kw
    if n == 0:
        raise InputError("deform_conv2d: empty batch (N = 0); pass at least one sample")
    if c_w != c:
        raise InputError(f"deform_conv2d: weight expects {c_w} input channels (groups=1), input has {c}")
    groups, rest = divmod(offset.shape[1], 2 * taps)
    if rest or groups == 0 or c % groups:
        raise InputError(
            f"deform_conv2d: offset channels must be 2*G*{taps} with G dividing {c} input channels, "
            f"got {offset.shape[1]}"
        )
    if tuple(offset.shape[2:]) != out_hw or offset.shape[0] != n:
        raise InputError(f"deform_conv2d: offset must be ({n}, {offset.shape[1]}, {out_hw[0]}, {out_hw[1]}), "
                         f"got {tuple(offset.shape)}")
    if mask is not None and tuple(mask.shape) != (n, groups * taps, *out_hw):
        raise InputError(f"deform_conv2d: mask must be ({n}, {groups * taps}, {out_hw[0]}, {out_hw[1]}), "
                         f"got {tuple(mask.shape)}")
    return groups


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  *, stride=1, padding=0, dilation=1, mask: torch.Tensor | None = None,
                  backend: str = "auto") -> torch.Tensor:
    """Modulated deformable 2-D convolution (torchvision semantics, weight groups = 1).

    Args:
        x: (N, C, H, W) input.
        offset: (N, 2*G*kh*kw, Ho, Wo) per-tap (dy, dx) in pixels, torchvision layout (module doc).
        weight: (C_out, C, kh, kw); bias: (C_out,) or None.
        mask: (N, G*kh*kw, Ho, Wo) modulation (PerVFI passes a sigmoid), or None for plain DCNv1.
        backend: ``"auto"`` (torchvision when it imports), ``"torch"`` or ``"torchvision"``.

    Returns:
        (N, C_out, Ho, Wo) in the dtype of ``x`` (the PyTorch path computes half/bfloat16 in float32).
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    _, _, height, width = x.shape
    _, _, kh, kw = weight.shape
    out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    groups = _check(x, offset, weight, mask, (out_h, out_w))
    if backend not in ("auto", "torch", "torchvision"):
        raise InputError(f"deform_conv2d: backend must be 'auto', 'torch' or 'torchvision', got {backend!r}")
    op = _torchvision_op() if backend != "torch" else False
    if backend == "torchvision" and not op:
        raise InputError("deform_conv2d: backend='torchvision' asked for, but torchvision does not import")
    if op:
        return op(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
    # sampling positions need float32 at least (bfloat16 cannot address pixels of a 448-px row)
    work = torch.promote_types(x.dtype, torch.float32)
    cast = lambda v: None if v is None else v.to(work)  # noqa: E731
    out = _deform_conv2d_torch(cast(x), cast(offset), cast(weight), cast(bias), stride, padding, dilation,
                               cast(mask), groups)
    return out.to(x.dtype)


def _deform_conv2d_torch(x, offset, weight, bias, stride, padding, dilation, mask, groups):
    n, c, height, width = x.shape
    c_out, _, kh, kw = weight.shape
    out_h, out_w = offset.shape[2:]
    taps = kh * kw
    x_groups = rearrange(x, "n (g c) h w -> (n g) c h w", g=groups)
    offset = rearrange(offset, "n (g k yx) h w -> n g k yx h w", g=groups, k=taps, yx=2)
    if mask is not None:
        mask = rearrange(mask, "n (g k) h w -> (n g) k h w", g=groups, k=taps)
    base_y = (torch.arange(out_h, device=x.device, dtype=x.dtype) * stride[0] - padding[0]).view(1, 1, out_h, 1)
    base_x = (torch.arange(out_w, device=x.device, dtype=x.dtype) * stride[1] - padding[1]).view(1, 1, 1, out_w)
    out = x.new_zeros(n, c_out, out_h * out_w)
    for k in range(taps):
        i, j = divmod(k, kw)
        pos_y = base_y + i * dilation[0] + offset[:, :, k, 0]  # (N, G, Ho, Wo) sampling rows
        pos_x = base_x + j * dilation[1] + offset[:, :, k, 1]
        # pixel -> grid_sample's [-1, 1] with align_corners=True (pixel centres at -1 and 1)
        grid = torch.stack([pos_x * (2.0 / max(width - 1, 1)) - 1.0, pos_y * (2.0 / max(height - 1, 1)) - 1.0], -1)
        sample = F.grid_sample(x_groups, rearrange(grid, "n g h w yx -> (n g) h w yx"), mode="bilinear",
                               padding_mode="zeros", align_corners=True)  # (N*G, C/G, Ho, Wo)
        if mask is not None:
            sample = sample * mask[:, k : k + 1]
        sample = rearrange(sample, "(n g) c h w -> n (g c) (h w)", n=n)
        out.baddbmm_(weight[:, :, i, j].expand(n, c_out, c), sample)  # (N, C_out, C) @ (N, C, Ho*Wo)
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.view(n, c_out, out_h, out_w)


class DeformConv2d(nn.Module):
    """Modulated deformable convolution with its own weight and bias (torchvision ``DeformConv2d`` keys).

    ``forward(x, offset, mask=None)``: see :func:`deform_conv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, mask=mask)
