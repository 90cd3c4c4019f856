"""Asymmetric blending with the quasi-binary mask, ADM (paper §3.1, Eq. 7-9).

The binary hole mask M_b is turned into a quasi-binary soft mask M̃ (Eq. 7-8): a small convolution
stack spreads M_b (9x9, 3x3, 1x1), its 64 channels are re-weighted by a channel attention computed
from both feature maps (squeeze-and-excitation on ``att(concat[f_t,0, f_t,1])``), projected to one
channel and squashed by tanh(|·|) into [0, 1). Where no hole is within the receptive field, M̃ is
exactly 0 and the frame-0 features pass unchanged. The blend is f_t = f_t,0·(1-M̃) + f_t,1·M̃ (Eq. 9).

Training adds uniform noise (rand - 0.5)/100 to M̃ (paper §4.1; α = 1e-3 in the text, the official
code's value is used); eval mode adds none and draws no random numbers.

Official key layout (prefix ``attentionMerge.``): ``softbinary.<level>`` with ``conv1.{0,2,4}``,
``att``, ``fc.{0,2}``, ``conv2``.
"""
from __future__ import annotations


import torch
from einops import rearrange
from torch import nn


TRAIN_NOISE = 0.01  # amplitude of the uniform training noise added to the soft mask


class SoftBinary(nn.Module):
    """One level of ADM: (f_t,0, f_t,1 (B, c, h, w), M_b (B, 1, h, w)) -> M̃ (B, 1, h, w) in [0, 1)."""

    def __init__(self, *, channels: int, hidden: int = 64, reduction: int = 8, spread: int = 9):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, hidden, spread, padding=spread // 2, bias=False), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1, bias=False),
        )
        self.att = nn.Conv2d(2 * channels, hidden, 3, padding=1)
        self.fc = nn.Sequential(nn.Linear(hidden, reduction, bias=False), nn.ReLU(),
                                nn.Linear(reduction, hidden, bias=False), nn.Sigmoid())
        self.conv2 = nn.Conv2d(hidden, 1, 1, bias=False)

    def forward(self, feat0: torch.Tensor, feat1: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        spread = self.conv1(hole)
        pooled = self.att(torch.cat([feat0, feat1], dim=1)).mean(dim=(2, 3))  # (B, hidden)
        weights = rearrange(self.fc(pooled), "b c -> b c 1 1")  # channel attention
        mask = torch.tanh(self.conv2(spread * weights).abs())  # Eq. (7)-(8)
        if self.training:
            mask = mask + (torch.rand_like(mask) - 0.5) * TRAIN_NOISE
        return mask


class AttentionMerge(nn.Module):
    """``attentionMerge``: ADM over the pyramid levels.

    Args (keyword-only): ``channels`` of levels l0, l1, l2 (35, 64, 96).
    """

    def __init__(self, *, channels: tuple[int, ...] = (35, 64, 96)):
        super().__init__()
        # official insertion order: levels 2, 1, 0
        self.softbinary = nn.ModuleDict({str(level): SoftBinary(channels=channels[level])
                                         for level in reversed(range(len(channels)))})

    def forward(self, warped0: list[torch.Tensor], aligned1: list[torch.Tensor], holes: list[torch.Tensor]):
        """Per level [l0, l1, l2]: f_t,0, f_t,1 (B, c_l, h_l, w_l), M_b (B, 1, h_l, w_l) ->
        (blended f_t per level [l0, l1, l2], soft masks M̃ per level [l0, l1, l2])."""
        blended, masks = [], []
        for level, (feat0, feat1, hole) in enumerate(zip(warped0, aligned1, holes)):
            mask = self.softbinary[str(level)](feat0, feat1, hole)
            blended.append(feat0 * (1 - mask) + feat1 * mask)  # Eq. (9)
            masks.append(mask)
        return blended, masks
