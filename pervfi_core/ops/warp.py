"""Backward warping: sample a tensor at positions displaced by a flow.

Used by PerVFI's Softmetric (Eq. 2) to compare frame-0 features with frame-1 features warped back
along F0->1. Convention of the official code: bilinear sampling with zero padding and
``align_corners=True``; the sampling grid is ``linspace(-1, 1)`` plus the flow normalised by
``(W - 1) / 2`` and ``(H - 1) / 2``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_flow
from ..errors import InputError


def backward_warp(x: torch.Tensor, flow: torch.Tensor, *, padding: str = "zeros") -> torch.Tensor:
    """Sample ``x`` at ``(u + flow_x, v + flow_y)`` for every pixel ``(u, v)``.

    Args:
        x: (N, C, H, W) any values.
        flow: (N, 2, H, W) in pixels on the output grid, channel 0 = x (+right), channel 1 = y (+down);
            e.g. F0->1 to bring frame 1 onto frame 0's grid.

    Returns:
        (N, C, H, W) in the dtype of ``x``; positions outside the image read zeros (bilinear,
        align_corners=True), or the nearest border pixel with ``padding="border"`` (RIFE's
        convention). Half/bfloat16 inputs are sampled in float32.
    """
    if padding not in ("zeros", "border"):
        raise InputError(f"backward_warp: padding must be 'zeros' or 'border', got {padding!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise InputError(f"backward_warp: expected x (N, C, H, W), got {tuple(getattr(x, 'shape', ()))}")
    check_flow("backward_warp flow", flow, x, finite=False)  # values as they are: a NaN vector samples NaN
    _, _, height, width = x.shape
    # positions need float32 at least (bfloat16 cannot address pixels of a 448-px row); sample in it too
    out_dtype = x.dtype
    work = torch.promote_types(x.dtype, torch.float32)
    x, flow = x.to(work), flow.to(work)
    if padding == "border":  # clamp the sampling positions into the image (pixel units), then sample
        gy, gx = torch.meshgrid(torch.arange(height, device=x.device, dtype=flow.dtype),
                                torch.arange(width, device=x.device, dtype=flow.dtype), indexing="ij")
        flow = torch.stack([(gx + flow[:, 0]).clamp(0, width - 1) - gx, (gy + flow[:, 1]).clamp(0, height - 1) - gy], 1)
    base_x = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    base_y = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    # A 1-pixel axis has a single sample position whatever the offset; avoid dividing by zero.
    grid_x = base_x + flow[:, 0] / (max(width - 1, 1) / 2.0)
    grid_y = base_y + flow[:, 1] / (max(height - 1, 1) / 2.0)
    grid = torch.stack([grid_x, grid_y], dim=-1)  # (N, H, W, 2), last axis (x, y)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(out_dtype)


class BackwardWarp(nn.Module):
    """Module form of :func:`backward_warp`."""

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return backward_warp(x, flow)
