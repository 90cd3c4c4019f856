"""GMFlow's flow from feature matching and its propagation (Xu et al., CVPR 2022).

Matching: the correlation of every frame-0 feature with frame-1 features
(dot product / sqrt(C)) is turned into a matching distribution by a softmax; the flow is the
expected matched position minus the own position (a differentiable soft-argmax). "Global" matches
against all H·W positions; "local" (the refinement scale) against a (2r+1)² window, positions
outside the image excluded.

Propagation: self-attention on frame-0 features with the flow as value, so that flow from
well-matched pixels spreads to occluded/out-of-frame ones. Global, or within a (2r+1)² window
(zero-padded at the border, the padded keys are not excluded).

Features are (B, C, H, W); flows (B, 2, H, W) in pixels of that grid, channel 0 = x.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .raft import coords_grid

#: Rows of a global attention computed at once: bounds the (rows, H·W) score block to ~2^28 values
#: per sample, so full-HD frames do not need a (H·W)² matrix in memory. Results are row-wise exact.
ATTENTION_BLOCK = 1 << 28


def softmax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ / sqrt(C)) · v for q (B, N, C), k (B, M, C), v (B, M, D) -> (B, N, D), in row blocks."""
    rows = max(1, ATTENTION_BLOCK // max(1, key.shape[1]))
    scale = query.shape[-1] ** 0.5
    out = [(q @ key.transpose(1, 2) / scale).softmax(dim=-1) @ value for q in query.split(rows, dim=1)]
    return torch.cat(out, dim=1)


def global_matching_flow(feature0: torch.Tensor, feature1: torch.Tensor) -> torch.Tensor:
    """Softmax matching over all positions: flow 0->1 (B, 2, H, W) in pixels."""
    b, c, h, w = feature0.shape
    grid = coords_grid(b, h, w, device=feature0.device, dtype=feature0.dtype)
    f0 = rearrange(feature0, "b c h w -> b (h w) c")
    f1 = rearrange(feature1, "b c h w -> b (h w) c")
    matched = softmax_attention(f0, f1, rearrange(grid, "b xy h w -> b (h w) xy"))  # (B, HW0, 2)
    return rearrange(matched, "b (h w) xy -> b xy h w", h=h) - grid


def local_matching_flow(feature0: torch.Tensor, feature1: torch.Tensor, radius: int) -> torch.Tensor:
    """Softmax matching within a (2r+1)² window around each position: flow 0->1 (B, 2, H, W) in pixels."""
    b, c, h, w = feature0.shape
    k = 2 * radius + 1
    window = F.unfold(feature1, kernel_size=k, padding=radius)  # (B, C·k², HW), zeros outside
    window = rearrange(window, "b (c n) l -> b l c n", c=c)
    f0 = rearrange(feature0, "b c h w -> b (h w) 1 c")
    corr = (f0 @ window).squeeze(2) / c**0.5  # (B, HW, k²)
    # window offsets (dx, dy), same tap order as unfold (dy slow, dx fast)
    d = torch.arange(-radius, radius + 1, device=feature0.device, dtype=feature0.dtype)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    offsets = torch.stack((dx.flatten(), dy.flatten()), dim=1)  # (k², 2)
    grid = rearrange(coords_grid(b, h, w, device=feature0.device, dtype=feature0.dtype), "b xy h w -> b (h w) 1 xy")
    target = grid + offsets  # (B, HW, k², 2)
    inside = (target[..., 0] >= 0) & (target[..., 0] < w) & (target[..., 1] >= 0) & (target[..., 1] < h)
    prob = corr.masked_fill(~inside, -1e9).softmax(dim=-1)
    flow = (prob.unsqueeze(-1) * offsets).sum(dim=2)  # expected offset = matched position - own
    return rearrange(flow, "b (h w) xy -> b xy h w", h=h)


class FeatureFlowAttention(nn.Module):
    """Flow propagation by self-attention on frame-0 features (B, C, H, W).

    Global: query = q_proj(f), key = k_proj(q_proj(f)) (the official weights were trained with the
    key projected from the projected query; kept for weight compatibility). Local (radius r > 0):
    query = q_proj(f), key = k_proj(f) within the (2r+1)² window.
    """

    def __init__(self, *, in_channels: int = 128):
        super().__init__()
        self.q_proj = nn.Linear(in_channels, in_channels)
        self.k_proj = nn.Linear(in_channels, in_channels)

    def forward(self, feature0: torch.Tensor, flow: torch.Tensor, *, radius: int = -1) -> torch.Tensor:
        b, c, h, w = feature0.shape
        f = rearrange(feature0, "b c h w -> b (h w) c")
        query = self.q_proj(f)
        if radius <= 0:
            key = self.k_proj(query)
            out = softmax_attention(query, key, rearrange(flow, "b xy h w -> b (h w) xy"))
            return rearrange(out, "b (h w) xy -> b xy h w", h=h)
        k = 2 * radius + 1
        key = rearrange(self.k_proj(f), "b (h w) c -> b c h w", h=h)
        key = rearrange(F.unfold(key, kernel_size=k, padding=radius), "b (c n) l -> b l c n", c=c)
        values = rearrange(F.unfold(flow, kernel_size=k, padding=radius), "b (xy n) l -> b l n xy", xy=2)
        prob = (query.unsqueeze(2) @ key / c**0.5).softmax(dim=-1)  # (B, HW, 1, k²)
        return rearrange((prob @ values).squeeze(2), "b (h w) xy -> b xy h w", h=h)
