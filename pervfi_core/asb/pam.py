"""Pyramid alignment module, PAM (paper §3.1, Eq. 3-4): frame-1 features aligned to time t.

Coarse to fine (levels 2 -> 1 -> 0). At each level, offset features are predicted from the warped
frame-0 features f_t,0, the frame-1 features f_1, the hole mask M_b and the flow F_t->1 (Eq. 3), and
refined with the upsampled offset features of the coarser level. A modulated deformable convolution
(DCNv2) samples f_1 at the learnt offsets (Eq. 4); its result is fused with the coarser level and merged
with f_t,0 and M_b into the aligned features f_t,1.

Official key layout (prefix ``deformableAlign.``): per-level ``ModuleDict``s ``offset_conv1``,
``offset_conv2``, ``offset_conv3``, ``deform_conv``, ``feat_conv``, ``merge_conv1``, ``merge_conv2``
keyed ``l2``, ``l1``, ``l0``; ``deform_conv.l*`` holds ``conv_offset`` and ``dconv`` (torchvision
``DeformConv2d`` keys).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..ops.deform_conv import DeformConv2d
from .forward_warp import resize


SLOPE = 0.1  # leaky ReLU slope of the official alignment module


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def _lrelu(x: torch.Tensor, *, inplace: bool = True) -> torch.Tensor:
    """In place by default: callers pass a fresh conv output whose pre-activation is not needed."""
    return F.leaky_relu(x, SLOPE, inplace=inplace)


def _up2(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DCNPack(nn.Module):
    """Deformable conv whose offsets and modulation are predicted from offset features.

    ``conv_offset`` gives 3·G·9 channels = [dy/dx part 1, part 2, mask logits]; the offsets
    concat[o1, o2] are read in torchvision's layout, the mask is sigmoid(logits) (Eq. 4).
    """

    def __init__(self, *, channels: int, groups: int, kernel: int = 3):
        super().__init__()
        self.conv_offset = nn.Conv2d(channels, 3 * groups * kernel * kernel, kernel, padding=kernel // 2)
        self.dconv = DeformConv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, offset_feat: torch.Tensor) -> torch.Tensor:
        raw = self.conv_offset(offset_feat)
        n_offsets = raw.shape[1] // 3 * 2  # concat[o1, o2] is the first two thirds: a view, no copy
        return self.dconv(x, raw[:, :n_offsets], torch.sigmoid(raw[:, n_offsets:]))


class DeformableAlign(nn.Module):
    """``deformableAlign``: PAM over three levels.

    Args (keyword-only): ``channels`` of levels l0, l1, l2 (35, 64, 96); ``groups`` DCN offset groups
    per level (7, 8, 8; each must divide its level's channels).
    """

    def __init__(self, *, channels: tuple[int, int, int] = (35, 64, 96), groups: tuple[int, int, int] = (7, 8, 8)):
        super().__init__()
        names = ("offset_conv1", "offset_conv2", "offset_conv3", "deform_conv", "feat_conv",
                 "merge_conv1", "merge_conv2")
        for name in names:
            self.add_module(name, nn.ModuleDict())
        self.n_levels = len(channels)
        for level in reversed(range(self.n_levels)):  # official insertion order l2, l1, l0
            c, key = channels[level], f"l{level}"
            coarsest = level == self.n_levels - 1
            c_up = 0 if coarsest else channels[level + 1]  # channels arriving from the coarser level
            self.offset_conv1[key] = _conv(2 * c + 3, c)  # [f_t,0, f_1, M_b, F_t->1]
            self.offset_conv2[key] = _conv(c + c_up, c)
            if not coarsest:
                self.offset_conv3[key] = _conv(c, c)
                self.feat_conv[key] = _conv(c + c_up, c)
                self.merge_conv2[key] = _conv(c + c_up, c)
            self.deform_conv[key] = DCNPack(channels=c, groups=groups[level])
            self.merge_conv1[key] = _conv(2 * c + 1, c)  # [f_t,0, aligned f_1, M_b]

    def forward(self, warped0: list[torch.Tensor], feat1: list[torch.Tensor], holes: list[torch.Tensor],
                flow_t1: torch.Tensor) -> list[torch.Tensor]:
        """Lists per level [l0, l1, l2] (finest first): warped0 = f_t,0, feat1 = f_1 (B, c_l, h_l, w_l),
        holes = M_b (B, 1, h_l, w_l); flow_t1 (B, 2, H, W) px at full resolution.
        Returns f_t,1 per level [l0, l1, l2]."""
        out: list[torch.Tensor] = [None] * self.n_levels
        up = None  # (offset features, lrelu(aligned), merged) of the coarser level, upsampled
        for level in reversed(range(self.n_levels)):
            size = warped0[level].shape[-2:]
            flow = resize(flow_t1, size, is_flow=True)  # directly from full resolution
            out[level], state = self._level(level, warped0[level], feat1[level], holes[level], flow, up)
            if level:
                up_size = warped0[level - 1].shape[-2:]
                up = [_up2(state[0], up_size) * 2, _up2(state[1], up_size), _up2(state[2], up_size)]
        return out

    def _level(self, level: int, feat0, feat1, hole, flow, up):
        key = f"l{level}"
        offset = _lrelu(self.offset_conv1[key](torch.cat([feat0, feat1, hole, flow], dim=1)))  # Eq. (3)
        if up is None:
            offset = _lrelu(self.offset_conv2[key](offset))
        else:
            offset = _lrelu(self.offset_conv2[key](torch.cat([offset, up[0]], dim=1)))
            offset = _lrelu(self.offset_conv3[key](offset))
        aligned = self.deform_conv[key](feat1, offset)  # Eq. (4)
        if up is not None:
            aligned = self.feat_conv[key](torch.cat([aligned, up[1]], dim=1))
        merged = self.merge_conv1[key](torch.cat([feat0, aligned, hole], dim=1))
        if up is not None:
            merged = self.merge_conv2[key](torch.cat([merged, up[2]], dim=1))
        if level == 0:
            return merged, None  # nothing finer to feed
        return merged, (offset, _lrelu(aligned, inplace=False), merged)  # aligned may be the DCN output
