"""Filling holes of a dense field (flows after forward splatting, images) from their valid neighbours."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fill_holes(x: torch.Tensor, valid: torch.Tensor, *, levels: int = 10) -> torch.Tensor:
    """Replace ``x`` (B,C,H,W) where ``valid`` (B,1,H,W) is 0 by the mean of valid values nearby.

    Coarse-to-fine normalised averaging: each pixel takes the average of the valid pixels in the
    smallest 2^k block that has any.
    """
    out, missing = x * valid, valid <= 0
    h, w = x.shape[-2:]
    for k in range(1, levels + 1):
        if not bool(missing.any()):
            break
        size = 2 ** k
        num = F.avg_pool2d(x * valid, size, ceil_mode=True)
        den = F.avg_pool2d(valid, size, ceil_mode=True)
        num = F.interpolate(num, scale_factor=size, mode="nearest")[..., :h, :w]
        den = F.interpolate(den, scale_factor=size, mode="nearest")[..., :h, :w]
        take = missing & (den > 0)
        out = torch.where(take, num / den.clamp(min=1e-12), out)
        missing = missing & ~take
    return out
