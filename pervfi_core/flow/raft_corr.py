"""RAFT correlation volume and lookup (Teed & Deng, ECCV 2020, §3.2 "Computing Visual Similarity").

* All-pairs correlation, Eq. (1): C(u, v) = Σ_c g1(u)_c · g2(v)_c / sqrt(D) for every pixel u of
  frame 1 and v of frame 2, both on the 1/8 grid (h, w) with D feature channels.
* Pyramid: the last two dimensions (frame-2 pixels) are average-pooled 2×2 (``levels`` levels).
* Lookup, Eq. (2)-(3): around x' = coords(u) / 2^l each level is sampled bilinearly (zero outside,
  align_corners=True) on a (2r+1)² window; the window's **x offset is the slow index** (channel
  i·(2r+1)+j samples at x + i - r, y + j - r). Levels are concatenated 0..L-1, giving
  ``corr_planes = levels · (2r+1)²`` channels.

Memory: level 0 holds (h·w)² values per sample, the whole pyramid about 4/3 of that. In float32:
640×480 -> 4,800² values = 92 MB per sample (123 MB with the pyramid); 1920×1088 (padded 1080p)
-> 32,640² values = 4.3 GB per sample (5.7 GB with the pyramid). Two samples (a forward and a
backward direction) need twice that.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def corr_planes(*, levels: int, radius: int) -> int:
    """Channels of a lookup: one (2r+1)² window per pyramid level."""
    return levels * (2 * radius + 1) ** 2


def all_pairs_correlation(fmap1: torch.Tensor, fmap2: torch.Tensor) -> torch.Tensor:
    """Eq. (1). ``fmap1``, ``fmap2`` (B, D, h, w) -> (B·h·w, 1, h, w): one frame-2 map per frame-1 pixel."""
    dim = fmap1.shape[1]
    h, w = fmap2.shape[-2:]
    f1 = rearrange(fmap1, "b d h w -> b (h w) d")
    f2 = rearrange(fmap2, "b d h w -> b d (h w)")
    corr = torch.matmul(f1, f2) / dim**0.5  # (B, h·w [frame 1], h·w [frame 2])
    return rearrange(corr, "b n (h w) -> (b n) 1 h w", h=h, w=w)


def correlation_pyramid(fmap1: torch.Tensor, fmap2: torch.Tensor, *, levels: int = 4) -> list[torch.Tensor]:
    """All-pairs correlation pooled ``levels`` times: level l is (B·h·w, 1, h/2^l, w/2^l)."""
    pyramid = [all_pairs_correlation(fmap1, fmap2)]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
    return pyramid


def window_offsets(radius: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(2r+1, 2r+1, 2) offsets (dx, dy); entry [i, j] = (i - r, j - r): x is the slow index."""
    steps = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    dx, dy = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dx, dy], dim=-1)


def sample_window(corr: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``corr`` (N, 1, h, w) at pixel ``points`` (N, k, k, 2) as (x, y).

    Zero padding outside, align_corners=True (pixel centres at integers). Returns (N, 1, k, k).
    """
    h, w = corr.shape[-2:]
    x, y = points.unbind(-1)
    # Same normalisation as the official sampler: a 1-px level divides by zero (hence the >=128 px rule).
    grid = torch.stack([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
    return F.grid_sample(corr, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def corr_lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, *, radius: int) -> torch.Tensor:
    """Eq. (2)-(3). ``coords`` (B, 2, h, w): frame-2 positions (x, y) in 1/8-grid pixels for every frame-1 pixel.

    Returns (B, levels·(2r+1)², h, w) in the pyramid's dtype, levels concatenated 0..L-1.
    """
    b, _, h, w = coords.shape
    centres = rearrange(coords, "b c h w -> (b h w) 1 1 c")
    offsets = window_offsets(radius, device=coords.device, dtype=coords.dtype)
    samples = []
    for level, corr in enumerate(pyramid):
        points = centres / 2**level + offsets  # (B·h·w, 2r+1, 2r+1, 2)
        window = sample_window(corr, points.to(corr.dtype))
        samples.append(rearrange(window, "(b h w) 1 i j -> b (i j) h w", b=b, h=h, w=w))
    return torch.cat(samples, dim=1)


class CorrBlock(nn.Module):
    """Thin module over :func:`correlation_pyramid` / :func:`corr_lookup` holding ``levels`` and ``radius``.

    ``pyramid(fmap1, fmap2)`` builds the volume once per image pair; ``forward(pyramid, coords)``
    looks it up, (B, 2, h, w) -> (B, planes, h, w). No parameters. Both run outside autocast, in
    the dtype they are given (as the official code, which keeps the correlation in float32 under
    mixed precision: half-precision dot products of 256 channels can overflow).
    """

    def __init__(self, *, levels: int = 4, radius: int = 4):
        super().__init__()
        self.levels = levels
        self.radius = radius
        self.planes = corr_planes(levels=levels, radius=radius)

    def pyramid(self, fmap1: torch.Tensor, fmap2: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast(device_type=fmap1.device.type, enabled=False):
            return correlation_pyramid(fmap1, fmap2, levels=self.levels)

    def forward(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=coords.device.type, enabled=False):
            return corr_lookup(pyramid, coords, radius=self.radius)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, radius={self.radius}, planes={self.planes}"
