"""GMFlow's CNN feature extractor (Xu et al., "GMFlow: Learning Optical Flow via Global Matching",
CVPR 2022, feature extraction).

A ResNet-style encoder with instance normalisation (no affine parameters, hence no norm keys) maps
an ImageNet-normalised image (B, 3, H, W) to 128-channel features at 1/8 resolution. The two-scale
("refine") configuration stops at 1/4 and derives the 1/4 and 1/8 features from one shared 3×3
kernel applied with strides 1 and 2 (a "trident" convolution, key ``backbone.trident_conv.weight``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .raft_extractor import ResidualBlock

FEATURE_DIMS = (64, 96, 128)


class TridentConv(nn.Module):
    """One 3×3 kernel (no bias) applied to the same input with several strides (padding 1).

    ``forward(x)`` returns ``[conv(x, stride=s) for s in strides]``: highest resolution first.
    """

    def __init__(self, *, channels: int, strides: tuple[int, ...] = (1, 2)):
        super().__init__()
        self.strides = tuple(strides)
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.conv2d(x, self.weight, None, stride=s, padding=1) for s in self.strides]


def _layer(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """Two of RAFT's residual blocks, bias-free, with instance norm (no keys): GMFlow's stage."""
    return nn.Sequential(
        ResidualBlock(in_channels=in_planes, channels=planes, norm="instance", stride=stride, bias=False),
        ResidualBlock(in_channels=planes, channels=planes, norm="instance", bias=False),
    )


class CNNEncoder(nn.Module):
    """ImageNet-normalised images (B, 3, H, W) -> features, list of (B, C, H/s, W/s).

    ``num_scales=1``: ``[1/8]``; ``num_scales=2``: ``[1/4, 1/8]`` (highest resolution first).
    H and W must be multiples of 8 (of 16 for the split attention that follows).
    """

    def __init__(self, *, output_dim: int = 128, num_scales: int = 1):
        super().__init__()
        c1, c2, c3 = FEATURE_DIMS
        self.conv1 = nn.Conv2d(3, c1, 7, stride=2, padding=3, bias=False)  # 1/2
        self.norm1 = nn.InstanceNorm2d(c1)
        self.layer1 = _layer(c1, c1, 1)  # 1/2
        self.layer2 = _layer(c1, c2, 2)  # 1/4
        self.layer3 = _layer(c2, c3, 2 if num_scales == 1 else 1)  # 1/8, or 1/4 before the trident
        self.conv2 = nn.Conv2d(c3, output_dim, 1)
        self.trident_conv = None
        if num_scales > 1:
            self.trident_conv = TridentConv(channels=output_dim, strides=tuple(2**i for i in range(num_scales)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.norm1(self.conv1(x)))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return [x] if self.trident_conv is None else self.trident_conv(x)
