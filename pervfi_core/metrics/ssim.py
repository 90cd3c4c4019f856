"""PSNR and SSIM (Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility
to Structural Similarity", IEEE TIP 2004) on images in [0, 1].

SSIM follows the reference implementation of the paper (``ssim_index.m``): an 11×11 Gaussian window
with σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range L = 1, statistics on the 'valid' part of the
image only (no padding), the SSIM map averaged. The reference code's automatic downsampling of large
images is not applied.

Colour handling (``color``):
* ``"rgb"`` (default): SSIM of each RGB channel separately, the three means averaged
  (what scikit-image's ``structural_similarity(..., channel_axis=-1)`` does).
* ``"gray"``: SSIM of the luma ``0.2989 R + 0.5870 G + 0.1140 B`` (MATLAB's ``rgb2gray``, ITU-R
  BT.601), the convention of many published tables; 8-bit sources are matched exactly when
  ``quantize=True`` rounds the luma to 1/255 steps like MATLAB does on uint8 images.
PSNR is over all three channels together: 10·log10(1 / MSE), inf for identical images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_image, check_same_shape
from ..errors import InputError

_K1, _K2 = 0.01, 0.03
_GRAY = (0.2989, 0.5870, 0.1140)


def gaussian_window(size: int = 11, sigma: float = 1.5, *, dtype=torch.float64) -> torch.Tensor:
    """Normalised 2-D Gaussian (size, size), the outer product of a 1-D one."""
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def to_gray(x: torch.Tensor, *, quantize: bool = False) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) BT.601 luma; ``quantize`` rounds to 1/255 steps."""
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    y = (x * w).sum(dim=1, keepdim=True)
    return torch.round(y * 255) / 255 if quantize else y


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_size: int = 1) -> None:
    check_image("x", x)
    check_image("y", y)
    check_same_shape("x", x, "y", y)
    if min(x.shape[-2:]) < min_size:
        raise InputError(f"SSIM needs images of at least {min_size}x{min_size} pixels, got {tuple(x.shape[-2:])}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B,) PSNR in dB over all channels (data range 1)."""
    _check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    return (10 * torch.log10(1.0 / mse)).to(x.dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, *, color: str = "rgb", quantize: bool = False,
         window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B,) mean SSIM (paper Eq. 13), computed in float64."""
    _check_pair(x, y, min_size=window)
    if color == "gray":
        x, y = to_gray(x, quantize=quantize), to_gray(y, quantize=quantize)
    elif color != "rgb":
        raise InputError(f"color: expected 'rgb' or 'gray', got {color!r}")
    xd, yd = x.double(), y.double()
    c = xd.shape[1]
    w = gaussian_window(window, sigma).to(xd.device).expand(c, 1, window, window)

    def blur(t):  # 'valid' Gaussian filtering, per channel
        return F.conv2d(t, w, groups=c)

    mx, my = blur(xd), blur(yd)
    vx = blur(xd * xd) - mx * mx
    vy = blur(yd * yd) - my * my
    cov = blur(xd * yd) - mx * my
    c1, c2 = _K1**2, _K2**2
    smap = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))  # Eq. (13)
    return smap.mean(dim=(1, 2, 3)).to(x.dtype)


class SSIM(nn.Module):
    """Module form of :func:`ssim` (same keyword arguments)."""

    def __init__(self, *, color: str = "rgb", quantize: bool = False, window: int = 11, sigma: float = 1.5):
        super().__init__()
        self.kwargs = dict(color=color, quantize=quantize, window=window, sigma=sigma)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ssim(x, y, **self.kwargs)


class PSNR(nn.Module):
    """Module form of :func:`psnr`."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return psnr(x, y)
