"""Asymmetric blending of the trunk's two warped frames (PerVFI §3.1, Eq. 7-9).

PerVFI makes one frame *primary*: it provides every pixel it can see at time t, and the other frame only
fills what the primary cannot see, through a quasi-binary mask M̃ (ADM, Eq. 7-8), so that two slightly
misaligned frames are not averaged into a blurred, ghosted one:

    I_t = W_p · (1 − M̃) + W_o · M̃                                                      # Eq. (9)

Here the primary P is the nearer frame (frame 0 for t ≤ 0.5), W_p / W_o are the trunk's frames warped
to t, and the occlusion evidence is RIFE's own soft blend mask m (its weight of warped frame 0), read
as the logit ℓ_o = logit(weight of the other frame). M̃ sharpens it into a quasi-binary mask and moves
its threshold towards the primary:

    M̃ = sigmoid(k · ℓ_o + b),   k = exp(log_k) ≥ 0, b ≤ 0 favours the primary             # Eq. (7)-(8)

k = 1, b = 0 is RIFE's own blend; k and b are learned with the decoder (the training CLI). The paper's
uniform training noise in ADM is unnecessary here (two scalars, no hole features to over-fit).
"""
from __future__ import annotations

import torch
from torch import nn

from .trunk import TrunkOutput

_EPS = 1e-6


class AsymmetricBlend(nn.Module):
    """``forward(out, t) -> (frame (B,3,H,W), M̃ (B,1,H,W) = weight of frame 1)`` for a
    :class:`TrunkOutput` and t (B,) in [0, 1]. ``sharpness`` k and ``bias`` b at construction (module doc)."""

    def __init__(self, *, sharpness: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.log_k = nn.Parameter(torch.tensor(float(sharpness)).log())
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def mask(self, out: TrunkOutput, t: torch.Tensor) -> torch.Tensor:
        """M̃ (B, 1, H, W) in (0, 1): the weight of frame 1 (quasi-binary for large k)."""
        swap = (t.view(-1, 1, 1, 1) > 0.5)  # primary = the nearer frame: frame 1 for t > 0.5
        other = torch.where(swap, out.mask, 1 - out.mask).clamp(_EPS, 1 - _EPS)  # RIFE's weight of the other frame
        m_other = torch.sigmoid(self.log_k.exp() * torch.logit(other) + self.bias)  # Eq. (7)-(8)
        return torch.where(swap, 1 - m_other, m_other)

    def forward(self, out: TrunkOutput, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask(out, t)
        return out.warped0 * (1 - m) + out.warped1 * m, m  # Eq. (9)
