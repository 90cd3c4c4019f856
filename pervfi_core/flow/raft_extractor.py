"""RAFT feature and context encoders (Teed & Deng, ECCV 2020, §3.1 "Feature Extraction").

Both encoders map an image ``(B, 3, H, W)`` normalised to [-1, 1] to features at 1/8 resolution
``(B, out_channels, H/8, W/8)`` (H, W multiples of 8): a 7×7 stride-2 stem, three residual stages
(the last two with stride 2) and a 1×1 projection.

* :class:`BasicEncoder` (RAFT large): residual blocks of two 3×3 convolutions, widths 64/96/128.
* :class:`SmallEncoder` (RAFT-small): bottleneck blocks (1×1, 3×3, 1×1 with a 4× narrower middle),
  widths 32/64/96.

``norm`` is ``"instance"`` (feature encoder: per-sample statistics, no parameters), ``"batch"``
(context encoder of RAFT large; evaluated with its running statistics) or ``"none"``.

Submodule names follow the official checkpoints (``conv1``, ``norm1``, ``layer1.0.conv1``, ...).
In a strided block the shortcut's normalisation is registered twice, as ``norm3`` (``norm4`` in a
bottleneck) and as ``downsample.1``: one module under two names, exactly as in the official code,
so both key sets exist in the state dict and hold identical values.
"""
from __future__ import annotations


import torch
from torch import nn


NORMS = ("instance", "batch", "none")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer of the given kind; ``"instance"`` has no affine parameters (no keys)."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class _Residual(nn.Module):
    """relu(shortcut(x) + y), y = x through conv_k -> norm_k -> ReLU for k = 1..``depth``; the shortcut is the
    identity, or a 1×1 projection (with bias) + norm set by :meth:`_project`."""

    depth: int

    def _project(self, *, in_channels: int, channels: int, stride: int, norm: str) -> None:
        # The projection's norm is also registered as norm<depth + 1>: one module under both names, as the
        # official layout stores it.
        shortcut_norm = make_norm(norm, channels)
        setattr(self, f"norm{self.depth + 1}", shortcut_norm)
        self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride), shortcut_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for k in range(1, self.depth + 1):
            y = self.relu(getattr(self, f"norm{k}")(getattr(self, f"conv{k}")(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class ResidualBlock(_Residual):
    """Two 3×3 convolutions; projected shortcut when the stride or the width changes. GMFlow's backbone is
    built of the same block, with bias-free 3×3 convolutions (``bias=False``)."""

    depth = 2

    def __init__(self, *, in_channels: int, channels: int, norm: str, stride: int = 1, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, stride=stride, bias=bias)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.relu = nn.ReLU()
        self.norm1 = make_norm(norm, channels)
        self.norm2 = make_norm(norm, channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self._project(in_channels=in_channels, channels=channels, stride=stride, norm=norm)


class BottleneckBlock(_Residual):
    """Residual bottleneck: 1×1 to channels/4, 3×3 (strided), 1×1 back to ``channels``."""

    depth = 3

    def __init__(self, *, in_channels: int, channels: int, norm: str, stride: int = 1):
        super().__init__()
        mid = channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.relu = nn.ReLU()
        self.norm1 = make_norm(norm, mid)
        self.norm2 = make_norm(norm, mid)
        self.norm3 = make_norm(norm, channels)
        self.downsample = None
        if stride != 1:
            self._project(in_channels=in_channels, channels=channels, stride=stride, norm=norm)


class _Encoder(nn.Module):
    """Stem (7×7, stride 2) + three stages of two blocks (strides 1, 2, 2) + 1×1 projection."""

    def __init__(self, *, block: type, widths: tuple[int, int, int], out_channels: int, norm: str):
        super().__init__()
        self.norm1 = make_norm(norm, widths[0])  # registered first: official key order
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.relu1 = nn.ReLU()
        in_channels = widths[0]
        for index, (width, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            stage = nn.Sequential(
                block(in_channels=in_channels, channels=width, norm=norm, stride=stride),
                block(in_channels=width, channels=width, norm=norm, stride=1),
            )
            setattr(self, f"layer{index}", stage)
            in_channels = width
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 3, H, W) in [-1, 1] -> features (B, out_channels, H/8, W/8)."""
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)


class BasicEncoder(_Encoder):
    """RAFT-large encoder: residual blocks, widths 64/96/128 (§3.1)."""

    def __init__(self, *, out_channels: int = 256, norm: str = "instance"):
        super().__init__(block=ResidualBlock, widths=(64, 96, 128), out_channels=out_channels, norm=norm)


class SmallEncoder(_Encoder):
    """RAFT-small encoder: bottleneck blocks, widths 32/64/96."""

    def __init__(self, *, out_channels: int = 128, norm: str = "instance"):
        super().__init__(block=BottleneckBlock, widths=(32, 64, 96), out_channels=out_channels, norm=norm)
