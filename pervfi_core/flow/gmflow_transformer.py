"""GMFlow's feature enhancement Transformer (Xu et al., CVPR 2022).

Features of both frames get a sine position encoding, then 6 blocks of self-attention and
cross-attention + FFN, computed for both frames at once (frame 1 attends to frame 0 with the same
weights). Attention is single-head and, for ``attn_splits > 1``, restricted to a ``splits × splits``
grid of windows, alternating with windows shifted by half a window (Swin-style) with the
``-100`` mask of wrapped-around positions. Sequences are (B, L, C) with L = H·W in row-major order.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


def split_windows(x: torch.Tensor, splits: int) -> torch.Tensor:
    """(B, H, W, C) -> (B·s·s, H/s, W/s, C), windows in row-major order within each sample."""
    return rearrange(x, "b (sy h) (sx w) c -> (b sy sx) h w c", sy=splits, sx=splits)


def merge_windows(x: torch.Tensor, splits: int) -> torch.Tensor:
    """Inverse of :func:`split_windows`."""
    return rearrange(x, "(b sy sx) h w c -> b (sy h) (sx w) c", sy=splits, sx=splits)


def sine_position(h: int, w: int, channels: int, *, device=None) -> torch.Tensor:
    """DETR-style normalised sine encoding (channels, h, w): first half from y, second half from x.

    Coordinates 1..n are scaled to (0, 2π] (divided by n + 1e-6); frequency 10000^(2⌊i/2⌋/(C/2)),
    sine on even and cosine on odd features, interleaved.
    """
    half = channels // 2
    ys = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * 2 * math.pi
    xs = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * 2 * math.pi
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)

    def encode(pos: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, half)
        p = pos[:, None] / dim_t
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(ys)[:, None, :].expand(h, w, half)
    pos_x = encode(xs)[None, :, :].expand(h, w, half)
    return rearrange(torch.cat((pos_y, pos_x), dim=2), "h w c -> c h w")


def add_position(feature0: torch.Tensor, feature1: torch.Tensor, splits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the same encoding to both (B, C, H, W) features; with ``splits > 1`` it is computed
    per window (every window gets the encoding of an (H/s, W/s) image)."""
    _, c, h, w = feature0.shape
    pos = sine_position(h // splits, w // splits, c, device=feature0.device).to(feature0.dtype)
    pos = pos.repeat(1, splits, splits)  # tile the per-window encoding over the window grid
    return feature0 + pos, feature1 + pos


def shifted_window_mask(h: int, w: int, splits: int, *, device=None) -> torch.Tensor:
    """(s·s, L_w, L_w) additive mask for shifted windows: -100 between positions that come from
    different regions of the cyclically rolled image, 0 otherwise (L_w = h/s · w/s)."""
    wh, ww = h // splits, w // splits
    region = torch.zeros(h, w, device=device)
    bounds_h = ((0, h - wh), (h - wh, h - wh // 2), (h - wh // 2, h))
    bounds_w = ((0, w - ww), (w - ww, w - ww // 2), (w - ww // 2, w))
    for i, (y0, y1) in enumerate(bounds_h):
        for j, (x0, x1) in enumerate(bounds_w):
            region[y0:y1, x0:x1] = 3 * i + j
    windows = split_windows(region[None, :, :, None], splits).flatten(1)  # (s·s, L_w)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0)


def window_attention(q, k, v, *, h: int, w: int, splits: int, shift: bool, mask: torch.Tensor | None):
    """Single-head attention within windows; q, k, v (B, H·W, C) -> (B, H·W, C)."""
    b, _, c = q.shape
    if splits <= 1:
        scores = q @ k.transpose(1, 2) / c**0.5
        return scores.softmax(dim=-1) @ v
    sh, sw = (h // splits) // 2, (w // splits) // 2
    q, k, v = (rearrange(t, "b (h w) c -> b h w c", h=h, w=w) for t in (q, k, v))
    if shift:
        q, k, v = (torch.roll(t, shifts=(-sh, -sw), dims=(1, 2)) for t in (q, k, v))
    q, k, v = (split_windows(t, splits).flatten(1, 2) for t in (q, k, v))  # (B·s·s, L_w, C)
    scores = q @ k.transpose(1, 2) / c**0.5
    if shift:
        scores = scores + mask.repeat(b, 1, 1)
    out = scores.softmax(dim=-1) @ v
    out = merge_windows(rearrange(out, "n (h w) c -> n h w c", h=h // splits), splits)
    if shift:
        out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return rearrange(out, "b h w c -> b (h w) c")


class TransformerLayer(nn.Module):
    """Attention (bias-free projections, LayerNorm on the message) and, unless ``no_ffn``, an FFN on
    concat[source, message]; returns source + message."""

    def __init__(self, *, d_model: int = 128, no_ffn: bool = False, ffn_dim_expansion: int = 4,
                 with_shift: bool = False):
        super().__init__()
        self.with_shift = with_shift
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.norm1 = nn.LayerNorm(d_model)
        self.mlp = self.norm2 = None
        if not no_ffn:
            hidden = 2 * d_model * ffn_dim_expansion
            self.mlp = nn.Sequential(
                nn.Linear(2 * d_model, hidden, bias=False), nn.GELU(), nn.Linear(hidden, d_model, bias=False)
            )
            self.norm2 = nn.LayerNorm(d_model)

    def forward(self, source, target, *, h: int, w: int, splits: int, mask=None):
        q, k, v = self.q_proj(source), self.k_proj(target), self.v_proj(target)
        message = window_attention(q, k, v, h=h, w=w, splits=splits, shift=self.with_shift, mask=mask)
        message = self.norm1(self.merge(message))
        if self.mlp is not None:
            message = self.norm2(self.mlp(torch.cat([source, message], dim=-1)))
        return source + message


class TransformerBlock(nn.Module):
    """Self-attention, then cross-attention + FFN."""

    def __init__(self, *, d_model: int = 128, ffn_dim_expansion: int = 4, with_shift: bool = False):
        super().__init__()
        self.self_attn = TransformerLayer(d_model=d_model, no_ffn=True, with_shift=with_shift)
        self.cross_attn_ffn = TransformerLayer(
            d_model=d_model, ffn_dim_expansion=ffn_dim_expansion, with_shift=with_shift
        )

    def forward(self, source, target, **kw):
        source = self.self_attn(source, source, **kw)
        return self.cross_attn_ffn(source, target, **kw)


class FeatureTransformer(nn.Module):
    """(B, C, H, W) features of frames 0 and 1 -> enhanced features, same shapes.

    Odd-numbered layers use shifted windows. H and W must be divisible by ``splits``.
    """

    def __init__(self, *, num_layers: int = 6, d_model: int = 128, ffn_dim_expansion: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(d_model=d_model, ffn_dim_expansion=ffn_dim_expansion, with_shift=i % 2 == 1)
            for i in range(num_layers)
        )

    def forward(self, feature0: torch.Tensor, feature1: torch.Tensor, *,
                splits: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = feature0.shape[-2:]
        mask = shifted_window_mask(h, w, splits, device=feature0.device).to(feature0.dtype) if splits > 1 else None
        f0, f1 = (rearrange(f, "b c h w -> b (h w) c") for f in (feature0, feature1))
        source, target = torch.cat((f0, f1)), torch.cat((f1, f0))  # both directions in one batch
        for layer in self.layers:
            source = layer(source, target, h=h, w=w, splits=splits, mask=mask)
            target = torch.cat(source.chunk(2)[::-1])
        f0, f1 = (rearrange(f, "b (h w) c -> b c h w", h=h) for f in source.chunk(2))
        return f0, f1
