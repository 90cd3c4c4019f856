"""The fast deterministic decoder of PerVFI "vb" (official key prefix ``generator.``).

Replaces the normalizing flow by a plain coarse-to-fine CNN on the same conditions
(no latent, no temperature): conditions ``[(B, 35, H/2, W/2), (B, 64, H/4, W/4), (B, 96, H/8, W/8)]``
-> image ``(B, 3, H, W)`` in the [-1, 1] domain (unclamped).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvReluConv(nn.Module):
    """``netMain`` (conv3×3 -> PReLU -> conv3×3, no bias) plus a 1×1 ``netShortcut`` (no bias)."""

    def __init__(self, *, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.netMain = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, out_channels, 3, padding=1, bias=False),
        )
        self.netShortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x) + self.netShortcut(x)


def _up2(x: torch.Tensor) -> torch.Tensor:
    # the official decoder uses UpsamplingBilinear2d, i.e. align_corners=True (only here)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class VBDecoder(nn.Module):
    """Coarse-to-fine decoder; every level concatenates [upsampled coarser output, condition].

    Args (keyword-only): ``cond_channels`` finest first; ``hidden`` widths of the three blocks
    (conv1, conv2, conv3); ``out_channels`` image channels. conv3 maps c_2 to ``cond_channels[1]``
    channels, conv2 maps to ``cond_channels[0]``, conv1 to 4·32 channels that ``pixel_shuffle(2)``
    turns into 32 channels at full resolution; ``tail`` (3×3, bias) gives the image.
    """

    def __init__(
        self,
        *,
        cond_channels: Sequence[int] = (35, 64, 96),
        hidden: Sequence[int] = (96, 256, 128),
        shuffle_channels: int = 32,
        out_channels: int = 3,
    ):
        super().__init__()
        c0, c1, c2 = cond_channels
        h1, h2, h3 = hidden
        self.conv3 = ConvReluConv(in_channels=c2, hidden=h3, out_channels=c1)
        self.conv2 = ConvReluConv(in_channels=2 * c1, hidden=h2, out_channels=c0)
        self.conv1 = ConvReluConv(in_channels=2 * c0, hidden=h1, out_channels=4 * shuffle_channels)
        self.tail = nn.Conv2d(shuffle_channels, out_channels, 3, padding=1)

    def forward(self, conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """conds finest first -> y ``(B, 3, H, W)`` in [-1, 1] (unclamped), H = 2·(height of conds[0])."""
        c0, c1, c2 = conds
        x = _up2(self.conv3(c2))
        x = _up2(self.conv2(torch.cat([x, c1], dim=1)))
        x = self.conv1(torch.cat([x, c0], dim=1))  # (B, 4·32, H/2, W/2)
        return self.tail(F.pixel_shuffle(x, 2))
