"""Feature pyramid and splatting metric of the asymmetric synergistic blending (paper §3.1, Eq. 1-2).

Both frames go through the same 3-level encoder ``netEncode``; the splatting metric Z of Eq. (2) is
predicted by ``netSoftmetric``, a small GridNet-like network (rows = resolutions 1, 1/2, 1/4, 1/8,
two columns) fed with the image and the brightness-constancy error of the backward-warped features.

Module and key names follow the official checkpoint (``featurePyramid.netEncode.*``,
``featurePyramid.netSoftmetric.*`` with sub-module names such as ``"0x0 - 0x1"``).
"""
from __future__ import annotations


import torch
from torch import nn

from ..ops.warp import backward_warp


def _conv(cin: int, cout: int, *, stride: int = 1, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def _encoder_stage(cin: int, cout: int, *, stride: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, stride=stride), nn.PReLU(cout), _conv(cout, cout), nn.PReLU(cout))


class FeatureEncoder(nn.Module):
    """``netEncode``: image (B, 3, H, W) in [-1, 1] -> features [l0 (B, 3+c0, H, W), l1 (B, c1, H/2, W/2),
    l2 (B, c2, H/4, W/4)]; l0 is the image concatenated with the first stage's output."""

    def __init__(self, *, channels: tuple[int, int, int] = (32, 64, 96)):
        super().__init__()
        c0, c1, c2 = channels
        self.netOne = _encoder_stage(3, c0, stride=1)
        self.netTwo = _encoder_stage(c0, c1, stride=2)
        self.netThr = _encoder_stage(c1, c2, stride=2)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        one = self.netOne(image)
        two = self.netTwo(one)
        return [torch.cat([image, one], dim=1), two, self.netThr(two)]


class _Lateral(nn.Module):
    """Same-row block: x + conv(PReLU(conv(PReLU(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.netMain = nn.Sequential(nn.PReLU(channels), _conv(channels, channels),
                                     nn.PReLU(channels), _conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.netMain(x)


class _Down(nn.Module):
    """One row down (half resolution): conv(PReLU(conv_stride2(PReLU(x))))."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.netMain = nn.Sequential(nn.PReLU(cin), _conv(cin, cout, stride=2), nn.PReLU(cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x)


class _Up(nn.Module):
    """One row up (double resolution): conv(PReLU(conv(PReLU(bilinear_x2(x)))))."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.netMain = nn.Sequential(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                                     nn.PReLU(cin), _conv(cin, cout), nn.PReLU(cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x)


class _Output(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.netMain = nn.Sequential(_conv(channels, channels), nn.PReLU(channels), _conv(channels, 1))
        self.netShortcut = _conv(channels, 1, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x) + self.netShortcut(x)


class Softmetric(nn.Module):
    """``netSoftmetric``: the splatting importance metric Z of Eq. (2).

    ``forward(enc_a, enc_b, flow)``: encoder pyramids of frames a and b, flow a->b (B, 2, H, W) in
    pixels on a's grid -> Z (B, 1, H, W) (unbounded; a larger Z means a more important source pixel,
    the splat weight is exp(Z) after time scaling). Only level 0 of the pyramids is used.
    """

    def __init__(self, *, image_channels: int = 3, rows: tuple[int, ...] = (16, 32, 64, 96),
                 input_channels: int = 12):
        super().__init__()
        self.image_channels = image_channels
        self.netInput = _conv(image_channels, input_channels)
        self.netError = _conv(1, rows[0] - input_channels)
        self.rows = len(rows)
        for r, c in enumerate(rows):  # names are the official "<row>x<col> - <row>x<col>" keys
            self.add_module(f"{r}x0 - {r}x1", _Lateral(c))
        for r in range(self.rows - 1):
            self.add_module(f"{r}x0 - {r + 1}x0", _Down(rows[r], rows[r + 1]))
        for r in range(self.rows - 1, 0, -1):
            self.add_module(f"{r}x1 - {r - 1}x1", _Up(rows[r], rows[r - 1]))
        self.netOutput = _Output(rows[0])

    def forward(self, enc_a: list[torch.Tensor], enc_b: list[torch.Tensor], flow: torch.Tensor) -> torch.Tensor:
        feat_a, feat_b = enc_a[0], enc_b[0]
        # Eq. (2): brightness-constancy error of the features, averaged over channels
        error = (feat_a - backward_warp(feat_b, flow)).abs().mean(dim=1, keepdim=True)
        column = [torch.cat([self.netInput(feat_a[:, : self.image_channels]), self.netError(error)], dim=1)]
        for r in range(self.rows - 1):
            column.append(self._modules[f"{r}x0 - {r + 1}x0"](column[-1]))
        for r in range(self.rows - 1, -1, -1):
            column[r] = self._modules[f"{r}x0 - {r}x1"](column[r])
            if r < self.rows - 1:
                up = self._modules[f"{r + 1}x1 - {r}x1"](column[r + 1])
                # odd sizes: the upsampled map may be one pixel larger; crop bottom/right
                column[r] = column[r] + up[..., : column[r].shape[2], : column[r].shape[3]]
        return self.netOutput(column[0])


class FeaturePyramid(nn.Module):
    """``featurePyramid``: the shared encoder and the metric network (key prefix ``featurePyramid.``)."""

    def __init__(self, *, channels: tuple[int, int, int] = (32, 64, 96),
                 metric_rows: tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        self.netEncode = FeatureEncoder(channels=channels)
        self.netSoftmetric = Softmetric(rows=metric_rows)

    @property
    def level_channels(self) -> tuple[int, int, int]:
        """Channels of the pyramid levels l0, l1, l2 (35, 64, 96 for the official model)."""
        enc = self.netEncode
        return (3 + enc.netOne[0].out_channels, enc.netTwo[0].out_channels, enc.netThr[0].out_channels)

    def forward(self, image0: torch.Tensor, image1: torch.Tensor, flow01: torch.Tensor, flow10: torch.Tensor):
        """Images (B, 3, H, W) in [-1, 1] and flows (B, 2, H, W) px ->
        (enc0, enc1 [l0, l1, l2], Z01 on frame 0's grid, Z10 on frame 1's grid), each Z (B, 1, H, W)."""
        enc0, enc1 = self.netEncode(image0), self.netEncode(image1)
        return enc0, enc1, self.netSoftmetric(enc0, enc1, flow01), self.netSoftmetric(enc1, enc0, flow10)
