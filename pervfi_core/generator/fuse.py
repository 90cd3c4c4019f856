"""Multi-scale fusion of the blended features into the flow's conditions (paper §3.2, HRNet-style).

Input: the ADM outputs f_t at three levels, finest first,
``[(B, 35, H, W), (B, 64, H/2, W/2), (B, 96, H/4, W/4)]`` (official channels).
Output: the conditions c, finest first, each at half the resolution of its input,
``[(B, 35, H/2, W/2), (B, 64, H/4, W/4), (B, 96, H/8, W/8)]``.

Structure (ReLU after every conv unless stated, no normalisation): a stem per level; four
bottlenecks on the level-0 stem; transition1 -> two branches (the coarse one concatenated with the
level-1 stem through ``extra1``); stage2 = HRNet modules with two branches; transition2 adds a third
branch (concatenated with the level-2 stem through ``extra2``); stage3 = three-branch modules;
``final_layers`` = stride-2 3×3 convs with bias (no ReLU) back to the input channel counts.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    # in place: the conv output is a fresh buffer and allocating a new one per ReLU costs page faults
    return nn.Sequential(_conv3x3(cin, cout, stride), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """relu(conv1×1 -> relu -> conv3×3 -> relu -> conv1×1 (×4 width) + skip); 1×1 ``downsample`` skip if widths differ."""

    def __init__(self, *, in_channels: int, width: int, expansion: int = 4):
        super().__init__()
        out = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.conv2 = _conv3x3(width, width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.downsample = nn.Conv2d(in_channels, out, 1, bias=False) if in_channels != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x).relu_()).relu_())
        y += x if self.downsample is None else self.downsample(x)
        return y.relu_()


class BasicBlock(nn.Module):
    """relu(conv3×3 -> relu -> conv3×3 + x) at constant width."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.conv2 = _conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x).relu_())
        y += x
        return y.relu_()


def _fuse_path(channels: Sequence[int], src: int, dst: int) -> nn.Module:
    """Maps branch ``src`` to the resolution and width of branch ``dst`` (HRNet exchange unit)."""
    if src == dst:
        return nn.Identity()
    if src > dst:  # coarser -> finer: 1×1 conv, nearest upsampling ×2^(src-dst)
        return nn.Sequential(
            nn.Conv2d(channels[src], channels[dst], 1, bias=False),
            nn.Upsample(scale_factor=2 ** (src - dst), mode="nearest"),
        )
    # finer -> coarser: stride-2 3×3 convs, ReLU between them but not after the last
    steps = [_conv_relu(channels[src], channels[src], 2) for _ in range(dst - src - 1)]
    return nn.Sequential(*steps, _conv3x3(channels[src], channels[dst], 2))


class HRModule(nn.Module):
    """One HRNet module: basic blocks per branch, then out_i = relu(Σ_j f_ij(x_j))."""

    def __init__(self, *, channels: Sequence[int], n_blocks: int):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(channels=c) for _ in range(n_blocks))) for c in channels
        )
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(channels, j, i) for j in range(n)) for i in range(n)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outs = []
        for paths in self.fuse_layers:
            y = paths[0](xs[0]) + paths[1](xs[1])  # a fresh buffer (an identity path returns its input)
            for path, x in zip(paths[2:], xs[2:]):
                y += path(x)
            outs.append(y.relu_())
        return outs


class MultiscaleFuse(nn.Module):
    """HRNet-style fusion (official key prefix ``multiscaleFuse.``); see the module docstring.

    Args (keyword-only): ``in_channels`` of the three input levels (also the output channels);
    ``stem_channels`` width of the stems; ``bottleneck_width`` and ``n_bottlenecks`` of stage 1
    (output width 4·bottleneck_width); ``branch_channels`` of the three HRNet branches;
    ``n_modules`` HRNet modules per stage; ``n_basic_blocks`` per branch and module.

    ``band_rows``: the full-resolution part (level-0 stem -> stage-1 bottlenecks -> transition1, the
    widest tensors of the model: 4·bottleneck_width channels at H×W) runs in bands of this many rows
    plus a halo that covers its receptive field, so that those tensors never exist whole. Exact: the
    halo rows are computed and dropped (about 2·6/band_rows extra work). ``None`` = one piece.
    """

    # rows of context one output row of transition1 needs: 1 (stem) + n_bottlenecks (3×3 each) + 1
    band_rows: int | None = 96

    def __init__(
        self,
        *,
        in_channels: Sequence[int] = (35, 64, 96),
        stem_channels: int = 64,
        bottleneck_width: int = 64,
        n_bottlenecks: int = 4,
        branch_channels: Sequence[int] = (32, 64, 96),
        n_modules: int = 2,
        n_basic_blocks: int = 2,
    ):
        super().__init__()
        c0, c1, c2 = branch_channels
        stage1_out = 4 * bottleneck_width
        self.stems = nn.ModuleList(_conv_relu(c, stem_channels) for c in in_channels)
        self.layer1 = nn.Sequential(
            *(
                Bottleneck(in_channels=stem_channels if i == 0 else stage1_out, width=bottleneck_width)
                for i in range(n_bottlenecks)
            )
        )
        # new branches are nested one level deeper than same-resolution ones (official key layout)
        self.transition1 = nn.ModuleList(
            [_conv_relu(stage1_out, c0), nn.Sequential(_conv_relu(stage1_out, c1, 2))]
        )
        self.extra1 = _conv_relu(stem_channels + c1, c1)
        self.stage2 = nn.Sequential(
            *(HRModule(channels=(c0, c1), n_blocks=n_basic_blocks) for _ in range(n_modules))
        )
        self.transition2 = nn.ModuleList([nn.Identity(), nn.Identity(), nn.Sequential(_conv_relu(c1, c2, 2))])
        self.extra2 = _conv_relu(stem_channels + c2, c2)
        self.stage3 = nn.Sequential(
            *(HRModule(channels=(c0, c1, c2), n_blocks=n_basic_blocks) for _ in range(n_modules))
        )
        self.final_layers = nn.ModuleList(
            nn.Conv2d(cb, cin, 3, stride=2, padding=1) for cb, cin in zip(branch_channels, in_channels)
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """feats ``[(B, c0, H, W), (B, c1, H/2, W/2), (B, c2, H/4, W/4)]`` -> conditions at H/2, H/4, H/8."""
        # channels-last: plain convolutions run faster in that layout (oneDNN), and the conditions it
        # returns keep it, so the decoder's convolutions profit too (bench/bench_core.py)
        feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
        b0, b1 = self._stage1(feats[0])
        s1, s2 = (stem(f) for stem, f in zip(self.stems[1:], feats[1:]))
        b1 = self.extra1(torch.cat([s1, b1], dim=1))  # stem first
        y0, y1 = self.stage2([b0, b1])
        b2 = self.extra2(torch.cat([s2, self.transition2[2](y1)], dim=1))
        ys = self.stage3([y0, y1, b2])
        return [final(y) for final, y in zip(self.final_layers, ys)]

    def _stage1_whole(self, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layer1(self.stems[0](f0))
        return self.transition1[0](x), self.transition1[1](x)

    def _stage1(self, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b0 at H×W, b1 at H/2×W/2) from the level-0 features, in row bands (class docstring)."""
        height = f0.shape[-2]
        band = self.band_rows
        if band is None or height <= band or torch.is_grad_enabled():  # training keeps one graph
            return self._stage1_whole(f0)
        band += band % 2  # even band starts keep the stride-2 phase of transition1[1]
        halo = 2 + len(self.layer1)
        halo += halo % 2
        b0s, b1s = [], []
        for top in range(0, height, band):
            bottom = min(height, top + band)
            lo, hi = max(0, top - halo), min(height, bottom + halo)
            b0, b1 = self._stage1_whole(f0[..., lo:hi, :])
            b0s.append(b0[..., top - lo : bottom - lo, :])
            # stride 2, padding 1: output row k is centred on input row 2k
            b1s.append(b1[..., (top - lo) // 2 : (bottom - lo + 1) // 2, :])
        return torch.cat(b0s, dim=-2), torch.cat(b1s, dim=-2)
